//! The transparency log's pure parts (no I/O), shared by the server, the SDK and the CLI: the
//! RFC 6962 tree kept as *stored hashes*, tiles and entry bundles (C2SP tlog-tiles), checkpoints
//! (C2SP tlog-checkpoint) signed as notes (C2SP signed-note), and the proofs' checks.
//!
//! The tree is the one of Go's `x/mod/sumdb/tlog`, through `tlog_tiles` (its Rust port): every
//! complete subtree's hash is stored once, at a dense index ([`stored_hash_index`]), so a round
//! that appends k entries writes about 2k hashes and reads at most log₂ n of the old ones (the
//! *frontier*, [`frontier_indexes`]); a root, a proof or a tile reads O(log n) or 256 stored
//! hashes. Reading is two-phase, because the stores are asynchronous and `tlog_tiles` reads
//! through a synchronous [`HashReader`]: `*_indexes` say which stored hashes a computation
//! reads, the caller fetches them, and the computation runs over a [`Hashes`] map of them.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use tlog_tiles::{
    EMPTY_HASH, Hash, HashReader, node_hash, record_hash as leaf_hash, stored_hash_count, stored_hash_index,
};

/// Hashes per full tile (tile height 8), as C2SP tlog-tiles fixes it.
pub const TILE_WIDTH: u64 = 256;

/// The most proof hashes any tree of at most 2⁶³ entries needs.
pub const MAX_PROOF_HASHES: usize = 63;

/// What can go wrong in the tree, a tile, a note or a proof.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlogError {
    /// A stored hash the computation needs is missing.
    #[error("the stored hashes do not cover this tree")]
    Missing,
    /// A proof does not verify.
    #[error("the proof does not verify")]
    InvalidProof,
    /// Indexes or sizes out of range.
    #[error("{0}")]
    Range(String),
    /// A note, checkpoint, key or signature line is malformed.
    #[error("malformed: {0}")]
    Malformed(String),
    /// No valid signature of the expected key.
    #[error("the note has no valid signature of {0}")]
    Unsigned(String),
}

fn tlog(error: tlog_tiles::Error) -> TlogError {
    match error {
        tlog_tiles::Error::InvalidProof => TlogError::InvalidProof,
        tlog_tiles::Error::IndexesNotInTree => TlogError::Missing,
        other => TlogError::Range(other.to_string()),
    }
}

/// Stored hashes by index: what a store read, for a computation to run over.
#[derive(Debug, Default, Clone)]
pub struct Hashes(pub HashMap<u64, Hash>);

impl HashReader for Hashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes.iter().map(|i| self.0.get(i).copied().ok_or(tlog_tiles::Error::IndexesNotInTree)).collect()
    }
}

/// Records the indexes a computation reads, and fails it: the first of the two phases.
#[derive(Default)]
struct Recorder(std::cell::RefCell<Vec<u64>>);

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Err(tlog_tiles::Error::IndexesNotInTree)
    }
}

/// The indexes of the complete subtrees that make up a tree of `size` entries, left to right:
/// all that appending to it, or its root, needs.
pub fn frontier_indexes(size: u64) -> Vec<u64> {
    if size == 0 { Vec::new() } else { tlog_tiles::sub_tree_index(0, size, Vec::new()) }
}

/// The stored hashes that appending `entries` to a tree of `size` entries adds, as
/// `(index, hash)` in index order (they are contiguous, from [`stored_hash_count`]`(size)`).
/// `frontier` holds at least the hashes at [`frontier_indexes`]`(size)`.
pub fn append<'a>(
    size: u64,
    frontier: &Hashes,
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<(u64, Hash)>, TlogError> {
    let mut known =
        Hashes(frontier_indexes(size).into_iter().filter_map(|i| frontier.0.get(&i).map(|h| (i, *h))).collect());
    let mut added = Vec::new();
    for (offset, entry) in entries.into_iter().enumerate() {
        let n = size + offset as u64;
        let start = stored_hash_index(0, n);
        let hashes = tlog_tiles::stored_hashes(n, entry, &known).map_err(tlog)?;
        for (k, hash) in hashes.into_iter().enumerate() {
            known.0.insert(start + k as u64, hash);
            added.push((start + k as u64, hash));
        }
    }
    Ok(added)
}

