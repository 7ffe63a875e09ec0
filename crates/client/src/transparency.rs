//! Transparency for lookups: with the log's vkey pinned, every lookup asks for proofs and the
//! client verifies the checkpoint (the log's signature, the witnesses' quorum), each card's
//! `card_published` entry and its inclusion proof, and that each checkpoint it sees is
//! consistent with the newest it verified before (kept in memory, and in a file if asked).

use std::path::PathBuf;

use cardinal_card::log::{EventBody, EventKind};
use cardinal_card::tlog::wire::{CardLog, ProofResponse};
use cardinal_card::tlog::{self, Checkpoint, Hash, VerifierKey};
use cardinal_card::wire::CardView;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

fn failed(message: impl Into<String>) -> ClientError {
    ClientError::Transparency(message.into())
}

/// What the builder was told to trust.
#[derive(Debug, Clone)]
pub(crate) struct LogPins {
    pub vkey: String,
    pub witnesses: Vec<String>,
    pub quorum: usize,
    pub state_file: Option<PathBuf>,
}

/// The newest checkpoint verified so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptCheckpoint {
    /// The log's origin.
    pub origin: String,
    /// Its size.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
}

pub(crate) struct LogTrust {
    vkey: VerifierKey,
    witnesses: Vec<VerifierKey>,
    quorum: usize,
    state_file: Option<PathBuf>,
    kept: tokio::sync::Mutex<Option<KeptCheckpoint>>,
}

impl LogTrust {
    pub fn new(pins: LogPins) -> Result<LogTrust, ClientError> {
        let vkey = VerifierKey::parse(&pins.vkey).map_err(|e| ClientError::InvalidInput(format!("log vkey: {e}")))?;
        let witnesses = pins
            .witnesses
            .iter()
            .map(|w| VerifierKey::parse(w).map_err(|e| ClientError::InvalidInput(format!("witness vkey {w}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if pins.quorum > witnesses.len() {
            return Err(ClientError::InvalidInput("the witness quorum exceeds the witnesses".into()));
        }
        let kept = match &pins.state_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|e| ClientError::InvalidInput(format!("{}: {e}", path.display())))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ClientError::InvalidInput(format!("{}: {e}", path.display()))),
            },
            None => None,
        };
        Ok(LogTrust {
            vkey,
            witnesses,
            quorum: pins.quorum,
            state_file: pins.state_file,
            kept: tokio::sync::Mutex::new(kept),
        })
    }

    /// The newest checkpoint verified so far.
    pub async fn kept(&self) -> Option<KeptCheckpoint> {
        self.kept.lock().await.clone()
    }

    fn open(&self, note: &str) -> Result<Checkpoint, ClientError> {
        let (checkpoint, note) =
            tlog::open_checkpoint(note, &self.vkey).map_err(|e| failed(format!("checkpoint: {e}")))?;
        let mut cosigned = 0;
        for witness in &self.witnesses {
            if note.verify(witness).map_err(|e| failed(format!("cosignature: {e}")))? {
                cosigned += 1;
            }
        }
        if cosigned < self.quorum {
            return Err(failed(format!("{cosigned} valid cosignatures, the quorum is {}", self.quorum)));
        }
        Ok(checkpoint)
    }

    /// Verifies a `proofs=true` answer's checkpoint against the kept one; `consistency` fetches
    /// a proof between two sizes. Keeps the larger.
    pub async fn accept<F, Fut>(&self, note: &str, consistency: F) -> Result<Checkpoint, ClientError>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: std::future::Future<Output = Result<ProofResponse, ClientError>>,
    {
        let checkpoint = self.open(note)?;
        let mut kept = self.kept.lock().await;
        if let Some(old) = kept.as_ref() {
            let old_root = tlog::decode_hash(&old.root).map_err(|_| failed("the kept root is malformed"))?;
            if old.origin != checkpoint.origin {
                return Err(failed(format!(
                    "a checkpoint of {}, the kept one is of {}",
                    checkpoint.origin, old.origin
                )));
            }
            let (small, small_root, large, large_root) = if checkpoint.size >= old.size {
                (old.size, old_root, checkpoint.size, checkpoint.root)
            } else {
                (checkpoint.size, checkpoint.root, old.size, old_root)
            };
            if small == large {
                if small_root != large_root {
                    return Err(failed(format!("two roots for size {small}: the log forked")));
                }
            } else {
                let proof = decode_proof(&consistency(small, large).await?.proof)?;
                tlog::verify_consistency(&proof, small, small_root, large, large_root).map_err(|_| {
                    failed(format!("checkpoints {small} and {large} are not consistent: the log forked"))
                })?;
            }
            if checkpoint.size <= old.size {
                return Ok(checkpoint);
            }
        }
        let new = KeptCheckpoint {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: tlog::encode_hash(&checkpoint.root),
        };
        if let Some(path) = &self.state_file {
            let tmp = path.with_extension("tmp");
            let text = serde_json::to_string(&new).map_err(|e| failed(e.to_string()))?;
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| ClientError::InvalidInput(format!("{}: {e}", path.display())))?;
        }
        *kept = Some(new);
        Ok(checkpoint)
    }
}

