//! What an identity's lookup answer is now, in a few bytes: its change counter and a digest of
//! its active cards, both kept in the write transaction that changes them.
//!
//! The digest is what makes a lookup ETag survive restores: the counter alone climbs back, after
//! a restore, to values clients already hold over different content, and recurs when an app id
//! is reinstalled; an active card's representation is fixed by its id (a hash of its content),
//! so equal digests mean equal answers, however the database was copied, restored or promoted.
//! The counter is kept beside it because it orders writers (its row is the identity's lock) and
//! because a writer that does not keep the digest (an older version during a rolling upgrade)
//! still bumps it.

use sha2::{Digest, Sha256};

use crate::domain::CardId;

/// A digest of an identity's active card ids (the first 16 bytes of a SHA-256).
pub type ActiveDigest = [u8; 16];

/// An identity's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityState {
    /// Bumped by every change.
    pub version: i64,
    /// Of the active cards; `None` for a row that an older version wrote and that was not
    /// recomputed yet (startup recomputes them all).
    pub digest: Option<ActiveDigest>,
}

impl IdentityState {
    /// An identity that never had a card.
    pub const NEVER: IdentityState = IdentityState { version: 0, digest: Some(EMPTY) };
}

/// The digest of no card.
const EMPTY: ActiveDigest =
    [0x37, 0x30, 0x49, 0x74, 0xb0, 0x15, 0x68, 0xbf, 0x40, 0x87, 0x8a, 0x77, 0x6e, 0x93, 0x8e, 0x34];

/// The digest of these active cards, in any order.
pub fn active_digest<'a>(ids: impl IntoIterator<Item = &'a CardId>) -> ActiveDigest {
    let mut ids: Vec<&str> = ids.into_iter().map(CardId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hasher = Sha256::new();
    hasher.update(b"cardinal active cards v1");
    for id in ids {
        // Card ids are 64 hex characters: fixed length, so no separator is needed.
        hasher.update(id.as_bytes());
    }
    let mut digest = [0; 16];
    digest.copy_from_slice(&hasher.finalize()[..16]);
    digest
}

/// The digest as stored (32 lowercase hex characters).
pub fn digest_text(digest: &ActiveDigest) -> String {
    hex::encode(digest)
}

/// A stored digest; `None` unless it is 32 hex characters.
pub fn parse_digest(text: &str) -> Option<ActiveDigest> {
    let mut digest = [0; 16];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> CardId {
        c.to_string().repeat(64).parse().unwrap()
    }

    #[test]
    fn the_digest_is_of_the_set_and_no_card_has_the_empty_one() {
        assert_eq!(active_digest([]), EMPTY, "EMPTY is the digest of no card");
        assert_eq!(active_digest([&id('a'), &id('b')]), active_digest([&id('b'), &id('a')]));
        assert_eq!(active_digest([&id('a'), &id('a')]), active_digest([&id('a')]));
        assert_ne!(active_digest([&id('a')]), active_digest([&id('b')]));
        assert_ne!(active_digest([&id('a')]), active_digest([&id('a'), &id('b')]));
        assert_ne!(active_digest([&id('a')]), EMPTY);
        let digest = active_digest([&id('c')]);
        assert_eq!(parse_digest(&digest_text(&digest)), Some(digest));
        assert_eq!(parse_digest("zz"), None);
    }
}
