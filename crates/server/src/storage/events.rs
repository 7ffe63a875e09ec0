//! Events before and after the log: a write's draft, and the sealing that gives it its place in
//! the app's hash chain. Every store seals the same way, so every log verifies the same way.

use std::collections::BTreeMap;

use cardinal_card::log::{EventBody, EventKind, GENESIS_HASH, chain_hash};

use super::StorageError;
use crate::domain::{AppId, CardId, Identity};

/// An event to append, before the store gives it a sequence number and a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// What happened.
    pub kind: EventKind,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The card concerned.
    pub card_id: Option<CardId>,
    /// The identity concerned.
    pub identity: Option<Identity>,
    /// Who did it.
    pub actor: String,
    /// Further facts.
    pub detail: BTreeMap<String, String>,
}

/// The hash an app's log starts from.
pub const GENESIS: [u8; 32] = GENESIS_HASH;

/// A draft with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    /// Its position.
    pub seq: i64,
    /// The canonical JSON body.
    pub body: String,
    /// The hash it links to.
    pub prev_hash: [u8; 32],
    /// SHA-256(prev_hash ‖ body).
    pub hash: [u8; 32],
}

/// Gives a draft the sequence number `seq` and links it to the log's head `head`.
pub fn seal(app_id: &AppId, seq: i64, head: &[u8], draft: &EventDraft) -> Result<SealedEvent, StorageError> {
    let prev_hash: [u8; 32] =
        head.try_into().map_err(|_| StorageError::Corrupt("an event log head is not 32 bytes".into()))?;
    let body = EventBody {
        app: app_id.as_str().to_owned(),
        seq,
        at: draft.at_ms,
        kind: draft.kind,
        card_id: draft.card_id.as_ref().map(|id| id.as_str().to_owned()),
        identity: draft.identity.as_ref().map(|identity| identity.as_str().to_owned()),
        actor: draft.actor.clone(),
        detail: draft.detail.clone(),
    }
    .canonical_bytes();
    let hash = chain_hash(&prev_hash, &body);
    let body = String::from_utf8(body).map_err(|e| StorageError::Other(format!("canonical event bytes: {e}")))?;
    Ok(SealedEvent { seq, body, prev_hash, hash })
}
