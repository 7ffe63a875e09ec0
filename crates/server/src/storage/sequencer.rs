//! Group commit for the event log.
//!
//! A write queues its events in its own transaction (`pending_events`); after it commits, it asks
//! for a sequencing round and waits for it, so that an acknowledged change is in the log, as
//! before. A round takes the app row's lock, numbers and hashes every queued event of the app in
//! queue order, moves them into `events` and advances the app's head, in one transaction. Writers
//! that arrive while a round runs are all served by the next one: under load one round (one
//! lock, one commit) sequences many writes, which is what lets one app's writes commit together.
//!
//! Several processes may share a database: each runs its own rounds, and the app row lock
//! serialises them. Queue order is commit order for everything that matters: a change that
//! depends on another (a rotation of a card, a revocation of a chain) read it committed, so it
//! queued its events after that one's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::StorageError;

/// Events moved per transaction of a round; a round repeats until the queue is empty.
pub(super) const BATCH: i64 = 500;

/// One gate per app: its rounds never overlap within this process.
#[derive(Debug, Default)]
pub(super) struct Gates {
    apps: Mutex<HashMap<String, Arc<Gate>>>,
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
    fn gate(&self, app_id: &str) -> Arc<Gate> {
        let mut apps = self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        apps.entry(app_id.to_owned()).or_default().clone()
    }

    /// Returns once a round that started after this call has finished: every event committed
    /// before the call is then sequenced. `round` runs only if no such round ran meanwhile;
    /// the result is what it moved (0 when another round covered this call).
    pub async fn flush<F>(&self, app_id: &str, round: F) -> Result<usize, StorageError>
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
                    .flush("app", async {
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

    #[tokio::test]
    async fn concurrent_flushes_share_rounds_and_each_waits_for_one_that_covers_it() {
        let (results, rounds) = concurrent_flushes(50, || Ok(0)).await;
        assert!(results.iter().all(Result::is_ok));
        assert!((1..50).contains(&rounds), "50 waiting writers were served by {rounds} rounds");
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
            let moved = gates.flush("app", async { Ok(rounds.fetch_add(1, Ordering::SeqCst) + 10) }).await.unwrap();
            assert_eq!(moved, n + 10, "a flush reports what its own round moved");
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_caller_and_the_next_caller_retries() {
        let gates = Gates::default();
        let failed = gates.flush("app", async { Err(StorageError::Unavailable("down".into())) }).await;
        assert!(matches!(failed, Err(StorageError::Unavailable(_))));
        let rounds = AtomicUsize::new(0);
        gates.flush("app", async { Ok(rounds.fetch_add(1, Ordering::SeqCst)) }).await.unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
    }
}
