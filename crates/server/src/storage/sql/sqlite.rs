//! SQLite: the file, its directory and its connection options.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::storage::{PoolSettings, StorageError};

/// The file a `sqlite:` URL names.
pub fn database_file(url: &str) -> Result<std::path::PathBuf, StorageError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| StorageError::Other(e.to_string()))?;
    Ok(options.get_filename().to_path_buf())
}

/// Opens (creating if needed) the database file and its directory. WAL lets readers run beside
/// the one writer; `synchronous = FULL` makes every acknowledged commit survive a power cut, not
/// only a crash.
pub(super) async fn connect(url: &str, settings: &PoolSettings) -> Result<SqlitePool, StorageError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StorageError::Other(e.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // Each connection keeps a page cache of its own (2 MiB by default), a copy of pages the
        // kernel's page cache holds anyway: with 16 connections that was 32 MiB of Cardinal's
        // RSS for little speed (see BENCHMARKS.md, SQLite's RSS).
        .pragma("cache_size", format!("-{}", settings.sqlite_page_cache_kib.max(64)));
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
    Ok(pool)
}
