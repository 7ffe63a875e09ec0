//! Every way a token is refused, on both schemes; and both schemes accepted everywhere.

use cardinal_card::SigningKey;
use cardinal_card::b64::encode_url;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{APP, Options, TestApp, assert_problem, new_card, now, spawn_app, spawn_app_with};
use crate::support::Backend;

async fn lookup_with(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/v1/cards?identity=alice"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap()
}

fn unsigned(header: serde_json::Value, claims: serde_json::Value) -> String {
    format!("{}.{}.", encode_url(header.to_string().as_bytes()), encode_url(claims.to_string().as_bytes()))
}

/// A real HS256 token (Cardinal's jsonwebtoken provider signs nothing but EdDSA, so it is
/// made here): the algorithm-confusion attack keys HMAC with the public key.
fn hs256(kid: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
    let input = unsigned(json!({"alg": "HS256", "typ": "JWT", "kid": kid}), claims.clone());
    let input = input.trim_end_matches('.');
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", encode_url(&mac.finalize().into_bytes()))
}

/// Every flawed token this suite knows, as (case, Authorization header, the code it gets).
/// `cardinal token inspect` must explain each the same way (tests/api/operator.rs).
pub(crate) async fn flawed_tokens(app: &TestApp) -> Vec<(&'static str, Option<String>, &'static str)> {
    let (key, kid) = (&app.app_key, app.app_kid.as_str());
    let t = now();
    let claims = json!({"iss": APP, "sub": "alice", "iat": t, "exp": t + 600});
    let hs256_with_public_key = hs256(kid, &claims, key.public_key().to_spki_pem().as_bytes());
    let hs256_with_raw_key = hs256(kid, &claims, key.public_key().raw_bytes());
    let revoked = SigningKey::generate();
    let revoked_kid = app
        .admin()
        .add_key(APP, cardinal_server::domain::KeyRole::App, &revoked.public_key(), None, "test")
        .await
        .unwrap()
        .kid;
    app.admin().revoke_key(&revoked_kid, "test").await.unwrap();

    vec![
        ("no header", None, "token_missing"),
        ("garbage", Some("Bearer not.a.token".into()), "token_invalid"),
        ("unknown scheme", Some(format!("Basic {}", app.user_token("alice"))), "token_invalid"),
        (
            "expired",
            Some(format!("Bearer {}", app.token_with(key, kid, APP, "alice", t - 7200, t - 3600))),
            "token_expired",
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", app.token_with(key, kid, APP, "alice", t + 3600, t + 7200))),
            "token_expired",
        ),
        (
            "alg none",
            Some(format!("Bearer {}", unsigned(json!({"alg": "none", "kid": kid, "typ": "JWT"}), claims.clone()))),
            "token_invalid",
        ),
        ("HS256 keyed with the public key PEM", Some(format!("Bearer {hs256_with_public_key}")), "token_invalid"),
        ("HS256 keyed with the raw public key", Some(format!("Bearer {hs256_with_raw_key}")), "token_invalid"),
        (
            "unknown kid",
            Some(format!("Bearer {}", app.token_with(key, "no-such-kid", APP, "alice", t, t + 600))),
            "token_invalid",
        ),
        (
            "revoked key",
            Some(format!("Bearer {}", app.token_with(&revoked, &revoked_kid, APP, "alice", t, t + 600))),
            "token_invalid",
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {}", app.token_with(key, kid, "other-app", "alice", t, t + 600))),
            "token_invalid",
        ),
        (
            "signed by another key",
            Some(format!("Bearer {}", app.token_with(&SigningKey::generate(), kid, APP, "alice", t, t + 600))),
            "token_invalid",
        ),
        (
            "lifetime over the cap",
            Some(format!("Bearer {}", app.token_with(key, kid, APP, "alice", t, t + 86_400 * 2))),
            "token_invalid",
        ),
        (
            "subject not an identity",
            Some(format!("Bearer {}", app.token_with(key, kid, APP, "", t, t + 600))),
            "token_invalid",
        ),
        ("oversized", Some(format!("Bearer {}", "a".repeat(10_000))), "token_invalid"),
        (
            "virgil expired",
            Some(format!("Virgil {}", cardinal_card::virgil_jwt::sign(key, kid, APP, "alice", t - 7200, t - 3600))),
            "token_expired",
        ),
        (
            "virgil wrong app",
            Some(format!("Virgil {}", cardinal_card::virgil_jwt::sign(key, kid, "other-app", "alice", t, t + 600))),
            "token_invalid",
        ),
        (
            "virgil signed by another key",
            Some(format!(
                "Virgil {}",
                cardinal_card::virgil_jwt::sign(&SigningKey::generate(), kid, APP, "alice", t, t + 600)
            )),
            "token_invalid",
        ),
        ("virgil scheme with a bearer token", Some(format!("Virgil {}", app.user_token("alice"))), "token_invalid"),
        ("bearer scheme with a virgil token", Some(format!("Bearer {}", app.virgil_token("alice"))), "token_invalid"),
    ]
}

