//! The README's promise: `cardinal serve` with no configuration starts on an embedded database,
//! logs a token command, and that token publishes a card with curl.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::{Running, cardinal_command, listening_port, new_card, run_binary, spawn_binary};
use crate::support::{Backend, TestDb};

/// Starts the real binary in `dir` with nothing configured but a free port (and, for
/// PostgreSQL, `DATABASE_URL`), and returns it, its port and the token command it logged.
fn serve(dir: &std::path::Path, database_url: Option<&str>) -> (Running, u16, String) {
    let env: Vec<(&str, &str)> = database_url.map(|url| ("DATABASE_URL", url)).into_iter().collect();
    let spawned = spawn_binary(dir, &env);
    let token_command = spawned
        .startup_log
        .iter()
        .find_map(|line| line.split("mint a token with: ").nth(1))
        .unwrap_or_else(|| panic!("no token command was logged:\n{}", spawned.startup_log.join("\n")))
        .trim()
        .to_owned();
    (spawned.process, spawned.port, token_command)
}

fn run(dir: &std::path::Path, shell: &str) -> String {
    let output = Command::new("sh").arg("-c").arg(shell).current_dir(dir).output().expect("sh runs");
    assert!(output.status.success(), "{shell} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn the_printed_token_command_publishes_a_card_with_curl(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = db.dir().to_owned();
    let url = (backend == Backend::Postgres).then(|| db.url.clone());
    let (server, port, token_command) = serve(&dir, url.as_deref());
    assert!(token_command.contains("token --key cardinal-data/default-app-key.pem --kid "), "{token_command}");
    let key_file = dir.join("cardinal-data/default-app-key.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the app key is readable by its owner only");
    if backend == Backend::Sqlite {
        assert!(dir.join("cardinal-data/cardinal.db").exists(), "the embedded database lives under ./cardinal-data");
    }

    let token = run(&dir, &token_command);
    let card = new_card("alice");
    std::fs::write(dir.join("card.json"), serde_json::to_vec(&card.raw).unwrap()).unwrap();
    let status = run(
        &dir,
        &format!(
            "curl -sS -o response.json -w '%{{http_code}}' -X POST http://127.0.0.1:{port}/v1/cards \
             -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' --data @card.json"
        ),
    );
    let response = std::fs::read_to_string(dir.join("response.json")).unwrap();
    assert_eq!(status, "201", "{response}");
    let body: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(body["id"], card.id.as_str());

    // A second start finds the app and does not bootstrap again.
    drop(server);
    let env: Vec<(&str, &str)> = url.as_deref().map(|url| ("DATABASE_URL", url)).into_iter().collect();
    let listing = String::from_utf8(run_binary(&dir, &env, &["app", "list"]).stdout).unwrap();
    assert_eq!(listing.lines().filter(|l| l.starts_with("default ")).count(), 1, "{listing}");
}

/// Regression: a failed log write (stderr closed under the server) used to panic the request.
#[test]
fn a_closed_log_pipe_does_not_break_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = cardinal_command(dir.path(), &[("CARDINAL_SERVER__LISTEN", "127.0.0.1:0")]);
    command.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while port.is_none() {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server exited before listening");
        port = listening_port(&line);
    }
    let server = Running(child);
    drop(stderr);
    // An unauthenticated lookup is logged as a warning: the write fails, the answer must not.
    let status = run(
        dir.path(),
        &format!("curl -sS -o /dev/null -w '%{{http_code}}' 'http://127.0.0.1:{}/v1/cards?identity=a'", port.unwrap()),
    );
    assert_eq!(status, "401");
    drop(server);
}

fn cardinal(dir: &std::path::Path, database_url: Option<&str>, args: &[&str]) -> std::process::Output {
    let env: Vec<(&str, &str)> = database_url.map(|url| ("DATABASE_URL", url)).into_iter().collect();
    run_binary(dir, &env, args)
}

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

