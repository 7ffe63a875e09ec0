//! The storage conformance suite: every guarantee of the storage traits, on PostgreSQL, on SQLite
//! and on the in-memory store that the rules' unit tests use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails by panicking")]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cardinal_card::log::{EventKind, GENESIS_HASH, StoredEvent, verify_chain};
use cardinal_card::tlog;
use cardinal_server::domain::{AppId, CardId, CardsPerIdentity, Identity, KeyRole};
use cardinal_server::storage::memory::MemoryStore;
use cardinal_server::storage::sql::SqlStore;
use cardinal_server::storage::{
    ApiKeyRecord, AppRecord, CardsQuery, CheckpointRecord, EventDraft, EventsQuery, NewCard, Placement, PoolSettings,
    ReadFrom, Revocation, StorageError, Store, active_digest, connect, constraint,
};
use support::{Backend, TestDb};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sql(Backend),
    Memory,
}

/// Runs each listed `async fn name(kind: Kind)` on the three stores.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod every_store {
            $(
                mod $name {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() { super::super::$name(super::super::Kind::Sql(crate::support::Backend::Postgres)).await }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() { super::super::$name(super::super::Kind::Sql(crate::support::Backend::Sqlite)).await }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn memory() { super::super::$name(super::super::Kind::Memory).await }
                }
            )*
        }
    };
}

fn pool() -> PoolSettings {
    PoolSettings::simple(8, Duration::from_secs(5))
}

/// A fresh store (and, for the databases, what keeps it alive).
async fn store(kind: Kind) -> (Option<TestDb>, Arc<dyn Store>) {
    match kind {
        Kind::Memory => (None, Arc::new(MemoryStore::new())),
        Kind::Sql(backend) => {
            let db = TestDb::new(backend).await;
            let store = connect(&db.url, &pool()).await.unwrap();
            store.migrate().await.unwrap();
            (Some(db), store)
        }
    }
}

fn app_id(id: &str) -> AppId {
    AppId::parse(id).unwrap()
}

fn who(identity: &str) -> Identity {
    Identity::parse(identity).unwrap()
}

fn card_id(n: u8) -> CardId {
    format!("{n:02x}").repeat(32).parse().unwrap()
}

fn draft(kind: EventKind, card: Option<&CardId>) -> EventDraft {
    EventDraft {
        kind,
        at_ms: 1_700_000_000_000,
        card_id: card.cloned(),
        identity: Some(who("alice")),
        actor: "test".into(),
        detail: BTreeMap::new(),
    }
}

async fn app(store: &dyn Store, id: &str) {
    let record = AppRecord { id: app_id(id), cards_per_identity: CardsPerIdentity::Single, created_at: 1 };
    store.create_app(&record, draft(EventKind::AppCreated, None)).await.unwrap();
}