/// As [`append`], from the entries' leaf hashes (a level-0 tile) instead of the entries.
pub fn append_leaves(size: u64, frontier: &Hashes, leaves: &[Hash]) -> Result<Vec<(u64, Hash)>, TlogError> {
    let mut known =
        Hashes(frontier_indexes(size).into_iter().filter_map(|i| frontier.0.get(&i).map(|h| (i, *h))).collect());
    let mut added = Vec::new();
    for (offset, leaf) in leaves.iter().enumerate() {
        let n = size + offset as u64;
        let start = stored_hash_index(0, n);
        let hashes = tlog_tiles::stored_hashes_for_record_hash(n, *leaf, &known).map_err(tlog)?;
        for (k, hash) in hashes.into_iter().enumerate() {
            known.0.insert(start + k as u64, hash);
            added.push((start + k as u64, hash));
        }
    }
    Ok(added)
}

/// The root of the first `size` entries; `hashes` holds what [`root_indexes`] names.
pub fn root(size: u64, hashes: &Hashes) -> Result<Hash, TlogError> {
    tlog_tiles::tree_hash(size, hashes).map_err(tlog)
}

/// What [`root`] reads.
pub fn root_indexes(size: u64) -> Vec<u64> {
    frontier_indexes(size)
}

/// What [`inclusion_proof`] reads.
pub fn inclusion_indexes(index: u64, size: u64) -> Vec<u64> {
    let recorder = Recorder::default();
    let _ = tlog_tiles::prove_record(size, index, &recorder);
    recorder.0.into_inner()
}

/// RFC 6962 PATH(index, D\[0:size\]), leaf to root.
pub fn inclusion_proof(index: u64, size: u64, hashes: &Hashes) -> Result<Vec<Hash>, TlogError> {
    if index >= size {
        return Err(TlogError::Range(format!("index {index} is not below size {size}")));
    }
    tlog_tiles::prove_record(size, index, hashes).map_err(tlog)
}

/// What [`consistency_proof`] reads.
pub fn consistency_indexes(from: u64, to: u64) -> Vec<u64> {
    if from == 0 || from >= to {
        return Vec::new();
    }
    let recorder = Recorder::default();
    let _ = tlog_tiles::prove_tree(to, from, &recorder);
    recorder.0.into_inner()
}

/// RFC 6962 PROOF(from, D\[0:to\]); empty for `from` 0 or `from` = `to`.
pub fn consistency_proof(from: u64, to: u64, hashes: &Hashes) -> Result<Vec<Hash>, TlogError> {
    if from > to {
        return Err(TlogError::Range(format!("size {from} is above size {to}")));
    }
    if from == 0 || from == to {
        return Ok(Vec::new());
    }
    tlog_tiles::prove_tree(to, from, hashes).map_err(tlog)
}

/// Checks an inclusion proof of `leaf` (a [`leaf_hash`]) at `index` under `root` of `size`.
pub fn verify_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf: Hash) -> Result<(), TlogError> {
    if index >= size || proof.len() > MAX_PROOF_HASHES {
        return Err(TlogError::InvalidProof);
    }
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).map_err(|_| TlogError::InvalidProof)
}

/// Checks that the tree of `from` entries with `from_root` is a prefix of the tree of `to`
/// entries with `to_root`.
pub fn verify_consistency(proof: &[Hash], from: u64, from_root: Hash, to: u64, to_root: Hash) -> Result<(), TlogError> {
    if from > to || proof.len() > MAX_PROOF_HASHES {
        return Err(TlogError::InvalidProof);
    }
    if from == to {
        return if proof.is_empty() && from_root == to_root { Ok(()) } else { Err(TlogError::InvalidProof) };
    }
    if from == 0 {
        return if proof.is_empty() && from_root == EMPTY_HASH { Ok(()) } else { Err(TlogError::InvalidProof) };
    }
    tlog_tiles::check_tree(&proof.to_vec(), to, to_root, from, from_root).map_err(|_| TlogError::InvalidProof)
}

/// The root of `entries`, computed from the entries alone (for audits and startup checks), in
/// O(log n) memory.
#[derive(Debug, Default, Clone)]
pub struct RootBuilder {
    /// Complete subtrees, largest first, with their sizes.
    stack: Vec<(u64, Hash)>,
    size: u64,
}

