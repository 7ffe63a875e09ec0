//! What operators rely on: the OpenAPI document and its UI, metrics, rate limits, graceful
//! shutdown, JSON logs with request ids, and the container stack's configuration.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    APP, Options, Spawned, assert_problem, mint, new_card, now, rotation_of, spawn_app, spawn_app_with, spawn_binary,
};
use crate::support::{Backend, TestDb};

async fn the_openapi_document_lists_every_v1_route_and_validates(backend: Backend) {
    let app = spawn_app(backend).await;
    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    for (method, path) in cardinal_server::routes::ROUTES {
        let operation = &document["paths"][path][method.to_lowercase()];
        if path.starts_with("/v1") {
            assert!(operation.is_object(), "{method} {path} is missing from /openapi.json");
            let codes = operation["responses"].as_object().unwrap();
            assert!(codes.keys().any(|s| s.starts_with('2')), "{method} {path} documents its success");
        }
    }
    for code in cardinal_card::wire::ProblemCode::ALL {
        assert!(
            document["components"]["schemas"]["ProblemCode"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == code.as_str()),
            "problem code {} is in the schema",
            code.as_str()
        );
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&document).unwrap()).unwrap();
    let validator = Command::new("openapi-spec-validator").arg(file.path()).output().unwrap_or_else(|e| {
        panic!("openapi-spec-validator is required (pip install openapi-spec-validator; .ci/run installs it): {e}")
    });
    assert!(
        validator.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validator.stdout),
        String::from_utf8_lossy(&validator.stderr)
    );
}

