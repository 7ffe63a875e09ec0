//! The Virgil Cards v5 surface, pinned at the HTTP level: what the official SDKs read.

use cardinal_card::{ParsedCard, RawSignedModel};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, new_card, now, rotation_of, spawn_app};
use crate::support::Backend;

fn virgil(app: &TestApp, identity: &str) -> String {
    format!("Virgil {}", app.virgil_token(identity))
}

async fn post(app: &TestApp, path: &str, auth: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).header("Authorization", auth).json(body).send().await.unwrap()
}

async fn assert_virgil_error(response: reqwest::Response, status: u16, code: u64) {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.expect("every Virgil 4xx has a JSON body");
    assert_eq!((actual, body["code"].as_u64()), (status, Some(code)), "{body}");
    assert!(body["message"].is_string());
}

async fn publish_get_search_and_revoke_speak_virgil(backend: Backend) {
    let app = spawn_app(backend).await;
    let auth = virgil(&app, "alice");
    let first = new_card("alice");

    let response = post(&app, "/card/v5", &auth, &serde_json::to_value(&first.raw).unwrap()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let published: RawSignedModel = response.json().await.unwrap();
    assert_eq!(published.content_snapshot, first.raw.content_snapshot, "the snapshot comes back exactly as sent");
    assert_eq!(published.signatures.len(), 2);
    assert_eq!(published.signatures[1].signer, "virgil");
    let parsed = ParsedCard::parse_published(published.clone(), &Default::default()).unwrap();
    assert!(parsed.has_valid_countersignature(&app.service_key().await));

    // A trailing slash in the SDK's apiUrl gives "//card/v5": tolerated.
    let response = app
        .client
        .get(app.url(&format!("//card/v5/{}", first.id)))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-virgil-is-superseeded").is_none());
    let got: RawSignedModel = response.json().await.unwrap();
    assert_eq!(got, published);

    // Rotate; search returns the whole unrevoked chain so the SDK can fold it.
    let second = rotation_of("alice", &first.id);
    assert_eq!(
        post(&app, "/card/v5", &auth, &serde_json::to_value(&second.raw).unwrap()).await.status(),
        StatusCode::CREATED
    );
    let response =
        app.client.get(app.url(&format!("/card/v5/{}", first.id))).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(response.headers()["x-virgil-is-superseeded"], "true");
    let found: Vec<RawSignedModel> =
        post(&app, "/card/v5/actions/search", &auth, &json!({"identities": ["alice", "bob"]}))
            .await
            .json()
            .await
            .unwrap();
    let ids: Vec<String> = found
        .iter()
        .map(|c| ParsedCard::parse_published(c.clone(), &Default::default()).unwrap().id.to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.id.to_string()) && ids.contains(&second.id.to_string()));
    let single: Vec<Value> =
        post(&app, "/card/v5/actions/search", &auth, &json!({"identity": "alice"})).await.json().await.unwrap();
    assert_eq!(single.len(), 2, "the real service also took a single identity");

    // Revoke the newest card (as e3kit's unregister does): the whole chain disappears.
    let response = post(&app, &format!("/card/v5/actions/revoke/{}", second.id), &auth, &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap().is_empty(), "the SDK ignores the body: none is sent");
    let found: Vec<Value> =
        post(&app, "/card/v5/actions/search", &auth, &json!({"identities": ["alice"]})).await.json().await.unwrap();
    assert!(found.is_empty());
    for id in [&first.id, &second.id] {
        let response =
            app.client.get(app.url(&format!("/card/v5/{id}"))).header("Authorization", &auth).send().await.unwrap();
        assert_eq!(response.headers()["x-virgil-is-superseeded"], "true", "a revoked card is outdated too");
    }
    assert_virgil_error(
        post(&app, "/card/v5", &auth, &serde_json::to_value(&rotation_of("alice", &second.id).raw).unwrap()).await,
        403,
        40310,
    )
    .await;
    // Re-registering after unregister: a new root card.
    assert_eq!(
        post(&app, "/card/v5", &auth, &serde_json::to_value(&new_card("alice").raw).unwrap()).await.status(),
        StatusCode::CREATED
    );
}

