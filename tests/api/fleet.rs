//! A fleet on PostgreSQL, with the real parts: instances behind Debian's PgBouncer in
//! transaction mode, a streaming replica made with pg_basebackup whose replay the test pauses,
//! backups restored by file copy and by pg_dump/pg_restore, and instances starting together.
//! The promise under test is the directory's: a revoked card stops being served within a bound.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardinal_card::CardId;
use cardinal_server::config::Settings;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, metric, new_card, rotation_of, run_binary, spawn_app_with, spawn_binary};
use crate::support::fleet::{PgBouncer, SilentableRelay};
use crate::support::{Backend, PgCluster, TestDb, admin_pg_url, pg_bin};

/// The port of the PostgreSQL the tests' databases live on.
fn shared_pg_port() -> u16 {
    let url = admin_pg_url();
    let authority = url.split('@').next_back().unwrap().split('/').next().unwrap();
    authority.rsplit_once(':').map_or(5432, |(_, port)| port.parse().unwrap())
}

fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A lookup of `identity` at `address`, conditional on `etag`: (status, etag, card ids).
async fn lookup_at(
    app: &TestApp,
    address: &str,
    token: &str,
    identity: &str,
    etag: Option<&str>,
) -> (u16, String, Vec<String>) {
    let mut request = app.client.get(format!("{address}/v1/cards?identity={identity}")).bearer_auth(token);
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let tag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let ids = if status == 200 {
        let body: Value = response.json().await.unwrap();
        body["identities"][identity]
            .as_array()
            .unwrap()
            .iter()
            .map(|card| card["id"].as_str().unwrap().to_owned())
            .collect()
    } else {
        Vec::new()
    };
    (status, tag, ids)
}

