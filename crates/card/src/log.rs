//! The directory's event log: canonical bytes of an event, and the hash chain over them.
//!
//! Every change to an app's directory is one event with a gap-free sequence number. An event's
//! **canonical bytes** are the compact JSON of [`EventBody`] with its fields in declaration order
//! and `detail` keys sorted. Its **hash** is `SHA-256(previous hash || canonical bytes)`, the
//! previous hash of the first event being 32 zero bytes. Altering, dropping or reordering any
//! event therefore changes every later hash; a transparency log can be built over these hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The hash that the first event of an app links to.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An app was created.
    AppCreated,
    /// An API key was registered.
    KeyAdded,
    /// An API key was revoked.
    KeyRevoked,
    /// A card was published (a root card or a rotation).
    CardPublished,
    /// A card was superseded by a rotation.
    CardSuperseded,
    /// A chain of cards was revoked, by its owner or by an admin.
    ChainRevoked,
    /// An admin erased an identity's Keyknox entries (a departed user's backups and group keys).
    KeyknoxErased,
}

impl EventKind {
    /// The snake_case name, as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AppCreated => "app_created",
            EventKind::KeyAdded => "key_added",
            EventKind::KeyRevoked => "key_revoked",
            EventKind::CardPublished => "card_published",
            EventKind::CardSuperseded => "card_superseded",
            EventKind::ChainRevoked => "chain_revoked",
            EventKind::KeyknoxErased => "keyknox_erased",
        }
    }

    /// The kind named `name`, as [`EventKind::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Self> {
        [
            EventKind::AppCreated,
            EventKind::KeyAdded,
            EventKind::KeyRevoked,
            EventKind::CardPublished,
            EventKind::CardSuperseded,
            EventKind::ChainRevoked,
            EventKind::KeyknoxErased,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

/// One event, as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventBody {
    /// The app the event belongs to.
    pub app: String,
    /// Position in the app's log, from 1, without gaps.
    pub seq: i64,
    /// When, in Unix milliseconds.
    pub at: i64,
    /// What happened.
    pub kind: EventKind,
    /// The card concerned, if any.
    pub card_id: Option<String>,
    /// The identity concerned, if any.
    pub identity: Option<String>,
    /// Who did it: `user:<identity>`, `admin:<sub>`, `cli`, `bootstrap`.
    pub actor: String,
    /// Further facts (reason, key id, previous card…).
    pub detail: BTreeMap<String, String>,
}

impl EventBody {
    /// The bytes that are hashed and stored.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // An empty body would be hashed into the chain as if it were the event: fail loudly.
        serde_json::to_vec(self).expect("strings, integers and a sorted map of strings always serialise")
    }
}

/// `SHA-256(previous || canonical)`.
pub fn chain_hash(previous: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Where a log fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// A sequence number is missing or out of order.
    #[error("event {found} follows {previous}: the sequence has a gap")]
    Gap {
        /// the sequence number before
        previous: i64,
        /// the one found
        found: i64,
    },
    /// An event does not link to the previous event's hash.
    #[error("event {0} does not link to the previous event's hash")]
    BrokenLink(i64),
    /// An event's stored hash is not the hash of its bytes.
    #[error("event {0} does not match its hash")]
    BadHash(i64),
    /// An event's stored bytes are not a canonical event body.
    #[error("event {0} is not a canonical event body")]
    NotCanonical(i64),
}

/// One stored event as a verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The stored canonical bytes.
    pub body: &'a [u8],
    /// The stored link to the previous event.
    pub prev_hash: &'a [u8],
    /// The stored hash.
    pub hash: &'a [u8],
}

/// Verifies a contiguous run of one app's events starting after `(start_seq, start_hash)`:
/// `(0, GENESIS_HASH)` for the whole log.
pub fn verify_chain<'a>(
    start_seq: i64,
    start_hash: [u8; 32],
    events: impl IntoIterator<Item = StoredEvent<'a>>,
) -> Result<(), ChainError> {
    let (mut seq, mut head) = (start_seq, start_hash);
    for event in events {
        let body: EventBody = serde_json::from_slice(event.body).map_err(|_| ChainError::NotCanonical(seq + 1))?;
        if body.canonical_bytes() != event.body {
            return Err(ChainError::NotCanonical(body.seq));
        }
        if body.seq != seq + 1 {
            return Err(ChainError::Gap { previous: seq, found: body.seq });
        }
        if event.prev_hash != head {
            return Err(ChainError::BrokenLink(body.seq));
        }
        let hash = chain_hash(&head, event.body);
        if event.hash != hash {
            return Err(ChainError::BadHash(body.seq));
        }
        (seq, head) = (body.seq, hash);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: i64) -> Vec<(Vec<u8>, [u8; 32], [u8; 32])> {
        let mut head = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let body = EventBody {
                    app: "a".into(),
                    seq,
                    at: seq * 1000,
                    kind: EventKind::CardPublished,
                    card_id: Some(format!("{seq:064x}")),
                    identity: Some("alice".into()),
                    actor: "user:alice".into(),
                    detail: BTreeMap::from([("z".into(), "1".into()), ("a".into(), "2".into())]),
                }
                .canonical_bytes();
                let hash = chain_hash(&head, &body);
                let row = (body, head, hash);
                head = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[(Vec<u8>, [u8; 32], [u8; 32])]) -> Result<(), ChainError> {
        verify_chain(0, GENESIS_HASH, rows.iter().map(|(b, p, h)| StoredEvent { body: b, prev_hash: p, hash: h }))
    }

    #[test]
    fn canonical_bytes_have_a_fixed_field_order_and_sorted_detail() {
        let rows = log(1);
        let text = String::from_utf8(rows[0].0.clone()).unwrap();
        assert!(text.starts_with(r#"{"app":"a","seq":1,"at":1000,"kind":"card_published","card_id":"#), "{text}");
        assert!(text.ends_with(r#""detail":{"a":"2","z":"1"}}"#), "{text}");
    }

    #[test]
    fn an_intact_log_verifies_and_any_tampering_is_found() {
        let rows = log(5);
        assert_eq!(verify(&rows), Ok(()));

        let mut altered = rows.clone();
        altered[2].0 = String::from_utf8(altered[2].0.clone()).unwrap().replace("alice", "mallo").into_bytes();
        assert_eq!(verify(&altered), Err(ChainError::BadHash(3)));

        let mut dropped = rows.clone();
        dropped.remove(1);
        assert_eq!(verify(&dropped), Err(ChainError::Gap { previous: 1, found: 3 }));

        let mut relinked = rows.clone();
        relinked[3].1 = [1u8; 32];
        assert_eq!(verify(&relinked), Err(ChainError::BrokenLink(4)));
    }
}
