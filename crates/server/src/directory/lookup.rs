//! Reading the directory: batch lookups (conditional on the client's ETag), one card by id, and
//! Virgil's search over whole chains.

use std::collections::{BTreeMap, BTreeSet};

use cardinal_card::CardId;

use super::etag::{IfNoneMatch, card_etag, lookup_etag};
use super::{Card, Directory, DirectoryError};
use crate::domain::{Caller, Identity, KeyRole};
use crate::storage::{CardRecord, CardsQuery, IdentityState, ReadFrom};

/// How the identities of a lookup are counted against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// As listed, duplicates included.
    Listed,
    /// Distinct identities only.
    Distinct,
}

/// An answer to a conditional read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The client's copy is current: a 304 with this tag.
    NotModified {
        /// The current tag.
        etag: String,
        /// Whether the identities' states all came from memory (no database round trip).
        counters_from_memory: bool,
    },
    /// The current answer and its tag.
    Found {
        /// The current tag.
        etag: String,
        /// The answer.
        value: T,
    },
}

/// Every requested identity with its active cards, newest first.
pub type CardsByIdentity = BTreeMap<Identity, Vec<Card>>;

impl Directory {
    /// Validates and deduplicates the identities of a lookup, sorted.
    ///
    /// `Count::Listed` bounds the identities as listed, duplicates included (the native API:
    /// the limit bounds the work a request can ask for); `Count::Distinct` bounds distinct ones
    /// only (the Virgil surface, whose clients may repeat an identity).
    pub fn lookup_identities<'a>(
        &self,
        identities: impl IntoIterator<Item = &'a str>,
        count: Count,
    ) -> Result<Vec<Identity>, DirectoryError> {
        let max = self.rules.identities_per_lookup;
        let mut distinct = BTreeSet::new();
        for (listed, identity) in identities.into_iter().enumerate() {
            if count == Count::Listed && listed >= max {
                return Err(DirectoryError::TooManyIdentities { max });
            }
            let identity = Identity::parse_with_limit(identity, self.rules.format.max_identity_bytes)
                .map_err(DirectoryError::InvalidIdentity)?;
            distinct.insert(identity);
            if distinct.len() > max {
                return Err(DirectoryError::TooManyIdentities { max });
            }
        }
        if distinct.is_empty() {
            return Err(DirectoryError::NoIdentities);
        }
        Ok(distinct.into_iter().collect())
    }

    /// The active cards of each identity, unless the client's `If-None-Match` holds the current
    /// tag: that is decided from the identities' states alone (from memory when they are
    /// there), without reading a card. A full answer reads states and cards in one statement,
    /// so its tag describes exactly what it holds.
    pub async fn lookup(
        &self,
        caller: &Caller,
        identities: &[Identity],
        condition: &IfNoneMatch,
    ) -> Result<Lookup<CardsByIdentity>, DirectoryError> {
        // A client that revalidates may hold a tag newer than a lagging replica's answer (it saw a
        // revocation there first): its answer comes from the primary, or it would go back in
        // time. Only a first lookup may come from a replica.
        let from = if condition.is_present() {
            let (etag, counters_from_memory) = self.current_lookup_tag(caller, identities).await?;
            if condition.matches(&etag) {
                return Ok(Lookup::NotModified { etag, counters_from_memory });
            }
            ReadFrom::Primary
        } else {
            ReadFrom::FreshReplica
        };
        // The states read here are not remembered: a full answer would pay for 50 cache
        // inserts it does not need, and a client's next revalidation remembers them anyway.
        let read = self.cards.lookup_active(self.query(caller, identities, from)).await?;
        let etag = lookup_etag(&caller.app_id, identities, &read.states);
        Ok(Lookup::Found { etag, value: group_by_identity(identities, read.cards) })
    }

    /// The ETag a lookup has now, and whether every state came from memory.
    async fn current_lookup_tag(
        &self,
        caller: &Caller,
        identities: &[Identity],
    ) -> Result<(String, bool), DirectoryError> {
        let tag = |states: &[(Identity, IdentityState)]| lookup_etag(&caller.app_id, identities, states);
        let Some(cache) = &self.versions else {
            let states = self.cards.identity_states(&caller.app_id, identities).await?;
            return Ok((tag(&states), false));
        };
        if let Some(states) = cache.get_all(&caller.app_id, identities) {
            return Ok((tag(&states), true));
        }
        let generation = cache.generation();
        let states = self.cards.identity_states(&caller.app_id, identities).await?;
        cache.remember(generation, &caller.app_id, identities, &states);
        Ok((tag(&states), false))
    }

    /// The active cards of each identity, newest first; every identity is a key. For batches
    /// sent in a body, which have no conditional form.
    pub async fn search(&self, caller: &Caller, identities: &[Identity]) -> Result<CardsByIdentity, DirectoryError> {
        let records = self.cards.find_active_cards(self.query(caller, identities, ReadFrom::FreshReplica)).await?;
        Ok(group_by_identity(identities, records))
    }

    /// The newest `search_cards_per_chain` cards of every unrevoked chain of these identities,
    /// superseded ones included: Virgil clients fold each rotation chain into its newest card
    /// themselves, and e3kit reads the previous ones to decrypt older messages.
    pub async fn unrevoked_chains(
        &self,
        caller: &Caller,
        identities: &[Identity],
    ) -> Result<Vec<Card>, DirectoryError> {
        let query = self.query(caller, identities, ReadFrom::FreshReplica);
        let records = self.cards.find_unrevoked_chain_cards(query, self.rules.search_cards_per_chain).await?;
        Ok(records.into_iter().map(|record| Card { record }).collect())
    }

    /// A read of these identities' cards in the caller's app, within the answer's byte bound.
    fn query<'a>(&self, caller: &'a Caller, identities: &'a [Identity], from: ReadFrom) -> CardsQuery<'a> {
        CardsQuery { app_id: &caller.app_id, identities, max_bytes: self.rules.answer_bytes, from }
    }

    /// One card of the caller's app, whatever its status.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Card, DirectoryError> {
        let id: CardId = id.parse().map_err(|_| DirectoryError::InvalidCardId)?;
        // Validated: 64 hex characters, safe to log as is.
        tracing::Span::current().record("card.id", id.as_str());
        let mut record = self.cards.find_card(&caller.app_id, &id).await?.ok_or(DirectoryError::CardNotFound)?;
        // A revocation reason is free text ("left the clinic", "lost phone"): only the card's
        // owner and the app's admins read it; every other user sees that and when, not why.
        if caller.role != KeyRole::Admin && caller.subject != record.identity {
            record.revocation_reason = None;
            record.revoked_by = None;
        }
        Ok(Card { record })
    }

    /// One card, unless the client's `If-None-Match` holds its current tag.
    pub async fn get_conditional(
        &self,
        caller: &Caller,
        id: &str,
        condition: &IfNoneMatch,
    ) -> Result<Lookup<Card>, DirectoryError> {
        let card = self.get(caller, id).await?;
        let etag = card_etag(&card);
        if condition.matches(&etag) {
            return Ok(Lookup::NotModified { etag, counters_from_memory: false });
        }
        Ok(Lookup::Found { etag, value: card })
    }
}

/// Every requested identity is a key, with its cards in the order the store gave them.
fn group_by_identity(identities: &[Identity], records: Vec<CardRecord>) -> CardsByIdentity {
    let mut found: CardsByIdentity = identities.iter().map(|i| (i.clone(), Vec::new())).collect();
    for record in records {
        if let Some(cards) = found.get_mut(&record.identity) {
            cards.push(Card { record });
        }
    }
    found
}
