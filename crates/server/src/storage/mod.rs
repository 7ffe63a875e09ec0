//! Storage: one trait over PostgreSQL and SQLite, the records it holds, and the one translation
//! of database errors.

mod migrate;
mod postgres;
mod sequencer;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use cardinal_card::log::EventKind;
use std::collections::BTreeMap;
use thiserror::Error;

pub use migrate::MigrationError;
pub use postgres::PgCardStore;
pub use sqlite::SqliteCardStore;

/// Which database holds the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, for production.
    Postgres,
    /// An embedded SQLite file, for a laptop or a small site.
    Sqlite,
}

impl Backend {
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

/// The storage failures the rest of the service distinguishes. Every backend translates its
/// driver's errors into these, once, in the shared SQL module.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    /// The row that an update needed does not exist.
    #[error("not found")]
    NotFound,
    /// A named constraint refused the write, or a compare-and-set found the row changed.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint or precondition that failed (see the migrations for the names).
        constraint: String,
    },
    /// The database cannot be reached or is overloaded; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// What a read would return is over its byte budget; nothing was returned.
    #[error("the answer exceeds {max_bytes} bytes")]
    TooLarge {
        /// The budget.
        max_bytes: usize,
    },
    /// Anything else: a bug or a corrupt database.
    #[error("storage error: {0}")]
    Other(String),
}

/// Constraint and precondition names, as the migrations declare them.
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
    /// An app with this id exists.
    pub const APPS_PKEY: &str = "apps_pkey";
    /// A key with this kid exists.
    pub const API_KEYS_PKEY: &str = "api_keys_pkey";
    /// The identity has as many live non-exclusive chains as its app allows.
    pub const CHAINS_PER_IDENTITY: &str = "chains_per_identity";
}

/// Whether an app allows one live chain per identity or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardsPerIdentity {
    /// One live chain per identity (the default): a second root card is refused.
    Single,
    /// Independent chains may coexist.
    Multiple,
}

impl CardsPerIdentity {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CardsPerIdentity::Single => "single",
            CardsPerIdentity::Multiple => "multiple",
        }
    }

    fn parse(s: &str) -> Result<Self, StorageError> {
        match s {
            "single" => Ok(CardsPerIdentity::Single),
            "multiple" => Ok(CardsPerIdentity::Multiple),
            other => Err(StorageError::Other(format!("unknown cards_per_identity {other:?}"))),
        }
    }
}

/// An app (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// A short id such as `default`.
    pub id: String,
    /// Its chain policy.
    pub cards_per_identity: CardsPerIdentity,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an API key may mint tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// User tokens: publish and revoke one identity's cards, look up.
    App,
    /// Admin tokens: revoke any card, read the event log.
    Admin,
}

impl KeyRole {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::App => "app",
            KeyRole::Admin => "admin",
        }
    }

    /// Parses the stored or typed name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(KeyRole::App),
            "admin" => Some(KeyRole::Admin),
            _ => None,
        }
    }
}

/// A registered API key (public part only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id, the JWT `kid`.
    pub kid: String,
    /// The app whose tokens it signs.
    pub app_id: String,
    /// What its tokens may do.
    pub role: KeyRole,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
}

/// A stored card with its chain's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRecord {
    /// The card id.
    pub id: String,
    /// Whose card.
    pub identity: String,
    /// The id of the chain's root card.
    pub chain_id: String,
    /// The card it rotated.
    pub previous_card_id: Option<String>,
    /// The card that rotated it.
    pub superseded_by: Option<String>,
    /// Its position in the chain: 0 for the root.
    pub chain_index: i64,
    /// The snapshot's `created_at`.
    pub created_at: i64,
    /// When the service accepted it, Unix seconds.
    pub published_at: i64,
    /// Base64 SPKI, as in the snapshot.
    pub public_key: String,
    /// The countersigned RawSignedModel JSON as served.
    pub raw: String,
    /// When its chain was revoked.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revocation_reason: Option<String>,
    /// Who revoked it (`user:…` or `admin:…`).
    pub revoked_by: Option<String>,
}