fn card(app: &str, id: &CardId, identity: &str) -> NewCard {
    NewCard {
        app_id: app_id(app),
        id: id.clone(),
        identity: who(identity),
        chain_index: 0,
        created_at: 1_700_000_000,
        published_at: 1_700_000_001,
        public_key: "PK".into(),
        raw: format!(r#"{{"content_snapshot":"{id}","signatures":[]}}"#),
    }
}

fn constraint_of(result: Result<(), StorageError>) -> &'static str {
    match result {
        Err(StorageError::Conflict { constraint }) => constraint,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn publish_root(
    store: &dyn Store,
    app: &str,
    id: &CardId,
    identity: &str,
    exclusive: bool,
) -> Result<(), StorageError> {
    let placement = Placement::Root { exclusive, max_live_chains: 3 };
    store.insert_card(&card(app, id, identity), &placement, &[draft(EventKind::CardPublished, Some(id))]).await
}

async fn rotate(
    store: &dyn Store,
    app: &str,
    chain: &CardId,
    previous: &CardId,
    id: &CardId,
) -> Result<(), StorageError> {
    let placement = Placement::Successor { chain_id: chain.clone(), previous_card_id: previous.clone() };
    let chain_index = store.find_card(&app_id(app), previous).await?.map_or(0, |card| card.chain_index + 1);
    store
        .insert_card(
            &NewCard { chain_index, ..card(app, id, "alice") },
            &placement,
            &[draft(EventKind::CardPublished, Some(id)), draft(EventKind::CardSuperseded, Some(previous))],
        )
        .await
}

async fn revoke(store: &dyn Store, app: &str, chain: &CardId, identity: &str, by: &str) -> bool {
    let revocation = Revocation {
        app_id: app_id(app),
        chain_id: chain.clone(),
        identity: who(identity),
        at: 10,
        reason: Some("lost".into()),
        by: by.into(),
    };
    store.revoke_chain(&revocation, draft(EventKind::ChainRevoked, Some(chain))).await.unwrap()
}

async fn migrations_apply_once_and_are_idempotent(kind: Kind) {
    let (_db, store) = store(kind).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.list_apps().await.unwrap(), vec![]);
}

async fn apps_and_keys_round_trip_and_conflict_by_name(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let again = AppRecord { id: app_id("a"), cards_per_identity: CardsPerIdentity::Multiple, created_at: 2 };
    assert_eq!(
        constraint_of(store.create_app(&again, draft(EventKind::AppCreated, None)).await),
        constraint::APPS_PKEY
    );
    assert_eq!(store.find_app(&app_id("a")).await.unwrap().unwrap().cards_per_identity, CardsPerIdentity::Single);
    assert_eq!(store.find_app(&app_id("nope")).await.unwrap(), None);

    let key = ApiKeyRecord {
        kid: "k1".into(),
        app_id: app_id("a"),
        role: KeyRole::Admin,
        public_key: vec![7; 32],
        created_at: 5,
        revoked_at: None,
    };
    store.insert_api_key(&key, draft(EventKind::KeyAdded, None)).await.unwrap();
    assert_eq!(
        constraint_of(store.insert_api_key(&key, draft(EventKind::KeyAdded, None)).await),
        constraint::API_KEYS_PKEY
    );
    let orphan = ApiKeyRecord { kid: "k2".into(), app_id: app_id("nope"), ..key.clone() };
    assert_eq!(
        constraint_of(store.insert_api_key(&orphan, draft(EventKind::KeyAdded, None)).await),
        constraint::FOREIGN_KEY,
        "a key needs its app"
    );
    assert_eq!(store.find_api_key("k1").await.unwrap(), Some(key.clone()));
    assert_eq!(store.list_api_keys(Some(&app_id("a"))).await.unwrap(), vec![key.clone()]);
    assert_eq!(store.list_api_keys(Some(&app_id("b"))).await.unwrap(), vec![]);
    assert_eq!(store.list_api_keys(None).await.unwrap(), vec![key.clone()]);
    assert!(store.revoke_api_key("k1", 9, draft(EventKind::KeyRevoked, None)).await.unwrap());
    assert!(
        !store.revoke_api_key("k1", 10, draft(EventKind::KeyRevoked, None)).await.unwrap(),
        "a second revoke changes nothing"
    );
    assert_eq!(store.find_api_key("k1").await.unwrap().unwrap().revoked_at, Some(9));
    assert!(matches!(
        store.revoke_api_key("zz", 9, draft(EventKind::KeyRevoked, None)).await,
        Err(StorageError::NotFound)
    ));
}

async fn cards_are_scoped_by_app_and_duplicates_conflict(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    app(store.as_ref(), "b").await;
    publish_root(store.as_ref(), "a", &card_id(1), "alice", false).await.unwrap();
    let found = store.find_card(&app_id("a"), &card_id(1)).await.unwrap().unwrap();
    assert_eq!((found.identity.as_str(), &found.chain_id, found.superseded_by.as_ref()), ("alice", &card_id(1), None));
    assert_eq!(found.raw, card("a", &card_id(1), "alice").raw, "raw JSON is stored verbatim");
    assert_eq!(store.find_card(&app_id("b"), &card_id(1)).await.unwrap(), None, "another app cannot see it");
    assert!(
        store
            .find_active_cards(CardsQuery {
                app_id: &app_id("b"),
                identities: &[who("alice")],
                max_bytes: usize::MAX,
                from: ReadFrom::Primary
            })
            .await
            .unwrap()
            .is_empty()
    );
    let dup = constraint_of(publish_root(store.as_ref(), "a", &card_id(1), "alice", false).await);
    assert!(dup == constraint::CHAINS_PKEY || dup == constraint::CARDS_PKEY, "{dup}");
    publish_root(store.as_ref(), "b", &card_id(1), "alice", false).await.unwrap();
}

async fn exclusive_chains_allow_one_live_chain_per_identity(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    publish_root(store.as_ref(), "a", &card_id(1), "alice", true).await.unwrap();
    assert_eq!(
        constraint_of(publish_root(store.as_ref(), "a", &card_id(2), "alice", true).await),
        constraint::CHAINS_SINGLE_ACTIVE
    );
    publish_root(store.as_ref(), "a", &card_id(3), "bob", true).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(4), "carol", false).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(5), "carol", false).await.unwrap();
    assert!(revoke(store.as_ref(), "a", &card_id(1), "alice", "user:alice").await);
    publish_root(store.as_ref(), "a", &card_id(2), "alice", true).await.expect("a revoked chain frees the identity");
}

/// Non-exclusive chains are capped by `max_live_chains` (3 here); a revoked one frees a place.
async fn live_non_exclusive_chains_are_capped(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    for n in 1..=3 {
        publish_root(store.as_ref(), "a", &card_id(n), "carol", false).await.unwrap();
    }
    assert_eq!(
        constraint_of(publish_root(store.as_ref(), "a", &card_id(4), "carol", false).await),
        constraint::CHAINS_PER_IDENTITY
    );
    assert_eq!(store.find_card(&app_id("a"), &card_id(4)).await.unwrap(), None, "nothing of it was written");
    assert!(revoke(store.as_ref(), "a", &card_id(2), "carol", "user:carol").await);
    publish_root(store.as_ref(), "a", &card_id(4), "carol", false).await.unwrap();
}

