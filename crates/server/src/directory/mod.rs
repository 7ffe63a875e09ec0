//! What the directory means: who may publish, rotate and revoke which card, what a lookup
//! returns, and which event each change writes. No HTTP and no SQL here: the store guarantees
//! atomicity, these rules decide.

mod etag;
mod versions;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use cardinal_card::card::{check_card_size, countersign};
use cardinal_card::log::EventKind;
use cardinal_card::wire::CardStatus;
use cardinal_card::{CardError, CardId, FormatLimits, Identity, ParsedCard, RawSignedModel, SigningKey};
use thiserror::Error;

use crate::storage::{
    CardRecord, CardStore, CardsPerIdentity, EventDraft, EventRow, KeyRole, NewCard, Placement, Revocation,
    StorageError, constraint,
};

pub use etag::lookup_etag;
pub use versions::VersionCache;

/// Who is calling, as established from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The app the token is scoped to.
    pub app_id: String,
    /// The token's subject: a user's identity, or an admin's name.
    pub subject: String,
    /// The role of the key that signed the token.
    pub role: KeyRole,
    /// That key's id.
    pub kid: String,
}

impl Caller {
    /// How the event log names this caller.
    pub fn actor(&self) -> String {
        match self.role {
            KeyRole::App => format!("user:{}", self.subject),
            KeyRole::Admin => format!("admin:{}", self.subject),
        }
    }
}

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
    Storage(#[from] StorageError),
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

/// A lookup's current ETag, and where its change counters came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revalidation {
    /// The tag.
    pub etag: String,
    /// Whether every counter came from memory, without a database round trip.
    pub from_memory: bool,
}

/// How the identities of a lookup are counted against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// As listed, duplicates included.
    Listed,
    /// Distinct identities only.
    Distinct,
}

