//! The SQL of the directory, written once for both backends.
//!
//! sqlx binds `$N` to the N-th argument on PostgreSQL and on SQLite alike, so every statement is
//! shared. What differs is passed in by each backend: how a list of identities is bound, how a
//! write transaction begins (SQLite takes the write lock up front, so a transaction that reads
//! before it writes cannot fail to upgrade), and how a driver error names its constraint.

use cardinal_card::log::{EventBody, GENESIS_HASH, chain_hash};
use sqlx::error::DatabaseError;

use super::{CardsPerIdentity, EventDraft, KeyRole, StorageError};

/// Translates a driver error, once for the whole service.
pub(super) fn translate(error: sqlx::Error, constraint_of: fn(&dyn DatabaseError) -> Option<String>) -> StorageError {
    match error {
        sqlx::Error::RowNotFound => StorageError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StorageError::Unavailable(error.to_string())
        }
        sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => StorageError::Unavailable(error.to_string()),
        sqlx::Error::Database(ref db) => {
            if db.is_unique_violation() || db.is_foreign_key_violation() || db.is_check_violation() {
                match constraint_of(db.as_ref()) {
                    Some(constraint) => StorageError::Conflict { constraint },
                    None => StorageError::Other(error.to_string()),
                }
            } else if is_transient(db.as_ref()) {
                StorageError::Unavailable(error.to_string())
            } else {
                StorageError::Other(error.to_string())
            }
        }
        other => StorageError::Other(other.to_string()),
    }
}

/// Errors that say "not now" rather than "never": PostgreSQL shutting down or refusing
/// connections (classes 08 and 57P), SQLite busy or locked past the busy timeout.
fn is_transient(db: &dyn DatabaseError) -> bool {
    let code = db.code().unwrap_or_default();
    code.starts_with("08") || code.starts_with("57P") || code == "53300" || code == "5" || code == "6"
}

pub(crate) fn parse_policy(s: &str) -> Result<CardsPerIdentity, StorageError> {
    CardsPerIdentity::parse(s)
}

pub(super) fn parse_role(s: &str) -> Result<KeyRole, StorageError> {
    KeyRole::parse(s).ok_or_else(|| StorageError::Other(format!("unknown key role {s:?}")))
}

/// Gives a draft its sequence number and links it to the log's head.
pub(super) fn seal(
    app_id: &str,
    seq: i64,
    head: &[u8],
    draft: &EventDraft,
) -> Result<(String, [u8; 32]), StorageError> {
    let head: [u8; 32] = head.try_into().map_err(|_| StorageError::Other("event head is not 32 bytes".into()))?;
    let body = EventBody {
        app: app_id.to_owned(),
        seq,
        at: draft.at_ms,
        kind: draft.kind,
        card_id: draft.card_id.clone(),
        identity: draft.identity.clone(),
        actor: draft.actor.clone(),
        detail: draft.detail.clone(),
    }
    .canonical_bytes();
    let hash = chain_hash(&head, &body);
    let body = String::from_utf8(body).map_err(|e| StorageError::Other(e.to_string()))?;
    Ok((body, hash))
}

pub(super) const GENESIS: [u8; 32] = GENESIS_HASH;