async fn rotation_moves_the_head_once_and_never_into_a_revoked_chain(kind: Kind) {
    let (_db, store) = store(kind).await;
    let a = app_id("a");
    app(store.as_ref(), "a").await;
    publish_root(store.as_ref(), "a", &card_id(1), "alice", true).await.unwrap();
    rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(2)).await.unwrap();
    assert_eq!(
        constraint_of(rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(3)).await),
        constraint::CHAIN_HEAD_MOVED
    );
    assert_eq!(store.find_card(&a, &card_id(3)).await.unwrap(), None, "a refused rotation leaves nothing behind");
    let old = store.find_card(&a, &card_id(1)).await.unwrap().unwrap();
    assert_eq!(old.superseded_by, Some(card_id(2)));
    let new = store.find_card(&a, &card_id(2)).await.unwrap().unwrap();
    assert_eq!((&new.chain_id, new.previous_card_id.as_ref(), new.chain_index), (&card_id(1), Some(&card_id(1)), 1));

    let active = store
        .find_active_cards(CardsQuery {
            app_id: &a,
            identities: &[who("alice")],
            max_bytes: usize::MAX,
            from: ReadFrom::Primary,
        })
        .await
        .unwrap();
    assert_eq!(active.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![card_id(2)]);
    let chain = store
        .find_unrevoked_chain_cards(
            CardsQuery { app_id: &a, identities: &[who("alice")], max_bytes: usize::MAX, from: ReadFrom::Primary },
            i64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(chain.len(), 2);
    let newest = store
        .find_unrevoked_chain_cards(
            CardsQuery { app_id: &a, identities: &[who("alice")], max_bytes: usize::MAX, from: ReadFrom::Primary },
            1,
        )
        .await
        .unwrap();
    assert_eq!(newest.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![card_id(2)], "per_chain = 1: the head");

    assert!(revoke(store.as_ref(), "a", &card_id(1), "alice", "admin:root").await);
    assert!(!revoke(store.as_ref(), "a", &card_id(1), "alice", "admin:root").await, "a second revoke changes nothing");
    assert_eq!(
        constraint_of(rotate(store.as_ref(), "a", &card_id(1), &card_id(2), &card_id(4)).await),
        constraint::CHAIN_HEAD_MOVED
    );
    assert!(
        store
            .find_active_cards(CardsQuery {
                app_id: &a,
                identities: &[who("alice")],
                max_bytes: usize::MAX,
                from: ReadFrom::Primary
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .find_unrevoked_chain_cards(
                CardsQuery { app_id: &a, identities: &[who("alice")], max_bytes: usize::MAX, from: ReadFrom::Primary },
                i64::MAX
            )
            .await
            .unwrap()
            .is_empty()
    );
    let revoked = store.find_card(&a, &card_id(1)).await.unwrap().unwrap();
    assert_eq!((revoked.revoked_at, revoked.revoked_by.as_deref()), (Some(10), Some("admin:root")));
}

/// The identities' counters, as the store reads them.
async fn versions_of(store: &dyn Store, app_id: &AppId, ids: &[Identity]) -> Vec<(Identity, i64)> {
    store.identity_states(app_id, ids).await.unwrap().into_iter().map(|(id, state)| (id, state.version)).collect()
}

async fn every_change_bumps_the_identity_version(kind: Kind) {
    let (_db, store) = store(kind).await;
    let a = app_id("a");
    app(store.as_ref(), "a").await;
    let ids = vec![who("alice"), who("bob")];
    assert_eq!(versions_of(store.as_ref(), &a, &ids).await, vec![]);
    publish_root(store.as_ref(), "a", &card_id(1), "alice", true).await.unwrap();
    assert_eq!(versions_of(store.as_ref(), &a, &ids).await, vec![(who("alice"), 1)]);
    rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(2)).await.unwrap();
    assert!(revoke(store.as_ref(), "a", &card_id(1), "alice", "x").await);
    assert!(!revoke(store.as_ref(), "a", &card_id(1), "alice", "x").await);
    assert_eq!(versions_of(store.as_ref(), &a, &ids).await, vec![(who("alice"), 3)], "a no-op revoke does not bump");
    assert_eq!(
        constraint_of(rotate(store.as_ref(), "a", &card_id(1), &card_id(2), &card_id(3)).await),
        constraint::CHAIN_HEAD_MOVED
    );
    assert_eq!(versions_of(store.as_ref(), &a, &ids).await, vec![(who("alice"), 3)], "a refused write does not bump");
}

/// Every change leaves the digest of exactly the identity's active cards: a root, a rotation
/// (the successor replaces its predecessor), a second chain, a revocation; a refused write
/// leaves it as it was.
async fn every_change_keeps_the_digest_of_the_active_cards(kind: Kind) {
    let (_db, store) = store(kind).await;
    let a = app_id("a");
    app(store.as_ref(), "a").await;
    let digest = |store: Arc<dyn Store>| {
        let a = a.clone();
        async move {
            let states = store.identity_states(&a, &[who("alice")]).await.unwrap();
            assert_eq!(states.len(), 1);
            states[0].1.digest.expect("a digest")
        }
    };
    publish_root(store.as_ref(), "a", &card_id(1), "alice", false).await.unwrap();
    assert_eq!(digest(store.clone()).await, active_digest([&card_id(1)]));
    rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(2)).await.unwrap();
    assert_eq!(digest(store.clone()).await, active_digest([&card_id(2)]));
    publish_root(store.as_ref(), "a", &card_id(3), "alice", false).await.unwrap();
    assert_eq!(digest(store.clone()).await, active_digest([&card_id(2), &card_id(3)]));
    assert_eq!(
        constraint_of(rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(4)).await),
        constraint::CHAIN_HEAD_MOVED
    );
    assert_eq!(digest(store.clone()).await, active_digest([&card_id(2), &card_id(3)]));
    assert!(revoke(store.as_ref(), "a", &card_id(1), "alice", "x").await);
    assert_eq!(digest(store.clone()).await, active_digest([&card_id(3)]));
    assert!(revoke(store.as_ref(), "a", &card_id(3), "alice", "x").await);
    assert_eq!(digest(store.clone()).await, active_digest([]), "nothing active is the empty digest");
}

