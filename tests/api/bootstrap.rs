//! The README's promise: `cardinal serve` with no configuration starts on an embedded database,
//! logs a token command, and that token publishes a card with curl.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::helpers::new_card;
use crate::support::{Backend, TestDb};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real binary in `dir` with nothing configured but a free port (and, for
/// PostgreSQL, `DATABASE_URL`), and returns its port and the token command it logged.
fn serve(dir: &std::path::Path, database_url: Option<&str>) -> (Server, u16, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cardinal"));
    command.arg("serve").current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("CARDINAL_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.env("CARDINAL_SERVER__LISTEN", "127.0.0.1:0");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let mut child = command.spawn().expect("the cardinal binary starts");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the test stops listening, so the server never writes to a
        // closed pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (mut port, mut token_command) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = String::new();
    while port.is_none() || token_command.is_none() {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the server did not log its port and token command in time:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.split("mint a token with: ").nth(1) {
            token_command = Some(rest.trim().to_owned());
        }
        if line.contains("listening") {
            port = line.split("port=").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|p| p.parse().ok());
        }
    }
    (server, port.unwrap(), token_command.unwrap())
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_cardinal"));
    command.args(["app", "list"]).current_dir(&dir);
    if let Some(url) = &url {
        command.env("DATABASE_URL", url);
    } else {
        command.env_remove("DATABASE_URL");
    }
    let listing = String::from_utf8(command.output().unwrap().stdout).unwrap();
    assert_eq!(listing.lines().filter(|l| l.starts_with("default ")).count(), 1, "{listing}");
}

crate::on_both_backends!(the_printed_token_command_publishes_a_card_with_curl);

/// Regression: a failed log write (stderr closed under the server) used to panic the request.
#[test]
fn a_closed_log_pipe_does_not_break_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cardinal"));
    command.arg("serve").current_dir(dir.path()).stdout(Stdio::null()).stderr(Stdio::piped());
    command.env("CARDINAL_SERVER__LISTEN", "127.0.0.1:0").env_remove("DATABASE_URL").env_remove("RUST_LOG");
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while port.is_none() {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server exited before listening");
        if line.contains("listening") {
            port = line
                .split("port=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok());
        }
    }
    let server = Server(child);
    drop(stderr);
    // An unauthenticated lookup is logged as a warning: the write fails, the answer must not.
    let status = run(
        dir.path(),
        &format!("curl -sS -o /dev/null -w '%{{http_code}}' 'http://127.0.0.1:{}/v1/cards?identity=a'", port.unwrap()),
    );
    assert_eq!(status, "401");
    drop(server);
}
