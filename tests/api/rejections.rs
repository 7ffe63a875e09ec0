//! Every way a publish, a lookup or a request can be refused: status and stable code, never a 500.

use cardinal_card::b64::encode_std;
use cardinal_card::{RawSignature, RawSignedModel, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, assert_problem, new_card, now, rotation_of, spawn_app, spawn_app_with};
use crate::support::Backend;

/// A card over an arbitrary snapshot, correctly self-signed, so only the snapshot is wrong.
fn signed(snapshot: &str, key: &SigningKey) -> Value {
    json!({
        "content_snapshot": encode_std(snapshot.as_bytes()),
        "signatures": [{"signer": "self", "signature": encode_std(&key.sign_virgil(snapshot.as_bytes()))}],
    })
}

fn snapshot(identity: &str, key: &SigningKey, extra: &str) -> String {
    format!(
        r#"{{"identity":"{identity}","created_at":{},"version":"5.0","public_key":"{}"{extra}}}"#,
        now(),
        key.public_key().to_spki_base64()
    )
}

fn with_signatures(card: &RawSignedModel, signatures: Vec<RawSignature>) -> Value {
    json!({"content_snapshot": card.content_snapshot, "signatures": signatures})
}

fn entry(signer: &str, signature: &str, snapshot: Option<&str>) -> RawSignature {
    RawSignature { signer: signer.into(), signature: signature.into(), snapshot: snapshot.map(str::to_owned) }
}

