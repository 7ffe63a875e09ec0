//! PostgreSQL: connection options, and the change listener with its self-probe.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    let mut options =
        PgConnectOptions::from_str(url).map_err(|e| StorageError::Other(e.to_string()))?.extra_float_digits(None);
    // So that an operator (and the budget test) can tell Cardinal's connections apart in
    // pg_stat_activity; PgBouncer forwards it. A name given in the URL wins.
    if options.get_application_name().is_none() {
        options = options.application_name("cardinal");
    }
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
///
/// Every subscription is announced: sqlx's listener would otherwise reconnect by itself inside
/// `try_recv` (and, if that call were cancelled mid-way, resume on the new connection without a
/// word), hiding the gap in which notifications were missed while the probes on the new
/// connection went on confirming. So it never reconnects on its own, and the receiving loop is
/// never cancelled: probes are sent by a task of their own.
pub(super) async fn watch(
    listener: &PgPool,
    primary: &PgPool,
    statements: Statements,
    probe_every: Duration,
    closed: impl Fn() -> bool,
    heard: &(dyn Fn(Heard) + Send + Sync),
) {
    let name = uuid::Uuid::new_v4().simple().to_string();
    let sequence = Arc::new(AtomicU64::new(0));
    loop {
        let subscribed = async {
            let mut listener = PgListener::connect_with(listener).await?;
            listener.eager_reconnect(false);
            listener.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match subscribed.await {
            Ok(mut listener) => {
                tracing::info!(listener = %name, "listening for changes");
                heard(Heard::Listening);
                let pending: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
                let prober = tokio::spawn(probe(
                    primary.clone(),
                    statements,
                    probe_every,
                    name.clone(),
                    sequence.clone(),
                    pending.clone(),
                ));
                // `Ok(None)` or an error: the connection went, and notifications with it.
                while let Ok(Some(notification)) = listener.try_recv().await {
                    match parse_notification(notification.payload()) {
                        Some(Notification::Changed(change)) => heard(change),
                        Some(Notification::Probe { listener, sequence }) if listener == name => {
                            if let Some(as_of) = settle(&pending, sequence) {
                                heard(Heard::Confirmed { as_of });
                            }
                        }
                        Some(Notification::Probe { .. }) => {}
                        None => tracing::warn!(payload = ?notification.payload(), "unreadable change notification"),
                    }
                }
                prober.abort();
                heard(Heard::Lost);
                tracing::warn!(listener = %name, "change notifications lost; listening again");
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

/// Probes come back in the order they committed: one heard settles every earlier one. Returns
/// when the heard one was sent, if it was this subscription's.
fn settle(pending: &Mutex<VecDeque<(u64, Instant)>>, heard: u64) -> Option<Instant> {
    let mut pending = pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut confirmed = None;
    while let Some(&(sent, as_of)) = pending.front().filter(|(sent, _)| *sent <= heard) {
        pending.pop_front();
        if sent == heard {
            confirmed = Some(as_of);
        }
    }
    confirmed
}

/// Sends the listener's probes through `primary`, one every `every`, until aborted.
async fn probe(
    primary: PgPool,
    statements: Statements,
    every: Duration,
    name: String,
    sequence: Arc<AtomicU64>,
    pending: Arc<Mutex<VecDeque<(u64, Instant)>>>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let number = sequence.fetch_add(1, Ordering::Relaxed);
        {
            let mut pending = pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // The instant before the probe is sent, so before it commits: every change
            // committed earlier is delivered before it.
            pending.push_back((number, Instant::now()));
            if pending.len() > PENDING_PROBES {
                pending.pop_front();
            }
        }
        let payload = probe_payload(&name, number);
        // Each in a task of its own, so that a slow primary delays no later probe; in a
        // transaction, as every write's notification is: one server connection from parse to
        // commit, pooler or not.
        let primary = primary.clone();
        tokio::spawn(async move {
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
