//! Operations: health, the pool, migrations, change notifications.

use async_trait::async_trait;

use super::SqlStore;
use super::db::Db;
use crate::storage::{Backend, Heard, MigrationError, Operations, PoolStats, StorageError};

#[async_trait]
impl Operations for SqlStore {
    fn backend(&self) -> Backend {
        self.db.backend()
    }

    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> Result<(), StorageError> {
        self.db.read().await?.session().execute("SELECT 1", &[]).await.map(|_| ())
    }

    fn pool_stats(&self) -> PoolStats {
        self.db.pool_stats()
    }

    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> Result<(), MigrationError> {
        match &self.db {
            Db::Postgres(pool) => super::migrate::migrate_postgres(pool).await,
            Db::Sqlite(pool) => super::migrate::migrate_sqlite(pool).await,
        }
    }

    async fn close(&self) {
        self.db.close().await;
        if let Some(listener) = &self.listener {
            listener.close().await;
        }
    }

    /// An SQLite file has no notifications: nothing is ever heard, so nothing is cached.
    async fn watch_changes(&self, heard: &(dyn Fn(Heard) + Send + Sync)) {
        if let Some(listener) = &self.listener {
            super::postgres::watch(listener, || self.db.is_closed(), heard).await;
        }
    }
}