/// The notifications announcing that `identities` of `app_id` changed, each under PostgreSQL's
/// 8000-byte payload limit. Neither app ids nor identities contain a newline.
pub(super) fn change_payloads(app_id: &str, identities: &std::collections::BTreeSet<String>) -> Vec<String> {
    const MAX: usize = 7000;
    let mut payloads = Vec::new();
    let mut current = String::new();
    for identity in identities {
        if !current.is_empty() && current.len() + 1 + identity.len() > MAX {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(app_id);
        }
        current.push('\n');
        current.push_str(identity);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// Reads a payload of [`change_payloads`].
pub(super) fn parse_change_payload(payload: &str) -> Option<super::Heard> {
    let mut lines = payload.split('\n');
    let app_id = lines.next().filter(|app| !app.is_empty())?.to_owned();
    Some(super::Heard::Changed { app_id, identities: lines.map(str::to_owned).collect() })
}

/// Columns of a card with its chain's revocation, in the order `card_from_row` reads them.
macro_rules! card_columns {
    () => {
        "c.id, c.identity, c.chain_id, c.previous_card_id, c.superseded_by, c.created_at, c.published_at, \
         c.public_key, c.raw, ch.revoked_at, ch.revocation_reason, ch.revoked_by, c.chain_index \
         FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id"
    };
}
pub(super) use card_columns;

/// Implements [`super::CardStore`] for a backend struct with a `pool` field.
///
/// `$in_identities` is the SQL fragment that tests `c.identity`/`identity` against the list
/// bound as `$2`; `$bind_list` turns `&[String]` into what that fragment binds.
macro_rules! impl_card_store {
    (
        store = $store:ident,
        db = $db:ty,
        backend = $backend:expr,
        begin = $begin:literal,
        lock_row = $lock_row:literal,
        notify = $notify:literal,
        watch = $watch:path,
        in_identities = $in_identities:literal,
        bind_list = $bind_list:path,
        constraint_of = $constraint_of:path,
        migrate = $migrate:path $(,)?
    ) => {
        impl $store {
            fn error(e: sqlx::Error) -> $crate::storage::StorageError {
                $crate::storage::sql::translate(e, $constraint_of)
            }

            async fn begin_write(
                &self,
            ) -> Result<sqlx::Transaction<'static, $db>, $crate::storage::StorageError> {
                self.pool.begin_with($begin).await.map_err(Self::error)
            }

            /// Queues events in the write's transaction; [`Self::sequenced`] numbers them after
            /// the commit.
            async fn enqueue_events(
                tx: &mut sqlx::Transaction<'static, $db>,
                app_id: &str,
                events: &[$crate::storage::EventDraft],
            ) -> Result<(), $crate::storage::StorageError> {
                for draft in events {
                    let detail = serde_json::to_string(&draft.detail)
                        .map_err(|e| $crate::storage::StorageError::Other(e.to_string()))?;
                    sqlx::query(
                        "INSERT INTO pending_events (app_id, kind, at_ms, card_id, identity, actor, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(app_id)
                    .bind(draft.kind.as_str())
                    .bind(draft.at_ms)
                    .bind(draft.card_id.as_deref())
                    .bind(draft.identity.as_deref())
                    .bind(&draft.actor)
                    .bind(detail)
                    .execute(&mut **tx)
                    .await
                    .map_err(Self::error)?;
                }
                Ok(())
            }

            /// After a write committed: waits until its events are in the log. If the round
            /// fails, the write stands (it committed) and its events stay queued for the next
            /// round, which any later write or the periodic sweep runs.
            async fn sequenced(&self, app_id: &str) {
                if let Err(error) = self.gates.flush(app_id, self.drain_queue(app_id)).await {
                    tracing::warn!(app = app_id, %error, "events stay queued; the next round sequences them");
                }
            }

            /// Sequences the app's queue until it is empty.
            async fn drain_queue(&self, app_id: &str) -> Result<usize, $crate::storage::StorageError> {
                let mut total = 0;
                loop {
                    let moved = self.sequence_batch(app_id).await?;
                    total += moved;
                    if (moved as i64) < $crate::storage::sequencer::BATCH {
                        return Ok(total);
                    }
                }
            }

            /// One transaction: the oldest queued events of the app get the next numbers and
            /// hashes, move to `events`, and the app's head advances.
            async fn sequence_batch(&self, app_id: &str) -> Result<usize, $crate::storage::StorageError> {
                use sqlx::Row as _;
                use $crate::storage::StorageError;
                let mut tx = self.begin_write().await?;
                let head = sqlx::query(concat!("SELECT event_seq, event_head FROM apps WHERE id = $1", $lock_row))
                    .bind(app_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Self::error)?
                    .ok_or(StorageError::NotFound)?;
                let mut seq: i64 = head.try_get(0).map_err(Self::error)?;
                let mut hash: Vec<u8> = head.try_get(1).map_err(Self::error)?;
                let queued = sqlx::query(
                    "SELECT id, kind, at_ms, card_id, identity, actor, detail FROM pending_events \
                     WHERE app_id = $1 ORDER BY id LIMIT $2",
                )
                .bind(app_id)
                .bind($crate::storage::sequencer::BATCH)
                .fetch_all(&mut *tx)
                .await
                .map_err(Self::error)?;
                if queued.is_empty() {
                    return Ok(0);
                }
                let mut changed = std::collections::BTreeSet::new();
                let mut ids = Vec::with_capacity(queued.len());
                let mut sealed = Vec::with_capacity(queued.len());
                for row in &queued {
                    ids.push(row.try_get::<i64, _>(0).map_err(Self::error)?);
                    let kind: String = row.try_get(1).map_err(Self::error)?;
                    let detail: String = row.try_get(6).map_err(Self::error)?;
                    let draft = $crate::storage::EventDraft {
                        kind: cardinal_card::log::EventKind::parse(&kind)
                            .ok_or_else(|| StorageError::Other(format!("queued event of unknown kind {kind:?}")))?,
                        at_ms: row.try_get(2).map_err(Self::error)?,
                        card_id: row.try_get(3).map_err(Self::error)?,
                        identity: row.try_get(4).map_err(Self::error)?,
                        actor: row.try_get(5).map_err(Self::error)?,
                        detail: serde_json::from_str(&detail).map_err(|e| StorageError::Other(e.to_string()))?,
                    };
                    if let Some(identity) = &draft.identity {
                        changed.insert(identity.clone());
                    }
                    seq += 1;
                    let (body, next) = $crate::storage::sql::seal(app_id, seq, &hash, &draft)?;
                    let prev = std::mem::replace(&mut hash, next.to_vec());
                    sealed.push((seq, kind, draft.card_id, body, prev, hash.clone()));
                }
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO events (app_id, seq, kind, card_id, body, prev_hash, hash) ",
                );
                insert.push_values(sealed, |mut values, (seq, kind, card_id, body, prev, hash)| {
                    values
                        .push_bind(app_id.to_owned())
                        .push_bind(seq)
                        .push_bind(kind)
                        .push_bind(card_id)
                        .push_bind(body)
                        .push_bind(prev)
                        .push_bind(hash);
                });
                insert.build().execute(&mut *tx).await.map_err(Self::error)?;
                let mut delete = sqlx::QueryBuilder::<$db>::new("DELETE FROM pending_events WHERE id IN (");
                let mut listed = delete.separated(", ");
                for id in &ids {
                    listed.push_bind(*id);
                }
                delete.push(")");
                delete.build().execute(&mut *tx).await.map_err(Self::error)?;
                sqlx::query("UPDATE apps SET event_seq = $2, event_head = $3 WHERE id = $1")
                    .bind(app_id)
                    .bind(seq)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::error)?;
                if $notify {
                    // Delivered at commit, to every process listening (versions caches).
                    for payload in $crate::storage::sql::change_payloads(app_id, &changed) {
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind($crate::storage::CHANGES_CHANNEL)
                            .bind(payload)
                            .execute(&mut *tx)
                            .await
                            .map_err(Self::error)?;
                    }
                }
                tx.commit().await.map_err(Self::error)?;
                Ok(ids.len())
            }

            async fn bump_version(
                tx: &mut sqlx::Transaction<'static, $db>,
                app_id: &str,
                identity: &str,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query(
                    "INSERT INTO identity_versions (app_id, identity, version) VALUES ($1, $2, 1) \
                     ON CONFLICT (app_id, identity) DO UPDATE SET version = identity_versions.version + 1",
                )
                .bind(app_id)
                .bind(identity)
                .execute(&mut **tx)
                .await
                .map_err(Self::error)?;
                Ok(())
            }

            /// Runs a card query over `app_id` (`$1`), a list of identities (`$2`) and, if given,
            /// one more integer (`$3`), reading rows as they come so that an answer over
            /// `max_bytes` of stored cards is refused before it is all in memory.
            async fn cards_of_identities(
                &self,
                sql: &'static str,
                app_id: &str,
                identities: &[String],
                third: Option<i64>,
                max_bytes: usize,
            ) -> Result<Vec<$crate::storage::CardRecord>, $crate::storage::StorageError> {
                use futures_util::TryStreamExt as _;
                let mut query = sqlx::query(sql).bind(app_id).bind($bind_list(identities));
                if let Some(third) = third {
                    query = query.bind(third);
                }
                let mut rows = query.fetch(&self.pool);
                let mut cards = Vec::new();
                let mut bytes = 0usize;
                while let Some(row) = rows.try_next().await.map_err(Self::error)? {
                    let card = Self::card_from_row(&row).map_err(Self::error)?;
                    bytes += card.raw.len();
                    if bytes > max_bytes {
                        return Err($crate::storage::StorageError::TooLarge { max_bytes });
                    }
                    cards.push(card);
                }
                Ok(cards)
            }

            fn card_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::storage::CardRecord, sqlx::Error> {
                use sqlx::Row as _;
                Ok($crate::storage::CardRecord {
                    id: row.try_get(0)?,
                    identity: row.try_get(1)?,
                    chain_id: row.try_get(2)?,
                    previous_card_id: row.try_get(3)?,
                    superseded_by: row.try_get(4)?,
                    created_at: row.try_get(5)?,
                    published_at: row.try_get(6)?,
                    public_key: row.try_get(7)?,
                    raw: row.try_get(8)?,
                    revoked_at: row.try_get(9)?,
                    revocation_reason: row.try_get(10)?,
                    revoked_by: row.try_get(11)?,
                    chain_index: row.try_get(12)?,
                })
            }

            fn app_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::storage::AppRecord, $crate::storage::StorageError> {
                use sqlx::Row as _;
                let policy: String = row.try_get(1).map_err(Self::error)?;
                Ok($crate::storage::AppRecord {
                    id: row.try_get(0).map_err(Self::error)?,
                    cards_per_identity: $crate::storage::sql::parse_policy(&policy)?,
                    created_at: row.try_get(2).map_err(Self::error)?,
                })
            }

            fn key_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::storage::ApiKeyRecord, $crate::storage::StorageError> {
                use sqlx::Row as _;
                let role: String = row.try_get(2).map_err(Self::error)?;
                Ok($crate::storage::ApiKeyRecord {
                    kid: row.try_get(0).map_err(Self::error)?,
                    app_id: row.try_get(1).map_err(Self::error)?,
                    role: $crate::storage::sql::parse_role(&role)?,
                    public_key: row.try_get(3).map_err(Self::error)?,
                    created_at: row.try_get(4).map_err(Self::error)?,
                    revoked_at: row.try_get(5).map_err(Self::error)?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::storage::CardStore for $store {
            fn backend(&self) -> $crate::storage::Backend {
                $backend
            }

            async fn ping(&self) -> Result<(), $crate::storage::StorageError> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(Self::error)
            }

            async fn create_app(
                &self,
                app: &$crate::storage::AppRecord,
                event: $crate::storage::EventDraft,
            ) -> Result<(), $crate::storage::StorageError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO apps (id, cards_per_identity, created_at, event_seq, event_head) \
                     VALUES ($1, $2, $3, 0, $4)",
                )
                .bind(&app.id)
                .bind(app.cards_per_identity.as_str())
                .bind(app.created_at)
                .bind(&$crate::storage::sql::GENESIS[..])
                .execute(&mut *tx)
                .await
                .map_err(Self::error)?;
                Self::enqueue_events(&mut tx, &app.id, std::slice::from_ref(&event)).await?;
                tx.commit().await.map_err(Self::error)?;
                self.sequenced(&app.id).await;
                Ok(())
            }

            async fn find_app(
                &self,
                id: &str,
            ) -> Result<Option<$crate::storage::AppRecord>, $crate::storage::StorageError> {
                let row = sqlx::query("SELECT id, cards_per_identity, created_at FROM apps WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(Self::error)?;
                row.as_ref().map(Self::app_from_row).transpose()
            }

            async fn list_apps(&self) -> Result<Vec<$crate::storage::AppRecord>, $crate::storage::StorageError> {
                let rows = sqlx::query("SELECT id, cards_per_identity, created_at FROM apps ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(Self::error)?;
                rows.iter().map(Self::app_from_row).collect()
            }

            async fn insert_api_key(
                &self,
                key: &$crate::storage::ApiKeyRecord,
                event: $crate::storage::EventDraft,
            ) -> Result<(), $crate::storage::StorageError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO api_keys (kid, app_id, role, public_key, created_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(&key.app_id)
                .bind(key.role.as_str())
                .bind(&key.public_key)
                .bind(key.created_at)
                .bind(key.revoked_at)
                .execute(&mut *tx)
                .await
                .map_err(Self::error)?;
                Self::enqueue_events(&mut tx, &key.app_id, std::slice::from_ref(&event)).await?;
                tx.commit().await.map_err(Self::error)?;
                self.sequenced(&key.app_id).await;
                Ok(())
            }

            async fn find_api_key(
                &self,
                kid: &str,
            ) -> Result<Option<$crate::storage::ApiKeyRecord>, $crate::storage::StorageError> {
                let row = sqlx::query(
                    "SELECT kid, app_id, role, public_key, created_at, revoked_at FROM api_keys WHERE kid = $1",
                )
                .bind(kid)
                .fetch_optional(&self.pool)
                .await
                .map_err(Self::error)?;
                row.as_ref().map(Self::key_from_row).transpose()
            }

            async fn list_api_keys(
                &self,
                app_id: Option<&str>,
            ) -> Result<Vec<$crate::storage::ApiKeyRecord>, $crate::storage::StorageError> {
                let rows = sqlx::query(
                    "SELECT kid, app_id, role, public_key, created_at, revoked_at FROM api_keys \
                     WHERE $1 IS NULL OR app_id = $1 ORDER BY app_id, created_at, kid",
                )
                .bind(app_id)
                .fetch_all(&self.pool)
                .await
                .map_err(Self::error)?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn revoke_api_key(
                &self,
                kid: &str,
                at: i64,
                event: $crate::storage::EventDraft,
            ) -> Result<bool, $crate::storage::StorageError> {
                use sqlx::Row as _;
                let mut tx = self.begin_write().await?;
                let app_id: String = sqlx::query("SELECT app_id FROM api_keys WHERE kid = $1")
                    .bind(kid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Self::error)?
                    .ok_or($crate::storage::StorageError::NotFound)?
                    .try_get(0)
                    .map_err(Self::error)?;
                let changed = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL")
                    .bind(kid)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::error)?
                    .rows_affected()
                    == 1;
                if changed {
                    Self::enqueue_events(&mut tx, &app_id, std::slice::from_ref(&event)).await?;
                }
                tx.commit().await.map_err(Self::error)?;
                if changed {
                    self.sequenced(&app_id).await;
                }
                Ok(changed)
            }

            async fn insert_card(
                &self,
                card: &$crate::storage::NewCard,
                placement: &$crate::storage::Placement,
                events: &[$crate::storage::EventDraft],
            ) -> Result<(), $crate::storage::StorageError> {
                use $crate::storage::{Placement, StorageError, constraint};
                let mut tx = self.begin_write().await?;
                let chain_id = match placement {
                    Placement::Root { exclusive, .. } => {
                        sqlx::query(
                            "INSERT INTO chains (app_id, id, identity, head_card_id, exclusive, created_at) \
                             VALUES ($1, $2, $3, $2, $4, $5)",
                        )
                        .bind(&card.app_id)
                        .bind(&card.id)
                        .bind(&card.identity)
                        .bind(*exclusive)
                        .bind(card.published_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(Self::error)?;
                        card.id.as_str()
                    }
                    Placement::Successor { chain_id, previous_card_id } => {
                        let moved = sqlx::query(
                            "UPDATE chains SET head_card_id = $3 \
                             WHERE app_id = $1 AND id = $2 AND head_card_id = $4 AND revoked_at IS NULL",
                        )
                        .bind(&card.app_id)
                        .bind(chain_id)
                        .bind(&card.id)
                        .bind(previous_card_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(Self::error)?
                        .rows_affected();
                        if moved != 1 {
                            return Err(StorageError::Conflict { constraint: constraint::CHAIN_HEAD_MOVED.into() });
                        }
                        chain_id.as_str()
                    }
                };
                let previous = match placement {
                    Placement::Root { .. } => None,
                    Placement::Successor { previous_card_id, .. } => Some(previous_card_id.as_str()),
                };
                sqlx::query(
                    "INSERT INTO cards (app_id, id, identity, chain_id, previous_card_id, superseded_by, \
                     created_at, published_at, public_key, raw, chain_index) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10)",
                )
                .bind(&card.app_id)
                .bind(&card.id)
                .bind(&card.identity)
                .bind(chain_id)
                .bind(previous)
                .bind(card.created_at)
                .bind(card.published_at)
                .bind(&card.public_key)
                .bind(&card.raw)
                .bind(card.chain_index)
                .execute(&mut *tx)
                .await
                .map_err(Self::error)?;
                if let Some(previous) = previous {
                    let superseded = sqlx::query(
                        "UPDATE cards SET superseded_by = $3 WHERE app_id = $1 AND id = $2 AND superseded_by IS NULL",
                    )
                    .bind(&card.app_id)
                    .bind(previous)
                    .bind(&card.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::error)?
                    .rows_affected();
                    if superseded != 1 {
                        return Err(StorageError::Conflict { constraint: constraint::CHAIN_HEAD_MOVED.into() });
                    }
                }
                // The version row is the identity's lock: once it is held, the count below sees
                // every other writer's committed chain (each statement reads a new snapshot).
                Self::bump_version(&mut tx, &card.app_id, &card.identity).await?;
                if let Placement::Root { exclusive: false, max_live_chains } = placement {
                    use sqlx::Row as _;
                    let live: i64 = sqlx::query(
                        "SELECT COUNT(*) FROM chains WHERE app_id = $1 AND identity = $2 AND revoked_at IS NULL",
                    )
                    .bind(&card.app_id)
                    .bind(&card.identity)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(Self::error)?
                    .try_get(0)
                    .map_err(Self::error)?;
                    if live > *max_live_chains {
                        return Err(StorageError::Conflict { constraint: constraint::CHAINS_PER_IDENTITY.into() });
                    }
                }
                Self::enqueue_events(&mut tx, &card.app_id, events).await?;
                tx.commit().await.map_err(Self::error)?;
                self.sequenced(&card.app_id).await;
                Ok(())
            }

            async fn find_card(
                &self,
                app_id: &str,
                id: &str,
            ) -> Result<Option<$crate::storage::CardRecord>, $crate::storage::StorageError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::storage::sql::card_columns!(),
                    " WHERE c.app_id = $1 AND c.id = $2"
                ))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(Self::error)?;
                row.as_ref().map(Self::card_from_row).transpose().map_err(Self::error)
            }

            async fn find_active_cards(
                &self,
                app_id: &str,
                identities: &[String],
                max_bytes: usize,
            ) -> Result<Vec<$crate::storage::CardRecord>, $crate::storage::StorageError> {
                self.cards_of_identities(
                    concat!(
                        "SELECT ",
                        $crate::storage::sql::card_columns!(),
                        " WHERE c.app_id = $1 AND c.identity ",
                        $in_identities,
                        " AND c.superseded_by IS NULL AND ch.revoked_at IS NULL \
                         ORDER BY c.identity, c.created_at DESC, c.published_at DESC, c.id"
                    ),
                    app_id,
                    identities,
                    None,
                    max_bytes,
                )
                .await
            }

            async fn find_unrevoked_chain_cards(
                &self,
                app_id: &str,
                identities: &[String],
                per_chain: i64,
                max_bytes: usize,
            ) -> Result<Vec<$crate::storage::CardRecord>, $crate::storage::StorageError> {
                // The chain's head is its newest card: keep the `per_chain` cards up to it.
                self.cards_of_identities(
                    concat!(
                        "SELECT ",
                        $crate::storage::sql::card_columns!(),
                        " JOIN cards head ON head.app_id = ch.app_id AND head.id = ch.head_card_id \
                         WHERE c.app_id = $1 AND c.identity ",
                        $in_identities,
                        " AND ch.revoked_at IS NULL AND c.chain_index > head.chain_index - $3 \
                         ORDER BY c.identity, c.created_at DESC, c.published_at DESC, c.id"
                    ),
                    app_id,
                    identities,
                    Some(per_chain),
                    max_bytes,
                )
                .await
            }

            async fn identity_versions(
                &self,
                app_id: &str,
                identities: &[String],
            ) -> Result<Vec<(String, i64)>, $crate::storage::StorageError> {
                use sqlx::Row as _;
                let rows = sqlx::query(concat!(
                    "SELECT identity, version FROM identity_versions WHERE app_id = $1 AND identity ",
                    $in_identities
                ))
                .bind(app_id)
                .bind($bind_list(identities))
                .fetch_all(&self.pool)
                .await
                .map_err(Self::error)?;
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Self::error)
            }

            async fn lookup_active(
                &self,
                app_id: &str,
                identities: &[String],
                max_bytes: usize,
            ) -> Result<$crate::storage::ActiveLookup, $crate::storage::StorageError> {
                use futures_util::TryStreamExt as _;
                use sqlx::Row as _;
                // One statement, so the versions (the ETag) and the cards come from one snapshot.
                // An identity without a version row has never had a card.
                let mut rows = sqlx::query(concat!(
                    "SELECT v.identity, v.version, c.id, c.chain_id, c.previous_card_id, c.created_at, \
                     c.published_at, c.public_key, c.raw, ch.revoked_at, c.chain_index \
                     FROM identity_versions v \
                     LEFT JOIN cards c ON c.app_id = v.app_id AND c.identity = v.identity AND c.superseded_by IS NULL \
                     LEFT JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id \
                     WHERE v.app_id = $1 AND v.identity ",
                    $in_identities,
                    " ORDER BY v.identity, c.created_at DESC, c.published_at DESC, c.id"
                ))
                .bind(app_id)
                .bind($bind_list(identities))
                .fetch(&self.pool);
                let mut found = $crate::storage::ActiveLookup::default();
                let mut bytes = 0usize;
                while let Some(row) = rows.try_next().await.map_err(Self::error)? {
                    let identity: String = row.try_get(0).map_err(Self::error)?;
                    let version: i64 = row.try_get(1).map_err(Self::error)?;
                    if found.versions.last().is_none_or(|(last, _)| *last != identity) {
                        found.versions.push((identity.clone(), version));
                    }
                    let id: Option<String> = row.try_get(2).map_err(Self::error)?;
                    let revoked_at: Option<i64> = row.try_get(9).map_err(Self::error)?;
                    // The head of a revoked chain is not active. (Filtering it in the join would
                    // need a nested join, which SQLite plans as a scan of every card.)
                    let Some(id) = id.filter(|_| revoked_at.is_none()) else { continue };
                    let raw: String = row.try_get(8).map_err(Self::error)?;
                    bytes += raw.len();
                    if bytes > max_bytes {
                        return Err($crate::storage::StorageError::TooLarge { max_bytes });
                    }
                    found.cards.push($crate::storage::CardRecord {
                        id,
                        identity,
                        chain_id: row.try_get(3).map_err(Self::error)?,
                        previous_card_id: row.try_get(4).map_err(Self::error)?,
                        superseded_by: None,
                        chain_index: row.try_get(10).map_err(Self::error)?,
                        created_at: row.try_get(5).map_err(Self::error)?,
                        published_at: row.try_get(6).map_err(Self::error)?,
                        public_key: row.try_get(7).map_err(Self::error)?,
                        raw,
                        revoked_at: None,
                        revocation_reason: None,
                        revoked_by: None,
                    });
                }
                Ok(found)
            }

            async fn revoke_chain(
                &self,
                app_id: &str,
                chain_id: &str,
                identity: &str,
                revocation: &$crate::storage::Revocation,
                event: $crate::storage::EventDraft,
            ) -> Result<bool, $crate::storage::StorageError> {
                let mut tx = self.begin_write().await?;
                let changed = sqlx::query(
                    "UPDATE chains SET revoked_at = $3, revocation_reason = $4, revoked_by = $5 \
                     WHERE app_id = $1 AND id = $2 AND revoked_at IS NULL",
                )
                .bind(app_id)
                .bind(chain_id)
                .bind(revocation.at)
                .bind(revocation.reason.as_deref())
                .bind(&revocation.by)
                .execute(&mut *tx)
                .await
                .map_err(Self::error)?
                .rows_affected()
                    == 1;
                if changed {
                    Self::bump_version(&mut tx, app_id, identity).await?;
                    Self::enqueue_events(&mut tx, app_id, std::slice::from_ref(&event)).await?;
                }
                tx.commit().await.map_err(Self::error)?;
                if changed {
                    self.sequenced(app_id).await;
                }
                Ok(changed)
            }

            async fn list_events(
                &self,
                app_id: &str,
                after: i64,
                limit: i64,
                max_bytes: usize,
            ) -> Result<Vec<$crate::storage::EventRow>, $crate::storage::StorageError> {
                use futures_util::TryStreamExt as _;
                use sqlx::Row as _;
                let mut rows = sqlx::query(
                    "SELECT seq, body, prev_hash, hash FROM events WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(app_id)
                .bind(after)
                .bind(limit)
                .fetch(&self.pool);
                let mut events = Vec::new();
                let mut bytes = 0usize;
                while let Some(row) = rows.try_next().await.map_err(Self::error)? {
                    let event = $crate::storage::EventRow {
                        seq: row.try_get(0).map_err(Self::error)?,
                        body: row.try_get(1).map_err(Self::error)?,
                        prev_hash: row.try_get(2).map_err(Self::error)?,
                        hash: row.try_get(3).map_err(Self::error)?,
                    };
                    bytes += event.body.len();
                    // A page ends early rather than grow past the budget; `next` pages on.
                    if bytes > max_bytes && !events.is_empty() {
                        break;
                    }
                    events.push(event);
                }
                Ok(events)
            }

            async fn watch_changes(&self, heard: &(dyn Fn($crate::storage::Heard) + Send + Sync)) {
                $watch(self, heard).await
            }

            async fn sequence_queued(&self) -> Result<usize, $crate::storage::StorageError> {
                use sqlx::Row as _;
                let apps = sqlx::query("SELECT DISTINCT app_id FROM pending_events")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(Self::error)?;
                let mut total = 0;
                for row in &apps {
                    let app_id: String = row.try_get(0).map_err(Self::error)?;
                    total += self.gates.flush(&app_id, self.drain_queue(&app_id)).await?;
                }
                Ok(total)
            }

            fn pool_stats(&self) -> $crate::storage::PoolStats {
                $crate::storage::PoolStats {
                    size: self.pool.size(),
                    idle: self.pool.num_idle(),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn migrate(&self) -> Result<(), $crate::storage::MigrationError> {
                $migrate(&self.pool).await
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}
pub(super) use impl_card_store;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn change_payloads_stay_under_the_notify_limit_and_read_back() {
        let identities: BTreeSet<String> = (0..40).map(|n| format!("{n:03}{}", "x".repeat(997))).collect();
        let payloads = change_payloads("chat", &identities);
        assert!(payloads.len() > 1);
        let mut heard = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8000, "{}", payload.len());
            match parse_change_payload(payload) {
                Some(super::super::Heard::Changed { app_id, identities }) => {
                    assert_eq!(app_id, "chat");
                    heard.extend(identities);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(heard, identities.into_iter().collect::<Vec<_>>());
        assert!(change_payloads("chat", &BTreeSet::new()).is_empty());
        assert_eq!(parse_change_payload(""), None);
    }
}