/// The directory of every app.
pub struct Directory {
    store: Arc<dyn CardStore>,
    service_key: SigningKey,
    rules: Rules,
    /// Each app's chain policy. It is fixed when the app is created and apps are never
    /// deleted, so a copy never goes stale; it saves a read per root publish.
    policies: RwLock<HashMap<String, CardsPerIdentity>>,
    /// Identity change counters in memory, when the store can say what changed.
    versions: Option<Arc<VersionCache>>,
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl Directory {
    /// The directory over a store, countersigning with `service_key`.
    pub fn new(store: Arc<dyn CardStore>, service_key: SigningKey, rules: Rules) -> Self {
        Directory { store, service_key, rules, policies: RwLock::default(), versions: None }
    }

    /// Serves identity change counters from `cache` while it is live (see [`VersionCache`]).
    pub fn with_version_cache(mut self, cache: Arc<VersionCache>) -> Self {
        self.versions = Some(cache);
        self
    }

    /// This process changed an identity: its own next revalidation must see it.
    fn changed(&self, app_id: &str, identity: &str) {
        if let Some(cache) = &self.versions {
            cache.forget(app_id, identity);
        }
    }

    async fn policy(&self, app_id: &str) -> Result<CardsPerIdentity, DirectoryError> {
        let known = self.policies.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(app_id).copied();
        if let Some(policy) = known {
            return Ok(policy);
        }
        let app = self.store.find_app(app_id).await?.ok_or(DirectoryError::Forbidden("unknown app"))?;
        self.policies.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(app.id, app.cards_per_identity);
        Ok(app.cards_per_identity)
    }

    /// The store, for health checks.
    pub fn store(&self) -> &Arc<dyn CardStore> {
        &self.store
    }

    /// The countersigning key.
    pub fn service_key(&self) -> &SigningKey {
        &self.service_key
    }

    /// Refuses a rendered answer over `limits.answer_bytes`: the store bounds the cards it reads
    /// by the same number, this bounds what is sent.
    pub fn bounded_answer(&self, body: String) -> Result<String, DirectoryError> {
        if body.len() > self.rules.answer_bytes {
            return Err(DirectoryError::AnswerTooLarge { max: self.rules.answer_bytes });
        }
        Ok(body)
    }

    /// Publishes a root card or, with `previous_card_id`, a rotation.
    // User-controlled fields are recorded with `?` (quoted and escaped): an identity such as
    // "m app=other identity=alice" must not read as other fields in the pretty log format.
    #[tracing::instrument(skip_all, fields(app = ?caller.app_id, identity = ?caller.subject, card.id))]
    pub async fn publish(&self, caller: &Caller, raw: RawSignedModel) -> Result<Card, DirectoryError> {
        if caller.role != KeyRole::App {
            return Err(DirectoryError::Forbidden("cards are published with a user token"));
        }
        let parsed = ParsedCard::parse(raw, &self.rules.format)?;
        tracing::Span::current().record("card.id", parsed.id.as_str());
        let identity = parsed.content.identity.as_str();
        if identity != caller.subject {
            return Err(DirectoryError::IdentityMismatch { card: identity.to_owned(), token: caller.subject.clone() });
        }
        let (placement, chain_index) = match &parsed.content.previous_card_id {
            Some(previous) => self.successor_placement(caller, identity, previous).await?,
            None => (
                Placement::Root {
                    exclusive: self.policy(&caller.app_id).await? == CardsPerIdentity::Single,
                    max_live_chains: self.rules.live_chains_per_identity,
                },
                0,
            ),
        };

        let at = now();
        let mut signed = parsed.raw.clone();
        countersign(&mut signed, &parsed.snapshot, &self.service_key);
        let raw = serde_json::to_string(&signed).map_err(|e| StorageError::Other(e.to_string()))?;
        check_card_size(&raw, &self.rules.format)?;
        let new_card = NewCard {
            app_id: caller.app_id.clone(),
            id: parsed.id.to_string(),
            identity: identity.to_owned(),
            chain_index,
            created_at: parsed.content.created_at,
            published_at: at.timestamp(),
            public_key: parsed.content.public_key_base64.clone(),
            raw,
        };
        let events = publish_events(caller, &new_card, &placement, at.timestamp_millis());
        let stored = self.store.insert_card(&new_card, &placement, &events).await;
        self.changed(&caller.app_id, identity);
        match stored {
            Ok(()) => {}
            Err(StorageError::Conflict { constraint }) => {
                return Err(self.explain_publish_conflict(&caller.app_id, &new_card.id, &constraint, &placement).await);
            }
            Err(other) => return Err(other.into()),
        }
        tracing::info!(card.id = %new_card.id, identity = ?identity, rotation = matches!(placement, Placement::Successor { .. }), "card published");
        let chain_id = match placement {
            Placement::Root { .. } => new_card.id.clone(),
            Placement::Successor { chain_id, .. } => chain_id,
        };
        Ok(Card {
            record: CardRecord {
                id: new_card.id,
                identity: new_card.identity,
                chain_id,
                previous_card_id: parsed.content.previous_card_id.map(|id| id.to_string()),
                superseded_by: None,
                chain_index: new_card.chain_index,
                created_at: new_card.created_at,
                published_at: new_card.published_at,
                public_key: new_card.public_key,
                raw: new_card.raw,
                revoked_at: None,
                revocation_reason: None,
                revoked_by: None,
            },
        })
    }

    async fn successor_placement(
        &self,
        caller: &Caller,
        identity: &str,
        previous: &CardId,
    ) -> Result<(Placement, i64), DirectoryError> {
        let previous = self
            .store
            .find_card(&caller.app_id, previous.as_str())
            .await?
            .ok_or(DirectoryError::PreviousCardNotFound)?;
        if previous.identity != identity {
            return Err(DirectoryError::PreviousCardMismatch);
        }
        if previous.revoked_at.is_some() {
            return Err(DirectoryError::ChainRevoked);
        }
        if previous.superseded_by.is_some() {
            return Err(DirectoryError::AlreadySuperseded);
        }
        let chain_index = previous.chain_index + 1;
        Ok((Placement::Successor { chain_id: previous.chain_id, previous_card_id: previous.id }, chain_index))
    }

    /// A concurrent request won a race the checks above could not see: say which one.
    async fn explain_publish_conflict(
        &self,
        app_id: &str,
        card_id: &str,
        name: &str,
        placement: &Placement,
    ) -> DirectoryError {
        match (name, placement) {
            (constraint::CARDS_PKEY | constraint::CHAINS_PKEY, _) => DirectoryError::CardExists,
            (constraint::CHAINS_PER_IDENTITY, _) => {
                DirectoryError::TooManyChains { max: self.rules.live_chains_per_identity }
            }
            // Which unique index fires first is the database's choice: a republished card is
            // "exists", whichever constraint noticed it.
            (constraint::CHAINS_SINGLE_ACTIVE, _) => match self.store.find_card(app_id, card_id).await {
                Ok(Some(_)) => DirectoryError::CardExists,
                Ok(None) => DirectoryError::IdentityTaken,
                Err(e) => e.into(),
            },
            (
                constraint::CHAIN_HEAD_MOVED | constraint::CARDS_ONE_SUCCESSOR,
                Placement::Successor { previous_card_id, .. },
            ) => match self.store.find_card(app_id, previous_card_id).await {
                Ok(Some(previous)) if previous.revoked_at.is_some() => DirectoryError::ChainRevoked,
                Ok(_) => DirectoryError::AlreadySuperseded,
                Err(e) => e.into(),
            },
            (other, _) => StorageError::Other(format!("unexpected conflict on {other}")).into(),
        }
    }

    /// One card of the caller's app, whatever its status.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Card, DirectoryError> {
        let id: CardId = id.parse().map_err(|_| DirectoryError::InvalidCardId)?;
        // Validated: 64 hex characters, safe to log as is.
        tracing::Span::current().record("card.id", id.as_str());
        let mut record =
            self.store.find_card(&caller.app_id, id.as_str()).await?.ok_or(DirectoryError::CardNotFound)?;
        // A revocation reason is free text ("left the clinic", "lost phone"): only the card's
        // owner and the app's admins read it; every other user sees that and when, not why.
        if caller.role != KeyRole::Admin && caller.subject != record.identity {
            record.revocation_reason = None;
            record.revoked_by = None;
        }
        Ok(Card { record })
    }

