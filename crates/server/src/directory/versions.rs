//! Identity change counters kept in memory, so that a revalidation that finds nothing changed
//! (a 304) needs no database round trip.
//!
//! Coherence: every sequencing round notifies the identities it logged (PostgreSQL
//! LISTEN/NOTIFY, see `CardStore::watch_changes`), every process drops them, and the process that
//! made a change drops it itself before answering. The memory is used only while the
//! notification connection is up: losing it empties the memory, because notifications sent
//! meanwhile are gone. A read that raced a drop is not remembered (the generation check), so an
//! old counter never outlives the notification of its change. Across processes a change is
//! therefore seen by others once its notification arrives (milliseconds after the write was
//! answered); within one process, at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use moka::sync::Cache;

use crate::domain::{AppId, Identity};
use crate::storage::Heard;

/// The counters of one database's identities, per app.
pub struct VersionCache {
    counters: Cache<String, i64>,
    /// Bumped by every drop: a read that started before a drop must not be remembered.
    generation: AtomicU64,
    /// Whether changes are being heard; without that nothing is served from memory.
    live: AtomicBool,
}

fn key(app_id: &AppId, identity: &Identity) -> String {
    // Neither an app id nor an identity contains a newline (both are printable ASCII).
    let (app_id, identity) = (app_id.as_str(), identity.as_str());
    let mut key = String::with_capacity(app_id.len() + 1 + identity.len());
    key.push_str(app_id);
    key.push('\n');
    key.push_str(identity);
    key
}

impl VersionCache {
    /// Remembers at most `max_entries` counters; nothing is served until [`Self::set_live`].
    pub fn new(max_entries: u64) -> Self {
        VersionCache {
            counters: Cache::builder().max_capacity(max_entries).build(),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
        }
    }

    /// Where a read of the database starts: pass it to [`Self::remember`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Every counter of `identities`, or `None` if any is unknown here (or changes are not
    /// being heard). Identities that never changed are remembered as 0 and left out.
    pub fn get_all(&self, app_id: &AppId, identities: &[Identity]) -> Option<Vec<(Identity, i64)>> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        let mut versions = Vec::with_capacity(identities.len());
        for identity in identities {
            let version = self.counters.get(&key(app_id, identity))?;
            if version != 0 {
                versions.push((identity.clone(), version));
            }
        }
        Some(versions)
    }

    /// Remembers counters read from the database, unless a drop happened since `generation`.
    pub fn remember(&self, generation: u64, app_id: &AppId, identities: &[Identity], versions: &[(Identity, i64)]) {
        if !self.live.load(Ordering::SeqCst) || self.generation() != generation {
            return;
        }
        let versions = super::etag::by_identity(versions);
        for identity in identities {
            self.counters.insert(key(app_id, identity), versions.get(identity).copied().unwrap_or(0));
        }
        // A drop that landed during the inserts may have missed one of them.
        if self.generation() != generation {
            for identity in identities {
                self.counters.invalidate(&key(app_id, identity));
            }
        }
    }

    /// What a change listener heard.
    pub fn hear(&self, heard: Heard) {
        match heard {
            Heard::Listening => self.set_live(true),
            Heard::Lost => self.set_live(false),
            Heard::Changed { app_id, identities } => {
                for identity in identities {
                    self.forget(&app_id, &identity);
                }
            }
        }
    }

    /// Forgets one identity's counter (it changed).
    pub fn forget(&self, app_id: &AppId, identity: &Identity) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.counters.invalidate(&key(app_id, identity));
    }

    /// Starts or stops serving from memory. Either way everything is forgotten: while changes
    /// were not heard, any counter may have gone stale.
    pub fn set_live(&self, live: bool) {
        self.live.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.counters.invalidate_all();
        self.live.store(live, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<Identity> {
        list.iter().map(|s| Identity::parse(s).unwrap()).collect()
    }

    fn v(identity: &str, version: i64) -> (Identity, i64) {
        (Identity::parse(identity).unwrap(), version)
    }

    fn app(id: &str) -> AppId {
        AppId::parse(id).unwrap()
    }

    #[test]
    fn nothing_is_served_until_changes_are_heard() {
        let cache = VersionCache::new(100);
        let batch = ids(&["alice"]);
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 3)]);
        assert_eq!(cache.get_all(&app("app"), &batch), None);
        cache.set_live(true);
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 3)]);
        assert_eq!(cache.get_all(&app("app"), &batch), Some(vec![v("alice", 3)]));
        cache.set_live(false);
        assert_eq!(cache.get_all(&app("app"), &batch), None);
    }

    #[test]
    fn every_identity_must_be_known_and_unchanged_ones_count_as_zero() {
        let cache = VersionCache::new(100);
        cache.set_live(true);
        cache.remember(cache.generation(), &app("app"), &ids(&["alice", "bob"]), &[v("alice", 2)]);
        assert_eq!(cache.get_all(&app("app"), &ids(&["alice", "bob"])), Some(vec![v("alice", 2)]));
        assert_eq!(cache.get_all(&app("app"), &ids(&["alice", "carol"])), None);
        assert_eq!(cache.get_all(&app("other"), &ids(&["alice"])), None, "apps are apart");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_remembered() {
        let cache = VersionCache::new(100);
        cache.set_live(true);
        let batch = ids(&["alice"]);
        let started = cache.generation();
        cache.forget(&app("app"), &Identity::parse("alice").unwrap());
        cache.remember(started, &app("app"), &batch, &[v("alice", 1)]);
        assert_eq!(cache.get_all(&app("app"), &batch), None);
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 2)]);
        cache.forget(&app("app"), &Identity::parse("alice").unwrap());
        assert_eq!(cache.get_all(&app("app"), &batch), None);
    }
}
