//! Prometheus metrics: HTTP requests (by actix-web-prom), the directory's own counters, and the
//! database pool's state read at scrape time.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::ratelimit::RouteClass;

use crate::storage::Operations;

/// The service's counters, registered in one registry.
pub struct Metrics {
    /// Where everything is registered; `/metrics` renders it.
    pub registry: Registry,
    /// Cards accepted, roots and rotations.
    pub cards_published: IntCounter,
    /// Of those, rotations.
    pub cards_rotated: IntCounter,
    /// Chains revoked, by who (`owner`, `admin`).
    pub chains_revoked: IntCounterVec,
    /// Lookups answered, by route (`lookup`, `search`, `virgil_search`).
    pub lookups: IntCounterVec,
    /// Identities asked for in those lookups.
    pub lookup_identities: IntCounter,
    /// Lookups answered 304.
    pub lookup_not_modified: IntCounter,
    /// Revalidations whose change counters all came from memory (no database round trip).
    pub revalidations_from_memory: IntCounter,
    /// Tokens refused, by reason (`missing`, `invalid`, `expired`).
    pub token_rejections: IntCounterVec,
    /// Requests refused by a rate limit, by scope (`address`, `identity`).
    pub rate_limited: IntCounterVec,
    /// Keyknox operations answered, by operation (`v1_get`, `v1_put`, `v1_reset`, `push`,
    /// `pull`, `keys`, `reset`, `erase`).
    pub keyknox_operations: IntCounterVec,
    /// Keyknox writes refused by the hash protocol, by kind (`entry_exists`, `hash_mismatch`):
    /// clients racing on one entry, or a stale client.
    pub keyknox_conflicts: IntCounterVec,
    /// Pythia brainkey requests refused by their rate limit, by scope (`address`, `identity`):
    /// throttled password guesses, or a user's flows squeezed by a budget set too low.
    pub pythia_throttled: IntCounterVec,
    /// Pythia brainkey requests answered, by outcome (`ok`, `invalid`, `busy`).
    pub pythia_evaluations: IntCounterVec,
    /// Seconds one evaluation took on its blocking thread.
    pub pythia_evaluation_seconds: Histogram,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let counter = IntCounter::with_opts(Opts::new(name, help).namespace("cardinal"))?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> prometheus::Result<IntCounterVec> {
    let counter = IntCounterVec::new(Opts::new(name, help).namespace("cardinal"), &[label])?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

impl Metrics {
    /// Registers every metric, and a collector of `store`'s pool state.
    pub fn new(store: Arc<dyn Operations>) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        registry.register(Box::new(PoolCollector::new(store.clone())?))?;
        registry.register(Box::new(WriteQueueCollector::new(store.clone())?))?;
        registry.register(Box::new(ReplicaCollector::new(store)?))?;
        Ok(Metrics {
            cards_published: counter(&registry, "cards_published_total", "Cards published (roots and rotations)")?,
            cards_rotated: counter(
                &registry,
                "cards_rotated_total",
                "Cards published as rotations of a previous card",
            )?,
            chains_revoked: counter_vec(&registry, "chains_revoked_total", "Card chains revoked", "by")?,
            lookups: counter_vec(&registry, "lookups_total", "Card lookups answered", "route")?,
            lookup_identities: counter(&registry, "lookup_identities_total", "Identities asked for in lookups")?,
            lookup_not_modified: counter(&registry, "lookup_not_modified_total", "Lookups answered 304 Not Modified")?,
            revalidations_from_memory: counter(
                &registry,
                "revalidations_from_memory_total",
                "Revalidations whose change counters all came from memory, without a database round trip",
            )?,
            token_rejections: counter_vec(
                &registry,
                "token_rejections_total",
                "Requests refused for their token",
                "reason",
            )?,
            rate_limited: counter_vec(&registry, "rate_limited_total", "Requests refused by a rate limit", "scope")?,
            keyknox_operations: counter_vec(
                &registry,
                "keyknox_operations_total",
                "Keyknox operations answered",
                "operation",
            )?,
            keyknox_conflicts: counter_vec(
                &registry,
                "keyknox_conflicts_total",
                "Keyknox writes refused by the hash protocol",
                "kind",
            )?,
            pythia_throttled: counter_vec(
                &registry,
                "pythia_throttled_total",
                "Pythia brainkey requests refused by their rate limit",
                "scope",
            )?,
            pythia_evaluations: counter_vec(
                &registry,
                "pythia_evaluations_total",
                "Pythia brainkey requests answered, by outcome",
                "outcome",
            )?,
            pythia_evaluation_seconds: {
                let histogram = Histogram::with_opts(
                    HistogramOpts::new("pythia_evaluation_seconds", "CPU time of one Pythia brainkey evaluation")
                        .namespace("cardinal")
                        .buckets(vec![0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128]),
                )?;
                registry.register(Box::new(histogram.clone()))?;
                histogram
            },
            registry,
        })
    }

    /// Counts a request a rate limit of `class` refused, by scope (`address`, `identity`).
    pub fn refused(&self, class: RouteClass, scope: &str) {
        self.rate_limited.with_label_values(&[scope]).inc();
        if class == RouteClass::Brainkey {
            self.pythia_throttled.with_label_values(&[scope]).inc();
        }
    }

    /// Counts a published card.
    pub fn card_published(&self, card: &crate::directory::Card) {
        self.cards_published.inc();
        if card.record.previous_card_id.is_some() {
            self.cards_rotated.inc();
        }
    }

    /// Counts an answered lookup.
    pub fn lookup(&self, route: &str, identities: usize, not_modified: bool) {
        self.lookups.with_label_values(&[route]).inc();
        self.lookup_identities.inc_by(identities as u64);
        if not_modified {
            self.lookup_not_modified.inc();
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> prometheus::Result<String> {
        let mut text = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text)?;
        Ok(text)
    }
}

/// The pool's connections, read when scraped.
struct PoolCollector {
    store: Arc<dyn Operations>,
    open: IntGauge,
    idle: IntGauge,
    in_use: IntGauge,
    max: IntGauge,
    descs: Vec<Desc>,
}

impl PoolCollector {
    fn new(store: Arc<dyn Operations>) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help).namespace("cardinal"));
        let open = gauge("db_pool_connections", "Open database connections")?;
        let idle = gauge("db_pool_idle_connections", "Idle database connections")?;
        let in_use = gauge("db_pool_in_use_connections", "Database connections lent to requests")?;
        let max = gauge("db_pool_max_connections", "Most database connections the pool opens")?;
        let descs = [&open, &idle, &in_use, &max].iter().flat_map(|g| g.desc().into_iter().cloned()).collect();
        Ok(PoolCollector { store, open, idle, in_use, max, descs })
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.store.pool_stats();
        self.open.set(i64::from(stats.size));
        self.idle.set(stats.idle as i64);
        self.in_use.set(i64::from(stats.size).saturating_sub(stats.idle as i64));
        self.max.set(i64::from(stats.max));
        [&self.open, &self.idle, &self.in_use, &self.max].iter().flat_map(|g| g.collect()).collect()
    }
}

