//! Outages, crashes and races: nothing acknowledged is lost, nothing refused is half-written,
//! and the directory's invariants hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cardinal_card::SigningKey;
use cardinal_card::log::{GENESIS_HASH, StoredEvent, verify_chain};
use cardinal_server::auth::jwt::{Claims, mint_eddsa};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Options, Spawned, assert_event_log_verifies, mint, new_card, now, rotation_of, spawn_app_with, spawn_binary,
};
use crate::support::{Backend, PgCluster, TestDb};

/// Runs a query returning text columns, on whichever backend holds the directory.
async fn text_rows(backend: Backend, url: &str, sql: &'static str) -> Vec<Vec<String>> {
    use sqlx::Row;
    fn collect<R: Row>(rows: Vec<R>) -> Vec<Vec<String>>
    where
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        rows.iter().map(|row| (0..row.len()).map(|i| row.try_get::<String, usize>(i).unwrap()).collect()).collect()
    }
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            collect(rows)
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            collect(rows)
        }
    }
}

/// Every card has its publish event and every publish event its card; the log verifies.
async fn assert_cards_and_events_agree(backend: Backend, url: &str) {
    let cards: BTreeSet<String> =
        text_rows(backend, url, "SELECT id FROM cards").await.into_iter().map(|r| r[0].clone()).collect();
    let events: BTreeSet<String> = text_rows(backend, url, "SELECT card_id FROM events WHERE kind = 'card_published'")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(cards, events, "every card has its event and every event its card");
    // The stored links and hashes, as hex, verify as a chain for every app.
    let sql = match backend {
        Backend::Postgres => {
            "SELECT app_id, body, encode(prev_hash, 'hex'), encode(hash, 'hex') FROM events ORDER BY app_id, seq"
        }
        Backend::Sqlite => {
            "SELECT app_id, body, lower(hex(prev_hash)), lower(hex(hash)) FROM events ORDER BY app_id, seq"
        }
    };
    let rows = text_rows(backend, url, sql).await;
    type Stored = (Vec<u8>, Vec<u8>, Vec<u8>);
    let mut by_app: BTreeMap<&str, Vec<Stored>> = BTreeMap::new();
    for row in &rows {
        by_app.entry(&row[0]).or_default().push((
            row[1].clone().into_bytes(),
            hex::decode(&row[2]).unwrap(),
            hex::decode(&row[3]).unwrap(),
        ));
    }
    assert!(!by_app.is_empty());
    for (app, events) in by_app {
        verify_chain(0, GENESIS_HASH, events.iter().map(|(b, p, h)| StoredEvent { body: b, prev_hash: p, hash: h }))
            .unwrap_or_else(|e| panic!("app {app}'s event log: {e}"));
    }
}

