//! Keyknox v1 and v2 at the HTTP level: the hash protocol, the access rules, the limits, the
//! Virgil error shape, races, the admin erase, on both backends.

use std::sync::Arc;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, assert_event_log_verifies, assert_problem, metric, spawn_app, spawn_app_with};
use crate::support::Backend;

const EMPTY_HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

fn virgil(app: &TestApp, identity: &str) -> String {
    format!("Virgil {}", app.virgil_token(identity))
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    who: &str,
    previous: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path)).header("Authorization", virgil(app, who));
    if let Some(previous) = previous {
        request = request.header("Virgil-Keyknox-Previous-Hash", previous);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn post(app: &TestApp, path: &str, who: &str, previous: Option<&str>, body: &Value) -> Response {
    call(app, reqwest::Method::POST, path, who, previous, Some(body)).await
}

/// A 200 with its body and its hash.
async fn ok(response: Response) -> (Value, String) {
    let status = response.status();
    let hash = response.headers().get("virgil-keyknox-hash").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    (body, hash.expect("every Keyknox answer carries its hash"))
}

/// Virgil's error shape, with both `code` and `message` (the clients drop the code otherwise).
async fn assert_virgil_error(response: Response, status: u16, code: u64) -> Value {
    let actual = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("every Keyknox error has a JSON body");
    assert_eq!((actual, body["code"].as_u64()), (status, Some(code)), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    body
}

fn entry(key: &str, identities: &[&str], meta: &str) -> Value {
    json!({"root": "group-sessions", "path": "abcd", "key": key, "identities": identities, "meta": meta, "value": "dmFsdWU="})
}

fn at(key: &str, owner: &str) -> Value {
    json!({"root": "group-sessions", "path": "abcd", "key": key, "identity": owner})
}

async fn keyknox_v1_versions_writes_and_follows_the_hash_protocol(backend: Backend) {
    let app = spawn_app(backend).await;
    let get = || call(&app, reqwest::Method::GET, "/keyknox/v1", "alice", None, None);
    let (empty, hash) = ok(get().await).await;
    assert_eq!(empty, json!({"meta": "", "value": "", "version": "1.0"}));
    assert_eq!(hash, EMPTY_HASH);

    let put = |previous: Option<String>, meta: &'static str| {
        let body = json!({"meta": meta, "value": "dmFsdWU="});
        let app = &app;
        async move { call(app, reqwest::Method::PUT, "/keyknox/v1", "alice", previous.as_deref(), Some(&body)).await }
    };
    let (first, first_hash) = ok(put(Some(hash.clone()), "bWV0YQ==").await).await;
    assert_eq!(first, json!({"meta": "bWV0YQ==", "value": "dmFsdWU=", "version": "1.0"}));
    assert_ne!(first_hash, EMPTY_HASH);
    assert_eq!(ok(get().await).await, (first.clone(), first_hash.clone()));

    // A stale or missing hash over a stored value is a conflict, and changes nothing.
    assert_virgil_error(put(Some(hash.clone()), "b3RoZXI=").await, 409, 50017).await;
    assert_virgil_error(put(None, "b3RoZXI=").await, 409, 50017).await;
    assert_eq!(ok(get().await).await.0, first);
    let (second, second_hash) = ok(put(Some(first_hash), "c2Vjb25k").await).await;
    assert_eq!(second["version"], "2.0");

    // The reset arrives with no body and a form content type; its hash starts the next write.
    let reset = app
        .client
        .post(app.url("/keyknox/v1/reset"))
        .header("Authorization", virgil(&app, "alice"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    let (reset, reset_hash) = ok(reset).await;
    assert_eq!(reset, json!({"meta": "", "value": "", "version": "3.0"}));
    assert_eq!(reset_hash, EMPTY_HASH);
    assert_ne!(reset_hash, second_hash);
    assert_eq!(ok(put(Some(reset_hash), "dGhpcmQ=").await).await.0["version"], "4.0");

    // Each identity has its own entry; meta and value are both set or both empty.
    assert_eq!(ok(call(&app, reqwest::Method::GET, "/keyknox/v1", "bob", None, None).await).await.0["meta"], "");
    let one_sided = json!({"meta": "bWV0YQ==", "value": ""});
    let response = call(&app, reqwest::Method::PUT, "/keyknox/v1", "bob", None, Some(&one_sided)).await;
    assert_virgil_error(response, 400, 50044).await;
    assert_eq!(metric(&app.client, &app.address, "cardinal_keyknox_operations_total{operation=\"v1_put\"}").await, 3.0);
    assert_eq!(
        metric(&app.client, &app.address, "cardinal_keyknox_conflicts_total{kind=\"hash_mismatch\"}").await,
        2.0
    );
}

async fn keyknox_v2_merges_readers_and_enforces_access(backend: Backend) {
    let app = spawn_app(backend).await;
    // The first push may carry the empty entry's hash (§6.7) or none.
    let (created, hash) =
        ok(post(&app, "/keyknox/v2/push", "alice", Some(EMPTY_HASH), &entry("0", &["alice", "bob", "alice"], "bTE="))
            .await)
        .await;
    assert_eq!(created["owner"], "alice");
    assert_eq!(created["identities"], json!(["alice", "bob"]));
    assert_eq!(created["meta"], "bTE=");

    // Pushing again without a hash: 50010, which e3kit reads as "group exists".
    assert_virgil_error(
        post(&app, "/keyknox/v2/push", "alice", None, &entry("0", &["carol"], "bTI=")).await,
        409,
        50010,
    )
    .await;
    assert_virgil_error(
        post(&app, "/keyknox/v2/push", "alice", Some(EMPTY_HASH), &entry("0", &["carol"], "bTI=")).await,
        409,
        50017,
    )
    .await;
    // group.add sends only the new readers: a union.
    let (added, added_hash) =
        ok(post(&app, "/keyknox/v2/push", "alice", Some(&hash), &entry("0", &["carol"], "bTI=")).await).await;
    assert_eq!(added["identities"], json!(["alice", "bob", "carol"]));

    // Owner and readers pull; anybody else is refused; a missing entry is the empty one.
    let (pulled, pulled_hash) = ok(post(&app, "/keyknox/v2/pull", "bob", None, &at("0", "alice")).await).await;
    assert_eq!((pulled["meta"].as_str(), pulled_hash.as_str()), (Some("bTI="), added_hash.as_str()));
    assert_virgil_error(post(&app, "/keyknox/v2/pull", "mallory", None, &at("0", "alice")).await, 403, 50045).await;
    let (missing, missing_hash) = ok(post(&app, "/keyknox/v2/pull", "bob", None, &at("7", "alice")).await).await;
    assert_eq!((missing["meta"].as_str(), missing["value"].as_str()), (Some(""), Some("")));
    assert_eq!(missing_hash, EMPTY_HASH);

    // keys lists what the caller may read, under an exact root and path.
    ok(post(&app, "/keyknox/v2/push", "alice", None, &entry("1", &[], "bTM=")).await).await;
    let scope = json!({"root": "group-sessions", "path": "abcd", "identity": "alice"});
    assert_eq!(keys_of(&app, "alice", &scope).await, json!(["0", "1"]));
    assert_eq!(keys_of(&app, "bob", &scope).await, json!(["0"]));
    assert_eq!(keys_of(&app, "mallory", &scope).await, json!([]));
    assert_eq!(keys_of(&app, "alice", &json!({"root": "group-sessions", "path": "abc"})).await, json!([]));

    // Reset with another identity removes one reader (group.remove); the hash stays (reAdd
    // pushes with the hash it read before).
    let (after, after_hash) = ok(post(
        &app,
        "/keyknox/v2/reset",
        "alice",
        None,
        &json!({"root": "group-sessions", "path": "abcd", "key": "0", "identity": "carol"}),
    )
    .await)
    .await;
    assert_eq!(after["identities"], json!(["alice", "bob"]));
    assert_eq!(after_hash, added_hash);
    assert_virgil_error(post(&app, "/keyknox/v2/pull", "carol", None, &at("0", "alice")).await, 403, 50045).await;
    ok(post(&app, "/keyknox/v2/push", "alice", Some(&after_hash), &entry("0", &["carol"], "bTI=")).await).await;

    // Only the owner writes: bob's push creates bob's own entry, never touches alice's.
    let (bobs, _) = ok(post(&app, "/keyknox/v2/push", "bob", None, &entry("0", &[], "Ym9i")).await).await;
    assert_eq!(bobs["owner"], "bob");
    assert_eq!(ok(post(&app, "/keyknox/v2/pull", "alice", None, &at("0", "alice")).await).await.0["meta"], "bTI=");

    // Reset without an identity deletes (deleteGroup); the answer is entry-shaped.
    let (reset, _) =
        ok(post(&app, "/keyknox/v2/reset", "alice", None, &json!({"root": "group-sessions", "path": "abcd"})).await)
            .await;
    assert_eq!((reset["owner"].as_str(), reset["meta"].as_str()), (Some("alice"), Some("")));
    assert_eq!(keys_of(&app, "alice", &scope).await, json!([]));
    assert_eq!(keys_of(&app, "bob", &json!({"root": "group-sessions", "path": "abcd"})).await, json!(["0"]));

    // Either token scheme, as for cards: a Bearer user token reads the same entry.
    let bearer = format!("Bearer {}", app.user_token("bob"));
    let response = app
        .client
        .post(app.url("/keyknox/v2/pull"))
        .header("Authorization", bearer)
        .json(&at("0", "bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok(response).await.0["meta"], "Ym9i");

    // An admin token is no Keyknox user.
    let admin = format!("Bearer {}", app.admin_token("root"));
    let response = app.client.get(app.url("/keyknox/v1")).header("Authorization", admin).send().await.unwrap();
    assert_virgil_error(response, 403, 50045).await;
}

async fn keys_of(app: &TestApp, who: &str, body: &Value) -> Value {
    let response = post(app, "/keyknox/v2/keys", who, None, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn keyknox_limits_and_bad_input_get_stable_codes_and_write_nothing(backend: Backend) {
    let settings = vec![
        ("limits.keyknox_meta_bytes", json!(100)),
        ("limits.keyknox_value_bytes", json!(50)),
        ("limits.keyknox_readers_per_entry", json!(3)),
        ("limits.keyknox_entries_per_identity", json!(2)),
        ("limits.keyknox_name_bytes", json!(8)),
        ("rate_limits.enabled", json!(false)),
    ];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let push = |body: Value| {
        let app = &app;
        async move { post(app, "/keyknox/v2/push", "alice", None, &body).await }
    };
    let long = |n: usize| "A".repeat(n);
    assert_virgil_error(
        push(json!({"root": "r", "path": "p", "key": "k", "meta": long(101), "value": "v"})).await,
        413,
        50040,
    )
    .await;
    assert_virgil_error(
        push(json!({"root": "r", "path": "p", "key": "k", "meta": "m", "value": long(51)})).await,
        413,
        50040,
    )
    .await;
    let response =
        call(&app, reqwest::Method::PUT, "/keyknox/v1", "alice", None, Some(&json!({"meta": long(101), "value": "v"})))
            .await;
    assert_virgil_error(response, 413, 50040).await;
    assert_virgil_error(
        push(json!({"root": long(9), "path": "p", "key": "k", "meta": "m", "value": "v"})).await,
        400,
        50043,
    )
    .await;
    assert_virgil_error(
        push(json!({"root": "r", "path": "", "key": "k", "meta": "m", "value": "v"})).await,
        400,
        50043,
    )
    .await;
    assert_virgil_error(
        push(json!({"root": "r", "path": "p", "key": "k", "meta": "m", "value": ""})).await,
        400,
        50044,
    )
    .await;
    assert_virgil_error(
        push(json!({"root": "r", "path": "p", "key": "k", "meta": "m", "value": "v", "identities": ["b", "c", "d"]}))
            .await,
        400,
        50041,
    )
    .await;
    assert_virgil_error(
        push(json!({"root": "r", "path": "p", "key": "k", "meta": "m", "value": "v", "identities": [""]})).await,
        400,
        40017,
    )
    .await;
    assert_virgil_error(push(json!({"root": "r", "path": "p"})).await, 400, 30001).await;
    assert_virgil_error(post(&app, "/keyknox/v2/push", "alice", None, &json!("not an object")).await, 400, 30001).await;
    assert_virgil_error(post(&app, "/keyknox/v2/reset", "alice", None, &json!({"root": ""})).await, 400, 50043).await;

    // Readers over the limit once merged: refused, the entry as it was.
    let (_, hash) =
        ok(push(json!({"root": "r", "path": "p", "key": "k", "meta": "m", "value": "v", "identities": ["b"]})).await)
            .await;
    let more = json!({"root": "r", "path": "p", "key": "k", "meta": "m2", "value": "v", "identities": ["c", "d"]});
    assert_virgil_error(post(&app, "/keyknox/v2/push", "alice", Some(&hash), &more).await, 400, 50041).await;
    let (kept, kept_hash) =
        ok(post(&app, "/keyknox/v2/pull", "alice", None, &json!({"root": "r", "path": "p", "key": "k"})).await).await;
    assert_eq!(
        (kept["meta"].as_str(), kept["identities"].clone(), kept_hash),
        (Some("m"), json!(["alice", "b"]), hash)
    );

    // Entries per identity.
    ok(push(json!({"root": "r", "path": "p", "key": "k2", "meta": "m", "value": "v"})).await).await;
    assert_virgil_error(
        push(json!({"root": "r", "path": "p", "key": "k3", "meta": "m", "value": "v"})).await,
        409,
        50042,
    )
    .await;
    ok(post(&app, "/keyknox/v2/reset", "alice", None, &json!({"root": "r", "path": "p", "key": "k2"})).await).await;
    ok(push(json!({"root": "r", "path": "p", "key": "k3", "meta": "m", "value": "v"})).await).await;

    // No token, a bad token: Virgil's 401.
    let response = app.client.get(app.url("/keyknox/v1")).send().await.unwrap();
    assert_virgil_error(response, 401, 20300).await;
}

async fn keyknox_answers_virgil_errors_for_unknown_routes_and_methods(backend: Backend) {
    let app = spawn_app(backend).await;
    let auth = virgil(&app, "alice");
    for path in ["/keyknox/v3/push", "/keyknox", "/keyknox/v2", "/pythia/v1/unknown"] {
        let response = app.client.post(app.url(path)).header("Authorization", &auth).send().await.unwrap();
        assert_virgil_error(response, 404, 10001).await;
    }
    let response = app.client.get(app.url("/keyknox/v2/push")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_virgil_error(response, 405, 10001).await;
    let response = app.client.delete(app.url("/keyknox/v1")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET, PUT");
    assert_virgil_error(response, 405, 10001).await;
    // A native path keeps problem+json.
    assert_problem(app.client.get(app.url("/v1/nothing")).send().await.unwrap(), 404, "not_found").await;
}

async fn twenty_concurrent_keyknox_pushes_from_one_hash_give_exactly_one_winner(backend: Backend) {
    // Forty-odd writes by one identity within a second: past its write limit.
    let settings = vec![("rate_limits.enabled", json!(false))];
    let app = Arc::new(spawn_app_with(backend, Options { settings, ..Options::default() }).await);
    for previous in [None, Some(EMPTY_HASH.to_owned())] {
        // From nothing (first creation), then from one stored hash.
        let key = if previous.is_none() { "new" } else { "stored" };
        let from = match &previous {
            None => None,
            Some(_) => {
                Some(ok(post(&app, "/keyknox/v2/push", "alice", None, &entry(key, &[], "c3RhcnQ=")).await).await.1)
            }
        };
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let (app, from) = (app.clone(), from.clone());
                tokio::spawn(async move {
                    let body = entry(key, &[&format!("reader{n}")], &format!("bWV0YQ{n}"));
                    let response = post(&app, "/keyknox/v2/push", "alice", from.as_deref(), &body).await;
                    let status = response.status();
                    let body: Value = response.json().await.unwrap();
                    (n, status, body)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (n, status, body) = task.await.unwrap();
            match status {
                StatusCode::OK => winners.push(n),
                StatusCode::CONFLICT => {
                    let expected = if from.is_none() { 50010 } else { 50017 };
                    assert_eq!(body["code"], expected, "{body}");
                }
                other => panic!("push {n}: {other} {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "{key}: {winners:?}");
        // No lost update: what is stored is the winner's, with the winner's reader only.
        let (stored, _) = ok(post(&app, "/keyknox/v2/pull", "alice", None, &at(key, "alice")).await).await;
        let n = winners[0];
        assert_eq!(stored["meta"], format!("bWV0YQ{n}"));
        assert_eq!(stored["identities"], json!(["alice", format!("reader{n}")]));
    }
}

async fn twenty_concurrent_keyknox_v1_puts_from_one_hash_give_exactly_one_winner(backend: Backend) {
    let settings = vec![("rate_limits.enabled", json!(false))];
    let app = Arc::new(spawn_app_with(backend, Options { settings, ..Options::default() }).await);
    let mut from = EMPTY_HASH.to_owned();
    // From nothing stored (a first backup), then from a stored value.
    for round in 0..2 {
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let (app, from) = (app.clone(), from.clone());
                tokio::spawn(async move {
                    let body = json!({"meta": format!("bWV0YQ{round}{n}"), "value": "dmFsdWU="});
                    let response =
                        call(&app, reqwest::Method::PUT, "/keyknox/v1", "alice", Some(&from), Some(&body)).await;
                    let status = response.status();
                    let body: Value = response.json().await.unwrap();
                    (n, status, body)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (n, status, body) = task.await.unwrap();
            match status {
                StatusCode::OK => winners.push(n),
                StatusCode::CONFLICT => assert_eq!(body["code"], 50017, "{body}"),
                other => panic!("put {n}: {other} {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (stored, hash) = ok(call(&app, reqwest::Method::GET, "/keyknox/v1", "alice", None, None).await).await;
        assert_eq!(stored["meta"], format!("bWV0YQ{round}{}", winners[0]));
        assert_eq!(stored["version"], format!("{}.0", round + 1));
        from = hash;
    }
}

async fn an_admin_erases_a_departed_users_keyknox_data_and_the_log_records_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let put = json!({"meta": "bWV0YQ==", "value": "dmFsdWU="});
    ok(call(&app, reqwest::Method::PUT, "/keyknox/v1", "bob", None, Some(&put)).await).await;
    ok(post(&app, "/keyknox/v2/push", "bob", None, &entry("0", &["alice"], "Ym9i")).await).await;
    ok(post(&app, "/keyknox/v2/push", "alice", None, &entry("0", &["bob"], "YWxpY2U=")).await).await;

    let erase = |token: String| {
        let app = &app;
        async move {
            app.client.post(app.url("/v1/admin/identities/bob/keyknox/erase")).bearer_auth(token).send().await.unwrap()
        }
    };
    assert_problem(erase(app.user_token("bob")).await, 403, "forbidden").await;
    let response = erase(app.admin_token("root")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"identity": "bob", "v1": true, "entries": 1, "grants": 1}));
    let again: Value = erase(app.admin_token("root")).await.json().await.unwrap();
    assert_eq!(again, json!({"identity": "bob", "v1": false, "entries": 0, "grants": 0}));

    assert_eq!(ok(call(&app, reqwest::Method::GET, "/keyknox/v1", "bob", None, None).await).await.0["meta"], "");
    assert_virgil_error(post(&app, "/keyknox/v2/pull", "bob", None, &at("0", "alice")).await, 403, 50045).await;
    let (alices, _) = ok(post(&app, "/keyknox/v2/pull", "alice", None, &at("0", "alice")).await).await;
    assert_eq!(alices["identities"], json!(["alice"]));

    let events = assert_event_log_verifies(&app).await;
    let erased: Vec<&Value> = events.iter().filter(|e| e["event"]["kind"] == "keyknox_erased").collect();
    assert_eq!(erased.len(), 2, "each erasure is recorded");
    assert_eq!(erased[0]["event"]["identity"], "bob");
    assert_eq!(erased[0]["event"]["actor"], "admin:root");
    assert_eq!(erased[0]["event"]["detail"], json!({"v1": "true", "entries": "1", "grants": "1"}));
    assert_eq!(erased[1]["event"]["detail"], json!({"v1": "false", "entries": "0", "grants": "0"}));
}

async fn a_group_sized_push_fits_the_default_limits(backend: Backend) {
    let app = spawn_app(backend).await;
    // 100 members' recipients in meta (about 30 KB in e3kit), past the 64 KiB card body limit.
    let members: Vec<String> = (0..99).map(|n| format!("member-{n:03}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let body = entry("0", &members, &"A".repeat(100_000));
    let (stored, _) = ok(post(&app, "/keyknox/v2/push", "alice", None, &body).await).await;
    assert_eq!(stored["identities"].as_array().unwrap().len(), 100);
    assert_eq!(
        keys_of(&app, "member-042", &json!({"root": "group-sessions", "path": "abcd", "identity": "alice"})).await,
        json!(["0"])
    );
}

async fn browsers_may_send_and_read_the_keyknox_hash_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/keyknox/v2/push"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, virgil-agent, virgil-keyknox-previous-hash",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("virgil-keyknox-previous-hash"), "{allowed}");
    let response = app
        .client
        .get(app.url("/keyknox/v1"))
        .header("Origin", "https://app.example.com")
        .header("Authorization", virgil(&app, "alice"))
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("virgil-keyknox-hash"), "{exposed}");
    // A browser's reset arrives with no content type and no body.
    let reset = app
        .client
        .post(app.url("/keyknox/v1/reset"))
        .header("Authorization", virgil(&app, "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok(reset).await.0["version"], "1.0");
}

async fn keyknox_reads_and_writes_fall_under_their_rate_limits(backend: Backend) {
    let settings = vec![
        ("rate_limits.write.per_identity_per_second", json!(1)),
        ("rate_limits.write.per_identity_burst", json!(2)),
        ("rate_limits.read.per_identity_per_second", json!(1)),
        ("rate_limits.read.per_identity_burst", json!(3)),
    ];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    for n in 0..2 {
        ok(post(&app, "/keyknox/v2/push", "alice", None, &entry(&n.to_string(), &[], "bQ==")).await).await;
    }
    let refused = post(&app, "/keyknox/v2/push", "alice", None, &entry("2", &[], "bQ==")).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_virgil_error(refused, 429, 30429).await;
    // Reads have their own budget: the refused writes did not spend it.
    for _ in 0..3 {
        ok(post(&app, "/keyknox/v2/pull", "alice", None, &at("0", "alice")).await).await;
    }
    assert_virgil_error(post(&app, "/keyknox/v2/pull", "alice", None, &at("0", "alice")).await, 429, 30429).await;
    // Another identity has its own.
    ok(post(&app, "/keyknox/v2/push", "bob", None, &entry("0", &[], "bQ==")).await).await;
}

crate::on_both_backends!(
    keyknox_reads_and_writes_fall_under_their_rate_limits,
    browsers_may_send_and_read_the_keyknox_hash_headers,
    keyknox_v1_versions_writes_and_follows_the_hash_protocol,
    keyknox_v2_merges_readers_and_enforces_access,
    keyknox_limits_and_bad_input_get_stable_codes_and_write_nothing,
    keyknox_answers_virgil_errors_for_unknown_routes_and_methods,
    twenty_concurrent_keyknox_pushes_from_one_hash_give_exactly_one_winner,
    twenty_concurrent_keyknox_v1_puts_from_one_hash_give_exactly_one_winner,
    an_admin_erases_a_departed_users_keyknox_data_and_the_log_records_it,
    a_group_sized_push_fits_the_default_limits,
);
