//! The PostgreSQL backend.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use std::sync::Arc;

use super::sequencer::Gates;
use super::sql::impl_card_store;
use super::{Backend, PoolSettings, StorageError};

/// Cards on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgCardStore {
    pool: PgPool,
    gates: Arc<Gates>,
}

impl PgCardStore {
    /// Opens a pool. It connects lazily, so the service starts (and reports not ready) while the
    /// database is down, and recovers by itself when it comes back.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StorageError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| StorageError::Other(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(PgCardStore { pool, gates: Arc::default() })
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

fn identity_list(identities: &[String]) -> Vec<String> {
    identities.to_vec()
}

impl_card_store! {
    store = PgCardStore,
    db = sqlx::Postgres,
    backend = Backend::Postgres,
    begin = "BEGIN",
    lock_row = " FOR UPDATE",
    in_identities = "= ANY($2)",
    bind_list = identity_list,
    constraint_of = constraint_of,
    migrate = super::migrate::migrate_postgres,
}