async fn every_publish_validation_has_its_status_and_code(backend: Backend) {
    // Room for Virgil's own key-size limit (4096 bytes) inside the snapshot and card limits,
    // which are checked here with their own cases.
    let roomy = vec![
        ("limits.snapshot_bytes", json!(16_384)),
        ("limits.card_bytes", json!(32_768)),
        ("rate_limits.enabled", json!(false)),
    ];
    let app = spawn_app_with(backend, Options { settings: roomy, ..Options::default() }).await;
    let token = app.user_token("alice");
    let key = SigningKey::generate();
    let good = new_card("alice");
    let self_sig = good.raw.signatures[0].clone();
    let long_identity = "a".repeat(1025);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("body not JSON", json!("not a card"), 400, "invalid_request"),
        ("wrong field type", json!({"content_snapshot": 5, "signatures": []}), 400, "invalid_request"),
        ("snapshot empty", json!({"content_snapshot": "", "signatures": [self_sig]}), 400, "invalid_snapshot"),
        ("snapshot not base64", json!({"content_snapshot": "%%%", "signatures": [self_sig]}), 400, "invalid_snapshot"),
        ("snapshot not JSON", signed("hello", &key), 400, "invalid_snapshot"),
        (
            "snapshot duplicate key",
            signed(&snapshot("alice", &key, r#","identity":"bob""#), &key),
            400,
            "invalid_snapshot",
        ),
        ("identity empty", signed(&snapshot("", &key, ""), &key), 400, "invalid_identity"),
        ("identity too long", signed(&snapshot(&long_identity, &key, ""), &key), 400, "invalid_identity"),
        ("identity not ASCII", signed(&snapshot("al\\u00efce", &key, ""), &key), 400, "invalid_identity"),
        ("identity of another user", signed(&snapshot("bob", &key, ""), &key), 403, "identity_mismatch"),
        (
            "version",
            signed(&snapshot("alice", &key, "").replace(r#""version":"5.0""#, r#""version":"4.0""#), &key),
            400,
            "invalid_version",
        ),
        (
            "created_at zero",
            signed(
                &format!(
                    r#"{{"identity":"alice","created_at":0,"version":"5.0","public_key":"{}"}}"#,
                    key.public_key().to_spki_base64()
                ),
                &key,
            ),
            400,
            "invalid_created_at",
        ),
        (
            "public key not base64",
            signed(r#"{"identity":"alice","created_at":1,"version":"5.0","public_key":"***"}"#, &key),
            400,
            "invalid_public_key",
        ),
        (
            "public key too short",
            signed(r#"{"identity":"alice","created_at":1,"version":"5.0","public_key":"AAAA"}"#, &key),
            400,
            "invalid_public_key",
        ),
        (
            "public key too long",
            signed(
                &format!(
                    r#"{{"identity":"alice","created_at":1,"version":"5.0","public_key":"{}"}}"#,
                    encode_std(&[1u8; 4097])
                ),
                &key,
            ),
            400,
            "invalid_public_key",
        ),
        (
            "public key not Ed25519",
            signed(
                &format!(
                    r#"{{"identity":"alice","created_at":1,"version":"5.0","public_key":"{}"}}"#,
                    encode_std(&[0x30u8; 91])
                ),
                &key,
            ),
            400,
            "unsupported_key_type",
        ),
        (
            "previous id malformed",
            signed(&snapshot("alice", &key, r#","previous_card_id":"xyz""#), &key),
            400,
            "invalid_previous_card_id",
        ),
        ("no signatures", with_signatures(&good.raw, vec![]), 400, "invalid_signature_entry"),
        (
            "too many signatures",
            with_signatures(
                &good.raw,
                std::iter::once(self_sig.clone())
                    .chain((0..8).map(|i| entry(&format!("s{i}"), "AAAA", None)))
                    .collect(),
            ),
            400,
            "too_many_signatures",
        ),
        (
            "signer empty",
            with_signatures(&good.raw, vec![self_sig.clone(), entry("", "AAAA", None)]),
            400,
            "invalid_signature_entry",
        ),
        (
            "signer too long",
            with_signatures(&good.raw, vec![self_sig.clone(), entry(&"s".repeat(1025), "AAAA", None)]),
            400,
            "invalid_signature_entry",
        ),
        (
            "signer virgil",
            with_signatures(&good.raw, vec![self_sig.clone(), entry("virgil", "AAAA", None)]),
            400,
            "reserved_signer",
        ),
        ("self twice", with_signatures(&good.raw, vec![self_sig.clone(), self_sig.clone()]), 400, "duplicate_signer"),
        (
            "self missing",
            with_signatures(&good.raw, vec![entry("app", &self_sig.signature, None)]),
            400,
            "self_signature_missing",
        ),
        (
            "signature not base64",
            with_signatures(&good.raw, vec![entry("self", "!!", None)]),
            400,
            "invalid_signature_entry",
        ),
        ("signature empty", with_signatures(&good.raw, vec![entry("self", "", None)]), 400, "invalid_signature_entry"),
        (
            "extra snapshot not base64",
            with_signatures(&good.raw, vec![entry("self", &self_sig.signature, Some("!!"))]),
            400,
            "invalid_signature_entry",
        ),
        (
            "extra snapshot too long",
            with_signatures(&good.raw, vec![entry("self", &self_sig.signature, Some(&encode_std(&[b'x'; 1025])))]),
            400,
            "extra_snapshot_too_large",
        ),
        (
            "snapshot over limits.snapshot_bytes",
            signed(&snapshot("alice", &key, &format!(r#","pad":"{}""#, "p".repeat(17_000))), &key),
            400,
            "snapshot_too_large",
        ),
        ("snapshot field unknown", signed(&snapshot("alice", &key, r#","pad":"p""#), &key), 400, "invalid_snapshot"),
        (
            "public key of small order",
            signed(
                &format!(
                    r#"{{"identity":"alice","created_at":1,"version":"5.0","public_key":"{}"}}"#,
                    encode_std(
                        cardinal_card::PublicKey::from_bytes(&{
                            let mut identity = [0u8; 32];
                            identity[0] = 1;
                            identity
                        })
                        .unwrap()
                        .spki_der()
                    )
                ),
                &key,
            ),
            400,
            "invalid_public_key",
        ),
        (
            "signature over limits.signature_bytes",
            with_signatures(&good.raw, vec![self_sig.clone(), entry("app", &encode_std(&[1u8; 513]), None)]),
            400,
            "invalid_signature_entry",
        ),
        (
            "self signature fails",
            with_signatures(&good.raw, vec![entry("self", &encode_std(&key.sign_virgil(b"x")), None)]),
            400,
            "bad_signature",
        ),
    ];
    for (name, body, status, code) in cases {
        let response = app.publish_raw(&token, &body).await;
        let actual = response.status().as_u16();
        let problem: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!((actual, problem["code"].as_str()), (status, Some(code)), "case {name:?}: {problem}");
    }
    let events = app.events(0, 1000).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 3, "no refused publish wrote anything");
}

async fn rotation_conflicts_name_their_cause(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    let bob = new_card("bob");
    app.published("bob", &bob).await;

    assert_problem(app.publish("alice", &alice.raw).await, 409, "card_exists").await;
    assert_problem(app.publish("alice", &new_card("alice").raw).await, 409, "identity_taken").await;
    let unknown: cardinal_card::CardId = "ab".repeat(32).parse().unwrap();
    assert_problem(app.publish("alice", &rotation_of("alice", &unknown).raw).await, 400, "previous_card_not_found")
        .await;
    assert_problem(app.publish("alice", &rotation_of("alice", &bob.id).raw).await, 409, "previous_card_mismatch").await;
    app.published("alice", &rotation_of("alice", &alice.id)).await;
    assert_problem(app.publish("alice", &rotation_of("alice", &alice.id).raw).await, 409, "already_superseded").await;
}

async fn owners_revoke_only_their_own_cards(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    assert_problem(app.revoke(&app.user_token("bob"), alice.id.as_str(), None).await, 403, "forbidden").await;
    assert_problem(app.revoke(&app.admin_token("root"), alice.id.as_str(), None).await, 403, "forbidden").await;
    assert_problem(app.revoke(&app.user_token("alice"), &"cd".repeat(32), None).await, 404, "not_found").await;
    assert_problem(app.revoke(&app.user_token("alice"), "not-an-id", None).await, 400, "invalid_card_id").await;
    assert_problem(
        app.revoke(&app.user_token("alice"), alice.id.as_str(), Some(&"r".repeat(1025))).await,
        400,
        "invalid_request",
    )
    .await;
    let card: Value = app.get_card(&app.user_token("bob"), alice.id.as_str()).await.json().await.unwrap();
    assert_eq!(card["status"], "active", "refused revocations changed nothing");
    let admin_publish =
        app.publish_raw(&app.admin_token("alice"), &serde_json::to_value(&new_card("alice").raw).unwrap()).await;
    assert_problem(admin_publish, 403, "forbidden").await;
    let events = app.client.get(app.url("/v1/admin/events")).bearer_auth(app.user_token("alice")).send().await.unwrap();
    assert_problem(events, 403, "forbidden").await;
}

async fn lookups_refuse_over_long_and_malformed_batches(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user_token("alice");
    let hundred: Vec<String> = (0..100).map(|i| format!("user{i}")).collect();
    let refs: Vec<&str> = hundred.iter().map(String::as_str).collect();
    assert_eq!(app.lookup(&token, &refs, None).await.status(), StatusCode::OK);
    assert_eq!(app.search(&token, &hundred).await.status(), StatusCode::OK);
    let mut over = hundred.clone();
    over.push("one-too-many".into());
    let refs: Vec<&str> = over.iter().map(String::as_str).collect();
    assert_problem(app.lookup(&token, &refs, None).await, 400, "too_many_identities").await;
    assert_problem(app.search(&token, &over).await, 400, "too_many_identities").await;
    // The limit bounds identities as listed: duplicates count (the Virgil surface counts distinct ones).
    let repeated = vec!["same".to_owned(); 101];
    assert_problem(app.search(&token, &repeated).await, 400, "too_many_identities").await;
    let virgil = app
        .client
        .post(app.url("/card/v5/actions/search"))
        .header("Authorization", format!("Virgil {}", app.virgil_token("alice")))
        .json(&serde_json::json!({ "identities": vec!["same"; 500] }))
        .send()
        .await
        .unwrap();
    assert_eq!(virgil.status(), StatusCode::OK);
    assert_problem(app.lookup(&token, &[], None).await, 400, "invalid_request").await;
    assert_problem(app.search(&token, &[]).await, 400, "invalid_request").await;
    assert_problem(app.lookup(&token, &["bad\u{1}identity"], None).await, 400, "invalid_identity").await;
    assert_problem(app.lookup(&token, &[&"x".repeat(1025)], None).await, 400, "invalid_identity").await;
    let events =
        app.client.get(app.url("/v1/admin/events?limit=0")).bearer_auth(app.admin_token("root")).send().await.unwrap();
    assert_problem(events, 400, "invalid_request").await;
    let events =
        app.client.get(app.url("/v1/admin/events?after=x")).bearer_auth(app.admin_token("root")).send().await.unwrap();
    assert_problem(events, 400, "invalid_request").await;
}

async fn bodies_over_the_limit_are_refused_before_parsing(backend: Backend) {
    let app = spawn_app_with(backend, Options { body_bytes: 4096, ..Options::default() }).await;
    let token = app.user_token("alice");
    let big = json!({"content_snapshot": "A".repeat(5000), "signatures": []});
    assert_problem(app.publish_raw(&token, &big).await, 413, "payload_too_large").await;

    // Chunked, with no Content-Length: the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let response = app
        .client
        .post(app.url("/v1/cards"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "payload_too_large").await;

    let card = new_card("alice");
    let response = app.publish("alice", &card.raw).await;
    assert_eq!(response.status(), StatusCode::CREATED, "a card well under the limit still publishes");
}

async fn unknown_routes_and_methods_answer_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(app.client.get(app.url("/v2/nothing")).send().await.unwrap(), 404, "not_found").await;
    assert_problem(app.client.delete(app.url("/v1/cards")).send().await.unwrap(), 405, "method_not_allowed").await;
}

crate::on_both_backends!(
    every_publish_validation_has_its_status_and_code,
    rotation_conflicts_name_their_cause,
    owners_revoke_only_their_own_cards,
    lookups_refuse_over_long_and_malformed_batches,
    bodies_over_the_limit_are_refused_before_parsing,
    unknown_routes_and_methods_answer_problem_json,
);