fn decode_proof(proof: &[String]) -> Result<Vec<Hash>, ClientError> {
    proof.iter().map(|h| tlog::decode_hash(h).map_err(|_| failed("a proof hash is malformed"))).collect()
}

/// A card of a `proofs=true` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ProvedCard {
    #[serde(flatten)]
    pub view: CardView,
    pub log: CardLog,
}

/// A `proofs=true` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ProvedLookup {
    pub checkpoint: String,
    pub identities: std::collections::BTreeMap<String, Vec<ProvedCard>>,
}

/// Checks that a card's entry is its publication in this app's log, proved under `checkpoint`.
pub fn verify_card_log(
    checkpoint: &Checkpoint,
    card_id: &str,
    identity: &str,
    log: &CardLog,
) -> Result<(), ClientError> {
    let entry = cardinal_card::b64::decode_std(&log.entry).ok_or_else(|| failed("an entry is not base64"))?;
    let body: EventBody = serde_json::from_slice(&entry).map_err(|_| failed("an entry is not an event"))?;
    let app = checkpoint.origin.rsplit('/').next().unwrap_or_default();
    if body.kind != EventKind::CardPublished
        || body.app != app
        || body.card_id.as_deref() != Some(card_id)
        || body.identity.as_deref() != Some(identity)
        || body.seq != log.index as i64 + 1
    {
        return Err(failed(format!("entry {} is not the publication of card {card_id} of {identity:?}", log.index)));
    }
    let proof = decode_proof(&log.inclusion)?;
    tlog::verify_inclusion(&proof, checkpoint.size, checkpoint.root, log.index, tlog::leaf_hash(&entry))
        .map_err(|_| failed(format!("the inclusion proof of card {card_id} does not verify")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;
    use cardinal_card::tlog::Hashes;

    /// One card's proof checked in a log of a million entries (20 proof hashes), timed: the
    /// figure BENCHMARKS.md quotes. An unoptimised build bounds the release one from above.
    #[test]
    fn one_cards_publication_proof_verifies_in_well_under_a_millisecond() {
        let size: u64 = 1 << 20;
        let card_id = "ab".repeat(32);
        let index = 777_777;
        let entry = |i: u64| {
            if i == index {
                let body = EventBody {
                    app: "chat".into(),
                    seq: i as i64 + 1,
                    at: 1,
                    kind: EventKind::CardPublished,
                    card_id: Some(card_id.clone()),
                    identity: Some("alice".into()),
                    actor: "user:alice".into(),
                    detail: Default::default(),
                };
                body.canonical_bytes()
            } else {
                format!("e{i}").into_bytes()
            }
        };
        let entries: Vec<Vec<u8>> = (0..size).map(entry).collect();
        let hashes = Hashes(
            tlog::append(0, &Hashes::default(), entries.iter().map(Vec::as_slice)).unwrap().into_iter().collect(),
        );
        let root = tlog::root(size, &hashes).unwrap();
        let proof = tlog::inclusion_proof(index, size, &hashes).unwrap();
        let checkpoint = Checkpoint { origin: "cards.example.com/tlog/chat".into(), size, root };
        let log = CardLog {
            index,
            entry: cardinal_card::b64::encode_std(&entries[index as usize]),
            inclusion: proof.iter().map(tlog::encode_hash).collect(),
        };
        let runs = 2000;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            verify_card_log(&checkpoint, &card_id, "alice", &log).unwrap();
        }
        let each = started.elapsed() / runs;
        eprintln!("one card's log entry and inclusion proof (size 2^20, {} hashes) verify in {each:?}", proof.len());
        assert!(each < std::time::Duration::from_millis(1), "{each:?}");
        let wrong = CardLog { index: index + 1, ..log };
        assert!(verify_card_log(&checkpoint, &card_id, "alice", &wrong).is_err());
    }
}
