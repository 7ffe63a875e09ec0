//! What PostgreSQL and SQLite really do differently, for the one SQL store: how a list of
//! identities is matched (SQLite has no arrays), whether a read locks its row (SQLite's
//! `BEGIN IMMEDIATE` already holds the database's write lock), how a driver error names its
//! constraint, and which errors mean "not now". Statements are written in PostgreSQL's syntax;
//! [`Dialect::render`] gives SQLite's.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use sqlx::error::DatabaseError;

use crate::storage::{StorageError, constraint};

/// The database a statement runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Postgres,
    Sqlite,
}

/// SQLite's rendering of each statement, made once: statements are the store's own constants,
/// so there are as many entries as statements.
static SQLITE_STATEMENTS: LazyLock<Mutex<HashMap<&'static str, &'static str>>> = LazyLock::new(Default::default);

impl Dialect {
    /// The statement as this database spells it: on SQLite, `= ANY($n)` becomes
    /// `IN (SELECT value FROM json_each($n))`, ` FOR UPDATE` is dropped, and so is
    /// ` COLLATE "C"` (bytewise order, which is SQLite's own).
    pub fn render(self, sql: &'static str) -> &'static str {
        if self == Dialect::Postgres
            || !(sql.contains("= ANY($") || sql.contains(" FOR UPDATE") || sql.contains(BYTEWISE))
        {
            return sql;
        }
        let mut cache = SQLITE_STATEMENTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.entry(sql).or_insert_with(|| Box::leak(sqlite_spelling(sql).into_boxed_str()))
    }

    /// Translates a driver error, once for the whole service.
    pub fn translate(self, error: sqlx::Error) -> StorageError {
        match error {
            sqlx::Error::RowNotFound => StorageError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StorageError::Unavailable(error.to_string()),
            sqlx::Error::Database(ref db) => {
                if db.is_foreign_key_violation() {
                    StorageError::conflict(constraint::FOREIGN_KEY)
                } else if db.is_unique_violation() || db.is_check_violation() {
                    match self.constraint_of(db.as_ref()) {
                        Some(name) => StorageError::conflict(name),
                        None => StorageError::Other(error.to_string()),
                    }
                } else if self.is_transient(db.as_ref()) {
                    StorageError::Unavailable(error.to_string())
                } else {
                    StorageError::Other(error.to_string())
                }
            }
            other => StorageError::Other(other.to_string()),
        }
    }

    /// The constraint a violation names, as the migrations call it. PostgreSQL names it; SQLite
    /// names the columns ("UNIQUE constraint failed: cards.app_id, cards.id").
    fn constraint_of(self, error: &dyn DatabaseError) -> Option<&'static str> {
        match self {
            Dialect::Postgres => {
                let named = error.constraint()?;
                constraint::ALL.into_iter().find(|known| *known == named)
            }
            Dialect::Sqlite => {
                const BY_COLUMNS: [(&str, &str); 6] = [
                    ("cards.app_id, cards.id", constraint::CARDS_PKEY),
                    ("cards.app_id, cards.previous_card_id", constraint::CARDS_ONE_SUCCESSOR),
                    ("chains.app_id, chains.identity", constraint::CHAINS_SINGLE_ACTIVE),
                    ("chains.app_id, chains.id", constraint::CHAINS_PKEY),
                    ("apps.id", constraint::APPS_PKEY),
                    ("api_keys.kid", constraint::API_KEYS_PKEY),
                ];
                let columns = error.message().split_once(": ")?.1;
                BY_COLUMNS.into_iter().find(|(cols, _)| *cols == columns).map(|(_, name)| name)
            }
        }
    }

    /// Errors that say "not now" rather than "never": PostgreSQL shutting down, refusing
    /// connections or out of them (classes 08 and 57P, 53300); SQLite busy or locked past its
    /// busy timeout (5, 6).
    fn is_transient(self, error: &dyn DatabaseError) -> bool {
        let Some(code) = error.code() else { return false };
        match self {
            Dialect::Postgres => code.starts_with("08") || code.starts_with("57P") || code == "53300",
            Dialect::Sqlite => code == "5" || code == "6",
        }
    }
}

/// SQLite's spelling of a statement written for PostgreSQL.
fn sqlite_spelling(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql;
    while let Some(at) = rest.find("= ANY($") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "= ANY(".len()..];
        let end = after.find(')').unwrap_or(after.len());
        out.push_str("IN (SELECT value FROM json_each(");
        out.push_str(&after[..end]);
        out.push_str("))");
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out.replace(" FOR UPDATE", "").replace(BYTEWISE, "")
}

/// PostgreSQL's bytewise collation: identities sort the same on both databases (and in
/// memory) whatever the database's locale.
const BYTEWISE: &str = " COLLATE \"C\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_reads_identity_lists_from_json_and_takes_no_row_locks() {
        let sql = "SELECT x FROM t WHERE a = $1 AND b = ANY($2) AND c = ANY($3) ORDER BY x COLLATE \"C\" FOR UPDATE";
        assert_eq!(
            Dialect::Sqlite.render(sql),
            "SELECT x FROM t WHERE a = $1 AND b IN (SELECT value FROM json_each($2)) \
             AND c IN (SELECT value FROM json_each($3)) ORDER BY x"
        );
        assert_eq!(Dialect::Postgres.render(sql), sql);
        let plain = "SELECT 1";
        assert!(std::ptr::eq(Dialect::Sqlite.render(plain), plain), "nothing to rewrite: the same string");
        assert!(std::ptr::eq(Dialect::Sqlite.render(sql), Dialect::Sqlite.render(sql)), "rendered once");
    }
}
