//! The tree code against an independent RFC 6962 implementation (`ct-merkle`), the tile layout,
//! notes (the signed-note format's published example) and cosignatures.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test fails by panicking")]

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2_11::Sha256 as Oracle;

use super::*;

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"entry\":{i}}}").into_bytes()
}

/// A store of stored hashes grown the way the sequencer grows it: in rounds of varying size,
/// each reading only the frontier.
struct Tree {
    hashes: Hashes,
    size: u64,
}

impl Tree {
    fn new() -> Tree {
        Tree { hashes: Hashes::default(), size: 0 }
    }

    fn append(&mut self, count: u64) {
        let frontier = Hashes(frontier_indexes(self.size).into_iter().map(|i| (i, self.hashes.0[&i])).collect());
        let entries: Vec<Vec<u8>> = (self.size..self.size + count).map(entry).collect();
        let added = append(self.size, &frontier, entries.iter().map(Vec::as_slice)).unwrap();
        let first = stored_hash_count(self.size);
        for (k, (index, hash)) in added.into_iter().enumerate() {
            assert_eq!(index, first + k as u64, "stored hashes are dense and contiguous");
            self.hashes.0.insert(index, hash);
        }
        self.size += count;
        assert_eq!(self.hashes.0.len() as u64, stored_hash_count(self.size));
    }

    fn only(&self, indexes: Vec<u64>) -> Hashes {
        Hashes(indexes.into_iter().map(|i| (i, self.hashes.0[&i])).collect())
    }
}

fn bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// Indexes worth proving in a tree of `size`: all of them while small, else the edges, the
/// middle and a few spread by a fixed stride.
fn probes(size: u64) -> Vec<u64> {
    if size <= 40 {
        return (0..size).collect();
    }
    let mut probes = vec![0, 1, size / 2, size - 2, size - 1, (size * 7919) % size, (size * 104_729 + 3) % size];
    probes.sort_unstable();
    probes.dedup();
    probes
}

#[test]
fn roots_inclusion_and_consistency_proofs_agree_with_ct_merkle_for_every_size_up_to_2000() {
    let mut oracle: MemoryBackedTree<Oracle, Vec<u8>> = MemoryBackedTree::new();
    let mut tree = Tree::new();
    let mut rounds = [1u64, 3, 1, 7, 2, 16, 5].into_iter().cycle();
    let mut checked = 0;
    while tree.size < 2000 {
        let round = rounds.next().unwrap().min(2000 - tree.size);
        tree.append(round);
        // Every size the oracle passes through, including those inside a round.
        let mut builder = RootBuilder::default();
        for i in 0..oracle.len() {
            builder.push(&entry(i));
        }
        for _ in 0..round {
            let n = oracle.len();
            oracle.push(entry(n));
            builder.push(&entry(n));
            let size = n + 1;
            let expected = oracle.root();
            let ours = root(size, &tree.only(root_indexes(size))).unwrap();
            assert_eq!(ours.0.as_slice(), expected.as_bytes().as_slice(), "root of size {size}");
            assert_eq!(builder.root(), ours, "the streaming root of size {size}");
            checked += 1;
        }
        let size = tree.size;
        let top = root(size, &tree.hashes).unwrap();
        for index in probes(size) {
            let proof = inclusion_proof(index, size, &tree.only(inclusion_indexes(index, size))).unwrap();
            let expected = oracle.prove_inclusion(index as usize);
            assert_eq!(bytes(&proof), expected.as_bytes(), "inclusion of {index} in {size}");
            verify_inclusion(&proof, size, top, index, leaf_hash(&entry(index))).unwrap();
            assert!(verify_inclusion(&proof, size, top, index, leaf_hash(b"another entry")).is_err());
        }
        for from in probes(size).into_iter().filter(|from| *from > 0) {
            let proof = consistency_proof(from, size, &tree.only(consistency_indexes(from, size))).unwrap();
            let old = root(from, &tree.hashes).unwrap();
            if from < size {
                let expected = oracle.prove_consistency((size - from) as usize);
                assert_eq!(bytes(&proof), expected.as_bytes(), "consistency {from} → {size}");
            }
            verify_consistency(&proof, from, old, size, top).unwrap();
            if from < size {
                assert!(verify_consistency(&proof, from, leaf_hash(b"forged"), size, top).is_err());
            }
        }
    }
    assert_eq!(checked, 2000);
}

