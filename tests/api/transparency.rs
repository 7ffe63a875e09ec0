//! The transparency log over HTTP (docs/TRANSPARENCY.md §3, §4): checkpoints, tiles and entry
//! bundles with their headers and their authentication, the `/v1/transparency` endpoints, and
//! a log that grows consistently while old tiles stay byte-identical.

use std::time::{Duration, Instant};

use cardinal_card::SigningKey;
use cardinal_card::tlog::{self, Checkpoint, TilePath, VerifierKey};
use cardinal_server::domain::KeyRole;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    APP, Options, TestApp, assert_problem, new_card, rotation_of, run_binary, spawn_app, spawn_app_with,
};
use crate::support::Backend;

async fn info(app: &TestApp) -> Value {
    let response =
        app.client.get(app.url("/v1/transparency")).bearer_auth(app.user_token("alice")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Events in the app's log (app, two keys and whatever was published).
async fn events(app: &TestApp) -> u64 {
    app.store.tree_size(&cardinal_server::domain::AppId::parse(APP).unwrap()).await.unwrap()
}

/// The newest checkpoint once it covers `size` (the signer runs every second).
async fn checkpoint_of(app: &TestApp, vkey: &VerifierKey, size: u64) -> (Checkpoint, String) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = app.client.get(app.url(&format!("/tlog/{APP}/checkpoint"))).send().await.unwrap();
        if response.status() == StatusCode::OK {
            let note = response.text().await.unwrap();
            let (checkpoint, _) = tlog::open_checkpoint(&note, vkey).unwrap();
            if checkpoint.size >= size {
                return (checkpoint, note);
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size} within 3 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

async fn transparency_serves_checkpoints_tiles_and_bundles_with_their_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    for identity in ["alice", "bob", "carol"] {
        app.published(identity, &new_card(identity)).await;
    }
    let info = info(&app).await;
    let vkey = VerifierKey::parse(info["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(info["origin"], format!("localhost/cardinal/{APP}"));
    assert_eq!(vkey.name, info["origin"]);
    let size = events(&app).await;
    let (checkpoint, note) = checkpoint_of(&app, &vkey, size).await;
    assert_eq!(checkpoint.size, size);

    let response = get(&app, &format!("/tlog/{APP}/checkpoint"), None).await;
    assert_eq!(header(&response, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&response, "cache-control"), "no-cache");
    assert_eq!(response.text().await.unwrap(), note);

    // Level-0 tile: the leaf hashes, served without a token, immutable.
    let width = u16::try_from(size).unwrap();
    let tile = TilePath { level: 0, index: 0, width, entries: false };
    let response = get(&app, &format!("/tlog/{APP}/tile/{}", tile.to_path()), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/octet-stream");
    assert_eq!(header(&response, "cache-control"), "public, max-age=31536000, immutable");
    let hashes = response.bytes().await.unwrap();
    assert_eq!(hashes.len(), 32 * usize::from(width));

    // The bundle: a token of the app, private; its entries are the tile's leaves and the root.
    let bundle_path = format!("/tlog/{APP}/tile/{}", TilePath { entries: true, ..tile }.to_path());
    assert_problem(get(&app, &bundle_path, None).await, 401, "token_missing").await;
    assert_problem(get(&app, &bundle_path, Some("not.a.token")).await, 401, "token_invalid").await;
    let response = get(&app, &bundle_path, Some(&app.user_token("alice"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control"), "private, max-age=31536000, immutable");
    let bundle = response.bytes().await.unwrap();
    let entries = tlog::parse_bundle(&bundle).unwrap();
    assert_eq!(entries.len(), usize::from(width));
    let mut builder = tlog::RootBuilder::default();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(&hashes[i * 32..(i + 1) * 32], tlog::leaf_hash(entry).0.as_slice());
        let body: Value = serde_json::from_slice(entry).unwrap();
        assert_eq!(
            (body["app"].as_str(), body["seq"].as_u64()),
            (Some(APP), Some(i as u64 + 1)),
            "entry i is event i + 1"
        );
        builder.push(entry);
    }
    assert_eq!(builder.root(), checkpoint.root, "the root recomputed from the entries");

    // Another app's token may not read this app's entries.
    app.admin().create_app("other", cardinal_server::domain::CardsPerIdentity::Single, "test").await.unwrap();
    let other = SigningKey::generate();
    let kid = app.admin().add_key("other", KeyRole::App, &other.public_key(), None, "test").await.unwrap().kid;
    let token = app.token_with(&other, &kid, "other", "alice", app.now(), app.now() + 600);
    assert_problem(get(&app, &bundle_path, Some(&token)).await, 403, "forbidden").await;

    // Tiles beyond the checkpoint, malformed paths, unknown apps: 404.
    for path in [
        format!("/tlog/{APP}/tile/0/000.p/{}", width + 1),
        format!("/tlog/{APP}/tile/0/001"),
        format!("/tlog/{APP}/tile/0/0"),
        format!("/tlog/{APP}/tile/0/000.p/0"),
        format!("/tlog/{APP}/tile/99/000"),
        "/tlog/nope/checkpoint".into(),
        "/tlog/nope/tile/0/000.p/1".into(),
    ] {
        assert_problem(get(&app, &path, None).await, 404, "not_found").await;
    }

    // Proofs: an inclusion proof of every entry, a consistency proof, and bad parameters.
    let alice = app.user_token("alice");
    for index in 0..size {
        let response = get(&app, &format!("/v1/transparency/inclusion?index={index}&size={size}"), Some(&alice)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let proof: Value = response.json().await.unwrap();
        let proof: Vec<tlog::Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| tlog::decode_hash(h.as_str().unwrap()).unwrap())
            .collect();
        tlog::verify_inclusion(&proof, size, checkpoint.root, index, tlog::leaf_hash(entries[index as usize])).unwrap();
    }
    let response = get(&app, &format!("/v1/transparency/consistency?from=2&to={size}"), Some(&alice)).await;
    let proof: Value = response.json().await.unwrap();
    let proof: Vec<tlog::Hash> =
        proof["proof"].as_array().unwrap().iter().map(|h| tlog::decode_hash(h.as_str().unwrap()).unwrap()).collect();
    let mut two = tlog::RootBuilder::default();
    entries[..2].iter().for_each(|e| two.push(e));
    tlog::verify_consistency(&proof, 2, two.root(), size, checkpoint.root).unwrap();
    let empty: Value = get(&app, &format!("/v1/transparency/consistency?from={size}&to={size}"), Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"proof": []}));
    for query in [
        format!("inclusion?index={size}&size={size}"),
        format!("inclusion?index=0&size={}", size + 1),
        "inclusion?index=-1&size=1".into(),
        "inclusion?index=x&size=1".into(),
        "inclusion?size=1".into(),
        "consistency?from=3&to=2".into(),
        format!("consistency?from=0&to={}", size + 1),
    ] {
        assert_problem(get(&app, &format!("/v1/transparency/{query}"), Some(&alice)).await, 400, "invalid_request")
            .await;
    }
    assert_problem(get(&app, "/v1/transparency", None).await, 401, "token_missing").await;
}

/// After many publishes a larger checkpoint comes within 3 s, consistent with the one before,
/// and every tile served before is served again byte for byte.
async fn transparency_grows_consistently_and_old_tiles_stay_byte_identical(backend: Backend) {
    let app = spawn_app(backend).await;
    let vkey = VerifierKey::parse(info(&app).await["vkey"].as_str().unwrap()).unwrap();
    let (first, _) = checkpoint_of(&app, &vkey, events(&app).await).await;
    let old_tile = format!("/tlog/{APP}/tile/0/000.p/{}", first.size);
    let before = get(&app, &old_tile, None).await.bytes().await.unwrap();
    let mut writers = Vec::new();
    for n in 0..60 {
        let client = app.client.clone();
        let url = app.url("/v1/cards");
        let identity = format!("user{n}");
        let token = app.user_token(&identity);
        let card = new_card(&identity);
        writers.push(tokio::spawn(async move {
            let response = client.post(url).bearer_auth(token).json(&card.raw).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let published = Instant::now();
    let (second, _) = checkpoint_of(&app, &vkey, first.size + 60).await;
    assert!(published.elapsed() < Duration::from_secs(3));
    let proof: Value = get(
        &app,
        &format!("/v1/transparency/consistency?from={}&to={}", first.size, second.size),
        Some(&app.user_token("alice")),
    )
    .await
    .json()
    .await
    .unwrap();
    let proof: Vec<tlog::Hash> =
        proof["proof"].as_array().unwrap().iter().map(|h| tlog::decode_hash(h.as_str().unwrap()).unwrap()).collect();
    tlog::verify_consistency(&proof, first.size, first.root, second.size, second.root).unwrap();
    assert_eq!(get(&app, &old_tile, None).await.bytes().await.unwrap(), before, "served bytes never change");
}

async fn transparency_off_answers_404_everywhere(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Options { settings: vec![("transparency.enabled", json!(false))], ..Options::default() },
    )
    .await;
    let alice = app.user_token("alice");
    for path in [
        format!("/tlog/{APP}/checkpoint"),
        format!("/tlog/{APP}/tile/0/000.p/1"),
        "/v1/transparency".into(),
        "/v1/transparency/inclusion?index=0&size=1".into(),
    ] {
        assert_problem(get(&app, &path, Some(&alice)).await, 404, "not_found").await;
    }
}

fn check_proved(answer: &Value, vkey: &VerifierKey, expected: &[(&str, &cardinal_card::CardId)]) {
    let (checkpoint, _) = tlog::open_checkpoint(answer["checkpoint"].as_str().unwrap(), vkey).unwrap();
    for (identity, id) in expected {
        let cards = answer["identities"][identity].as_array().unwrap();
        let card = cards.iter().find(|card| card["id"] == id.to_string()).unwrap();
        let log = &card["log"];
        let entry = cardinal_card::b64::decode_std(log["entry"].as_str().unwrap()).unwrap();
        let body: Value = serde_json::from_slice(&entry).unwrap();
        assert_eq!(body["kind"], "card_published");
        assert_eq!(body["card_id"], id.to_string());
        assert_eq!(body["identity"], *identity);
        assert_eq!(body["app"], APP);
        let index = log["index"].as_u64().unwrap();
        assert_eq!(body["seq"].as_u64(), Some(index + 1));
        let proof: Vec<tlog::Hash> = log["inclusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| tlog::decode_hash(h.as_str().unwrap()).unwrap())
            .collect();
        assert!(proof.len() <= 64 - (checkpoint.size - 1).leading_zeros() as usize, "at most ceil(log2 size) hashes");
        tlog::verify_inclusion(&proof, checkpoint.size, checkpoint.root, index, tlog::leaf_hash(&entry)).unwrap();
    }
}

async fn transparency_proofs_on_lookups_prove_every_card_and_plain_lookups_are_unchanged(backend: Backend) {
    let app = spawn_app(backend).await;
    let vkey = VerifierKey::parse(info(&app).await["vkey"].as_str().unwrap()).unwrap();
    let (alice, bob) = (new_card("alice"), new_card("bob"));
    app.published("alice", &alice).await;
    app.published("bob", &bob).await;
    let token = app.user_token("alice");
    let plain = get(&app, "/v1/cards?identity=alice&identity=bob", Some(&token)).await;
    let etag = header(&plain, "etag").to_owned();
    let plain_body = plain.bytes().await.unwrap();

    // Right after the publishes: the newest checkpoint may not cover them, so one is signed.
    let response = app
        .client
        .get(app.url("/v1/cards?identity=alice&identity=bob&proofs=true"))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "If-None-Match is ignored with proofs");
    assert!(response.headers().get("etag").is_none());
    assert_eq!(header(&response, "cache-control"), "private, no-cache");
    let answer: Value = response.json().await.unwrap();
    check_proved(&answer, &vkey, &[("alice", &alice.id), ("bob", &bob.id)]);
    let plain_view: Value = serde_json::from_slice(&plain_body).unwrap();
    let mut stripped = answer["identities"].clone();
    for cards in stripped.as_object_mut().unwrap().values_mut() {
        for card in cards.as_array_mut().unwrap() {
            card.as_object_mut().unwrap().remove("log");
        }
    }
    assert_eq!(stripped, plain_view["identities"], "the same cards, with their logs added");

    let searched: Value = app
        .client
        .post(app.url("/v1/cards/search"))
        .bearer_auth(&token)
        .json(&json!({"identities": ["alice", "bob"], "proofs": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    check_proved(&searched, &vkey, &[("alice", &alice.id), ("bob", &bob.id)]);

    // Without proofs, byte for byte what it was, and still conditional.
    let again = get(&app, "/v1/cards?identity=alice&identity=bob", Some(&token)).await;
    assert_eq!(header(&again, "etag"), etag);
    assert_eq!(again.bytes().await.unwrap(), plain_body);
    let revalidated = app
        .client
        .get(app.url("/v1/cards?identity=alice&identity=bob"))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    for query in ["proofs=false", "proofs=yes", "proofs=true&proofs=true", "proofs="] {
        let response = get(&app, &format!("/v1/cards?identity=alice&{query}"), Some(&token)).await;
        assert_problem(response, 400, "invalid_request").await;
    }
    for body in [json!({"identities": ["alice"], "proofs": false}), json!({"identities": ["alice"], "proofs": "true"})]
    {
        let response =
            app.client.post(app.url("/v1/cards/search")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_problem(response, 400, "invalid_request").await;
    }
}

async fn transparency_off_refuses_proofs(backend: Backend) {
    let app = spawn_app_with(
        backend,
        Options { settings: vec![("transparency.enabled", json!(false))], ..Options::default() },
    )
    .await;
    let response = get(&app, "/v1/cards?identity=alice&proofs=true", Some(&app.user_token("alice"))).await;
    assert_problem(response, 400, "invalid_request").await;
}

/// Runs `cardinal` with these arguments; returns (exit code, stdout, stderr).
fn cardinal(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = run_binary(dir, &[], args);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

async fn rewrite_one_event(app: &TestApp, seq: i64) {
    let sql = format!(
        "UPDATE events SET body = replace(body, '\"actor\":\"test\"', '\"actor\":\"mallory\"') WHERE app_id = '{APP}' AND seq = {seq}"
    );
    let sql = sqlx::AssertSqlSafe(sql);
    let changed = match app.backend {
        Backend::Postgres => sqlx::query(sql)
            .execute(&sqlx::PgPool::connect(app.database_url()).await.unwrap())
            .await
            .unwrap()
            .rows_affected(),
        Backend::Sqlite => sqlx::query(sql)
            .execute(&sqlx::SqlitePool::connect(app.database_url()).await.unwrap())
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(changed, 1);
    let body = app
        .store
        .entries(&cardinal_server::domain::AppId::parse(APP).unwrap(), seq as u64 - 1, seq as u64)
        .await
        .unwrap();
    assert!(body[0].contains("mallory"), "the event was rewritten: {body:?}");
}

/// `cardinal audit` passes on an honest log, keeps its state, works from the tiles alone
/// without a token, and fails (exit 6) once one stored event is rewritten.
async fn transparency_audit_passes_then_fails_once_one_event_is_rewritten(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob) = (new_card("alice"), new_card("bob"));
    app.published("alice", &alice).await;
    app.published("bob", &bob).await;
    // Every kind of entry the replay's rules read, as the server writes them: a rotation and its
    // supersession, an owner's revocation naming a superseded card of the chain, a new root after
    // it (the app is `single`), an admin's revocation with a reason, a Keyknox erasure.
    app.published("alice", &rotation_of("alice", &alice.id)).await;
    assert_eq!(app.revoke(&app.user_token("alice"), alice.id.as_str(), None).await.status(), StatusCode::OK);
    app.published("alice", &new_card("alice")).await;
    let admin = app.admin_token("root");
    assert_eq!(app.admin_revoke(&admin, bob.id.as_str(), Some("left")).await.status(), StatusCode::OK);
    let erase = app.client.post(app.url("/v1/admin/identities/bob/keyknox/erase")).bearer_auth(&admin);
    assert_eq!(erase.send().await.unwrap().status(), StatusCode::OK);
    let vkey = info(&app).await["vkey"].as_str().unwrap().to_owned();
    let size = events(&app).await;
    checkpoint_of(&app, &VerifierKey::parse(&vkey).unwrap(), size).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("audit.json");
    let token = app.user_token("alice");
    let base = ["audit", "--url", &app.address, "--app", APP, "--vkey", &vkey];
    let with_token = [&base[..], &["--token", &token, "--state", state.to_str().unwrap()]].concat();
    let (code, stdout, stderr) = cardinal(dir.path(), &with_token);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("ok origin=localhost/cardinal/{APP} size={size} root=")), "{stdout}");
    assert!(state.exists());
    let (code, _, stderr) = cardinal(dir.path(), &with_token);
    assert_eq!(code, 0, "a second run, consistent with the first: {stderr}");
    let (code, _, stderr) = cardinal(dir.path(), &[&base[..], &["--token", &admin]].concat());
    assert_eq!(code, 0, "with an admin token, the event API agrees with the entries: {stderr}");
    let (code, _, stderr) = cardinal(dir.path(), &base);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no --token"), "it says it read the tiles only: {stderr}");
    let wrong_key = base.iter().map(|a| if *a == vkey { "o+00000000+AQ==" } else { a }).collect::<Vec<_>>();
    assert_eq!(cardinal(dir.path(), &wrong_key).0, 1, "a malformed vkey is a usage failure");
    let (code, _, stderr) = cardinal(dir.path(), &[&base[..], &["--quorum", "1"]].concat());
    assert_eq!(code, 6, "no witness cosigned: {stderr}");

    // A server that logs what the directory never does, in a tree that is consistent: a second
    // `key_added` naming a key added before. The replay names the entry and the rule.
    let planted = cardinal_server::storage::ApiKeyRecord {
        kid: "planted".into(),
        app_id: cardinal_server::domain::AppId::parse(APP).unwrap(),
        role: KeyRole::App,
        public_key: SigningKey::generate().public_key().raw_bytes().to_vec(),
        created_at: app.now(),
        revoked_at: None,
    };
    let event = cardinal_server::storage::EventDraft {
        kind: cardinal_card::log::EventKind::KeyAdded,
        at_ms: app.now() * 1000,
        card_id: None,
        identity: None,
        actor: "test".into(),
        detail: [("kid".to_owned(), app.app_kid.clone()), ("role".to_owned(), "app".to_owned())].into(),
    };
    app.store.insert_api_key(&planted, event).await.unwrap();
    checkpoint_of(&app, &VerifierKey::parse(&vkey).unwrap(), size + 1).await;
    let (code, _, stderr) = cardinal(dir.path(), &with_token);
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains(&format!("entry {size}: rule key-added-once")), "{stderr}");

    rewrite_one_event(&app, 2).await;
    let (code, _, stderr) = cardinal(dir.path(), &with_token);
    assert_eq!(code, 6, "one rewritten event fails the audit: {stderr}");
    let (code, _, _) = cardinal(dir.path(), &[&base[..], &["--token", &admin]].concat());
    assert_eq!(code, 6, "and with an admin token too");
    assert!(stderr.contains("root"), "{stderr}");
    let unreachable = ["audit", "--url", "http://127.0.0.1:9", "--app", APP, "--vkey", &vkey];
    assert_eq!(cardinal(dir.path(), &unreachable).0, 7);
}

/// `cardinal monitor` prints exactly the entries about the watched identity since its last
/// run, and with --expect raises the alarm (exit 6) for a card it was not told of.
async fn transparency_monitor_prints_an_identitys_entries_and_raises_the_alarm(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    app.published("bob", &new_card("bob")).await;
    let vkey = info(&app).await["vkey"].as_str().unwrap().to_owned();
    checkpoint_of(&app, &VerifierKey::parse(&vkey).unwrap(), events(&app).await).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("alice.json");
    let token = app.user_token("alice");
    let alice_id = alice.id.to_string();
    let args = [
        "monitor",
        "--url",
        &app.address,
        "--app",
        APP,
        "--vkey",
        &vkey,
        "--token",
        &token,
        "--identity",
        "alice",
        "--state",
        state.to_str().unwrap(),
        "--expect",
        &alice_id,
    ];
    let (code, stdout, stderr) = cardinal(dir.path(), &args);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let entry: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!((entry["kind"].as_str(), entry["card_id"].as_str()), (Some("card_published"), Some(alice_id.as_str())));
    let (code, stdout, _) = cardinal(dir.path(), &args);
    assert_eq!((code, stdout.as_str()), (0, ""), "nothing new since the last run");

    // A key published in alice's name that she does not know of.
    let rogue = crate::helpers::rotation_of("alice", &alice.id);
    app.published("alice", &rogue).await;
    checkpoint_of(&app, &VerifierKey::parse(&vkey).unwrap(), events(&app).await).await;
    let (code, stdout, stderr) = cardinal(dir.path(), &args);
    assert_eq!(code, 6, "{stderr}");
    assert!(stdout.contains(&rogue.id.to_string()) && stderr.contains(&rogue.id.to_string()), "{stdout}{stderr}");
    let (code, _, _) = cardinal(dir.path(), &args);
    assert_eq!(code, 6, "the alarm repeats: the kept checkpoint did not move");
    let rogue_id = rogue.id.to_string();
    let known = [&args[..], &[rogue_id.as_str()][..]].concat();
    assert_eq!(cardinal(dir.path(), &known).0, 0, "once she lists it");
}

/// The SDK with the log key pinned: lookups come with proofs that it verifies, it keeps the
/// newest checkpoint, and it refuses a view that contradicts one it holds (same size, another
/// root), a wrong log key, and a tampered proof. The CLI says so with exit 6.
async fn transparency_sdk_verifies_proofs_and_rejects_another_view(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    let vkey = info(&app).await["vkey"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("log.json");
    let sdk = |vkey: &str| {
        cardinal_client::Client::builder(&app.address)
            .token(app.user_token("alice"))
            .trust_on_first_use()
            .log_key(vkey)
            .log_state_file(&state)
            .build()
            .unwrap()
    };
    let client = sdk(&vkey);
    let found = client.lookup(&["alice", "bob"]).await.unwrap();
    assert_eq!(found["alice"][0].card.id, alice.id);
    assert!(found["bob"].is_empty());
    let first = client.kept_checkpoint().await.unwrap();
    assert!(first.size >= 4);
    app.published("bob", &new_card("bob")).await;
    client.lookup(&["bob"]).await.unwrap();
    let second = client.kept_checkpoint().await.unwrap();
    assert!(second.size > first.size, "the newer checkpoint, proved consistent with the first, is kept");
    assert_eq!(serde_json::from_str::<Value>(&std::fs::read_to_string(&state).unwrap()).unwrap()["size"], second.size);

    // View B: the same size with another root, as a forking server would show it.
    let forged =
        json!({"origin": second.origin, "size": second.size, "root": tlog::encode_hash(&tlog::leaf_hash(b"view A"))});
    std::fs::write(&state, forged.to_string()).unwrap();
    let refused = sdk(&vkey).lookup(&["alice"]).await.unwrap_err();
    assert!(matches!(refused, cardinal_client::ClientError::Transparency(_)), "{refused}");
    let cli = [
        "lookup",
        "alice",
        "--url",
        &app.address,
        "--token",
        &app.user_token("alice"),
        "--log-vkey",
        &vkey,
        "--log-state",
        state.to_str().unwrap(),
    ];
    let (code, _, stderr) = cardinal(dir.path(), &cli);
    assert_eq!(code, 6, "{stderr}");
    std::fs::remove_file(&state).unwrap();
    let (code, _, stderr) = cardinal(dir.path(), &cli);
    assert_eq!(code, 0, "{stderr}");

    // Another key under the same name: the checkpoint does not verify.
    let other = cardinal_card::tlog::LogKey::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let wrong = other.vkey(&second.origin).to_string();
    std::fs::remove_file(&state).unwrap();
    assert!(matches!(sdk(&wrong).lookup(&["alice"]).await, Err(cardinal_client::ClientError::Transparency(_))));

    // A proof that does not verify.
    let checkpoint = tlog::Checkpoint {
        origin: second.origin.clone(),
        size: second.size,
        root: tlog::decode_hash(&second.root).unwrap(),
    };
    let answer: Value =
        get(&app, "/v1/cards?identity=alice&proofs=true", Some(&app.user_token("alice"))).await.json().await.unwrap();
    let card = &answer["identities"]["alice"][0];
    let mut log: cardinal_card::tlog::wire::CardLog = serde_json::from_value(card["log"].clone()).unwrap();
    let (current, _) =
        tlog::open_checkpoint(answer["checkpoint"].as_str().unwrap(), &VerifierKey::parse(&vkey).unwrap()).unwrap();
    cardinal_client::verify_card_log(&current, alice.id.as_ref(), "alice", &log).unwrap();
    log.inclusion[0] = tlog::encode_hash(&tlog::leaf_hash(b"tampered"));
    assert!(cardinal_client::verify_card_log(&current, alice.id.as_ref(), "alice", &log).is_err());
    assert!(cardinal_client::verify_card_log(&checkpoint, alice.id.as_ref(), "bob", &log).is_err());
}

/// `cardinal witness serve` over HTTP: it logs its vkey, cosigns a real checkpoint of a
/// Cardinal log, answers 409 with its size to a stale `old`, refuses another root for the same
/// size (a second view of the log) with 422, and serves what it cosigned.
async fn transparency_witness_serve_cosigns_once_and_refuses_a_second_view(backend: Backend) {
    let app = spawn_app(backend).await;
    app.published("alice", &new_card("alice")).await;
    let info = info(&app).await;
    let (origin, vkey) = (info["origin"].as_str().unwrap().to_owned(), info["vkey"].as_str().unwrap().to_owned());
    let (checkpoint, note) = checkpoint_of(&app, &VerifierKey::parse(&vkey).unwrap(), events(&app).await).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(cardinal(dir.path(), &["keygen", "--out", "w.pem"]).0, 0);
    let mut command = crate::helpers::cardinal_command(dir.path(), &[]);
    command
        .args([
            "witness",
            "serve",
            "--key",
            "w.pem",
            "--name",
            "w.example/1",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "w.db",
        ])
        .arg("--log")
        .arg(format!("{origin}={vkey}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let (mut witness_vkey, mut port) = (None, None);
    while port.is_none() {
        let line = lines.next().unwrap().unwrap();
        if let Some(v) = line.split("witness vkey: ").nth(1) {
            witness_vkey = Some(v.split_whitespace().next().unwrap().to_owned());
        }
        port = crate::helpers::listening_port(&line);
    }
    let witness_vkey = VerifierKey::parse(&witness_vkey.unwrap()).unwrap();
    let url = format!("http://127.0.0.1:{}/add-checkpoint", port.unwrap());
    let post = |body: String| app.client.post(&url).body(body).send();

    let response = post(format!("old 0\n\n{note}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let line = response.text().await.unwrap();
    let cosignature = tlog::SignatureLine::parse(line.trim_end()).unwrap();
    tlog::verify_cosignature(&witness_vkey, &checkpoint.body(), &cosignature.signature).unwrap();

    let stale = post(format!("old 0\n\n{note}")).await.unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    assert_eq!(header(&stale, "content-type"), "text/x.tlog.size");
    assert_eq!(stale.text().await.unwrap(), format!("{}\n", checkpoint.size));

    // View B of the same size, signed by the same key (a log key in a forking server's hands).
    let log_key = std::fs::read_to_string(app.settings_log_key()).unwrap();
    let key = cardinal_card::SigningKey::from_text(&log_key).unwrap();
    let key =
        <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_der(&key.to_pkcs8_der())
            .unwrap();
    let view_b =
        tlog::LogKey::new(key).sign(&tlog::Checkpoint { root: tlog::leaf_hash(b"view B"), ..checkpoint.clone() });
    let refused = post(format!("old {}\n\n{view_b}", checkpoint.size)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The two signed checkpoints are the proof of the fork: one size, two roots, one key.
    let log_vkey = VerifierKey::parse(&vkey).unwrap();
    let (a, _) = tlog::open_checkpoint(&note, &log_vkey).unwrap();
    let (b, _) = tlog::open_checkpoint(&view_b, &log_vkey).unwrap();
    assert!(a.size == b.size && a.root != b.root);

    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(origin.as_bytes()));
    let served = app.client.get(format!("http://127.0.0.1:{}/{hash}/checkpoint", port.unwrap())).send().await.unwrap();
    let served = tlog::Note::parse(&served.text().await.unwrap()).unwrap();
    assert!(served.verify(&log_vkey).unwrap() && served.verify(&witness_vkey).unwrap());
    let oversized = post("x".repeat(70 * 1024)).await.unwrap();
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    stop(&mut child);
}

fn stop(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Every stored checkpoint is the root of a prefix of its app's stored entries: so every pair
/// of them is consistent, and no size has two roots (the key forbids a second row). Returns how
/// many checkpoints there are.
pub async fn assert_checkpoints_consistent(backend: Backend, url: &str) -> usize {
    use sqlx::Row;
    type Rows = (Vec<(String, i64, Vec<u8>)>, Vec<(String, String)>);
    let (checkpoints, events): Rows = match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let c = sqlx::query("SELECT app_id, size, root FROM checkpoints ORDER BY app_id, size")
                .fetch_all(&pool)
                .await
                .unwrap();
            let e = sqlx::query("SELECT app_id, body FROM events ORDER BY app_id, seq").fetch_all(&pool).await.unwrap();
            (
                c.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
                e.iter().map(|r| (r.get(0), r.get(1))).collect(),
            )
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let c = sqlx::query("SELECT app_id, size, root FROM checkpoints ORDER BY app_id, size")
                .fetch_all(&pool)
                .await
                .unwrap();
            let e = sqlx::query("SELECT app_id, body FROM events ORDER BY app_id, seq").fetch_all(&pool).await.unwrap();
            (
                c.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
                e.iter().map(|r| (r.get(0), r.get(1))).collect(),
            )
        }
    };
    let mut roots: std::collections::HashMap<(String, i64), [u8; 32]> = std::collections::HashMap::new();
    let mut builders: std::collections::HashMap<String, tlog::RootBuilder> = std::collections::HashMap::new();
    for (app, body) in &events {
        let builder = builders.entry(app.clone()).or_default();
        builder.push(body.as_bytes());
        roots.insert((app.clone(), builder.size() as i64), builder.root().0);
    }
    for (app, size, root) in &checkpoints {
        assert_eq!(
            roots.get(&(app.clone(), *size)).map(|r| r.to_vec()),
            Some(root.clone()),
            "checkpoint {size} of {app}"
        );
    }
    checkpoints.len()
}

/// The newest checkpoint as served, opened.
async fn served(app: &TestApp, vkey: &VerifierKey) -> Checkpoint {
    let note = get(app, &format!("/tlog/{APP}/checkpoint"), None).await.text().await.unwrap();
    tlog::open_checkpoint(&note, vkey).unwrap().0
}

/// Restarts keep one log; a restart over a rewritten event, or over a renewed epoch (a
/// restore), stops the signing — loudly, counted — while the last checkpoint stays served.
async fn transparency_restarts_continue_the_log_but_never_over_altered_or_restored_events(backend: Backend) {
    for alteration in ["rewritten event", "renewed epoch"] {
        let mut app = spawn_app(backend).await;
        let vkey = VerifierKey::parse(info(&app).await["vkey"].as_str().unwrap()).unwrap();
        app.published("alice", &new_card("alice")).await;
        let first = checkpoint_of(&app, &vkey, events(&app).await).await.0;
        app.restart().await;
        app.published("bob", &new_card("bob")).await;
        let second = checkpoint_of(&app, &vkey, events(&app).await).await.0;
        assert!(second.size > first.size);
        let proof: Value = get(
            &app,
            &format!("/v1/transparency/consistency?from={}&to={}", first.size, second.size),
            Some(&app.user_token("alice")),
        )
        .await
        .json()
        .await
        .unwrap();
        let proof: Vec<tlog::Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| tlog::decode_hash(h.as_str().unwrap()).unwrap())
            .collect();
        tlog::verify_consistency(&proof, first.size, first.root, second.size, second.root).unwrap();

        app.stop().await;
        match alteration {
            "rewritten event" => rewrite_one_event(&app, 2).await,
            _ => {
                cardinal_server::storage::Operations::renew_epoch(app.store.as_ref()).await.unwrap();
            }
        }
        app.start().await;
        app.published("carol", &new_card("carol")).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(served(&app, &vkey).await, second, "{alteration}: nothing more is signed, the last is served");
        let refused =
            crate::helpers::metric(&app.client, &app.address, "cardinal_transparency_inconsistent_total").await;
        assert_eq!(refused, 1.0, "{alteration}: counted");
        let response = get(&app, "/v1/cards?identity=carol&proofs=true", Some(&app.user_token("carol"))).await;
        assert_problem(response, 503, "unavailable").await;
    }
}

/// Starts `cardinal witness serve` for one log; returns it, its port and its vkey.
fn spawn_witness(dir: &std::path::Path, name: &str, log: &str) -> (crate::helpers::Running, u16, VerifierKey) {
    let key_file = format!("{}.pem", name.replace('/', "_"));
    assert_eq!(cardinal(dir, &["keygen", "--out", &key_file]).0, 0);
    let state = format!("{}.db", name.replace('/', "_"));
    let mut command = crate::helpers::cardinal_command(dir, &[]);
    command
        .args([
            "witness",
            "serve",
            "--key",
            &key_file,
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--state",
            &state,
            "--log",
            log,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let (mut vkey, mut port) = (None, None);
    while port.is_none() {
        let line = lines.next().unwrap().unwrap();
        if let Some(v) = line.split("witness vkey: ").nth(1) {
            vkey = Some(VerifierKey::parse(v.split_whitespace().next().unwrap()).unwrap());
        }
        port = crate::helpers::listening_port(&line);
    }
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (crate::helpers::Running(child), port.unwrap(), vkey.unwrap())
}

/// Two `cardinal witness serve` processes, quorum 2: Cardinal pushes each new checkpoint to
/// both, serves their cosignatures with it, and an audit and the SDK requiring both pass.
async fn transparency_two_witnesses_cosign_every_checkpoint_for_a_quorum_of_two(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let log_key_file = dir.path().join("log-key.pem");
    let log_key = cardinal_card::SigningKey::generate();
    std::fs::write(&log_key_file, log_key.to_pkcs8_pem()).unwrap();
    let log = tlog::LogKey::new(
        <ed25519_dalek::SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_der(&log_key.to_pkcs8_der())
            .unwrap(),
    );
    let origin = format!("localhost/cardinal/{APP}");
    let log_vkey = log.vkey(&origin).to_string();
    let (_w1, port1, vkey1) = spawn_witness(dir.path(), "w.example/1", &format!("{origin}={log_vkey}"));
    let (_w2, port2, vkey2) = spawn_witness(dir.path(), "w.example/2", &format!("{origin}={log_vkey}"));
    let witnesses = json!([
        {"name": "w.example/1", "url": format!("http://127.0.0.1:{port1}"), "vkey": vkey1.to_string()},
        {"name": "w.example/2", "url": format!("http://127.0.0.1:{port2}"), "vkey": vkey2.to_string()},
    ]);
    let settings = vec![
        ("transparency.signing_key_file", json!(log_key_file.display().to_string())),
        ("transparency.witnesses", witnesses),
        ("transparency.witness_quorum", json!(2)),
    ];
    let app = spawn_app_with(backend, Options { settings, ..Options::default() }).await;
    let info = info(&app).await;
    assert_eq!(info["quorum"], 2);
    assert_eq!(info["witnesses"].as_array().unwrap().len(), 2);
    for round in 0..2 {
        app.published(&format!("user{round}"), &new_card(&format!("user{round}"))).await;
        let size = events(&app).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let note = get(&app, &format!("/tlog/{APP}/checkpoint"), None).await.text().await.unwrap();
            let parsed = tlog::Note::parse(&note).unwrap();
            let (checkpoint, _) = tlog::open_checkpoint(&note, &VerifierKey::parse(&log_vkey).unwrap()).unwrap();
            if checkpoint.size == size && parsed.verify(&vkey1).unwrap() && parsed.verify(&vkey2).unwrap() {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: both cosignatures within 5 s: {note}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (w1, w2) = (vkey1.to_string(), vkey2.to_string());
    let audit = [
        "audit",
        "--url",
        &app.address,
        "--app",
        APP,
        "--vkey",
        &log_vkey,
        "--witness",
        &w1,
        "--witness",
        &w2,
        "--quorum",
        "2",
    ];
    let (code, _, stderr) = cardinal(dir.path(), &audit);
    assert_eq!(code, 0, "{stderr}");
    let client = cardinal_client::Client::builder(&app.address)
        .token(app.user_token("alice"))
        .trust_on_first_use()
        .log_key(&log_vkey)
        .log_witnesses(vec![w1.clone(), w2.clone()], 2)
        .build()
        .unwrap();
    client.lookup(&["user0"]).await.unwrap();
    let submitted =
        crate::helpers::metric(&app.client, &app.address, "cardinal_witness_submissions_total{result=\"cosigned\"")
            .await;
    assert!(submitted >= 4.0, "two witnesses cosigned two checkpoints at least: {submitted}");
}

/// The header names of every `Vary` line, lowercase (CORS adds its own to every answer).
fn varies_on(response: &reqwest::Response) -> Vec<String> {
    let lines = response.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_ascii_lowercase());
    lines.flat_map(|line| line.split(',').map(|name| name.trim().to_owned()).collect::<Vec<_>>()).collect()
}

/// Tiles and bundles are gzipped for a client that accepts it (C2SP tlog-tiles: compression at
/// the HTTP layer) and plain otherwise, with the same caching headers and `Vary: Accept-Encoding`
/// either way; the checkpoint and the `/v1` answers are never compressed.
async fn transparency_tiles_and_bundles_are_gzipped_only_when_accepted(backend: Backend) {
    use std::io::Read;

    let app = spawn_app(backend).await;
    for identity in ["alice", "bob", "carol"] {
        app.published(identity, &new_card(identity)).await;
    }
    let vkey = VerifierKey::parse(info(&app).await["vkey"].as_str().unwrap()).unwrap();
    let size = events(&app).await;
    checkpoint_of(&app, &vkey, size).await;
    let token = app.user_token("alice");
    let tile = TilePath { level: 0, index: 0, width: u16::try_from(size).unwrap(), entries: false };
    let tiles = [
        (format!("/tlog/{APP}/tile/{}", tile.to_path()), None, "public, max-age=31536000, immutable"),
        (
            format!("/tlog/{APP}/tile/{}", TilePath { entries: true, ..tile }.to_path()),
            Some(token.as_str()),
            "private, max-age=31536000, immutable",
        ),
    ];
    for (path, token, cache_control) in tiles {
        let mut request = app.client.get(app.url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let plain = request.try_clone().unwrap().send().await.unwrap();
        assert_eq!(plain.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&plain, "content-encoding"), "", "{path}: plain without Accept-Encoding");
        assert_eq!(header(&plain, "cache-control"), cache_control, "{path}");
        assert_eq!(header(&plain, "content-type"), "application/octet-stream", "{path}");
        assert_eq!(
            varies_on(&plain).iter().filter(|h| *h == "accept-encoding").count(),
            1,
            "{path}: {:?}",
            varies_on(&plain)
        );
        let plain = plain.bytes().await.unwrap();

        let zipped = request.header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(zipped.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&zipped, "content-encoding"), "gzip", "{path}");
        assert_eq!(header(&zipped, "cache-control"), cache_control, "{path}: caching as the spec gives it");
        assert_eq!(header(&zipped, "content-type"), "application/octet-stream", "{path}");
        assert_eq!(
            varies_on(&zipped).iter().filter(|h| *h == "accept-encoding").count(),
            1,
            "{path}: {:?}",
            varies_on(&zipped)
        );
        let zipped = zipped.bytes().await.unwrap();
        assert_eq!(&zipped[..2], [0x1f, 0x8b], "{path}: a gzip stream");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..]).read_to_end(&mut unzipped).unwrap();
        assert_eq!(unzipped, plain, "{path}: decompresses to exactly the plain tile");

        let again = get(&app, &path, token).await.bytes().await.unwrap();
        assert_eq!(again, plain, "{path}: without Accept-Encoding, the same plain bytes again");
    }

    for (path, token) in [(format!("/tlog/{APP}/checkpoint"), None), ("/v1/transparency".to_owned(), Some(&token))] {
        let mut request = app.client.get(app.url(&path)).header("accept-encoding", "gzip");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, "content-encoding"), "", "{path}: only tiles and bundles are compressed");
    }
}

crate::on_both_backends!(
    transparency_two_witnesses_cosign_every_checkpoint_for_a_quorum_of_two,
    transparency_restarts_continue_the_log_but_never_over_altered_or_restored_events,
    transparency_witness_serve_cosigns_once_and_refuses_a_second_view,
    transparency_sdk_verifies_proofs_and_rejects_another_view,
    transparency_audit_passes_then_fails_once_one_event_is_rewritten,
    transparency_monitor_prints_an_identitys_entries_and_raises_the_alarm,
    transparency_proofs_on_lookups_prove_every_card_and_plain_lookups_are_unchanged,
    transparency_off_refuses_proofs,
    transparency_serves_checkpoints_tiles_and_bundles_with_their_headers,
    transparency_grows_consistently_and_old_tiles_stay_byte_identical,
    transparency_off_answers_404_everywhere,
    transparency_tiles_and_bundles_are_gzipped_only_when_accepted,
);
