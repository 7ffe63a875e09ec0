//! The SQL store: every storage trait, written once for PostgreSQL and SQLite.
//!
//! Statements are written in PostgreSQL's syntax and bind `$N` the same way on both databases;
//! `dialect.rs` renders what SQLite spells differently, and `db.rs` is the one place that names the
//! two drivers. One file per trait (apps and keys, cards, the event log, operations), the
//! sequencing of the event log in `sequencer.rs`, each backend's connection setup in its own file.

mod admin;
mod apps;
mod cards;
mod db;
mod dialect;
mod events;
mod keyknox;
mod migrate;
mod ops;
mod postgres;
mod replicas;
mod sequencer;
mod sqlite;
mod transparency;
mod writer;

use crate::domain::AppId;
use crate::storage::{Backend, EventDraft, PoolSettings, ReadFrom, StorageError};
use db::{Arg, Conn, Db, Row, Tx};

pub use migrate::MigrationError;
pub use sequencer::{QUEUE_SWEEP, sweep_queue};
pub use sqlite::database_file as sqlite_file;

/// What the store returns.
type Stored<T> = Result<T, StorageError>;

/// Makes a record of a row.
type Reader<T> = fn(&Row) -> Stored<T>;

/// The directory on PostgreSQL or SQLite.
#[derive(Debug)]
pub struct SqlStore {
    db: Db,
    /// PostgreSQL only: a pool of one connection of its own for LISTEN (direct, even when the
    /// main pool goes through a pooler), so that listening never takes a connection from
    /// requests.
    listener: Option<sqlx::PgPool>,
    /// PostgreSQL only: read replicas for lookups and searches (none unless configured).
    replicas: Option<replicas::Replicas>,
    gates: sequencer::Gates,
}

impl SqlStore {
    /// Opens the database that `url` names: PostgreSQL connects lazily (so the service starts,
    /// and reports not ready, while the database is down); SQLite creates its file.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StorageError> {
        let (db, listener, replicas) = match Backend::of_url(url) {
            Some(Backend::Postgres) => {
                let pool = postgres::pool(postgres::options(url, settings)?, settings);
                let replicas = replicas::Replicas::connect(settings)?;
                (
                    Db::Postgres(pool, postgres::statements(settings)),
                    Some(postgres::listener_pool(url, settings)?),
                    (!replicas.is_empty()).then_some(replicas),
                )
            }
            Some(Backend::Sqlite) if !settings.replica_urls.is_empty() => {
                return Err(StorageError::Other("read replicas need PostgreSQL".into()));
            }
            Some(Backend::Sqlite) => {
                let pool = sqlite::connect(url, settings).await?;
                let writes = writer::WriteQueue::new(pool.clone(), settings.write_queue);
                (Db::Sqlite(pool, writes), None, None)
            }
            _ => return Err(StorageError::Other("database url must start with postgres:// or sqlite:".into())),
        };
        Ok(SqlStore { db, listener, replicas, gates: sequencer::Gates::default() })
    }

    /// The PostgreSQL pool, for tests and tools that need raw SQL.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.db {
            Db::Postgres(pool, _) => Some(pool),
            Db::Sqlite(..) => None,
        }
    }

    /// A connection for a read that `from` allows a fresh replica to answer.
    async fn reader(&self, from: ReadFrom) -> Stored<Conn> {
        if let (ReadFrom::FreshReplica, Some(replicas)) = (from, &self.replicas)
            && let Some(conn) = replicas.acquire().await
        {
            return Ok(conn);
        }
        self.db.read().await
    }

    /// The first row of a read, if any, as `read` makes it.
    async fn read_optional<T>(&self, sql: &'static str, args: &[Arg<'_>], read: Reader<T>) -> Stored<Option<T>> {
        let mut conn = self.db.read().await?;
        conn.session().fetch_optional(sql, args).await?.as_ref().map(read).transpose()
    }

    /// Every row of a read, as `read` makes them.
    async fn read_all<T>(&self, sql: &'static str, args: &[Arg<'_>], read: Reader<T>) -> Stored<Vec<T>> {
        let mut conn = self.db.read().await?;
        conn.session().fetch_all(sql, args).await?.iter().map(read).collect()
    }

    /// A write of one statement and one event.
    async fn write_one(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        app_id: &AppId,
        event: EventDraft,
    ) -> Result<(), StorageError> {
        let mut tx = self.db.begin_write().await?;
        tx.session().execute(sql, args).await?;
        self.finish_write(tx, app_id, std::slice::from_ref(&event)).await
    }

    /// Ends a write: queues its events in its transaction, commits, and waits until they are in
    /// the log. If that round fails, the write stands (it committed) and its events stay queued
    /// for the next round, which any later write or the periodic sweep runs.
    async fn finish_write(&self, mut tx: Tx, app_id: &AppId, events: &[EventDraft]) -> Result<(), StorageError> {
        sequencer::enqueue(&mut tx.session(), app_id, events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.sequenced(app_id).await;
        }
        Ok(())
    }
}
