//! The embedded SQLite backend.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sequencer::Gates;
use super::sql::impl_card_store;
use super::{Backend, PoolSettings, StorageError};

/// Cards in an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteCardStore {
    pool: SqlitePool,
    gates: Arc<Gates>,
}

impl SqliteCardStore {
    /// Opens (creating if needed) the database file and its directory. WAL lets readers run
    /// beside the one writer; `synchronous = FULL` makes every acknowledged commit survive a
    /// power cut, not only a crash.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Other(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename().to_path_buf();
        if let Some(dir) = file.parent() {
            crate::files::create_private_dir(dir).map_err(|e| StorageError::Other(format!("{e:#}")))?;
        }
        // SQLite creates the file (and its -wal and -shm, with the same mode) under the umask,
        // usually world-readable: a new database is made owner-only.
        let created = !file.exists();
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| StorageError::Other(format!("cannot open {}: {e}", file.display())))?;
        if created && file.exists() {
            crate::files::make_private(&file).map_err(|e| StorageError::Other(format!("{e:#}")))?;
        }
        Ok(SqliteCardStore { pool, gates: Arc::default() })
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// SQLite names the columns, not the constraint: "UNIQUE constraint failed: cards.app_id,
/// cards.id". Map each column list back to the name the PostgreSQL schema gives it.
fn constraint_of(error: &dyn DatabaseError) -> Option<String> {
    const BY_COLUMNS: &[(&str, &str)] = &[
        ("cards.app_id, cards.id", super::constraint::CARDS_PKEY),
        ("cards.app_id, cards.previous_card_id", super::constraint::CARDS_ONE_SUCCESSOR),
        ("chains.app_id, chains.identity", super::constraint::CHAINS_SINGLE_ACTIVE),
        ("chains.app_id, chains.id", super::constraint::CHAINS_PKEY),
        ("apps.id", super::constraint::APPS_PKEY),
        ("api_keys.kid", super::constraint::API_KEYS_PKEY),
    ];
    let message = error.message();
    if message.contains("FOREIGN KEY") {
        return Some("foreign_key".to_owned());
    }
    let columns = message.split_once(": ")?.1;
    BY_COLUMNS.iter().find(|(cols, _)| *cols == columns).map(|(_, name)| (*name).to_owned())
}

/// An SQLite file has no notifications: nothing is ever heard, so nothing is cached.
async fn watch(_: &SqliteCardStore, _: &(dyn Fn(super::Heard) + Send + Sync)) {}

fn identity_list(identities: &[String]) -> String {
    serde_json::to_string(identities).unwrap_or_else(|_| "[]".to_owned())
}

impl_card_store! {
    store = SqliteCardStore,
    db = sqlx::Sqlite,
    backend = Backend::Sqlite,
    begin = "BEGIN IMMEDIATE",
    lock_row = "",
    notify = false,
    watch = watch,
    in_identities = "IN (SELECT value FROM json_each($2))",
    bind_list = identity_list,
    constraint_of = constraint_of,
    migrate = super::migrate::migrate_sqlite,
}
