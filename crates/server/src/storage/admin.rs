//! What the admin read API needs: an app's identities, one identity's whole history, and the
//! counts of a dashboard. Reads only; every write stays with the rules that own it.

use async_trait::async_trait;

use super::{CardRecord, EventRow, StorageError};
use crate::domain::{AppId, Identity};

/// One identity of an app, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySummary {
    /// The identity.
    pub identity: Identity,
    /// Its change counter.
    pub version: i64,
    /// Cards it ever published.
    pub cards: i64,
    /// Of those, active now.
    pub active: i64,
    /// When its newest card was accepted, Unix seconds.
    pub last_published_at: Option<i64>,
    /// When one of its chains was last revoked, Unix seconds.
    pub last_revoked_at: Option<i64>,
}

/// A page of an app's identities: those starting with `prefix`, after `after`, in byte order.
#[derive(Debug, Clone, Copy)]
pub struct IdentitiesQuery<'a> {
    /// The app.
    pub app_id: &'a AppId,
    /// Only identities that start with it (empty: all).
    pub prefix: &'a str,
    /// Only identities after this one (the previous page's last).
    pub after: Option<&'a str>,
    /// Most rows.
    pub limit: i64,
}

/// Where a page of an identity's history starts: after this card of that chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    /// When the card's chain began (its root was accepted), Unix seconds.
    pub chain_created_at: i64,
    /// The chain (its root card's id).
    pub chain_id: String,
    /// The card's position in it.
    pub chain_index: i64,
}

/// A card in an identity's history, with when its chain began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCard {
    /// The card, with its chain's revocation.
    pub card: CardRecord,
    /// When its chain began.
    pub chain_created_at: i64,
}

/// The counts an admin's dashboard shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppCounts {
    /// Identities that ever published a card.
    pub identities: i64,
    /// Cards ever published.
    pub cards: i64,
    /// Cards active now.
    pub active_cards: i64,
    /// Chains revoked.
    pub revoked_chains: i64,
    /// Events in the log.
    pub events: i64,
}

/// The admin read API's store.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// A page of identities, ordered by identity (bytewise).
    async fn list_identities(&self, query: IdentitiesQuery<'_>) -> Result<Vec<IdentitySummary>, StorageError>;

    /// Every card of an identity in any status, chains in the order they began (to the second;
    /// chains begun in the same second by id), each from its root on; a page of `limit` after
    /// `after`.
    async fn identity_history(
        &self,
        app_id: &AppId,
        identity: &Identity,
        after: Option<&HistoryCursor>,
        limit: i64,
    ) -> Result<Vec<HistoryCard>, StorageError>;

    /// The events that name one of the identity's cards, oldest first, at most `limit`.
    async fn identity_events(
        &self,
        app_id: &AppId,
        identity: &Identity,
        limit: i64,
    ) -> Result<Vec<EventRow>, StorageError>;

    /// The app's counts.
    async fn app_counts(&self, app_id: &AppId) -> Result<AppCounts, StorageError>;
}