async fn bearer_tokens_are_refused_for_every_flaw(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = flawed_tokens(&app).await;
    for (name, header, code) in cases {
        let response = lookup_with(&app, header.as_deref()).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!((status, body["code"].as_str()), (401, Some(code)), "case {name:?}: {body}");
    }
}

async fn both_schemes_are_accepted_for_publish_and_lookup(backend: Backend) {
    let app = spawn_app(backend).await;
    let card = new_card("alice");
    let response = app
        .client
        .post(app.url("/v1/cards"))
        .header("Authorization", format!("Virgil {}", app.virgil_token("alice")))
        .json(&card.raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = lookup_with(&app, Some(&format!("virgil {}", app.virgil_token("bob")))).await;
    assert_eq!(response.status(), StatusCode::OK, "the scheme is case-insensitive");
    let response = lookup_with(&app, Some(&format!("Bearer {}", app.user_token("bob")))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_card_for_another_identity_than_the_token_is_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let card = new_card("alice");
    let response = app.publish_raw(&app.user_token("mallory"), &serde_json::to_value(&card.raw).unwrap()).await;
    assert_problem(response, 403, "identity_mismatch").await;
}

/// Keys and verified tokens are remembered for `auth.credential_cache_ms`: a revocation takes
/// effect within that window, for tokens already seen and for new ones; with a zero window, at once.
async fn a_revoked_key_stops_working_within_the_credential_window(backend: Backend) {
    // Long enough that the caches' own expiry (real time) never runs out during the test.
    let window_ms = 60_000;
    let app = spawn_app_with(
        backend,
        Options { settings: vec![("auth.credential_cache_ms", json!(window_ms))], ..Options::default() },
    )
    .await;
    let seen = format!("Bearer {}", app.user_token("alice"));
    assert_eq!(lookup_with(&app, Some(&seen)).await.status(), StatusCode::OK);
    // A token first seen half way through the key's window is verified against the remembered
    // key... (half way: the real time the requests take never reaches the window's end)
    app.clock.advance(std::time::Duration::from_millis(window_ms / 2));
    let late = format!("Bearer {}", app.user_token("carol"));
    assert_eq!(lookup_with(&app, Some(&late)).await.status(), StatusCode::OK);
    app.admin().revoke_key(&app.app_kid, "test").await.unwrap();
    assert_eq!(lookup_with(&app, Some(&seen)).await.status(), StatusCode::OK, "within the window: remembered");
    // ...and forgotten with it: a revocation takes one window, never the late token's own.
    app.clock.advance(std::time::Duration::from_millis(window_ms / 2));
    assert_problem(lookup_with(&app, Some(&seen)).await, 401, "token_invalid").await;
    assert_problem(lookup_with(&app, Some(&late)).await, 401, "token_invalid").await;
    let fresh = format!("Bearer {}", app.user_token("bob"));
    assert_problem(lookup_with(&app, Some(&fresh)).await, 401, "token_invalid").await;

    let app = spawn_app_with(
        backend,
        Options { settings: vec![("auth.credential_cache_ms", json!(0))], ..Options::default() },
    )
    .await;
    let seen = format!("Bearer {}", app.user_token("alice"));
    assert_eq!(lookup_with(&app, Some(&seen)).await.status(), StatusCode::OK);
    app.admin().revoke_key(&app.app_kid, "test").await.unwrap();
    assert_problem(lookup_with(&app, Some(&seen)).await, 401, "token_invalid").await;
}

/// A remembered token is still refused once it expires.
async fn a_remembered_token_expires_on_time(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Options {
            settings: vec![("auth.credential_cache_ms", json!(60_000)), ("auth.clock_skew_secs", json!(0))],
            ..Options::default()
        },
    )
    .await;
    let t = now();
    let short = format!("Bearer {}", app.token_with(&app.app_key, &app.app_kid, APP, "alice", t - 10, t + 2));
    assert_eq!(lookup_with(&app, Some(&short)).await.status(), StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(3));
    assert_problem(lookup_with(&app, Some(&short)).await, 401, "token_expired").await;
}

crate::on_both_backends!(
    a_revoked_key_stops_working_within_the_credential_window,
    a_remembered_token_expires_on_time,
    bearer_tokens_are_refused_for_every_flaw,
    both_schemes_are_accepted_for_publish_and_lookup,
    a_card_for_another_identity_than_the_token_is_forbidden,
);
