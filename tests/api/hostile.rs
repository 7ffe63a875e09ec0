//! Hostile HTTP: every malformed or oversized request gets a fast 4xx or a closed connection,
//! and the service keeps answering everybody else meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Options, TestApp, new_card, spawn_app_with};
use crate::support::Backend;

/// Sends raw bytes, returns the status line's code (None if the server closed without one) and
/// how long it took.
fn raw(app: &TestApp, request: &[u8]) -> (Option<u16>, Duration) {
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok());
    (status, started.elapsed())
}

fn request(method: &str, target: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

fn assert_fast_refusal(what: &str, (status, elapsed): (Option<u16>, Duration)) {
    assert!(elapsed < Duration::from_secs(3), "{what}: took {elapsed:?}");
    if let Some(status) = status {
        assert!((400..500).contains(&status), "{what}: got {status}");
    }
}

async fn hostile_requests_get_fast_4xx_or_a_closed_connection(backend: Backend) {
    let settings =
        vec![("server.request_header_timeout_ms", json!(1000)), ("server.request_body_timeout_ms", json!(1000))];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let auth = ("Authorization", format!("Bearer {}", app.user_token("alice")));
    let json = ("Content-Type", "application/json".to_owned());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 1 MiB body", request("POST", "/v1/cards", &[auth.clone(), json.clone()], &vec![b'{'; 1 << 20])),
        ("a 100 KiB header", request("GET", "/v1/cards?identity=a", &[auth.clone(), ("X-Padding", "p".repeat(100 * 1024))], b"")),
        ("200 headers", {
            let many: Vec<(&str, String)> = (0..200).map(|_| ("X-Many", "v".to_owned())).collect();
            request("GET", "/healthz", &many, b"")
        }),
        ("JSON nested 60,000 deep", request("POST", "/v1/cards", &[auth.clone(), json.clone()], &vec![b'['; 60_000])),
        (
            "a snapshot nested 10,000 deep",
            request(
                "POST",
                "/v1/cards",
                &[auth.clone(), json.clone()],
                json!({"content_snapshot": cardinal_card::b64::encode_std(&vec![b'['; 10_000]), "signatures": [{"signer": "self", "signature": "AAAA"}]}).to_string().as_bytes(),
            ),
        ),
        (
            "duplicate keys",
            request("POST", "/v1/cards", &[auth.clone(), json.clone()], br#"{"content_snapshot":"YQ==","content_snapshot":"Yg==","signatures":[]}"#),
        ),
        ("invalid UTF-8", request("POST", "/v1/cards", &[auth.clone(), json.clone()], b"{\"content_snapshot\":\"\xff\xfe\",\"signatures\":[]}")),
        ("invalid UTF-8 in the query", request("GET", "/v1/cards?identity=%ff%fe", std::slice::from_ref(&auth), b"")),
        ("a 100 KiB identity", request("GET", &format!("/v1/cards?identity={}", "a".repeat(100 * 1024)), std::slice::from_ref(&auth), b"")),
        ("a 2,000-byte identity", request("GET", &format!("/v1/cards?identity={}", "a".repeat(2000)), std::slice::from_ref(&auth), b"")),
        ("10,000 identities in the query string", {
            let query: Vec<String> = (0..10_000).map(|i| format!("identity=u{i}")).collect();
            request("GET", &format!("/v1/cards?{}", query.join("&")), std::slice::from_ref(&auth), b"")
        }),
        ("10,000 identities in a search", {
            let identities: Vec<String> = (0..10_000).map(|i| format!("u{i}")).collect();
            request("POST", "/v1/cards/search", &[auth.clone(), json.clone()], json!({"identities": identities}).to_string().as_bytes())
        }),
        ("an invalid Content-Length", b"POST /v1/cards HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n".to_vec()),
        ("garbage instead of HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n".to_vec()),
        ("a control character in the token", request("GET", "/v1/cards?identity=a", &[("Authorization", "Bearer a\u{1}b".to_owned())], b"")),
    ];
    for (what, bytes) in cases {
        assert_fast_refusal(what, raw(&app, &bytes));
    }
    // Duplicate-key and deeply nested JSON are refused with the stable code, not just a status.
    let response = app
        .client
        .post(app.url("/v1/cards"))
        .bearer_auth(app.user_token("alice"))
        .header("Content-Type", "application/json")
        .body(r#"{"content_snapshot":"YQ==","content_snapshot":"Yg==","signatures":[]}"#)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(response, 400, "invalid_request").await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK, "still serving");
}

async fn slow_clients_are_cut_off_while_others_are_served(backend: Backend) {
    let settings =
        vec![("server.request_header_timeout_ms", json!(1000)), ("server.request_body_timeout_ms", json!(1000))];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();

    // 40 clients that never finish their headers, 10 that never finish their bodies.
    let mut stalled_heads = Vec::new();
    let stalled_at = Instant::now();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(b"GET /v1/cards?identity=a HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        stalled_heads.push(stream);
    }
    let token = app.user_token("alice");
    let mut stalled_bodies = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "POST /v1/cards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"content").unwrap();
        stalled_bodies.push(stream);
    }

    // Everybody else is served meanwhile, promptly.
    let card = new_card("bob");
    let started = Instant::now();
    let response = app.publish("bob", &card.raw).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let lookup = app.lookup(&app.user_token("carol"), &["bob"], None).await;
    assert_eq!(lookup.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5), "served in {:?}", started.elapsed());

    // The stalled ones are cut off, by the head timeout (1 s): not before it, and within a few
    // seconds; a head gets a 408 or a bare close, a body a 408 problem.
    let deadline = stalled_at + Duration::from_secs(5);
    for mut stream in stalled_heads {
        stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10))))
            .unwrap();
        let mut rest = Vec::new();
        let outcome = stream.read_to_end(&mut rest);
        assert!(outcome.is_ok(), "a stalled head is closed in time: {outcome:?}");
        assert!(stalled_at.elapsed() >= Duration::from_millis(900), "closed by the timeout, not before it");
        let text = String::from_utf8_lossy(&rest);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    for mut stream in stalled_bodies {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        let text = String::from_utf8_lossy(&rest);
        assert!(text.starts_with("HTTP/1.1 408"), "a stalled body gets 408: {text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
}

crate::on_both_backends!(
    hostile_requests_get_fast_4xx_or_a_closed_connection,
    slow_clients_are_cut_off_while_others_are_served
);
