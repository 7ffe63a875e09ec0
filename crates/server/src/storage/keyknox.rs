//! Keyknox's storage: v1's one entry per identity and v2's entries keyed by owner, root, path and
//! key, each with its readers. What is stored is ciphertext the clients made; the store compares
//! content hashes under the entry's lock, so that of two writes from the same previous hash
//! exactly one wins.

use async_trait::async_trait;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{EventDraft, StorageError, constraint};
use crate::domain::{AppId, Identity};

/// The hash of the empty entry: base64 of SHA-256 of nothing, what the clients were seen to send
/// as the previous hash of their first write (virgil-v5.md §6.7).
pub const EMPTY_HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/// The content hash clients send back as `Virgil-Keyknox-Previous-Hash`: of `meta` and `value`
/// only, never of the readers (`group.reAdd` pushes with a hash taken before it removed one).
/// The meta's length goes first, so no two splits of the same bytes hash alike; the empty entry
/// hashes to [`EMPTY_HASH`].
pub fn content_hash(meta: &str, value: &str) -> String {
    if meta.is_empty() && value.is_empty() {
        return EMPTY_HASH.to_owned();
    }
    let mut hasher = Sha256::new();
    hasher.update((meta.len() as u64).to_be_bytes());
    hasher.update(meta.as_bytes());
    hasher.update(value.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// The v1 entry of an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyknoxV1Record {
    /// Opaque base64 text; empty after a reset.
    pub meta: String,
    /// Opaque base64 text; empty after a reset.
    pub value: String,
    /// Writes and resets so far, 1 for the first.
    pub version: i64,
    /// [`content_hash`] of meta and value.
    pub hash: String,
}

/// A v2 entry's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// The app.
    pub app_id: AppId,
    /// Who wrote it: the only one who may change it.
    pub owner: Identity,
    /// The namespace (`e3kit`, `group-sessions`).
    pub root: String,
    /// Within the root.
    pub path: String,
    /// Within the path.
    pub key: String,
}

/// A stored v2 entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyknoxEntry {
    /// Its address.
    pub key: EntryKey,
    /// Who may read it, the owner first, then the others sorted.
    pub readers: Vec<Identity>,
    /// Opaque base64 text.
    pub meta: String,
    /// Opaque base64 text.
    pub value: String,
    /// [`content_hash`] of meta and value.
    pub hash: String,
}

/// A v1 write.
#[derive(Debug, Clone)]
pub struct V1Write<'a> {
    /// The app.
    pub app_id: &'a AppId,
    /// Whose entry.
    pub identity: &'a Identity,
    /// The new content; both empty for a reset.
    pub meta: &'a str,
    /// The new content.
    pub value: &'a str,
    /// The hash the client last saw: `None` only when nothing is stored (or it was reset).
    pub previous_hash: Option<&'a str>,
    /// Unix seconds.
    pub at: i64,
}

/// A v2 push.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    /// The entry.
    pub key: &'a EntryKey,
    /// Readers to add to those the entry has (a union); the owner is always added.
    pub readers: &'a [Identity],
    /// The new content.
    pub meta: &'a str,
    /// The new content.
    pub value: &'a str,
    /// `None`: the entry must not exist; else it must be the entry's current hash (the empty
    /// entry's when there is none).
    pub previous_hash: Option<&'a str>,
    /// Most readers an entry may have, the owner included.
    pub max_readers: usize,
    /// Most entries an owner may have.
    pub max_entries: i64,
    /// Unix seconds.
    pub at: i64,
}

/// Which of an owner's entries a v2 reset or listing selects: `None` matches any.
#[derive(Debug, Clone)]
pub struct EntryFilter<'a> {
    /// The app.
    pub app_id: &'a AppId,
    /// The owner.
    pub owner: &'a Identity,
    /// Exact root.
    pub root: Option<&'a str>,
    /// Exact path.
    pub path: Option<&'a str>,
    /// Exact key.
    pub key: Option<&'a str>,
}

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Whether a v1 entry existed.
    pub v1: bool,
    /// v2 entries the identity owned.
    pub entries: u64,
    /// Grants the identity had on other owners' entries.
    pub grants: u64,
}

impl Erased {
    /// The erasure's event with what it removed, which only the erasing transaction knows: both
    /// stores add it the same way, so their logs stay byte for byte alike.
    pub fn recorded_in(&self, mut event: EventDraft) -> EventDraft {
        event.detail.insert("v1".to_owned(), self.v1.to_string());
        event.detail.insert("entries".to_owned(), self.entries.to_string());
        event.detail.insert("grants".to_owned(), self.grants.to_string());
        event
    }
}

