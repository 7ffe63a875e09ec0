//! The admin read API's rules: only an app's admins read it, every page is bounded and every
//! cursor stable, another app's data is never in reach, and a key revocation goes through the
//! same rule (and event) as `cardinal key revoke`.

use std::sync::Arc;

use cardinal_card::log::{GENESIS_HASH, StoredEvent, verify_chain};
use cardinal_card::{FormatLimits, ParsedCard, PublicKey, RawSignedModel};

use crate::apps::{AppAdmin, AppsError};
use crate::clock::Clock;
use crate::domain::{Caller, Identity, KeyRole};
use crate::storage::admin::{AppCounts, HistoryCard, HistoryCursor, IdentitiesQuery, IdentitySummary};
use crate::storage::{ApiKeyRecord, CardRecord, EventRow, EventsQuery, StorageError, Store};

/// Why an admin read was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not an admin token.
    #[error("the admin API needs an admin token")]
    NotAdmin,
    /// A page or cursor out of bounds or malformed.
    #[error("{0}")]
    InvalidPage(String),
    /// An identity that is not one.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),
    /// No such key in the caller's app.
    #[error("no such key in this app")]
    UnknownKey,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Bounds of the admin pages.
#[derive(Debug, Clone)]
pub struct AdminLimits {
    /// Most rows a page may ask for.
    pub page_max: i64,
    /// Most events shown beside one identity's history.
    pub history_events_max: i64,
    /// The card format's bounds, as publishing applies them.
    pub format: FormatLimits,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits { page_max: 500, history_events_max: 1000, format: FormatLimits::default() }
    }
}

/// One identity's cards and the events that made them so.
#[derive(Debug, Clone)]
pub struct History {
    /// Cards in chain order (chains as they began, each root first).
    pub cards: Vec<HistoryCard>,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
    /// The events naming its cards, oldest first.
    pub events: Vec<EventRow>,
}

/// What the log's verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// Events checked.
    pub checked: i64,
    /// The newest event's hash, hex.
    pub head: String,
    /// The first failure, when the chain does not verify.
    pub failure: Option<String>,
}

/// The admin read API over one store.
pub struct Admin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    service_key: PublicKey,
    limits: AdminLimits,
}

/// Whether a stored card's signatures verify now: its own, and the service's countersignature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signatures {
    /// The self signature (and the card's format and id).
    pub self_signature: bool,
    /// The service's countersignature, with the service key this instance holds.
    pub countersignature: bool,
}

fn admin_only(caller: &Caller) -> Result<(), AdminError> {
    if caller.role == KeyRole::Admin { Ok(()) } else { Err(AdminError::NotAdmin) }
}

fn bounded(limit: i64, max: i64) -> Result<i64, AdminError> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(AdminError::InvalidPage(format!("limit must be 1 to {max}")))
    }
}

/// A history cursor as it travels: `<chain created at>.<chain id>.<index>`.
pub fn history_cursor(card: &HistoryCard) -> String {
    format!("{}.{}.{}", card.chain_created_at, card.card.chain_id, card.card.chain_index)
}

