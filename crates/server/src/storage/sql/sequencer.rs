//! Group commit for the event log: the one place where events get their numbers.
//!
//! A write queues its events in its own transaction (`pending_events`); after it commits, it asks
//! for a sequencing round and waits for it, so that an acknowledged change is in the log. A round
//! takes the app row's lock, numbers and hashes every queued event of the app in queue order,
//! moves them into `events`, grows the transparency log's tree over their bodies, advances the
//! app's head and notifies the identities it logged, in one transaction. Writers that arrive while a round runs are all served by the next one: under
//! load one round (one lock, one commit) sequences many writes.
//!
//! Several processes may share a database: each runs its own rounds, and the app row lock
//! serialises them. Queue order is commit order for everything that matters: a change that
//! depends on another (a rotation of a card, a revocation of a chain) read it committed, so it
//! queued its events after that one's. What a crash or a failed round leaves queued, the sweep
//! ([`sweep_queue`], every [`QUEUE_SWEEP`] and at start) sequences.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardinal_card::log::EventKind;

use super::SqlStore;
use super::db::{Arg, Session};
use crate::domain::{AppId, CardId, Identity};
use crate::storage::{CHANGES_CHANNEL, EventDraft, EventLog, StorageError, change_payloads, seal};

/// How often queued events are looked for. Every write sequences its own events before it is
/// answered, so the queue holds events only after a failed round (the database went away
/// between a commit and its round) or in another process's crash.
pub const QUEUE_SWEEP: Duration = Duration::from_secs(1);

/// Sequences whatever is queued, logging what it did; for the periodic sweep and the start.
pub async fn sweep_queue(log: &dyn EventLog) {
    match log.sequence_queued().await {
        Ok(0) => {}
        Ok(moved) => tracing::info!(moved, "sequenced queued events"),
        Err(error) => tracing::warn!(%error, "queued events could not be sequenced yet"),
    }
}

/// Queues a write's events in its transaction.
pub(super) async fn enqueue(
    session: &mut Session<'_>,
    app_id: &AppId,
    events: &[EventDraft],
) -> Result<(), StorageError> {
    for draft in events {
        let detail = serde_json::to_string(&draft.detail).map_err(|e| StorageError::Other(e.to_string()))?;
        session
            .execute(
                "INSERT INTO pending_events (app_id, kind, at_ms, card_id, identity, actor, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    app_id.into(),
                    draft.kind.as_str().into(),
                    draft.at_ms.into(),
                    draft.card_id.as_ref().into(),
                    draft.identity.as_ref().into(),
                    (&draft.actor).into(),
                    (&detail).into(),
                ],
            )
            .await?;
    }
    Ok(())
}

impl SqlStore {
    /// After a write committed: waits until its events are in the log (see
    /// [`SqlStore::finish_write`] for what happens when the round fails).
    pub(super) async fn sequenced(&self, app_id: &AppId) {
        if let Err(error) = self.gates.flush(app_id, self.drain_queue(app_id)).await {
            tracing::warn!(app = ?app_id.as_str(), %error, "events stay queued; the next round sequences them");
        }
    }

    /// Sequences every app's queue; what [`EventLog::sequence_queued`] does.
    pub(super) async fn sequence_all_queued(&self) -> Result<usize, StorageError> {
        let apps = {
            let mut conn = self.db.read().await?;
            conn.session().fetch_all("SELECT DISTINCT app_id FROM pending_events", &[]).await?
        };
        let mut total = 0;
        for row in &apps {
            let app_id = row.parse("app_id", AppId::parse)?;
            total += self.gates.flush(&app_id, self.drain_queue(&app_id)).await?;
        }
        Ok(total)
    }

    /// Sequences the app's queue until it is empty.
    async fn drain_queue(&self, app_id: &AppId) -> Result<usize, StorageError> {
        let mut total = 0;
        loop {
            let moved = self.sequence_batch(app_id).await?;
            total += moved;
            if (moved as i64) < BATCH {
                return Ok(total);
            }
        }
    }