/// A card to insert.
#[derive(Debug, Clone)]
pub struct NewCard {
    /// The app.
    pub app_id: String,
    /// The card id.
    pub id: String,
    /// Whose card.
    pub identity: String,
    /// Its position in the chain: 0 for a root, the previous card's plus one for a rotation.
    pub chain_index: i64,
    /// The snapshot's `created_at`.
    pub created_at: i64,
    /// Now, Unix seconds.
    pub published_at: i64,
    /// Base64 SPKI.
    pub public_key: String,
    /// The countersigned RawSignedModel JSON.
    pub raw: String,
}

/// Where a new card goes.
#[derive(Debug, Clone)]
pub enum Placement {
    /// A new chain. `exclusive` chains enforce the single-chain policy; the others are
    /// refused with `chains_per_identity` beyond `max_live_chains` live ones.
    Root {
        /// Whether this chain must be the identity's only live one.
        exclusive: bool,
        /// Most live non-exclusive chains of the identity, this one included.
        max_live_chains: i64,
    },
    /// The successor of `previous_card_id`, which must still head `chain_id`, unrevoked.
    Successor {
        /// The chain.
        chain_id: String,
        /// The card being rotated.
        previous_card_id: String,
    },
}

/// An event to append, before the store gives it a sequence number and a hash.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// What happened.
    pub kind: EventKind,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The card concerned.
    pub card_id: Option<String>,
    /// The identity concerned.
    pub identity: Option<String>,
    /// Who did it.
    pub actor: String,
    /// Further facts.
    pub detail: BTreeMap<String, String>,
}

/// A chain revocation.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// Unix seconds.
    pub at: i64,
    /// Why.
    pub reason: Option<String>,
    /// Who (`user:…` or `admin:…`).
    pub by: String,
}

/// What a lookup reads: every requested identity that ever changed with its counter, in
/// identity order, and the active cards, ordered as `find_active_cards` orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveLookup {
    /// (identity, version); identities never changed are absent.
    pub versions: Vec<(String, i64)>,
    /// The active cards.
    pub cards: Vec<CardRecord>,
}

/// What a change listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening from now on: changes from here on will be heard.
    Listening,
    /// The listening connection was lost: changes may have been missed.
    Lost,
    /// These identities of the app changed.
    Changed {
        /// The app.
        app_id: String,
        /// Its changed identities.
        identities: Vec<String>,
    },
}

/// The PostgreSQL channel that sequencing rounds notify: `app\nidentity\nidentity…`.
pub const CHANGES_CHANNEL: &str = "cardinal_changes";

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its position.
    pub seq: i64,
    /// Canonical JSON.
    pub body: String,
    /// The previous event's hash.
    pub prev_hash: Vec<u8>,
    /// SHA-256(prev_hash || body).
    pub hash: Vec<u8>,
}

