//! The storage failures the rest of the service distinguishes, and the names of the constraints
//! that refuse writes. Each backend translates its driver's errors into these, in one place.

use thiserror::Error;

/// Why the store refused or failed.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    /// The row that an update needed does not exist.
    #[error("not found")]
    NotFound,
    /// A named constraint refused the write, or a compare-and-set found the row changed.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint or precondition that failed (one of [`constraint`]).
        constraint: &'static str,
    },
    /// The database cannot be reached or is overloaded; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Too many writes are waiting (SQLite's one writer path is full, or a turn did not come
    /// in time): nothing was written; the request may be retried shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// What a read would return is over its byte budget; nothing was returned.
    #[error("the answer exceeds {max_bytes} bytes")]
    TooLarge {
        /// The budget.
        max_bytes: usize,
    },
    /// A stored value does not have the form the schema promises (a corrupt or foreign row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else: a bug or a database error with no better name.
    #[error("storage error: {0}")]
    Other(String),
}

impl StorageError {
    /// A conflict on one of the named constraints.
    pub fn conflict(constraint: &'static str) -> Self {
        StorageError::Conflict { constraint }
    }
}

/// Constraint and precondition names, as the migrations declare them (SQLite reports columns;
/// its dialect maps them back to these names).
pub mod constraint {
    /// A card with this id exists in the app.
    pub const CARDS_PKEY: &str = "cards_pkey";
    /// The previous card already has a successor.
    pub const CARDS_ONE_SUCCESSOR: &str = "cards_one_successor";
    /// The identity already has a live exclusive chain.
    pub const CHAINS_SINGLE_ACTIVE: &str = "chains_single_active";
    /// A chain with this root exists.
    pub const CHAINS_PKEY: &str = "chains_pkey";
    /// The rotated card is no longer its chain's head, or the chain was revoked meanwhile.
    pub const CHAIN_HEAD_MOVED: &str = "chain_head_moved";
    /// The identity has as many live non-exclusive chains as its app allows.
    pub const CHAINS_PER_IDENTITY: &str = "chains_per_identity";
    /// An app with this id exists.
    pub const APPS_PKEY: &str = "apps_pkey";
    /// A key with this kid exists.
    pub const API_KEYS_PKEY: &str = "api_keys_pkey";
    /// A row refers to one that does not exist.
    pub const FOREIGN_KEY: &str = "foreign_key";

    /// A v2 push without a previous hash found the entry existing.
    pub const KEYKNOX_ENTRY_EXISTS: &str = "keyknox_entry_exists";
    /// A Keyknox write's previous hash is not the entry's current one.
    pub const KEYKNOX_HASH_MISMATCH: &str = "keyknox_hash_mismatch";
    /// The owner has as many Keyknox entries as allowed.
    pub const KEYKNOX_ENTRIES_PER_IDENTITY: &str = "keyknox_entries_per_identity";
    /// The entry would have more readers than allowed.
    pub const KEYKNOX_READERS_PER_ENTRY: &str = "keyknox_readers_per_entry";

    /// Every name, for the backends' translations.
    pub const ALL: [&str; 9] = [
        CARDS_PKEY,
        CARDS_ONE_SUCCESSOR,
        CHAINS_SINGLE_ACTIVE,
        CHAINS_PKEY,
        CHAIN_HEAD_MOVED,
        CHAINS_PER_IDENTITY,
        APPS_PKEY,
        API_KEYS_PKEY,
        FOREIGN_KEY,
    ];
}