impl RootBuilder {
    /// Adds the next entry.
    pub fn push(&mut self, entry: &[u8]) {
        let mut node = (1u64, leaf_hash(entry));
        while let Some(&(width, left)) = self.stack.last() {
            if width != node.0 {
                break;
            }
            self.stack.pop();
            node = (width * 2, node_hash(left, node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// Entries so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the entries so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.stack.iter().rev().map(|(_, hash)| *hash);
        let Some(mut root) = hashes.next() else { return EMPTY_HASH };
        for left in hashes {
            root = node_hash(left, root);
        }
        root
    }
}

// ---------------------------------------------------------------------------------------------
// Tiles

/// A tile or entry bundle named by a C2SP tlog-tiles path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    /// Tile level (0 for leaf hashes; entry bundles are level 0).
    pub level: u8,
    /// Tile index within its level.
    pub index: u64,
    /// Hashes (or entries) it holds, 1..=256.
    pub width: u16,
    /// An entry bundle rather than a hash tile.
    pub entries: bool,
}

impl TilePath {
    /// Parses `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` (the part after `tile/`), strictly:
    /// decimals without leading zeros, `<N>` in 3-digit groups, all but the last prefixed `x`.
    pub fn parse(path: &str) -> Option<TilePath> {
        let (head, rest) = path.split_once('/')?;
        let (level, entries) = match head {
            "entries" => (0, true),
            level => (strict_decimal(level).filter(|l| *l <= 63)? as u8, false),
        };
        let (number, width) = match rest.split_once(".p/") {
            Some((number, width)) => {
                let width = strict_decimal(width).filter(|w| (1..=255).contains(w))? as u16;
                (number, width)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let groups: Vec<&str> = number.split('/').collect();
        let mut index: u64 = 0;
        for (i, group) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() { group.strip_prefix('x')? } else { group };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            index = index.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
        }
        // One canonical spelling per tile: no leading `x000/` groups.
        if groups.len() > 1 && groups[0] == "x000" {
            return None;
        }
        Some(TilePath { level, index, width, entries })
    }

    /// The path after `tile/`.
    pub fn to_path(&self) -> String {
        let mut n = self.index;
        let mut groups = vec![format!("{:03}", n % 1000)];
        while n >= 1000 {
            n /= 1000;
            groups.push(format!("x{:03}", n % 1000));
        }
        groups.reverse();
        let head = if self.entries { "entries".to_owned() } else { self.level.to_string() };
        let tail = if u64::from(self.width) == TILE_WIDTH { String::new() } else { format!(".p/{}", self.width) };
        format!("{head}/{}{tail}", groups.join("/"))
    }

    /// Entries a tree must hold for this tile to exist.
    pub fn needs_size(&self) -> Option<u64> {
        let leaves_per_hash = 1u64.checked_shl(8 * u32::from(self.level))?;
        self.index.checked_mul(TILE_WIDTH)?.checked_add(u64::from(self.width))?.checked_mul(leaves_per_hash)
    }

    /// Whether a tree of `size` entries serves it.
    pub fn served_at(&self, size: u64) -> bool {
        self.needs_size().is_some_and(|needs| needs <= size)
    }

    /// The entries an entry bundle holds, `[start, end)`.
    pub fn entry_range(&self) -> (u64, u64) {
        let start = self.index * TILE_WIDTH;
        (start, start + u64::from(self.width))
    }

    /// The stored hashes a hash tile holds, in order; each is the root of 256^level entries.
    pub fn hash_indexes(&self) -> Vec<u64> {
        let start = self.index * TILE_WIDTH;
        (0..u64::from(self.width)).map(|i| stored_hash_index(8 * self.level, start + i)).collect()
    }
}

fn strict_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > 20
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// A tile's bytes: its hashes, concatenated.
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

/// An entry bundle: each entry as a big-endian u16 length, then its bytes.
pub fn bundle_bytes<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TlogError> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| TlogError::Range("an entry over 65535 bytes".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries.
pub fn parse_bundle(mut bytes: &[u8]) -> Result<Vec<&[u8]>, TlogError> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(2).ok_or(TlogError::Malformed("entry bundle".into()))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (entry, rest) = rest.split_at_checked(len).ok_or(TlogError::Malformed("entry bundle".into()))?;
        entries.push(entry);
        bytes = rest;
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and notes

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Signature type of Ed25519 note signatures (C2SP signed-note).
pub const ED25519_TYPE: u8 = 0x01;

/// A checkpoint's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The log's name.
    pub origin: String,
    /// Entries in the tree.
    pub size: u64,
    /// Its root.
    pub root: Hash,
}

impl Checkpoint {
    /// `<origin>\n<size>\n<base64 root>\n`, no extension lines.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root.0))
    }

    /// Parses a body (extension lines are refused: Cardinal writes none).
    pub fn parse_body(body: &str) -> Result<Checkpoint, TlogError> {
        let malformed = || TlogError::Malformed("checkpoint body".into());
        let mut lines = body.strip_suffix('\n').ok_or_else(malformed)?.split('\n');
        let (Some(origin), Some(size), Some(root), None) = (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed());
        };
        let size = strict_decimal(size).ok_or_else(malformed)?;
        let hash = decode_hash(root).map_err(|_| malformed())?;
        // One spelling per checkpoint: the canonical base64 of the root.
        if origin.is_empty() || encode_hash(&hash) != root {
            return Err(malformed());
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root: hash })
    }
}

