//! The one place that names the two drivers: a pool, a transaction, a session on a connection and
//! a row, each PostgreSQL's or SQLite's; how arguments bind, how rows are read (by column name),
//! and how driver errors become [`StorageError`]s. The store above is written once, in
//! PostgreSQL's syntax, against these; [`super::dialect`] holds what SQLite spells differently.
//!
//! Runtime dispatch rather than a store generic over `sqlx::Database`: generic sqlx code needs
//! the same ten-line bound list (every bound and decoded type, the executor) on every impl
//! block, while here each driver is named in one match per operation and the SQL code above
//! sees no driver at all.

use std::sync::Arc;

use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Decode, Encode, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Type};

use super::dialect::Dialect;
use super::writer::{WriteQueue, WriteTurn};
use crate::domain::{AppId, CardId, Identity};
use crate::storage::{Backend, PoolStats, StorageError};

/// A statement's argument. Lists of identities bind as an array on PostgreSQL and as JSON on
/// SQLite (which has no arrays; its dialect reads them with `json_each`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Arg<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Int(i64),
    MaybeInt(Option<i64>),
    Bytes(&'a [u8]),
    Bool(bool),
    Identities(&'a [Identity]),
    Ints(&'a [i64]),
    Texts(&'a [&'a str]),
}

/// A list argument, bound the way each driver reads one.
#[derive(Debug, Clone, Copy)]
enum List<'a> {
    Identities(&'a [Identity]),
    Ints(&'a [i64]),
    Texts(&'a [&'a str]),
}

/// Values stored as text: bound by their text.
pub(super) trait Text {
    fn text(&self) -> &str;
}

impl Text for str {
    fn text(&self) -> &str {
        self
    }
}

impl Text for String {
    fn text(&self) -> &str {
        self
    }
}

impl Text for AppId {
    fn text(&self) -> &str {
        self.as_str()
    }
}

impl Text for CardId {
    fn text(&self) -> &str {
        self.as_str()
    }
}

impl Text for Identity {
    fn text(&self) -> &str {
        self.as_str()
    }
}

impl<'a, T: Text + ?Sized> From<&'a T> for Arg<'a> {
    fn from(value: &'a T) -> Self {
        Arg::Text(value.text())
    }
}

impl<'a, T: Text + ?Sized> From<Option<&'a T>> for Arg<'a> {
    fn from(value: Option<&'a T>) -> Self {
        Arg::MaybeText(value.map(Text::text))
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(value)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::MaybeInt(value)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Bytes(value)
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Bool(value)
    }
}

impl<'a> From<&'a [Identity]> for Arg<'a> {
    fn from(value: &'a [Identity]) -> Self {
        Arg::Identities(value)
    }
}

impl<'a> From<&'a [&'a str]> for Arg<'a> {
    fn from(value: &'a [&'a str]) -> Self {
        Arg::Texts(value)
    }
}

impl<'a> From<&'a [i64]> for Arg<'a> {
    fn from(value: &'a [i64]) -> Self {
        Arg::Ints(value)
    }
}

type DbQuery<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

/// Binds `args` in order; `list` binds a list the way the driver reads one.
fn bind<'q, DB: Database>(
    mut query: DbQuery<'q, DB>,
    args: &[Arg<'_>],
    list: impl Fn(DbQuery<'q, DB>, List<'_>) -> DbQuery<'q, DB>,
) -> DbQuery<'q, DB>
where
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> &'t [u8]: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
{
    for arg in args {
        query = match *arg {
            Arg::Text(value) => query.bind(value),
            Arg::MaybeText(value) => query.bind(value),
            Arg::Int(value) => query.bind(value),
            Arg::MaybeInt(value) => query.bind(value),
            Arg::Bytes(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Identities(identities) => list(query, List::Identities(identities)),
            Arg::Ints(ints) => list(query, List::Ints(ints)),
            Arg::Texts(texts) => list(query, List::Texts(texts)),
        };
    }
    query
}

/// Whether PostgreSQL statements are prepared once per connection and kept (the default), or sent
/// unnamed each time: behind a transaction-mode pooler, server connections are shared, and a
/// named statement of one client collides with another's (`sqlx_s_1 already exists`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    Prepared,
    Unnamed,
}

fn pg_query<'q>(sql: impl sqlx::SqlSafeStr, args: &[Arg<'_>], statements: Statements) -> DbQuery<'q, Postgres> {
    let query = sqlx::query(sql).persistent(statements == Statements::Prepared);
    bind(query, args, |query, list| match list {
        List::Identities(identities) => query.bind(identities.iter().map(Identity::as_str).collect::<Vec<&str>>()),
        List::Ints(ints) => query.bind(ints),
        List::Texts(texts) => query.bind(texts.to_vec()),
    })
}