/// Revalidates at `address` until a 304 came from memory (the instance's listener is heard and
/// trusted), so that what follows tests the cache, not the database.
async fn until_served_from_memory(app: &TestApp, address: &str, token: &str, identity: &str, etag: &str) {
    let before = metric(&app.client, address, "cardinal_revalidations_from_memory_total").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = lookup_at(app, address, token, identity, Some(etag)).await;
        assert_eq!(status, 304);
        if metric(&app.client, address, "cardinal_revalidations_from_memory_total").await > before {
            return;
        }
        assert!(Instant::now() < deadline, "{address} never answered from memory");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Revokes `card` through the app's own instance and measures how long `address` keeps serving
/// it, to a client revalidating with `etag` and to a first lookup: the longer of the two.
async fn revoked_card_served_for(
    app: &TestApp,
    address: &str,
    token: &str,
    identity: &str,
    etag: &str,
    card: &str,
) -> Duration {
    let response = app.revoke(&app.user_token(identity), card, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let revoked = Instant::now();
    let deadline = revoked + Duration::from_secs(15);
    loop {
        let (status, _, ids) = lookup_at(app, address, token, identity, Some(etag)).await;
        let (_, _, first) = lookup_at(app, address, token, identity, None).await;
        if status == 200 && !ids.contains(&card.to_owned()) && !first.contains(&card.to_owned()) {
            return revoked.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{address} still serves the revoked card: {status} {ids:?}, first lookup {first:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes a card for `identity` and returns its id, and the tag a client at `address` holds.
async fn published_and_looked_up(app: &TestApp, address: &str, token: &str, identity: &str) -> (String, String) {
    let card = app.published(identity, &new_card(identity)).await;
    let id = card["id"].as_str().unwrap().to_owned();
    let (status, etag, ids) = lookup_at(app, address, token, identity, None).await;
    assert_eq!((status, ids), (200, vec![id.clone()]));
    (id, etag)
}

fn set(settings: &mut Settings, url: &str, behind_pooler: bool, listen_url: Option<&str>) {
    settings.database.url = SecretString::from(url.to_owned());
    settings.database.behind_pooler = behind_pooler;
    settings.database.listen_url = SecretString::from(listen_url.unwrap_or_default().to_owned());
}

async fn fleet(url: String, behind_pooler: bool, listen_url: Option<String>, trust_ms: u64) -> (TestApp, TestDb) {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = db.url.clone();
    let database = TestDb::external(direct.clone());
    let url = url.replace("{db}", database_name(&direct));
    let listen_url = listen_url.map(|listen| listen.replace("{db}", database_name(&direct)));
    let app = spawn_app_with(
        Backend::Postgres,
        Options {
            database: Some(database),
            settings: vec![
                ("database.url", json!(url)),
                ("database.behind_pooler", json!(behind_pooler)),
                ("database.listen_url", json!(listen_url.unwrap_or_default())),
                ("cache.identity_versions_trust_ms", json!(trust_ms)),
                // These tests load one identity's reads on purpose (24 workers × 40 reads): the
                // per-identity read limit is not what they test.
                ("rate_limits.enabled", json!(false)),
            ],
            ..Options::default()
        },
    )
    .await;
    (app, db)
}

/// Acceptance 1, through PgBouncer: a card revoked through one instance stops being served by
/// the other (no 304 for the old tag, no card in a full answer) within 2 s, while the other
/// answers revalidations from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_pgbouncer_a_revocation_through_one_instance_reaches_the_other_within_2s() {
    let bouncer = PgBouncer::start(shared_pg_port(), 4);
    let (app, _db) = fleet(
        bouncer.url_of("{db}"),
        true,
        Some(format!("{}/{{db}}", admin_pg_url().rsplit_once('/').unwrap().0)),
        2000,
    )
    .await;
    let (other, _handle) = app.another_instance().await;
    let token = app.user_token("reader");
    let (card, etag) = published_and_looked_up(&app, &other, &token, "alice").await;
    until_served_from_memory(&app, &other, &token, "alice", &etag).await;
    let served = revoked_card_served_for(&app, &other, &token, "alice", &etag, &card).await;
    assert!(served < Duration::from_secs(2), "served {served:?} after its revocation");
    assert!(bouncer.log().contains("login attempt"), "the instances went through PgBouncer");
}

/// The same with direct connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directly_a_revocation_through_one_instance_reaches_the_other_within_2s() {
    let (app, _db) = fleet(admin_pg_url().rsplit_once('/').unwrap().0.to_owned() + "/{db}", false, None, 2000).await;
    let (other, _handle) = app.another_instance().await;
    let token = app.user_token("reader");
    let (card, etag) = published_and_looked_up(&app, &other, &token, "alice").await;
    until_served_from_memory(&app, &other, &token, "alice", &etag).await;
    let served = revoked_card_served_for(&app, &other, &token, "alice", &etag, &card).await;
    assert!(served < Duration::from_secs(2), "served {served:?} after its revocation");
}

/// With the other instance's listener connection gone silent (nothing delivered, nothing
/// closed: the case a lost connection does not announce), the revoked card is served no longer
/// than the configured trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_listener_silenced_a_revocation_is_seen_within_the_trust_bound() {
    const TRUST: Duration = Duration::from_millis(1500);
    let relay = SilentableRelay::start(shared_pg_port()).await;
    let direct = admin_pg_url().rsplit_once('/').unwrap().0.to_owned() + "/{db}";
    let (app, db) = fleet(direct.clone(), false, None, TRUST.as_millis() as u64).await;
    let relayed = format!("postgres://postgres@127.0.0.1:{}/{}", relay.port, database_name(&db.url));
    let (other, _handle) = app.instance_with(|settings| set(settings, &db.url, false, Some(&relayed))).await;
    let token = app.user_token("reader");
    let (card, etag) = published_and_looked_up(&app, &other, &token, "alice").await;
    until_served_from_memory(&app, &other, &token, "alice", &etag).await;
    relay.go_silent();
    let served = revoked_card_served_for(&app, &other, &token, "alice", &etag, &card).await;
    assert!(served <= TRUST + Duration::from_millis(500), "served {served:?} after its revocation (trust {TRUST:?})");
}

/// With the other instance's listener connection cut (its backend terminated), the revoked
/// card is served no longer than the trust bound either (in practice: at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_listener_cut_a_revocation_is_seen_within_the_trust_bound() {
    const TRUST: Duration = Duration::from_millis(1500);
    let (app, db) =
        fleet(admin_pg_url().rsplit_once('/').unwrap().0.to_owned() + "/{db}", false, None, TRUST.as_millis() as u64)
            .await;
    let (other, _handle) = app.another_instance().await;
    let token = app.user_token("reader");
    let (card, etag) = published_and_looked_up(&app, &other, &token, "alice").await;
    until_served_from_memory(&app, &other, &token, "alice", &etag).await;
    let admin = sqlx::PgPool::connect(&admin_pg_url()).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(database_name(&db.url))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(cut, vec![(true,), (true,)], "both instances listen");
    let served = revoked_card_served_for(&app, &other, &token, "alice", &etag, &card).await;
    assert!(served <= TRUST + Duration::from_millis(500), "served {served:?} after its revocation");
}

/// A listener routed through PgBouncer is subscribed but deaf: its probes never come back, so
/// memory is never used, and revalidations are answered from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listener_behind_pgbouncer_hears_nothing_so_memory_is_never_used() {
    let bouncer = PgBouncer::start(shared_pg_port(), 4);
    let (app, _db) = fleet(bouncer.url_of("{db}"), true, Some(bouncer.url_of("{db}")), 500).await;
    let token = app.user_token("reader");
    let (_card, etag) = published_and_looked_up(&app, &app.address, &token, "alice").await;
    for _ in 0..30 {
        let (status, _, _) = lookup_at(&app, &app.address, &token, "alice", Some(&etag)).await;
        assert_eq!(status, 304);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&app.client, &app.address, "cardinal_revalidations_from_memory_total").await, 0.0);
}

