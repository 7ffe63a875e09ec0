//! Keyknox v1 and v2 entries and their readers.
//!
//! A write locks what it compares: the v1 row or the v2 entry (`FOR UPDATE`; SQLite's
//! `BEGIN IMMEDIATE` already holds the database), and for a new v2 entry its owner's counter
//! row, which also serialises the entries-per-identity limit. A new entry that a racing push
//! created first is found by `ON CONFLICT DO NOTHING` changing nothing.

use async_trait::async_trait;

use super::SqlStore;
use super::db::{Arg, Row, Session};
use crate::domain::{AppId, Identity};
use crate::storage::keyknox::{
    EntryFilter, EntryKey, Erased, KeyknoxEntry, KeyknoxStore, KeyknoxV1Record, Push, V1Write, check_previous,
    content_hash, order_readers,
};
use crate::storage::{EventDraft, StorageError, constraint};

fn v1_from_row(row: &Row) -> Result<KeyknoxV1Record, StorageError> {
    Ok(KeyknoxV1Record {
        meta: row.get("meta")?,
        value: row.get("value")?,
        version: row.get("version")?,
        hash: row.get("hash")?,
    })
}

/// The arguments naming an entry, in the order every statement below binds them ($1 to $5).
fn entry_args(key: &EntryKey) -> [Arg<'_>; 5] {
    [
        (&key.app_id).into(),
        (&key.owner).into(),
        key.root.as_str().into(),
        key.path.as_str().into(),
        key.key.as_str().into(),
    ]
}

/// The arguments of a filter ($1 to $5, unset filters null).
fn filter_args<'a>(filter: &EntryFilter<'a>) -> [Arg<'a>; 5] {
    [filter.app_id.into(), filter.owner.into(), filter.root.into(), filter.path.into(), filter.key.into()]
}

/// Matches an owner's entries by a filter bound as [`filter_args`].
macro_rules! filtered {
    ($head:literal $(, $tail:literal)?) => {
        concat!(
            $head,
            " WHERE app_id = $1 AND owner = $2 AND ($3 IS NULL OR root = $3) AND ($4 IS NULL OR path = $4) \
             AND ($5 IS NULL OR key = $5)"
            $(, $tail)?
        )
    };
}

const V1_COLUMNS: &str = "SELECT meta, value, version, hash FROM keyknox_v1 WHERE app_id = $1 AND identity = $2";

/// An entry and its readers, the entry locked until the write's transaction ends.
async fn locked_entry(session: &mut Session<'_>, key: &EntryKey) -> Result<Option<KeyknoxEntry>, StorageError> {
    let sql = "SELECT meta, value, hash FROM keyknox_entries \
               WHERE app_id = $1 AND owner = $2 AND root = $3 AND path = $4 AND key = $5 FOR UPDATE";
    let Some(row) = session.fetch_optional(sql, &entry_args(key)).await? else { return Ok(None) };
    let readers = session
        .fetch_all(
            "SELECT reader FROM keyknox_readers \
             WHERE app_id = $1 AND owner = $2 AND root = $3 AND path = $4 AND key = $5",
            &entry_args(key),
        )
        .await?
        .iter()
        .map(|row| row.parse("reader", Identity::parse))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(KeyknoxEntry {
        key: key.clone(),
        readers: order_readers(&key.owner, readers),
        meta: row.get("meta")?,
        value: row.get("value")?,
        hash: row.get("hash")?,
    }))
}

