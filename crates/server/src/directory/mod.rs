//! What the directory means: who may publish, rotate and revoke which card, what a lookup
//! returns, when an answer is unchanged (the ETags and the 304 decision), and which event each
//! change writes. No HTTP and no SQL here: the store guarantees atomicity, these rules decide.
//!
//! One file per use case: [`publish`](Directory::publish), lookups (`lookup.rs`), revocations
//! (`revoke.rs`) and the event log (`events.rs`); `etag.rs` decides revalidations for lookups and
//! single cards alike; `versions.rs` keeps the identities' change counters in memory.

mod answers;
mod etag;
mod events;
mod lookup;
mod publish;
mod revoke;
mod versions;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cardinal_card::wire::CardStatus;
use cardinal_card::{CardError, FormatLimits, SigningKey};
use thiserror::Error;

use crate::clock::Clock;
use crate::domain::{AppId, CardsPerIdentity};
use crate::storage::{AppStore, CardRecord, CardStore, EventLog, StorageError, Store};

pub use answers::{AnswerCache, AnswerCacheBytes};
pub use etag::{IfNoneMatch, card_etag, lookup_etag};
pub use lookup::{CardsByIdentity, Count, Lookup};
pub use revoke::Revoker;
pub use versions::VersionCache;

/// Why the directory refused.
#[derive(Debug, Error)]
pub enum DirectoryError {
    /// The card itself is malformed or its self signature fails.
    #[error(transparent)]
    Card(#[from] CardError),
    /// The card names another identity than the token.
    #[error("the card's identity {card:?} is not the token's subject {token:?}")]
    IdentityMismatch {
        /// in the card
        card: String,
        /// in the token
        token: String,
    },
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such card in the caller's app.
    #[error("no such card")]
    CardNotFound,
    /// `previous_card_id` names no card of the app.
    #[error("the previous card does not exist")]
    PreviousCardNotFound,
    /// `previous_card_id` names another identity's card.
    #[error("the previous card belongs to another identity")]
    PreviousCardMismatch,
    /// The previous card already has a successor.
    #[error("the previous card was already superseded")]
    AlreadySuperseded,
    /// The chain was revoked and cannot be extended.
    #[error("the card's chain is revoked")]
    ChainRevoked,
    /// The same card was published before.
    #[error("this card is already published")]
    CardExists,
    /// Single-chain policy: the identity already has a live chain.
    #[error("the identity already has an active card; rotate it with previous_card_id or revoke it first")]
    IdentityTaken,
    /// The identity has as many live chains as allowed.
    #[error("the identity already has {max} live card chains; revoke one first")]
    TooManyChains {
        /// the limit
        max: i64,
    },
    /// A lookup named too many identities.
    #[error("at most {max} distinct identities per lookup")]
    TooManyIdentities {
        /// the limit
        max: usize,
    },
    /// An answer would exceed the configured byte bound.
    #[error("the answer would exceed {max} bytes; ask for fewer identities per request")]
    AnswerTooLarge {
        /// the bound
        max: usize,
    },
    /// A lookup named none.
    #[error("name at least one identity")]
    NoIdentities,
    /// An identity in a lookup is malformed.
    #[error("invalid identity: {0}")]
    InvalidIdentity(CardError),
    /// A card id in a path is malformed.
    #[error("card ids are 64 lowercase hex characters")]
    InvalidCardId,
    /// A revocation reason is missing or too long.
    #[error("{0}")]
    InvalidReason(String),
    /// An events page is out of range.
    #[error("{0}")]
    InvalidPage(String),
    /// The store failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for DirectoryError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::TooLarge { max_bytes } => DirectoryError::AnswerTooLarge { max: max_bytes },
            other => DirectoryError::Storage(other),
        }
    }
}