#[test]
fn the_empty_tree_and_edge_proofs() {
    assert_eq!(root(0, &Hashes::default()).unwrap(), EMPTY_HASH);
    assert_eq!(RootBuilder::default().root(), EMPTY_HASH);
    let mut tree = Tree::new();
    tree.append(5);
    assert!(inclusion_proof(5, 5, &tree.hashes).is_err(), "index = size is out of range");
    assert!(consistency_proof(0, 5, &tree.hashes).unwrap().is_empty());
    assert!(consistency_proof(5, 5, &tree.hashes).unwrap().is_empty());
    assert!(consistency_proof(6, 5, &tree.hashes).is_err());
    let top = root(5, &tree.hashes).unwrap();
    verify_consistency(&[], 0, EMPTY_HASH, 5, top).unwrap();
    verify_consistency(&[], 5, top, 5, top).unwrap();
    assert!(verify_consistency(&[], 5, EMPTY_HASH, 5, top).is_err(), "one size, two roots");
    assert!(matches!(root(6, &tree.hashes), Err(TlogError::Missing)));
}

#[test]
fn tile_paths_parse_strictly_and_round_trip() {
    let cases = [
        ("0/005", TilePath { level: 0, index: 5, width: 256, entries: false }),
        ("3/x001/x234/067", TilePath { level: 3, index: 1_234_067, width: 256, entries: false }),
        ("entries/x001/234.p/7", TilePath { level: 0, index: 1234, width: 7, entries: true }),
        ("1/000.p/1", TilePath { level: 1, index: 0, width: 1, entries: false }),
    ];
    for (path, tile) in cases {
        assert_eq!(TilePath::parse(path), Some(tile), "{path}");
        assert_eq!(tile.to_path(), path);
    }
    for bad in [
        "0/5",
        "0/0005",
        "00/000",
        "64/000",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/01",
        "0/001/234",
        "0/x001",
        "0/x000/001",
        "entries/000.p/",
        "x/000",
        "0/-01",
        "",
        "0/000/",
        "data/000",
    ] {
        assert_eq!(TilePath::parse(bad), None, "{bad:?} is refused");
    }
}

#[test]
fn the_tile_layout_of_a_tree_of_70000_entries() {
    let size = 70_000u64;
    let mut tree = Tree::new();
    for _ in 0..70 {
        tree.append(1000);
    }
    // Level 0: 273 full tiles (273·256 = 69,888) and a partial of 112; level 1: ⌊70000/256⌋ = 273
    // hashes, one full tile and a partial of 17; level 2: ⌊70000/65536⌋ = 1, a partial of 1.
    let full = |level: u8, index: u64| TilePath { level, index, width: 256, entries: false };
    let partial = |level: u8, index: u64, width: u16| TilePath { level, index, width, entries: false };
    assert!(full(0, 272).served_at(size) && !full(0, 273).served_at(size));
    assert!(partial(0, 273, 112).served_at(size) && !partial(0, 273, 113).served_at(size));
    assert!(full(1, 0).served_at(size) && !full(1, 1).served_at(size));
    assert!(partial(1, 1, 17).served_at(size) && !partial(1, 1, 18).served_at(size));
    assert!(partial(2, 0, 1).served_at(size) && !partial(2, 0, 2).served_at(size));
    assert!(!partial(3, 0, 1).served_at(size));
    // A partial tile stays served once its full tile exists.
    assert!(partial(0, 0, 5).served_at(size));

    // Hash i of a level-L tile N is the root of its 256^L entries.
    let entries_root = |start: u64, end: u64| {
        let mut builder = RootBuilder::default();
        for i in start..end {
            builder.push(&entry(i));
        }
        builder.root()
    };
    for (tile, i) in [
        (full(0, 272), 255u64),
        (partial(0, 273, 112), 111),
        (full(1, 0), 7),
        (partial(1, 1, 17), 16),
        (partial(2, 0, 1), 0),
    ] {
        let hashes: Vec<Hash> = tile.hash_indexes().into_iter().map(|idx| tree.hashes.0[&idx]).collect();
        assert_eq!(hashes.len(), usize::from(tile.width));
        let span = 256u64.pow(u32::from(tile.level));
        let start = (tile.index * 256 + i) * span;
        assert_eq!(hashes[i as usize], entries_root(start, start + span), "{}", tile.to_path());
        assert_eq!(tile_bytes(&hashes).len(), 32 * usize::from(tile.width));
    }
    // The level-2 hash is the root of the first 65,536 entries; with the level-1 partial
    // remainder the tiles give the whole tree's root as the stored hashes do.
    assert_eq!(root(size, &tree.hashes).unwrap(), entries_root(0, size));
}

