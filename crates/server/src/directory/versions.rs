//! Identity states kept in memory, so that a revalidation that finds nothing changed (a 304)
//! needs no database round trip.
//!
//! Coherence: every sequencing round notifies the identities it logged (PostgreSQL
//! LISTEN/NOTIFY, see `Operations::watch_changes`), every process drops them, and the process
//! that made a change drops it itself before answering. A read that raced a drop is not
//! remembered (the generation check), so an old state never outlives the notification of its
//! change.
//!
//! That only holds while notifications really arrive, and a listener can be subscribed yet deaf
//! (routed through a pooler that drops them). So memory is trusted only up to the last
//! confirmation: the listener keeps sending itself probes through the path writes notify by, and
//! hearing one sent at instant T proves every change committed before T was heard (the channel
//! delivers in commit order). Memory answers only while the newest such T is less than `trust`
//! old; once it is older, everything is forgotten and the database answers. So a stale answer
//! from memory outlives its change by `trust` at most, however notifications fail; losing the
//! connection ends trust at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::domain::{AppId, Identity};
use crate::storage::{Heard, IdentityState};

/// The states of one database's identities, per app.
pub struct VersionCache {
    states: Cache<String, IdentityState>,
    /// Bumped by every drop: a read that started before a drop must not be remembered.
    generation: AtomicU64,
    /// Since when everything committed has been heard, if since the current subscription.
    confirmed: Mutex<Option<Instant>>,
    trust: Duration,
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
    /// Remembers at most `max_entries` states, trusted for `trust` past the last confirmation;
    /// nothing is served before the first.
    pub fn new(max_entries: u64, trust: Duration) -> Self {
        VersionCache {
            states: Cache::builder().max_capacity(max_entries).build(),
            generation: AtomicU64::new(0),
            confirmed: Mutex::new(None),
            trust,
        }
    }

    /// How often the listener should probe: four probes per trust window, so that one lost or
    /// slow probe does not end trust.
    pub fn probe_every(&self) -> Duration {
        (self.trust / 4).max(Duration::from_millis(10))
    }