/// The one-statement lookup agrees with the states and the active cards read separately:
/// superseded cards and revoked chains are left out, identities never changed are absent,
/// an identity whose only chain is revoked keeps its counter, and other apps are invisible.
async fn a_lookup_reads_the_counters_and_the_active_cards_together(kind: Kind) {
    let (_db, store) = store(kind).await;
    let a = app_id("a");
    app(store.as_ref(), "a").await;
    app(store.as_ref(), "b").await;
    publish_root(store.as_ref(), "a", &card_id(1), "alice", false).await.unwrap();
    rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(2)).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(3), "alice", false).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(4), "bob", true).await.unwrap();
    assert!(revoke(store.as_ref(), "a", &card_id(4), "bob", "x").await);
    publish_root(store.as_ref(), "b", &card_id(5), "carol", true).await.unwrap();

    let ids: Vec<Identity> = ["alice", "bob", "carol", "dave"].into_iter().map(who).collect();
    let read = store
        .lookup_active(CardsQuery { app_id: &a, identities: &ids, max_bytes: usize::MAX, from: ReadFrom::Primary })
        .await
        .unwrap();
    let mut states = read.states.clone();
    states.sort_by(|x, y| x.0.cmp(&y.0));
    let mut counted = store.identity_states(&a, &ids).await.unwrap();
    counted.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(states, counted);
    let versions: Vec<(Identity, i64)> = states.iter().map(|(id, state)| (id.clone(), state.version)).collect();
    assert_eq!(versions, vec![(who("alice"), 3), (who("bob"), 2)]);
    assert_eq!(states[0].1.digest, Some(active_digest([&card_id(2), &card_id(3)])));
    assert_eq!(states[1].1.digest, Some(active_digest([])));
    let separately = store
        .find_active_cards(CardsQuery { app_id: &a, identities: &ids, max_bytes: usize::MAX, from: ReadFrom::Primary })
        .await
        .unwrap();
    assert_eq!(read.cards, separately);
    let mut active: Vec<CardId> = read.cards.iter().map(|c| c.id.clone()).collect();
    active.sort();
    assert_eq!(active, vec![card_id(2), card_id(3)]);
    assert_eq!(
        store
            .lookup_active(CardsQuery {
                app_id: &a,
                identities: &[who("dave")],
                max_bytes: usize::MAX,
                from: ReadFrom::Primary
            })
            .await
            .unwrap(),
        Default::default()
    );
}

/// Reads that could be large refuse, whole, once their cards exceed the byte budget.
async fn reads_refuse_answers_over_their_byte_budget(kind: Kind) {
    let (_db, store) = store(kind).await;
    let a = app_id("a");
    app(store.as_ref(), "a").await;
    publish_root(store.as_ref(), "a", &card_id(1), "alice", true).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(2), "bob", true).await.unwrap();
    let one = card("a", &card_id(1), "alice").raw.len();
    let both = [who("alice"), who("bob")];
    assert_eq!(
        store
            .find_active_cards(CardsQuery {
                app_id: &a,
                identities: &both,
                max_bytes: 2 * one,
                from: ReadFrom::Primary
            })
            .await
            .unwrap()
            .len(),
        2,
        "exactly the budget"
    );
    assert!(matches!(
        store
            .find_active_cards(CardsQuery {
                app_id: &a,
                identities: &both,
                max_bytes: 2 * one - 1,
                from: ReadFrom::Primary
            })
            .await,
        Err(StorageError::TooLarge { .. })
    ));
    assert!(matches!(
        store
            .lookup_active(CardsQuery { app_id: &a, identities: &both, max_bytes: one, from: ReadFrom::Primary })
            .await,
        Err(StorageError::TooLarge { .. })
    ));
    assert!(matches!(
        store
            .find_unrevoked_chain_cards(
                CardsQuery { app_id: &a, identities: &both, max_bytes: one, from: ReadFrom::Primary },
                8
            )
            .await,
        Err(StorageError::TooLarge { .. })
    ));
}

