//! A store in memory, for the rules' unit tests (as facebook/akd tests its directory): the same
//! guarantees as the SQL store — the same constraints by the same names, the same orders, the
//! same event bytes and hashes — checked by the same conformance suite, without a database.
//! Everything sits behind one lock, so every write is atomic; events are sealed at once, so
//! nothing is ever queued.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use cardinal_card::tlog::{self, Hash, Hashes};

use super::admin::{AdminStore, AppCounts, HistoryCard, HistoryCursor, IdentitiesQuery, IdentitySummary};
use super::{
    ActiveLookup, ApiKeyRecord, ApiKeyStore, AppRecord, AppStore, Backend, CardRecord, CardStore, CardsQuery,
    CheckpointRecord, EventDraft, EventLog, EventRow, EventsQuery, GENESIS, Heard, IdentityState, MigrationError,
    NewCard, Operations, Placement, PoolStats, Revocation, StorageError, TransparencyStore, active_digest, constraint,
    seal,
};
use crate::domain::{AppId, CardId, Identity};

mod keyknox;

#[derive(Debug)]
struct App {
    record: AppRecord,
    head: [u8; 32],
    events: Vec<EventRow>,
    /// The transparency tree's stored hashes, by index (dense).
    tree: Vec<Hash>,
    /// Signed checkpoints by origin, then size.
    checkpoints: BTreeMap<String, BTreeMap<u64, CheckpointRecord>>,
    /// Cosignature lines by (origin, size, witness).
    cosignatures: BTreeMap<(String, u64, String), String>,
}

#[derive(Debug, Clone)]
struct Chain {
    identity: Identity,
    head: CardId,
    exclusive: bool,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
    revoked_by: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    apps: BTreeMap<AppId, App>,
    keys: BTreeMap<String, ApiKeyRecord>,
    chains: HashMap<(AppId, CardId), Chain>,
    /// Every card, with its chain's revocation left empty (read from `chains`).
    cards: HashMap<(AppId, CardId), CardRecord>,
    states: HashMap<(AppId, Identity), IdentityState>,
    epoch: String,
    keyknox: keyknox::Keyknox,
}

impl State {
    fn app(&mut self, id: &AppId) -> Result<&mut App, StorageError> {
        self.apps.get_mut(id).ok_or(StorageError::conflict(constraint::FOREIGN_KEY))
    }

    /// Appends events to the app's log, sealed exactly as the SQL sequencer seals them.
    fn log(&mut self, app_id: &AppId, drafts: &[EventDraft]) -> Result<(), StorageError> {
        let app = self.app(app_id)?;
        for draft in drafts {
            let seq = app.events.len() as i64 + 1;
            let sealed = seal(app_id, seq, &app.head, draft)?;
            app.head = sealed.hash;
            let size = app.events.len() as u64;
            let frontier =
                Hashes(tlog::frontier_indexes(size).into_iter().map(|i| (i, app.tree[i as usize])).collect());
            let added = tlog::append(size, &frontier, [sealed.body.as_bytes()])
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
            app.tree.extend(added.into_iter().map(|(_, hash)| hash));
            app.events.push(EventRow {
                seq,
                body: sealed.body,
                prev_hash: sealed.prev_hash.to_vec(),
                hash: sealed.hash.to_vec(),
            });
        }
        Ok(())
    }

    /// Bumps the identity's counter and recomputes the digest of its active cards.
    fn record_change(&mut self, app_id: &AppId, identity: &Identity) {
        let active = self.cards.iter().filter(|((app, _), card)| {
            app == app_id
                && card.identity == *identity
                && card.superseded_by.is_none()
                && self.chain_of(app_id, card).is_some_and(|chain| chain.revoked_at.is_none())
        });
        let digest = active_digest(active.map(|(_, card)| &card.id));
        let state = self.states.entry((app_id.clone(), identity.clone())).or_insert(IdentityState::NEVER);
        state.version += 1;
        state.digest = Some(digest);
    }

