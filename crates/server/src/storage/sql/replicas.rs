//! Read replicas (PostgreSQL streaming standbys): which one may answer a read now, and how that
//! is known.
//!
//! Freshness is measured, not assumed from replication lag figures: the tracker samples the
//! primary's WAL position with the instant before it asked (every commit acknowledged before that
//! instant lies at or below that position), then each replica's replayed position. A replica
//! that replayed past a sample holds everything committed before that sample's instant, so it is
//! at most `now - instant` behind. It answers only while that is within the bound; a replica
//! that cannot be reached, a paused replay, a tracker that cannot reach the primary, or a
//! replica that was promoted (no longer replaying: it has a history of its own) all stop being
//! fresh by themselves as time passes. So a revocation acknowledged at T is hidden from readers
//! after T + max_lag by no replica.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};

use super::db::{Conn, Statements};
use super::postgres;
use crate::storage::{PoolSettings, ReplicaStats, ReplicasStats, StorageError};

/// The replicas and what is known of their freshness.
#[derive(Debug)]
pub(super) struct Replicas {
    members: Vec<Replica>,
    max_lag: Duration,
    /// The primary's WAL position at instants, oldest first.
    primary: Mutex<VecDeque<(Instant, i64)>>,
    /// Where the next read starts looking, so fresh replicas share reads.
    next: AtomicUsize,
    /// Reads that could use a replica but found none fresh.
    stale_fallbacks: AtomicU64,
    /// Reads that found a fresh replica but could not get a connection to it.
    error_fallbacks: AtomicU64,
}

