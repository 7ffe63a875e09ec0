use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cardinal_card::wire::ProblemCode;
use cardinal_card::{CardId, Identity, RawSignedModel, SigningKey, card::CardBuilder};
use cardinal_client::{ClientError, RetryPolicy};
use tokio::time::Instant;

use crate::client;
use crate::server::{Reply, Service, TestServer};

/// Fast backoff, for tests whose server sends no `Retry-After`.
fn quick() -> RetryPolicy {
    RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(40))
}

/// Gaps between the arrivals of consecutive requests.
fn gaps(server: &TestServer) -> Vec<Duration> {
    server.requests().windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// Answers `refusals` with `refuse`, then serves `card` at `GET /v1/cards/{id}`.
async fn get_server(service: &Service, refusals: usize, refuse: fn() -> Reply) -> (TestServer, CardId) {
    let card = service.card_of("alice");
    let id: CardId = card.id.parse().unwrap();
    let seen = AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < refusals { refuse() } else { Reply::json(200, &card) }
    })
    .await;
    (server, id)
}

#[tokio::test]
async fn a_429_with_retry_after_1_is_retried_after_about_a_second_and_then_succeeds() {
    let service = Service::new();
    let (server, id) = get_server(&service, 1, || Reply::rate_limited().header("Retry-After", "1")).await;
    let client = client(&server, &service).build().unwrap();

    let card = client.get(&id).await.unwrap();

    assert_eq!(card.card.id, id);
    assert_eq!(server.requests().len(), 2);
    let gap = gaps(&server)[0];
    // Retry-After, plus at most 10% of jitter, plus scheduling.
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}, before Retry-After");
    assert!(gap < Duration::from_millis(1500), "retried after {gap:?}");
}

#[tokio::test]
async fn a_retry_after_as_an_http_date_is_honoured() {
    let service = Service::new();
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    let card = service.card_of("alice");
    let id: CardId = card.id.parse().unwrap();
    let seen = AtomicUsize::new(0);
    let server = TestServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::unavailable().header("Retry-After", &at)
        } else {
            Reply::json(200, &card)
        }
    })
    .await;
    let client = client(&server, &service).build().unwrap();

    client.get(&id).await.unwrap();

    // The date has a resolution of one second: the wait is between 1 and 2 s.
    let gap = gaps(&server)[0];
    assert!(gap >= Duration::from_millis(900) && gap < Duration::from_millis(2600), "retried after {gap:?}");
}

#[tokio::test]
async fn a_503_without_retry_after_is_retried_with_jittered_exponential_backoff() {
    let service = Service::new();
    let (server, id) = get_server(&service, 2, Reply::unavailable).await;
    let policy = RetryPolicy::default().backoff(Duration::from_millis(200), Duration::from_secs(2));
    let client = client(&server, &service).retry(policy).build().unwrap();

    client.get(&id).await.unwrap();

    assert_eq!(server.requests().len(), 3, "two refusals, then the answer");
    let gaps = gaps(&server);
    // The first wait is drawn from [100, 200] ms, the second from [200, 400] ms.
    assert!(gaps[0] >= Duration::from_millis(100) && gaps[0] < Duration::from_millis(450), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(200) && gaps[1] < Duration::from_millis(650), "{gaps:?}");
}

#[tokio::test]
async fn a_server_refusing_forever_fails_after_the_configured_attempts_with_rate_limited() {
    let service = Service::new();
    let (server, id) = get_server(&service, usize::MAX, || Reply::rate_limited().header("Retry-After", "1")).await;
    let client = client(&server, &service).build().unwrap(); // the default: 3 attempts within 10 s

    let started = Instant::now();
    let error = client.get(&id).await.unwrap_err();
    let took = started.elapsed();

    assert!(matches!(error, ClientError::Api { status: 429, code: ProblemCode::RateLimited, .. }), "{error:?}");
    assert_eq!(server.requests().len(), 3);
    assert!(took >= Duration::from_secs(2), "two waits of Retry-After: {took:?}");
    assert!(took < Duration::from_secs(10), "the time budget: {took:?}");
}