    /// A card as the SQL store returns it: with its chain's revocation.
    fn card(&self, app_id: &AppId, card: &CardRecord) -> CardRecord {
        let mut card = card.clone();
        if let Some(chain) = self.chains.get(&(app_id.clone(), card.chain_id.clone())) {
            card.revoked_at = chain.revoked_at;
            card.revocation_reason.clone_from(&chain.revocation_reason);
            card.revoked_by.clone_from(&chain.revoked_by);
        }
        card
    }

    fn chain_of(&self, app_id: &AppId, card: &CardRecord) -> Option<&Chain> {
        self.chains.get(&(app_id.clone(), card.chain_id.clone()))
    }

    /// The app's cards of these identities that `keep` keeps, in the SQL store's order, within
    /// the byte budget.
    fn cards_of(
        &self,
        query: CardsQuery<'_>,
        keep: impl Fn(&CardRecord, &Chain) -> bool,
    ) -> Result<Vec<CardRecord>, StorageError> {
        let (app_id, max_bytes) = (query.app_id, query.max_bytes);
        let wanted: BTreeSet<&Identity> = query.identities.iter().collect();
        let mut cards: Vec<CardRecord> = self
            .cards
            .iter()
            .filter(|((app, _), card)| app == app_id && wanted.contains(&card.identity))
            .filter(|(_, card)| self.chain_of(app_id, card).is_some_and(|chain| keep(card, chain)))
            .map(|(_, card)| self.card(app_id, card))
            .collect();
        cards.sort_by(|a, b| {
            (&a.identity, b.created_at, b.published_at, &a.id).cmp(&(&b.identity, a.created_at, a.published_at, &b.id))
        });
        let bytes: usize = cards.iter().map(|card| card.raw.len()).sum();
        if bytes > max_bytes {
            return Err(StorageError::TooLarge { max_bytes });
        }
        Ok(cards)
    }

    fn place(&mut self, card: &NewCard, placement: &Placement) -> Result<(), StorageError> {
        let app_id = &card.app_id;
        let key = (app_id.clone(), card.id.clone());
        match placement {
            Placement::Root { exclusive, max_live_chains } => {
                if self.chains.contains_key(&key) {
                    return Err(StorageError::conflict(constraint::CHAINS_PKEY));
                }
                let live: Vec<&Chain> = self
                    .chains
                    .iter()
                    .filter(|((app, _), chain)| {
                        app == app_id && chain.identity == card.identity && chain.revoked_at.is_none()
                    })
                    .map(|(_, chain)| chain)
                    .collect();
                if *exclusive && live.iter().any(|chain| chain.exclusive) {
                    return Err(StorageError::conflict(constraint::CHAINS_SINGLE_ACTIVE));
                }
                if self.cards.contains_key(&key) {
                    return Err(StorageError::conflict(constraint::CARDS_PKEY));
                }
                if !*exclusive && live.len() as i64 + 1 > *max_live_chains {
                    return Err(StorageError::conflict(constraint::CHAINS_PER_IDENTITY));
                }
                let chain = Chain {
                    identity: card.identity.clone(),
                    head: card.id.clone(),
                    exclusive: *exclusive,
                    revoked_at: None,
                    revocation_reason: None,
                    revoked_by: None,
                };
                self.chains.insert(key, chain);
            }
            Placement::Successor { chain_id, previous_card_id } => {
                let chain = self.chains.get(&(app_id.clone(), chain_id.clone()));
                if !chain.is_some_and(|chain| &chain.head == previous_card_id && chain.revoked_at.is_none()) {
                    return Err(StorageError::conflict(constraint::CHAIN_HEAD_MOVED));
                }
                if self.cards.contains_key(&key) {
                    return Err(StorageError::conflict(constraint::CARDS_PKEY));
                }
                let previous = self.cards.get_mut(&(app_id.clone(), previous_card_id.clone()));
                match previous {
                    Some(previous) if previous.superseded_by.is_none() => {
                        previous.superseded_by = Some(card.id.clone())
                    }
                    _ => return Err(StorageError::conflict(constraint::CHAIN_HEAD_MOVED)),
                }
                if let Some(chain) = self.chains.get_mut(&(app_id.clone(), chain_id.clone())) {
                    chain.head = card.id.clone();
                }
            }
        }
        Ok(())
    }
}