    fn confirmed(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.confirmed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether memory may answer at `now`.
    fn trusted_at(&self, now: Instant) -> bool {
        self.confirmed().is_some_and(|as_of| now.saturating_duration_since(as_of) <= self.trust)
    }

    /// Where a read of the database starts: pass it to [`Self::remember`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Every state of `identities`, or `None` if any is unknown here or memory is not trusted
    /// now. Identities that never had a card are remembered as such and left out.
    pub fn get_all(&self, app_id: &AppId, identities: &[Identity]) -> Option<Vec<(Identity, IdentityState)>> {
        self.get_all_at(Instant::now(), app_id, identities)
    }

    fn get_all_at(
        &self,
        now: Instant,
        app_id: &AppId,
        identities: &[Identity],
    ) -> Option<Vec<(Identity, IdentityState)>> {
        if !self.trusted_at(now) {
            return None;
        }
        let mut states = Vec::with_capacity(identities.len());
        for identity in identities {
            let state = self.states.get(&key(app_id, identity))?;
            if state != IdentityState::NEVER {
                states.push((identity.clone(), state));
            }
        }
        Some(states)
    }

    /// Remembers states read from the database, unless a drop happened since `generation`.
    pub fn remember(
        &self,
        generation: u64,
        app_id: &AppId,
        identities: &[Identity],
        states: &[(Identity, IdentityState)],
    ) {
        if !self.trusted_at(Instant::now()) || self.generation() != generation {
            return;
        }
        let states = super::etag::by_identity(states);
        for identity in identities {
            self.states.insert(key(app_id, identity), states.get(identity).copied().unwrap_or(IdentityState::NEVER));
        }
        // A drop that landed during the inserts may have missed one of them.
        if self.generation() != generation {
            for identity in identities {
                self.states.invalidate(&key(app_id, identity));
            }
        }
    }

    /// What a change listener heard.
    pub fn hear(&self, heard: Heard) {
        self.hear_at(Instant::now(), heard);
    }

    fn hear_at(&self, now: Instant, heard: Heard) {
        match heard {
            // A new subscription: what was heard before it proves nothing about what was missed
            // in between.
            Heard::Listening | Heard::Lost => {
                let mut confirmed = self.confirmed();
                *confirmed = None;
                self.forget_all();
            }
            Heard::Confirmed { as_of } => {
                let mut confirmed = self.confirmed();
                match *confirmed {
                    Some(previous) if now.saturating_duration_since(previous) <= self.trust => {
                        *confirmed = Some(previous.max(as_of));
                    }
                    // Trust had lapsed: states remembered before may be stale.
                    _ => {
                        self.forget_all();
                        *confirmed = Some(as_of);
                    }
                }
            }
            Heard::Changed { app_id, identities } => {
                for identity in identities {
                    self.forget(&app_id, &identity);
                }
            }
        }
    }

    /// Forgets one identity's state (it changed).
    pub fn forget(&self, app_id: &AppId, identity: &Identity) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.states.invalidate(&key(app_id, identity));
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.states.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUST: Duration = Duration::from_secs(2);

    fn ids(list: &[&str]) -> Vec<Identity> {
        list.iter().map(|s| Identity::parse(s).unwrap()).collect()
    }

    fn v(identity: &str, version: i64) -> (Identity, IdentityState) {
        (Identity::parse(identity).unwrap(), IdentityState { version, digest: Some([version as u8; 16]) })
    }

    fn app(id: &str) -> AppId {
        AppId::parse(id).unwrap()
    }

    fn confirmed_cache() -> VersionCache {
        let cache = VersionCache::new(100, TRUST);
        cache.hear(Heard::Listening);
        cache.hear(Heard::Confirmed { as_of: Instant::now() });
        cache
    }

    #[test]
    fn nothing_is_served_until_a_probe_is_heard_back() {
        let cache = VersionCache::new(100, TRUST);
        let batch = ids(&["alice"]);
        cache.hear(Heard::Listening);
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 3)]);
        assert_eq!(cache.get_all(&app("app"), &batch), None, "subscribed is not enough");
        cache.hear(Heard::Confirmed { as_of: Instant::now() });
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 3)]);
        assert_eq!(cache.get_all(&app("app"), &batch), Some(vec![v("alice", 3)]));
        cache.hear(Heard::Lost);
        assert_eq!(cache.get_all(&app("app"), &batch), None);
        cache.hear(Heard::Confirmed { as_of: Instant::now() });
        assert_eq!(cache.get_all(&app("app"), &batch), None, "losing the connection forgot everything");
    }

    #[test]
    fn memory_stops_answering_once_the_last_confirmation_is_older_than_the_trust() {
        let cache = VersionCache::new(100, TRUST);
        let batch = ids(&["alice"]);
        let start = Instant::now();
        cache.hear_at(start, Heard::Confirmed { as_of: start });
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 1)]);
        assert!(cache.get_all_at(start + TRUST, &app("app"), &batch).is_some());
        assert_eq!(cache.get_all_at(start + TRUST + Duration::from_millis(1), &app("app"), &batch), None);
        // A late probe after the lapse: what was remembered before is gone.
        let late = start + TRUST * 3;
        cache.hear_at(late, Heard::Confirmed { as_of: late });
        assert_eq!(cache.get_all_at(late, &app("app"), &batch), None);
        // A probe in time extends trust, and an older one heard late never shortens it.
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 2)]);
        let next = late + TRUST / 2;
        cache.hear_at(next, Heard::Confirmed { as_of: next });
        cache.hear_at(next, Heard::Confirmed { as_of: late });
        assert_eq!(cache.get_all_at(next + TRUST, &app("app"), &batch), Some(vec![v("alice", 2)]));
        assert_eq!(cache.probe_every(), TRUST / 4);
    }

    #[test]
    fn every_identity_must_be_known_and_ones_without_cards_are_left_out() {
        let cache = confirmed_cache();
        cache.remember(cache.generation(), &app("app"), &ids(&["alice", "bob"]), &[v("alice", 2)]);
        assert_eq!(cache.get_all(&app("app"), &ids(&["alice", "bob"])), Some(vec![v("alice", 2)]));
        assert_eq!(cache.get_all(&app("app"), &ids(&["alice", "carol"])), None);
        assert_eq!(cache.get_all(&app("other"), &ids(&["alice"])), None, "apps are apart");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_remembered() {
        let cache = confirmed_cache();
        let batch = ids(&["alice"]);
        let started = cache.generation();
        cache.hear(Heard::Changed { app_id: app("app"), identities: batch.clone() });
        cache.remember(started, &app("app"), &batch, &[v("alice", 1)]);
        assert_eq!(cache.get_all(&app("app"), &batch), None);
        cache.remember(cache.generation(), &app("app"), &batch, &[v("alice", 2)]);
        cache.forget(&app("app"), &Identity::parse("alice").unwrap());
        assert_eq!(cache.get_all(&app("app"), &batch), None);
    }
}