    /// One transaction: the oldest queued events of the app get the next numbers and hashes,
    /// move to `events`, the app's head advances, and the identities they name are notified.
    #[tracing::instrument(skip_all)]
    async fn sequence_batch(&self, app_id: &AppId) -> Result<usize, StorageError> {
        let mut tx = self.db.begin_internal_write().await?;
        let mut session = tx.session();
        let head = session
            .fetch_optional(
                "SELECT event_seq, event_head, tlog_size FROM apps WHERE id = $1 FOR UPDATE",
                &[app_id.into()],
            )
            .await?
            .ok_or(StorageError::NotFound)?;
        let mut seq: i64 = head.get("event_seq")?;
        let mut hash: Vec<u8> = head.get("event_head")?;
        let (logged, tree_size): (i64, i64) = (seq, head.get("tlog_size")?);
        let queued = session
            .fetch_all(
                "SELECT id, kind, at_ms, card_id, identity, actor, detail FROM pending_events \
                 WHERE app_id = $1 ORDER BY id LIMIT $2",
                &[app_id.into(), BATCH.into()],
            )
            .await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let mut changed = BTreeSet::new();
        let mut ids = Vec::with_capacity(queued.len());
        let mut sealed_events = Vec::with_capacity(queued.len());
        for row in &queued {
            ids.push(row.get::<i64>("id")?);
            let draft = EventDraft {
                kind: row.parse("kind", |kind| EventKind::parse(kind).ok_or("an unknown event kind"))?,
                at_ms: row.get("at_ms")?,
                card_id: row.parse_optional("card_id", str::parse::<CardId>)?,
                identity: row.parse_optional("identity", Identity::parse)?,
                actor: row.get("actor")?,
                detail: row.parse("detail", |text| serde_json::from_str(text))?,
            };
            if let Some(identity) = &draft.identity {
                changed.insert(identity.clone());
            }
            seq += 1;
            let sealed = seal(app_id, seq, &hash, &draft)?;
            hash = sealed.hash.to_vec();
            sealed_events.push((draft, sealed));
        }
        let rows: Vec<Vec<Arg<'_>>> = sealed_events
            .iter()
            .map(|(draft, sealed)| {
                vec![
                    app_id.into(),
                    sealed.seq.into(),
                    draft.kind.as_str().into(),
                    draft.card_id.as_ref().into(),
                    (&sealed.body).into(),
                    sealed.prev_hash.as_slice().into(),
                    sealed.hash.as_slice().into(),
                ]
            })
            .collect();
        session.insert_rows("INSERT INTO events (app_id, seq, kind, card_id, body, prev_hash, hash)", &rows).await?;
        // The transparency tree grows in the same transaction: it covers exactly the events.
        let bodies: Vec<&str> = sealed_events.iter().map(|(_, sealed)| sealed.body.as_str()).collect();
        super::transparency::extend_tree(&mut session, app_id, tree_size as u64, logged as u64, &bodies).await?;
        session
            .execute(
                "DELETE FROM pending_events WHERE app_id = $1 AND id = ANY($2)",
                &[app_id.into(), ids.as_slice().into()],
            )
            .await?;
        session
            .execute(
                "UPDATE apps SET event_seq = $2, event_head = $3, tlog_size = $2 WHERE id = $1",
                &[app_id.into(), seq.into(), hash.as_slice().into()],
            )
            .await?;
        // Delivered at commit, to every process listening (their change-counter caches).
        for payload in change_payloads(app_id, &changed) {
            session.notify(CHANGES_CHANNEL, &payload).await?;
        }
        tx.commit().await?;
        Ok(ids.len())
    }
}

/// Events moved per transaction of a round; a round repeats until the queue is empty.
const BATCH: i64 = 500;

/// One gate per app: its rounds never overlap within this process.
#[derive(Debug, Default)]
pub(super) struct Gates {
    apps: Mutex<HashMap<AppId, Arc<Gate>>>,
}

#[derive(Debug, Default)]
struct Gate {
    round: tokio::sync::Mutex<()>,
    /// Tickets handed out: a writer takes one after its commit.
    requested: AtomicU64,
    /// Every ticket up to this one was covered by a round that started after it was taken.
    completed: AtomicU64,
    /// Every ticket up to this one was covered by a round that was tried, even if it failed:
    /// writers queued behind a failed round do not each try again (during an outage each try
    /// waits out the pool's acquire timeout, so their waits would add up).
    attempted: AtomicU64,
}

