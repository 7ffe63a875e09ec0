//! What the stores hold and return: parsed values, never bare strings where a type exists.

use crate::domain::{AppId, CardId, CardsPerIdentity, Identity, KeyRole};

/// An app (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Its id.
    pub id: AppId,
    /// Its chain policy.
    pub cards_per_identity: CardsPerIdentity,
    /// Unix seconds.
    pub created_at: i64,
}

/// A registered API key (public part only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id, the JWT `kid`.
    pub kid: String,
    /// The app whose tokens it signs.
    pub app_id: AppId,
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
    pub id: CardId,
    /// Whose card.
    pub identity: Identity,
    /// The id of the chain's root card.
    pub chain_id: CardId,
    /// The card it rotated.
    pub previous_card_id: Option<CardId>,
    /// The card that rotated it.
    pub superseded_by: Option<CardId>,
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
    pub app_id: AppId,
    /// The card id.
    pub id: CardId,
    /// Whose card.
    pub identity: Identity,
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
        chain_id: CardId,
        /// The card being rotated.
        previous_card_id: CardId,
    },
}

impl Placement {
    /// The chain the new card joins (a root starts its own, named after itself).
    pub fn chain_id<'a>(&'a self, card: &'a CardId) -> &'a CardId {
        match self {
            Placement::Root { .. } => card,
            Placement::Successor { chain_id, .. } => chain_id,
        }
    }

    /// The card the new one rotates, if any.
    pub fn previous(&self) -> Option<&CardId> {
        match self {
            Placement::Root { .. } => None,
            Placement::Successor { previous_card_id, .. } => Some(previous_card_id),
        }
    }
}

/// A chain revocation.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// The app.
    pub app_id: AppId,
    /// The chain (its root card's id).
    pub chain_id: CardId,
    /// Whose chain.
    pub identity: Identity,
    /// Unix seconds.
    pub at: i64,
    /// Why.
    pub reason: Option<String>,
    /// Who (`user:…` or `admin:…`).
    pub by: String,
}

/// A read of some identities' cards, refused whole (`TooLarge`) once the stored bytes of the
/// cards it would return exceed `max_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct CardsQuery<'a> {
    /// The app.
    pub app_id: &'a AppId,
    /// The identities, sorted and distinct.
    pub identities: &'a [Identity],
    /// The byte budget.
    pub max_bytes: usize,
    /// Which copy of the database may answer.
    pub from: ReadFrom,
}

/// Which copy of the database may answer a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The primary: what every write has committed.
    Primary,
    /// A read replica known to lag the primary by less than the configured bound, else the
    /// primary. Never for an answer that must be at least as new as something the client saw
    /// (a revalidation's full answer).
    FreshReplica,
}

/// A page of an app's event log: events after `after`, at most `limit`, and no more than fit in
/// `max_bytes` of bodies (at least one, whatever its size).
#[derive(Debug, Clone, Copy)]
pub struct EventsQuery<'a> {
    /// The app.
    pub app_id: &'a AppId,
    /// The sequence number to start after.
    pub after: i64,
    /// Most events.
    pub limit: i64,
    /// The byte budget.
    pub max_bytes: usize,
}

/// What a lookup reads: every requested identity that ever changed with its counter, in
/// identity order, and the active cards, ordered as `find_active_cards` orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveLookup {
    /// The identities' states; identities that never had a card are absent.
    pub states: Vec<(Identity, super::IdentityState)>,
    /// The active cards.
    pub cards: Vec<CardRecord>,
}

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

/// Which schema migrations a database has applied, and which this build carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Versions recorded as applied, ascending.
    pub applied: Vec<i64>,
    /// Versions this build would apply, ascending.
    pub known: Vec<i64>,
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
    /// SQLite's one writer path; none on PostgreSQL.
    pub writes: Option<WriteQueueStats>,
}

/// What is known of one read replica, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStats {
    /// How far behind the primary it is known to be at most; `None` while nothing is known.
    pub staleness: Option<std::time::Duration>,
    /// Reads it answered.
    pub reads: u64,
}

/// The read replicas, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicasStats {
    /// Each replica, in the configured order.
    pub replicas: Vec<ReplicaStats>,
    /// The bound past which a replica does not answer.
    pub max_lag: std::time::Duration,
    /// Reads that could use a replica but went to the primary: none was fresh enough.
    pub stale_fallbacks: u64,
    /// Reads that went to the primary because the fresh replica could not be reached.
    pub error_fallbacks: u64,
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
    /// The URL goes through a transaction-mode pooler: statements are unnamed, no startup
    /// options are sent.
    pub behind_pooler: bool,
    /// A direct URL for LISTEN, when the main one goes through a pooler.
    pub listen_url: Option<String>,
    /// Read replicas.
    pub replica_urls: Vec<String>,
    /// Most a replica may lag before its reads go to the primary.
    pub replica_max_lag: std::time::Duration,
    /// SQLite: the one writer path's bounds.
    pub write_queue: WriteQueueSettings,
    /// SQLite: each connection's page cache, in KiB.
    pub sqlite_page_cache_kib: u32,
}

/// How many writers may queue for SQLite's one writer path, and for how long, before a write is
/// refused with 503 and `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct WriteQueueSettings {
    /// Writers waiting or writing at once; one more is refused.
    pub max_writers: usize,
    /// Longest wait for a turn.
    pub max_wait: std::time::Duration,
}

impl Default for WriteQueueSettings {
    fn default() -> Self {
        WriteQueueSettings { max_writers: 512, max_wait: std::time::Duration::from_secs(1) }
    }
}

/// SQLite's write queue, read at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteQueueStats {
    /// Writers queued or writing now.
    pub writers: u64,
    /// The most that may be.
    pub max_writers: u64,
    /// Group commits so far.
    pub commits: u64,
    /// Writes those commits made durable.
    pub committed: u64,
    /// Writes refused because the queue was full or the wait too long.
    pub refused: u64,
    /// Summed over every turn: the wait for it.
    pub waited: std::time::Duration,
    /// Summed over every turn: how long writers held it (their own statements).
    pub held: std::time::Duration,
    /// Summed over every group commit: its time, during which no writer has a turn.
    pub committing: std::time::Duration,
}

impl PoolSettings {
    /// A pool of `max_connections` with the defaults for the rest (tools and tests).
    pub fn simple(max_connections: u32, acquire_timeout: std::time::Duration) -> Self {
        PoolSettings {
            max_connections,
            min_connections: 0,
            acquire_timeout,
            behind_pooler: false,
            listen_url: None,
            replica_urls: Vec::new(),
            replica_max_lag: std::time::Duration::from_secs(1),
            write_queue: WriteQueueSettings::default(),
            sqlite_page_cache_kib: 512,
        }
    }
}