#[derive(Debug)]
struct Replica {
    pool: PgPool,
    statements: Statements,
    /// Holds everything the primary committed before this instant.
    fresh_as_of: Mutex<Option<Instant>>,
    reads: AtomicU64,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const WAL_POSITION: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS position";
const REPLAYED: &str =
    "SELECT pg_is_in_recovery() AS standby, (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS position";

impl Replicas {
    /// Pools (lazy) for `settings.replica_urls`, none fresh until tracked.
    pub fn connect(settings: &PoolSettings) -> Result<Replicas, StorageError> {
        let members = settings
            .replica_urls
            .iter()
            .map(|url| {
                Ok(Replica {
                    pool: postgres::pool(postgres::options(url, settings)?, settings),
                    statements: postgres::statements(settings),
                    fresh_as_of: Mutex::new(None),
                    reads: AtomicU64::new(0),
                })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Replicas {
            members,
            max_lag: settings.replica_max_lag,
            primary: Mutex::new(VecDeque::new()),
            next: AtomicUsize::new(0),
            stale_fallbacks: AtomicU64::new(0),
            error_fallbacks: AtomicU64::new(0),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How often freshness is measured: several times per bound, so a replica that keeps up is
    /// never judged stale for want of a sample.
    fn interval(&self) -> Duration {
        (self.max_lag / 5).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// A connection to a fresh replica, counted; `None` (a fallback, counted) when none is.
    pub async fn acquire(&self) -> Option<Conn> {
        let now = Instant::now();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.members.len();
        let fresh = (0..count).map(|offset| &self.members[(start + offset) % count]).find(|replica| {
            locked(&replica.fresh_as_of).is_some_and(|as_of| now.saturating_duration_since(as_of) <= self.max_lag)
        });
        let Some(replica) = fresh else {
            self.stale_fallbacks.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match Conn::postgres(&replica.pool, replica.statements).await {
            Ok(conn) => {
                replica.reads.fetch_add(1, Ordering::Relaxed);
                Some(conn)
            }
            Err(error) => {
                tracing::debug!(%error, "a fresh replica cannot be reached; reading from the primary");
                self.error_fallbacks.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Measures freshness until `closed` says the store was closed.
    ///
    /// Its statements take no parameters and go by the simple protocol: one exchange, safe
    /// through a pooler, nothing prepared.
    pub async fn track(&self, primary: &PgPool, closed: impl Fn() -> bool) {
        let mut tick = tokio::time::interval(self.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !closed() {
            tick.tick().await;
            let asked = Instant::now();
            let position = sqlx::raw_sql(WAL_POSITION).fetch_one(primary).await.and_then(|row| row.try_get("position"));
            match position {
                Ok(position) => self.sampled_primary(asked, position),
                Err(error) => tracing::debug!(%error, "cannot read the primary's WAL position"),
            }
            for (index, replica) in self.members.iter().enumerate() {
                let replayed = sqlx::raw_sql(REPLAYED).fetch_one(&replica.pool).await.and_then(|row| {
                    Ok((row.try_get::<bool, _>("standby")?, row.try_get::<Option<i64>, _>("position")?))
                });
                match replayed {
                    Ok((true, Some(position))) => self.sampled_replica(replica, position),
                    Ok(_) => {
                        // Not replaying: a primary, or a promoted replica with a history of its
                        // own. Never read from it.
                        if locked(&replica.fresh_as_of).take().is_some() {
                            tracing::warn!(
                                replica = index,
                                "a replica is no longer a standby; reading from the primary"
                            );
                        }
                    }
                    Err(error) => tracing::debug!(replica = index, %error, "cannot read a replica's position"),
                }
            }
        }
    }

    fn sampled_primary(&self, asked: Instant, position: i64) {
        let mut samples = locked(&self.primary);
        samples.push_back((asked, position));
        // Samples older than the bound can never make a replica fresh again; a few are kept so
        // that one slow tick does not leave nothing to compare with.
        let horizon = self.max_lag * 2 + self.interval() * 4;
        while samples.len() > 4 && samples.front().is_some_and(|(at, _)| asked.saturating_duration_since(*at) > horizon)
        {
            samples.pop_front();
        }
    }

    fn sampled_replica(&self, replica: &Replica, replayed: i64) {
        let samples = locked(&self.primary);
        let Some(as_of) = samples.iter().filter(|(_, position)| *position <= replayed).map(|(at, _)| *at).max() else {
            return;
        };
        let mut fresh = locked(&replica.fresh_as_of);
        *fresh = Some(fresh.map_or(as_of, |known| known.max(as_of)));
    }

    pub fn stats(&self) -> ReplicasStats {
        let now = Instant::now();
        ReplicasStats {
            replicas: self
                .members
                .iter()
                .map(|replica| ReplicaStats {
                    staleness: locked(&replica.fresh_as_of).map(|as_of| now.saturating_duration_since(as_of)),
                    reads: replica.reads.load(Ordering::Relaxed),
                })
                .collect(),
            max_lag: self.max_lag,
            stale_fallbacks: self.stale_fallbacks.load(Ordering::Relaxed),
            error_fallbacks: self.error_fallbacks.load(Ordering::Relaxed),
        }
    }

    pub async fn close(&self) {
        for replica in &self.members {
            replica.pool.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(max_lag: Duration) -> Replicas {
        let settings = PoolSettings {
            replica_urls: vec!["postgres://postgres@127.0.0.1:1/none".into()],
            replica_max_lag: max_lag,
            ..PoolSettings::simple(1, Duration::from_millis(100))
        };
        Replicas::connect(&settings).unwrap()
    }

    fn staleness(replicas: &Replicas) -> Option<Duration> {
        replicas.stats().replicas[0].staleness
    }

    #[tokio::test]
    async fn a_replica_is_as_fresh_as_the_newest_primary_sample_it_replayed_past() {
        let replicas = replicas(Duration::from_secs(1));
        let replica = &replicas.members[0];
        let start = Instant::now() - Duration::from_secs(10);
        assert_eq!(staleness(&replicas), None, "nothing known: never fresh");
        replicas.sampled_primary(start, 100);
        replicas.sampled_primary(start + Duration::from_secs(5), 200);
        replicas.sampled_replica(replica, 150);
        let known = locked(&replica.fresh_as_of).unwrap();
        assert_eq!(known, start, "replayed past 100 only: holds what was committed before the first sample");
        replicas.sampled_replica(replica, 120);
        assert_eq!(locked(&replica.fresh_as_of).unwrap(), start, "freshness never goes back");
        replicas.sampled_replica(replica, 200);
        assert_eq!(locked(&replica.fresh_as_of).unwrap(), start + Duration::from_secs(5));
        assert!(staleness(&replicas).unwrap() >= Duration::from_secs(5));
        assert!(replicas.acquire().await.is_none(), "5 s behind a 1 s bound");
        assert_eq!(replicas.stats().stale_fallbacks, 1);
    }

    #[tokio::test]
    async fn a_fresh_replica_that_cannot_be_reached_falls_back_to_the_primary() {
        let replicas = replicas(Duration::from_secs(5));
        let now = Instant::now();
        replicas.sampled_primary(now, 100);
        replicas.sampled_replica(&replicas.members[0], 100);
        assert!(replicas.acquire().await.is_none());
        let stats = replicas.stats();
        assert_eq!((stats.stale_fallbacks, stats.error_fallbacks, stats.replicas[0].reads), (0, 1, 0));
    }

    #[tokio::test]
    async fn old_primary_samples_are_dropped_but_a_few_are_kept() {
        let replicas = replicas(Duration::from_millis(100));
        let start = Instant::now();
        for n in 0..100 {
            replicas.sampled_primary(start + Duration::from_secs(n), n as i64);
        }
        assert_eq!(locked(&replicas.primary).len(), 4);
    }
}