#[test]
fn entry_bundles_round_trip() {
    let entries: Vec<Vec<u8>> = (0..3).map(entry).collect();
    let bundle = bundle_bytes(entries.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(&bundle[..2], &(entries[0].len() as u16).to_be_bytes());
    let parsed = parse_bundle(&bundle).unwrap();
    assert_eq!(parsed, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert!(parse_bundle(&bundle[..bundle.len() - 1]).is_err());
}

/// The example of the signed-note format as Go's `golang.org/x/mod/sumdb/note` publishes it,
/// with its verifier key (C2SP signed-note formalises that format; its own example, the
/// quasimodo.example note, is published without a verifier key, so only its shape is checked).
#[test]
fn the_signed_note_examples_verify_and_parse() {
    let vkey = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n\
                \n\
                \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    let note = Note::parse(text).unwrap();
    assert!(note.verify(&vkey).unwrap(), "the published example verifies");
    assert_eq!(note.to_text(), text);
    let tampered = text.replace("answer", "ANSWER");
    assert!(Note::parse(&tampered).unwrap().verify(&vkey).is_err(), "a line of the key that fails is an error");

    let c2sp = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n\n\
                \u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
    let note = Note::parse(c2sp).unwrap();
    assert_eq!(
        note.text,
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n"
    );
    assert_eq!(note.signatures.len(), 1);
    assert_eq!(note.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(note.signatures[0].id, 0x367b_a04b);
    assert_eq!(note.signatures[0].signature.len(), 64);
    assert_eq!(note.to_text(), c2sp);
    // The azul implementation reads it the same way.
    let theirs = signed_note::Note::from_bytes(c2sp.as_bytes()).unwrap();
    assert_eq!(theirs.text(), note.text.as_bytes());
}

#[test]
fn checkpoints_sign_verify_and_agree_with_azul() {
    let key = LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let origin = "cards.example.com/tlog/chat";
    let checkpoint = Checkpoint { origin: origin.into(), size: 12, root: leaf_hash(b"x") };
    let note = key.sign(&checkpoint);
    let vkey = key.vkey(origin);
    let (opened, _) = open_checkpoint(&note, &vkey).unwrap();
    assert_eq!(opened, checkpoint);
    assert_eq!(VerifierKey::parse(&vkey.to_string()).unwrap(), vkey);
    // azul's verifier and checkpoint parser accept what we sign.
    let verifier = signed_note::StandardVerifier::new(&vkey.to_string()).unwrap();
    let theirs = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    theirs.verify(&list).unwrap();
    let body = tlog_tiles::Checkpoint::from_bytes(checkpoint.body().as_bytes()).unwrap();
    assert_eq!((body.origin(), body.size(), body.hash().0), (origin, 12, checkpoint.root.0));
    // Another origin's key name does not verify it; nor does another key.
    assert!(open_checkpoint(&note, &key.vkey("other/origin")).is_err());
    let other = LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
    assert!(open_checkpoint(&note, &other.vkey(origin)).is_err());
    // Bodies are strict.
    for bad in ["o\n01\nAAAA\n", "o\n1\n", "\n1\nx\n", "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n"] {
        assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
    }
    // A vkey's base64 may hold `+`: split at the first two only.
    let with_plus = (0u8..=255)
        .map(|b| LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[b; 32])).vkey("o"))
        .find(|v| v.to_string().matches('+').count() > 2)
        .unwrap();
    assert_eq!(VerifierKey::parse(&with_plus.to_string()).unwrap(), with_plus);
}

#[test]
fn cosignatures_verify_with_the_witness_key_only() {
    let witness = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let vkey = VerifierKey::new("witness.example/w1", COSIGNATURE_TYPE, witness.verifying_key());
    let body = Checkpoint { origin: "o".into(), size: 1, root: leaf_hash(b"e") }.body();
    let line = cosign(&vkey.name, &witness, 1_700_000_000, &body);
    assert_eq!(line.signature.len(), 72, "timestamp and signature (76 bytes with the key ID)");
    assert_eq!(verify_cosignature(&vkey, &body, &line.signature).unwrap(), 1_700_000_000);
    assert!(verify_cosignature(&vkey, &body.replace('1', "2"), &line.signature).is_err());
    let parsed = SignatureLine::parse(line.to_line().trim_end()).unwrap();
    assert_eq!(parsed, line);
    assert_eq!(VerifierKey::parse(&vkey.to_string()).unwrap(), vkey);
}
