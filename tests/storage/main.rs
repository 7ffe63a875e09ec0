//! The storage conformance suite: every guarantee of `CardStore`, on PostgreSQL and on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails by panicking")]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cardinal_card::log::{EventKind, GENESIS_HASH, StoredEvent, verify_chain};
use cardinal_server::storage::{
    ApiKeyRecord, AppRecord, CardStore, CardsPerIdentity, EventDraft, KeyRole, NewCard, Placement, PoolSettings,
    Revocation, StorageError, connect,
};
use support::{Backend, TestDb};

fn pool() -> PoolSettings {
    PoolSettings { max_connections: 8, min_connections: 0, acquire_timeout: Duration::from_secs(5) }
}

async fn store(backend: Backend) -> (TestDb, Arc<dyn CardStore>) {
    let db = TestDb::new(backend).await;
    let store = connect(&db.url, &pool()).await.unwrap();
    store.migrate().await.unwrap();
    (db, store)
}

fn draft(kind: EventKind, card: Option<&str>) -> EventDraft {
    EventDraft {
        kind,
        at_ms: 1_700_000_000_000,
        card_id: card.map(str::to_owned),
        identity: Some("alice".into()),
        actor: "test".into(),
        detail: BTreeMap::new(),
    }
}

async fn app(store: &dyn CardStore, id: &str) {
    let record = AppRecord { id: id.into(), cards_per_identity: CardsPerIdentity::Single, created_at: 1 };
    store.create_app(&record, draft(EventKind::AppCreated, None)).await.unwrap();
}

