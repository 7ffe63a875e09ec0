//! The lookup cache: one entry per chunk of identities, holding the chunk's ETag and its verified
//! cards, bounded by an estimate of the memory it holds and evicting the least recently used.

use std::collections::BTreeMap;
use std::sync::Arc;

use moka::policy::EvictionPolicy;

use crate::verify::VerifiedCard;

/// What the lookup cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupCacheUsage {
    /// Chunks cached, each with its ETag and cards.
    pub chunks: u64,
    /// Their estimated size in bytes; never more than the configured bound.
    pub bytes: u64,
}

/// A chunk's answer, kept to revalidate with `If-None-Match`.
pub(crate) struct CachedChunk {
    pub etag: String,
    pub cards: BTreeMap<String, Vec<VerifiedCard>>,
}

pub(crate) struct LookupCache {
    /// `None` when caching is off (a bound of 0 bytes).
    chunks: Option<moka::sync::Cache<String, Arc<CachedChunk>>>,
}

impl LookupCache {
    pub fn new(max_bytes: u64) -> Self {
        let chunks = (max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, chunk: &Arc<CachedChunk>| u32::try_from(weight(key, chunk)).unwrap_or(u32::MAX))
                // A lookup cache's best predictor is recency: the batches an application repeats.
                // TinyLFU (moka's default) would refuse to admit a new chunk rather than evict.
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        LookupCache { chunks }
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedChunk>> {
        self.chunks.as_ref()?.get(key)
    }

    pub fn insert(&self, key: String, chunk: CachedChunk) {
        if let Some(chunks) = &self.chunks {
            chunks.insert(key, Arc::new(chunk));
            // moka evicts in batches; settle now so that the bound holds whenever a lookup
            // returns. This runs once per full (200) answer, next to a network round trip.
            chunks.run_pending_tasks();
        }
    }

    pub fn usage(&self) -> LookupCacheUsage {
        match &self.chunks {
            Some(chunks) => {
                chunks.run_pending_tasks();
                LookupCacheUsage { chunks: chunks.entry_count(), bytes: chunks.weighted_size() }
            }
            None => LookupCacheUsage::default(),
        }
    }
}

/// Per-allocation overhead assumed for each string and vector.
const OVERHEAD: usize = 16;

/// An estimate of the heap and inline memory a cached chunk holds.
fn weight(key: &str, chunk: &CachedChunk) -> usize {
    let mut bytes = size_of::<CachedChunk>() + key.len() + chunk.etag.len() + 2 * OVERHEAD;
    for (identity, cards) in &chunk.cards {
        // A B-tree node slot, the key, and the vector.
        bytes += identity.len() + size_of::<(String, Vec<VerifiedCard>)>() + 2 * OVERHEAD;
        bytes += cards.iter().map(card_weight).sum::<usize>();
    }
    bytes
}

fn card_weight(card: &VerifiedCard) -> usize {
    let view = &card.view;
    let strings = [
        view.id.len(),
        view.identity.len(),
        view.public_key.len(),
        view.previous_card_id.as_ref().map_or(0, String::len),
        view.superseded_by.as_ref().map_or(0, String::len),
        view.revocation_reason.as_ref().map_or(0, String::len),
        card.card.id.as_str().len(),
        card.card.snapshot.len(),
        card.card.content.identity.as_str().len(),
        card.card.content.public_key_base64.len(),
        card.card.content.previous_card_id.as_ref().map_or(0, |id| id.as_str().len()),
    ];
    // The model is held twice: as the server sent it, and inside the parsed card.
    let raw = 2 * raw_weight(&view.raw);
    size_of::<VerifiedCard>() + strings.iter().map(|len| len + OVERHEAD).sum::<usize>() + raw
}

fn raw_weight(raw: &cardinal_card::RawSignedModel) -> usize {
    raw.content_snapshot.len()
        + OVERHEAD
        + raw
            .signatures
            .iter()
            .map(|s| {
                size_of::<cardinal_card::RawSignature>()
                    + s.signer.len()
                    + s.signature.len()
                    + s.snapshot.as_ref().map_or(0, String::len)
                    + 3 * OVERHEAD
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(identities: usize) -> CachedChunk {
        CachedChunk {
            etag: "\"tag\"".into(),
            cards: (0..identities).map(|i| (format!("identity-{i}"), Vec::new())).collect(),
        }
    }

    #[test]
    fn a_bound_of_zero_caches_nothing() {
        let cache = LookupCache::new(0);
        cache.insert("k".into(), chunk(1));
        assert!(cache.get("k").is_none());
        assert_eq!(cache.usage(), LookupCacheUsage::default());
    }

    #[test]
    fn the_weight_grows_with_what_a_chunk_holds() {
        assert!(weight("k", &chunk(10)) > weight("k", &chunk(1)));
        assert!(weight("a-longer-key", &chunk(1)) > weight("k", &chunk(1)));
    }

    #[test]
    fn the_least_recently_used_chunk_is_evicted_first() {
        let one = weight("a", &chunk(1)) as u64;
        let cache = LookupCache::new(2 * one);
        cache.insert("a".into(), chunk(1));
        cache.insert("b".into(), chunk(1));
        assert!(cache.get("a").is_some(), "a is now the most recently used");
        cache.insert("c".into(), chunk(1));
        let usage = cache.usage();
        assert_eq!(usage.chunks, 2);
        assert!(usage.bytes <= 2 * one);
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
    }
}