async fn the_admin_commands_manage_apps_keys_and_tokens(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = db.dir().to_owned();
    let url = (backend == Backend::Postgres).then(|| db.url.clone());
    let url = url.as_deref();
    ok(cardinal(&dir, url, &["migrate"]));
    ok(cardinal(&dir, url, &["app", "create", "chat", "--cards-per-identity", "multiple"]));
    let failed = cardinal(&dir, url, &["app", "create", "chat"]);
    assert!(!failed.status.success(), "a duplicate app is refused");
    assert!(
        ok(cardinal(&dir, url, &["app", "list"])).lines().any(|l| l.starts_with("chat ") && l.contains("multiple"))
    );

    let generated = ok(cardinal(
        &dir,
        url,
        &["key", "generate", "--app", "chat", "--role", "admin", "--out", "admin.pem", "--kid", "ops-1"],
    ));
    assert!(generated.contains("ops-1"), "{generated}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("admin.pem")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !cardinal(&dir, url, &["key", "generate", "--app", "chat", "--role", "app", "--out", "admin.pem"])
            .status
            .success(),
        "never overwrites a key"
    );
    assert!(
        !cardinal(&dir, url, &["key", "generate", "--app", "nope", "--role", "app", "--out", "x.pem"]).status.success(),
        "unknown app"
    );

    let user_key = cardinal_card::SigningKey::generate();
    std::fs::write(dir.join("backend.pub.pem"), user_key.public_key().to_spki_pem()).unwrap();
    std::fs::write(dir.join("backend.pem"), user_key.to_pkcs8_pem()).unwrap();
    ok(cardinal(
        &dir,
        url,
        &["key", "add", "--app", "chat", "--role", "app", "--public-key", "backend.pub.pem", "--kid", "backend-1"],
    ));
    let listing = ok(cardinal(&dir, url, &["key", "list", "--app", "chat"]));
    assert!(listing.contains("ops-1") && listing.contains("backend-1"), "{listing}");

    let token = ok(cardinal(
        &dir,
        url,
        &[
            "token",
            "--key",
            "backend.pem",
            "--kid",
            "backend-1",
            "--app",
            "chat",
            "--identity",
            "alice",
            "--ttl",
            "10m",
        ],
    ));
    let virgil = ok(cardinal(
        &dir,
        url,
        &[
            "token",
            "--key",
            "backend.pem",
            "--kid",
            "backend-1",
            "--app",
            "chat",
            "--identity",
            "alice",
            "--scheme",
            "virgil",
        ],
    ));
    assert_eq!(token.trim().split('.').count(), 3);
    let jwt = cardinal_card::virgil_jwt::VirgilJwt::parse(virgil.trim()).unwrap();
    jwt.verify(&user_key.public_key()).unwrap();
    assert_eq!((jwt.app_id(), jwt.identity()), (Some("chat"), Some("alice")));

    let revoked = ok(cardinal(&dir, url, &["key", "revoke", "backend-1"]));
    assert!(revoked.contains("revoked key backend-1"), "{revoked}");
    assert!(ok(cardinal(&dir, url, &["key", "revoke", "backend-1"])).contains("already revoked"));
    assert!(!cardinal(&dir, url, &["key", "revoke", "no-such-key"]).status.success());
    let listing = ok(cardinal(&dir, url, &["key", "list", "--app", "chat"]));
    let line = listing.lines().find(|l| l.starts_with("backend-1")).unwrap();
    assert!(!line.trim_end().ends_with('-'), "the revocation time is listed: {line}");

    let config = ok(cardinal(&dir, Some("postgres://user:hunter2@db/x"), &["print-config"]));
    assert!(!config.contains("hunter2"), "secrets are masked");
}

crate::on_both_backends!(
    the_printed_token_command_publishes_a_card_with_curl,
    the_admin_commands_manage_apps_keys_and_tokens
);
