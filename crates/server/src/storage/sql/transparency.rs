//! The transparency log's tree and checkpoints. The tree grows in [`extend_tree`], inside the
//! sequencing round that writes the events it hashes (see `sequencer.rs`).

use async_trait::async_trait;
use cardinal_card::tlog::{self, Hash, Hashes};

use super::SqlStore;
use super::db::{Arg, Row, Session};
use crate::domain::AppId;
use crate::storage::{CheckpointRecord, StorageError, TransparencyStore};

/// Stored hashes per INSERT statement (three arguments each, well under both databases' limits).
const HASH_ROWS: usize = 1000;

/// Events hashed per transaction when completing a tree written before this schema.
const COMPLETION_BATCH: i64 = 5000;

fn corrupt(error: tlog::TlogError) -> StorageError {
    StorageError::Corrupt(format!("the transparency tree: {error}"))
}

fn to_i64(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Corrupt("a tree index above 2^63".into()))
}

async fn read_hashes(session: &mut Session<'_>, app_id: &AppId, indexes: &[u64]) -> Result<Hashes, StorageError> {
    let mut hashes = Hashes::default();
    if indexes.is_empty() {
        return Ok(hashes);
    }
    let wanted = indexes.iter().map(|i| to_i64(*i)).collect::<Result<Vec<i64>, _>>()?;
    let rows = session
        .fetch_all(
            "SELECT idx, hash FROM tlog_hashes WHERE app_id = $1 AND idx = ANY($2)",
            &[app_id.into(), wanted.as_slice().into()],
        )
        .await?;
    for row in &rows {
        let idx: i64 = row.get("idx")?;
        let hash: Vec<u8> = row.get("hash")?;
        let hash: [u8; 32] =
            hash.try_into().map_err(|_| StorageError::Corrupt("a stored tree hash is not 32 bytes".into()))?;
        hashes.0.insert(idx as u64, Hash(hash));
    }
    Ok(hashes)
}

/// Grows the app's tree from `tree_size` entries to cover every event up to `events` plus the
/// `new` bodies being sequenced in this transaction (the events from before this schema, or a
/// round that failed after its events, are read back from `events.body`). The caller holds the
/// app row's lock and records the new size.
pub(super) async fn extend_tree(
    session: &mut Session<'_>,
    app_id: &AppId,
    tree_size: u64,
    events: u64,
    new: &[&str],
) -> Result<(), StorageError> {
    if tree_size > events {
        return Err(StorageError::Corrupt(format!(
            "the transparency tree covers {tree_size} entries but the log holds {events} events"
        )));
    }
    let mut old = Vec::new();
    if tree_size < events {
        let rows = session
            .fetch_all(
                "SELECT body FROM events WHERE app_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
                &[app_id.into(), to_i64(tree_size)?.into(), to_i64(events)?.into()],
            )
            .await?;
        old = rows.iter().map(|row| row.get::<String>("body")).collect::<Result<Vec<_>, _>>()?;
        if old.len() as u64 != events - tree_size {
            return Err(StorageError::Corrupt("the event log has a gap".into()));
        }
    }
    let frontier = read_hashes(session, app_id, &tlog::frontier_indexes(tree_size)).await?;
    let bodies = old.iter().map(String::as_str).chain(new.iter().copied()).map(str::as_bytes);
    let added = tlog::append(tree_size, &frontier, bodies).map_err(corrupt)?;
    let indexes = added.iter().map(|(i, _)| to_i64(*i)).collect::<Result<Vec<i64>, _>>()?;
    for (chunk, idx) in added.chunks(HASH_ROWS).zip(indexes.chunks(HASH_ROWS)) {
        let rows: Vec<Vec<Arg<'_>>> = chunk
            .iter()
            .zip(idx)
            .map(|((_, hash), idx)| vec![app_id.into(), (*idx).into(), hash.0.as_slice().into()])
            .collect();
        session.insert_rows("INSERT INTO tlog_hashes (app_id, idx, hash)", &rows).await?;
    }
    Ok(())
}

impl SqlStore {
    /// Hashes the events that no tree covers yet (those from before the transparency schema);
    /// returns how many.
    pub(super) async fn complete_trees(&self) -> Result<u64, StorageError> {
        let apps = self
            .read_all("SELECT id FROM apps WHERE tlog_size < event_seq", &[], |row| row.parse("id", AppId::parse))
            .await?;
        let mut total = 0;
        for app_id in apps {
            loop {
                let mut tx = self.db.begin_internal_write().await?;
                let mut session = tx.session();
                let Some(row) = session
                    .fetch_optional(
                        "SELECT event_seq, tlog_size FROM apps WHERE id = $1 FOR UPDATE",
                        &[(&app_id).into()],
                    )
                    .await?
                else {
                    break;
                };
                let (events, size): (i64, i64) = (row.get("event_seq")?, row.get("tlog_size")?);
                if size >= events {
                    break;
                }
                let upto = events.min(size + COMPLETION_BATCH);
                extend_tree(&mut session, &app_id, size as u64, upto as u64, &[]).await?;
                session
                    .execute("UPDATE apps SET tlog_size = $2 WHERE id = $1", &[(&app_id).into(), upto.into()])
                    .await?;
                tx.commit().await?;
                total += (upto - size) as u64;
            }
        }
        Ok(total)
    }
}