/// The store. Cheap to create: one per test.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl AppStore for MemoryStore {
    async fn create_app(&self, app: &AppRecord, event: EventDraft) -> Result<(), StorageError> {
        let mut state = self.state();
        if state.apps.contains_key(&app.id) {
            return Err(StorageError::conflict(constraint::APPS_PKEY));
        }
        state.apps.insert(
            app.id.clone(),
            App {
                record: app.clone(),
                head: GENESIS,
                events: Vec::new(),
                tree: Vec::new(),
                checkpoints: BTreeMap::new(),
                cosignatures: BTreeMap::new(),
            },
        );
        state.log(&app.id, std::slice::from_ref(&event))
    }

    async fn find_app(&self, id: &AppId) -> Result<Option<AppRecord>, StorageError> {
        Ok(self.state().apps.get(id).map(|app| app.record.clone()))
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>, StorageError> {
        Ok(self.state().apps.values().map(|app| app.record.clone()).collect())
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord, event: EventDraft) -> Result<(), StorageError> {
        let mut state = self.state();
        state.app(&key.app_id)?;
        if state.keys.contains_key(&key.kid) {
            return Err(StorageError::conflict(constraint::API_KEYS_PKEY));
        }
        state.keys.insert(key.kid.clone(), key.clone());
        state.log(&key.app_id, std::slice::from_ref(&event))
    }

    async fn find_api_key(&self, kid: &str) -> Result<Option<ApiKeyRecord>, StorageError> {
        Ok(self.state().keys.get(kid).cloned())
    }

    async fn list_api_keys(&self, app_id: Option<&AppId>) -> Result<Vec<ApiKeyRecord>, StorageError> {
        let mut keys: Vec<ApiKeyRecord> =
            self.state().keys.values().filter(|key| app_id.is_none_or(|app| &key.app_id == app)).cloned().collect();
        keys.sort_by(|a, b| (&a.app_id, a.created_at, &a.kid).cmp(&(&b.app_id, b.created_at, &b.kid)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, kid: &str, at: i64, event: EventDraft) -> Result<bool, StorageError> {
        let mut state = self.state();
        let key = state.keys.get_mut(kid).ok_or(StorageError::NotFound)?;
        if key.revoked_at.is_some() {
            return Ok(false);
        }
        key.revoked_at = Some(at);
        let app_id = key.app_id.clone();
        state.log(&app_id, std::slice::from_ref(&event))?;
        Ok(true)
    }
}

#[async_trait]
impl CardStore for MemoryStore {
    async fn insert_card(&self, card: &NewCard, placement: &Placement, log: &[EventDraft]) -> Result<(), StorageError> {
        let mut state = self.state();
        state.app(&card.app_id)?;
        state.place(card, placement)?;
        let record = CardRecord {
            id: card.id.clone(),
            identity: card.identity.clone(),
            chain_id: placement.chain_id(&card.id).clone(),
            previous_card_id: placement.previous().cloned(),
            superseded_by: None,
            chain_index: card.chain_index,
            created_at: card.created_at,
            published_at: card.published_at,
            public_key: card.public_key.clone(),
            raw: card.raw.clone(),
            revoked_at: None,
            revocation_reason: None,
            revoked_by: None,
        };
        state.cards.insert((card.app_id.clone(), card.id.clone()), record);
        state.record_change(&card.app_id, &card.identity);
        state.log(&card.app_id, log)
    }

    async fn find_card(&self, app_id: &AppId, id: &CardId) -> Result<Option<CardRecord>, StorageError> {
        let state = self.state();
        Ok(state.cards.get(&(app_id.clone(), id.clone())).map(|card| state.card(app_id, card)))
    }

    async fn find_active_cards(&self, query: CardsQuery<'_>) -> Result<Vec<CardRecord>, StorageError> {
        self.state().cards_of(query, |card, chain| card.superseded_by.is_none() && chain.revoked_at.is_none())
    }

    async fn find_unrevoked_chain_cards(
        &self,
        query: CardsQuery<'_>,
        per_chain: i64,
    ) -> Result<Vec<CardRecord>, StorageError> {
        let state = self.state();
        let head_index = |chain: &Chain| {
            state.cards.get(&(query.app_id.clone(), chain.head.clone())).map_or(0, |head| head.chain_index)
        };
        state.cards_of(query, |card, chain| {
            chain.revoked_at.is_none() && card.chain_index > head_index(chain) - per_chain
        })
    }

    async fn identity_states(
        &self,
        app_id: &AppId,
        identities: &[Identity],
    ) -> Result<Vec<(Identity, IdentityState)>, StorageError> {
        let state = self.state();
        let wanted: BTreeSet<&Identity> = identities.iter().collect();
        Ok(wanted
            .into_iter()
            .filter_map(|identity| {
                state.states.get(&(app_id.clone(), identity.clone())).map(|found| (identity.clone(), *found))
            })
            .collect())
    }

    async fn lookup_active(&self, query: CardsQuery<'_>) -> Result<ActiveLookup, StorageError> {
        let states = self.identity_states(query.app_id, query.identities).await?;
        let cards = self.find_active_cards(query).await?;
        // Active cards without their chain's revocation, as the SQL store's one statement reads
        // them (an active card's chain is unrevoked).
        Ok(ActiveLookup { states, cards })
    }

    async fn revoke_chain(&self, revocation: &Revocation, event: EventDraft) -> Result<bool, StorageError> {
        let (app_id, identity) = (&revocation.app_id, &revocation.identity);
        let mut state = self.state();
        let Some(chain) = state.chains.get_mut(&(app_id.clone(), revocation.chain_id.clone())) else {
            return Ok(false);
        };
        if chain.revoked_at.is_some() {
            return Ok(false);
        }
        chain.revoked_at = Some(revocation.at);
        chain.revocation_reason.clone_from(&revocation.reason);
        chain.revoked_by = Some(revocation.by.clone());
        state.record_change(app_id, identity);
        state.log(app_id, std::slice::from_ref(&event))?;
        Ok(true)
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn list_events(&self, query: EventsQuery<'_>) -> Result<Vec<EventRow>, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(query.app_id) else { return Ok(Vec::new()) };
        let mut page = Vec::new();
        let mut bytes = 0;
        let limit = usize::try_from(query.limit).unwrap_or(0);
        for event in app.events.iter().filter(|event| event.seq > query.after).take(limit) {
            bytes += event.body.len();
            if bytes > query.max_bytes && !page.is_empty() {
                break;
            }
            page.push(event.clone());
        }
        Ok(page)
    }

    async fn sequence_queued(&self) -> Result<usize, StorageError> {
        Ok(0)
    }
}

#[async_trait]
impl TransparencyStore for MemoryStore {
    async fn tree_size(&self, app_id: &AppId) -> Result<u64, StorageError> {
        Ok(self.state().apps.get(app_id).map_or(0, |app| app.events.len() as u64))
    }

    async fn tree_hashes(&self, app_id: &AppId, indexes: &[u64]) -> Result<Hashes, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(app_id) else { return Ok(Hashes::default()) };
        Ok(Hashes(indexes.iter().filter_map(|i| app.tree.get(*i as usize).map(|hash| (*i, *hash))).collect()))
    }

    async fn entries(&self, app_id: &AppId, start: u64, end: u64) -> Result<Vec<String>, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(app_id) else { return Ok(Vec::new()) };
        let end = (end as usize).min(app.events.len());
        let start = (start as usize).min(end);
        Ok(app.events[start..end].iter().map(|event| event.body.clone()).collect())
    }

    async fn published_entries(
        &self,
        app_id: &AppId,
        card_ids: &[&str],
    ) -> Result<Vec<(String, u64, String)>, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(app_id) else { return Ok(Vec::new()) };
        let wanted: BTreeSet<&str> = card_ids.iter().copied().collect();
        let mut found = Vec::new();
        for (index, event) in app.events.iter().enumerate() {
            let body: cardinal_card::log::EventBody =
                serde_json::from_str(&event.body).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            if body.kind == cardinal_card::log::EventKind::CardPublished
                && let Some(card) = body.card_id.filter(|card| wanted.contains(card.as_str()))
            {
                found.push((card, index as u64, event.body.clone()));
            }
        }
        Ok(found)
    }

    async fn insert_cosignature(
        &self,
        app_id: &AppId,
        origin: &str,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<(), StorageError> {
        let mut state = self.state();
        let app = state.app(app_id)?;
        app.cosignatures.entry((origin.to_owned(), size, witness.to_owned())).or_insert_with(|| line.to_owned());
        Ok(())
    }

    async fn cosignatures(
        &self,
        app_id: &AppId,
        origin: &str,
        size: u64,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(app_id) else { return Ok(Vec::new()) };
        Ok(app
            .cosignatures
            .iter()
            .filter(|((o, s, _), _)| o == origin && *s == size)
            .map(|((_, _, witness), line)| (witness.clone(), line.clone()))
            .collect())
    }

    async fn last_cosigned(&self, app_id: &AppId, origin: &str, witness: &str) -> Result<Option<u64>, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(app_id) else { return Ok(None) };
        Ok(app.cosignatures.keys().filter(|(o, _, w)| o == origin && w == witness).map(|(_, s, _)| *s).max())
    }

    async fn newest_checkpoint(&self, app_id: &AppId, origin: &str) -> Result<Option<CheckpointRecord>, StorageError> {
        let state = self.state();
        Ok(state
            .apps
            .get(app_id)
            .and_then(|app| app.checkpoints.get(origin))
            .and_then(|sizes| sizes.values().next_back().cloned()))
    }

    async fn insert_checkpoint(&self, checkpoint: &CheckpointRecord) -> Result<CheckpointRecord, StorageError> {
        let mut state = self.state();
        let app = state.app(&checkpoint.app_id)?;
        let sizes = app.checkpoints.entry(checkpoint.origin.clone()).or_default();
        Ok(sizes.entry(checkpoint.size).or_insert_with(|| checkpoint.clone()).clone())
    }
}

