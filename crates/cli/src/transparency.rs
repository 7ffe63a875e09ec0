//! `cardinal audit` and `cardinal monitor`: checking a Cardinal transparency log from outside,
//! over HTTP only (docs/TRANSPARENCY.md §6).
//!
//! Both keep, in their `--state` file, the checkpoint they verified last with the *frontier* of
//! its tree (the hashes of its complete subtrees, at most log₂ n): appending the new entries to
//! that frontier must give the new checkpoint's root, which proves the new tree extends the kept
//! one without asking the server for a consistency proof.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cardinal_card::log::EventBody;
use cardinal_card::tlog::{self, Hash, Hashes, TilePath, VerifierKey};
use cardinal_client::Client;
use serde::{Deserialize, Serialize};

use super::{Failure, exit, fail};

/// What both commands verify the log with.
pub struct LogArgs<'a> {
    /// The app.
    pub app: &'a str,
    /// The log's vkey.
    pub vkey: &'a str,
    /// Witness vkeys.
    pub witnesses: &'a [String],
    /// Cosignatures required.
    pub quorum: usize,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure { code: exit::VERIFICATION, message: message.into() }
}

/// The kept state: the newest verified checkpoint and its tree's frontier.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    origin: String,
    size: u64,
    root: String,
    frontier: Vec<String>,
}

impl State {
    fn read(path: &Path) -> Result<Option<State>, Failure> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| fail(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(format!("{}: {e}", path.display()))),
        }
    }

    /// Written beside and renamed over, so a crash never leaves half a state.
    fn write(&self, path: &Path) -> Result<(), Failure> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| fail(format!("{}: {e}", path.display())))
    }

    fn frontier(&self) -> Result<Hashes, Failure> {
        let indexes = tlog::frontier_indexes(self.size);
        if indexes.len() != self.frontier.len() {
            return Err(fail("the state file's frontier does not match its size"));
        }
        let hashes = self.frontier.iter().map(|h| tlog::decode_hash(h).map_err(|e| fail(format!("state: {e}"))));
        Ok(Hashes(indexes.into_iter().zip(hashes.collect::<Result<Vec<_>, _>>()?).collect()))
    }
}