/// SQLite's one writer path, read when scraped (nothing on PostgreSQL).
struct WriteQueueCollector {
    store: Arc<dyn Operations>,
    writers: IntGauge,
    max_writers: IntGauge,
    commits: IntCounter,
    committed: IntCounter,
    refused: IntCounter,
    /// Seconds summed over writes, by phase (`wait`, `hold`, `commit`).
    seconds: prometheus::CounterVec,
    descs: Vec<Desc>,
}

impl WriteQueueCollector {
    fn new(store: Arc<dyn Operations>) -> prometheus::Result<Self> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("cardinal");
        let writers = IntGauge::with_opts(opts("db_write_queue_writers", "SQLite writes queued or writing now"))?;
        let max_writers =
            IntGauge::with_opts(opts("db_write_queue_max_writers", "SQLite writes that may queue before 503"))?;
        let commits = IntCounter::with_opts(opts("db_write_commits_total", "SQLite group commits"))?;
        let committed =
            IntCounter::with_opts(opts("db_writes_committed_total", "SQLite writes made durable by group commits"))?;
        let refused = IntCounter::with_opts(opts(
            "db_writes_refused_total",
            "SQLite writes refused with 503: the queue was full or the turn too slow",
        ))?;
        let seconds = prometheus::CounterVec::new(
            opts(
                "db_write_seconds_total",
                "SQLite writes' time, summed, by phase: waiting for a turn, holding it, group commits",
            ),
            &["phase"],
        )?;
        let descs =
            [writers.desc(), max_writers.desc(), commits.desc(), committed.desc(), refused.desc(), seconds.desc()]
                .into_iter()
                .flat_map(|descs| descs.into_iter().cloned())
                .collect();
        Ok(WriteQueueCollector { store, writers, max_writers, commits, committed, refused, seconds, descs })
    }
}

