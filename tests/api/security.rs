//! The security review's findings, each reproduced as it was reported and shown fixed: a rate
//! limit bypass by respelling paths, forgeable tokens for small-order keys, a token lifetime that
//! overflowed, and answers an identity could inflate without bound.

use std::time::Duration;

use cardinal_card::card::CardBuilder;
use cardinal_card::{Identity, PublicKey, RawSignature, RawSignedModel, SigningKey, b64};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    APP, Options, Spawned, TestApp, assert_problem, new_card, now, rotation_of, spawn_app_with, spawn_binary,
};
use crate::support::{Backend, TestDb};

/// A request with a path exactly as written (reqwest keeps percent-escapes and doubled slashes).
async fn get_raw(app: &TestApp, path: String, token: &str) -> reqwest::Response {
    app.client.get(format!("{}{path}", app.address)).bearer_auth(token).send().await.unwrap()
}

fn count(responses: &[StatusCode], status: StatusCode) -> usize {
    responses.iter().filter(|s| **s == status).count()
}

fn metric_total(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// With a read limit of 5 per address (refilling at 1/s), 20 lookups spelled five ways are
/// charged to one bucket; before the fix `/v1/%63ards` was never limited and was logged and
/// counted as an unmatched route.
async fn every_spelling_of_a_route_shares_its_rate_limit(backend: Backend) {
    let settings = vec![
        ("rate_limits.read.per_address_per_second", json!(1)),
        ("rate_limits.read.per_address_burst", json!(5)),
        ("rate_limits.write.per_identity_per_second", json!(1)),
        ("rate_limits.write.per_identity_burst", json!(2)),
    ];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let token = app.user_token("reader");
    let spellings = ["/v1/%63ards", "/v1/cards", "//v1/cards", "/v1//cards", "/v1/%63%61rds"];
    let requests: Vec<_> =
        (0..20).map(|i| get_raw(&app, format!("{}?identity=alice", spellings[i % spellings.len()]), &token)).collect();
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(requests).await.iter().map(reqwest::Response::status).collect();
    assert!(count(&statuses, StatusCode::OK) <= 6, "one bucket for every spelling: {statuses:?}");
    assert_eq!(count(&statuses, StatusCode::OK) + count(&statuses, StatusCode::TOO_MANY_REQUESTS), 20, "{statuses:?}");
    // Paths that match no route are limited too, from the same address's read bucket.
    for path in ["/v1/cards/", "/nope", "/card/v5/"] {
        assert_eq!(get_raw(&app, path.to_owned(), &token).await.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    // The refusals are counted under the route they matched, not hidden as unmatched.
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = metric_total(&metrics, "cardinal_http_requests_total", &["endpoint=\"/v1/cards\"", "status=\"429\""]);
    assert!(refused >= 14.0, "429s counted under /v1/cards: {refused}\n{metrics}");

    // Writes: rotations through a respelled path spend the identity's write budget (burst 2).
    let writer = spawn_app_with(
        backend,
        Options {
            settings: vec![
                ("rate_limits.write.per_identity_per_second", json!(1)),
                ("rate_limits.write.per_identity_burst", json!(2)),
            ],
            ..Options::default()
        },
    )
    .await;
    let token = writer.user_token("alice");
    let first = new_card("alice");
    let mut statuses = Vec::new();
    let mut previous: Option<cardinal_card::CardId> = None;
    for _ in 0..4 {
        let card = match &previous {
            None => first.raw.clone(),
            Some(id) => rotation_of("alice", id).raw,
        };
        let response = writer
            .client
            .post(format!("{}/v1/%63ards", writer.address))
            .bearer_auth(&token)
            .json(&card)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::CREATED {
            let body: Value = response.json().await.unwrap();
            previous = Some(body["id"].as_str().unwrap().parse().unwrap());
        }
        statuses.push(status);
    }
    assert_eq!(count(&statuses, StatusCode::CREATED), 2, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 2, "{statuses:?}");
    // The Virgil surface, percent-encoded: the same write budget, answered the Virgil way.
    let response = writer
        .client
        .post(format!("{}/%63ard/v5", writer.address))
        .header("Authorization", format!("Virgil {}", writer.virgil_token("alice")))
        .json(&new_card("alice").raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 30429);
}

/// The identity point as a 32-byte Ed25519 key: small order, so R = identity, S = 0 satisfies
/// the non-strict verification equation for every message.
fn identity_point() -> [u8; 32] {
    let mut point = [0u8; 32];
    point[0] = 1;
    point
}

fn forged_bearer(kid: &str, sub: &str) -> String {
    let header = b64::encode_url(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string().as_bytes());
    let claims = json!({"iss": APP, "sub": sub, "iat": now(), "exp": now() + 600});
    let claims = b64::encode_url(claims.to_string().as_bytes());
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity_point());
    format!("{header}.{claims}.{}", b64::encode_url(&signature))
}

/// Registration refuses small-order and non-canonical keys; and a weak key already in the
/// database (registered before the fix) cannot be used to forge a token on either scheme.
async fn weak_keys_are_refused_and_cannot_be_forged_for(backend: Backend) {
    let app = spawn_app_with(backend, Options::default()).await;
    let weak = PublicKey::from_bytes(&identity_point()).unwrap();
    let refused = app
        .admin()
        .add_key(APP, cardinal_server::domain::KeyRole::Admin, &weak, Some("weak".into()), "test")
        .await
        .unwrap_err();
    assert!(format!("{refused:#}").contains("small-order"), "{refused:#}");
    // y = 2 + p: a key of large order, spelled with a field element above p.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[31] = 0x7f;
    let spelled = (2u8..19)
        .find_map(|y| {
            non_canonical[0] = 0xed + y;
            PublicKey::from_bytes(&non_canonical).ok()
        })
        .unwrap();
    let refused = app.admin().add_key(APP, cardinal_server::domain::KeyRole::App, &spelled, None, "test").await;
    assert!(refused.is_err(), "a non-canonical key is refused");

    // Planted as an older version would have stored it.
    let planted = cardinal_server::storage::ApiKeyRecord {
        kid: "weak-admin".into(),
        app_id: cardinal_server::domain::AppId::parse(APP).unwrap(),
        role: cardinal_server::domain::KeyRole::Admin,
        public_key: identity_point().to_vec(),
        created_at: now(),
        revoked_at: None,
    };
    let event = cardinal_server::storage::EventDraft {
        kind: cardinal_card::log::EventKind::KeyAdded,
        at_ms: now() * 1000,
        card_id: None,
        identity: None,
        actor: "test".into(),
        detail: Default::default(),
    };
    app.store.insert_api_key(&planted, event).await.unwrap();
    let response = app
        .client
        .get(app.url("/v1/admin/events"))
        .header("Authorization", format!("Bearer {}", forged_bearer("weak-admin", "root")))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 401, "token_invalid").await;
    assert_eq!(body["detail"], "the token is not valid for this service");

    let virgil_header = b64::encode_url(
        json!({"alg": "VEDS512", "kid": "weak-admin", "typ": "JWT", "cty": "virgil-jwt;v=1"}).to_string().as_bytes(),
    );
    let virgil_claims = b64::encode_url(
        json!({"iss": format!("virgil-{APP}"), "sub": "identity-root", "iat": now(), "exp": now() + 600})
            .to_string()
            .as_bytes(),
    );
    let mut virgil_signature = cardinal_card::crypto::SIGNATURE_PREFIX.to_vec();
    virgil_signature.extend_from_slice(&identity_point());
    virgil_signature.extend_from_slice(&[0u8; 32]);
    let virgil = format!("{virgil_header}.{virgil_claims}.{}", b64::encode_url(&virgil_signature));
    let response =
        app.client.get(app.url("/v1/admin/events")).header("Authorization", format!("Virgil {virgil}")).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// `iat = -1, exp = i64::MAX` made `exp - iat` wrap in release builds: a token that never
/// expires. Both schemes refuse it, and an `iat` from long ago.
async fn a_token_whose_lifetime_overflows_is_refused(backend: Backend) {
    let app = spawn_app_with(backend, Options::default()).await;
    let bearer = app.token_with(&app.app_key, &app.app_kid, APP, "alice", -1, i64::MAX);
    let virgil = cardinal_card::virgil_jwt::sign(&app.app_key, &app.app_kid, APP, "alice", -1, i64::MAX);
    for authorization in [format!("Bearer {bearer}"), format!("Virgil {virgil}")] {
        let response = app.client.get(app.url("/v1/cards?identity=a")).header("Authorization", authorization).send();
        assert_problem(response.await.unwrap(), 401, "token_invalid").await;
    }
    let ancient = app.token_with(&app.app_key, &app.app_kid, APP, "alice", 1_000, 1_000 + 600);
    let response = app.client.get(app.url("/v1/cards?identity=a")).bearer_auth(ancient).send().await.unwrap();
    assert_problem(response, 401, "token_expired").await;
}

/// A card padded to about 7 KB with signers' extra snapshots, the most the limits allow.
fn heavy_card(identity: &str, previous: Option<&cardinal_card::CardId>) -> (cardinal_card::CardId, RawSignedModel) {
    let key = SigningKey::generate();
    let mut builder =
        CardBuilder::new(Identity::parse(identity).unwrap(), &key, now()).extra_snapshot(vec![b'x'; 1024]);
    if let Some(previous) = previous {
        builder = builder.previous(previous.clone());
    }
    let (id, mut raw) = builder.build();
    for signer in 0..3 {
        raw.signatures.push(RawSignature {
            signer: format!("app{signer}"),
            signature: b64::encode_std(&[7u8; 83]),
            snapshot: Some(b64::encode_std(&[b'y'; 1024])),
        });
    }
    (id, raw)
}

async fn virgil_search(app: &TestApp, identities: &[&str]) -> reqwest::Response {
    app.client
        .post(app.url("/card/v5/actions/search"))
        .header("Authorization", format!("Virgil {}", app.virgil_token("reader")))
        .json(&json!({"identities": identities}))
        .send()
        .await
        .unwrap()
}

/// The review's amplification: one identity made a 200-byte search return 62 MB. Now a card's
/// snapshot, signatures and size are bounded, a search returns the newest few cards of a chain,
/// and no answer exceeds `limits.answer_bytes`.
async fn a_poisoned_identity_cannot_inflate_answers(backend: Backend) {
    let settings = vec![
        ("limits.answer_bytes", json!(30_000)),
        ("limits.search_cards_per_chain", json!(3)),
        ("rate_limits.enabled", json!(false)),
    ];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    // What the review published, a 62 KB snapshot, and the pieces of it: all refused.
    let key = SigningKey::generate();
    let huge = format!(
        r#"{{"identity":"mallory","created_at":1,"version":"5.0","public_key":"{}","pad":"{}"}}"#,
        key.public_key().to_spki_base64(),
        "p".repeat(45_000)
    );
    let signed = |snapshot: &str| {
        json!({"content_snapshot": b64::encode_std(snapshot.as_bytes()), "signatures": [
            {"signer": "self", "signature": b64::encode_std(&key.sign_virgil(snapshot.as_bytes()))}]})
    };
    assert_problem(app.publish_raw(&app.user_token("mallory"), &signed(&huge)).await, 400, "snapshot_too_large").await;
    let unknown = format!(
        r#"{{"identity":"mallory","created_at":1,"version":"5.0","public_key":"{}","pad":"p"}}"#,
        key.public_key().to_spki_base64()
    );
    assert_problem(app.publish_raw(&app.user_token("mallory"), &signed(&unknown)).await, 400, "invalid_snapshot").await;
    let (_, mut too_big) = heavy_card("mallory", None);
    for signer in 3..7 {
        too_big.signatures.push(RawSignature {
            signer: format!("app{signer}"),
            signature: b64::encode_std(&[7u8; 83]),
            snapshot: Some(b64::encode_std(&[b'y'; 1024])),
        });
    }
    assert_problem(app.publish("mallory", &too_big).await, 400, "card_too_large").await;
    let mut long_signature = new_card("mallory").raw;
    long_signature.signatures.push(RawSignature {
        signer: "app".into(),
        signature: b64::encode_std(&[1u8; 600]),
        snapshot: None,
    });
    assert_problem(app.publish("mallory", &long_signature).await, 400, "invalid_signature_entry").await;

    // Five poisoned identities, each a chain of ten heavy rotations.
    let poisoned = ["m0", "m1", "m2", "m3", "m4"];
    let mut newest = Vec::new();
    for identity in poisoned {
        let mut ids = Vec::new();
        let mut previous = None;
        for _ in 0..10 {
            let (id, raw) = heavy_card(identity, previous.as_ref());
            assert!(serde_json::to_string(&raw).unwrap().len() > 6_000);
            let response = app.publish(identity, &raw).await;
            assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
            previous = Some(id.clone());
            ids.push(id.to_string());
        }
        newest.push(ids[7..].to_vec());
    }
    // One identity: its three newest cards, well under the bound.
    let response = virgil_search(&app, &["m0"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    assert!(body.len() <= 30_000, "{}", body.len());
    let cards: Vec<RawSignedModel> = serde_json::from_slice(&body).unwrap();
    let mut ids: Vec<String> = cards
        .iter()
        .map(|c| cardinal_card::CardId::of_snapshot(&b64::decode_std(&c.content_snapshot).unwrap()).to_string())
        .collect();
    ids.sort();
    let mut expected = newest[0].clone();
    expected.sort();
    assert_eq!(ids, expected, "the newest three of the chain");
    // All five: over the bound, refused with a code the SDKs surface, not 100 KB sent.
    let response = virgil_search(&app, &poisoned).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 40048);
    let response = app.lookup(&app.user_token("reader"), &poisoned, None).await;
    assert_problem(response, 400, "answer_too_large").await;
    let ok = app.lookup(&app.user_token("reader"), &poisoned[..3], None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.bytes().await.unwrap().len() <= 30_000);
    // An events page ends before the bound instead of exceeding it.
    let page = app
        .client
        .get(app.url("/v1/admin/events?after=0&limit=1000"))
        .bearer_auth(app.admin_token("root"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page: Value = page.json().await.unwrap();
    let events = page["events"].as_array().unwrap();
    let bytes: usize = events.iter().map(|e| e["event"].to_string().len()).sum();
    assert!(!events.is_empty() && bytes <= 30_000 + 2_000, "{bytes}");
}

/// Under `cards_per_identity = "multiple"`, live chains per identity are capped, even when the
/// roots race.
async fn live_chains_per_identity_are_capped_under_concurrency(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Options {
            policy: cardinal_server::domain::CardsPerIdentity::Multiple,
            settings: vec![("limits.live_chains_per_identity", json!(3)), ("rate_limits.enabled", json!(false))],
            ..Options::default()
        },
    )
    .await;
    let cards: Vec<_> = (0..12).map(|_| new_card("alice")).collect();
    let publishes: Vec<_> = cards.iter().map(|card| app.publish("alice", &card.raw)).collect();
    let responses = futures_util::future::join_all(publishes).await;
    let mut statuses = Vec::new();
    for response in responses {
        let status = response.status();
        if status != StatusCode::CREATED {
            assert_problem(response, 409, "too_many_chains").await;
        }
        statuses.push(status);
    }
    assert_eq!(count(&statuses, StatusCode::CREATED), 3, "{statuses:?}");
    let found: Value = app.lookup(&app.user_token("bob"), &["alice"], None).await.json().await.unwrap();
    assert_eq!(found["identities"]["alice"].as_array().unwrap().len(), 3);
}

/// A revocation reason is free text: the owner and admins read it, other users do not.
async fn revocation_reasons_are_shown_to_the_owner_and_admins_only(backend: Backend) {
    let app = spawn_app_with(backend, Options::default()).await;
    let card = new_card("alice");
    app.published("alice", &card).await;
    let revoked = app.revoke(&app.user_token("alice"), card.id.as_str(), Some("lost my phone at the clinic")).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let view = |token: String| {
        let app = &app;
        let id = card.id.as_str().to_owned();
        async move { app.get_card(&token, &id).await.json::<Value>().await.unwrap() }
    };
    assert_eq!(view(app.user_token("alice")).await["revocation_reason"], "lost my phone at the clinic");
    assert_eq!(view(app.admin_token("root")).await["revocation_reason"], "lost my phone at the clinic");
    let other = view(app.user_token("bob")).await;
    assert_eq!((other["status"].as_str(), other["revocation_reason"].is_null()), (Some("revoked"), true), "{other}");
}

/// Identities are printable ASCII with spaces: logged quoted, one cannot pose as log fields.
async fn user_controlled_log_fields_are_quoted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = db.dir().to_owned();
    let store = cardinal_server::storage::connect(
        &db.url,
        &cardinal_server::storage::PoolSettings::simple(2, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let policy = cardinal_server::domain::CardsPerIdentity::Single;
    let clock = cardinal_server::clock::SystemClock;
    let admin = cardinal_server::apps::AppAdmin::new(store.as_ref(), &clock);
    admin.create_app("default", policy, "test").await.unwrap();
    let key = SigningKey::generate();
    let kid = admin
        .add_key("default", cardinal_server::domain::KeyRole::App, &key.public_key(), None, "test")
        .await
        .unwrap()
        .kid;
    store.close().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("CARDINAL_LOG__FORMAT", "pretty"),
        ("CARDINAL_BOOTSTRAP__ENABLED", "false"),
    ];
    let Spawned { process: child, port, lines, .. } = spawn_binary(&dir, &env);
    let identity = "m app=other identity=alice";
    let token = cardinal_server::auth::jwt::mint_eddsa(
        &key,
        &kid,
        &cardinal_server::auth::jwt::Claims {
            iss: "default".into(),
            sub: identity.into(),
            iat: now(),
            exp: now() + 60,
            nbf: None,
        },
    )
    .unwrap();
    let card = new_card(identity);
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/cards"))
        .bearer_auth(token)
        .json(&card.raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut published = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while published.is_none() && std::time::Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            published = line.contains("card published").then_some(line);
        }
    }
    drop(child);
    let line = published.expect("the publish is logged");
    assert!(line.contains(r#"identity="m app=other identity=alice""#), "{line}");
    assert!(line.contains(r#"app="default""#), "the real app is a quoted field too: {line}");
}

crate::on_both_backends!(
    every_spelling_of_a_route_shares_its_rate_limit,
    weak_keys_are_refused_and_cannot_be_forged_for,
    a_token_whose_lifetime_overflows_is_refused,
    a_poisoned_identity_cannot_inflate_answers,
    live_chains_per_identity_are_capped_under_concurrency,
    revocation_reasons_are_shown_to_the_owner_and_admins_only,
    user_controlled_log_fields_are_quoted,
);
