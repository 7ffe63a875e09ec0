//! PostgreSQL: connection options, and the change listener with its self-probe.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::db::Statements;
use crate::storage::{
    CHANGES_CHANNEL, Heard, Notification, PoolSettings, StorageError, parse_notification, probe_payload,
};

/// The options of a connection to `url`, as `settings` want them.
pub(super) fn options(url: &str, settings: &PoolSettings) -> Result<PgConnectOptions, StorageError> {
    // sqlx asks for `extra_float_digits` at startup by default, which PgBouncer refuses unless
    // told to ignore it; Cardinal reads no floating-point column.
    let options =
        PgConnectOptions::from_str(url).map_err(|e| StorageError::Other(e.to_string()))?.extra_float_digits(None);
    if settings.behind_pooler {
        // A pooler forwards no startup options (PgBouncer refuses them, or drops them when told
        // to ignore them), and unnamed statements are planned at every execution anyway.
        return Ok(options);
    }
    // Generic plans: the lookup statement costs far more to plan (about 1 ms here) than to
    // run, and with PostgreSQL's default choice a connection whose first executions were
    // single-identity lookups re-planned it on every execution ever after (half the
    // throughput), while one that began with batches did not. Every statement here is an
    // index lookup whose generic plan is the right one. Options in the URL still apply.
    Ok(options.options([("plan_cache_mode", "force_generic_plan")]))
}

/// How statements are sent on connections made with `settings`.
pub(super) fn statements(settings: &PoolSettings) -> Statements {
    if settings.behind_pooler { Statements::Unnamed } else { Statements::Prepared }
}

/// A pool for requests (lazy: the service starts, and reports not ready, while the database is
/// down, and recovers by itself).
pub(super) fn pool(options: PgConnectOptions, settings: &PoolSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options)
}

/// The pool of one connection that LISTENs: to `listen_url` when set (LISTEN does not work
/// through a transaction-mode pooler), else to the main URL. Always direct options: LISTEN
/// keeps a session of its own, so it never goes through a pooler knowingly.
pub(super) fn listener_pool(url: &str, settings: &PoolSettings) -> Result<PgPool, StorageError> {
    let direct = PoolSettings { behind_pooler: false, ..settings.clone() };
    let options = options(settings.listen_url.as_deref().unwrap_or(url), &direct)?;
    Ok(PgPoolOptions::new().max_connections(1).acquire_timeout(settings.acquire_timeout).connect_lazy_with(options))
}

/// Probes sent and not yet heard back; a listener that hears none keeps only the newest.
const PENDING_PROBES: usize = 64;

/// LISTENs on [`CHANGES_CHANNEL`], and tells `heard` what it hears until `closed` says the store
/// was closed: `Listening` once subscribed, the changes, `Lost` whenever the connection goes
/// (then subscribes again, once a second at most), and `Confirmed` each time one of its own
/// probes comes back.
///
/// The probes go through `primary` (the pool writes notify through, pooler included), one every
/// `probe_every`. A listener that is subscribed but deaf (routed through a pooler that drops
/// notifications) hears none, and so never confirms anything.
pub(super) async fn watch(
    listener: &PgPool,
    primary: &PgPool,
    statements: Statements,
    probe_every: Duration,
    closed: impl Fn() -> bool,
    heard: &(dyn Fn(Heard) + Send + Sync),
) {
    let name = uuid::Uuid::new_v4().simple().to_string();
    let mut sequence = 0u64;
    loop {
        let subscribed = async {
            let mut listener = PgListener::connect_with(listener).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match subscribed.await {
            Ok(mut listener) => {
                heard(Heard::Listening);
                let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
                let mut probe = tokio::time::interval(probe_every);
                probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        received = listener.try_recv() => {
                            // `Ok(None)` or an error: the connection went, and notifications with it.
                            let Ok(Some(notification)) = received else { break };
                            match parse_notification(notification.payload()) {
                                Some(Notification::Changed(change)) => heard(change),
                                Some(Notification::Probe { listener, sequence }) if listener == name => {
                                    // Probes come back in the order they committed; one heard
                                    // settles every earlier one.
                                    while let Some(&(sent, as_of)) = pending.front().filter(|(sent, _)| *sent <= sequence) {
                                        pending.pop_front();
                                        if sent == sequence {
                                            heard(Heard::Confirmed { as_of });
                                        }
                                    }
                                }
                                Some(Notification::Probe { .. }) => {}
                                None => tracing::warn!(payload = ?notification.payload(), "unreadable change notification"),
                            }
                        }
                        _ = probe.tick() => {
                            // The instant before the probe is sent, so before it commits: every
                            // change committed earlier is delivered before it.
                            pending.push_back((sequence, Instant::now()));
                            if pending.len() > PENDING_PROBES {
                                pending.pop_front();
                            }
                            let payload = probe_payload(&name, sequence);
                            sequence += 1;
                            // Sent aside, so a slow primary never holds notifications back.
                            let primary = primary.clone();
                            tokio::spawn(async move {
                                // In a transaction, as every write's notification is: one
                                // server connection from parse to commit, pooler or not.
                                let sent = async {
                                    let mut tx = primary.begin().await?;
                                    sqlx::query("SELECT pg_notify($1, $2)")
                                        .persistent(statements == Statements::Prepared)
                                        .bind(CHANGES_CHANNEL)
                                        .bind(payload)
                                        .execute(&mut *tx)
                                        .await?;
                                    tx.commit().await
                                };
                                if let Err(error) = sent.await {
                                    tracing::debug!(%error, "cannot send a listener probe");
                                }
                            });
                        }
                    }
                }
                heard(Heard::Lost);
                tracing::warn!("change notifications lost; listening again");
            }
            Err(error) => {
                heard(Heard::Lost);
                tracing::debug!(%error, "cannot listen for changes yet");
            }
        }
        if closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
