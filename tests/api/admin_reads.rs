//! The admin read API: identities by prefix, one identity's whole history, the app's keys, the
//! overview; pages and bounds, another app's data out of reach, admins only.

use cardinal_card::SigningKey;
use cardinal_server::domain::{CardsPerIdentity, KeyRole};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{APP, TestApp, assert_problem, new_card, now, rotation_of, spawn_app};
use crate::support::Backend;

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let response = get(app, &app.admin_token("root"), path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

/// Another app with an admin and one identity of its own; returns that admin's token.
async fn another_app(app: &TestApp) -> String {
    app.admin().create_app("other", CardsPerIdentity::Single, "test").await.unwrap();
    let (app_key, admin_key) = (SigningKey::generate(), SigningKey::generate());
    let app_kid = app.admin().add_key("other", KeyRole::App, &app_key.public_key(), None, "test").await.unwrap().kid;
    let admin_kid =
        app.admin().add_key("other", KeyRole::Admin, &admin_key.public_key(), None, "test").await.unwrap().kid;
    let t = now();
    let card = new_card("alice-other");
    let token = app.token_with(&app_key, &app_kid, "other", "alice-other", t, t + 600);
    let response = app.publish_raw(&token, &serde_json::to_value(&card.raw).unwrap()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.token_with(&admin_key, &admin_kid, "other", "root", t, t + 600)
}

async fn identities_are_paged_by_prefix_with_stable_cursors(backend: Backend) {
    let app = spawn_app(backend).await;
    let names = ["alice", "alice.b", "alicia", "bob", "carol", "dave", "Zed"];
    for name in names {
        app.published(name, &new_card(name)).await;
    }
    let other_admin = another_app(&app).await;

    // Bytewise order, whatever the database's locale ("Zed" before "alice").
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/admin/identities?limit=2&after={after}"),
            None => "/v1/admin/identities?limit=2".to_owned(),
        };
        let page = get_ok(&app, &path).await;
        let rows = page["identities"].as_array().unwrap();
        assert!(rows.len() <= 2);
        seen.extend(rows.iter().map(|row| row["identity"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every identity once, in byte order, never another app's");

    let page = get_ok(&app, "/v1/admin/identities?prefix=ali").await;
    let found: Vec<&str> =
        page["identities"].as_array().unwrap().iter().map(|r| r["identity"].as_str().unwrap()).collect();
    assert_eq!(found, ["alice", "alice.b", "alicia"]);
    assert!(page.get("next").is_none(), "{page}");
    let alice = &page["identities"][0];
    assert_eq!((alice["cards"].as_i64(), alice["active"].as_i64()), (Some(1), Some(1)));
    assert!(alice["last_change_at"].as_i64().unwrap() >= now() - 60);

    let theirs: Value = get(&app, &other_admin, "/v1/admin/identities").await.json().await.unwrap();
    let theirs: Vec<&str> =
        theirs["identities"].as_array().unwrap().iter().map(|r| r["identity"].as_str().unwrap()).collect();
    assert_eq!(theirs, ["alice-other"], "each admin sees their own app only");

    for bad in ["limit=0", "limit=501", "limit=x", "after=", &format!("prefix={}", "a".repeat(300))] {
        let response = get(&app, &app.admin_token("root"), &format!("/v1/admin/identities?{bad}")).await;
        assert_problem(response, 400, "invalid_request").await;
    }
}

async fn an_identitys_history_shows_every_card_in_chain_order_with_its_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = new_card("alice");
    app.published("alice", &root).await;
    let second = rotation_of("alice", &root.id);
    app.published("alice", &second).await;
    let third = rotation_of("alice", &second.id);
    app.published("alice", &third).await;
    let response = app.admin_revoke(&app.admin_token("root"), third.id.as_str(), Some("left the clinic")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Chains are ordered by when they began, to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = new_card("alice");
    app.published("alice", &fresh).await;
    app.published("bob", &new_card("bob")).await;

    let history = get_ok(&app, "/v1/admin/identities/alice/history").await;
    let cards = history["cards"].as_array().unwrap();
    let ids: Vec<&str> = cards.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [root.id.as_str(), second.id.as_str(), third.id.as_str(), fresh.id.as_str()]);
    let statuses: Vec<&str> = cards.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["revoked", "revoked", "revoked", "active"]);
    assert_eq!(cards[2]["revocation_reason"], "left the clinic");
    assert_eq!(cards[2]["revoked_by"], "admin:root");
    assert_eq!(cards[1]["previous_card_id"], root.id.as_str());
    assert_eq!(cards[0]["superseded_by"], second.id.as_str());
    assert!(cards.iter().all(|c| c["self_signature_valid"] == true && c["countersignature_valid"] == true));
    let kinds: Vec<&str> =
        history["events"].as_array().unwrap().iter().map(|e| e["event"]["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "card_published",
            "card_published",
            "card_superseded",
            "card_published",
            "card_superseded",
            "chain_revoked",
            "card_published"
        ]
    );
    assert!(history["events"].as_array().unwrap().iter().all(|e| e["event"]["identity"] == "alice"));

    // Pages of two, joined, are the whole history.
    let first = get_ok(&app, "/v1/admin/identities/alice/history?limit=2").await;
    let next = first["next"].as_str().unwrap().to_owned();
    let rest = get_ok(&app, &format!("/v1/admin/identities/alice/history?limit=2&after={next}")).await;
    let paged: Vec<&str> = first["cards"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["cards"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(paged, ids);

    let response = get(&app, &app.admin_token("root"), "/v1/admin/identities/alice/history?after=garbage").await;
    assert_problem(response, 400, "invalid_request").await;
    let nobody = get_ok(&app, "/v1/admin/identities/nobody/history").await;
    assert_eq!((nobody["cards"].as_array().unwrap().len(), nobody["events"].as_array().unwrap().len()), (0, 0));
    let other_admin = another_app(&app).await;
    let theirs: Value = get(&app, &other_admin, "/v1/admin/identities/alice/history").await.json().await.unwrap();
    assert_eq!(theirs["cards"], json!([]), "another app's admin does not see alice: {theirs}");
}

async fn keys_are_listed_without_material_and_revoked_with_an_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let spare = SigningKey::generate();
    let kid = app.admin().add_key(APP, KeyRole::App, &spare.public_key(), None, "test").await.unwrap().kid;
    let keys = get_ok(&app, "/v1/admin/keys").await;
    let listed: Vec<&str> = keys["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(listed.contains(&kid.as_str()) && listed.contains(&app.admin_kid.as_str()), "{keys}");
    assert!(!keys.to_string().contains(&spare.public_key().to_spki_base64()), "no key material: {keys}");

    let revoke = |kid: String, token: String| {
        app.client.post(app.url(&format!("/v1/admin/keys/{kid}/revoke"))).bearer_auth(token).send()
    };
    let answer: Value = revoke(kid.clone(), app.admin_token("root")).await.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({"kid": kid, "revoked": true}));
    let again: Value = revoke(kid.clone(), app.admin_token("root")).await.unwrap().json().await.unwrap();
    assert_eq!(again["revoked"], false);
    let events = app.events(0, 100).await;
    let last = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["event"]["kind"].as_str(), last["event"]["actor"].as_str()),
        (Some("key_revoked"), Some("admin:root"))
    );

    let other_admin = another_app(&app).await;
    assert_problem(revoke(app.app_kid.clone(), other_admin).await.unwrap(), 404, "not_found").await;
    assert_problem(revoke("no-such-kid".into(), app.admin_token("root")).await.unwrap(), 404, "not_found").await;
}

async fn the_overview_counts_and_says_whether_the_log_is_intact(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = new_card("alice");
    app.published("alice", &alice).await;
    app.published("bob", &new_card("bob")).await;
    assert_eq!(app.revoke(&app.user_token("alice"), alice.id.as_str(), None).await.status(), StatusCode::OK);
    let overview = get_ok(&app, "/v1/admin/overview").await;
    assert_eq!(overview["app"], APP);
    assert_eq!((overview["identities"].as_i64(), overview["cards"].as_i64()), (Some(2), Some(2)));
    assert_eq!((overview["active_cards"].as_i64(), overview["revoked_chains"].as_i64()), (Some(1), Some(1)));
    assert_eq!(overview["log"]["intact"], true, "{overview}");
    assert_eq!(overview["log"]["checked"], overview["events"]);
    assert!(overview["instance"]["published"].as_u64().unwrap() >= 2);
    let log = &overview["transparency"];
    assert!(log["origin"].as_str().unwrap().ends_with(APP), "the app's log: {overview}");
    assert!(log["size"].as_u64().is_some() && log["quorum"].as_u64().is_some(), "{overview}");

    // One stored event rewritten: the chain no longer verifies, and the overview says where.
    let url = app.database_url().to_owned();
    let tamper = format!(
        "UPDATE events SET body = replace(body, '\"actor\":\"', '\"actor\":\"x') WHERE app_id = '{APP}' AND seq = 2"
    );
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(tamper.clone())).execute(&pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{tamper}");
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(tamper.clone())).execute(&pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{tamper}");
        }
    }
    let overview = get_ok(&app, "/v1/admin/overview").await;
    assert_eq!(overview["log"]["intact"], false, "{overview}");
    assert!(overview["log"]["failure"].as_str().unwrap().contains("event 2"), "{overview}");
}

async fn the_admin_read_api_is_for_admin_tokens_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user_token("alice");
    for path in ["/v1/admin/identities", "/v1/admin/identities/alice/history", "/v1/admin/keys", "/v1/admin/overview"] {
        assert_problem(get(&app, &user, path).await, 403, "forbidden").await;
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(response, 401, "token_missing").await;
    }
    let response = app
        .client
        .post(app.url(&format!("/v1/admin/keys/{}/revoke", app.app_kid)))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
}

crate::on_both_backends!(
    identities_are_paged_by_prefix_with_stable_cursors,
    an_identitys_history_shows_every_card_in_chain_order_with_its_events,
    keys_are_listed_without_material_and_revoked_with_an_event,
    the_overview_counts_and_says_whether_the_log_is_intact,
    the_admin_read_api_is_for_admin_tokens_only,
);
