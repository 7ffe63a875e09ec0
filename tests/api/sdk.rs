//! The server driven through the Rust SDK, and the SDK's refusal of tampered answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use cardinal_client::{CardStatus, Client, ClientError, ProblemCode, SigningKey, TokenCallback};
use serde_json::Value;

use crate::helpers::{APP, TestApp, now, spawn_app};
use crate::support::Backend;

fn client(app: &TestApp, token: String) -> Client {
    Client::builder(&app.address).token(token).trust_on_first_use().build().unwrap()
}

async fn the_sdk_drives_a_whole_lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = client(&app, app.user_token("alice"));
    let reader = Client::builder(&app.address)
        .token(app.user_token("reader"))
        .service_key(app.service_key().await)
        .build()
        .unwrap();

    let first_key = SigningKey::generate();
    let first = alice.publish_new("alice", &first_key).await.unwrap();
    assert_eq!(first.view.status, CardStatus::Active);
    assert_eq!(first.card.public_key, first_key.public_key());
    assert_eq!(reader.get(&first.card.id).await.unwrap(), first);

    let found = reader.lookup(&["alice", "bob"]).await.unwrap();
    assert_eq!(found["alice"], vec![first.clone()]);
    assert!(found["bob"].is_empty());

    let second = alice.rotate("alice", &first.card.id, &SigningKey::generate()).await.unwrap();
    assert_eq!(reader.get(&first.card.id).await.unwrap().view.status, CardStatus::Superseded);
    assert_eq!(reader.lookup(&["alice"]).await.unwrap()["alice"], vec![second.clone()]);

    let err = alice.publish_new("alice", &SigningKey::generate()).await.unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::IdentityTaken));
    let err = reader.revoke(&second.card.id, None).await.unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::Forbidden));

    let revoked = alice.revoke(&second.card.id, Some("rotated out")).await.unwrap();
    assert_eq!(revoked.view.status, CardStatus::Revoked);
    assert!(reader.lookup(&["alice"]).await.unwrap()["alice"].is_empty());

    let bob = client(&app, app.user_token("bob"));
    let bob_card = bob.publish_new("bob", &SigningKey::generate()).await.unwrap();
    let admin = client(&app, app.admin_token("root"));
    let revoked = admin.admin_revoke(&bob_card.card.id, "compromised").await.unwrap();
    assert_eq!(revoked.view.revocation_reason.as_deref(), Some("compromised"));
    let events = admin.events(0, 100).await.unwrap();
    assert_eq!(events.events.last().unwrap().event.actor, "admin:root");
}

async fn a_repeated_lookup_is_answered_304_by_the_server_and_served_from_the_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    for identity in ["alice", "bob"] {
        client(&app, app.user_token(identity)).publish_new(identity, &SigningKey::generate()).await.unwrap();
    }
    let reader = client(&app, app.user_token("reader"));
    let first = reader.lookup(&["alice", "bob", "carol"]).await.unwrap();
    assert_eq!(reader.lookup_stats().not_modified, 0);
    let second = reader.lookup(&["carol", "bob", "alice"]).await.unwrap();
    assert_eq!(second, first);
    let stats = reader.lookup_stats();
    assert_eq!((stats.requests, stats.not_modified), (2, 1), "the server answered the second lookup 304");

    // A change to one identity is seen on the next lookup.
    let carol = client(&app, app.user_token("carol")).publish_new("carol", &SigningKey::generate()).await.unwrap();
    let third = reader.lookup(&["alice", "bob", "carol"]).await.unwrap();
    assert_eq!(third["carol"], vec![carol]);
    assert_eq!(reader.lookup_stats().not_modified, 1, "a changed batch is a full answer");
}

async fn a_lookup_of_250_identities_is_chunked_to_the_server_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    let identities: Vec<String> = (0..250).map(|i| format!("user{i:03}")).collect();
    for identity in identities.iter().step_by(25) {
        client(&app, app.user_token(identity)).publish_new(identity, &SigningKey::generate()).await.unwrap();
    }
    let reader = client(&app, app.user_token("reader"));
    let found = reader.lookup(&identities).await.unwrap();
    assert_eq!(found.len(), 250);
    assert_eq!(found.values().filter(|cards| !cards.is_empty()).count(), 10);
    assert_eq!(reader.lookup_stats().requests, 3, "100 + 100 + 50");
    reader.lookup(&identities).await.unwrap();
    assert_eq!(reader.lookup_stats().not_modified, 3);
}