fn checkpoint_of(row: &Row) -> Result<CheckpointRecord, StorageError> {
    let root: Vec<u8> = row.get("root")?;
    Ok(CheckpointRecord {
        app_id: row.parse("app_id", AppId::parse)?,
        origin: row.get("origin")?,
        size: row.get::<i64>("size")? as u64,
        root: root.try_into().map_err(|_| StorageError::Corrupt("a checkpoint root is not 32 bytes".into()))?,
        note: row.get("note")?,
        epoch: row.get("epoch")?,
        signed_at: row.get("signed_at")?,
    })
}

#[async_trait]
impl TransparencyStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn tree_size(&self, app_id: &AppId) -> Result<u64, StorageError> {
        let size = self
            .read_optional("SELECT tlog_size FROM apps WHERE id = $1", &[app_id.into()], |row| {
                row.get::<i64>("tlog_size")
            })
            .await?;
        Ok(size.unwrap_or(0) as u64)
    }

    #[tracing::instrument(skip_all)]
    async fn tree_hashes(&self, app_id: &AppId, indexes: &[u64]) -> Result<Hashes, StorageError> {
        let mut conn = self.db.read().await?;
        read_hashes(&mut conn.session(), app_id, indexes).await
    }

    #[tracing::instrument(skip_all)]
    async fn entries(&self, app_id: &AppId, start: u64, end: u64) -> Result<Vec<String>, StorageError> {
        self.read_all(
            "SELECT body FROM events WHERE app_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
            &[app_id.into(), to_i64(start)?.into(), to_i64(end)?.into()],
            |row| row.get("body"),
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn published_entries(
        &self,
        app_id: &AppId,
        card_ids: &[&str],
    ) -> Result<Vec<(String, u64, String)>, StorageError> {
        if card_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.db.read().await?;
        let rows = conn
            .session()
            .fetch_all(
                "SELECT card_id, seq, body FROM events \
                 WHERE app_id = $1 AND kind = 'card_published' AND card_id = ANY($2)",
                &[app_id.into(), card_ids.into()],
            )
            .await?;
        rows.iter().map(|row| Ok((row.get("card_id")?, row.get::<i64>("seq")? as u64 - 1, row.get("body")?))).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn insert_cosignature(
        &self,
        app_id: &AppId,
        origin: &str,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<(), StorageError> {
        let mut tx = self.db.begin_internal_write().await?;
        tx.session()
            .execute(
                "INSERT INTO cosignatures (app_id, origin, size, witness, line) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (app_id, origin, size, witness) DO NOTHING",
                &[app_id.into(), origin.into(), to_i64(size)?.into(), witness.into(), line.into()],
            )
            .await?;
        tx.commit().await
    }

    #[tracing::instrument(skip_all)]
    async fn cosignatures(
        &self,
        app_id: &AppId,
        origin: &str,
        size: u64,
    ) -> Result<Vec<(String, String)>, StorageError> {
        self.read_all(
            "SELECT witness, line FROM cosignatures WHERE app_id = $1 AND origin = $2 AND size = $3 ORDER BY witness",
            &[app_id.into(), origin.into(), to_i64(size)?.into()],
            |row| Ok((row.get("witness")?, row.get("line")?)),
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn last_cosigned(&self, app_id: &AppId, origin: &str, witness: &str) -> Result<Option<u64>, StorageError> {
        let size = self
            .read_optional(
                "SELECT MAX(size) AS size FROM cosignatures WHERE app_id = $1 AND origin = $2 AND witness = $3",
                &[app_id.into(), origin.into(), witness.into()],
                |row| row.get::<Option<i64>>("size"),
            )
            .await?;
        Ok(size.flatten().map(|s| s as u64))
    }

    #[tracing::instrument(skip_all)]
    async fn newest_checkpoint(&self, app_id: &AppId, origin: &str) -> Result<Option<CheckpointRecord>, StorageError> {
        self.read_optional(
            "SELECT app_id, origin, size, root, note, epoch, signed_at FROM checkpoints \
             WHERE app_id = $1 AND origin = $2 ORDER BY size DESC LIMIT 1",
            &[app_id.into(), origin.into()],
            checkpoint_of,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn insert_checkpoint(&self, checkpoint: &CheckpointRecord) -> Result<CheckpointRecord, StorageError> {
        let size = to_i64(checkpoint.size)?;
        let mut tx = self.db.begin_internal_write().await?;
        let mut session = tx.session();
        session
            .execute(
                "INSERT INTO checkpoints (app_id, origin, size, root, note, epoch, signed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id, origin, size) DO NOTHING",
                &[
                    (&checkpoint.app_id).into(),
                    checkpoint.origin.as_str().into(),
                    size.into(),
                    checkpoint.root.as_slice().into(),
                    checkpoint.note.as_str().into(),
                    checkpoint.epoch.as_str().into(),
                    checkpoint.signed_at.into(),
                ],
            )
            .await?;
        let stored = session
            .fetch_optional(
                "SELECT app_id, origin, size, root, note, epoch, signed_at FROM checkpoints \
                 WHERE app_id = $1 AND origin = $2 AND size = $3",
                &[(&checkpoint.app_id).into(), checkpoint.origin.as_str().into(), size.into()],
            )
            .await?
            .ok_or(StorageError::NotFound)?;
        let stored = checkpoint_of(&stored)?;
        tx.commit().await?;
        Ok(stored)
    }
}