    /// Validates and deduplicates the identities of a lookup.
    ///
    /// `Count::Listed` bounds the identities as listed, duplicates included (the native API:
    /// the limit bounds the work a request can ask for); `Count::Distinct` bounds distinct ones
    /// only (the Virgil surface, whose clients may repeat an identity).
    pub fn lookup_identities<'a>(
        &self,
        identities: impl IntoIterator<Item = &'a str>,
        count: Count,
    ) -> Result<Vec<String>, DirectoryError> {
        let mut distinct = BTreeSet::new();
        for (listed, identity) in identities.into_iter().enumerate() {
            if count == Count::Listed && listed >= self.rules.identities_per_lookup {
                return Err(DirectoryError::TooManyIdentities { max: self.rules.identities_per_lookup });
            }
            let identity = Identity::parse_with_limit(identity, self.rules.format.max_identity_bytes)
                .map_err(DirectoryError::InvalidIdentity)?;
            distinct.insert(identity.into_string());
            if distinct.len() > self.rules.identities_per_lookup {
                return Err(DirectoryError::TooManyIdentities { max: self.rules.identities_per_lookup });
            }
        }
        if distinct.is_empty() {
            return Err(DirectoryError::NoIdentities);
        }
        Ok(distinct.into_iter().collect())
    }

    /// The ETag of a lookup, from the identities' change counters alone (no card is read).
    ///
    /// Used to decide a 304; a full answer takes its tag from [`Self::lookup_tagged`], which
    /// reads the counters and the cards in one snapshot.
    pub async fn lookup_tag(&self, caller: &Caller, identities: &[String]) -> Result<Revalidation, DirectoryError> {
        let tag = |versions: &[(String, i64)]| lookup_etag(&caller.app_id, identities, versions);
        let Some(cache) = &self.versions else {
            let versions = self.store.identity_versions(&caller.app_id, identities).await?;
            return Ok(Revalidation { etag: tag(&versions), from_memory: false });
        };
        if let Some(versions) = cache.get_all(&caller.app_id, identities) {
            return Ok(Revalidation { etag: tag(&versions), from_memory: true });
        }
        let generation = cache.generation();
        let versions = self.store.identity_versions(&caller.app_id, identities).await?;
        cache.remember(generation, &caller.app_id, identities, &versions);
        Ok(Revalidation { etag: tag(&versions), from_memory: false })
    }

    /// The active cards of each identity, newest first; every identity is a key.
    pub async fn lookup(
        &self,
        caller: &Caller,
        identities: &[String],
    ) -> Result<BTreeMap<String, Vec<Card>>, DirectoryError> {
        let records = self.store.find_active_cards(&caller.app_id, identities, self.rules.answer_bytes).await?;
        Ok(group_by_identity(identities, records))
    }

    /// The lookup and its ETag, read in one statement (one snapshot, one round trip).
    pub async fn lookup_tagged(
        &self,
        caller: &Caller,
        identities: &[String],
    ) -> Result<(String, BTreeMap<String, Vec<Card>>), DirectoryError> {
        // The counters read here are not remembered: a full answer would pay for 50 cache
        // inserts it does not need, and a client's next revalidation remembers them anyway.
        let read = self.store.lookup_active(&caller.app_id, identities, self.rules.answer_bytes).await?;
        let tag = lookup_etag(&caller.app_id, identities, &read.versions);
        Ok((tag, group_by_identity(identities, read.cards)))
    }

    /// The newest `search_cards_per_chain` cards of every unrevoked chain of these identities,
    /// superseded ones included: Virgil clients fold each rotation chain into its newest card
    /// themselves, and e3kit reads the previous ones to decrypt older messages.
    pub async fn unrevoked_chains(&self, caller: &Caller, identities: &[String]) -> Result<Vec<Card>, DirectoryError> {
        let records = self
            .store
            .find_unrevoked_chain_cards(
                &caller.app_id,
                identities,
                self.rules.search_cards_per_chain,
                self.rules.answer_bytes,
            )
            .await?;
        Ok(records.into_iter().map(|record| Card { record }).collect())
    }

    /// Revokes the chain of one of the caller's own cards. Repeating it changes nothing.
    #[tracing::instrument(skip_all, fields(app = ?caller.app_id, card.id))]
    pub async fn revoke_own(&self, caller: &Caller, id: &str, reason: Option<String>) -> Result<Card, DirectoryError> {
        if caller.role != KeyRole::App {
            return Err(DirectoryError::Forbidden("owners revoke with a user token; admins use the admin route"));
        }
        let card = self.get(caller, id).await?;
        if card.record.identity != caller.subject {
            return Err(DirectoryError::Forbidden("only the card's owner may revoke it"));
        }
        let reason = self.check_reason(reason, false)?;
        self.revoke(caller, card, reason).await
    }

    /// Revokes any card's chain of the admin's app, with a reason.
    #[tracing::instrument(skip_all, fields(app = ?caller.app_id, card.id))]
    pub async fn revoke_as_admin(
        &self,
        caller: &Caller,
        id: &str,
        reason: Option<String>,
    ) -> Result<Card, DirectoryError> {
        if caller.role != KeyRole::Admin {
            return Err(DirectoryError::Forbidden("this route needs an admin token"));
        }
        let reason = self.check_reason(reason, true)?;
        let card = self.get(caller, id).await?;
        self.revoke(caller, card, reason).await
    }

    fn check_reason(&self, reason: Option<String>, required: bool) -> Result<Option<String>, DirectoryError> {
        match reason {
            Some(r) if r.len() > self.rules.reason_max_bytes => Err(DirectoryError::InvalidReason(format!(
                "reason is longer than {} bytes",
                self.rules.reason_max_bytes
            ))),
            Some(r) if r.trim().is_empty() && required => {
                Err(DirectoryError::InvalidReason("an admin revocation needs a reason".into()))
            }
            None if required => Err(DirectoryError::InvalidReason("an admin revocation needs a reason".into())),
            other => Ok(other),
        }
    }

    async fn revoke(&self, caller: &Caller, card: Card, reason: Option<String>) -> Result<Card, DirectoryError> {
        let at = now();
        let revocation = Revocation { at: at.timestamp(), reason: reason.clone(), by: caller.actor() };
        let mut detail = BTreeMap::from([("chain_id".to_owned(), card.record.chain_id.clone())]);
        if let Some(reason) = reason {
            detail.insert("reason".to_owned(), reason);
        }
        let event = EventDraft {
            kind: EventKind::ChainRevoked,
            at_ms: at.timestamp_millis(),
            card_id: Some(card.record.id.clone()),
            identity: Some(card.record.identity.clone()),
            actor: caller.actor(),
            detail,
        };
        let changed = self
            .store
            .revoke_chain(&caller.app_id, &card.record.chain_id, &card.record.identity, &revocation, event)
            .await;
        self.changed(&caller.app_id, &card.record.identity);
        let changed = changed?;
        if changed {
            tracing::info!(card.id = %card.record.id, identity = ?card.record.identity, actor = ?caller.actor(), "chain revoked");
        }
        self.get(caller, &card.record.id).await
    }

    /// A page of the caller's app's event log; admins only.
    pub async fn events(&self, caller: &Caller, after: i64, limit: i64) -> Result<Vec<EventRow>, DirectoryError> {
        if caller.role != KeyRole::Admin {
            return Err(DirectoryError::Forbidden("the event log needs an admin token"));
        }
        if after < 0 {
            return Err(DirectoryError::InvalidPage("after must be 0 or more".into()));
        }
        if !(1..=self.rules.events_page_max).contains(&limit) {
            return Err(DirectoryError::InvalidPage(format!("limit must be 1 to {}", self.rules.events_page_max)));
        }
        Ok(self.store.list_events(&caller.app_id, after, limit, self.rules.answer_bytes).await?)
    }
}

