//! The PostgreSQL backend.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::PgPool;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use super::sequencer::Gates;
use super::sql::{impl_card_store, parse_change_payload};
use super::{Backend, CHANGES_CHANNEL, Heard, PoolSettings, StorageError};

/// Cards on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgCardStore {
    pool: PgPool,
    /// One connection of its own for LISTEN, so listening never takes one from requests.
    listen_pool: PgPool,
    gates: Arc<Gates>,
}

impl PgCardStore {
    /// Opens a pool. It connects lazily, so the service starts (and reports not ready) while the
    /// database is down, and recovers by itself when it comes back.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StorageError> {
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
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(PgCardStore { pool, listen_pool, gates: Arc::default() })
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// PostgreSQL names the violated constraint or index itself.
fn constraint_of(error: &dyn DatabaseError) -> Option<String> {
    error.constraint().map(str::to_owned)
}

/// LISTENs on [`CHANGES_CHANNEL`], saying `Listening` once subscribed and `Lost` whenever the
/// connection goes (then subscribes again, once a second at most).
async fn watch(store: &PgCardStore, heard: &(dyn Fn(Heard) + Send + Sync)) {
    loop {
        let subscribed = async {
            let mut listener = PgListener::connect_with(&store.listen_pool).await?;
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
                        None => tracing::warn!(payload = notification.payload(), "unreadable change notification"),
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
        if store.pool.is_closed() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn identity_list(identities: &[String]) -> Vec<String> {
    identities.to_vec()
}

impl_card_store! {
    store = PgCardStore,
    db = sqlx::Postgres,
    backend = Backend::Postgres,
    begin = "BEGIN",
    lock_row = " FOR UPDATE",
    notify = true,
    watch = watch,
    in_identities = "= ANY($2)",
    bind_list = identity_list,
    constraint_of = constraint_of,
    migrate = super::migrate::migrate_postgres,
}