async fn an_expired_token_is_refreshed_once(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let calls = Arc::new(AtomicUsize::new(0));
    let source: TokenCallback = {
        let (app, calls) = (app.clone(), calls.clone());
        Arc::new(move |refresh| {
            calls.fetch_add(1, Ordering::SeqCst);
            let t = now();
            let token = if refresh {
                app.user_token("alice")
            } else {
                app.token_with(&app.app_key, &app.app_kid, APP, "alice", t - 7200, t - 3600)
            };
            Box::pin(async move { Ok(token) })
        })
    };
    let alice = Client::builder(&app.address).token_source(source).trust_on_first_use().build().unwrap();
    alice.publish_new("alice", &SigningKey::generate()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one expired attempt, one refresh");
}

/// How the tampering proxy alters lookup answers.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    SwapPublicKey,
    SwapSnapshot,
    DropCountersignature,
    AlterCountersignature,
    AddUnaskedIdentity,
    MisfileCard,
}

fn tamper(mode: Tamper, mut body: Value) -> Value {
    let identities = body["identities"].as_object_mut().unwrap();
    let alice = identities["alice"][0].clone();
    let bob = identities["bob"][0].clone();
    match mode {
        Tamper::SwapPublicKey => identities.get_mut("alice").unwrap()[0]["public_key"] = bob["public_key"].clone(),
        Tamper::SwapSnapshot => {
            identities.get_mut("alice").unwrap()[0]["raw"]["content_snapshot"] = bob["raw"]["content_snapshot"].clone()
        }
        Tamper::DropCountersignature => identities.get_mut("alice").unwrap()[0]["raw"]["signatures"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["signer"] != "virgil"),
        Tamper::AlterCountersignature => {
            let signatures = identities.get_mut("alice").unwrap()[0]["raw"]["signatures"].as_array_mut().unwrap();
            let virgil = signatures.iter_mut().find(|s| s["signer"] == "virgil").unwrap();
            let mut bytes = cardinal_card::b64::decode_std(virgil["signature"].as_str().unwrap()).unwrap();
            bytes[40] ^= 1;
            virgil["signature"] = Value::String(cardinal_card::b64::encode_std(&bytes));
        }
        Tamper::AddUnaskedIdentity => {
            identities.insert("mallory".into(), Value::Array(vec![alice]));
        }
        Tamper::MisfileCard => identities.get_mut("alice").unwrap().as_array_mut().unwrap().push(bob),
    }
    body
}

/// A proxy in front of the real server that alters every lookup answer.
async fn tampering_proxy(upstream: String, mode: Tamper) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let upstream = upstream.clone();
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let upstream = upstream.clone();
            async move {
                let url = format!("{upstream}{}", request.uri());
                let mut forward = reqwest::Client::new()
                    .request(reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap(), &url)
                    .body(body.to_vec());
                for (name, value) in request.headers() {
                    if name != "host" && name != "if-none-match" {
                        forward = forward.header(name.as_str(), value.as_bytes());
                    }
                }
                let response = forward.send().await.unwrap();
                let status = response.status().as_u16();
                let is_lookup = request.method() == "GET" && request.path() == "/v1/cards";
                let mut body: Value = response.json().await.unwrap_or(Value::Null);
                if is_lookup && status == 200 {
                    body = tamper(mode, body);
                }
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    address
}

async fn tampered_answers_are_errors_never_cards(backend: Backend) {
    let app = spawn_app(backend).await;
    for identity in ["alice", "bob"] {
        client(&app, app.user_token(identity)).publish_new(identity, &SigningKey::generate()).await.unwrap();
    }
    let service_key = app.service_key().await;
    for mode in [
        Tamper::SwapPublicKey,
        Tamper::SwapSnapshot,
        Tamper::DropCountersignature,
        Tamper::AlterCountersignature,
        Tamper::AddUnaskedIdentity,
        Tamper::MisfileCard,
    ] {
        let proxy = tampering_proxy(app.address.clone(), mode).await;
        let reader =
            Client::builder(&proxy).token(app.user_token("reader")).service_key(service_key.clone()).build().unwrap();
        match reader.lookup(&["alice", "bob"]).await {
            Err(ClientError::Verification(reason)) => assert!(!reason.is_empty()),
            other => panic!("{mode:?} was accepted: {other:?}"),
        }
    }
    // The same lookup through the real server verifies.
    let reader =
        Client::builder(&app.address).token(app.user_token("reader")).service_key(service_key).build().unwrap();
    assert_eq!(reader.lookup(&["alice", "bob"]).await.unwrap().len(), 2);
    // A pinned key that is not the server's refuses every card.
    let wrong = Client::builder(&app.address)
        .token(app.user_token("reader"))
        .service_key(SigningKey::generate().public_key())
        .build()
        .unwrap();
    assert!(matches!(wrong.lookup(&["alice"]).await, Err(ClientError::Verification(_))));
}

crate::on_both_backends!(
    the_sdk_drives_a_whole_lifecycle,
    a_repeated_lookup_is_answered_304_by_the_server_and_served_from_the_cache,
    a_lookup_of_250_identities_is_chunked_to_the_server_limit,
    an_expired_token_is_refreshed_once,
    tampered_answers_are_errors_never_cards,
);