async fn events_are_gap_free_hash_chained_and_paged(kind: Kind) {
    let (_db, store) = store(kind).await;
    let a = app_id("a");
    app(store.as_ref(), "a").await;
    app(store.as_ref(), "b").await;
    for n in 1..=5u8 {
        publish_root(store.as_ref(), "a", &card_id(n), &format!("user{n}"), true).await.unwrap();
    }
    assert_eq!(
        constraint_of(publish_root(store.as_ref(), "a", &card_id(9), "user1", true).await),
        constraint::CHAINS_SINGLE_ACTIVE,
        "a refused write logs nothing"
    );
    rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(6)).await.unwrap();
    let events =
        store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100, max_bytes: usize::MAX }).await.unwrap();
    assert_eq!(events.len(), 1 + 5 + 2);
    assert_log_verifies(&events);
    let page = store.list_events(EventsQuery { app_id: &a, after: 2, limit: 2, max_bytes: usize::MAX }).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    let first = events[0].body.len();
    let short =
        store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100, max_bytes: first + 1 }).await.unwrap();
    assert_eq!(short.len(), 1, "a page ends before its byte budget");
    assert_eq!(
        store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100, max_bytes: 1 }).await.unwrap().len(),
        1,
        "but holds at least one event"
    );
    assert_eq!(
        store
            .list_events(EventsQuery { app_id: &app_id("b"), after: 0, limit: 100, max_bytes: usize::MAX })
            .await
            .unwrap()
            .len(),
        1,
        "each app has its own log"
    );
}

fn assert_log_verifies(events: &[cardinal_server::storage::EventRow]) {
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=events.len() as i64).collect::<Vec<_>>());
    verify_chain(
        0,
        GENESIS_HASH,
        events.iter().map(|e| StoredEvent { body: e.body.as_bytes(), prev_hash: &e.prev_hash, hash: &e.hash }),
    )
    .unwrap();
}

/// The SQL store and the memory store seal the same events into the same bytes and hashes.
async fn every_store_writes_the_same_log() {
    let (_db, sqlite) = store(Kind::Sql(Backend::Sqlite)).await;
    let (_, memory) = store(Kind::Memory).await;
    for store in [&sqlite, &memory] {
        app(store.as_ref(), "a").await;
        publish_root(store.as_ref(), "a", &card_id(1), "alice", true).await.unwrap();
        rotate(store.as_ref(), "a", &card_id(1), &card_id(1), &card_id(2)).await.unwrap();
        assert!(revoke(store.as_ref(), "a", &card_id(1), "alice", "admin:root").await);
    }
    let read = |store: Arc<dyn Store>| async move {
        store
            .list_events(EventsQuery { app_id: &app_id("a"), after: 0, limit: 100, max_bytes: usize::MAX })
            .await
            .unwrap()
    };
    assert_eq!(read(sqlite).await, read(memory).await);
}

#[tokio::test]
async fn the_sql_and_memory_stores_write_the_same_log() {
    every_store_writes_the_same_log().await;
}