/// `SHA-256(name ‖ 0x0A ‖ type ‖ key)[:4]` as a big-endian u32.
pub fn key_id(name: &str, kind: u8, key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0x0a, kind]);
    hasher.update(key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A verifier key: `<name>+<8 hex key ID>+<base64(type ‖ key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// Key name (a log's origin, a witness's name).
    pub name: String,
    /// Key ID.
    pub id: u32,
    /// Signature type (0x01 Ed25519 note signature, 0x04 Ed25519 cosignature/v1).
    pub kind: u8,
    /// The Ed25519 public key.
    pub key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// For a key of this name and type.
    pub fn new(name: &str, kind: u8, key: ed25519_dalek::VerifyingKey) -> VerifierKey {
        VerifierKey { name: name.to_owned(), id: key_id(name, kind, key.as_bytes()), kind, key }
    }

    /// Parses one, splitting at the first two `+` (the base64 may hold `+`); the ID must be
    /// the one the name and key give.
    pub fn parse(text: &str) -> Result<VerifierKey, TlogError> {
        let malformed = || TlogError::Malformed("verifier key".into());
        let (name, rest) = text.split_once('+').ok_or_else(malformed)?;
        let (id, key) = rest.split_once('+').ok_or_else(malformed)?;
        if name.is_empty() || name.contains(char::is_whitespace) || id.len() != 8 {
            return Err(malformed());
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| malformed())?;
        let key = B64.decode(key).map_err(|_| malformed())?;
        let (&kind, key) = key.split_first().ok_or_else(malformed)?;
        let key: [u8; 32] = key.try_into().map_err(|_| malformed())?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| malformed())?;
        let parsed = VerifierKey::new(name, kind, key);
        if parsed.id != id || !matches!(kind, ED25519_TYPE | COSIGNATURE_TYPE) {
            return Err(malformed());
        }
        Ok(parsed)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![self.kind];
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(key))
    }
}

/// One signature line of a note, decoded: `— <name> <base64(key ID ‖ signature)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub id: u32,
    /// What follows the key ID.
    pub signature: Vec<u8>,
}

impl SignatureLine {
    /// The line, with its newline.
    pub fn to_line(&self) -> String {
        let mut bytes = self.id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, B64.encode(bytes))
    }

    /// Parses a line, without its newline.
    pub fn parse(line: &str) -> Result<SignatureLine, TlogError> {
        let malformed = || TlogError::Malformed("signature line".into());
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(malformed)?;
        let (name, signature) = rest.split_once(' ').ok_or_else(malformed)?;
        let bytes = B64.decode(signature).map_err(|_| malformed())?;
        if name.is_empty() || bytes.len() < 5 {
            return Err(malformed());
        }
        let id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(SignatureLine { name: name.to_owned(), id, signature: bytes[4..].to_vec() })
    }
}

/// A signed note, split: its text (ending in a newline) and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<SignatureLine>,
}

impl Note {
    /// Parses a note: text, a blank line, one or more signature lines (C2SP signed-note).
    pub fn parse(note: &str) -> Result<Note, TlogError> {
        let malformed = || TlogError::Malformed("note".into());
        if note.len() > 1_000_000 || note.contains('\r') {
            return Err(malformed());
        }
        let split = note.rfind("\n\n").ok_or_else(malformed)?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        let sigs = sigs.strip_suffix('\n').ok_or_else(malformed)?;
        let signatures = sigs.split('\n').map(SignatureLine::parse).collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(malformed());
        }
        Ok(Note { text: text.to_owned(), signatures })
    }

    /// The note's bytes.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
        }
        out
    }

    /// Whether a line of `key` (name and ID) is there and verifies. A line of the key's name
    /// and ID that fails is an error, not a skip (C2SP: a verifier must reject it).
    pub fn verify(&self, key: &VerifierKey) -> Result<bool, TlogError> {
        let mut found = false;
        for line in self.signatures.iter().filter(|line| line.name == key.name && line.id == key.id) {
            let valid = match key.kind {
                ED25519_TYPE => ed25519_dalek::Signature::from_slice(&line.signature)
                    .is_ok_and(|signature| key.key.verify_strict(self.text.as_bytes(), &signature).is_ok()),
                COSIGNATURE_TYPE => verify_cosignature(key, &self.text, &line.signature).is_ok(),
                _ => false,
            };
            if !valid {
                return Err(TlogError::Unsigned(key.name.clone()));
            }
            found = true;
        }
        Ok(found)
    }
}