impl Collector for WriteQueueCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(stats) = self.store.pool_stats().writes else { return Vec::new() };
        self.writers.set(stats.writers as i64);
        self.max_writers.set(stats.max_writers as i64);
        // Counters mirrored from the queue's own: set, not added to.
        for (counter, value) in
            [(&self.commits, stats.commits), (&self.committed, stats.committed), (&self.refused, stats.refused)]
        {
            counter.reset();
            counter.inc_by(value);
        }
        self.seconds.reset();
        for (phase, spent) in [("wait", stats.waited), ("hold", stats.held), ("commit", stats.committing)] {
            self.seconds.with_label_values(&[phase]).inc_by(spent.as_secs_f64());
        }
        [
            self.writers.collect(),
            self.max_writers.collect(),
            self.commits.collect(),
            self.committed.collect(),
            self.refused.collect(),
            self.seconds.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The read replicas' freshness and use, read when scraped.
struct ReplicaCollector {
    store: Arc<dyn Operations>,
    staleness: GaugeVec,
    max_lag: Gauge,
    reads: IntCounterVec,
    fallbacks: IntCounterVec,
    descs: Vec<Desc>,
}

impl ReplicaCollector {
    fn new(store: Arc<dyn Operations>) -> prometheus::Result<Self> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("cardinal");
        let staleness = GaugeVec::new(
            opts(
                "replica_staleness_seconds",
                "How far behind the primary a read replica is known to be at most (+Inf while unknown)",
            ),
            &["replica"],
        )?;
        let max_lag =
            Gauge::with_opts(opts("replica_max_lag_seconds", "Staleness past which a replica answers no read"))?;
        let reads = IntCounterVec::new(opts("replica_reads_total", "Reads answered by a read replica"), &["replica"])?;
        let fallbacks = IntCounterVec::new(
            opts("replica_fallbacks_total", "Reads a replica could have answered that went to the primary"),
            &["reason"],
        )?;
        let descs = [staleness.desc(), max_lag.desc(), reads.desc(), fallbacks.desc()]
            .into_iter()
            .flat_map(|descs| descs.into_iter().cloned())
            .collect();
        Ok(ReplicaCollector { store, staleness, max_lag, reads, fallbacks, descs })
    }
}

impl Collector for ReplicaCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.store.replica_stats();
        if stats.replicas.is_empty() {
            return Vec::new();
        }
        // Counters mirrored from the store's own: set, not added to.
        self.reads.reset();
        self.fallbacks.reset();
        for (index, replica) in stats.replicas.iter().enumerate() {
            let name = index.to_string();
            let staleness = replica.staleness.map_or(f64::INFINITY, |staleness| staleness.as_secs_f64());
            self.staleness.with_label_values(&[&name]).set(staleness);
            self.reads.with_label_values(&[&name]).inc_by(replica.reads);
        }
        self.max_lag.set(stats.max_lag.as_secs_f64());
        self.fallbacks.with_label_values(&["stale"]).inc_by(stats.stale_fallbacks);
        self.fallbacks.with_label_values(&["unreachable"]).inc_by(stats.error_fallbacks);
        [self.staleness.collect(), self.max_lag.collect(), self.reads.collect(), self.fallbacks.collect()]
            .into_iter()
            .flatten()
            .collect()
    }
}