/// Two processes on one database each sequence their own writes; the app row's lock keeps
/// their rounds apart, so the app still has one gap-free chain with every write in it once.
async fn two_stores_sharing_a_database_keep_one_gap_free_log(backend: Backend) {
    let (db, first) = store(Kind::Sql(backend)).await;
    let db = db.unwrap();
    let second = connect(&db.url, &pool()).await.unwrap();
    app(first.as_ref(), "a").await;
    let mut writers = Vec::new();
    for n in 0..40u8 {
        let store = if n % 2 == 0 { first.clone() } else { second.clone() };
        writers.push(tokio::spawn(async move {
            publish_root(store.as_ref(), "a", &card_id(n + 1), &format!("user{n}"), true).await.unwrap();
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let events = first
        .list_events(EventsQuery { app_id: &app_id("a"), after: 0, limit: 1000, max_bytes: usize::MAX })
        .await
        .unwrap();
    assert_log_verifies(&events);
    let mut published: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.body).ok())
        .filter(|body| body["kind"] == "card_published")
        .map(|body| body["card_id"].as_str().unwrap().to_owned())
        .collect();
    published.sort();
    let expected: Vec<String> = (1..=40u8).map(|n| card_id(n).to_string()).collect();
    assert_eq!(published, expected, "every write once, none lost");
    assert_eq!(second.sequence_queued().await.unwrap(), 0, "nothing was left queued");
    assert_tree_covers_the_log(first.as_ref(), "a").await;
}

/// A crash between a write's commit and its round leaves its events queued: the next sweep
/// moves them into the log, in queue order, and a second sweep finds nothing.
async fn events_left_queued_by_a_crash_are_sequenced_by_the_next_sweep(backend: Backend) {
    let (db, store) = store(Kind::Sql(backend)).await;
    let db = db.unwrap();
    app(store.as_ref(), "a").await;
    let c1 = card_id(0xc1);
    let queue = sqlx::AssertSqlSafe(format!(
        "INSERT INTO pending_events (app_id, kind, at_ms, card_id, identity, actor, detail) \
         VALUES ('a', 'card_published', 5, '{c1}', 'alice', 'user:alice', '{{}}'), \
                ('a', 'chain_revoked', 6, '{c1}', 'alice', 'admin:root', '{{\"reason\":\"lost\"}}')"
    ));
    match backend {
        Backend::Postgres => {
            sqlx::query(queue).execute(&sqlx::PgPool::connect(&db.url).await.unwrap()).await.unwrap();
        }
        Backend::Sqlite => {
            sqlx::query(queue).execute(&sqlx::SqlitePool::connect(&db.url).await.unwrap()).await.unwrap();
        }
    }
    let a = app_id("a");
    assert_eq!(
        store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100, max_bytes: usize::MAX }).await.unwrap().len(),
        1,
        "queued events are not in the log yet"
    );
    assert_eq!(store.sequence_queued().await.unwrap(), 2);
    assert_eq!(store.sequence_queued().await.unwrap(), 0);
    let events =
        store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100, max_bytes: usize::MAX }).await.unwrap();
    assert_log_verifies(&events);
    let bodies: Vec<serde_json::Value> = events.iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
    assert_eq!(
        bodies.iter().map(|b| b["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["app_created", "card_published", "chain_revoked"]
    );
    assert_eq!(bodies[2]["detail"]["reason"], "lost");
    assert_eq!(bodies[2]["actor"], "admin:root");
    assert_tree_covers_the_log(store.as_ref(), "a").await;
}

/// The app's tree covers every event of its log, and nothing else: its size is the log's, its
/// root (from the stored hashes) is the root of the event bodies, and every event is proved in
/// it. Returns the root.
async fn assert_tree_covers_the_log(store: &dyn Store, app: &str) -> tlog::Hash {
    let a = app_id(app);
    let events =
        store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100_000, max_bytes: usize::MAX }).await.unwrap();
    let size = events.len() as u64;
    assert_eq!(store.tree_size(&a).await.unwrap(), size, "the tree covers the log");
    let entries = store.entries(&a, 0, size).await.unwrap();
    assert_eq!(entries, events.iter().map(|e| e.body.clone()).collect::<Vec<_>>(), "entry i is event i + 1");
    let mut builder = tlog::RootBuilder::default();
    entries.iter().for_each(|entry| builder.push(entry.as_bytes()));
    let all: Vec<u64> = (0..tlog::stored_hash_count(size)).collect();
    let hashes = store.tree_hashes(&a, &all).await.unwrap();
    assert_eq!(hashes.0.len() as u64, tlog::stored_hash_count(size), "every stored hash, no more");
    let root = tlog::root(size, &store.tree_hashes(&a, &tlog::root_indexes(size)).await.unwrap()).unwrap();
    assert_eq!(root, builder.root(), "the stored tree's root is the entries' root");
    for (index, entry) in entries.iter().enumerate() {
        let index = index as u64;
        let needed = store.tree_hashes(&a, &tlog::inclusion_indexes(index, size)).await.unwrap();
        let proof = tlog::inclusion_proof(index, size, &needed).unwrap();
        tlog::verify_inclusion(&proof, size, root, index, tlog::leaf_hash(entry.as_bytes())).unwrap();
    }
    root
}

async fn the_transparency_tree_grows_with_every_round(kind: Kind) {
    let (_db, store) = store(kind).await;
    let s = store.as_ref();
    app(s, "a").await;
    app(s, "b").await;
    assert_tree_covers_the_log(s, "a").await;
    for n in 1..=9u8 {
        publish_root(s, "a", &card_id(n), &format!("user{n}"), true).await.unwrap();
        assert_tree_covers_the_log(s, "a").await;
    }
    rotate(s, "a", &card_id(1), &card_id(1), &card_id(20)).await.unwrap();
    assert!(revoke(s, "a", &card_id(2), "user2", "x").await);
    publish_root(s, "b", &card_id(1), "alice", true).await.unwrap();
    assert_tree_covers_the_log(s, "a").await;
    assert_tree_covers_the_log(s, "b").await;
    assert_eq!(store.tree_size(&app_id("nope")).await.unwrap(), 0);
}

fn checkpoint(app: &str, origin: &str, size: u64, root: u8) -> CheckpointRecord {
    CheckpointRecord {
        app_id: app_id(app),
        origin: origin.into(),
        size,
        root: [root; 32],
        note: format!("{origin}\n{size}\n{root}\n\n— sig\n"),
        epoch: "e".into(),
        signed_at: 5,
    }
}

async fn a_checkpoint_size_keeps_its_first_root(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let a = app_id("a");
    assert_eq!(store.newest_checkpoint(&a, "o/a").await.unwrap(), None);
    let first = checkpoint("a", "o/a", 3, 1);
    assert_eq!(store.insert_checkpoint(&first).await.unwrap(), first);
    assert_eq!(store.insert_checkpoint(&first).await.unwrap(), first, "a duplicate is a no-op");
    let fork = checkpoint("a", "o/a", 3, 2);
    assert_eq!(store.insert_checkpoint(&fork).await.unwrap(), first, "never two roots for one size");
    let later = checkpoint("a", "o/a", 12, 3);
    store.insert_checkpoint(&later).await.unwrap();
    let other_origin = checkpoint("a", "p/a", 40, 4);
    store.insert_checkpoint(&other_origin).await.unwrap();
    assert_eq!(store.newest_checkpoint(&a, "o/a").await.unwrap(), Some(later), "the largest size, by origin");
    assert_eq!(store.newest_checkpoint(&a, "p/a").await.unwrap(), Some(other_origin));
    assert!(store.insert_checkpoint(&checkpoint("nope", "o/nope", 1, 1)).await.is_err(), "a checkpoint needs its app");
}