/// Every requested identity is a key, with its cards in the order the store gave them.
fn group_by_identity(identities: &[String], records: Vec<CardRecord>) -> BTreeMap<String, Vec<Card>> {
    let mut found: BTreeMap<String, Vec<Card>> = identities.iter().map(|i| (i.clone(), Vec::new())).collect();
    for record in records {
        if let Some(cards) = found.get_mut(&record.identity) {
            cards.push(Card { record });
        }
    }
    found
}

fn publish_events(caller: &Caller, card: &NewCard, placement: &Placement, at_ms: i64) -> Vec<EventDraft> {
    let event = |kind, card_id: &str, detail: BTreeMap<String, String>| EventDraft {
        kind,
        at_ms,
        card_id: Some(card_id.to_owned()),
        identity: Some(card.identity.clone()),
        actor: caller.actor(),
        detail,
    };
    match placement {
        Placement::Root { .. } => vec![event(EventKind::CardPublished, &card.id, BTreeMap::new())],
        Placement::Successor { chain_id, previous_card_id } => vec![
            event(
                EventKind::CardPublished,
                &card.id,
                BTreeMap::from([
                    ("previous_card_id".to_owned(), previous_card_id.clone()),
                    ("chain_id".to_owned(), chain_id.clone()),
                ]),
            ),
            event(
                EventKind::CardSuperseded,
                previous_card_id,
                BTreeMap::from([("superseded_by".to_owned(), card.id.clone())]),
            ),
        ],
    }
}
