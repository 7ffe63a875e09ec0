//! A card's life through HTTP: publish, get, look up, rotate, revoke, publish again.

use cardinal_card::{ParsedCard, RawSignedModel};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Options, assert_event_log_verifies, assert_problem, new_card, rotation_of, spawn_app, spawn_app_with,
};
use crate::support::Backend;
use cardinal_server::domain::{CardsPerIdentity, KeyRole};

fn active_ids(lookup: &Value, identity: &str) -> Vec<String> {
    lookup["identities"][identity].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

async fn a_card_lives_from_publish_through_rotation_and_revocation_to_a_new_root(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user_token("alice");

    // Publish: 201, Location, countersigned by the service key, snapshot byte-exact.
    let first = new_card("alice");
    let response = app.publish("alice", &first.raw).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], format!("/v1/cards/{}", first.id).as_str());
    let published: Value = response.json().await.unwrap();
    assert_eq!(published["id"], first.id.as_str());
    assert_eq!(published["status"], "active");
    assert_eq!(published["identity"], "alice");
    assert_eq!(published["public_key"], first.key.public_key().to_spki_base64());
    let raw: RawSignedModel = serde_json::from_value(published["raw"].clone()).unwrap();
    assert_eq!(raw.content_snapshot, first.raw.content_snapshot);
    assert_eq!(raw.signatures[0], first.raw.signatures[0]);
    let parsed = ParsedCard::parse_published(raw, &Default::default()).unwrap();
    assert!(parsed.has_valid_countersignature(&app.service_key().await));

    // Get and look up.
    let got: Value = app.get_card(&token, first.id.as_str()).await.json().await.unwrap();
    assert_eq!(got, published);
    let lookup: Value = app.lookup(&token, &["alice", "bob"], None).await.json().await.unwrap();
    assert_eq!(active_ids(&lookup, "alice"), vec![first.id.to_string()]);
    assert_eq!(lookup["identities"]["bob"], serde_json::json!([]), "every requested identity is a key");

    // Rotate: the old card is superseded, the new one active and alone in lookups.
    let second = rotation_of("alice", &first.id);
    let rotated = app.published("alice", &second).await;
    assert_eq!(rotated["previous_card_id"], first.id.as_str());
    let old: Value = app.get_card(&token, first.id.as_str()).await.json().await.unwrap();
    assert_eq!((old["status"].as_str(), old["superseded_by"].as_str()), (Some("superseded"), Some(second.id.as_str())));
    let lookup: Value = app.lookup(&token, &["alice"], None).await.json().await.unwrap();
    assert_eq!(active_ids(&lookup, "alice"), vec![second.id.to_string()]);

    // Revoke the newest card: the whole chain is revoked and lookups return nothing.
    let response = app.revoke(&token, second.id.as_str(), Some("lost my phone")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let revoked: Value = response.json().await.unwrap();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revocation_reason"], "lost my phone");
    assert!(revoked["revoked_at"].as_i64().unwrap() > 0);
    for id in [&first.id, &second.id] {
        let card: Value = app.get_card(&token, id.as_str()).await.json().await.unwrap();
        assert_eq!(card["status"], "revoked", "{id} is revoked with its chain");
    }
    let lookup: Value = app.lookup(&token, &["alice"], None).await.json().await.unwrap();
    assert!(active_ids(&lookup, "alice").is_empty());
    let again = app.revoke(&token, second.id.as_str(), None).await;
    assert_eq!(again.status(), StatusCode::OK, "revoking again is a no-op");

    // A revoked chain cannot be extended, but a new root can be published.
    assert_problem(app.publish("alice", &rotation_of("alice", &second.id).raw).await, 409, "chain_revoked").await;
    let third = new_card("alice");
    app.published("alice", &third).await;
    let lookup: Value = app.lookup(&token, &["alice"], None).await.json().await.unwrap();
    assert_eq!(active_ids(&lookup, "alice"), vec![third.id.to_string()]);

    let events = assert_event_log_verifies(&app).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "app_created",
            "key_added",
            "key_added",
            "card_published",
            "card_published",
            "card_superseded",
            "chain_revoked",
            "card_published"
        ]
    );
    let revocation = &events[6]["event"];
    assert_eq!(
        (revocation["actor"].as_str(), revocation["detail"]["reason"].as_str()),
        (Some("user:alice"), Some("lost my phone"))
    );
}