#[tokio::test]
async fn the_time_budget_ends_retrying_before_a_wait_would_overrun_it() {
    let service = Service::new();
    let (server, id) = get_server(&service, usize::MAX, || Reply::unavailable().header("Retry-After", "1")).await;
    let policy = RetryPolicy::default().max_attempts(10).max_elapsed(Duration::from_millis(1500));
    let client = client(&server, &service).retry(policy).build().unwrap();

    let started = Instant::now();
    let error = client.get(&id).await.unwrap_err();
    let took = started.elapsed();

    assert_eq!(error.code(), Some(ProblemCode::Unavailable));
    // At 0 s and 1 s; a third attempt would start after 2 s, past the budget.
    assert_eq!(server.requests().len(), 2);
    assert!(took < Duration::from_millis(1500), "gave up at once rather than wait: {took:?}");
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_is_not_waited_for() {
    let service = Service::new();
    let (server, id) = get_server(&service, usize::MAX, || Reply::rate_limited().header("Retry-After", "60")).await;
    let client = client(&server, &service).build().unwrap();

    let started = Instant::now();
    let error = client.get(&id).await.unwrap_err();

    assert_eq!(error.code(), Some(ProblemCode::RateLimited));
    assert_eq!(server.requests().len(), 1);
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn retry_policy_never_returns_the_first_refusal() {
    let service = Service::new();
    let (server, id) = get_server(&service, usize::MAX, Reply::unavailable).await;
    let client = client(&server, &service).retry(RetryPolicy::never()).build().unwrap();

    let error = client.get(&id).await.unwrap_err();

    assert!(matches!(error, ClientError::Api { status: 503, code: ProblemCode::Unavailable, .. }), "{error:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_proxys_503_without_a_problem_body_still_reads_as_unavailable() {
    let service = Service::new();
    let (server, id) = get_server(&service, usize::MAX, || Reply::text(503, "upstream down")).await;
    let client = client(&server, &service).retry(quick()).build().unwrap();

    let error = client.get(&id).await.unwrap_err();

    assert!(matches!(error, ClientError::Api { status: 503, code: ProblemCode::Unavailable, .. }), "{error:?}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_lookup_is_retried_and_its_chunk_cached() {
    let service = Arc::new(Service::new());
    let serving = service.clone();
    let seen = AtomicUsize::new(0);
    let server = TestServer::start(move |request| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 { Reply::rate_limited() } else { serving.lookup(request) }
    })
    .await;
    let client = client(&server, &service).retry(quick()).build().unwrap();

    let found = client.lookup(&["alice"]).await.unwrap();
    client.lookup(&["alice"]).await.unwrap();

    assert_eq!(found["alice"].len(), 1);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(client.lookup_stats().not_modified, 1);
}

fn new_card(identity: &str) -> RawSignedModel {
    CardBuilder::new(Identity::parse(identity).unwrap(), &SigningKey::generate(), 1_700_000_000).build().1
}

/// Plays `POST /v1/cards`: the first `refusals` attempts get `refuse`, the next one is published.
async fn publish_server(refusals: usize, refuse: fn() -> Reply) -> (TestServer, Arc<Service>) {
    let service = Arc::new(Service::new());
    let serving = service.clone();
    let seen = AtomicUsize::new(0);
    let server = TestServer::start(move |request| {
        if seen.fetch_add(1, Ordering::SeqCst) < refusals {
            return refuse();
        }
        let raw: RawSignedModel = serde_json::from_slice(&request.body).unwrap();
        Reply::json(201, &serving.publish(raw))
    })
    .await;
    (server, service)
}

#[tokio::test]
async fn a_publish_is_retried_on_429_exactly_as_many_times_as_the_server_refused() {
    for refusals in [0, 1, 3] {
        let (server, service) = publish_server(refusals, Reply::rate_limited).await;
        let client = client(&server, &service).retry(quick().max_attempts(5)).build().unwrap();
        let card = new_card("alice");

        let published = client.publish(&card).await.unwrap();

        assert_eq!(published.card.raw.content_snapshot, card.content_snapshot);
        let requests = server.requests();
        assert_eq!(requests.len(), refusals + 1, "{refusals} refusals");
        assert!(requests.iter().all(|r| r.method == "POST" && r.path() == "/v1/cards"));
        assert!(requests.iter().all(|r| r.body == requests[0].body), "the same card every time");
    }
}

#[tokio::test]
async fn a_publish_refused_past_the_attempts_fails_with_rate_limited() {
    let (server, service) = publish_server(usize::MAX, Reply::rate_limited).await;
    let client = client(&server, &service).retry(quick().max_attempts(4)).build().unwrap();

    let error = client.publish(&new_card("alice")).await.unwrap_err();

    assert_eq!(error.code(), Some(ProblemCode::RateLimited));
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_publish_is_not_sent_again_after_the_connection_drops() {
    let (server, service) = publish_server(usize::MAX, Reply::hang_up).await;
    let client = client(&server, &service).retry(quick()).build().unwrap();

    let error = client.publish(&new_card("alice")).await.unwrap_err();

    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    assert_eq!(server.requests().len(), 1, "the server may have applied it: never resent");
}

#[tokio::test]
async fn a_revoke_is_not_sent_again_after_the_connection_drops() {
    let service = Service::new();
    let server = TestServer::start(|_| Reply::hang_up()).await;
    let client = client(&server, &service).retry(quick()).build().unwrap();
    let id = CardId::of_snapshot(b"any");

    let error = client.revoke(&id, Some("lost")).await.unwrap_err();

    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    assert_eq!(server.requests().len(), 1);
}

/// Plays a publish whose first attempt lands behind a 503: the retry is refused with `conflict`,
/// and `GET /v1/cards/{id}` serves what landed (`None`: nothing did).
async fn landed_behind_503(conflict: ProblemCode, landed: bool) -> (TestServer, Arc<Service>) {
    let service = Arc::new(Service::new());
    let serving = service.clone();
    let stored = std::sync::Mutex::new(None);
    let server = TestServer::start(move |request| match (request.method.as_str(), request.path()) {
        ("POST", "/v1/cards") => {
            let mut stored = stored.lock().unwrap();
            if stored.is_none() {
                let raw: RawSignedModel = serde_json::from_slice(&request.body).unwrap();
                *stored = Some(serving.publish(raw));
                Reply::unavailable()
            } else {
                Reply::problem(409, conflict)
            }
        }
        ("GET", path) => match stored.lock().unwrap().as_ref() {
            Some(card) if landed && path == format!("/v1/cards/{}", card.id) => Reply::json(200, card),
            _ => Reply::problem(404, ProblemCode::NotFound),
        },
        _ => Reply::text(404, "no such route"),
    })
    .await;
    (server, service)
}

#[tokio::test]
async fn a_publish_that_landed_behind_a_503_is_recognised_on_the_retry() {
    let (server, service) = landed_behind_503(ProblemCode::CardExists, true).await;
    let client = client(&server, &service).retry(quick()).build().unwrap();
    let card = new_card("alice");

    let published = client.publish(&card).await.unwrap();

    assert_eq!(published.card.raw.content_snapshot, card.content_snapshot);
    let calls: Vec<_> = server.requests().iter().map(|r| format!("{} {}", r.method, r.path())).collect();
    assert_eq!(calls, ["POST /v1/cards", "POST /v1/cards", format!("GET /v1/cards/{}", published.card.id).as_str()]);
}

#[tokio::test]
async fn a_conflict_after_a_retry_is_returned_when_the_card_did_not_land() {
    let (server, service) = landed_behind_503(ProblemCode::AlreadySuperseded, false).await;
    let client = client(&server, &service).retry(quick()).build().unwrap();

    let error = client.publish(&new_card("alice")).await.unwrap_err();

    assert_eq!(error.code(), Some(ProblemCode::AlreadySuperseded));
    assert_eq!(server.requests().len(), 3, "POST, POST, GET");
}

#[tokio::test]
async fn a_conflict_without_a_retry_is_returned_as_it_comes() {
    let service = Arc::new(Service::new());
    let server = TestServer::start(|_| Reply::problem(409, ProblemCode::CardExists)).await;
    let client = client(&server, &service).build().unwrap();

    let error = client.publish(&new_card("alice")).await.unwrap_err();

    assert_eq!(error.code(), Some(ProblemCode::CardExists));
    assert_eq!(server.requests().len(), 1, "no retry, so no look-up of the card");
}