fn card(app: &str, id: &str, identity: &str) -> NewCard {
    NewCard {
        app_id: app.into(),
        id: id.into(),
        identity: identity.into(),
        chain_index: 0,
        created_at: 1_700_000_000,
        published_at: 1_700_000_001,
        public_key: "PK".into(),
        raw: format!(r#"{{"content_snapshot":"{id}","signatures":[]}}"#),
    }
}

fn hex_id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn constraint_of(result: Result<(), StorageError>) -> String {
    match result {
        Err(StorageError::Conflict { constraint }) => constraint,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn publish_root(
    store: &dyn CardStore,
    app: &str,
    id: &str,
    identity: &str,
    exclusive: bool,
) -> Result<(), StorageError> {
    store
        .insert_card(
            &card(app, id, identity),
            &Placement::Root { exclusive, max_live_chains: 16 },
            &[draft(EventKind::CardPublished, Some(id))],
        )
        .await
}

async fn rotate(store: &dyn CardStore, app: &str, chain: &str, previous: &str, id: &str) -> Result<(), StorageError> {
    let placement = Placement::Successor { chain_id: chain.into(), previous_card_id: previous.into() };
    let chain_index = store.find_card(app, previous).await?.map_or(0, |card| card.chain_index + 1);
    store
        .insert_card(
            &NewCard { chain_index, ..card(app, id, "alice") },
            &placement,
            &[draft(EventKind::CardPublished, Some(id)), draft(EventKind::CardSuperseded, Some(previous))],
        )
        .await
}

async fn migrations_apply_once_and_are_idempotent(backend: Backend) {
    let (_db, store) = store(backend).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.list_apps().await.unwrap(), vec![]);
}

async fn apps_and_keys_round_trip_and_conflict_by_name(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    let again = AppRecord { id: "a".into(), cards_per_identity: CardsPerIdentity::Multiple, created_at: 2 };
    assert_eq!(constraint_of(store.create_app(&again, draft(EventKind::AppCreated, None)).await), "apps_pkey");
    assert_eq!(store.find_app("a").await.unwrap().unwrap().cards_per_identity, CardsPerIdentity::Single);
    assert_eq!(store.find_app("nope").await.unwrap(), None);

    let key = ApiKeyRecord {
        kid: "k1".into(),
        app_id: "a".into(),
        role: KeyRole::Admin,
        public_key: vec![7; 32],
        created_at: 5,
        revoked_at: None,
    };
    store.insert_api_key(&key, draft(EventKind::KeyAdded, None)).await.unwrap();
    assert_eq!(constraint_of(store.insert_api_key(&key, draft(EventKind::KeyAdded, None)).await), "api_keys_pkey");
    assert_eq!(store.find_api_key("k1").await.unwrap(), Some(key.clone()));
    assert_eq!(store.list_api_keys(Some("a")).await.unwrap(), vec![key.clone()]);
    assert_eq!(store.list_api_keys(Some("b")).await.unwrap(), vec![]);
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

async fn cards_are_scoped_by_app_and_duplicates_conflict(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    app(store.as_ref(), "b").await;
    publish_root(store.as_ref(), "a", &hex_id(1), "alice", false).await.unwrap();
    let found = store.find_card("a", &hex_id(1)).await.unwrap().unwrap();
    assert_eq!(
        (found.identity.as_str(), found.chain_id.as_str(), found.superseded_by.as_deref()),
        ("alice", hex_id(1).as_str(), None)
    );
    assert_eq!(found.raw, card("a", &hex_id(1), "alice").raw, "raw JSON is stored verbatim");
    assert_eq!(store.find_card("b", &hex_id(1)).await.unwrap(), None, "another app cannot see it");
    assert!(store.find_active_cards("b", &["alice".into()], usize::MAX).await.unwrap().is_empty());
    let dup = constraint_of(publish_root(store.as_ref(), "a", &hex_id(1), "alice", false).await);
    assert!(dup == "chains_pkey" || dup == "cards_pkey", "{dup}");
    publish_root(store.as_ref(), "b", &hex_id(1), "alice", false).await.unwrap();
}

async fn exclusive_chains_allow_one_live_chain_per_identity(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    publish_root(store.as_ref(), "a", &hex_id(1), "alice", true).await.unwrap();
    assert_eq!(
        constraint_of(publish_root(store.as_ref(), "a", &hex_id(2), "alice", true).await),
        "chains_single_active"
    );
    publish_root(store.as_ref(), "a", &hex_id(3), "bob", true).await.unwrap();
    publish_root(store.as_ref(), "a", &hex_id(4), "carol", false).await.unwrap();
    publish_root(store.as_ref(), "a", &hex_id(5), "carol", false).await.unwrap();

    let revocation = Revocation { at: 10, reason: Some("lost".into()), by: "user:alice".into() };
    assert!(
        store
            .revoke_chain("a", &hex_id(1), "alice", &revocation, draft(EventKind::ChainRevoked, Some(&hex_id(1))))
            .await
            .unwrap()
    );
    publish_root(store.as_ref(), "a", &hex_id(2), "alice", true).await.expect("a revoked chain frees the identity");
}

async fn rotation_moves_the_head_once_and_never_into_a_revoked_chain(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    publish_root(store.as_ref(), "a", &hex_id(1), "alice", true).await.unwrap();
    rotate(store.as_ref(), "a", &hex_id(1), &hex_id(1), &hex_id(2)).await.unwrap();
    assert_eq!(
        constraint_of(rotate(store.as_ref(), "a", &hex_id(1), &hex_id(1), &hex_id(3)).await),
        "chain_head_moved"
    );
    assert_eq!(store.find_card("a", &hex_id(3)).await.unwrap(), None, "a refused rotation leaves nothing behind");
    let old = store.find_card("a", &hex_id(1)).await.unwrap().unwrap();
    assert_eq!(old.superseded_by, Some(hex_id(2)));
    let new = store.find_card("a", &hex_id(2)).await.unwrap().unwrap();
    assert_eq!((new.chain_id.clone(), new.previous_card_id.clone()), (hex_id(1), Some(hex_id(1))));

    let active = store.find_active_cards("a", &["alice".into()], usize::MAX).await.unwrap();
    assert_eq!(active.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![hex_id(2)]);
    let chain = store.find_unrevoked_chain_cards("a", &["alice".into()], i64::MAX, usize::MAX).await.unwrap();
    assert_eq!(chain.len(), 2);

    let revocation = Revocation { at: 10, reason: None, by: "admin:root".into() };
    assert!(
        store
            .revoke_chain("a", &hex_id(1), "alice", &revocation, draft(EventKind::ChainRevoked, Some(&hex_id(2))))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_chain("a", &hex_id(1), "alice", &revocation, draft(EventKind::ChainRevoked, Some(&hex_id(2))))
            .await
            .unwrap()
    );
    assert_eq!(
        constraint_of(rotate(store.as_ref(), "a", &hex_id(1), &hex_id(2), &hex_id(4)).await),
        "chain_head_moved"
    );
    assert!(store.find_active_cards("a", &["alice".into()], usize::MAX).await.unwrap().is_empty());
    assert!(store.find_unrevoked_chain_cards("a", &["alice".into()], i64::MAX, usize::MAX).await.unwrap().is_empty());
    let revoked = store.find_card("a", &hex_id(1)).await.unwrap().unwrap();
    assert_eq!((revoked.revoked_at, revoked.revoked_by.as_deref()), (Some(10), Some("admin:root")));
}

async fn every_change_bumps_the_identity_version(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    let ids = vec!["alice".to_owned(), "bob".to_owned()];
    assert_eq!(store.identity_versions("a", &ids).await.unwrap(), vec![]);
    publish_root(store.as_ref(), "a", &hex_id(1), "alice", true).await.unwrap();
    assert_eq!(store.identity_versions("a", &ids).await.unwrap(), vec![("alice".to_owned(), 1)]);
    rotate(store.as_ref(), "a", &hex_id(1), &hex_id(1), &hex_id(2)).await.unwrap();
    let revocation = Revocation { at: 10, reason: None, by: "x".into() };
    store.revoke_chain("a", &hex_id(1), "alice", &revocation, draft(EventKind::ChainRevoked, None)).await.unwrap();
    store.revoke_chain("a", &hex_id(1), "alice", &revocation, draft(EventKind::ChainRevoked, None)).await.unwrap();
    assert_eq!(
        store.identity_versions("a", &ids).await.unwrap(),
        vec![("alice".to_owned(), 3)],
        "a no-op revoke does not bump"
    );
    let _ = rotate(store.as_ref(), "a", &hex_id(1), &hex_id(2), &hex_id(3)).await;
    assert_eq!(
        store.identity_versions("a", &ids).await.unwrap(),
        vec![("alice".to_owned(), 3)],
        "a refused write does not bump"
    );
}

/// The one-statement lookup agrees with the counters and the active cards read separately:
/// superseded cards and revoked chains are left out, identities never changed are absent,
/// an identity whose only chain is revoked keeps its counter, and other apps are invisible.
async fn a_lookup_reads_the_counters_and_the_active_cards_together(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    app(store.as_ref(), "b").await;
    publish_root(store.as_ref(), "a", &hex_id(1), "alice", false).await.unwrap();
    rotate(store.as_ref(), "a", &hex_id(1), &hex_id(1), &hex_id(2)).await.unwrap();
    publish_root(store.as_ref(), "a", &hex_id(3), "alice", false).await.unwrap();
    publish_root(store.as_ref(), "a", &hex_id(4), "bob", true).await.unwrap();
    let revocation = Revocation { at: 10, reason: None, by: "x".into() };
    store.revoke_chain("a", &hex_id(4), "bob", &revocation, draft(EventKind::ChainRevoked, None)).await.unwrap();
    publish_root(store.as_ref(), "b", &hex_id(5), "carol", true).await.unwrap();

    let ids: Vec<String> = ["alice", "bob", "carol", "dave"].iter().map(|s| (*s).to_owned()).collect();
    let read = store.lookup_active("a", &ids, usize::MAX).await.unwrap();
    let mut versions = read.versions.clone();
    versions.sort();
    let mut counted = store.identity_versions("a", &ids).await.unwrap();
    counted.sort();
    assert_eq!(versions, counted);
    assert_eq!(versions, vec![("alice".to_owned(), 3), ("bob".to_owned(), 2)]);
    let separately = store.find_active_cards("a", &ids, usize::MAX).await.unwrap();
    assert_eq!(read.cards, separately);
    let mut active: Vec<String> = read.cards.iter().map(|c| c.id.clone()).collect();
    active.sort();
    assert_eq!(active, vec![hex_id(2), hex_id(3)]);
    assert_eq!(store.lookup_active("a", &["dave".to_owned()], usize::MAX).await.unwrap(), Default::default());
}

async fn events_are_gap_free_hash_chained_and_paged(backend: Backend) {
    let (_db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    app(store.as_ref(), "b").await;
    for n in 1..=5u8 {
        publish_root(store.as_ref(), "a", &hex_id(n), &format!("user{n}"), true).await.unwrap();
    }
    let _ = publish_root(store.as_ref(), "a", &hex_id(9), "user1", true).await;
    rotate(store.as_ref(), "a", &hex_id(1), &hex_id(1), &hex_id(6)).await.unwrap_or(());
    let events = store.list_events("a", 0, 100, usize::MAX).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=events.len() as i64).collect::<Vec<_>>());
    verify_chain(
        0,
        GENESIS_HASH,
        events.iter().map(|e| StoredEvent { body: e.body.as_bytes(), prev_hash: &e.prev_hash, hash: &e.hash }),
    )
    .unwrap();
    let page = store.list_events("a", 2, 2, usize::MAX).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(store.list_events("b", 0, 100, usize::MAX).await.unwrap().len(), 1, "each app has its own log");
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

/// Two processes on one database each sequence their own writes; the app row's lock keeps
/// their rounds apart, so the app still has one gap-free chain with every write in it once.
async fn two_stores_sharing_a_database_keep_one_gap_free_log(backend: Backend) {
    let (db, first) = store(backend).await;
    let second = connect(&db.url, &pool()).await.unwrap();
    app(first.as_ref(), "a").await;
    let mut writers = Vec::new();
    for n in 0..40u8 {
        let store = if n % 2 == 0 { first.clone() } else { second.clone() };
        writers.push(tokio::spawn(async move {
            publish_root(store.as_ref(), "a", &hex_id(n + 1), &format!("user{n}"), true).await.unwrap();
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let events = first.list_events("a", 0, 1000, usize::MAX).await.unwrap();
    assert_log_verifies(&events);
    let mut published: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.body).ok())
        .filter(|body| body["kind"] == "card_published")
        .map(|body| body["card_id"].as_str().unwrap().to_owned())
        .collect();
    published.sort();
    assert_eq!(published, (1..=40u8).map(hex_id).collect::<Vec<_>>(), "every write once, none lost");
    assert_eq!(second.sequence_queued().await.unwrap(), 0, "nothing was left queued");
}

/// A crash between a write's commit and its round leaves its events queued: the next sweep
/// moves them into the log, in queue order, and a second sweep finds nothing.
async fn events_left_queued_by_a_crash_are_sequenced_by_the_next_sweep(backend: Backend) {
    let (db, store) = store(backend).await;
    app(store.as_ref(), "a").await;
    let queue = "INSERT INTO pending_events (app_id, kind, at_ms, card_id, identity, actor, detail) \
                 VALUES ('a', 'card_published', 5, 'c1', 'alice', 'user:alice', '{}'), \
                        ('a', 'chain_revoked', 6, 'c1', 'alice', 'admin:root', '{\"reason\":\"lost\"}')";
    match backend {
        Backend::Postgres => {
            sqlx::query(queue).execute(&sqlx::PgPool::connect(&db.url).await.unwrap()).await.unwrap();
        }
        Backend::Sqlite => {
            sqlx::query(queue).execute(&sqlx::SqlitePool::connect(&db.url).await.unwrap()).await.unwrap();
        }
    }
    assert_eq!(
        store.list_events("a", 0, 100, usize::MAX).await.unwrap().len(),
        1,
        "queued events are not in the log yet"
    );
    assert_eq!(store.sequence_queued().await.unwrap(), 2);
    assert_eq!(store.sequence_queued().await.unwrap(), 0);
    let events = store.list_events("a", 0, 100, usize::MAX).await.unwrap();
    assert_log_verifies(&events);
    let bodies: Vec<serde_json::Value> = events.iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
    assert_eq!(
        bodies.iter().map(|b| b["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["app_created", "card_published", "chain_revoked"]
    );
    assert_eq!(bodies[2]["detail"]["reason"], "lost");
    assert_eq!(bodies[2]["actor"], "admin:root");
}

/// Cardinal's connections use generic plans (so no statement is re-planned on every execution,
/// whatever its first executions were), and options given in the URL still apply.
async fn postgres_connections_use_generic_plans_and_keep_url_options() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = format!("{}?options=-c%20statement_timeout%3D4321", db.url);
    let store = cardinal_server::storage::PgCardStore::connect(&url, &pool()).await.unwrap();
    let setting = |name: &'static str| {
        let pool = store.pool().clone();
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
    let settings = PoolSettings { max_connections: 2, min_connections: 0, acquire_timeout: Duration::from_millis(500) };
    let store = connect("postgres://postgres@127.0.0.1:1/nothing", &settings).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(store.ping().await, Err(StorageError::Unavailable(_))));
    assert!(matches!(store.find_card("a", &hex_id(1)).await, Err(StorageError::Unavailable(_))));
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

on_both_backends!(
    migrations_apply_once_and_are_idempotent,
    apps_and_keys_round_trip_and_conflict_by_name,
    cards_are_scoped_by_app_and_duplicates_conflict,
    exclusive_chains_allow_one_live_chain_per_identity,
    rotation_moves_the_head_once_and_never_into_a_revoked_chain,
    every_change_bumps_the_identity_version,
    a_lookup_reads_the_counters_and_the_active_cards_together,
    events_are_gap_free_hash_chained_and_paged,
    two_stores_sharing_a_database_keep_one_gap_free_log,
    events_left_queued_by_a_crash_are_sequenced_by_the_next_sweep,
);
