//! `POST /pythia/v1/brainkey`: seeds on both token schemes, every malformed input refused with a
//! stable Virgil code, and the throttle on password guesses.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, metric, spawn_app, spawn_app_with};
use crate::support::Backend;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../crates/pythia/tests/vectors/pythia.json")).unwrap()
}

fn blinded(index: usize) -> String {
    vectors()["evaluation"][index]["blinded_password"].as_str().unwrap().to_owned()
}

async fn brainkey(app: &TestApp, authorization: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/pythia/v1/brainkey"))
        .header("Authorization", authorization)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn seed(app: &TestApp, authorization: &str, blinded_password: &str) -> Vec<u8> {
    use base64::Engine;
    let response = brainkey(app, authorization, &json!({ "blinded_password": blinded_password })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    base64::engine::general_purpose::STANDARD.decode(body["seed"].as_str().unwrap()).unwrap()
}

async fn assert_virgil_error(response: reqwest::Response, status: u16, code: u64) -> reqwest::header::HeaderMap {
    let actual = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("every Pythia error has a JSON body");
    assert_eq!((actual, body["code"].as_u64()), (status, Some(code)), "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
    headers
}

async fn pythia_answers_both_token_schemes_with_a_seed_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let x = blinded(0);
    let virgil = seed(&app, &format!("Virgil {}", app.virgil_token("alice")), &x).await;
    let bearer = seed(&app, &format!("Bearer {}", app.user_token("alice")), &x).await;
    assert_eq!(virgil.len(), 384);
    assert_eq!(virgil, bearer, "one user, one key, whichever scheme carries the token");
    assert_eq!(seed(&app, &format!("Virgil {}", app.virgil_token("alice")), &x).await, virgil);
    assert_ne!(seed(&app, &format!("Virgil {}", app.virgil_token("bob")), &x).await, virgil);
    let named = brainkey(
        &app,
        &format!("Virgil {}", app.virgil_token("alice")),
        &json!({ "blinded_password": x, "brainkey_id": "work" }),
    )
    .await;
    assert_eq!(named.status(), StatusCode::OK);
    let named: Value = named.json().await.unwrap();
    assert_ne!(named["seed"].as_str().unwrap().len(), 0);
    assert!(metric(&app.client, &app.address, "cardinal_pythia_evaluations_total{outcome=\"ok\"}").await >= 5.0);
}

async fn pythia_refuses_every_malformed_input_with_a_stable_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let auth = format!("Virgil {}", app.virgil_token("alice"));
    let codes = [60102, 60102, 60102, 60105, 60103, 60104, 60102, 60102, 60101];
    let vectors = vectors();
    let invalid = vectors["invalid_blinded_passwords"].as_array().unwrap();
    assert_eq!(invalid.len(), codes.len());
    for (case, code) in invalid.iter().zip(codes) {
        let response = brainkey(&app, &auth, &json!({ "blinded_password": case["blinded_password"] })).await;
        assert_virgil_error(response, 400, code).await;
    }
    let too_long = json!({ "blinded_password": blinded(0), "brainkey_id": "k".repeat(129) });
    assert_virgil_error(brainkey(&app, &auth, &too_long).await, 400, 60106).await;
    for body in [json!({}), json!({ "blinded_password": 7 }), json!([])] {
        assert_virgil_error(brainkey(&app, &auth, &body).await, 400, 30001).await;
    }
    let not_json =
        app.client.post(app.url("/pythia/v1/brainkey")).header("Authorization", &auth).body("{").send().await.unwrap();
    assert_virgil_error(not_json, 400, 30001).await;
    // An admin is no user with a backup, even one named like a user.
    let admin = format!("Bearer {}", app.admin_token("alice"));
    assert_virgil_error(brainkey(&app, &admin, &json!({ "blinded_password": blinded(0) })).await, 403, 60107).await;
    let anonymous = app.client.post(app.url("/pythia/v1/brainkey")).json(&json!({})).send().await.unwrap();
    assert_virgil_error(anonymous, 401, 20300).await;
    // The rest of /pythia speaks Virgil's shape too.
    let get = app.client.get(app.url("/pythia/v1/brainkey")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(assert_virgil_error(get, 405, 10001).await["allow"], "POST");
    let unknown = app.client.post(app.url("/pythia/v1/password")).header("Authorization", &auth).send().await.unwrap();
    assert_virgil_error(unknown, 404, 10001).await;
}

async fn pythia_throttles_a_burst_of_guesses_per_identity_and_per_address(backend: Backend) {
    let settings = vec![
        ("rate_limits.brainkey.per_identity_burst", json!(3)),
        ("rate_limits.brainkey.per_identity_per_minute", json!(1)),
        ("rate_limits.brainkey.per_address_burst", json!(6)),
        ("rate_limits.brainkey.per_address_per_minute", json!(1)),
    ];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let x = json!({ "blinded_password": blinded(1) });
    let alice = format!("Virgil {}", app.virgil_token("alice"));
    for _ in 0..3 {
        assert_eq!(brainkey(&app, &alice, &x).await.status(), StatusCode::OK);
    }
    let headers = assert_virgil_error(brainkey(&app, &alice, &x).await, 429, 60007).await;
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another identity is served normally, and a malformed guess counts as a guess.
    let bob = format!("Virgil {}", app.virgil_token("bob"));
    assert_eq!(brainkey(&app, &bob, &x).await.status(), StatusCode::OK);
    assert_virgil_error(brainkey(&app, &alice, &json!({ "blinded_password": "AA==" })).await, 429, 60007).await;
    // Six requests came from this address: the seventh, whoever it is for, waits.
    let carol = format!("Virgil {}", app.virgil_token("carol"));
    assert_virgil_error(brainkey(&app, &carol, &x).await, 429, 60007).await;
    assert_eq!(metric(&app.client, &app.address, "cardinal_pythia_throttled_total{scope=\"identity\"}").await, 2.0);
    assert_eq!(metric(&app.client, &app.address, "cardinal_pythia_throttled_total{scope=\"address\"}").await, 1.0);
    // Other routes keep their own budgets.
    let lookup = app.lookup(&app.user_token("carol"), &["alice"], None).await;
    assert_eq!(lookup.status(), StatusCode::OK);
}

async fn pythia_is_not_served_when_disabled(backend: Backend) {
    let settings = vec![("pythia.enabled", json!(false))];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let auth = format!("Virgil {}", app.virgil_token("alice"));
    assert_virgil_error(brainkey(&app, &auth, &json!({ "blinded_password": blinded(0) })).await, 404, 10001).await;
    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(document["paths"]["/pythia/v1/brainkey"].is_null(), "an unserved route is not documented");
}

async fn pythia_is_documented_with_its_virgil_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operation = &document["paths"]["/pythia/v1/brainkey"]["post"];
    for code in ["60101", "60102", "60103", "60104", "60105", "60106"] {
        assert!(operation["responses"]["400"]["description"].as_str().unwrap().contains(code), "{code}");
    }
    assert!(operation["responses"]["429"]["description"].as_str().unwrap().contains("60007"));
    let body = &operation["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["properties"]["brainkey_id"]["maxLength"], 128);
    assert_eq!(document["components"]["schemas"]["VirgilError"]["required"], json!(["code", "message"]));
}

crate::on_both_backends!(
    pythia_answers_both_token_schemes_with_a_seed_per_user,
    pythia_refuses_every_malformed_input_with_a_stable_code,
    pythia_throttles_a_burst_of_guesses_per_identity_and_per_address,
    pythia_is_not_served_when_disabled,
    pythia_is_documented_with_its_virgil_codes,
);