async fn cosignatures_are_kept_once_per_witness_and_size(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let a = app_id("a");
    assert_eq!(store.last_cosigned(&a, "o/a", "w1").await.unwrap(), None);
    store.insert_cosignature(&a, "o/a", 3, "w1", "— w1 AAAA\n").await.unwrap();
    store.insert_cosignature(&a, "o/a", 3, "w1", "— w1 BBBB\n").await.unwrap();
    store.insert_cosignature(&a, "o/a", 3, "w2", "— w2 CCCC\n").await.unwrap();
    store.insert_cosignature(&a, "o/a", 9, "w1", "— w1 DDDD\n").await.unwrap();
    store.insert_cosignature(&a, "p/a", 12, "w1", "— w1 EEEE\n").await.unwrap();
    assert_eq!(
        store.cosignatures(&a, "o/a", 3).await.unwrap(),
        vec![("w1".to_owned(), "— w1 AAAA\n".to_owned()), ("w2".to_owned(), "— w2 CCCC\n".to_owned())],
        "the first line of a witness for a size is kept"
    );
    assert_eq!(store.last_cosigned(&a, "o/a", "w1").await.unwrap(), Some(9));
    assert_eq!(store.last_cosigned(&a, "o/a", "w2").await.unwrap(), Some(3));
    assert_eq!(store.last_cosigned(&a, "p/a", "w2").await.unwrap(), None, "by origin");
    assert!(store.insert_cosignature(&app_id("nope"), "o", 1, "w1", "x").await.is_err(), "needs its app");
}

/// Events written before the tree existed (or a tree lost) are hashed by the next migrate,
/// and a round that finds the tree behind catches it up before it appends.
async fn migrate_and_rounds_complete_a_tree_that_is_behind(backend: Backend) {
    let (db, store) = store(Kind::Sql(backend)).await;
    let db = db.unwrap();
    let s = store.as_ref();
    app(s, "a").await;
    for n in 1..=6u8 {
        publish_root(s, "a", &card_id(n), &format!("user{n}"), true).await.unwrap();
    }
    let root = assert_tree_covers_the_log(s, "a").await;
    raw(&db, backend, "DELETE FROM tlog_hashes").await;
    raw(&db, backend, "UPDATE apps SET tlog_size = 0").await;
    assert_eq!(store.tree_size(&app_id("a")).await.unwrap(), 0);
    store.migrate().await.unwrap();
    assert_eq!(assert_tree_covers_the_log(s, "a").await, root, "the same tree again");
    let keep = tlog::stored_hash_count(3);
    raw(&db, backend, &format!("DELETE FROM tlog_hashes WHERE idx >= {keep}")).await;
    raw(&db, backend, "UPDATE apps SET tlog_size = 3").await;
    publish_root(s, "a", &card_id(7), "user7", true).await.unwrap();
    assert_tree_covers_the_log(s, "a").await;
}

/// Runs one statement on the test database with a connection of its own.
async fn raw(db: &TestDb, backend: Backend, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Postgres => {
            sqlx::query(sql).execute(&sqlx::PgPool::connect(&db.url).await.unwrap()).await.unwrap();
        }
        Backend::Sqlite => {
            sqlx::query(sql).execute(&sqlx::SqlitePool::connect(&db.url).await.unwrap()).await.unwrap();
        }
    }
}

/// Rows an older version wrote have no digest: the next migrate computes exactly the digest a
/// write would have kept, and leaves rows that have one alone.
async fn migrate_completes_digests_that_older_versions_did_not_write(backend: Backend) {
    let (db, store) = store(Kind::Sql(backend)).await;
    let db = db.unwrap();
    app(store.as_ref(), "a").await;
    publish_root(store.as_ref(), "a", &card_id(1), "alice", false).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(2), "alice", false).await.unwrap();
    publish_root(store.as_ref(), "a", &card_id(3), "bob", false).await.unwrap();
    assert!(revoke(store.as_ref(), "a", &card_id(3), "bob", "x").await);
    let ids = [who("alice"), who("bob")];
    let mut written = store.identity_states(&app_id("a"), &ids).await.unwrap();
    written.sort_by(|x, y| x.0.cmp(&y.0));
    raw(&db, backend, "UPDATE identity_versions SET digest = NULL").await;
    let cleared = store.identity_states(&app_id("a"), &ids).await.unwrap();
    assert!(cleared.iter().all(|(_, state)| state.digest.is_none()), "{cleared:?}");
    store.migrate().await.unwrap();
    let mut completed = store.identity_states(&app_id("a"), &ids).await.unwrap();
    completed.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(completed, written);
    assert_eq!(completed[0].1.digest, Some(active_digest([&card_id(1), &card_id(2)])));
}