async fn errors_carry_virgil_statuses_and_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let auth = virgil(&app, "alice");
    let card = new_card("alice");
    let body = serde_json::to_value(&card.raw).unwrap();
    let t = now();
    let expired = format!(
        "Virgil {}",
        cardinal_card::virgil_jwt::sign(&app.app_key, &app.app_kid, crate::helpers::APP, "alice", t - 7200, t - 3600)
    );

    assert_virgil_error(post(&app, "/card/v5", &expired, &body).await, 401, 20304).await;
    assert_virgil_error(app.client.post(app.url("/card/v5")).json(&body).send().await.unwrap(), 401, 20300).await;
    assert_virgil_error(post(&app, "/card/v5", &virgil(&app, "bob"), &body).await, 400, 40034).await;
    assert_virgil_error(
        post(&app, "/card/v5", &auth, &json!({"content_snapshot": "", "signatures": []})).await,
        400,
        40001,
    )
    .await;
    assert_virgil_error(
        post(&app, "/card/v5", &auth, &json!({"content_snapshot": "***", "signatures": []})).await,
        400,
        40002,
    )
    .await;
    assert_virgil_error(post(&app, "/card/v5", &auth, &json!([1, 2])).await, 400, 30001).await;
    let mut reserved = card.raw.clone();
    reserved.signatures.push(cardinal_card::RawSignature {
        signer: "virgil".into(),
        signature: "AAAA".into(),
        snapshot: None,
    });
    assert_virgil_error(post(&app, "/card/v5", &auth, &serde_json::to_value(&reserved).unwrap()).await, 400, 40007)
        .await;
    assert_eq!(post(&app, "/card/v5", &auth, &body).await.status(), StatusCode::CREATED);
    assert_virgil_error(post(&app, "/card/v5", &auth, &body).await, 400, 40027).await;
    assert_virgil_error(post(&app, "/card/v5/actions/search", &auth, &json!({"identities": []})).await, 400, 40200)
        .await;
    let too_many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    assert_virgil_error(
        post(&app, "/card/v5/actions/search", &auth, &json!({"identities": too_many})).await,
        400,
        40300,
    )
    .await;
    assert_virgil_error(
        post(&app, "/card/v5/actions/search", &auth, &json!({"identities": ["caf\u{e9}"]})).await,
        400,
        40017,
    )
    .await;
    let missing = app
        .client
        .get(app.url(&format!("/card/v5/{}", "ab".repeat(32))))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_virgil_error(missing, 404, 10001).await;
    assert_virgil_error(
        post(&app, &format!("/card/v5/actions/revoke/{}", card.id), &virgil(&app, "bob"), &json!({})).await,
        403,
        40100,
    )
    .await;
    assert_virgil_error(post(&app, "/card/v5/nothing/here", &auth, &json!({})).await, 404, 10001).await;
    // The native Bearer scheme works here too.
    let response = app
        .client
        .post(app.url("/card/v5/actions/search"))
        .bearer_auth(app.user_token("bob"))
        .json(&json!({"identities": ["alice"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn browsers_get_the_cors_headers_virgil_clients_need(backend: Backend) {
    let app = spawn_app(backend).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/card/v5/actions/search"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, virgil-agent, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("virgil-agent"), "{allowed}");
    let card = new_card("alice");
    app.published("alice", &card).await;
    let response = app
        .client
        .get(app.url(&format!("/card/v5/{}", card.id)))
        .header("Origin", "https://app.example.com")
        .header("Authorization", virgil(&app, "alice"))
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("x-virgil-is-superseeded"), "{exposed}");
}

crate::on_both_backends!(
    publish_get_search_and_revoke_speak_virgil,
    errors_carry_virgil_statuses_and_codes,
    browsers_get_the_cors_headers_virgil_clients_need,
);