fn sqlite_query<'q>(sql: impl sqlx::SqlSafeStr, args: &[Arg<'_>]) -> DbQuery<'q, Sqlite> {
    bind(sqlx::query(sql), args, |query, list| {
        let json = match list {
            List::Identities(identities) => {
                serde_json::to_string(&identities.iter().map(Identity::as_str).collect::<Vec<&str>>())
            }
            List::Ints(ints) => serde_json::to_string(ints),
            List::Texts(texts) => serde_json::to_string(texts),
        };
        query.bind(json.expect("a list of strings or integers always serialises to JSON"))
    })
}

/// A value a row can hold, decodable by both drivers.
pub(super) trait Column:
    for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<T> Column for T where T: for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite> {}

/// A row, read by column name.
pub(super) enum Row {
    Postgres(PgRow),
    Sqlite(SqliteRow),
}

impl Row {
    /// The value of column `name`.
    pub fn get<T: Column>(&self, name: &str) -> Result<T, StorageError> {
        use sqlx::Row as _;
        let read = match self {
            Row::Postgres(row) => row.try_get(name),
            Row::Sqlite(row) => row.try_get(name),
        };
        read.map_err(|e| StorageError::Corrupt(format!("column {name}: {e}")))
    }

    /// Column `name`, parsed by `parse` (ids and names are stored as text).
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StorageError> {
        let text: String = self.get(name)?;
        parse(&text).map_err(|e| StorageError::Corrupt(format!("column {name} holds {text:?}: {e}")))
    }

    /// Column `name`, if not null, parsed by `parse`.
    pub fn parse_optional<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StorageError> {
        let text: Option<String> = self.get(name)?;
        text.map(|text| parse(&text).map_err(|e| StorageError::Corrupt(format!("column {name} holds {text:?}: {e}"))))
            .transpose()
    }
}

/// Whether a row visitor wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

/// Statements on one connection: pooled for a read, or inside a write's transaction.
pub(super) enum Session<'c> {
    Postgres(&'c mut PgConnection, Statements),
    Sqlite(&'c mut SqliteConnection),
}

impl Session<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Session::Postgres(..) => Dialect::Postgres,
            Session::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StorageError> {
        let sql = self.dialect().render(sql);
        self.execute_text(sqlx::AssertSqlSafe(sql), args).await
    }

    /// Inserts rows in one statement: `head` is `INSERT INTO table (columns…)`, each row binds
    /// as many arguments as there are columns. The statement holds placeholders only.
    pub async fn insert_rows(&mut self, head: &'static str, rows: &[Vec<Arg<'_>>]) -> Result<u64, StorageError> {
        let Some(width) = rows.first().map(Vec::len) else { return Ok(0) };
        let mut sql = String::from(head);
        sql.push_str(" VALUES ");
        for row in 0..rows.len() {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            let placeholders: Vec<String> = (1..=width).map(|column| format!("${}", row * width + column)).collect();
            sql.push_str(&placeholders.join(", "));
            sql.push(')');
        }
        let args: Vec<Arg<'_>> = rows.iter().flatten().copied().collect();
        self.execute_text(sqlx::AssertSqlSafe(sql), &args).await
    }

    async fn execute_text(&mut self, sql: impl sqlx::SqlSafeStr, args: &[Arg<'_>]) -> Result<u64, StorageError> {
        let dialect = self.dialect();
        let done = match self {
            Session::Postgres(conn, statements) => {
                pg_query(sql, args, *statements).execute(&mut **conn).await.map(|r| r.rows_affected())
            }
            Session::Sqlite(conn) => sqlite_query(sql, args).execute(&mut **conn).await.map(|r| r.rows_affected()),
        };
        done.map_err(|e| dialect.translate(e))
    }

    /// Hands each row of a query to `visit` as it arrives, until it says stop: a read that
    /// might be large is bounded before it is all in memory.
    pub async fn for_each(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
        mut visit: impl FnMut(Row) -> Result<Flow, StorageError>,
    ) -> Result<(), StorageError> {
        let dialect = self.dialect();
        let sql = dialect.render(sql);
        let mut rows: BoxStream<'_, Result<Row, sqlx::Error>> = match self {
            Session::Postgres(conn, statements) => {
                pg_query(sql, args, *statements).fetch(&mut **conn).map_ok(Row::Postgres).boxed()
            }
            Session::Sqlite(conn) => sqlite_query(sql, args).fetch(&mut **conn).map_ok(Row::Sqlite).boxed(),
        };
        while let Some(row) = rows.try_next().await.map_err(|e| dialect.translate(e))? {
            if visit(row)? == Flow::Stop {
                break;
            }
        }
        Ok(())
    }

    /// Every row of a query.
    pub async fn fetch_all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Row>, StorageError> {
        let mut rows = Vec::new();
        self.for_each(sql, args, |row| {
            rows.push(row);
            Ok(Flow::Continue)
        })
        .await?;
        Ok(rows)
    }

    /// The first row of a query, if any.
    pub async fn fetch_optional(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<Row>, StorageError> {
        let mut first = None;
        self.for_each(sql, args, |row| {
            first = Some(row);
            Ok(Flow::Stop)
        })
        .await?;
        Ok(first)
    }

    /// Tells every listening process, at commit (PostgreSQL's NOTIFY; SQLite has no listeners).
    pub async fn notify(&mut self, channel: &str, payload: &str) -> Result<(), StorageError> {
        if let Session::Postgres(..) = self {
            self.execute("SELECT pg_notify($1, $2)", &[channel.into(), payload.into()]).await?;
        }
        Ok(())
    }
}

