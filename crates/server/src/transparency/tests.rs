//! The log's rules on the in-memory store: signing, the checks that keep it from forking, and
//! the reads.

use std::sync::Arc;
use std::time::Duration;

use cardinal_card::log::EventKind;
use cardinal_card::tlog::{self, Checkpoint, LogKey, TilePath};

use super::{LogSetup, Transparency, TransparencyError};
use crate::clock::{Clock, ManualClock};
use crate::domain::{AppId, CardsPerIdentity, KeyRole};
use crate::storage::memory::MemoryStore;
use crate::storage::{
    ApiKeyRecord, ApiKeyStore, AppRecord, AppStore, CheckpointRecord, EventDraft, Operations, Store, TransparencyStore,
};

fn draft(kind: EventKind) -> EventDraft {
    EventDraft { kind, at_ms: 1, card_id: None, identity: None, actor: "test".into(), detail: Default::default() }
}

fn key(seed: u8) -> LogKey {
    LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
}

struct World {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    app: AppId,
    keys: u32,
}

impl World {
    async fn new() -> World {
        let store = Arc::new(MemoryStore::new());
        let app = AppId::parse("chat").unwrap();
        let record = AppRecord { id: app.clone(), cards_per_identity: CardsPerIdentity::Single, created_at: 1 };
        store.create_app(&record, draft(EventKind::AppCreated)).await.unwrap();
        World { store, clock: ManualClock::starting_now(), app, keys: 0 }
    }

    fn log(&self, prefix: &str, seed: u8) -> Transparency {
        let store: Arc<dyn Store> = self.store.clone();
        let setup = LogSetup {
            key: key(seed),
            origin_prefix: prefix.into(),
            interval: Duration::from_secs(1),
            witnesses: Vec::new(),
            quorum: 0,
            post: None,
            witness_timeout: Duration::from_secs(1),
        };
        Transparency::new(store, setup, self.clock.clone())
    }

    /// Appends `n` events to the app's log.
    async fn grow(&mut self, n: u32) {
        for _ in 0..n {
            self.keys += 1;
            let record = ApiKeyRecord {
                kid: format!("k{}", self.keys),
                app_id: self.app.clone(),
                role: KeyRole::App,
                public_key: vec![1; 32],
                created_at: 1,
                revoked_at: None,
            };
            self.store.insert_api_key(&record, draft(EventKind::KeyAdded)).await.unwrap();
        }
    }
}

#[tokio::test]
async fn checkpoints_are_signed_when_a_log_grows_and_stay_consistent() {
    let mut world = World::new().await;
    let log = world.log("cards.example.com/tlog", 1);
    assert_eq!(log.origin(&world.app), "cards.example.com/tlog/chat");
    assert_eq!(log.sign_due().await.unwrap(), 1);
    assert_eq!(log.sign_due().await.unwrap(), 0, "an idle log gets no checkpoint");
    let first = log.newest(&world.app).await.unwrap().unwrap();
    assert_eq!(first.size, 1);
    world.grow(300).await;
    assert_eq!(log.sign_due().await.unwrap(), 1);
    let second = log.newest(&world.app).await.unwrap().unwrap();
    assert_eq!(second.size, 301);
    let vkey = log.vkey(&world.app);
    let (old, _) = tlog::open_checkpoint(&first.note, &vkey).unwrap();
    let (new, _) = tlog::open_checkpoint(&second.note, &vkey).unwrap();
    let proof = log.consistency(&world.app, old.size, new.size).await.unwrap();
    tlog::verify_consistency(&proof, old.size, old.root, new.size, new.root).unwrap();
    for index in [0, 150, 300] {
        let entry = log.entry(&world.app, index).await.unwrap();
        let proof = log.inclusion(&world.app, index, new.size).await.unwrap();
        tlog::verify_inclusion(&proof, new.size, new.root, index, tlog::leaf_hash(entry.as_bytes())).unwrap();
    }
    assert!(matches!(log.inclusion(&world.app, 301, 301).await, Err(TransparencyError::InvalidRequest(_))));
    assert!(matches!(log.inclusion(&world.app, 0, 302).await, Err(TransparencyError::InvalidRequest(_))));
    assert!(matches!(log.consistency(&world.app, 2, 1).await, Err(TransparencyError::InvalidRequest(_))));
    assert!(log.consistency(&world.app, 0, 301).await.unwrap().is_empty());
    assert_eq!(log.check_at_start().await.unwrap(), 0, "the entries reproduce every checkpoint");
}