#[async_trait]
impl Operations for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats { size: 0, idle: 0, max: 0, writes: None }
    }

    async fn migrate(&self) -> Result<(), MigrationError> {
        Ok(())
    }

    async fn close(&self) {}

    async fn back_up_into(&self, _path: &std::path::Path) -> Result<(), StorageError> {
        Err(StorageError::Other("a memory store has nothing to back up".into()))
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        let mut state = self.state();
        if state.epoch.is_empty() {
            state.epoch = uuid::Uuid::new_v4().simple().to_string();
        }
        Ok(state.epoch.clone())
    }

    async fn renew_epoch(&self) -> Result<String, StorageError> {
        let mut state = self.state();
        state.epoch = uuid::Uuid::new_v4().simple().to_string();
        Ok(state.epoch.clone())
    }

    async fn watch_changes(&self, _probe_every: std::time::Duration, _heard: &(dyn Fn(Heard) + Send + Sync)) {}
}

impl State {
    /// When a chain began: its root card's acceptance, as the SQL store records it.
    fn chain_created_at(&self, app_id: &AppId, chain_id: &CardId) -> i64 {
        self.cards.get(&(app_id.clone(), chain_id.clone())).map_or(0, |root| root.published_at)
    }

    fn identity_cards(&self, app_id: &AppId, identity: &Identity) -> Vec<CardRecord> {
        self.cards
            .iter()
            .filter(|((app, _), card)| app == app_id && card.identity == *identity)
            .map(|(_, card)| self.card(app_id, card))
            .collect()
    }
}