/// A pooled connection, for reads.
pub(super) enum Conn {
    Postgres(PoolConnection<Postgres>),
    /// Behind a transaction-mode pooler, a read is one (read-only) transaction: sqlx sends each
    /// statement in two exchanges (parse, then bind and execute, each ending in a Sync), and a
    /// pooler gives a client between transactions any server connection, where the unnamed
    /// statement is another client's (an error when the parameter counts differ, someone else's
    /// rows when they agree). Dropping it rolls back when the pool takes the connection back.
    PostgresPooled(sqlx::Transaction<'static, Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Conn {
    /// A connection of `pool` for reads, as `statements` need it.
    pub async fn postgres(pool: &PgPool, statements: Statements) -> Result<Conn, sqlx::Error> {
        match statements {
            Statements::Prepared => pool.acquire().await.map(Conn::Postgres),
            Statements::Unnamed => pool.begin_with("BEGIN READ ONLY").await.map(Conn::PostgresPooled),
        }
    }

    pub fn session(&mut self) -> Session<'_> {
        match self {
            Conn::Postgres(conn) => Session::Postgres(conn, Statements::Prepared),
            Conn::PostgresPooled(tx) => Session::Postgres(tx, Statements::Unnamed),
            Conn::Sqlite(conn) => Session::Sqlite(conn),
        }
    }
}

/// A write's transaction: PostgreSQL's own, or a writer's turn in SQLite's shared one.
pub(super) enum Tx {
    Postgres(sqlx::Transaction<'static, Postgres>, Statements),
    Sqlite(WriteTurn),
}

impl Tx {
    pub fn session(&mut self) -> Session<'_> {
        match self {
            Tx::Postgres(tx, statements) => Session::Postgres(tx, *statements),
            Tx::Sqlite(turn) => Session::Sqlite(turn.connection()),
        }
    }

    pub async fn commit(self) -> Result<(), StorageError> {
        match self {
            Tx::Postgres(tx, _) => tx.commit().await.map_err(|e| Dialect::Postgres.translate(e)),
            Tx::Sqlite(turn) => turn.commit().await,
        }
    }
}

/// The connection pool.
#[derive(Debug, Clone)]
pub(super) enum Db {
    Postgres(PgPool, Statements),
    Sqlite(SqlitePool, Arc<WriteQueue>),
}

impl Db {
    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(..) => Backend::Postgres,
            Db::Sqlite(..) => Backend::Sqlite,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(..) => Dialect::Postgres,
            Db::Sqlite(..) => Dialect::Sqlite,
        }
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<Conn, StorageError> {
        let conn = match self {
            Db::Postgres(pool, statements) => Conn::postgres(pool, *statements).await,
            Db::Sqlite(pool, _) => pool.acquire().await.map(Conn::Sqlite),
        };
        conn.map_err(|e| self.dialect().translate(e))
    }

    /// A write's transaction. On SQLite, a turn on the one writer path ([`WriteQueue`]): its
    /// shared transaction took the write lock up front (`BEGIN IMMEDIATE`), so a write that reads
    /// before it writes cannot fail to upgrade.
    pub async fn begin_write(&self) -> Result<Tx, StorageError> {
        match self {
            Db::Postgres(pool, statements) => {
                pool.begin().await.map(|tx| Tx::Postgres(tx, *statements)).map_err(|e| Dialect::Postgres.translate(e))
            }
            Db::Sqlite(_, writes) => writes.turn().await.map(Tx::Sqlite),
        }
    }

    /// A transaction for the service's own writes (sequencing rounds, the transparency tree and
    /// its checkpoints), which on SQLite queue without bound: refusing a round would only leave
    /// its events to the sweep.
    pub async fn begin_internal_write(&self) -> Result<Tx, StorageError> {
        match self {
            Db::Postgres(..) => self.begin_write().await,
            Db::Sqlite(_, writes) => writes.internal_turn().await.map(Tx::Sqlite),
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        fn of<DB: Database>(pool: &sqlx::Pool<DB>) -> PoolStats {
            PoolStats {
                size: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
                writes: None,
            }
        }
        match self {
            Db::Postgres(pool, _) => of(pool),
            Db::Sqlite(pool, writes) => PoolStats { writes: Some(writes.stats()), ..of(pool) },
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool, _) => pool.close().await,
            Db::Sqlite(pool, _) => pool.close().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Db::Postgres(pool, _) => pool.is_closed(),
            Db::Sqlite(pool, _) => pool.is_closed(),
        }
    }
}
