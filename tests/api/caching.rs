//! ETag revalidation: 304 without a body while nothing changed, a new tag after any change to a
//! requested identity, the same tag after changes elsewhere.

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};

use crate::helpers::{TestApp, new_card, rotation_of, spawn_app};
use crate::support::Backend;

async fn tag(app: &TestApp, identities: &[&str]) -> String {
    let response = app.lookup(&app.user_token("reader"), identities, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "private, no-cache");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    etag
}

/// Whether a lookup with `If-None-Match: if_none_match` is answered 304.
async fn revalidates(app: &TestApp, identities: &[&str], if_none_match: &str) -> bool {
    let response = app.lookup(&app.user_token("reader"), identities, Some(if_none_match)).await;
    match response.status() {
        StatusCode::NOT_MODIFIED => {
            let etag = response.headers()["etag"].to_str().unwrap().to_owned();
            assert!(if_none_match.contains(&etag), "the 304 names the matched tag");
            assert!(response.bytes().await.unwrap().is_empty(), "a 304 has no body");
            true
        }
        StatusCode::OK => false,
        other => panic!("unexpected {other}"),
    }
}

async fn a_lookup_revalidates_until_a_requested_identity_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let batch = ["alice", "bob"];
    let alice = new_card("alice");
    app.published("alice", &alice).await;

    let t0 = tag(&app, &batch).await;
    assert!(revalidates(&app, &batch, &t0).await);
    assert!(revalidates(&app, &["bob", "alice", "bob"], &t0).await, "order and repeats do not change the batch");
    assert!(revalidates(&app, &batch, &format!("\"other\", {t0}")).await, "a list of tags");

    // A change outside the batch keeps the tag.
    app.published("carol", &new_card("carol")).await;
    assert!(revalidates(&app, &batch, &t0).await);

    // Publishing, rotating and revoking inside the batch each change it.
    app.published("bob", &new_card("bob")).await;
    assert!(!revalidates(&app, &batch, &t0).await);
    let t1 = tag(&app, &batch).await;
    assert_ne!(t0, t1);

    let rotated = rotation_of("alice", &alice.id);
    app.published("alice", &rotated).await;
    assert!(!revalidates(&app, &batch, &t1).await);
    let t2 = tag(&app, &batch).await;

    let response = app.revoke(&app.user_token("alice"), rotated.id.as_str(), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!revalidates(&app, &batch, &t2).await);
    let t3 = tag(&app, &batch).await;
    assert!(revalidates(&app, &batch, &t3).await);

    // Another batch never shares a tag.
    assert_ne!(tag(&app, &["alice"]).await, t3);
}

async fn a_single_card_revalidates_until_its_status_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let card = new_card("alice");
    app.published("alice", &card).await;
    let token = app.user_token("alice");
    let response = app.get_card(&token, card.id.as_str()).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url(&format!("/v1/cards/{}", card.id)))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    app.published("alice", &rotation_of("alice", &card.id)).await;
    let after = app
        .client
        .get(app.url(&format!("/v1/cards/{}", card.id)))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK);
}

async fn lookup_at(app: &TestApp, address: &str, identities: &[&str], if_none_match: Option<&str>) -> Response {
    let query: Vec<(&str, &str)> = identities.iter().map(|i| ("identity", *i)).collect();
    let mut request = app.client.get(format!("{address}/v1/cards")).query(&query).bearer_auth(app.user_token("reader"));
    if let Some(tag) = if_none_match {
        request = request.header("If-None-Match", tag);
    }
    request.send().await.unwrap()
}

async fn from_memory(app: &TestApp, address: &str) -> u64 {
    let text = app.client.get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("cardinal_revalidations_from_memory_total ")).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Revalidates until one is answered from memory (the change listener starts with the server),
/// or two seconds pass; returns whether it was.
async fn revalidated_from_memory(app: &TestApp, address: &str, batch: &[&str], tag: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let before = from_memory(app, address).await;
        assert_eq!(lookup_at(app, address, batch, Some(tag)).await.status(), StatusCode::NOT_MODIFIED);
        if from_memory(app, address).await > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Two replicas over one database. On PostgreSQL each answers revalidations from memory, and a
/// change made through one is seen by the other (its notification arrives) and by the writer
/// at once; SQLite never answers from memory.
async fn replicas_revalidating_from_memory_see_each_others_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (replica, replica_handle) = app.another_instance().await;
    let batch = ["alice", "bob"];
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    let response = lookup_at(&app, &replica, &batch, None).await;
    let t0 = response.headers()["etag"].to_str().unwrap().to_owned();

    let cached = backend == Backend::Postgres;
    assert_eq!(revalidated_from_memory(&app, &replica, &batch, &t0).await, cached);
    assert_eq!(revalidated_from_memory(&app, &app.address, &batch, &t0).await, cached);

    app.published("alice", &rotation_of("alice", &alice.id)).await;
    assert_eq!(
        lookup_at(&app, &app.address, &batch, Some(&t0)).await.status(),
        StatusCode::OK,
        "the writer sees its own change at once"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = lookup_at(&app, &replica, &batch, Some(&t0)).await.status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(Instant::now() < deadline, "the replica still answers 304 two seconds after the change");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t1 = lookup_at(&app, &replica, &batch, None).await.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(t0, t1);
    assert_eq!(revalidated_from_memory(&app, &replica, &batch, &t1).await, cached);
    replica_handle.stop(true).await;
}

crate::on_both_backends!(
    replicas_revalidating_from_memory_see_each_others_changes,
    a_lookup_revalidates_until_a_requested_identity_changes,
    a_single_card_revalidates_until_its_status_changes
);
