//! PostgreSQL: connection options and the change listener.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::storage::{CHANGES_CHANNEL, Heard, PoolSettings, StorageError, parse_change_payload};

/// A pool for requests and a pool of one connection for LISTEN. Both connect lazily, so the
/// service starts (and reports not ready) while the database is down, and recovers by itself.
pub(super) fn connect(url: &str, settings: &PoolSettings) -> Result<(PgPool, PgPool), StorageError> {
    // Generic plans: the lookup statement costs far more to plan (about 1 ms here) than to
    // run, and with PostgreSQL's default choice a connection whose first executions were
    // single-identity lookups re-planned it on every execution ever after (half the
    // throughput), while one that began with batches did not. Every statement here is an
    // index lookup whose generic plan is the right one. Options in the URL still apply.
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StorageError::Other(e.to_string()))?
        .options([("plan_cache_mode", "force_generic_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options.clone());
    let listener =
        PgPoolOptions::new().max_connections(1).acquire_timeout(settings.acquire_timeout).connect_lazy_with(options);
    Ok((pool, listener))
}

/// LISTENs on [`CHANGES_CHANNEL`], saying `Listening` once subscribed and `Lost` whenever the
/// connection goes (then subscribes again, once a second at most), until `closed` says the
/// store was closed.
pub(super) async fn watch(listener: &PgPool, closed: impl Fn() -> bool, heard: &(dyn Fn(Heard) + Send + Sync)) {
    loop {
        let subscribed = async {
            let mut listener = PgListener::connect_with(listener).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match subscribed.await {
            Ok(mut listener) => {
                heard(Heard::Listening);
                // `Ok(None)` or an error: the connection went, and notifications with it.
                while let Ok(Some(notification)) = listener.try_recv().await {
                    match parse_change_payload(notification.payload()) {
                        Some(change) => heard(change),
                        None => tracing::warn!(payload = ?notification.payload(), "unreadable change notification"),
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
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
