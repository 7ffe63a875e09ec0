//! Migrations: refinery's runner over sqlx connections, so there is one SQL driver stack.

use refinery_core::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use sqlx::{AssertSqlSafe, Connection, Row};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod embedded_postgres {
    refinery::embed_migrations!("../../migrations/postgres");
}
mod embedded_sqlite {
    refinery::embed_migrations!("../../migrations/sqlite");
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
}

/// refinery's traits and sqlx's connections are both foreign: the orphan rule needs this newtype.
struct Driver<C>(C);

fn applied(version: i32, name: String, applied_on: &str, checksum: &str) -> Result<Migration, sqlx::Error> {
    let applied_on = OffsetDateTime::parse(applied_on, &Rfc3339).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let checksum = checksum.parse::<u64>().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Migration::applied(version, name, applied_on, checksum))
}

macro_rules! refinery_driver {
    ($conn:ty) => {
        impl AsyncTransaction for Driver<$conn> {
            type Error = sqlx::Error;

            async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
                &'a mut self,
                queries: T,
            ) -> Result<usize, sqlx::Error> {
                let mut tx = self.0.begin().await?;
                let mut count = 0;
                for query in queries {
                    // A migration file holds several statements: raw_sql runs them all.
                    sqlx::raw_sql(AssertSqlSafe(query)).execute(&mut *tx).await?;
                    count += 1;
                }
                tx.commit().await?;
                Ok(count)
            }
        }

        impl AsyncQuery<Vec<Migration>> for Driver<$conn> {
            async fn query<'a>(&'a mut self, query: &'a str) -> Result<Vec<Migration>, sqlx::Error> {
                let rows = sqlx::query(AssertSqlSafe(query)).fetch_all(&mut self.0).await?;
                rows.iter()
                    .map(|row| {
                        let applied_on: String = row.try_get(2)?;
                        let checksum: String = row.try_get(3)?;
                        applied(row.try_get(0)?, row.try_get(1)?, &applied_on, &checksum)
                    })
                    .collect()
            }
        }

        impl AsyncMigrate for Driver<$conn> {}
    };
}

refinery_driver!(sqlx::PgConnection);
refinery_driver!(sqlx::SqliteConnection);

/// Any number of Cardinal instances may start at once against one database: the first to take
/// this advisory lock migrates, the others wait and then find nothing to do.
const MIGRATION_LOCK: i64 = 0x00ca_4d1a_1000;

pub(super) async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<(), MigrationError> {
    let mut driver = Driver(pool.acquire().await?.detach());
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut driver.0).await?;
    let result = embedded_postgres::migrations::runner().run_async(&mut driver).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut driver.0).await?;
    result?;
    Ok(())
}

pub(super) async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), MigrationError> {
    let mut driver = Driver(pool.acquire().await?.detach());
    embedded_sqlite::migrations::runner().run_async(&mut driver).await?;
    Ok(())
}