async fn fifty_concurrent_clients_keep_every_invariant(backend: Backend) {
    let options = Options { settings: vec![("rate_limits.enabled", json!(false))], ..Options::default() };
    let app = Arc::new(spawn_app_with(backend, options).await);
    let identities: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    for identity in &identities {
        app.published(identity, &new_card(identity)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));

    // A monitor samples every identity's version: they may only go up.
    let monitor = {
        let (stop, url, backend) = (stop.clone(), app.database_url().to_owned(), app.backend);
        tokio::spawn(async move {
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                for row in
                    text_rows(backend, &url, "SELECT identity, CAST(version AS TEXT) FROM identity_versions").await
                {
                    let version: i64 = row[1].parse().unwrap();
                    let previous = last.insert(row[0].clone(), version).unwrap_or(0);
                    assert!(version >= previous, "{}'s version went back from {previous} to {version}", row[0]);
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        })
    };

    let deadline = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..50u64)
        .map(|client| {
            let (app, identities) = (app.clone(), identities.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(client);
                let mut outcomes: BTreeMap<u16, usize> = BTreeMap::new();
                while Instant::now() < deadline {
                    let identity = &identities[rng.gen_range(0..identities.len())];
                    let token = app.user_token(identity);
                    let status = match rng.gen_range(0..10) {
                        0..=5 => {
                            let found: Value = app.lookup(&token, &[identity], None).await.json().await.unwrap();
                            match found["identities"][identity][0]["id"].as_str() {
                                Some(head) => app
                                    .publish(identity, &rotation_of(identity, &head.parse().unwrap()).raw)
                                    .await
                                    .status(),
                                None => app.publish(identity, &new_card(identity).raw).await.status(),
                            }
                        }
                        6 | 7 => app.publish(identity, &new_card(identity).raw).await.status(),
                        8 => {
                            let found: Value = app.lookup(&token, &[identity], None).await.json().await.unwrap();
                            match found["identities"][identity][0]["id"].as_str() {
                                Some(head) => app.revoke(&token, head, Some("race")).await.status(),
                                None => StatusCode::OK,
                            }
                        }
                        _ => app
                            .lookup(&token, &identities.iter().map(String::as_str).collect::<Vec<_>>(), None)
                            .await
                            .status(),
                    };
                    *outcomes.entry(status.as_u16()).or_default() += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes: BTreeMap<u16, usize> = BTreeMap::new();
    for client in clients {
        for (status, count) in client.await.unwrap() {
            *outcomes.entry(status).or_default() += count;
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(monitor.await.unwrap() > 10, "the monitor sampled the versions");
    assert!(outcomes.keys().all(|s| [200, 201, 404, 409].contains(s)), "only successes and conflicts: {outcomes:?}");
    assert!(outcomes.get(&201).copied().unwrap_or(0) >= 5, "the race made progress: {outcomes:?}");
    assert!(outcomes.get(&409).copied().unwrap_or(0) >= 5, "and conflicted: {outcomes:?}");

    let url = app.database_url();
    let successors = text_rows(backend, url, "SELECT previous_card_id FROM cards WHERE previous_card_id IS NOT NULL GROUP BY previous_card_id HAVING COUNT(*) > 1").await;
    assert!(successors.is_empty(), "at most one successor per card: {successors:?}");
    let live = text_rows(
        backend,
        url,
        "SELECT identity FROM chains WHERE revoked_at IS NULL GROUP BY identity HAVING COUNT(*) > 1",
    )
    .await;
    assert!(live.is_empty(), "at most one live chain per identity under single: {live:?}");
    let heads = text_rows(backend, url, "SELECT c.id FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id WHERE (c.superseded_by IS NULL) <> (ch.head_card_id = c.id)").await;
    assert!(heads.is_empty(), "exactly the chain's head is not superseded: {heads:?}");
    assert_event_log_verifies(&app).await;
    assert_cards_and_events_agree(backend, url).await;
}

fn token(key: &SigningKey, kid: &str, app: &str, identity: &str) -> String {
    mint_eddsa(key, kid, &Claims { iss: app.into(), sub: identity.into(), iat: now(), exp: now() + 3600, nbf: None })
        .unwrap()
}

async fn kill_9_during_a_publish_storm_loses_nothing_acknowledged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = db.dir().to_owned();
    let key_file = dir.join("service.pem").display().to_string();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("CARDINAL_RATE_LIMITS__ENABLED", "false"),
        ("CARDINAL_SERVICE__SIGNING_KEY_FILE", key_file.as_str()),
    ];
    mint(&dir, &env, &["app", "create", "crash"]);
    mint(&dir, &env, &["key", "generate", "--app", "crash", "--role", "app", "--out", "app.pem", "--kid", "crash-app"]);
    let key = SigningKey::from_text(&std::fs::read_to_string(dir.join("app.pem")).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<(String, Value)> = Vec::new();

    for round in 0..3u64 {
        let Spawned { process: mut server, port, .. } = spawn_binary(&dir, &env);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let (client, key, stop, progress) = (client.clone(), key.clone(), stop.clone(), progress.clone());
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let identity = format!("r{round}w{writer}n{n}");
                        let card = new_card(&identity);
                        let sent = client
                            .post(format!("http://127.0.0.1:{port}/v1/cards"))
                            .bearer_auth(token(&key, "crash-app", "crash", &identity))
                            .json(&card.raw)
                            .send()
                            .await;
                        let Ok(response) = sent else { break };
                        if response.status() == StatusCode::CREATED {
                            let Ok(body) = response.json::<Value>().await else { break };
                            acked.push((body["id"].as_str().unwrap().to_owned(), body["raw"].clone()));
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    acked
                })
            })
            .collect();
        // Kill once the storm is well under way (by progress, not by the clock: CI machines vary),
        // a little later each round so the kill lands at different points of a publish.
        let started = Instant::now();
        while progress.load(Ordering::Relaxed) < 15 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(37 * round)).await;
        server.0.kill().unwrap(); // SIGKILL, mid-storm
        let _ = server.0.wait();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }
    }
    assert!(acknowledged.len() >= 45, "the storm published: {}", acknowledged.len());

    let Spawned { process: _server, port, .. } = spawn_binary(&dir, &env);
    let reader = token(&key, "crash-app", "crash", "auditor");
    for (id, raw) in &acknowledged {
        let response =
            client.get(format!("http://127.0.0.1:{port}/v1/cards/{id}")).bearer_auth(&reader).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "acknowledged card {id} survived");
        let stored: Value = response.json().await.unwrap();
        assert_eq!(&stored["raw"], raw, "{id} is byte-identical");
    }
    assert_cards_and_events_agree(backend, &db.url).await;
    // Checkpoints signed between the kills all agree with the surviving entries.
    let signed = crate::transparency::assert_checkpoints_consistent(backend, &db.url).await;
    assert!(signed >= 3, "a checkpoint at each start at least: {signed}");
}

