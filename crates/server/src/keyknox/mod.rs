//! Keyknox's rules: what e3kit's backups (v1, and v2 under root `e3kit`) and groups (v2 under
//! root `group-sessions`) may store and read. Entries are ciphertext the clients made; Cardinal
//! checks who writes and reads them, their sizes, and the hash protocol (virgil-v5.md §6.3–6.5,
//! §6.7). No HTTP and no SQL here; the store makes each write atomic.
//!
//! Only a user token acts on Keyknox, always as its own identity: the owner of a v2 entry is the
//! caller, the only one who changes it; readers are whoever the owner listed. An admin erases a
//! departed user's data (`erase.rs`), and only that is recorded in the event log: pushes are
//! frequent, private and carry nothing an audit could check.

mod erase;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use thiserror::Error;

use crate::clock::Clock;
use crate::domain::{Caller, Identity, KeyRole};
use crate::storage::keyknox::KeyknoxStore;
use crate::storage::{StorageError, constraint};

pub use crate::storage::keyknox::{EMPTY_HASH, Erased, KeyknoxEntry, content_hash};
pub use v1::V1Entry;
pub use v2::{KeysRequest, PullRequest, PushRequest, ResetRequest};

/// What Keyknox input may be.
#[derive(Debug, Clone, Copy)]
pub struct KeyknoxLimits {
    /// Bytes of an entry's meta.
    pub meta_bytes: usize,
    /// Bytes of an entry's value.
    pub value_bytes: usize,
    /// Readers of one v2 entry, its owner included.
    pub readers_per_entry: usize,
    /// v2 entries one identity owns.
    pub entries_per_identity: i64,
    /// Bytes of a root, path or key.
    pub name_bytes: usize,
    /// Bytes of an identity.
    pub identity_bytes: usize,
}

impl KeyknoxLimits {
    /// The largest request body Keyknox can need within these limits: the content, the readers
    /// as JSON strings, and room for the names and the field names.
    pub fn body_bytes(&self) -> usize {
        let readers = self.readers_per_entry.saturating_mul(self.identity_bytes.saturating_add(3));
        self.meta_bytes
            .saturating_add(self.value_bytes)
            .saturating_add(readers)
            .saturating_add(self.name_bytes.saturating_mul(3))
            .saturating_add(4096)
    }
}

/// Why Keyknox refused.
#[derive(Debug, Error)]
pub enum KeyknoxError {
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A root, path or key is malformed.
    #[error("{0}")]
    InvalidName(String),
    /// An identity is malformed.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),
    /// Only one of meta and value is empty.
    #[error("meta and value must both be empty or both be set")]
    OneSided,
    /// Meta or value is over its limit.
    #[error("{field} exceeds {max} bytes")]
    TooLarge {
        /// `meta` or `value`
        field: &'static str,
        /// the limit
        max: usize,
    },
    /// The entry would have too many readers.
    #[error("an entry has at most {max} readers, its owner included")]
    TooManyReaders {
        /// the limit
        max: usize,
    },
    /// The owner has as many entries as allowed.
    #[error("an identity owns at most {max} Keyknox entries; reset some first")]
    TooManyEntries {
        /// the limit
        max: i64,
    },
    /// A push without a previous hash over an existing entry.
    #[error("the entry already exists; pull it and push with its hash as Virgil-Keyknox-Previous-Hash")]
    EntryExists,
    /// The previous hash is not the entry's current one.
    #[error("the entry changed since its hash was read; pull it again")]
    HashMismatch,
    /// The store failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for KeyknoxError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict { constraint: constraint::KEYKNOX_ENTRY_EXISTS } => KeyknoxError::EntryExists,
            StorageError::Conflict { constraint: constraint::KEYKNOX_HASH_MISMATCH } => KeyknoxError::HashMismatch,
            other => KeyknoxError::Storage(other),
        }
    }
}

/// Keyknox for every app.
pub struct Keyknox {
    store: Arc<dyn KeyknoxStore>,
    limits: KeyknoxLimits,
    clock: Arc<dyn Clock>,
}

impl Keyknox {
    /// Keyknox over a store, within `limits`, telling time by `clock`.
    pub fn new(store: Arc<dyn KeyknoxStore>, limits: KeyknoxLimits, clock: Arc<dyn Clock>) -> Self {
        Keyknox { store, limits, clock }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &KeyknoxLimits {
        &self.limits
    }

    /// The caller's own identity: Keyknox speaks to users only.
    fn user(caller: &Caller) -> Result<&Identity, KeyknoxError> {
        match caller.role {
            KeyRole::App => Ok(&caller.subject),
            KeyRole::Admin => Err(KeyknoxError::Forbidden("Keyknox entries are read and written with user tokens")),
        }
    }

    /// Refuses content over the limits, or with one side empty (the clients' decryption
    /// throws on that, so it could never be read back).
    fn check_content(&self, meta: &str, value: &str) -> Result<(), KeyknoxError> {
        if meta.is_empty() != value.is_empty() {
            return Err(KeyknoxError::OneSided);
        }
        if meta.len() > self.limits.meta_bytes {
            return Err(KeyknoxError::TooLarge { field: "meta", max: self.limits.meta_bytes });
        }
        if value.len() > self.limits.value_bytes {
            return Err(KeyknoxError::TooLarge { field: "value", max: self.limits.value_bytes });
        }
        Ok(())
    }

    /// A root, path or key: 1 to `name_bytes` bytes, no control characters.
    fn check_name<'a>(&self, what: &str, name: &'a str) -> Result<&'a str, KeyknoxError> {
        if name.is_empty() || name.len() > self.limits.name_bytes || name.chars().any(char::is_control) {
            return Err(KeyknoxError::InvalidName(format!(
                "{what} must be 1 to {} bytes without control characters",
                self.limits.name_bytes
            )));
        }
        Ok(name)
    }

    /// An optional filter: absent matches any; present, it is checked as a name.
    fn check_filter<'a>(&self, what: &str, name: Option<&'a str>) -> Result<Option<&'a str>, KeyknoxError> {
        name.map(|name| self.check_name(what, name)).transpose()
    }

    fn identity(&self, text: &str) -> Result<Identity, KeyknoxError> {
        Identity::parse_with_limit(text, self.limits.identity_bytes)
            .map_err(|e| KeyknoxError::InvalidIdentity(e.to_string()))
    }
}
