//! Reading the directory: batch lookups (conditional on the client's ETag), one card by id, and
//! Virgil's search over whole chains.

use std::collections::{BTreeMap, BTreeSet};

use cardinal_card::CardId;

use super::etag::{IfNoneMatch, card_etag, lookup_etag};
use super::{AnswerCache, Card, Directory, DirectoryError};
use crate::domain::AppId;
use crate::domain::{Caller, Identity, KeyRole};
use crate::storage::{ActiveLookup, CardRecord, CardsQuery, IdentityState, ReadFrom};

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
        if let Some(answers) = &self.answers {
            return self.lookup_with_answers(answers, caller, identities, condition).await;
        }
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
        let (states, from_memory) = self.current_states(caller, identities).await?;
        Ok((lookup_etag(&caller.app_id, identities, &states), from_memory))
    }

    /// The identities' current states (those that never had a card are absent), from memory
    /// while it is trusted, else from the primary; and whether they came from memory.
    async fn current_states(
        &self,
        caller: &Caller,
        identities: &[Identity],
    ) -> Result<(Vec<(Identity, IdentityState)>, bool), DirectoryError> {
        let Some(cache) = &self.versions else {
            return Ok((self.cards.identity_states(&caller.app_id, identities).await?, false));
        };
        if let Some(states) = cache.get_all(&caller.app_id, identities) {
            return Ok((states, true));
        }
        let generation = cache.generation();
        let states = self.cards.identity_states(&caller.app_id, identities).await?;
        cache.remember(generation, &caller.app_id, identities, &states);
        Ok((states, false))
    }

    /// A lookup assembled from the answer cache: the current states decide the tag (and a
    /// 304) exactly as without it; identities whose cards are remembered at their current state
    /// need no read, and the others are read together in one statement, which also fills the
    /// cache. The tag is of the states the answer's cards belong to.
    async fn lookup_with_answers(
        &self,
        answers: &AnswerCache,
        caller: &Caller,
        identities: &[Identity],
        condition: &IfNoneMatch,
    ) -> Result<Lookup<CardsByIdentity>, DirectoryError> {
        let app_id = &caller.app_id;
        let memory = self.versions.as_ref().and_then(|cache| cache.get_all(app_id, identities));
        // With replicas, a first lookup may come from a fresh one. Without states in memory
        // there is nothing to match remembered cards against but a read of the primary, which
        // is what a replica spares it: read everything from the replica, as without the cache,
        // and keep what it read for later lookups.
        if self.replicas && memory.is_none() && !condition.is_present() {
            let read = self.cards.lookup_active(self.query(caller, identities, ReadFrom::FreshReplica)).await?;
            remember_read(answers, app_id, identities, &read);
            let etag = lookup_etag(app_id, identities, &read.states);
            return Ok(Lookup::Found { etag, value: group_by_identity(identities, read.cards) });
        }
        let (mut states, from_memory) = match memory {
            Some(states) => (states, true),
            None => self.current_states(caller, identities).await?,
        };
        let etag = lookup_etag(app_id, identities, &states);
        if condition.matches(&etag) {
            return Ok(Lookup::NotModified { etag, counters_from_memory: from_memory });
        }
        let mut cards = Vec::new();
        let mut missing = Vec::new();
        for (identity, state) in &states {
            match answers.get(app_id, identity, *state) {
                Some(remembered) => cards.extend(remembered),
                None => missing.push(identity.clone()),
            }
        }
        if missing.is_empty() {
            let bytes: usize = cards.iter().map(|card: &CardRecord| card.raw.len()).sum();
            if bytes > self.rules.answer_bytes {
                return Err(DirectoryError::AnswerTooLarge { max: self.rules.answer_bytes });
            }
            return Ok(Lookup::Found { etag, value: group_by_identity(identities, cards) });
        }
        // A revalidation reads from the primary: its client may hold a tag newer than a lagging
        // replica's answer. A first lookup may read a fresh replica (the tag follows the cards).
        let from = if condition.is_present() { ReadFrom::Primary } else { ReadFrom::FreshReplica };
        let read = self.cards.lookup_active(self.query(caller, &missing, from)).await?;
        remember_read(answers, app_id, &missing, &read);
        // The read may have seen newer states than memory did: the tag follows the cards.
        states.retain(|(identity, _)| !missing.contains(identity));
        states.extend(read.states);
        states.sort_by(|a, b| a.0.cmp(&b.0));
        cards.extend(read.cards);
        let bytes: usize = cards.iter().map(|card| card.raw.len()).sum();
        if bytes > self.rules.answer_bytes {
            return Err(DirectoryError::AnswerTooLarge { max: self.rules.answer_bytes });
        }
        let etag = lookup_etag(app_id, identities, &states);
        Ok(Lookup::Found { etag, value: group_by_identity(identities, cards) })
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

/// Keeps each identity's cards of a read at the state read with them.
fn remember_read(answers: &AnswerCache, app_id: &AppId, identities: &[Identity], read: &ActiveLookup) {
    for identity in identities {
        let state = read.states.iter().find(|(read_identity, _)| read_identity == identity).map(|(_, s)| *s);
        if let Some(state) = state {
            let theirs = read.cards.iter().filter(|card| card.identity == *identity).cloned().collect();
            answers.put(app_id, identity, state, theirs);
        }
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
