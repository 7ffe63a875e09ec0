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
    /// before the call is then sequenced. `round` runs only if no such round ran meanwhile.
    pub async fn flush<F>(&self, app_id: &str, round: F) -> Result<(), StorageError>
    where
        F: Future<Output = Result<usize, StorageError>>,
    {
        let gate = self.gate(app_id);
        let ticket = gate.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = gate.round.lock().await;
        if gate.completed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        if gate.attempted.load(Ordering::SeqCst) >= ticket {
            return Err(StorageError::Unavailable("the sequencing round for this write failed".into()));
        }
        // Every ticket up to here was taken after its writer committed, and the round below
        // reads the queue after this load: it sees all of their events.
        let covers = gate.requested.load(Ordering::SeqCst);
        gate.attempted.fetch_max(covers, Ordering::SeqCst);
        round.await?;
        gate.completed.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn concurrent_flushes_share_rounds_and_each_waits_for_one_that_covers_it() {
        let gates = Arc::new(Gates::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (gates, rounds) = (gates.clone(), rounds.clone());
            tasks.push(tokio::spawn(async move {
                gates
                    .flush("app", async {
                        rounds.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(0)
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let rounds = rounds.load(Ordering::SeqCst);
        assert!((1..50).contains(&rounds), "50 waiting writers were served by {rounds} rounds");
    }

    #[tokio::test]
    async fn writers_queued_behind_a_failed_round_fail_at_once_instead_of_each_retrying() {
        let gates = Arc::new(Gates::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (gates, rounds) = (gates.clone(), rounds.clone());
            tasks.push(tokio::spawn(async move {
                gates
                    .flush("app", async {
                        rounds.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Err::<usize, _>(StorageError::Unavailable("down".into()))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        let rounds = rounds.load(Ordering::SeqCst);
        assert!(rounds <= 2, "20 writers behind a failing round tried {rounds} rounds");
    }

    #[tokio::test]
    async fn a_flush_after_a_round_runs_its_own() {
        let gates = Gates::default();
        let rounds = AtomicUsize::new(0);
        for _ in 0..3 {
            gates.flush("app", async { Ok(rounds.fetch_add(1, Ordering::SeqCst)) }).await.unwrap();
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