#[async_trait]
impl AdminStore for MemoryStore {
    async fn list_identities(&self, query: IdentitiesQuery<'_>) -> Result<Vec<IdentitySummary>, StorageError> {
        let state = self.state();
        let mut identities: Vec<&Identity> = state
            .states
            .keys()
            .filter(|(app, identity)| {
                app == query.app_id
                    && identity.as_str().starts_with(query.prefix)
                    && query.after.is_none_or(|after| identity.as_str() > after)
            })
            .map(|(_, identity)| identity)
            .collect();
        identities.sort_by(|a, b| a.as_str().as_bytes().cmp(b.as_str().as_bytes()));
        identities.truncate(usize::try_from(query.limit).unwrap_or(0));
        Ok(identities
            .into_iter()
            .map(|identity| {
                let cards = state.identity_cards(query.app_id, identity);
                let active =
                    cards.iter().filter(|card| card.superseded_by.is_none() && card.revoked_at.is_none()).count();
                IdentitySummary {
                    identity: identity.clone(),
                    version: state.states[&(query.app_id.clone(), identity.clone())].version,
                    cards: cards.len() as i64,
                    active: active as i64,
                    last_published_at: cards.iter().map(|card| card.published_at).max(),
                    last_revoked_at: cards.iter().filter_map(|card| card.revoked_at).max(),
                }
            })
            .collect())
    }