impl Gates {
    fn gate(&self, app_id: &AppId) -> Arc<Gate> {
        let mut apps = self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        apps.entry(app_id.clone()).or_default().clone()
    }

    /// Returns once a round that started after this call has finished: every event committed
    /// before the call is then sequenced. `round` runs only if no such round ran meanwhile;
    /// the result is what it moved (0 when another round covered this call).
    pub async fn flush<F>(&self, app_id: &AppId, round: F) -> Result<usize, StorageError>
    where
        F: Future<Output = Result<usize, StorageError>>,
    {
        let gate = self.gate(app_id);
        let ticket = gate.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = gate.round.lock().await;
        if gate.completed.load(Ordering::SeqCst) >= ticket {
            return Ok(0);
        }
        if gate.attempted.load(Ordering::SeqCst) >= ticket {
            return Err(StorageError::Unavailable("the sequencing round for this write failed".into()));
        }
        // Every ticket up to here was taken after its writer committed, and the round below
        // reads the queue after this load: it sees all of their events.
        let covers = gate.requested.load(Ordering::SeqCst);
        gate.attempted.fetch_max(covers, Ordering::SeqCst);
        let moved = round.await?;
        gate.completed.fetch_max(covers, Ordering::SeqCst);
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppId {
        AppId::parse("app").unwrap()
    }
    use std::sync::atomic::AtomicUsize;

    /// `writers` concurrent flushes whose rounds each take 20 ms and end with `outcome`; returns
    /// each flush's result and how many rounds ran.
    async fn concurrent_flushes(
        writers: usize,
        outcome: fn() -> Result<usize, StorageError>,
    ) -> (Vec<Result<usize, StorageError>>, usize) {
        let gates = Arc::new(Gates::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (gates, rounds) = (gates.clone(), rounds.clone());
            tasks.push(tokio::spawn(async move {
                gates
                    .flush(&app(), async {
                        rounds.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        outcome()
                    })
                    .await
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        (results, rounds.load(Ordering::SeqCst))
    }

    /// Sharing, proven: the first writer's round runs alone; everyone who arrived while it ran
    /// is covered by the next one. Fifty writers need two rounds (three if the scheduler lets
    /// the first round start while others are still taking tickets), not fifty.
    #[tokio::test]
    async fn concurrent_flushes_share_rounds_and_each_waits_for_one_that_covers_it() {
        let (results, rounds) = concurrent_flushes(50, || Ok(7)).await;
        assert!(results.iter().all(Result::is_ok));
        assert!(rounds <= 3, "50 waiting writers were served by {rounds} rounds");
        let ran_their_own = results.iter().filter(|r| matches!(r, Ok(7))).count();
        assert_eq!(ran_their_own, rounds, "every other writer was covered by a round it did not run");
    }

    #[tokio::test]
    async fn writers_queued_behind_a_failed_round_fail_at_once_instead_of_each_retrying() {
        let (results, rounds) = concurrent_flushes(20, || Err(StorageError::Unavailable("down".into()))).await;
        assert!(results.iter().all(Result::is_err));
        assert!(rounds <= 2, "20 writers behind a failing round tried {rounds} rounds");
    }

    #[tokio::test]
    async fn a_flush_after_a_round_runs_its_own() {
        let gates = Gates::default();
        let rounds = AtomicUsize::new(0);
        for n in 0..3 {
            let moved = gates.flush(&app(), async { Ok(rounds.fetch_add(1, Ordering::SeqCst) + 10) }).await.unwrap();
            assert_eq!(moved, n + 10, "a flush reports what its own round moved");
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_caller_and_the_next_caller_retries() {
        let gates = Gates::default();
        let failed = gates.flush(&app(), async { Err(StorageError::Unavailable("down".into())) }).await;
        assert!(matches!(failed, Err(StorageError::Unavailable(_))));
        let rounds = AtomicUsize::new(0);
        gates.flush(&app(), async { Ok(rounds.fetch_add(1, Ordering::SeqCst)) }).await.unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
    }
}