#[tokio::test]
async fn tiles_and_bundles_are_served_only_within_the_newest_checkpoint() {
    let mut world = World::new().await;
    world.grow(299).await;
    let log = world.log("o", 1);
    log.sign_due().await.unwrap();
    let tile = |level, index, width| TilePath { level, index, width, entries: false };
    let full = log.tile(&world.app, tile(0, 0, 256)).await.unwrap();
    assert_eq!(full.len(), 8192);
    let partial = log.tile(&world.app, tile(0, 1, 44)).await.unwrap();
    assert_eq!(partial.len(), 44 * 32);
    assert!(matches!(log.tile(&world.app, tile(0, 1, 45)).await, Err(TransparencyError::NotFound)));
    assert_eq!(log.tile(&world.app, tile(1, 0, 1)).await.unwrap().len(), 32);
    let bundle = log.bundle(&world.app, TilePath { entries: true, ..tile(0, 1, 44) }).await.unwrap();
    let entries = tlog::parse_bundle(&bundle).unwrap();
    assert_eq!(entries.len(), 44);
    assert_eq!(entries[0], log.entry(&world.app, 256).await.unwrap().as_bytes());
    // The tile's leaf hashes are the bundle's entries' hashes.
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(&partial[i * 32..(i + 1) * 32], tlog::leaf_hash(entry).0.as_slice());
    }
    world.grow(10).await;
    assert!(matches!(log.tile(&world.app, tile(0, 1, 50)).await, Err(TransparencyError::NotFound)), "not signed yet");
    log.sign_due().await.unwrap();
    assert_eq!(log.tile(&world.app, tile(0, 1, 44)).await.unwrap(), partial, "served bytes never change");
}

/// A stored checkpoint the tree cannot reproduce (events lost or altered, a forged row): the
/// log is refused, nothing more is signed for it, the stored checkpoint stays the newest.
#[tokio::test]
async fn a_log_that_disagrees_with_its_checkpoint_is_refused_not_forked() {
    let mut world = World::new().await;
    world.grow(4).await;
    let log = world.log("o", 1);
    let epoch = world.store.epoch().await.unwrap();
    let origin = log.origin(&world.app);
    let forged = Checkpoint { origin: origin.clone(), size: 5, root: tlog::leaf_hash(b"another history") };
    let record = CheckpointRecord {
        app_id: world.app.clone(),
        origin,
        size: 5,
        root: forged.root.0,
        note: key(1).sign(&forged),
        epoch,
        signed_at: 1,
    };
    world.store.insert_checkpoint(&record).await.unwrap();
    assert_eq!(log.check_at_start().await.unwrap(), 1, "the entries give another root for size 5");
    world.grow(3).await;
    assert_eq!(log.sign_due().await.unwrap(), 0);
    assert_eq!(log.newest(&world.app).await.unwrap(), Some(record.clone()), "the stored one is still served");
    assert_eq!(log.inconsistent_counter().get(), 1, "counted once");
    assert!(log.refusal(&world.app).unwrap().contains("another root"));
    assert!(matches!(log.covering(&world.app, 6).await, Err(TransparencyError::Unavailable(_))));

    // The same check before a signature, for a process that started before the disagreement.
    let fresh = world.log("o", 1);
    assert_eq!(fresh.sign_due().await.unwrap(), 0);
    assert_eq!(fresh.inconsistent_counter().get(), 1);

    // A new origin starts a new log over the same entries.
    let renamed = world.log("o2", 1);
    assert_eq!(renamed.check_at_start().await.unwrap(), 0);
    assert_eq!(renamed.sign_due().await.unwrap(), 1);
    assert_eq!(renamed.newest(&world.app).await.unwrap().unwrap().size, 8);
}

/// A restore renews the epoch: the restored history may lack events that checkpoints already
/// covered, so the origin is not continued even when the tree still matches.
#[tokio::test]
async fn a_renewed_epoch_refuses_the_old_origin_loudly() {
    let mut world = World::new().await;
    world.grow(2).await;
    let log = world.log("o", 1);
    assert_eq!(log.sign_due().await.unwrap(), 1);
    world.store.renew_epoch().await.unwrap();
    assert_eq!(log.sign_due().await.unwrap(), 0, "refused before any new event");
    world.grow(1).await;
    assert_eq!(log.sign_due().await.unwrap(), 0);
    assert!(log.refusal(&world.app).unwrap().contains("epoch"));
    assert_eq!(world.log("o", 1).check_at_start().await.unwrap(), 1, "and at the next start");
    let renamed = world.log("o-after-restore", 1);
    assert_eq!(renamed.sign_due().await.unwrap(), 1);
}

#[tokio::test]
async fn another_key_does_not_continue_an_origin() {
    let mut world = World::new().await;
    world.log("o", 1).sign_due().await.unwrap();
    world.grow(1).await;
    let rekeyed = world.log("o", 2);
    assert_eq!(rekeyed.sign_due().await.unwrap(), 0);
    assert!(rekeyed.refusal(&world.app).unwrap().contains("log key"));
}

#[tokio::test]
async fn a_lookup_needing_a_newer_checkpoint_signs_early() {
    let mut world = World::new().await;
    let log = world.log("o", 1);
    log.sign_due().await.unwrap();
    world.grow(5).await;
    let covering = log.covering(&world.app, 5).await.unwrap();
    assert_eq!(covering.size, 6);
    assert!(matches!(log.covering(&world.app, 6).await, Err(TransparencyError::Unavailable(_))));
    assert!(world.clock.now().timestamp_millis() >= covering.signed_at);
}
