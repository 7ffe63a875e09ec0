//! Operations: health, the pool, migrations, change notifications.

use std::time::Duration;

use async_trait::async_trait;

use super::SqlStore;
use super::db::Db;
use crate::storage::{Backend, Heard, MigrationError, Operations, PoolStats, ReplicasStats, Schema, StorageError};

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
    async fn schema(&self) -> Result<Schema, StorageError> {
        let known = super::migrate::known_versions(matches!(self.db, Db::Postgres(..)));
        let present = match &self.db {
            Db::Postgres(..) => "SELECT to_regclass('refinery_schema_history') IS NOT NULL AS present",
            Db::Sqlite(..) => {
                "SELECT count(*) > 0 AS present FROM sqlite_master WHERE name = 'refinery_schema_history'"
            }
        };
        let present: bool = self.read_optional(present, &[], |row| row.get("present")).await?.unwrap_or(false);
        if !present {
            return Ok(Schema { applied: Vec::new(), known });
        }
        // refinery's version column is a 32-bit integer on both.
        let applied: Vec<i32> = self
            .read_all("SELECT version FROM refinery_schema_history ORDER BY version", &[], |row| row.get("version"))
            .await?;
        let applied = applied.into_iter().map(i64::from).collect();
        Ok(Schema { applied, known })
    }

    #[tracing::instrument(skip_all)]
    async fn database_clock(&self) -> Result<Option<i64>, StorageError> {
        match &self.db {
            Db::Postgres(..) => {
                self.read_optional(
                    "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms",
                    &[],
                    |row| row.get("now_ms"),
                )
                .await
            }
            Db::Sqlite(..) => Ok(None),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn migrate(&self) -> Result<(), MigrationError> {
        match &self.db {
            Db::Postgres(pool, statements) => super::migrate::migrate_postgres(pool, *statements).await?,
            Db::Sqlite(pool, _) => super::migrate::migrate_sqlite(pool).await?,
        }
        let completed = self.complete_digests().await?;
        if completed > 0 {
            tracing::info!(completed, "every identity has its digest");
        }
        let hashed = self.complete_trees().await?;
        if hashed > 0 {
            tracing::info!(hashed, "every event is in its app's transparency tree");
        }
        // A new database gets its epoch; one that has it keeps it.
        let mut tx = self.db.begin_write().await?;
        tx.session()
            .execute(
                "INSERT INTO service_epoch (singleton, epoch, renewed_at) VALUES (1, $1, $2) \
                 ON CONFLICT (singleton) DO NOTHING",
                &[new_epoch().as_str().into(), unix_now().into()],
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn back_up_into(&self, path: &std::path::Path) -> Result<(), StorageError> {
        let Db::Sqlite(..) = &self.db else {
            return Err(StorageError::Other(
                "a PostgreSQL database is backed up with pg_dump (see README, Backups and restores)".into(),
            ));
        };
        let path = path.to_str().ok_or_else(|| StorageError::Other("the backup path is not UTF-8".into()))?;
        // One read transaction: a snapshot of everything committed when it began, taken
        // beside the writer (WAL), page by page into a compact new file.
        self.db.read().await?.session().execute("VACUUM INTO $1", &[path.into()]).await.map(|_| ())
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        self.read_optional("SELECT epoch FROM service_epoch WHERE singleton = 1", &[], |row| row.get("epoch"))
            .await?
            .ok_or(StorageError::NotFound)
    }

    async fn renew_epoch(&self) -> Result<String, StorageError> {
        let epoch = new_epoch();
        let mut tx = self.db.begin_write().await?;
        tx.session()
            .execute(
                "INSERT INTO service_epoch (singleton, epoch, renewed_at) VALUES (1, $1, $2) \
                 ON CONFLICT (singleton) DO UPDATE SET epoch = $1, renewed_at = $2",
                &[epoch.as_str().into(), unix_now().into()],
            )
            .await?;
        tx.commit().await?;
        Ok(epoch)
    }

    fn replica_stats(&self) -> ReplicasStats {
        self.replicas.as_ref().map(|replicas| replicas.stats()).unwrap_or_default()
    }

    async fn track_replicas(&self) {
        if let (Some(replicas), Db::Postgres(primary, _)) = (&self.replicas, &self.db) {
            replicas.track(primary, || self.db.is_closed()).await;
        }
    }

    async fn close(&self) {
        self.db.close().await;
        if let Some(replicas) = &self.replicas {
            replicas.close().await;
        }
        if let Some(listener) = &self.listener {
            listener.close().await;
        }
    }

    /// An SQLite file has no notifications: nothing is ever heard, so nothing is cached.
    async fn watch_changes(&self, probe_every: Duration, heard: &(dyn Fn(Heard) + Send + Sync)) {
        if let (Some(listener), Db::Postgres(primary, statements)) = (&self.listener, &self.db) {
            super::postgres::watch(listener, primary, *statements, probe_every, || self.db.is_closed(), heard).await;
        }
    }
}

/// A fresh epoch: 128 random bits.
fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64)
}