/// A database gets an epoch once: migrating again keeps it, renewing changes it for good.
async fn the_epoch_is_kept_by_migrations_and_changed_by_renewal(backend: Backend) {
    let (_db, store) = store(Kind::Sql(backend)).await;
    let first = store.epoch().await.unwrap();
    assert_eq!(first.len(), 32, "{first}");
    store.migrate().await.unwrap();
    assert_eq!(store.epoch().await.unwrap(), first);
    let renewed = store.renew_epoch().await.unwrap();
    assert_ne!(renewed, first);
    store.migrate().await.unwrap();
    assert_eq!(store.epoch().await.unwrap(), renewed);
}

/// Configured for a pooler, a connection sends no startup options and names no statement that
/// could outlive its transaction: nothing stays prepared on the server however much it ran.
async fn postgres_connections_for_a_pooler_prepare_nothing_and_send_no_options() {
    let db = TestDb::new(Backend::Postgres).await;
    let settings = PoolSettings { behind_pooler: true, ..PoolSettings::simple(1, Duration::from_secs(5)) };
    let sql = SqlStore::connect(&db.url, &settings).await.unwrap();
    let pool = sql.pg_pool().unwrap().clone();
    let store: Arc<dyn Store> = Arc::new(sql);
    store.migrate().await.unwrap();
    app(store.as_ref(), "a").await;
    for n in 1..=3 {
        publish_root(store.as_ref(), "a", &card_id(n), &format!("user{n}"), true).await.unwrap();
        store
            .lookup_active(CardsQuery {
                app_id: &app_id("a"),
                identities: &[who("user1")],
                max_bytes: 1 << 20,
                from: ReadFrom::Primary,
            })
            .await
            .unwrap();
    }
    let prepared: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM pg_prepared_statements").persistent(false).fetch_one(&pool).await.unwrap();
    assert_eq!(prepared.0, 0, "a named statement would collide on a pooler's shared connections");
    let mode: (String,) = sqlx::query_as("SHOW plan_cache_mode").persistent(false).fetch_one(&pool).await.unwrap();
    assert_eq!(mode.0, "auto", "no startup option was sent");
}

/// Cardinal's connections use generic plans (so no statement is re-planned on every execution,
/// whatever its first executions were), and options given in the URL still apply.
async fn postgres_connections_use_generic_plans_and_keep_url_options() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = format!("{}?options=-c%20statement_timeout%3D4321", db.url);
    let store = SqlStore::connect(&url, &pool()).await.unwrap();
    let pool = store.pg_pool().unwrap().clone();
    let setting = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let row: (String,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW {name}"))).fetch_one(&pool).await.unwrap();
            row.0
        }
    };
    assert_eq!(setting("plan_cache_mode").await, "force_generic_plan");
    assert_eq!(setting("statement_timeout").await, "4321ms");
}

async fn an_unreachable_postgres_is_unavailable_not_an_error() {
    let settings = PoolSettings::simple(2, Duration::from_millis(500));
    let store = connect("postgres://postgres@127.0.0.1:1/nothing", &settings).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(store.ping().await, Err(StorageError::Unavailable(_))));
    assert!(matches!(store.find_card(&app_id("a"), &card_id(1)).await, Err(StorageError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the acquire timeout");
}

#[tokio::test]
async fn postgres_unreachable_maps_to_unavailable() {
    an_unreachable_postgres_is_unavailable_not_an_error().await;
}

#[tokio::test]
async fn postgres_plans_generically() {
    postgres_connections_use_generic_plans_and_keep_url_options().await;
}

#[tokio::test]
async fn postgres_behind_a_pooler_prepares_nothing() {
    postgres_connections_for_a_pooler_prepare_nothing_and_send_no_options().await;
}

on_every_store!(
    migrations_apply_once_and_are_idempotent,
    apps_and_keys_round_trip_and_conflict_by_name,
    cards_are_scoped_by_app_and_duplicates_conflict,
    exclusive_chains_allow_one_live_chain_per_identity,
    live_non_exclusive_chains_are_capped,
    rotation_moves_the_head_once_and_never_into_a_revoked_chain,
    every_change_bumps_the_identity_version,
    every_change_keeps_the_digest_of_the_active_cards,
    a_lookup_reads_the_counters_and_the_active_cards_together,
    reads_refuse_answers_over_their_byte_budget,
    events_are_gap_free_hash_chained_and_paged,
    the_transparency_tree_grows_with_every_round,
    a_checkpoint_size_keeps_its_first_root,
    cosignatures_are_kept_once_per_witness_and_size,
);

on_both_backends!(
    two_stores_sharing_a_database_keep_one_gap_free_log,
    events_left_queued_by_a_crash_are_sequenced_by_the_next_sweep,
    migrate_completes_digests_that_older_versions_did_not_write,
    the_epoch_is_kept_by_migrations_and_changed_by_renewal,
    migrate_and_rounds_complete_a_tree_that_is_behind,
);

mod keyknox;