async fn search_by_post_answers_like_the_lookup(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    let token = app.user_token("bob");
    let by_get: Value = app.lookup(&token, &["alice", "carol"], None).await.json().await.unwrap();
    let response = app.search(&token, &["carol".into(), "alice".into(), "alice".into()]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let by_post: Value = response.json().await.unwrap();
    assert_eq!(by_post, by_get);
}

async fn an_admin_revokes_any_card_with_a_reason_that_the_log_keeps(backend: Backend) {
    let app = spawn_app(backend).await;
    let card = new_card("mallory");
    app.published("mallory", &card).await;
    assert_problem(app.admin_revoke(&app.admin_token("root"), card.id.as_str(), None).await, 400, "invalid_request")
        .await;
    assert_problem(app.admin_revoke(&app.user_token("mallory"), card.id.as_str(), Some("x")).await, 403, "forbidden")
        .await;
    let response = app.admin_revoke(&app.admin_token("root"), card.id.as_str(), Some("left the company")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["revocation_reason"].as_str()),
        (Some("revoked"), Some("left the company"))
    );
    let events = assert_event_log_verifies(&app).await;
    let last = &events.last().unwrap()["event"];
    assert_eq!(last["kind"], "chain_revoked");
    assert_eq!(last["actor"], "admin:root");
    assert_eq!(last["card_id"], card.id.as_str());
}

async fn cards_of_another_app_are_invisible(backend: Backend) {
    let app = spawn_app(backend).await;
    let card = new_card("alice");
    app.published("alice", &card).await;

    app.admin().create_app("other", CardsPerIdentity::Single, "test").await.unwrap();
    let key = cardinal_card::SigningKey::generate();
    let kid = app.admin().add_key("other", KeyRole::App, &key.public_key(), None, "test").await.unwrap().kid;
    let now = crate::helpers::now();
    let stranger = app.token_with(&key, &kid, "other", "alice", now, now + 600);

    assert_problem(app.get_card(&stranger, card.id.as_str()).await, 404, "not_found").await;
    let lookup: Value = app.lookup(&stranger, &["alice"], None).await.json().await.unwrap();
    assert_eq!(lookup["identities"]["alice"], serde_json::json!([]));
    assert_problem(app.revoke(&stranger, card.id.as_str(), None).await, 404, "not_found").await;
    let rotation = rotation_of("alice", &card.id);
    let response = app.publish_raw(&stranger, &serde_json::to_value(&rotation.raw).unwrap()).await;
    assert_problem(response, 400, "previous_card_not_found").await;
    // The same identity in the other app is a different user: its first card is a root.
    let other = new_card("alice");
    let response = app.publish_raw(&stranger, &serde_json::to_value(&other.raw).unwrap()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn the_multiple_policy_lets_independent_chains_coexist(backend: Backend) {
    let app = spawn_app_with(backend, Options { policy: CardsPerIdentity::Multiple, ..Options::default() }).await;
    let (a, b) = (new_card("alice"), new_card("alice"));
    app.published("alice", &a).await;
    app.published("alice", &b).await;
    let lookup: Value = app.lookup(&app.user_token("alice"), &["alice"], None).await.json().await.unwrap();
    let mut ids = active_ids(&lookup, "alice");
    ids.sort();
    let mut expected = vec![a.id.to_string(), b.id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
}

async fn health_and_readiness_answer_without_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    let key = app.service_key().await;
    assert_eq!(key.spki_der().len(), 44);
}

crate::on_both_backends!(
    a_card_lives_from_publish_through_rotation_and_revocation_to_a_new_root,
    search_by_post_answers_like_the_lookup,
    an_admin_revokes_any_card_with_a_reason_that_the_log_keeps,
    cards_of_another_app_are_invisible,
    the_multiple_policy_lets_independent_chains_coexist,
    health_and_readiness_answer_without_a_token,
);