/// Through PgBouncer's shared server connections, concurrent reads of different identities
/// each get their own answer (sqlx's two exchanges per statement stay on one server connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_pgbouncer_concurrent_reads_each_get_their_own_answer() {
    let bouncer = PgBouncer::start(shared_pg_port(), 2);
    let (app, _db) = fleet(bouncer.url_of("{db}"), true, None, 2000).await;
    let app = Arc::new(app);
    let mut cards = Vec::new();
    for n in 0..6 {
        let identity = format!("user{n}");
        let card = app.published(&identity, &new_card(&identity)).await;
        cards.push((identity, card["id"].as_str().unwrap().to_owned()));
    }
    let token = app.user_token("reader");
    let mut tasks = Vec::new();
    for worker in 0..24 {
        let (app, token, cards) = (app.clone(), token.clone(), cards.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..20 {
                let (identity, card) = &cards[(worker + round) % cards.len()];
                let (status, _, ids) = lookup_at(&app, &app.address, &token, identity, None).await;
                assert_eq!((status, ids), (200, vec![card.clone()]), "{identity}'s answer");
                let response = app.get_card(&token, card).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Acceptance 2: with replay running, first lookups are answered by the replica (metrics say
/// so); with replay paused, a revocation on the primary is still seen by readers within the
/// configured lag, and reads fall back to the primary; revalidations never go to the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_replica_never_hides_a_revocation_longer_than_the_lag_bound() {
    const MAX_LAG: Duration = Duration::from_millis(1000);
    let primary = PgCluster::start_new();
    let admin = sqlx::PgPool::connect(&primary.url()).await.unwrap();
    sqlx::query("CREATE DATABASE cardinal").execute(&admin).await.unwrap();
    let replica = PgCluster::replica_of(&primary);
    let app = spawn_app_with(
        Backend::Postgres,
        Options {
            database: Some(TestDb::external(primary.url_of("cardinal"))),
            settings: vec![
                ("database.replica_urls", json!([replica.url_of("cardinal")])),
                ("database.replica_max_lag_ms", json!(MAX_LAG.as_millis() as u64)),
                // The replica path itself is under test: with the answer cache, lookups that
                // memory can answer never ask the replica (tests/api/answer_cache.rs).
                ("cache.answer_bytes", json!(0)),
            ],
            ..Options::default()
        },
    )
    .await;
    let token = app.user_token("reader");
    let reads = || metric(&app.client, &app.address, "cardinal_replica_reads_total{replica=\"0\"}");
    let card = app.published("alice", &new_card("alice")).await["id"].as_str().unwrap().to_owned();
    // A first lookup may lag a publish by the bound too: wait for the card, and take its tag.
    let deadline = Instant::now() + MAX_LAG * 3;
    let etag = loop {
        let (status, etag, ids) = lookup_at(&app, &app.address, &token, "alice", None).await;
        assert_eq!(status, 200);
        if ids == vec![card.clone()] {
            break etag;
        }
        assert!(Instant::now() < deadline, "the new card did not appear within the bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Replay running: first lookups come from the replica, and show what the primary has.
    let deadline = Instant::now() + Duration::from_secs(10);
    while reads().await == 0.0 {
        assert!(Instant::now() < deadline, "the replica never answered");
        let (status, _, ids) = lookup_at(&app, &app.address, &token, "alice", None).await;
        assert_eq!((status, ids), (200, vec![card.clone()]));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let staleness = metric(&app.client, &app.address, "cardinal_replica_staleness_seconds{replica=\"0\"}").await;
    assert!(staleness <= MAX_LAG.as_secs_f64(), "staleness {staleness}");

    // Replay paused: the replica keeps the card forever; readers must not.
    let replica_admin = sqlx::PgPool::connect(&replica.url()).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()").execute(&replica_admin).await.unwrap();
    let served = revoked_card_served_for(&app, &app.address, &token, "alice", &etag, &card).await;
    assert!(
        served <= MAX_LAG + Duration::from_millis(500),
        "served {served:?} after its revocation (lag bound {MAX_LAG:?})"
    );
    let on_replica: Vec<(String,)> =
        sqlx::query_as("SELECT c.id FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id WHERE ch.revoked_at IS NULL")
            .fetch_all(&sqlx::PgPool::connect(&replica.url_of("cardinal")).await.unwrap())
            .await
            .unwrap();
    assert_eq!(on_replica, vec![(card.clone(),)], "the paused replica still holds the card as active");
    assert!(metric(&app.client, &app.address, "cardinal_replica_fallbacks_total{reason=\"stale\"}").await > 0.0);

    // Replay resumed: the replica catches up and answers again.
    sqlx::query("SELECT pg_wal_replay_resume()").execute(&replica_admin).await.unwrap();
    let before = reads().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, ids) = lookup_at(&app, &app.address, &token, "alice", None).await;
        assert_eq!((status, ids), (200, vec![]), "never the revoked card again");
        if reads().await > before {
            break;
        }
        assert!(Instant::now() < deadline, "the replica never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a client holding tags sees across a restore: `tags` are (tag, the card ids it was
/// issued over); each must still revalidate exactly when the current answer is the same.
async fn assert_tags_match_only_their_content(
    app: &TestApp,
    address: &str,
    token: &str,
    tags: &[(String, Vec<String>)],
) {
    for (tag, ids) in tags {
        let (status, _, now) = lookup_at(app, address, token, "alice", Some(tag)).await;
        let (_, _, current) = lookup_at(app, address, token, "alice", None).await;
        if status == 304 {
            assert_eq!(&current, ids, "a tag issued over {ids:?} matched {current:?}");
        } else {
            assert_eq!((status, &now), (200, &current));
            assert_ne!(&current, ids, "unchanged content must revalidate with 304");
        }
    }
}

/// Rotates alice's card through the server at `address` and returns the new id.
async fn rotate_at(app: &TestApp, address: &str, previous: &str) -> String {
    let previous: CardId = previous.parse().unwrap();
    let card = rotation_of("alice", &previous);
    let response = app
        .client
        .post(format!("{address}/v1/cards"))
        .bearer_auth(app.user_token("alice"))
        .json(&card.raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn rotate(app: &TestApp, previous: &str) -> String {
    rotate_at(app, &app.address, previous).await
}

/// Acceptance 3 on SQLite, restored by copying the file back: tags taken before the restore
/// never match different content after it (even once the counters climb back to the values the
/// tags were issued at), and unchanged content still revalidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_file_copy_restore_no_old_tag_matches_different_content() {
    let mut app = spawn_app_with(Backend::Sqlite, Options::default()).await;
    let token = app.user_token("reader");
    let first = app.published("alice", &new_card("alice")).await["id"].as_str().unwrap().to_owned();
    let (_, tag_first, _) = lookup_at(&app, &app.address, &token, "alice", None).await;
    let file = std::path::PathBuf::from(app.database_url().trim_start_matches("sqlite://"));
    // An operator's file copy: everything stopped, the database and its WAL copied together.
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for journal in ["", "-wal", "-shm"] {
            let (from, to) = (format!("{}{journal}", from.display()), format!("{}{journal}", to.display()));
            let _ = std::fs::remove_file(&to);
            if std::path::Path::new(&from).exists() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
    };
    app.store.close().await;
    app.stop().await;
    let backup = file.with_extension("backup");
    copy(&file, &backup);
    app.start().await;
    let second = rotate(&app, &first).await;
    let (_, tag_second, _) = lookup_at(&app, &app.address, &token, "alice", None).await;
    app.stop().await;
    copy(&backup, &file);
    app.start().await;
    let tags = [(tag_first.clone(), vec![first.clone()]), (tag_second.clone(), vec![second])];
    assert_tags_match_only_their_content(&app, &app.address, &token, &tags).await;
    // The counter is back where the second tag was issued; the content is not.
    let third = rotate(&app, &first).await;
    assert_tags_match_only_their_content(&app, &app.address, &token, &tags).await;
    let (_, _, now) = lookup_at(&app, &app.address, &token, "alice", Some(&tag_second)).await;
    assert_eq!(now, vec![third]);
}

/// Acceptance 3 on PostgreSQL, restored with pg_dump and pg_restore into a new database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_pg_restore_no_old_tag_matches_different_content() {
    let app = spawn_app_with(Backend::Postgres, Options::default()).await;
    let token = app.user_token("reader");
    let first = app.published("alice", &new_card("alice")).await["id"].as_str().unwrap().to_owned();
    let (_, tag_first, _) = lookup_at(&app, &app.address, &token, "alice", None).await;
    let dump = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new(pg_bin().join("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(dump.path())
        .arg(app.database_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    let second = rotate(&app, &first).await;
    let (_, tag_second, _) = lookup_at(&app, &app.address, &token, "alice", None).await;

    let restored = TestDb::new(Backend::Postgres).await;
    let out = std::process::Command::new(pg_bin().join("pg_restore"))
        .args(["--no-owner", "-d", &restored.url])
        .arg(dump.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
    let url = restored.url.clone();
    let (address, _handle) = app.instance_with(|settings| set(settings, &url, false, None)).await;
    let tags = [(tag_first, vec![first.clone()]), (tag_second.clone(), vec![second])];
    assert_tags_match_only_their_content(&app, &address, &token, &tags).await;
    // The counter is back where the second tag was issued; the content is not.
    let third = rotate_at(&app, &address, &first).await;
    assert_tags_match_only_their_content(&app, &address, &token, &tags).await;
    let (_, _, now) = lookup_at(&app, &address, &token, "alice", Some(&tag_second)).await;
    assert_eq!(now, vec![third]);
}

/// Acceptance 4: `cardinal backup` while 16 writers publish: the copy opens, its event chain
/// verifies, and every card acknowledged before the backup started is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_sixteen_writers_holds_everything_acknowledged_before_it() {
    let app = Arc::new(spawn_app_with(Backend::Sqlite, Options::default()).await);
    let acknowledged: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..16 {
        let (app, acknowledged, stop) = (app.clone(), acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let identity = format!("w{writer}-{n}");
                let response = app.publish(&identity, &new_card(&identity).raw).await;
                if response.status() == StatusCode::CREATED {
                    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                    acknowledged.lock().unwrap().push((Instant::now(), id));
                }
                n += 1;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 48 {
        assert!(Instant::now() < deadline, "the writers never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.db");
    let started = Instant::now();
    let env = [("CARDINAL_DATABASE__URL", app.database_url().to_owned())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["backup", "--out", out.to_str().unwrap()];
    let output = tokio::task::block_in_place(|| run_binary(dir.path(), &env, &args));
    assert!(output.status.success(), "backup: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("every chain verified"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);

    let copy = cardinal_server::storage::connect(
        &format!("sqlite://{}", out.display()),
        &cardinal_server::storage::PoolSettings::simple(2, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let census = cardinal_server::backup::verify_log(copy.as_ref()).await.expect("the copy's event chains verify");
    let before: Vec<String> =
        acknowledged.lock().unwrap().iter().filter(|(at, _)| *at < started).map(|(_, id)| id.clone()).collect();
    assert!(before.len() >= 48, "the writers were busy: {} cards before the backup", before.len());
    let app_id = cardinal_server::domain::AppId::parse(crate::helpers::APP).unwrap();
    for id in &before {
        let found = copy.find_card(&app_id, &id.parse().unwrap()).await.unwrap();
        assert!(found.is_some(), "card {id}, acknowledged before the backup, is missing from it");
    }
    let total = acknowledged.lock().unwrap().len();
    assert!(census.events as usize >= before.len(), "{census:?}");
    eprintln!(
        "{} cards acknowledged before the backup, {total} in all; the copy holds {} events",
        before.len(),
        census.events
    );
}

/// Restoring with `cardinal restore`: refused while a server runs, then the restored database
/// serves what the backup held, under a new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cardinal_restore_refuses_a_running_database_and_renews_the_epoch() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let env = [("CARDINAL_BOOTSTRAP__ENABLED", "true")];
    let server = spawn_binary(dir.path(), &env);
    let epoch = |dir: &std::path::Path| {
        let output = run_binary(dir, &env, &["epoch"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let backup = run_binary(dir.path(), &env, &["backup", "--out", "copy.db"]);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let original = epoch(dir.path());
    let refused = run_binary(dir.path(), &env, &["restore", "--from", "copy.db"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use by a running Cardinal"));
    drop(server);
    let restored = run_binary(dir.path(), &env, &["restore", "--from", "copy.db"]);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    assert!(String::from_utf8_lossy(&restored.stdout).contains("every chain verified"));
    let renewed = epoch(dir.path());
    assert_ne!(renewed, original);
    let replaced: Vec<String> = std::fs::read_dir(dir.path().join("cardinal-data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("cardinal.db.replaced-") && !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    assert_eq!(replaced.len(), 1, "the replaced database is kept");
    let again = spawn_binary(dir.path(), &env);
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", again.port)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Acceptance 5: three instances started at the same moment on one new primary migrate it once
/// and all serve; under load the database sees no more connections than the README's budget
/// (3 × (16 + 1)); and the same start through PgBouncer leaves no advisory lock behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_starting_at_once_migrate_once_serve_and_stay_within_the_budget() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A cluster of its own: the budget is most of the shared one's 100 connections.
    let cluster = PgCluster::start_new();
    let bouncer = PgBouncer::start(cluster.port, 8);
    for (round, behind_pooler) in [(0, false), (1, true)] {
        let name = format!("fleet{round}");
        let admin = sqlx::PgPool::connect(&cluster.url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let direct = cluster.url_of(&name);
        let url = if behind_pooler { bouncer.url_of(&name) } else { direct.clone() };
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let starting: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let (dir, url) = (dir.path().to_owned(), url.clone());
                std::thread::spawn(move || {
                    let pooler = behind_pooler.to_string();
                    let env = [
                        ("CARDINAL_DATABASE__URL", url.as_str()),
                        ("CARDINAL_DATABASE__BEHIND_POOLER", pooler.as_str()),
                        ("CARDINAL_DATABASE__LISTEN_URL", ""),
                    ];
                    spawn_binary(&dir, &env)
                })
            })
            .collect();
        let servers: Vec<_> = starting.into_iter().map(|s| s.join().expect("every instance starts")).collect();
        let client = reqwest::Client::new();
        for server in &servers {
            let ready = client.get(format!("http://127.0.0.1:{}/readyz", server.port)).send().await.unwrap();
            assert_eq!(ready.status(), StatusCode::OK);
        }
        let admin = sqlx::PgPool::connect(&direct).await.unwrap();
        let history: Vec<(i32,)> = sqlx::query_as("SELECT version FROM refinery_schema_history ORDER BY version")
            .fetch_all(&admin)
            .await
            .unwrap();
        let versions: BTreeSet<i32> = history.iter().map(|(v,)| *v).collect();
        assert_eq!(versions.len(), history.len(), "each migration ran once");
        let apps: Vec<(String,)> = sqlx::query_as("SELECT id FROM apps").fetch_all(&admin).await.unwrap();
        assert_eq!(apps.len(), 1, "one bootstrap app, whichever instance made it");
        let locks: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'")
            .fetch_one(&admin)
            .await
            .unwrap();
        assert_eq!(locks.0, 0, "no migration lock outlives the migration");

        // Load every instance with more concurrent requests than its pool, and count.
        let load: Vec<_> = servers
            .iter()
            .flat_map(|server| {
                (0..40)
                    .map(|_| client.get(format!("http://127.0.0.1:{}/readyz", server.port)).send())
                    .collect::<Vec<_>>()
            })
            .collect();
        let counting = async {
            let mut most = 0;
            for _ in 0..10 {
                let (count,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'cardinal'")
                        .fetch_one(&admin)
                        .await
                        .unwrap();
                most = most.max(count);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        };
        let (responses, most) = tokio::join!(futures_util::future::join_all(load), counting);
        assert!(responses.iter().all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
        assert!(most > 3, "the count sees Cardinal's connections ({most})");
        if most > 3 * (16 + 1) {
            let rows: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
                "SELECT state, left(query, 60), COUNT(*) FROM pg_stat_activity \
                 WHERE application_name = 'cardinal' GROUP BY 1, 2",
            )
            .fetch_all(&admin)
            .await
            .unwrap();
            panic!("{most} connections, over the budget of 51: {rows:?}");
        }
        eprintln!("behind_pooler={behind_pooler}: at most {most} connections under load");
        drop(servers);
        admin.close().await;
    }
}
