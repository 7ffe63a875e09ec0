//! The answer cache: each identity's active cards as they were at one state of the identity.
//!
//! An entry says "at state S (change counter and digest of the active cards), the identity's
//! active cards were these": a fact that never goes stale, because a state is never reused. So
//! an entry may be filled from any read that returned the state and the cards together, and it
//! is served only when the identity's *current* state, told by the same sources as every 304
//! (memory while the listener proves it hears, else the primary), is S. The cache is therefore
//! exactly as coherent as revalidations are: a local write forgets the identity's remembered
//! state before it is answered, another instance's write arrives by notification, and memory is
//! never trusted past `cache.identity_versions_trust_ms` without a probe heard back.

use std::sync::Arc;

use prometheus::IntCounter;

use crate::domain::{AppId, Identity};
use crate::storage::{CardRecord, IdentityState};

/// Bytes an entry costs beyond its cards' own text (keys, vectors, moka's bookkeeping).
const ENTRY_OVERHEAD: usize = 256;
/// Bytes a card costs beyond its raw JSON and public key.
const CARD_OVERHEAD: usize = 320;

#[derive(Debug)]
struct Entry {
    state: IdentityState,
    cards: Vec<CardRecord>,
}

fn weight(key: &(AppId, Identity), entry: &Arc<Entry>) -> u32 {
    let cards: usize = entry.cards.iter().map(|card| card.raw.len() + card.public_key.len() + CARD_OVERHEAD).sum();
    u32::try_from(ENTRY_OVERHEAD + key.0.as_str().len() + key.1.as_str().len() + cards).unwrap_or(u32::MAX)
}

/// Identities' active cards by state, bounded in bytes (least recently used go first).
pub struct AnswerCache {
    entries: moka::sync::Cache<(AppId, Identity), Arc<Entry>>,
    /// Identities answered from the cache.
    pub hits: IntCounter,
    /// Identities that had to be read.
    pub misses: IntCounter,
}

impl AnswerCache {
    /// A cache of at most `max_bytes` (weighed by the cards' stored sizes).
    pub fn new(max_bytes: u64) -> prometheus::Result<Self> {
        let entries = moka::sync::Cache::builder().max_capacity(max_bytes).weigher(weight).build();
        Ok(AnswerCache {
            entries,
            hits: IntCounter::with_opts(
                prometheus::Opts::new(
                    "answer_cache_hits_total",
                    "Identities whose cards a lookup took from the answer cache",
                )
                .namespace("cardinal"),
            )?,
            misses: IntCounter::with_opts(
                prometheus::Opts::new("answer_cache_misses_total", "Identities whose cards a lookup had to read")
                    .namespace("cardinal"),
            )?,
        })
    }

    /// The identity's cards at `state`, if remembered.
    pub fn get(&self, app_id: &AppId, identity: &Identity, state: IdentityState) -> Option<Vec<CardRecord>> {
        let found = self.entries.get(&(app_id.clone(), identity.clone())).filter(|entry| entry.state == state);
        match found {
            Some(entry) => {
                self.hits.inc();
                Some(entry.cards.clone())
            }
            None => {
                self.misses.inc();
                None
            }
        }
    }

    /// Remembers the identity's cards at `state`, read together with it.
    pub fn put(&self, app_id: &AppId, identity: &Identity, state: IdentityState, cards: Vec<CardRecord>) {
        // A newer entry may have arrived from a concurrent read: keep the newer state.
        let key = (app_id.clone(), identity.clone());
        if self.entries.get(&key).is_some_and(|entry| entry.state.version > state.version) {
            return;
        }
        self.entries.insert(key, Arc::new(Entry { state, cards }));
    }

    /// Bytes held now (moka's weighted size, after pending maintenance).
    pub fn weighted_bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }
}

/// `cardinal_answer_cache_bytes` and `_budget_bytes`, read when scraped: what the budget is
/// and that it is kept.
pub struct AnswerCacheBytes {
    cache: Arc<AnswerCache>,
    held: prometheus::IntGauge,
    budget: prometheus::IntGauge,
    descs: Vec<prometheus::core::Desc>,
}

impl AnswerCacheBytes {
    pub fn new(cache: Arc<AnswerCache>, budget: u64) -> prometheus::Result<Self> {
        use prometheus::core::Collector;
        let opts = |name: &str, help: &str| prometheus::Opts::new(name, help).namespace("cardinal");
        let held = prometheus::IntGauge::with_opts(opts(
            "answer_cache_bytes",
            "Bytes the answer cache holds, as it weighs its entries (cards and overhead)",
        ))?;
        let budget_gauge =
            prometheus::IntGauge::with_opts(opts("answer_cache_budget_bytes", "The answer cache's byte budget"))?;
        budget_gauge.set(i64::try_from(budget).unwrap_or(i64::MAX));
        let descs = [held.desc(), budget_gauge.desc()].into_iter().flatten().cloned().collect();
        Ok(AnswerCacheBytes { cache, held, budget: budget_gauge, descs })
    }
}

impl prometheus::core::Collector for AnswerCacheBytes {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.held.set(i64::try_from(self.cache.weighted_bytes()).unwrap_or(i64::MAX));
        [self.held.collect(), self.budget.collect()].into_iter().flatten().collect()
    }
}