/// Postgres only: the test stops and starts its own cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_without_losing_or_half_writing() {
    let cluster = PgCluster::start_new();
    let settings = vec![
        ("rate_limits.enabled", json!(false)),
        ("database.acquire_timeout_ms", json!(1000)),
        ("database.readiness_timeout_ms", json!(500)),
    ];
    let options = Options { settings, database: Some(TestDb::external(cluster.url())), ..Options::default() };
    let app = Arc::new(spawn_app_with(Backend::Postgres, options).await);
    let stop = Arc::new(AtomicBool::new(false));

    #[derive(Debug)]
    struct Outcome {
        status: u16,
        code: Option<String>,
        elapsed: Duration,
        card: Option<(String, Value)>,
        at: Instant,
    }
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    let (response, card) = if worker < 4 {
                        let identity = format!("w{worker}n{n}");
                        let card = new_card(&identity);
                        let raw = serde_json::to_value(&card.raw).unwrap();
                        (app.publish(&identity, &card.raw).await, Some((card.id.to_string(), raw)))
                    } else {
                        (app.lookup(&app.user_token("reader"), &["w0n0", "w1n1"], None).await, None)
                    };
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let code = body["code"].as_str().map(str::to_owned);
                    let card = card.map(|(id, sent)| (id, if status == 201 { body["raw"].clone() } else { sent }));
                    outcomes.push(Outcome { status, code, elapsed: started.elapsed(), card, at: Instant::now() });
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.stop();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "/readyz says not ready while the database is down");
    assert!(ready.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The outage ends when the restart is invoked: PostgreSQL accepts logins 50-80 ms before
    // `pg_ctl -w start` returns, and a publish that was waiting for a connection commits then.
    let restarting = Instant::now();
    cluster.start();
    let up = Instant::now();
    let recovered = loop {
        let response = app.publish("after-outage", &new_card("after-outage").raw).await;
        if response.status() == StatusCode::CREATED {
            break up.elapsed();
        }
        assert!(up.elapsed() < Duration::from_secs(5), "recovers within 5 s without a restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }

    // Requests that started once the database was down (by their start: one already in flight
    // when the cluster stopped may still complete normally) and ended before the restart began.
    let during: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.at - o.elapsed > down + Duration::from_millis(200) && o.at < restarting).collect();
    assert!(!during.is_empty(), "requests ran during the outage");
    // Every one of them is 503 unavailable.
    for outcome in &during {
        assert_eq!((outcome.status, outcome.code.as_deref()), (503, Some("unavailable")), "{outcome:?}");
    }
    for outcome in &outcomes {
        assert!(outcome.status < 500 || outcome.status == 503, "never a {} : {outcome:?}", outcome.status);
        assert!(outcome.elapsed < Duration::from_millis(3000), "no hang beyond the acquire timeout: {outcome:?}");
    }
    assert!(outcomes.iter().any(|o| o.status == 201 && o.at < down), "publishes succeeded before the outage");
    eprintln!("recovered {recovered:?} after the database came back; {} requests during the outage", during.len());

    let reader = app.user_token("auditor");
    for outcome in outcomes.iter().filter(|o| o.card.is_some()) {
        let (id, raw) = outcome.card.as_ref().unwrap();
        let response = app.get_card(&reader, id).await;
        if outcome.status == 201 {
            assert_eq!(response.status(), StatusCode::OK, "acknowledged {id} is present");
            assert_eq!(&response.json::<Value>().await.unwrap()["raw"], raw);
        } else {
            // A publish that got an error is absent, or (if its commit landed just as the
            // connection died) fully present: never half-written.
            assert!(matches!(response.status(), StatusCode::OK | StatusCode::NOT_FOUND), "{id}: {}", response.status());
        }
    }
    assert_cards_and_events_agree(Backend::Postgres, &cluster.url()).await;
    assert_event_log_verifies(&app).await;
}

crate::on_both_backends!(
    fifty_concurrent_clients_keep_every_invariant,
    kill_9_during_a_publish_storm_loses_nothing_acknowledged
);
