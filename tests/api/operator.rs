//! The operator's command line: `token inspect` against a running server, `doctor` on good and
//! broken deployments, completions, the man page and the version.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use cardinal_card::SigningKey;
use cardinal_server::domain::{CardsPerIdentity, KeyRole};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{APP, TestApp, now, run_binary, spawn_app, spawn_binary};
use crate::support::{Backend, TestDb, free_port};
use crate::tokens::flawed_tokens;

fn inspect(app: &TestApp, token: &str, admin: &str) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let base = app.url("");
    let output = run_binary(
        dir.path(),
        &[("CARDINAL_URL", base.trim_end_matches('/')), ("CARDINAL_TOKEN", admin)],
        &["token", "inspect", token, "--json"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (output, report)
}

/// The reasons a request is not told, which the admin of the key's app is.
fn withheld_reason(case: &str) -> Option<&'static str> {
    match case {
        "unknown kid" => Some("the token's key is not one of this app's keys"),
        "revoked key" => Some("the key is revoked"),
        "wrong issuer" | "virgil wrong app" => Some("the issuer is not the key's app"),
        "signed by another key" | "virgil signed by another key" => Some("the signature does not verify"),
        _ => None,
    }
}

async fn token_inspect_explains_every_refusal_with_the_code_a_request_gets(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token("root");
    for (case, header, code) in flawed_tokens(&app).await {
        let Some(header) = header else { continue };
        let (output, report) = inspect(&app, &header, &admin);
        assert_eq!(output.status.code(), Some(3), "case {case:?} exits 3: {report}");
        let server = &report["server"];
        assert_eq!(server["accepted"], false, "case {case:?}: {report}");
        assert_eq!((server["code"].as_str(), server["status"].as_u64()), (Some(code), Some(401)), "case {case:?}");
        assert_eq!(server["reason"].as_str(), withheld_reason(case), "case {case:?}: {report}");
    }
    // The same token a request would get through is accepted, on both schemes.
    for token in [format!("Bearer {}", app.user_token("alice")), format!("Virgil {}", app.virgil_token("alice"))] {
        let (output, report) = inspect(&app, &token, &admin);
        assert_eq!(output.status.code(), Some(0), "{report}");
        assert_eq!(report["server"]["accepted"], true, "{report}");
        assert_eq!(
            (report["server"]["app"].as_str(), report["server"]["subject"].as_str()),
            (Some(APP), Some("alice"))
        );
        assert_eq!(report["problems"], json!([]), "{report}");
    }
    // A bare JWT is read as its header says.
    let (_, report) = inspect(&app, &app.virgil_token("bob"), &admin);
    assert_eq!((report["scheme"].as_str(), report["server"]["accepted"].as_bool()), (Some("Virgil"), Some(true)));
    // Read alone, an expired token says so, by this machine's clock.
    let t = now();
    let expired = app.token_with(&app.app_key, &app.app_kid, APP, "alice", t - 7200, t - 3600);
    let dir = tempfile::tempdir().unwrap();
    let output = run_binary(dir.path(), &[], &["token", "inspect", &expired]);
    assert_eq!(output.status.code(), Some(3));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("problem:     it expired 1h 0m ago"), "{text}");
    assert!(!text.contains("server:"), "without --url the server is not asked: {text}");
}

async fn token_inspection_is_for_the_admins_of_the_keys_app_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let ask = |authorization: String, token: String| {
        app.client
            .post(app.url("/v1/admin/tokens/inspect"))
            .header("Authorization", format!("Bearer {authorization}"))
            .json(&json!({ "token": token }))
            .send()
    };
    let user = app.user_token("alice");
    let response = ask(user.clone(), format!("Bearer {user}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Another app's admin learns that a token is not theirs, and nothing of why it fails.
    app.admin().create_app("other", CardsPerIdentity::Single, "test").await.unwrap();
    let other_key = SigningKey::generate();
    let other_kid =
        app.admin().add_key("other", KeyRole::Admin, &other_key.public_key(), None, "test").await.unwrap().kid;
    let t = now();
    let other_admin = app.token_with(&other_key, &other_kid, "other", "root", t, t + 600);
    let revoked = SigningKey::generate();
    let revoked_kid = app.admin().add_key(APP, KeyRole::App, &revoked.public_key(), None, "test").await.unwrap().kid;
    app.admin().revoke_key(&revoked_kid, "test").await.unwrap();
    let revoked_token = app.token_with(&revoked, &revoked_kid, APP, "alice", t, t + 600);
    for token in [revoked_token.clone(), user.clone()] {
        let report: Value = ask(other_admin.clone(), token).await.unwrap().json().await.unwrap();
        assert_eq!(report["accepted"], false, "{report}");
        assert_eq!(report["reason"], "the token's key is not one of this app's keys", "{report}");
    }
    let own: Value = ask(app.admin_token("root"), revoked_token).await.unwrap().json().await.unwrap();
    assert_eq!(own["reason"], "the key is revoked", "{own}");
    assert_eq!(own["code"], "token_invalid", "{own}");
}

fn doctor(dir: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, Vec<Value>) {
    let output = run_binary(dir, env, &["doctor", "--json"]);
    let findings = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (output.status.code(), findings)
}

fn verdict<'a>(findings: &'a [Value], check: &str) -> &'a Value {
    findings.iter().find(|f| f["check"] == check).unwrap_or_else(|| panic!("no {check} check: {findings:?}"))
}

