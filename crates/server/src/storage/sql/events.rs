//! The event log: reading it. (Writing it is [`super::sequencer`]'s.)

use async_trait::async_trait;

use super::SqlStore;
use super::db::Flow;
use crate::storage::{EventLog, EventRow, EventsQuery, StorageError};

#[async_trait]
impl EventLog for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn list_events(&self, page: EventsQuery<'_>) -> Result<Vec<EventRow>, StorageError> {
        let mut conn = self.db.read().await?;
        let mut events = Vec::new();
        let mut bytes = 0usize;
        conn.session()
            .for_each(
                "SELECT seq, body, prev_hash, hash FROM events WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[page.app_id.into(), page.after.into(), page.limit.into()],
                |row| {
                    let event = EventRow {
                        seq: row.get("seq")?,
                        body: row.get("body")?,
                        prev_hash: row.get("prev_hash")?,
                        hash: row.get("hash")?,
                    };
                    bytes += event.body.len();
                    // A page ends early rather than grow past the budget; `next` pages on.
                    if bytes > page.max_bytes && !events.is_empty() {
                        return Ok(Flow::Stop);
                    }
                    events.push(event);
                    Ok(Flow::Continue)
                },
            )
            .await?;
        Ok(events)
    }

    #[tracing::instrument(skip_all)]
    async fn sequence_queued(&self) -> Result<usize, StorageError> {
        self.sequence_all_queued().await
    }
}