/// Whether a write from `previous` may replace what is stored now (`current`: its hash, if
/// anything is stored). `None` is allowed only where `none_allowed` says (v2: nothing stored;
/// v1: nothing or an empty entry); a hash must match the current one, or the empty entry's when
/// nothing is stored. Both stores decide with this one function.
pub fn check_previous(
    previous: Option<&str>,
    current: Option<&str>,
    none_allowed: bool,
    none_refused: &'static str,
) -> Result<(), StorageError> {
    match previous {
        None if none_allowed => Ok(()),
        None => Err(StorageError::conflict(none_refused)),
        Some(previous) if previous == current.unwrap_or(EMPTY_HASH) => Ok(()),
        Some(_) => Err(StorageError::conflict(constraint::KEYKNOX_HASH_MISMATCH)),
    }
}

/// Sorts readers the way every store returns them: the owner first, then by name, once each.
pub fn order_readers(owner: &Identity, readers: impl IntoIterator<Item = Identity>) -> Vec<Identity> {
    let mut others: Vec<Identity> = readers.into_iter().filter(|reader| reader != owner).collect();
    others.sort();
    others.dedup();
    std::iter::once(owner.clone()).chain(others).collect()
}

/// Keyknox v1 and v2. Every write is one transaction.
#[async_trait]
pub trait KeyknoxStore: Send + Sync + 'static {
    /// The identity's v1 entry, if it ever wrote one.
    async fn keyknox_v1(&self, app_id: &AppId, identity: &Identity) -> Result<Option<KeyknoxV1Record>, StorageError>;

    /// Writes the v1 entry (version + 1) if `previous_hash` matches (refused with
    /// `keyknox_hash_mismatch`), and returns it.
    async fn put_keyknox_v1(&self, write: &V1Write<'_>) -> Result<KeyknoxV1Record, StorageError>;

    /// Empties the v1 entry (version + 1); `None` if there was none (nothing is created).
    async fn reset_keyknox_v1(
        &self,
        app_id: &AppId,
        identity: &Identity,
        at: i64,
    ) -> Result<Option<KeyknoxV1Record>, StorageError>;

    /// Creates or updates an entry, the readers merged: refused with `keyknox_entry_exists`
    /// (no previous hash, the entry exists), `keyknox_hash_mismatch`, `keyknox_readers_per_entry`
    /// or `keyknox_entries_per_identity`, writing nothing.
    async fn push_keyknox(&self, push: &Push<'_>) -> Result<KeyknoxEntry, StorageError>;

    /// One entry.
    async fn keyknox_entry(&self, key: &EntryKey) -> Result<Option<KeyknoxEntry>, StorageError>;

    /// The distinct keys of the owner's entries matching `filter` that `reader` may read, sorted.
    async fn keyknox_keys(&self, filter: &EntryFilter<'_>, reader: &Identity) -> Result<Vec<String>, StorageError>;

    /// Deletes the owner's entries matching `filter`; returns how many.
    async fn delete_keyknox(&self, filter: &EntryFilter<'_>) -> Result<u64, StorageError>;

    /// Removes `reader` (never the owner) from the owner's entries matching `filter`; returns
    /// from how many.
    async fn remove_keyknox_reader(&self, filter: &EntryFilter<'_>, reader: &Identity) -> Result<u64, StorageError>;

    /// Erases everything of an identity, v1 and v2, and its grants on others' entries, with the
    /// event in the same transaction, its detail saying what went ([`Erased::recorded_in`]).
    async fn erase_keyknox(
        &self,
        app_id: &AppId,
        identity: &Identity,
        event: EventDraft,
    ) -> Result<Erased, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_entry_hashes_as_the_clients_expect_and_splits_differ() {
        use sha2::Digest as _;
        let nothing = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b""));
        assert_eq!(EMPTY_HASH, nothing);
        assert_eq!(content_hash("", ""), EMPTY_HASH);
        assert_ne!(content_hash("ab", "c"), content_hash("a", "bc"));
        assert_eq!(content_hash("m", "v"), content_hash("m", "v"));
    }

    #[test]
    fn previous_hashes_follow_the_protocol() {
        let exists = constraint::KEYKNOX_ENTRY_EXISTS;
        assert!(check_previous(None, None, true, exists).is_ok());
        assert!(check_previous(Some(EMPTY_HASH), None, false, exists).is_ok());
        assert!(matches!(
            check_previous(None, Some("h"), false, exists),
            Err(StorageError::Conflict { constraint }) if constraint == exists
        ));
        assert!(check_previous(Some("h"), Some("h"), false, exists).is_ok());
        assert!(matches!(
            check_previous(Some("old"), Some("h"), false, exists),
            Err(StorageError::Conflict { constraint }) if constraint == constraint::KEYKNOX_HASH_MISMATCH
        ));
    }
}
