//! Races: of twenty concurrent rotations or first publishes, exactly one wins.

use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::{assert_event_log_verifies, new_card, rotation_of, spawn_app};
use crate::support::Backend;

const RACERS: usize = 20;

async fn statuses(app: Arc<crate::helpers::TestApp>, cards: Vec<crate::helpers::NewCard>) -> Vec<(StatusCode, String)> {
    let tasks: Vec<_> = cards
        .into_iter()
        .map(|card| {
            let app = app.clone();
            tokio::spawn(async move {
                let response = app.publish("alice", &card.raw).await;
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap();
                (status, body["code"].as_str().unwrap_or("").to_owned())
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn twenty_concurrent_rotations_of_one_card_give_exactly_one_201(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let root = new_card("alice");
    app.published("alice", &root).await;
    let results = statuses(app.clone(), (0..RACERS).map(|_| rotation_of("alice", &root.id)).collect()).await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{results:?}");
    for (status, code) in &results {
        assert!(
            *status == StatusCode::CREATED || (*status == StatusCode::CONFLICT && code == "already_superseded"),
            "{status} {code}"
        );
    }
    let lookup: serde_json::Value = app.lookup(&app.user_token("alice"), &["alice"], None).await.json().await.unwrap();
    assert_eq!(lookup["identities"]["alice"].as_array().unwrap().len(), 1);
    let events = assert_event_log_verifies(&app).await;
    let published = events.iter().filter(|e| e["event"]["kind"] == "card_published").count();
    assert_eq!(published, 2, "the root and the one winning rotation");
}

async fn twenty_concurrent_first_publishes_for_one_identity_give_exactly_one_201(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let results = statuses(app.clone(), (0..RACERS).map(|_| new_card("alice")).collect()).await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{results:?}");
    for (status, code) in &results {
        assert!(
            *status == StatusCode::CREATED || (*status == StatusCode::CONFLICT && code == "identity_taken"),
            "{status} {code}"
        );
    }
    let lookup: serde_json::Value = app.lookup(&app.user_token("alice"), &["alice"], None).await.json().await.unwrap();
    assert_eq!(lookup["identities"]["alice"].as_array().unwrap().len(), 1);
    assert_event_log_verifies(&app).await;
}

async fn concurrent_publishes_for_many_identities_keep_the_log_gap_free(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let identity = format!("user{i}");
                let card = new_card(&identity);
                app.publish(&identity, &card.raw).await.status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    let events = assert_event_log_verifies(&app).await;
    assert_eq!(events.len(), 3 + 40);
}

/// SQLite's one writer path, bounded to two writers and a 1 ms wait: of 40 concurrent first
/// publishes some are refused, each at once with 503 `unavailable` and `Retry-After: 1`; every
/// refused card is absent, every accepted one present, and the log holds exactly the accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_past_the_queue_bound_get_503_with_retry_after_and_write_nothing() {
    let options = crate::helpers::Options {
        settings: vec![
            ("database.write_queue_max_writers", serde_json::json!(2)),
            ("database.write_queue_timeout_ms", serde_json::json!(1)),
            ("rate_limits.enabled", serde_json::json!(false)),
        ],
        ..Default::default()
    };
    let app = Arc::new(crate::helpers::spawn_app_with(Backend::Sqlite, options).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let identity = format!("user{i}");
                let card = new_card(&identity);
                let started = std::time::Instant::now();
                let response = app.publish(&identity, &card.raw).await;
                let elapsed = started.elapsed();
                let status = response.status();
                let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let body: serde_json::Value = response.json().await.unwrap();
                (identity, status, retry_after, body["code"].as_str().unwrap_or("").to_owned(), elapsed)
            })
        })
        .collect();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for task in tasks {
        let (identity, status, retry_after, code, elapsed) = task.await.unwrap();
        match status {
            StatusCode::CREATED => accepted.push(identity),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!((retry_after.as_deref(), code.as_str()), (Some("1"), "unavailable"));
                assert!(elapsed < std::time::Duration::from_secs(2), "refused only after {elapsed:?}");
                refused.push(identity);
            }
            other => panic!("{identity}: {other} {code}"),
        }
    }
    assert!(!refused.is_empty(), "40 writers through a queue of 2 with a 1 ms wait: none was refused");
    assert!(!accepted.is_empty(), "the queue refused every write");
    let reader = app.user_token("reader");
    for identity in accepted.iter().chain(&refused) {
        let found: serde_json::Value = app.lookup(&reader, &[identity], None).await.json().await.unwrap();
        let cards = found["identities"][identity].as_array().map_or(0, Vec::len);
        assert_eq!(cards, usize::from(accepted.contains(identity)), "{identity}: {found}");
    }
    let events = assert_event_log_verifies(&app).await;
    assert_eq!(events.len(), 3 + accepted.len());
    let counted = crate::helpers::metric(&app.client, &app.address, "cardinal_db_writes_refused_total").await;
    assert_eq!(counted, refused.len() as f64, "every refusal is counted, and only refusals");
}

crate::on_both_backends!(
    twenty_concurrent_rotations_of_one_card_give_exactly_one_201,
    twenty_concurrent_first_publishes_for_one_identity_give_exactly_one_201,
    concurrent_publishes_for_many_identities_keep_the_log_gap_free,
);
