//! Storage, split by who needs what: the keys auth checks ([`ApiKeyStore`]), the apps the rules
//! read ([`AppStore`]), the cards the directory reads and writes ([`CardStore`]), the event log
//! ([`EventLog`]), the transparency log's tree and checkpoints ([`TransparencyStore`]), what
//! operators need ([`Operations`]), Keyknox's entries ([`KeyknoxStore`], in `keyknox.rs`) and the
//! admin read API's reads ([`admin::AdminStore`]). [`Store`] is all of them, as one database
//! provides them; each caller holds only the part it uses. A new capability adds its own trait
//! (and file) beside these.
//!
//! Two implementations: [`sql::SqlStore`], written once for PostgreSQL and SQLite, and
//! [`memory::MemoryStore`], for the rules' unit tests. `tests/storage` holds both to the same
//! conformance suite.

pub mod admin;
mod changes;
mod error;
mod events;
mod identity_state;
pub mod keyknox;
pub mod memory;
mod records;
pub mod sql;
mod transparency;

use std::sync::Arc;

use async_trait::async_trait;

pub use changes::{
    CHANGES_CHANNEL, Heard, Notification, change_payloads, parse_change_payload, parse_notification, probe_payload,
};
pub use error::{StorageError, constraint};
pub use events::{EventDraft, GENESIS, SealedEvent, seal};
pub use identity_state::{ActiveDigest, IdentityState, active_digest, digest_text, parse_digest};
pub use keyknox::KeyknoxStore;
pub use records::{
    ActiveLookup, ApiKeyRecord, AppRecord, CardRecord, CardsQuery, EventRow, EventsQuery, NewCard, Placement,
    PoolSettings, PoolStats, ReadFrom, ReplicaStats, ReplicasStats, Revocation, Schema, WriteQueueSettings,
    WriteQueueStats,
};
pub use sql::MigrationError;
pub use transparency::{CheckpointRecord, TransparencyStore};

use crate::domain::{AppId, CardId, Identity};

/// Which database holds the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, for production.
    Postgres,
    /// An embedded SQLite file, for a laptop or a small site.
    Sqlite,
    /// Memory, for tests of the rules.
    Memory,
}

impl Backend {
    /// Its name, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
            Backend::Memory => "memory",
        }
    }

    /// Chooses the backend from a database URL's scheme.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// Apps (tenants). Every write also queues its event in the same transaction.
#[async_trait]
pub trait AppStore: Send + Sync + 'static {
    /// Creates an app, with its `app_created` event.
    async fn create_app(&self, app: &AppRecord, event: EventDraft) -> Result<(), StorageError>;

    /// One app.
    async fn find_app(&self, id: &AppId) -> Result<Option<AppRecord>, StorageError>;

    /// Every app, by id.
    async fn list_apps(&self) -> Result<Vec<AppRecord>, StorageError>;
}

/// API keys: what authentication looks up, and what their management changes.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Registers a key, with its `key_added` event.
    async fn insert_api_key(&self, key: &ApiKeyRecord, event: EventDraft) -> Result<(), StorageError>;

    /// One key, revoked or not.
    async fn find_api_key(&self, kid: &str) -> Result<Option<ApiKeyRecord>, StorageError>;

    /// The keys of one app or of all.
    async fn list_api_keys(&self, app_id: Option<&AppId>) -> Result<Vec<ApiKeyRecord>, StorageError>;

    /// Revokes a key; `Ok(false)` if it already was, `NotFound` if there is none.
    async fn revoke_api_key(&self, kid: &str, at: i64, event: EventDraft) -> Result<bool, StorageError>;
}