fn new_state(origin: &str, size: u64, root: Hash, hashes: &Hashes) -> Result<State, Failure> {
    let frontier = tlog::frontier_indexes(size)
        .into_iter()
        .map(|i| hashes.0.get(&i).map(tlog::encode_hash).ok_or_else(|| fail("a frontier hash is missing")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(State { origin: origin.to_owned(), size, root: tlog::encode_hash(&root), frontier })
}

/// Fetches and verifies the checkpoint: the log's signature and, with a quorum, enough valid
/// cosignatures of the given witnesses.
async fn checkpoint(client: &Client, args: &LogArgs<'_>) -> Result<tlog::Checkpoint, Failure> {
    let vkey = VerifierKey::parse(args.vkey).map_err(|e| fail(format!("--vkey: {e}")))?;
    let note = client.get_bytes(&format!("/tlog/{}/checkpoint", args.app), false).await?;
    let note = String::from_utf8(note).map_err(|_| failed("the checkpoint is not UTF-8"))?;
    let (checkpoint, note) = tlog::open_checkpoint(&note, &vkey).map_err(|e| failed(format!("checkpoint: {e}")))?;
    let mut cosigned = 0;
    for witness in args.witnesses {
        let key = VerifierKey::parse(witness).map_err(|e| fail(format!("--witness {witness}: {e}")))?;
        if note.verify(&key).map_err(|e| failed(format!("cosignature of {}: {e}", key.name)))? {
            cosigned += 1;
        }
    }
    if cosigned < args.quorum {
        return Err(failed(format!("{cosigned} valid cosignatures, the quorum is {}", args.quorum)));
    }
    Ok(checkpoint)
}

/// Entries `[start, end)` from the bundles.
async fn entries(client: &Client, app: &str, start: u64, end: u64) -> Result<Vec<Vec<u8>>, Failure> {
    let mut out = Vec::new();
    let mut tile = start / tlog::TILE_WIDTH;
    while tile * tlog::TILE_WIDTH < end {
        let width = (end - tile * tlog::TILE_WIDTH).min(tlog::TILE_WIDTH) as u16;
        let path = TilePath { level: 0, index: tile, width, entries: true };
        let bytes = client.get_bytes(&format!("/tlog/{app}/tile/{}", path.to_path()), true).await?;
        let bundle = tlog::parse_bundle(&bytes).map_err(|e| failed(format!("bundle {}: {e}", path.to_path())))?;
        if bundle.len() != usize::from(width) {
            return Err(failed(format!("bundle {} holds {} entries", path.to_path(), bundle.len())));
        }
        for (i, entry) in bundle.into_iter().enumerate() {
            if tile * tlog::TILE_WIDTH + i as u64 >= start {
                out.push(entry.to_vec());
            }
        }
        tile += 1;
    }
    Ok(out)
}

/// A hash tile, checked to be as wide as asked.
async fn tile(client: &Client, app: &str, path: TilePath) -> Result<Vec<Hash>, Failure> {
    let bytes = client.get_bytes(&format!("/tlog/{app}/tile/{}", path.to_path()), false).await?;
    if bytes.len() != 32 * usize::from(path.width) {
        return Err(failed(format!("tile {} has {} bytes", path.to_path(), bytes.len())));
    }
    Ok(bytes.chunks(32).map(|c| Hash(c.try_into().unwrap_or([0; 32]))).collect())
}

/// Checks the new tree against the kept state: same size, same root; smaller, a rollback;
/// larger, the kept root must be the root of the new tree's prefix (recomputed by the caller).
fn against_kept(kept: &Option<State>, origin: &str, size: u64, root: Hash) -> Result<(), Failure> {
    let Some(kept) = kept else { return Ok(()) };
    if kept.origin != origin {
        return Err(fail(format!("the state file is of {}, not {origin}", kept.origin)));
    }
    if size < kept.size {
        return Err(failed(format!("rollback: the log shows size {size}, {} was verified before", kept.size)));
    }
    if size == kept.size && tlog::encode_hash(&root) != kept.root {
        return Err(failed(format!("fork: size {size} has another root than the one verified before")));
    }
    Ok(())
}

/// `cardinal audit`.
pub async fn audit(
    client: &Client,
    args: &LogArgs<'_>,
    with_entries: bool,
    state: Option<&PathBuf>,
) -> Result<(), Failure> {
    let checkpoint = checkpoint(client, args).await?;
    let (origin, size) = (checkpoint.origin.clone(), checkpoint.size);
    let kept = match state {
        Some(path) => State::read(path)?,
        None => None,
    };
    against_kept(&kept, &origin, size, checkpoint.root)?;
    // The whole tree, from the entries (with a token) or from the level-0 tiles.
    let mut hashes = Hashes::default();
    let mut all_entries = Vec::new();
    if with_entries {
        all_entries = entries(client, args.app, 0, size).await?;
        for added in
            tlog::append(0, &hashes, all_entries.iter().map(Vec::as_slice)).map_err(|e| failed(e.to_string()))?
        {
            hashes.0.insert(added.0, added.1);
        }
    } else {
        let mut leaves = Vec::new();
        let mut index = 0;
        while index * tlog::TILE_WIDTH < size {
            let width = (size - index * tlog::TILE_WIDTH).min(tlog::TILE_WIDTH) as u16;
            leaves.extend(tile(client, args.app, TilePath { level: 0, index, width, entries: false }).await?);
            index += 1;
        }
        for added in tlog::append_leaves(0, &hashes, &leaves).map_err(|e| failed(e.to_string()))? {
            hashes.0.insert(added.0, added.1);
        }
        eprintln!("no --token: the tree is recomputed from the hash tiles, the entries are not read");
    }
    let root = tlog::root(size, &hashes).map_err(|e| failed(e.to_string()))?;
    if root != checkpoint.root {
        return Err(failed(format!(
            "the entries give root {}, the checkpoint says {}",
            tlog::encode_hash(&root),
            tlog::encode_hash(&checkpoint.root)
        )));
    }
    // Every tile of every level, full and partial, is the computed one.
    let mut level = 0u8;
    while (size >> (8 * u32::from(level))) > 0 {
        let hashes_at_level = size >> (8 * u32::from(level));
        let mut index = 0;
        while index * tlog::TILE_WIDTH < hashes_at_level {
            let width = (hashes_at_level - index * tlog::TILE_WIDTH).min(tlog::TILE_WIDTH) as u16;
            let path = TilePath { level, index, width, entries: false };
            let served = tile(client, args.app, path).await?;
            let expected: Vec<Hash> = path.hash_indexes().iter().filter_map(|i| hashes.0.get(i).copied()).collect();
            if served != expected {
                return Err(failed(format!("tile {} is not the tile of the entries", path.to_path())));
            }
            index += 1;
        }
        level += 1;
    }
    if let Some(kept) = &kept {
        let prefix = tlog::root(kept.size, &hashes).map_err(|e| failed(e.to_string()))?;
        if tlog::encode_hash(&prefix) != kept.root {
            return Err(failed(format!(
                "fork: the log's first {} entries are not the ones verified before",
                kept.size
            )));
        }
    }
    if with_entries {
        crate::replay::replay(args.app, &all_entries).map_err(|violation| failed(violation.to_string()))?;
        compare_with_admin_events(client, &all_entries).await?;
    }
    if let Some(path) = state {
        new_state(&origin, size, root, &hashes)?.write(path)?;
    }
    println!("ok origin={origin} size={size} root={}", tlog::encode_hash(&root));
    Ok(())
}

/// With an admin token, `GET /v1/admin/events` must hold the same bodies, and its hash chain
/// must be the one the entries give. With another token (403) there is nothing to compare.
async fn compare_with_admin_events(client: &Client, entries: &[Vec<u8>]) -> Result<(), Failure> {
    let mut previous = cardinal_card::log::GENESIS_HASH;
    let mut after = 0i64;
    while (after as usize) < entries.len() {
        let page = match client.events(after, 1000).await {
            Ok(page) => page,
            Err(cardinal_client::ClientError::Api { status: 403, .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        if page.events.is_empty() {
            return Err(failed(format!("/v1/admin/events ends at {after}, the log holds {}", entries.len())));
        }
        for event in &page.events {
            let index = (event.seq - 1) as usize;
            let entry = entries.get(index).ok_or_else(|| failed(format!("event {} is beyond the log", event.seq)))?;
            let hash = cardinal_card::log::chain_hash(&previous, entry);
            if event.event.canonical_bytes() != *entry
                || event.prev_hash != hex_of(&previous)
                || event.hash != hex_of(&hash)
                || event.seq != after + 1
            {
                return Err(failed(format!(
                    "event {} of /v1/admin/events is not entry {index} and its chain",
                    event.seq
                )));
            }
            previous = hash;
            after = event.seq;
        }
    }
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `cardinal monitor`: prints every entry since the kept checkpoint about a watched identity.
pub async fn monitor(
    client: &Client,
    args: &LogArgs<'_>,
    identities: &[String],
    expect: &[String],
    state: &Path,
) -> Result<(), Failure> {
    let checkpoint = checkpoint(client, args).await?;
    let kept = State::read(state)?;
    against_kept(&kept, &checkpoint.origin, checkpoint.size, checkpoint.root)?;
    let (from, frontier) = match &kept {
        Some(kept) => (kept.size, kept.frontier()?),
        None => (0, Hashes::default()),
    };
    let new = entries(client, args.app, from, checkpoint.size).await?;
    let mut hashes = frontier.clone();
    for (index, hash) in
        tlog::append(from, &frontier, new.iter().map(Vec::as_slice)).map_err(|e| failed(e.to_string()))?
    {
        hashes.0.insert(index, hash);
    }
    let root = tlog::root(checkpoint.size, &hashes).map_err(|e| failed(e.to_string()))?;
    if root != checkpoint.root {
        return Err(failed(
            "the entries since the kept checkpoint do not extend it to the new one (a fork, or altered entries)",
        ));
    }
    let watched: BTreeSet<&str> = identities.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = expect.iter().map(String::as_str).collect();
    let mut unexpected: BTreeMap<String, String> = BTreeMap::new();
    for entry in &new {
        let body: EventBody = serde_json::from_slice(entry).map_err(|_| failed("an entry is not an event body"))?;
        let Some(identity) = body.identity.as_deref().filter(|i| watched.contains(i)) else { continue };
        println!("{}", String::from_utf8_lossy(entry));
        if let Some(card) = &body.card_id
            && !expect.is_empty()
            && !expected.contains(card.as_str())
        {
            unexpected.insert(card.clone(), identity.to_owned());
        }
    }
    if let Some((card, identity)) = unexpected.into_iter().next() {
        // The kept checkpoint does not move: the alarm repeats until the owner looks.
        return Err(failed(format!("card {card} of {identity} is not among --expect")));
    }
    new_state(&checkpoint.origin, checkpoint.size, root, &hashes)?.write(state)
}
