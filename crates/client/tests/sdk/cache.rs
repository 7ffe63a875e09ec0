use std::sync::Arc;

use cardinal_client::LookupStats;

use crate::client;
use crate::server::{Reply, Service, TestServer};

async fn lookup_server() -> (TestServer, Arc<Service>) {
    let service = Arc::new(Service::new());
    let serving = service.clone();
    let server = TestServer::start(move |request| match (request.method.as_str(), request.path()) {
        ("GET", "/v1/cards") => serving.lookup(request),
        _ => Reply::text(404, "no such route"),
    })
    .await;
    (server, service)
}

/// Ten identities of the same length: their chunks weigh the same.
fn identities() -> Vec<String> {
    (0..10).map(|i| format!("user-{i:02}")).collect()
}

#[tokio::test]
async fn a_repeated_lookup_revalidates_with_if_none_match_and_costs_a_304() {
    let (server, service) = lookup_server().await;
    let client = client(&server, &service).build().unwrap();

    let first = client.lookup(&["alice", "bob"]).await.unwrap();
    let second = client.lookup(&["bob", "alice"]).await.unwrap();

    assert_eq!(second, first, "the cached, verified cards (a full answer would hold new cards)");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("if-none-match"), None);
    assert!(requests[1].header("if-none-match").is_some(), "the second lookup is conditional");
    assert_eq!(client.lookup_stats(), LookupStats { requests: 2, not_modified: 1 });
    assert_eq!(client.lookup_cache_usage().chunks, 1);
}

#[tokio::test]
async fn more_chunks_than_the_bound_evict_the_oldest_and_the_cache_stays_within_it() {
    let (server, service) = lookup_server().await;
    // Measure what one chunk of one identity weighs.
    let probe = client(&server, &service).lookup_chunk_size(1).build().unwrap();
    probe.lookup(&["user-99"]).await.unwrap();
    let one = probe.lookup_cache_usage().bytes;
    assert!(one > 0);
    let bound = 3 * one + one / 2;
    let client = client(&server, &service).lookup_chunk_size(1).lookup_cache_bytes(bound).build().unwrap();

    for identity in identities() {
        client.lookup(&[identity]).await.unwrap();
        let usage = client.lookup_cache_usage();
        assert!(usage.bytes <= bound, "{usage:?} exceeds the bound of {bound} bytes");
        assert!(usage.chunks <= 3, "{usage:?}");
    }
    let usage = client.lookup_cache_usage();
    assert_eq!(usage.chunks, 3, "the bound holds three chunks: {usage:?}");

    // The three newest are cached: they revalidate, and the server answers 304.
    let sent = server.requests().len();
    client.lookup(&["user-07", "user-08", "user-09"]).await.unwrap();
    let requests = &server.requests()[sent..];
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.header("if-none-match").is_some()), "{requests:?}");
    assert_eq!(client.lookup_stats().not_modified, 3);

    // The oldest was evicted: a full, unconditional lookup.
    let sent = server.requests().len();
    client.lookup(&["user-00"]).await.unwrap();
    let requests = &server.requests()[sent..];
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("if-none-match"), None, "user-00 should have been evicted");
    assert_eq!(client.lookup_stats().not_modified, 3);
    assert!(client.lookup_cache_usage().bytes <= bound);
}

#[tokio::test]
async fn a_recently_used_chunk_outlives_newer_ones() {
    let (server, service) = lookup_server().await;
    let probe = client(&server, &service).lookup_chunk_size(1).build().unwrap();
    probe.lookup(&["user-99"]).await.unwrap();
    let one = probe.lookup_cache_usage().bytes;
    let client = client(&server, &service).lookup_chunk_size(1).lookup_cache_bytes(2 * one).build().unwrap();

    client.lookup(&["user-00"]).await.unwrap();
    client.lookup(&["user-01"]).await.unwrap();
    client.lookup(&["user-00"]).await.unwrap(); // 304, and now the most recently used
    client.lookup(&["user-02"]).await.unwrap(); // evicts user-01

    let sent = server.requests().len();
    client.lookup(&["user-00"]).await.unwrap();
    client.lookup(&["user-01"]).await.unwrap();
    let requests = &server.requests()[sent..];
    assert!(requests[0].header("if-none-match").is_some(), "user-00 was used recently");
    assert_eq!(requests[1].header("if-none-match"), None, "user-01 was the least recently used");
}

#[tokio::test]
async fn a_cache_bound_of_zero_makes_every_lookup_a_full_answer() {
    let (server, service) = lookup_server().await;
    let client = client(&server, &service).lookup_cache_bytes(0).build().unwrap();

    client.lookup(&["alice"]).await.unwrap();
    client.lookup(&["alice"]).await.unwrap();

    assert!(server.requests().iter().all(|r| r.header("if-none-match").is_none()));
    assert_eq!(client.lookup_stats().not_modified, 0);
    assert_eq!(client.lookup_cache_usage().chunks, 0);
}

#[tokio::test]
async fn a_card_that_fails_verification_is_never_cached() {
    let service = Arc::new(Service::new());
    let impostor = Arc::new(Service::new());
    let serving = impostor.clone();
    let server = TestServer::start(move |request| serving.lookup(request)).await;
    let client = client(&server, &service).build().unwrap();

    assert!(client.lookup(&["alice"]).await.is_err(), "countersigned by another key");
    assert!(client.lookup(&["alice"]).await.is_err());

    assert!(server.requests().iter().all(|r| r.header("if-none-match").is_none()));
    assert_eq!(client.lookup_cache_usage().chunks, 0);
}
