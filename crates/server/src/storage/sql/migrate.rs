//! Migrations: refinery's runner over sqlx connections, so there is one SQL driver stack.

use refinery_core::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use sqlx::{AssertSqlSafe, Row};

use super::db::Statements;
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod embedded_postgres {
    refinery::embed_migrations!("../../migrations/postgres");
}
mod embedded_sqlite {
    refinery::embed_migrations!("../../migrations/sqlite");
}

/// The versions this build carries for a backend, ascending.
pub(super) fn known_versions(postgres: bool) -> Vec<i64> {
    let runner = if postgres { embedded_postgres::migrations::runner() } else { embedded_sqlite::migrations::runner() };
    let mut versions: Vec<i64> = runner.get_migrations().iter().map(|m| i64::from(m.version())).collect();
    versions.sort_unstable();
    versions
}

/// A migration could not run.
#[derive(Debug, Error)]
pub enum MigrationError {
    /// The database refused a statement or could not be reached.
    #[error("database error while migrating: {0}")]
    Database(#[from] sqlx::Error),
    /// refinery found the history inconsistent with the migration files.
    #[error("migration failed: {0}")]
    Refinery(#[from] refinery_core::Error),
    /// The data a migration leaves to the service (digests, the epoch) could not be written.
    #[error("completing the migration: {0}")]
    Completion(#[from] crate::storage::StorageError),
}

/// refinery's traits and sqlx's connections are both foreign: the orphan rule needs this newtype.
struct Driver<C>(C);

fn applied(version: i32, name: String, applied_on: &str, checksum: &str) -> Result<Migration, sqlx::Error> {
    let applied_on = OffsetDateTime::parse(applied_on, &Rfc3339).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let checksum = checksum.parse::<u64>().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Migration::applied(version, name, applied_on, checksum))
}

/// Runs a migration file's statements in a transaction (on PostgreSQL a savepoint of the outer
/// transaction that holds the migration lock).
async fn run_all<'a, DB: sqlx::Database>(
    mut tx: sqlx::Transaction<'_, DB>,
    queries: impl Iterator<Item = &'a str>,
) -> Result<usize, sqlx::Error>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut count = 0;
    for query in queries {
        // A migration file holds several statements: raw_sql runs them all.
        sqlx::raw_sql(AssertSqlSafe(query)).execute(&mut *tx).await?;
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

fn read_history<R: Row>(rows: &[R]) -> Result<Vec<Migration>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            let applied_on: String = row.try_get(2)?;
            let checksum: String = row.try_get(3)?;
            applied(row.try_get(0)?, row.try_get(1)?, &applied_on, &checksum)
        })
        .collect()
}

/// PostgreSQL: the whole run is one transaction, which holds the migration lock. (A struct
/// without a lifetime parameter: with the transaction's `'static` in the driver's type, rustc
/// cannot prove the migration future `Send`.)
struct PgRun {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    statements: Statements,
}

impl AsyncTransaction for Driver<PgRun> {
    type Error = sqlx::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &'a mut self,
        queries: T,
    ) -> Result<usize, sqlx::Error> {
        run_all(sqlx::Acquire::begin(&mut self.0.tx).await?, queries).await
    }
}

impl AsyncQuery<Vec<Migration>> for Driver<PgRun> {
    async fn query<'a>(&'a mut self, query: &'a str) -> Result<Vec<Migration>, sqlx::Error> {
        let persistent = self.0.statements == Statements::Prepared;
        let rows = sqlx::query(AssertSqlSafe(query)).persistent(persistent).fetch_all(&mut *self.0.tx).await?;
        read_history(&rows)
    }
}

impl AsyncMigrate for Driver<PgRun> {}

impl AsyncTransaction for Driver<sqlx::SqliteConnection> {
    type Error = sqlx::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &'a mut self,
        queries: T,
    ) -> Result<usize, sqlx::Error> {
        run_all(sqlx::Connection::begin(&mut self.0).await?, queries).await
    }
}

impl AsyncQuery<Vec<Migration>> for Driver<sqlx::SqliteConnection> {
    async fn query<'a>(&'a mut self, query: &'a str) -> Result<Vec<Migration>, sqlx::Error> {
        let rows = sqlx::query(AssertSqlSafe(query)).fetch_all(&mut self.0).await?;
        read_history(&rows)
    }
}

impl AsyncMigrate for Driver<sqlx::SqliteConnection> {}

/// Any number of Cardinal instances may start at once against one database: the first to take
/// this lock migrates, the others wait and then find nothing to do.
const MIGRATION_LOCK: i64 = 0x00ca_4d1a_1000;

/// Migrates in one transaction that holds a transaction-scoped advisory lock: released by the
/// commit or the rollback, whatever happens to the connection, so it cannot leak through a
/// pooler (a session lock taken through PgBouncer stays on whichever server connection ran it).
/// PostgreSQL's DDL is transactional, so a failed run leaves nothing half done.
pub(super) async fn migrate_postgres(pool: &sqlx::PgPool, statements: Statements) -> Result<(), MigrationError> {
    let mut run = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .persistent(statements == Statements::Prepared)
        .bind(MIGRATION_LOCK)
        .execute(&mut *run)
        .await?;
    let mut driver = Driver(PgRun { tx: run, statements });
    embedded_postgres::migrations::runner().run_async(&mut driver).await?;
    driver.0.tx.commit().await?;
    Ok(())
}

pub(super) async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), MigrationError> {
    let mut driver = Driver(pool.acquire().await?.detach());
    embedded_sqlite::migrations::runner().run_async(&mut driver).await?;
    Ok(())
}