/// Limits the rules enforce beyond the card format.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Card format limits.
    pub format: FormatLimits,
    /// Identities per lookup.
    pub identities_per_lookup: usize,
    /// Reason bytes.
    pub reason_max_bytes: usize,
    /// Events per page.
    pub events_page_max: i64,
    /// Live chains per identity, for apps that allow several.
    pub live_chains_per_identity: i64,
    /// Newest cards of each chain that a Virgil search returns.
    pub search_cards_per_chain: i64,
    /// Most bytes of cards (and of events) in one answer.
    pub answer_bytes: usize,
}

/// A card with the status derived from its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// As stored.
    pub record: CardRecord,
}

impl Card {
    /// Revoked if its chain is, superseded if rotated, else active.
    pub fn status(&self) -> CardStatus {
        if self.record.revoked_at.is_some() {
            CardStatus::Revoked
        } else if self.record.superseded_by.is_some() {
            CardStatus::Superseded
        } else {
            CardStatus::Active
        }
    }
}

/// The directory of every app.
pub struct Directory {
    cards: Arc<dyn CardStore>,
    apps: Arc<dyn AppStore>,
    log: Arc<dyn EventLog>,
    service_key: SigningKey,
    rules: Rules,
    clock: Arc<dyn Clock>,
    /// Each app's chain policy. It is fixed when the app is created and apps are never
    /// deleted, so a copy never goes stale; it saves a read per root publish.
    policies: RwLock<HashMap<AppId, CardsPerIdentity>>,
    /// Identity change counters in memory, when the store can say what changed.
    versions: Option<Arc<VersionCache>>,
    /// Identities' active cards by state, when configured.
    answers: Option<Arc<AnswerCache>>,
    /// Whether first lookups may be read from a replica (then, without states in memory, the
    /// answer cache does not send them to the primary for states).
    replicas: bool,
}

impl Directory {
    /// The directory over a store, countersigning with `service_key`, telling time by `clock`.
    pub fn new(store: Arc<dyn Store>, service_key: SigningKey, rules: Rules, clock: Arc<dyn Clock>) -> Self {
        Directory {
            cards: store.clone(),
            apps: store.clone(),
            log: store,
            service_key,
            rules,
            clock,
            policies: RwLock::default(),
            versions: None,
            answers: None,
            replicas: false,
        }
    }

    /// Serves identity change counters from `cache` while it is live (see [`VersionCache`]).
    pub fn with_version_cache(mut self, cache: Arc<VersionCache>) -> Self {
        self.versions = Some(cache);
        self
    }

    /// Answers lookups from `cache` wherever the identity's current state is known to match
    /// (see [`AnswerCache`]).
    pub fn with_answer_cache(mut self, cache: Arc<AnswerCache>) -> Self {
        self.answers = Some(cache);
        self
    }

    /// Says that the store reads first lookups from read replicas.
    pub fn with_replicas(mut self, replicas: bool) -> Self {
        self.replicas = replicas;
        self
    }

    /// The countersigning key.
    pub fn service_key(&self) -> &SigningKey {
        &self.service_key
    }

    /// This process changed an identity: its own next revalidation must see it.
    fn changed(&self, app_id: &AppId, identity: &crate::domain::Identity) {
        if let Some(cache) = &self.versions {
            cache.forget(app_id, identity);
        }
    }

    async fn policy(&self, app_id: &AppId) -> Result<CardsPerIdentity, DirectoryError> {
        let known = self.policies.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(app_id).copied();
        if let Some(policy) = known {
            return Ok(policy);
        }
        let app = self.apps.find_app(app_id).await?.ok_or(DirectoryError::Forbidden("unknown app"))?;
        self.policies.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(app.id, app.cards_per_identity);
        Ok(app.cards_per_identity)
    }

    /// Refuses a rendered answer over `limits.answer_bytes`: the store bounds the cards it reads
    /// by the same number, this bounds what is sent.
    pub fn bounded_answer(&self, body: String) -> Result<String, DirectoryError> {
        if body.len() > self.rules.answer_bytes {
            return Err(DirectoryError::AnswerTooLarge { max: self.rules.answer_bytes });
        }
        Ok(body)
    }
}