/// A log's signing key: one Ed25519 key, named by each origin it signs for.
#[derive(Clone)]
pub struct LogKey {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogKey(…)")
    }
}

impl LogKey {
    /// Wraps a key.
    pub fn new(key: ed25519_dalek::SigningKey) -> LogKey {
        LogKey { key }
    }

    /// Its public half.
    pub fn public(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// Its verifier key under `origin`.
    pub fn vkey(&self, origin: &str) -> VerifierKey {
        VerifierKey::new(origin, ED25519_TYPE, self.key.verifying_key())
    }

    /// A checkpoint signed as a note: body, blank line, the log's signature line.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let line = SignatureLine {
            name: checkpoint.origin.clone(),
            id: self.vkey(&checkpoint.origin).id,
            signature: self.key.sign(body.as_bytes()).to_bytes().to_vec(),
        };
        Note { text: body, signatures: vec![line] }.to_text()
    }
}

/// A checkpoint note verified with the log's key: the checkpoint and the note.
pub fn open_checkpoint(note: &str, log: &VerifierKey) -> Result<(Checkpoint, Note), TlogError> {
    let note = Note::parse(note)?;
    if !note.verify(log)? {
        return Err(TlogError::Unsigned(log.name.clone()));
    }
    let checkpoint = Checkpoint::parse_body(&note.text)?;
    if checkpoint.origin != log.name {
        return Err(TlogError::Malformed(format!("a checkpoint of {}, not {}", checkpoint.origin, log.name)));
    }
    Ok((checkpoint, note))
}

// ---------------------------------------------------------------------------------------------
// Cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1)

/// Signature type of Ed25519 `cosignature/v1`.
pub const COSIGNATURE_TYPE: u8 = 0x04;

/// What a cosignature signs: `cosignature/v1\ntime <t>\n` ‖ the checkpoint body.
pub fn cosigned_message(timestamp: u64, body: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A witness's cosignature line over `body` at `timestamp` (Unix seconds).
pub fn cosign(name: &str, key: &ed25519_dalek::SigningKey, timestamp: u64, body: &str) -> SignatureLine {
    let vkey = VerifierKey::new(name, COSIGNATURE_TYPE, key.verifying_key());
    let mut signature = timestamp.to_be_bytes().to_vec();
    signature.extend_from_slice(&key.sign(&cosigned_message(timestamp, body)).to_bytes());
    SignatureLine { name: name.to_owned(), id: vkey.id, signature }
}

/// Checks a cosignature (what follows the key ID: timestamp ‖ signature); returns its time.
pub fn verify_cosignature(key: &VerifierKey, body: &str, signature: &[u8]) -> Result<u64, TlogError> {
    let (time, signature) = signature.split_at_checked(8).ok_or(TlogError::InvalidProof)?;
    let time = u64::from_be_bytes(time.try_into().map_err(|_| TlogError::InvalidProof)?);
    let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| TlogError::InvalidProof)?;
    key.key.verify_strict(&cosigned_message(time, body), &signature).map_err(|_| TlogError::InvalidProof)?;
    Ok(time)
}

/// Base64 of a hash, as proofs and checkpoints carry it.
pub fn encode_hash(hash: &Hash) -> String {
    B64.encode(hash.0)
}

/// A hash from its base64.
pub fn decode_hash(text: &str) -> Result<Hash, TlogError> {
    B64.decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(Hash)
        .ok_or(TlogError::Malformed("hash".into()))
}

/// The JSON of the `/v1/transparency` endpoints and of `proofs=true` lookups.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// `GET /v1/transparency`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct TransparencyInfo {
        /// The app's log's origin.
        pub origin: String,
        /// The log's verifier key (C2SP signed-note vkey).
        pub vkey: String,
        /// The newest checkpoint's size.
        pub size: u64,
        /// Configured witnesses.
        pub witnesses: Vec<WitnessInfo>,
        /// Cosignatures a checkpoint needs.
        pub quorum: usize,
    }

    /// A witness.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct WitnessInfo {
        /// Its name.
        pub name: String,
        /// Its cosignature vkey.
        pub vkey: String,
    }

    /// An inclusion or consistency proof: base64 hashes.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct ProofResponse {
        /// RFC 6962 proof hashes, base64.
        pub proof: Vec<String>,
    }

    /// A card's place in the log, on a `proofs=true` lookup.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct CardLog {
        /// Index of its `card_published` entry.
        pub index: u64,
        /// The entry's bytes, base64.
        pub entry: String,
        /// Its inclusion proof under the answer's checkpoint, base64 hashes.
        pub inclusion: Vec<String>,
    }
}

#[cfg(test)]
mod tests;