    async fn identity_history(
        &self,
        app_id: &AppId,
        identity: &Identity,
        after: Option<&HistoryCursor>,
        limit: i64,
    ) -> Result<Vec<HistoryCard>, StorageError> {
        let state = self.state();
        let position =
            |card: &HistoryCard| (card.chain_created_at, card.card.chain_id.to_string(), card.card.chain_index);
        let mut cards: Vec<HistoryCard> = state
            .identity_cards(app_id, identity)
            .into_iter()
            .map(|card| HistoryCard { chain_created_at: state.chain_created_at(app_id, &card.chain_id), card })
            .filter(|card| {
                after.is_none_or(|after| {
                    position(card) > (after.chain_created_at, after.chain_id.clone(), after.chain_index)
                })
            })
            .collect();
        cards.sort_by_key(position);
        cards.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(cards)
    }

    async fn identity_events(
        &self,
        app_id: &AppId,
        identity: &Identity,
        limit: i64,
    ) -> Result<Vec<EventRow>, StorageError> {
        let state = self.state();
        let Some(app) = state.apps.get(app_id) else { return Ok(Vec::new()) };
        let cards: BTreeSet<String> =
            state.identity_cards(app_id, identity).into_iter().map(|card| card.id.to_string()).collect();
        let names_a_card = |event: &EventRow| {
            serde_json::from_str::<serde_json::Value>(&event.body)
                .ok()
                .and_then(|body| body["card_id"].as_str().map(|id| cards.contains(id)))
                .unwrap_or(false)
        };
        let limit = usize::try_from(limit).unwrap_or(0);
        Ok(app.events.iter().filter(|event| names_a_card(event)).take(limit).cloned().collect())
    }

    async fn app_counts(&self, app_id: &AppId) -> Result<AppCounts, StorageError> {
        let state = self.state();
        let cards: Vec<CardRecord> = state
            .cards
            .iter()
            .filter(|((app, _), _)| app == app_id)
            .map(|(_, card)| state.card(app_id, card))
            .collect();
        Ok(AppCounts {
            identities: state.states.keys().filter(|(app, _)| app == app_id).count() as i64,
            cards: cards.len() as i64,
            active_cards: cards.iter().filter(|card| card.superseded_by.is_none() && card.revoked_at.is_none()).count()
                as i64,
            revoked_chains: state
                .chains
                .iter()
                .filter(|((app, _), chain)| app == app_id && chain.revoked_at.is_some())
                .count() as i64,
            events: state.apps.get(app_id).map_or(0, |app| app.events.len() as i64),
        })
    }
}