async fn swagger_ui_is_served_without_external_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "/docs redirects to the UI");
    let html = response.text().await.unwrap();
    let assets: Vec<&str> = html.split(['"', '\'']).filter(|s| s.ends_with(".js") || s.ends_with(".css")).collect();
    assert!(assets.len() >= 3, "{html}");
    for asset in assets {
        assert!(!asset.contains("//"), "{asset} would be fetched from elsewhere");
        let asset = asset.trim_start_matches("./");
        let response = app.client.get(app.url(&format!("/docs/{asset}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset} is served locally");
    }
    let initializer =
        app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(initializer.contains("\"/openapi.json\""), "{initializer}");
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric_name, rest) = series.split_once('{').unwrap_or((series, ""));
            metric_name == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

async fn metrics_count_what_happened(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    app.published("bob", &new_card("bob")).await;
    let rotated = rotation_of("alice", &alice.id);
    app.published("alice", &rotated).await;
    let reader = app.user_token("reader");
    let first = app.lookup(&reader, &["alice", "bob", "carol"], None).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(app.lookup(&reader, &["alice", "bob", "carol"], Some(&etag)).await.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(app.search(&reader, &["alice".into()]).await.status(), StatusCode::OK);
    assert_eq!(app.revoke(&app.user_token("alice"), rotated.id.as_str(), None).await.status(), StatusCode::OK);
    let bob_card =
        app.lookup(&reader, &["bob"], None).await.json::<Value>().await.unwrap()["identities"]["bob"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(app.admin_revoke(&app.admin_token("root"), &bob_card, Some("test")).await.status(), StatusCode::OK);
    let t = now();
    let expired = app.token_with(&app.app_key, &app.app_kid, APP, "x", t - 7200, t - 3600);
    assert_eq!(app.lookup(&expired, &["x"], None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.client.get(app.url("/v1/cards?identity=x")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.lookup("garbage", &["x"], None).await.status(), StatusCode::UNAUTHORIZED);

    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&text, "cardinal_cards_published_total", &[]), 3.0);
    assert_eq!(metric(&text, "cardinal_cards_rotated_total", &[]), 1.0);
    assert_eq!(metric(&text, "cardinal_chains_revoked_total", &[("by", "owner")]), 1.0);
    assert_eq!(metric(&text, "cardinal_chains_revoked_total", &[("by", "admin")]), 1.0);
    assert_eq!(metric(&text, "cardinal_lookups_total", &[("route", "lookup")]), 3.0);
    assert_eq!(metric(&text, "cardinal_lookups_total", &[("route", "search")]), 1.0);
    assert_eq!(metric(&text, "cardinal_lookup_identities_total", &[]), 3.0 + 3.0 + 1.0 + 1.0);
    assert_eq!(metric(&text, "cardinal_lookup_not_modified_total", &[]), 1.0);
    assert_eq!(metric(&text, "cardinal_token_rejections_total", &[("reason", "expired")]), 1.0);
    assert_eq!(metric(&text, "cardinal_token_rejections_total", &[("reason", "missing")]), 1.0);
    assert_eq!(metric(&text, "cardinal_token_rejections_total", &[("reason", "invalid")]), 1.0);
    assert_eq!(
        metric(
            &text,
            "cardinal_http_requests_total",
            &[("endpoint", "/v1/cards"), ("method", "POST"), ("status", "201")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "cardinal_http_requests_total",
            &[("endpoint", "/v1/cards"), ("method", "GET"), ("status", "304")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "cardinal_http_requests_total",
            &[("endpoint", "/v1/cards"), ("method", "GET"), ("status", "401")]
        ),
        3.0
    );
    assert!(
        metric(&text, "cardinal_http_requests_duration_seconds_count", &[("endpoint", "/v1/cards/{id}/revoke")]) >= 1.0
    );
    assert_eq!(metric(&text, "cardinal_db_pool_max_connections", &[]), 10.0);
    assert!(metric(&text, "cardinal_db_pool_connections", &[]) >= 1.0);
}

async fn metrics_can_have_their_own_listener(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings: cardinal_server::config::Settings = cardinal_server::config::Settings::figment(None)
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("metrics.listen", "127.0.0.1:0"))
        .merge(("database.url", db.url.clone()))
        .merge(("service.signing_key_file", db.dir().join("k.pem").display().to_string()))
        .merge(("pythia.secret_file", db.dir().join("pythia-secret").display().to_string()))
        .merge(("transparency.signing_key_file", db.dir().join("log-key.pem").display().to_string()))
        .merge(("bootstrap.enabled", false))
        .extract()
        .unwrap();
    let app = cardinal_server::startup::Application::build(settings).await.unwrap();
    let (port, metrics_port) = (app.port(), app.metrics_port().unwrap());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let on_api = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND, "not on the public listener");
    let text =
        client.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("cardinal_db_pool_max_connections"), "{text}");
    handle.stop(true).await;
}

fn limited(per_second: u32, burst: u32) -> Vec<(&'static str, Value)> {
    vec![
        ("rate_limits.read.per_address_per_second", json!(per_second)),
        ("rate_limits.read.per_address_burst", json!(burst)),
        ("rate_limits.write.per_identity_per_second", json!(1)),
        ("rate_limits.write.per_identity_burst", json!(2)),
    ]
}

async fn a_burst_over_the_limit_gets_429_with_retry_after_and_requests_under_it_never_do(backend: Backend) {
    let app = spawn_app_with(backend, Options { settings: limited(5, 5), ..Options::default() }).await;
    let token = app.user_token("reader");
    // Two bursts at the limit, a second apart: never refused.
    for round in 0..2 {
        for i in 0..5 {
            let response = app.lookup(&token, &["alice"], None).await;
            assert_eq!(response.status(), StatusCode::OK, "round {round}, request {i} is under the limit");
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // A burst over it, all at once (sequential slow requests would let the tokens refill):
    // refused with Retry-After, as problem+json.
    let burst: Vec<_> = (0..20).map(|_| app.lookup(&token, &["alice"], None)).collect();
    let responses = futures_util::future::join_all(burst).await;
    let response = responses
        .into_iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("a burst over the limit is refused");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    assert_problem(response, 429, "rate_limited").await;
    // The Virgil surface answers the Virgil way (a burst too: tokens refill while a loaded
    // machine gets to it).
    let virgil_token = app.virgil_token("r");
    let burst: Vec<_> = (0..20)
        .map(|_| {
            app.client
                .post(app.url("/card/v5/actions/search"))
                .header("Authorization", format!("Virgil {virgil_token}"))
                .json(&json!({"identities": ["a"]}))
                .send()
        })
        .collect();
    let response = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(Result::unwrap)
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("a Virgil burst over the limit is refused");
    assert!(response.headers().contains_key("retry-after"));
    assert!(response.json::<Value>().await.unwrap()["code"].is_u64());
    // Health stays reachable.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);

    // Per identity: writes by one identity, whatever the address.
    let writer = spawn_app_with(backend, Options { settings: limited(1000, 1000), ..Options::default() }).await;
    let first = new_card("alice");
    writer.published("alice", &first).await;
    writer.published("alice", &rotation_of("alice", &first.id)).await;
    let third = writer.publish("alice", &new_card("alice").raw).await;
    assert_problem(third, 429, "rate_limited").await;
    writer.published("bob", &new_card("bob")).await;
}

async fn sigterm_lets_accepted_requests_finish_and_exits_0(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = db.dir().to_owned();
    let env = [("DATABASE_URL", db.url.as_str()), ("CARDINAL_SERVER__SHUTDOWN_GRACE_SECS", "10")];
    mint(&dir, &env, &["app", "create", "ops"]);
    mint(&dir, &env, &["key", "generate", "--app", "ops", "--role", "app", "--out", "k.pem", "--kid", "ops-k"]);
    let Spawned { process: mut child, port, .. } = spawn_binary(&dir, &env);

    // Slow requests: headers sent, bodies trickling in. Each is accepted before SIGTERM.
    let mut streams = Vec::new();
    for i in 0..5 {
        let identity = format!("slow{i}");
        let token =
            mint(&dir, &env, &["token", "--key", "k.pem", "--kid", "ops-k", "--app", "ops", "--identity", &identity]);
        let body = serde_json::to_vec(&new_card(&identity).raw).unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "POST /v1/cards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
        stream.write_all(&body[..body.len() / 2]).unwrap();
        streams.push((stream, body));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err()
            || reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err(),
        "no new connections after SIGTERM"
    );

    for (mut stream, body) in streams {
        stream.write_all(&body[body.len() / 2..]).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 201"), "an accepted request completes: {response}");
    }
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(10), "exits within the grace period");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
}

async fn json_logs_carry_the_request_id(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = db.dir().to_owned();
    let env = [("DATABASE_URL", db.url.as_str()), ("CARDINAL_LOG__FORMAT", "json")];
    let Spawned { process: child, port, lines, .. } = spawn_binary(&dir, &env);
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://127.0.0.1:{port}/v1/cards?identity=a"))
        .header("X-Request-Id", "ops-test-42")
        .header("Authorization", "Bearer secret.token.value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "ops-test-42", "a well-formed id is kept and returned");
    let generated = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .header("X-Request-Id", "bad id {with} spaces")
        .send()
        .await
        .unwrap();
    let generated = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "a malformed id is replaced: {generated}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = HashMap::new();
    while Instant::now() < deadline && seen.len() < 2 {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else { continue };
        assert!(!line.contains("secret.token.value"), "tokens are never logged: {line}");
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if let Some(id) = value["span"]["request_id"].as_str() {
            seen.insert(id.to_owned(), value["fields"]["message"].clone());
        }
    }
    drop(child);
    assert!(seen.contains_key("ops-test-42"), "{seen:?}");
    assert!(seen.contains_key(&generated), "{seen:?}");
}

/// 1,000 clients connecting at once must not overflow the kernel's queue of unaccepted
/// connections: the listener asks for the configured backlog (std's bind always asks for 128).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_queues_as_many_connections_as_the_backlog_setting_says() {
    let options = Options { settings: vec![("server.backlog", json!(777))], ..Default::default() };
    let app = spawn_app_with(Backend::Sqlite, options).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let out = Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output().expect("ss (iproute2)");
    let listing = String::from_utf8_lossy(&out.stdout);
    // State, Recv-Q, Send-Q: for a listening socket Send-Q is its backlog.
    let backlog: Vec<&str> = listing.lines().filter_map(|line| line.split_whitespace().nth(2)).collect();
    assert_eq!(backlog, vec!["777"], "ss said: {listing}");
}

crate::on_both_backends!(
    the_openapi_document_lists_every_v1_route_and_validates,
    swagger_ui_is_served_without_external_requests,
    metrics_count_what_happened,
    metrics_can_have_their_own_listener,
    a_burst_over_the_limit_gets_429_with_retry_after_and_requests_under_it_never_do,
    sigterm_lets_accepted_requests_finish_and_exits_0,
    json_logs_carry_the_request_id,
);