/// The directory's storage. Every write that changes cards bumps the identity's version and
/// queues its events in the same transaction; a write returns once its events are sequenced
/// into the log (see `sequencer`), or, if that round failed, with them still queued.
#[async_trait]
pub trait CardStore: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Answers when the database does.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Creates an app, with its `app_created` event.
    async fn create_app(&self, app: &AppRecord, event: EventDraft) -> Result<(), StorageError>;

    /// One app.
    async fn find_app(&self, id: &str) -> Result<Option<AppRecord>, StorageError>;

    /// Every app, by id.
    async fn list_apps(&self) -> Result<Vec<AppRecord>, StorageError>;

    /// Registers a key, with its `key_added` event.
    async fn insert_api_key(&self, key: &ApiKeyRecord, event: EventDraft) -> Result<(), StorageError>;

    /// One key, revoked or not.
    async fn find_api_key(&self, kid: &str) -> Result<Option<ApiKeyRecord>, StorageError>;

    /// The keys of one app or of all.
    async fn list_api_keys(&self, app_id: Option<&str>) -> Result<Vec<ApiKeyRecord>, StorageError>;

    /// Revokes a key; `Ok(false)` if it already was, `NotFound` if there is none.
    async fn revoke_api_key(&self, kid: &str, at: i64, event: EventDraft) -> Result<bool, StorageError>;

    /// Inserts a card where `placement` says, atomically: a root creates its chain (refused by
    /// `chains_single_active` when exclusive and the identity has a live exclusive chain); a
    /// successor moves its chain's head from the previous card (refused with
    /// `chain_head_moved` when the previous card no longer heads an unrevoked chain).
    async fn insert_card(
        &self,
        card: &NewCard,
        placement: &Placement,
        events: &[EventDraft],
    ) -> Result<(), StorageError>;

    /// One card of an app, whatever its status.
    async fn find_card(&self, app_id: &str, id: &str) -> Result<Option<CardRecord>, StorageError>;

    /// The newest card of every unrevoked chain of these identities, ordered by identity, then
    /// newest first; `TooLarge` if their stored bytes exceed `max_bytes`.
    async fn find_active_cards(
        &self,
        app_id: &str,
        identities: &[String],
        max_bytes: usize,
    ) -> Result<Vec<CardRecord>, StorageError>;

    /// The newest `per_chain` cards of every unrevoked chain of these identities (Virgil's search
    /// semantics, bounded); `TooLarge` if their stored bytes exceed `max_bytes`.
    async fn find_unrevoked_chain_cards(
        &self,
        app_id: &str,
        identities: &[String],
        per_chain: i64,
        max_bytes: usize,
    ) -> Result<Vec<CardRecord>, StorageError>;

    /// The change counters of these identities; identities never changed are absent.
    async fn identity_versions(&self, app_id: &str, identities: &[String]) -> Result<Vec<(String, i64)>, StorageError>;

    /// The change counters of these identities and the newest card of each of their unrevoked
    /// chains (as `find_active_cards`), read together in one statement; `TooLarge` if the cards'
    /// stored bytes exceed `max_bytes`.
    async fn lookup_active(
        &self,
        app_id: &str,
        identities: &[String],
        max_bytes: usize,
    ) -> Result<ActiveLookup, StorageError>;

    /// Revokes a chain; `Ok(false)` if it already was.
    async fn revoke_chain(
        &self,
        app_id: &str,
        chain_id: &str,
        identity: &str,
        revocation: &Revocation,
        event: EventDraft,
    ) -> Result<bool, StorageError>;

    /// Events after `after`, oldest first, at most `limit`, and no more than fit in `max_bytes`
    /// of bodies (at least one, whatever its size).
    async fn list_events(
        &self,
        app_id: &str,
        after: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<EventRow>, StorageError>;

    /// Listens for the identities that sequencing rounds log, in this process and in others
    /// sharing the database, and tells `heard`; runs until the task is dropped. Backends that
    /// cannot listen (SQLite) return at once without ever saying `Listening`.
    async fn watch_changes(&self, heard: &(dyn Fn(Heard) + Send + Sync));

    /// Sequences every queued event of every app: what a crash between a write's commit and its
    /// round, or a round that failed, left behind. Returns how many it moved.
    async fn sequence_queued(&self) -> Result<usize, StorageError>;

    /// The connection pool's state, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), MigrationError>;

    /// Closes the pool.
    async fn close(&self);
}

/// A connection pool's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Of those, idle.
    pub idle: usize,
    /// The most it opens.
    pub max: u32,
}

/// Connection settings common to both backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most open connections.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a request waits for a connection before the service answers 503.
    pub acquire_timeout: std::time::Duration,
}

/// Opens the store that `url` names.
pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Arc<dyn CardStore>, StorageError> {
    match Backend::of_url(url) {
        Some(Backend::Postgres) => Ok(Arc::new(PgCardStore::connect(url, pool).await?)),
        Some(Backend::Sqlite) => Ok(Arc::new(SqliteCardStore::connect(url, pool).await?)),
        None => Err(StorageError::Other("database url must start with postgres:// or sqlite:".into())),
    }
}
