//! What the transparency log needs of storage: the tree's stored hashes (written by the
//! sequencing round, read here), the entries (always `events.body`), and signed checkpoints.

use async_trait::async_trait;
use cardinal_card::tlog::Hashes;

use super::StorageError;
use crate::domain::AppId;

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The app whose log it is.
    pub app_id: AppId,
    /// The log's origin.
    pub origin: String,
    /// Entries it covers.
    pub size: u64,
    /// Their root.
    pub root: [u8; 32],
    /// The signed note (log signature only; cosignatures are kept beside it).
    pub note: String,
    /// The database's epoch when it was signed.
    pub epoch: String,
    /// When, in Unix milliseconds.
    pub signed_at: i64,
}

/// The transparency log's storage.
#[async_trait]
pub trait TransparencyStore: Send + Sync + 'static {
    /// How many entries the app's tree covers (0 for an unknown app).
    async fn tree_size(&self, app_id: &AppId) -> Result<u64, StorageError>;

    /// The stored hashes at these indexes; an index not stored is absent from the answer.
    async fn tree_hashes(&self, app_id: &AppId, indexes: &[u64]) -> Result<Hashes, StorageError>;

    /// Entries `[start, end)`: the bodies of events `start + 1 ..= end`, in order.
    async fn entries(&self, app_id: &AppId, start: u64, end: u64) -> Result<Vec<String>, StorageError>;

    /// The `card_published` entries of these cards, as (card id, entry index, entry), any order;
    /// a card without one is absent.
    async fn published_entries(
        &self,
        app_id: &AppId,
        card_ids: &[&str],
    ) -> Result<Vec<(String, u64, String)>, StorageError>;

    /// The newest checkpoint of the origin.
    async fn newest_checkpoint(&self, app_id: &AppId, origin: &str) -> Result<Option<CheckpointRecord>, StorageError>;

    /// Keeps a witness's cosignature line of the checkpoint of `size` (a repeat is a no-op).
    async fn insert_cosignature(
        &self,
        app_id: &AppId,
        origin: &str,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<(), StorageError>;

    /// The cosignature lines of the checkpoint of `size`, by witness.
    async fn cosignatures(
        &self,
        app_id: &AppId,
        origin: &str,
        size: u64,
    ) -> Result<Vec<(String, String)>, StorageError>;

    /// The largest size the witness cosigned.
    async fn last_cosigned(&self, app_id: &AppId, origin: &str, witness: &str) -> Result<Option<u64>, StorageError>;

    /// Stores a checkpoint unless one of its size is stored already; returns the stored one of
    /// that size (which the caller compares: another root is a fork).
    async fn insert_checkpoint(&self, checkpoint: &CheckpointRecord) -> Result<CheckpointRecord, StorageError>;
}