fn parse_history_cursor(text: &str) -> Result<HistoryCursor, AdminError> {
    let invalid = || AdminError::InvalidPage("after is not a cursor this API gave".into());
    let mut parts = text.splitn(3, '.');
    let (Some(at), Some(chain), Some(index)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let chain_id: crate::domain::CardId = chain.parse().map_err(|_| invalid())?;
    Ok(HistoryCursor {
        chain_created_at: at.parse().map_err(|_| invalid())?,
        chain_id: chain_id.to_string(),
        chain_index: index.parse().map_err(|_| invalid())?,
    })
}

impl Admin {
    /// The admin API over `store`, with these bounds.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, service_key: PublicKey, limits: AdminLimits) -> Self {
        Admin { store, clock, service_key, limits }
    }

    /// Re-verifies a stored card, as a client would: an admin sees a card that was altered in
    /// the database, or countersigned by another key.
    pub fn signatures(&self, card: &CardRecord) -> Signatures {
        let parsed = serde_json::from_str::<RawSignedModel>(&card.raw)
            .ok()
            .and_then(|raw| ParsedCard::parse_published(raw, &self.limits.format).ok())
            .filter(|parsed| parsed.id == card.id);
        Signatures {
            self_signature: parsed.is_some(),
            countersignature: parsed.is_some_and(|parsed| parsed.has_valid_countersignature(&self.service_key)),
        }
    }

    /// A page of the caller's app's identities that start with `prefix`, after `after`.
    pub async fn identities(
        &self,
        caller: &Caller,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<IdentitySummary>, Option<String>), AdminError> {
        admin_only(caller)?;
        let limit = bounded(limit, self.limits.page_max)?;
        if prefix.len() > 256 || after.is_some_and(|after| after.is_empty() || after.len() > 256) {
            return Err(AdminError::InvalidPage("prefix is at most 256 bytes, after 1 to 256".into()));
        }
        let query = IdentitiesQuery { app_id: &caller.app_id, prefix, after, limit };
        let page = self.store.list_identities(query).await?;
        let next = (page.len() as i64 == limit).then(|| page.last().map(|row| row.identity.to_string())).flatten();
        Ok((page, next))
    }

    /// A page of one identity's history, and the events naming its cards.
    pub async fn history(
        &self,
        caller: &Caller,
        identity: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<History, AdminError> {
        admin_only(caller)?;
        let limit = bounded(limit, self.limits.page_max)?;
        let identity = Identity::parse(identity).map_err(|e| AdminError::InvalidIdentity(e.to_string()))?;
        let cursor = after.map(parse_history_cursor).transpose()?;
        let cards = self.store.identity_history(&caller.app_id, &identity, cursor.as_ref(), limit).await?;
        let next = (cards.len() as i64 == limit).then(|| cards.last().map(history_cursor)).flatten();
        let events = self.store.identity_events(&caller.app_id, &identity, self.limits.history_events_max).await?;
        Ok(History { cards, next, events })
    }

    /// The caller's app's API keys (never private material: there is none stored).
    pub async fn keys(&self, caller: &Caller) -> Result<Vec<ApiKeyRecord>, AdminError> {
        admin_only(caller)?;
        Ok(self.store.list_api_keys(Some(&caller.app_id)).await?)
    }

    /// Revokes one of the caller's app's keys, as `cardinal key revoke` does; `false` if it
    /// already was.
    pub async fn revoke_key(&self, caller: &Caller, kid: &str) -> Result<bool, AdminError> {
        admin_only(caller)?;
        let ours = self.store.find_api_key(kid).await?.is_some_and(|key| key.app_id == caller.app_id);
        if !ours {
            return Err(AdminError::UnknownKey);
        }
        let actor = format!("admin:{}", caller.subject);
        match AppAdmin::new(self.store.as_ref(), self.clock.as_ref()).revoke_key(kid, &actor).await {
            Ok(changed) => Ok(changed),
            Err(AppsError::UnknownKey(_)) => Err(AdminError::UnknownKey),
            Err(AppsError::Storage(error)) => Err(error.into()),
            Err(other) => Err(AdminError::InvalidPage(other.to_string())),
        }
    }

    /// The caller's app's counts.
    pub async fn counts(&self, caller: &Caller) -> Result<AppCounts, AdminError> {
        admin_only(caller)?;
        Ok(self.store.app_counts(&caller.app_id).await?)
    }

    /// Verifies the caller's app's whole event chain from its genesis.
    pub async fn check_log(&self, caller: &Caller) -> Result<LogCheck, AdminError> {
        admin_only(caller)?;
        const PAGE: i64 = 1000;
        let (mut seq, mut head) = (0i64, GENESIS_HASH);
        loop {
            let query = EventsQuery { app_id: &caller.app_id, after: seq, limit: PAGE, max_bytes: 16 << 20 };
            let page = self.store.list_events(query).await?;
            let Some(last) = page.last() else { break };
            let stored =
                page.iter().map(|e| StoredEvent { body: e.body.as_bytes(), prev_hash: &e.prev_hash, hash: &e.hash });
            if let Err(failure) = verify_chain(seq, head, stored) {
                return Ok(LogCheck { checked: seq, head: hex::encode(head), failure: Some(failure.to_string()) });
            }
            seq = last.seq;
            match <[u8; 32]>::try_from(last.hash.as_slice()) {
                Ok(hash) => head = hash,
                Err(_) => {
                    let failure = format!("event {} has a hash that is not 32 bytes", last.seq);
                    return Ok(LogCheck { checked: seq, head: hex::encode(head), failure: Some(failure) });
                }
            }
        }
        Ok(LogCheck { checked: seq, head: hex::encode(head), failure: None })
    }
}
