//! The answer cache changes nothing a client can see: over a randomized sequence of publishes,
//! rotations, revocations and lookups, through an instance with the cache and one without over
//! the same database, two answers with the same tag are the same bytes, and the tags agree as
//! soon as the instances have heard of the same writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cardinal_card::CardId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;

use crate::helpers::{TestApp, metric, new_card, rotation_of, spawn_app};
use crate::support::Backend;

const IDENTITIES: [&str; 8] = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"];

async fn lookup(app: &TestApp, base: &str, token: &str, identities: &[&str]) -> (String, Vec<u8>) {
    let query: Vec<(&str, &str)> = identities.iter().map(|i| ("identity", *i)).collect();
    let response = app.client.get(format!("{base}/v1/cards")).query(&query).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    (etag, response.bytes().await.unwrap().to_vec())
}

async fn post(app: &TestApp, base: &str, token: &str, path: &str, body: &serde_json::Value) -> StatusCode {
    app.client.post(format!("{base}{path}")).bearer_auth(token).json(body).send().await.unwrap().status()
}

async fn answers_are_byte_identical_with_the_cache_on_or_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let cached = app.url("").trim_end_matches('/').to_owned();
    let (plain, plain_handle) = app.instance_with(|settings| settings.cache.answer_bytes = 0).await;
    let seed: u64 = std::env::var("CARDINAL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x00ca_4d1a);
    let mut rng = StdRng::seed_from_u64(seed);
    let reader = app.user_token("reader");
    // Each identity's newest live card, if any.
    let mut newest: BTreeMap<&str, Option<CardId>> = IDENTITIES.iter().map(|i| (*i, None)).collect();
    let mut compared = 0;
    for step in 0..120 {
        let identity = *IDENTITIES.choose(&mut rng).unwrap();
        let base = if rng.gen_bool(0.5) { cached.as_str() } else { plain.as_str() };
        let token = app.user_token(identity);
        match (rng.gen_range(0..4), newest[identity].clone()) {
            (0 | 1, None) => {
                let card = new_card(identity);
                let status = post(&app, base, &token, "/v1/cards", &serde_json::to_value(&card.raw).unwrap()).await;
                assert_eq!(status, StatusCode::CREATED, "step {step} (seed {seed})");
                newest.insert(identity, Some(card.id));
            }
            (0 | 1, Some(previous)) => {
                let card = rotation_of(identity, &previous);
                let status = post(&app, base, &token, "/v1/cards", &serde_json::to_value(&card.raw).unwrap()).await;
                assert_eq!(status, StatusCode::CREATED, "step {step} (seed {seed})");
                newest.insert(identity, Some(card.id));
            }
            (2, Some(card)) => {
                let path = format!("/v1/cards/{card}/revoke");
                let status = post(&app, base, &token, &path, &serde_json::json!({})).await;
                assert_eq!(status, StatusCode::OK, "step {step} (seed {seed})");
                newest.insert(identity, None);
            }
            _ => {}
        }
        // A few lookups of random subsets, each through both instances.
        for _ in 0..3 {
            let count = rng.gen_range(1..=IDENTITIES.len());
            let mut subset: Vec<&str> = IDENTITIES.choose_multiple(&mut rng, count).copied().collect();
            subset.sort_unstable();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let (cached_tag, cached_body) = lookup(&app, &cached, &reader, &subset).await;
                let (plain_tag, plain_body) = lookup(&app, &plain, &reader, &subset).await;
                if cached_tag == plain_tag {
                    assert_eq!(
                        String::from_utf8_lossy(&cached_body),
                        String::from_utf8_lossy(&plain_body),
                        "step {step}, {subset:?} (seed {seed}): one tag, two answers"
                    );
                    compared += 1;
                    break;
                }
                // Another instance's write reaches memory by notification, within the trust bound.
                assert!(Instant::now() < deadline, "step {step}: the tags never agreed (seed {seed})");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(compared, 360);
    assert!(metric(&app.client, &cached, "cardinal_answer_cache_hits_total").await > 0.0, "the cache answered");
    assert_eq!(metric(&app.client, &plain, "cardinal_answer_cache_hits_total").await, 0.0, "off means off");
    plain_handle.stop(true).await;
}

/// The cache holds no more than its byte budget, however many identities pass through it.
async fn the_answer_cache_keeps_to_its_byte_budget(backend: Backend) {
    let app = spawn_app(backend).await;
    let budget: u64 = 64 * 1024;
    let (base, handle) = app.instance_with(|settings| settings.cache.answer_bytes = budget).await;
    let reader = app.user_token("reader");
    let names: Vec<String> = (0..200).map(|i| format!("user-{i:03}")).collect();
    for name in &names {
        app.published(name, &new_card(name)).await;
    }
    for chunk in names.chunks(50) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        lookup(&app, &base, &reader, &chunk).await;
    }
    let misses = metric(&app.client, &base, "cardinal_answer_cache_misses_total").await;
    assert_eq!(misses, 200.0, "every identity read once");
    let held = metric(&app.client, &base, "cardinal_answer_cache_bytes ").await;
    assert_eq!(metric(&app.client, &base, "cardinal_answer_cache_budget_bytes").await, budget as f64);
    assert!(held > 0.0 && held <= budget as f64, "the cache holds {held} bytes against a budget of {budget}");
    // 200 cards of about 1 KiB each with their overhead would be far over 64 KiB: least recently
    // used ones were let go, so reading the first ones again misses.
    let first: Vec<&str> = names[..50].iter().map(String::as_str).collect();
    lookup(&app, &base, &reader, &first).await;
    let misses_again = metric(&app.client, &base, "cardinal_answer_cache_misses_total").await;
    assert!(misses_again > 200.0, "evicted under the budget: {misses_again}");
    handle.stop(true).await;
}

crate::on_both_backends!(
    answers_are_byte_identical_with_the_cache_on_or_off,
    the_answer_cache_keeps_to_its_byte_budget
);