async fn doctor_passes_a_healthy_deployment_and_names_what_is_broken(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Where the SQLite file lives is private, as the service's data directory would be.
    std::fs::set_permissions(db.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.clone();
    let env = [("DATABASE_URL", url.as_str())];
    if backend == Backend::Postgres {
        let (code, findings) = doctor(dir.path(), &env);
        assert_eq!(code, Some(0), "pending migrations are a warning: {findings:?}");
        assert_eq!(verdict(&findings, "migrations")["verdict"], "warn", "{findings:?}");
    }
    let server = spawn_binary(dir.path(), &env);
    drop(server);
    let (code, findings) = doctor(dir.path(), &env);
    assert_eq!(code, Some(0), "{findings:?}");
    for finding in &findings {
        assert_eq!(finding["verdict"], "ok", "{finding}");
    }
    assert!(verdict(&findings, "migrations")["detail"].as_str().unwrap().starts_with("all "), "{findings:?}");
    if backend == Backend::Postgres {
        assert!(verdict(&findings, "listener")["detail"].as_str().unwrap().contains("heard its own probe"));
        assert!(verdict(&findings, "clock")["detail"].as_str().unwrap().contains("ms from this machine's"));
    }

    let key = dir.path().join("cardinal-data/service-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, findings) = doctor(dir.path(), &env);
    assert_eq!(code, Some(1), "{findings:?}");
    let service_key = verdict(&findings, "service key");
    assert_eq!(service_key["verdict"], "fail");
    assert_eq!(service_key["fix"], "chmod 600 cardinal-data/service-key.pem");

    std::fs::write(dir.path().join("broken.toml"), "[server\nlisten = 1").unwrap();
    let (code, findings) = doctor(dir.path(), &[("CARDINAL_CONFIG", "broken.toml")]);
    assert_eq!((code, verdict(&findings, "configuration")["verdict"].as_str()), (Some(1), Some("fail")));

    if backend == Backend::Postgres {
        let nowhere = format!("postgres://postgres@127.0.0.1:{}/cardinal", free_port());
        let (code, findings) = doctor(dir.path(), &[("DATABASE_URL", nowhere.as_str())]);
        assert_eq!(code, Some(1), "{findings:?}");
        assert_eq!(verdict(&findings, "database")["verdict"], "fail", "{findings:?}");
    }
}

#[test]
fn completions_the_man_page_and_the_version_are_generated_from_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let text = |args: &[&str]| {
        let output = run_binary(dir.path(), &[], args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let bash = text(&["completions", "bash"]);
    assert!(bash.contains("_cardinal()") && bash.contains("inspect") && bash.contains("doctor"), "{bash}");
    let script = dir.path().join("cardinal.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    assert!(text(&["completions", "zsh"]).starts_with("#compdef cardinal"));
    assert!(text(&["completions", "fish"]).contains("complete -c cardinal"));
    let man = text(&["man"]);
    assert!(man.contains(".TH cardinal 1"), "{man}");
    assert!(man.contains("self\\-hosted public\\-key directory"), "{man}");
    assert!(man.contains("doctor") && man.contains("completions"), "{man}");
    let version = text(&["--version"]);
    let head = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert!(version.starts_with("cardinal 0."), "{version}");
    if !head.trim().is_empty() {
        assert!(version.contains(head.trim()), "{version} names the commit {head}");
    }
}

crate::on_both_backends!(
    token_inspect_explains_every_refusal_with_the_code_a_request_gets,
    token_inspection_is_for_the_admins_of_the_keys_app_only,
    doctor_passes_a_healthy_deployment_and_names_what_is_broken,
);

/// Long operations show a spinner to a person at a terminal and nothing to a script.
#[test]
fn progress_shows_on_a_terminal_and_never_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let piped = run_binary(dir.path(), &[], &["migrate"]);
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stderr), "", "nothing but the result in a pipe");
    assert_eq!(String::from_utf8_lossy(&piped.stdout).trim(), "migrations applied");
    // `script` gives the command a pseudo-terminal, as an operator's shell would.
    let command = format!("{} migrate", env!("CARGO_BIN_EXE_cardinal"));
    let shown = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env_remove("CARDINAL_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("applying migrations"), "a spinner on a terminal: {text:?}");
    assert!(text.contains("migrations applied"), "{text:?}");
    let quiet = run_binary(dir.path(), &[], &["migrate", "--json"]);
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
}
