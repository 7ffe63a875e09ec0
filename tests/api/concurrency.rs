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

crate::on_both_backends!(
    twenty_concurrent_rotations_of_one_card_give_exactly_one_201,
    twenty_concurrent_first_publishes_for_one_identity_give_exactly_one_201,
    concurrent_publishes_for_many_identities_keep_the_log_gap_free,
);