/// Changes the owner's entry count by `delta`, locking the owner; refuses past `max`.
async fn count_entries(
    session: &mut Session<'_>,
    app_id: &AppId,
    owner: &Identity,
    delta: i64,
    max: i64,
) -> Result<(), StorageError> {
    session
        .execute(
            "INSERT INTO keyknox_owners (app_id, owner, entries) VALUES ($1, $2, $3) \
             ON CONFLICT (app_id, owner) DO UPDATE SET entries = keyknox_owners.entries + $3",
            &[app_id.into(), owner.into(), delta.into()],
        )
        .await?;
    let entries: i64 = session
        .fetch_optional(
            "SELECT entries FROM keyknox_owners WHERE app_id = $1 AND owner = $2",
            &[app_id.into(), owner.into()],
        )
        .await?
        .ok_or(StorageError::NotFound)?
        .get("entries")?;
    if entries > max { Err(StorageError::conflict(constraint::KEYKNOX_ENTRIES_PER_IDENTITY)) } else { Ok(()) }
}

#[async_trait]
impl KeyknoxStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn keyknox_v1(&self, app_id: &AppId, identity: &Identity) -> Result<Option<KeyknoxV1Record>, StorageError> {
        self.read_optional(V1_COLUMNS, &[app_id.into(), identity.into()], v1_from_row).await
    }

    #[tracing::instrument(skip_all)]
    async fn put_keyknox_v1(&self, write: &V1Write<'_>) -> Result<KeyknoxV1Record, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let current = session
            .fetch_optional(
                "SELECT meta, value, version, hash FROM keyknox_v1 WHERE app_id = $1 AND identity = $2 FOR UPDATE",
                &[write.app_id.into(), write.identity.into()],
            )
            .await?
            .as_ref()
            .map(v1_from_row)
            .transpose()?;
        let empty = current.as_ref().is_none_or(|stored| stored.meta.is_empty() && stored.value.is_empty());
        check_previous(
            write.previous_hash,
            current.as_ref().map(|stored| stored.hash.as_str()),
            empty,
            constraint::KEYKNOX_HASH_MISMATCH,
        )?;
        let stored = KeyknoxV1Record {
            meta: write.meta.to_owned(),
            value: write.value.to_owned(),
            version: current.as_ref().map_or(1, |stored| stored.version + 1),
            hash: content_hash(write.meta, write.value),
        };
        let args = [
            write.app_id.into(),
            write.identity.into(),
            stored.meta.as_str().into(),
            stored.value.as_str().into(),
            stored.version.into(),
            stored.hash.as_str().into(),
            write.at.into(),
        ];
        // A first write that another one beat (nothing was there to lock) changes nothing, and
        // an update changes only the version it read: the loser of a race is refused, never
        // silently overwritten.
        let written = match &current {
            None => {
                session
                    .execute(
                        "INSERT INTO keyknox_v1 (app_id, identity, meta, value, version, hash, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id, identity) DO NOTHING",
                        &args,
                    )
                    .await?
            }
            Some(read) => {
                let mut args = args.to_vec();
                args.push(read.version.into());
                session
                    .execute(
                        "UPDATE keyknox_v1 SET meta = $3, value = $4, version = $5, hash = $6, updated_at = $7 \
                         WHERE app_id = $1 AND identity = $2 AND version = $8",
                        &args,
                    )
                    .await?
            }
        };
        if written != 1 {
            return Err(StorageError::conflict(constraint::KEYKNOX_HASH_MISMATCH));
        }
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(skip_all)]
    async fn reset_keyknox_v1(
        &self,
        app_id: &AppId,
        identity: &Identity,
        at: i64,
    ) -> Result<Option<KeyknoxV1Record>, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let changed = session
            .execute(
                "UPDATE keyknox_v1 SET meta = '', value = '', version = version + 1, hash = $3, updated_at = $4 \
                 WHERE app_id = $1 AND identity = $2",
                &[app_id.into(), identity.into(), content_hash("", "").as_str().into(), at.into()],
            )
            .await?;
        let reset = if changed == 0 {
            None
        } else {
            session
                .fetch_optional(V1_COLUMNS, &[app_id.into(), identity.into()])
                .await?
                .as_ref()
                .map(v1_from_row)
                .transpose()?
        };
        tx.commit().await?;
        Ok(reset)
    }

    #[tracing::instrument(skip_all)]
    async fn push_keyknox(&self, push: &Push<'_>) -> Result<KeyknoxEntry, StorageError> {
        let key = push.key;
        let hash = content_hash(push.meta, push.value);
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let current = locked_entry(&mut session, key).await?;
        check_previous(
            push.previous_hash,
            current.as_ref().map(|entry| entry.hash.as_str()),
            current.is_none(),
            constraint::KEYKNOX_ENTRY_EXISTS,
        )?;
        let readers = order_readers(
            &key.owner,
            current.iter().flat_map(|entry| entry.readers.iter().cloned()).chain(push.readers.iter().cloned()),
        );
        if readers.len() > push.max_readers {
            return Err(StorageError::conflict(constraint::KEYKNOX_READERS_PER_ENTRY));
        }
        let [app, owner, root, path, name] = entry_args(key);
        match &current {
            None => {
                count_entries(&mut session, &key.app_id, &key.owner, 1, push.max_entries).await?;
                let created = session
                    .execute(
                        "INSERT INTO keyknox_entries (app_id, owner, root, path, key, meta, value, hash, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING",
                        &[
                            app,
                            owner,
                            root,
                            path,
                            name,
                            push.meta.into(),
                            push.value.into(),
                            hash.as_str().into(),
                            push.at.into(),
                        ],
                    )
                    .await?;
                if created != 1 {
                    // Another push created it since this one looked: it wins.
                    let lost = if push.previous_hash.is_none() {
                        constraint::KEYKNOX_ENTRY_EXISTS
                    } else {
                        constraint::KEYKNOX_HASH_MISMATCH
                    };
                    return Err(StorageError::conflict(lost));
                }
            }
            Some(entry) => {
                let updated = session
                    .execute(
                        "UPDATE keyknox_entries SET meta = $6, value = $7, hash = $8, updated_at = $9 \
                         WHERE app_id = $1 AND owner = $2 AND root = $3 AND path = $4 AND key = $5 AND hash = $10",
                        &[
                            app,
                            owner,
                            root,
                            path,
                            name,
                            push.meta.into(),
                            push.value.into(),
                            hash.as_str().into(),
                            push.at.into(),
                            entry.hash.as_str().into(),
                        ],
                    )
                    .await?;
                if updated != 1 {
                    return Err(StorageError::conflict(constraint::KEYKNOX_HASH_MISMATCH));
                }
            }
        }
        let known = current.as_ref().map_or(&[][..], |entry| entry.readers.as_slice());
        let added: Vec<Vec<Arg<'_>>> = readers
            .iter()
            .filter(|reader| !known.contains(reader))
            .map(|reader| vec![app, owner, root, path, name, reader.into()])
            .collect();
        session.insert_rows("INSERT INTO keyknox_readers (app_id, owner, root, path, key, reader)", &added).await?;
        tx.commit().await?;
        Ok(KeyknoxEntry { key: key.clone(), readers, meta: push.meta.to_owned(), value: push.value.to_owned(), hash })
    }

    #[tracing::instrument(skip_all)]
    async fn keyknox_entry(&self, key: &EntryKey) -> Result<Option<KeyknoxEntry>, StorageError> {
        // One statement, so the entry and its readers come from one snapshot.
        let sql = "SELECT e.meta, e.value, e.hash, r.reader FROM keyknox_entries e LEFT JOIN keyknox_readers r \
                   ON r.app_id = e.app_id AND r.owner = e.owner AND r.root = e.root AND r.path = e.path AND r.key = e.key \
                   WHERE e.app_id = $1 AND e.owner = $2 AND e.root = $3 AND e.path = $4 AND e.key = $5";
        let rows = self
            .read_all(sql, &entry_args(key), |row| {
                let reader = row.parse_optional("reader", Identity::parse)?;
                Ok((row.get::<String>("meta")?, row.get::<String>("value")?, row.get::<String>("hash")?, reader))
            })
            .await?;
        let Some((meta, value, hash, _)) = rows.first().cloned() else { return Ok(None) };
        let readers = order_readers(&key.owner, rows.into_iter().filter_map(|(.., reader)| reader));
        Ok(Some(KeyknoxEntry { key: key.clone(), readers, meta, value, hash }))
    }

    #[tracing::instrument(skip_all)]
    async fn keyknox_keys(&self, filter: &EntryFilter<'_>, reader: &Identity) -> Result<Vec<String>, StorageError> {
        let [app, owner, root, path, key] = filter_args(filter);
        let sql = "SELECT DISTINCT e.key FROM keyknox_entries e JOIN keyknox_readers r \
                   ON r.app_id = e.app_id AND r.owner = e.owner AND r.root = e.root AND r.path = e.path AND r.key = e.key \
                   WHERE e.app_id = $1 AND e.owner = $2 AND ($3 IS NULL OR e.root = $3) AND ($4 IS NULL OR e.path = $4) \
                   AND ($5 IS NULL OR e.key = $5) AND r.reader = $6 ORDER BY e.key";
        self.read_all(sql, &[app, owner, root, path, key, reader.into()], |row| row.get("key")).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_keyknox(&self, filter: &EntryFilter<'_>) -> Result<u64, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let args = filter_args(filter);
        // Locked first, as a push locks its entry: a push in flight finishes before, or after.
        session.fetch_all(filtered!("SELECT key FROM keyknox_entries", " FOR UPDATE"), &args).await?;
        session.execute(filtered!("DELETE FROM keyknox_readers"), &args).await?;
        let deleted = session.execute(filtered!("DELETE FROM keyknox_entries"), &args).await?;
        if deleted > 0 {
            let delta = -i64::try_from(deleted).unwrap_or(i64::MAX);
            count_entries(&mut session, filter.app_id, filter.owner, delta, i64::MAX).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    #[tracing::instrument(skip_all)]
    async fn remove_keyknox_reader(&self, filter: &EntryFilter<'_>, reader: &Identity) -> Result<u64, StorageError> {
        if reader == filter.owner {
            return Ok(0);
        }
        let [app, owner, root, path, key] = filter_args(filter);
        let sql = "DELETE FROM keyknox_readers WHERE app_id = $1 AND owner = $2 AND ($3 IS NULL OR root = $3) \
                   AND ($4 IS NULL OR path = $4) AND ($5 IS NULL OR key = $5) AND reader = $6";
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        // Locked as a push locks its entry, so a push never answers a reader list this removed.
        session
            .fetch_all(filtered!("SELECT key FROM keyknox_entries", " FOR UPDATE"), &[app, owner, root, path, key])
            .await?;
        let removed = session.execute(sql, &[app, owner, root, path, key, reader.into()]).await?;
        tx.commit().await?;
        Ok(removed)
    }

    #[tracing::instrument(skip_all)]
    async fn erase_keyknox(
        &self,
        app_id: &AppId,
        identity: &Identity,
        event: EventDraft,
    ) -> Result<Erased, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let args = [app_id.into(), identity.into()];
        let v1 = session.execute("DELETE FROM keyknox_v1 WHERE app_id = $1 AND identity = $2", &args).await? > 0;
        session.execute("DELETE FROM keyknox_readers WHERE app_id = $1 AND owner = $2", &args).await?;
        let entries = session.execute("DELETE FROM keyknox_entries WHERE app_id = $1 AND owner = $2", &args).await?;
        session.execute("DELETE FROM keyknox_owners WHERE app_id = $1 AND owner = $2", &args).await?;
        let grants = session.execute("DELETE FROM keyknox_readers WHERE app_id = $1 AND reader = $2", &args).await?;
        let erased = Erased { v1, entries, grants };
        self.finish_write(tx, app_id, &[erased.recorded_in(event)]).await?;
        Ok(erased)
    }
}