/// The cards directory. Every write that changes cards bumps the identity's version and queues
/// its events in the same transaction; a write returns once its events are sequenced into the
/// log, or, if that round failed, with them still queued.
#[async_trait]
pub trait CardStore: Send + Sync + 'static {
    /// Inserts a card where `placement` says, atomically: a root creates its chain (refused by
    /// `chains_single_active` when exclusive and the identity has a live exclusive chain, by
    /// `chains_per_identity` over the limit otherwise); a successor moves its chain's head from
    /// the previous card (refused with `chain_head_moved` when the previous card no longer heads
    /// an unrevoked chain).
    async fn insert_card(
        &self,
        card: &NewCard,
        placement: &Placement,
        events: &[EventDraft],
    ) -> Result<(), StorageError>;

    /// One card of an app, whatever its status.
    async fn find_card(&self, app_id: &AppId, id: &CardId) -> Result<Option<CardRecord>, StorageError>;

    /// The newest card of every unrevoked chain of the identities, ordered by identity, then
    /// newest first.
    async fn find_active_cards(&self, query: CardsQuery<'_>) -> Result<Vec<CardRecord>, StorageError>;

    /// The newest `per_chain` cards of every unrevoked chain of the identities (Virgil's search
    /// semantics, bounded), ordered as `find_active_cards`.
    async fn find_unrevoked_chain_cards(
        &self,
        query: CardsQuery<'_>,
        per_chain: i64,
    ) -> Result<Vec<CardRecord>, StorageError>;

    /// The states of these identities; identities that never had a card are absent.
    async fn identity_states(
        &self,
        app_id: &AppId,
        ids: &[Identity],
    ) -> Result<Vec<(Identity, IdentityState)>, StorageError>;

    /// The states of the identities and the newest card of each of their unrevoked chains (as
    /// `find_active_cards`), read together, from one snapshot.
    async fn lookup_active(&self, query: CardsQuery<'_>) -> Result<ActiveLookup, StorageError>;

    /// Revokes a chain, changing its identity's state; `Ok(false)` if it already was.
    async fn revoke_chain(&self, revocation: &Revocation, event: EventDraft) -> Result<bool, StorageError>;
}

/// The event log: reading it, and sequencing what writes queued.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// A page of the log, oldest first.
    async fn list_events(&self, page: EventsQuery<'_>) -> Result<Vec<EventRow>, StorageError>;

    /// Sequences every queued event of every app: what a crash between a write's commit and its
    /// round, or a round that failed, left behind. Returns how many it moved.
    async fn sequence_queued(&self) -> Result<usize, StorageError>;
}

/// What operating the database needs: health, the pool, migrations, change notifications.
#[async_trait]
pub trait Operations: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Answers when the database does.
    async fn ping(&self) -> Result<(), StorageError>;

    /// The connection pool's state, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// What is known of the read replicas (none: empty).
    fn replica_stats(&self) -> ReplicasStats {
        ReplicasStats::default()
    }

    /// Measures the read replicas' freshness, which decides whether they may answer; runs until
    /// the task is dropped. Without replicas, returns at once.
    async fn track_replicas(&self) {}

    /// The migrations applied and known (a store without migrations: none of either).
    async fn schema(&self) -> Result<Schema, StorageError> {
        Ok(Schema::default())
    }

    /// The database server's clock, Unix milliseconds; `None` where the database shares this
    /// process's clock (SQLite, memory).
    async fn database_clock(&self) -> Result<Option<i64>, StorageError> {
        Ok(None)
    }

    /// Applies pending migrations, and completes what they leave to the service: the digests of
    /// identities written before digests existed, and a new database's epoch.
    async fn migrate(&self) -> Result<(), MigrationError>;

    /// Writes a consistent copy of the database, as of one instant, into `path` (which must not
    /// exist or be empty), while it keeps serving. SQLite only: PostgreSQL is copied with its
    /// own tools (`pg_dump`, `pg_basebackup`).
    async fn back_up_into(&self, path: &std::path::Path) -> Result<(), StorageError>;

    /// The database's epoch: a random name given at creation and renewed by every restore.
    async fn epoch(&self) -> Result<String, StorageError>;

    /// Gives the database a new epoch (after a restore) and returns it.
    async fn renew_epoch(&self) -> Result<String, StorageError>;

    /// Closes the pool.
    async fn close(&self);

    /// Listens for the identities that sequencing rounds log, in this process and in others
    /// sharing the database, and tells `heard`; probes the channel every `probe_every` and says
    /// `Confirmed` for each probe heard back. Runs until the task is dropped. Stores that cannot
    /// listen (SQLite, memory) return at once without ever saying `Listening`.
    async fn watch_changes(&self, probe_every: std::time::Duration, heard: &(dyn Fn(Heard) + Send + Sync));
}

/// Everything one database provides.
pub trait Store:
    AppStore + ApiKeyStore + CardStore + EventLog + TransparencyStore + Operations + admin::AdminStore + KeyknoxStore
{
}

impl<
    T: AppStore + ApiKeyStore + CardStore + EventLog + TransparencyStore + Operations + admin::AdminStore + KeyknoxStore,
> Store for T
{
}

/// Opens the store that `url` names.
pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Arc<dyn Store>, StorageError> {
    Ok(Arc::new(sql::SqlStore::connect(url, pool).await?))
}
