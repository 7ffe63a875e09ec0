//! `spawn_app`: the real server on port 0 over a fresh database, with an app, keys and
//! one helper per endpoint.

use std::sync::{Arc, LazyLock};

use cardinal_card::card::CardBuilder;
use cardinal_card::{CardId, Identity, PublicKey, RawSignedModel, SigningKey};
use cardinal_server::apps::AppAdmin;
use cardinal_server::auth::jwt::{Claims, mint_eddsa};
use cardinal_server::clock::{Clock, ShiftedClock};
use cardinal_server::config::Settings;
use cardinal_server::domain::{CardsPerIdentity, KeyRole};
use cardinal_server::startup::{Application, open_store};
use cardinal_server::storage::Store;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use std::io::BufRead;

use crate::support::{Backend, TestDb};

/// The tests' app id.
pub const APP: &str = "testapp";

static INIT: LazyLock<()> = LazyLock::new(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var("TEST_LOG").is_ok() {
        cardinal_server::telemetry::init(&cardinal_server::config::LogSettings {
            format: cardinal_server::config::LogFormat::Pretty,
            level: "info".into(),
        });
    }
});

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    /// Kept so the database lives as long as the server.
    _db: TestDb,
    pub client: reqwest::Client,
    pub app_key: SigningKey,
    pub app_kid: String,
    pub admin_key: SigningKey,
    pub admin_kid: String,
    pub store: Arc<dyn Store>,
    /// The server's clock: advance it to pass a token lifetime or a cache window.
    pub clock: Arc<ShiftedClock>,
    settings: Settings,
    handle: actix_web::dev::ServerHandle,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Options {
    pub policy: CardsPerIdentity,
    pub body_bytes: usize,
    /// Further settings, as (dotted key, value).
    pub settings: Vec<(&'static str, Value)>,
    /// A database to use instead of a fresh one.
    pub database: Option<TestDb>,
}

impl Default for Options {
    fn default() -> Self {
        Options { policy: CardsPerIdentity::Single, body_bytes: 65536, settings: Vec::new(), database: None }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, Options::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: Options) -> TestApp {
    LazyLock::force(&INIT);
    let db = match options.database {
        Some(db) => db,
        None => TestDb::new(backend).await,
    };
    let mut figment = Settings::figment(None)
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("server.workers", 2))
        .merge(("database.url", db.url.clone()))
        .merge(("database.max_connections", 10))
        .merge(("service.signing_key_file", db.dir().join("service-key.pem").display().to_string()))
        .merge(("pythia.secret_file", db.dir().join("pythia-secret").display().to_string()))
        .merge(("transparency.signing_key_file", db.dir().join("log-key.pem").display().to_string()))
        .merge(("bootstrap.enabled", false))
        .merge(("limits.body_bytes", options.body_bytes));
    for (key, value) in options.settings {
        figment = figment.merge((key, value));
    }
    let settings: Settings = figment.extract().expect("test settings");
    let store = open_store(&settings).await.expect("store");
    let clock = ShiftedClock::new();
    let admin = AppAdmin::new(store.as_ref(), clock.as_ref());
    admin.create_app(APP, options.policy, "test").await.unwrap();
    let app_key = SigningKey::generate();
    let app_kid = admin.add_key(APP, KeyRole::App, &app_key.public_key(), None, "test").await.unwrap().kid;
    let admin_key = SigningKey::generate();
    let admin_kid = admin.add_key(APP, KeyRole::Admin, &admin_key.public_key(), None, "test").await.unwrap().kid;
    let (address, handle, running) = start_running(settings.clone(), clock.clone()).await;
    TestApp {
        backend,
        address,
        _db: db,
        client: reqwest::Client::new(),
        app_key,
        app_kid,
        admin_key,
        admin_kid,
        store,
        clock,
        settings,
        handle,
        running: Some(running),
    }
}

async fn start(settings: Settings, clock: Arc<ShiftedClock>) -> (String, actix_web::dev::ServerHandle) {
    let (address, handle, _running) = start_running(settings, clock).await;
    (address, handle)
}

/// Starts a server; the task ends once it stopped and closed its pool.
async fn start_running(
    settings: Settings,
    clock: Arc<ShiftedClock>,
) -> (String, actix_web::dev::ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>) {
    let app = Application::build_with(settings, clock, Some(cardinal_client::http_post())).await.expect("application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    (address, handle, tokio::spawn(app.run_until_stopped()))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A user's key and a card for it.
pub struct NewCard {
    pub key: SigningKey,
    pub id: CardId,
    pub raw: RawSignedModel,
}

pub fn new_card(identity: &str) -> NewCard {
    let key = SigningKey::generate();
    let (id, raw) = CardBuilder::new(Identity::parse(identity).unwrap(), &key, now()).build();
    NewCard { key, id, raw }
}

pub fn rotation_of(identity: &str, previous: &CardId) -> NewCard {
    let key = SigningKey::generate();
    let (id, raw) =
        CardBuilder::new(Identity::parse(identity).unwrap(), &key, now()).previous(previous.clone()).build();
    NewCard { key, id, raw }
}

impl TestApp {
    /// Apps and keys, managed as `cardinal app|key` does, on the server's clock.
    pub fn admin(&self) -> AppAdmin<'_> {
        AppAdmin::new(self.store.as_ref(), self.clock.as_ref())
    }

    /// The server's current time, Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// Where the transparency log key is, for tests that sign as a forking server would.
    pub fn settings_log_key(&self) -> std::path::PathBuf {
        self.settings.transparency.signing_key_file.clone()
    }

    /// The database URL, for tests that check rows directly.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn token_with(&self, key: &SigningKey, kid: &str, iss: &str, sub: &str, iat: i64, exp: i64) -> String {
        mint_eddsa(key, kid, &Claims { iss: iss.into(), sub: sub.into(), iat, exp, nbf: None }).unwrap()
    }

    pub fn user_token(&self, identity: &str) -> String {
        self.token_with(&self.app_key, &self.app_kid, APP, identity, self.now(), self.now() + 600)
    }

    pub fn admin_token(&self, admin: &str) -> String {
        self.token_with(&self.admin_key, &self.admin_kid, APP, admin, self.now(), self.now() + 600)
    }

    pub fn virgil_token(&self, identity: &str) -> String {
        cardinal_card::virgil_jwt::sign(&self.app_key, &self.app_kid, APP, identity, self.now(), self.now() + 600)
    }

    pub async fn publish_raw(&self, token: &str, body: &Value) -> Response {
        self.client.post(self.url("/v1/cards")).bearer_auth(token).json(body).send().await.unwrap()
    }

    pub async fn publish(&self, identity: &str, card: &RawSignedModel) -> Response {
        self.publish_raw(&self.user_token(identity), &serde_json::to_value(card).unwrap()).await
    }

    /// Publishes and insists on 201; returns the card view.
    pub async fn published(&self, identity: &str, card: &NewCard) -> Value {
        let response = self.publish(identity, &card.raw).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn get_card(&self, token: &str, id: &str) -> Response {
        self.client.get(self.url(&format!("/v1/cards/{id}"))).bearer_auth(token).send().await.unwrap()
    }

    pub async fn lookup(&self, token: &str, identities: &[&str], if_none_match: Option<&str>) -> Response {
        let query: Vec<(&str, &str)> = identities.iter().map(|i| ("identity", *i)).collect();
        let mut request = self.client.get(self.url("/v1/cards")).query(&query).bearer_auth(token);
        if let Some(tag) = if_none_match {
            request = request.header("If-None-Match", tag);
        }
        request.send().await.unwrap()
    }

    pub async fn search(&self, token: &str, identities: &[String]) -> Response {
        self.client
            .post(self.url("/v1/cards/search"))
            .bearer_auth(token)
            .json(&serde_json::json!({"identities": identities}))
            .send()
            .await
            .unwrap()
    }

    pub async fn revoke(&self, token: &str, id: &str, reason: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(&format!("/v1/cards/{id}/revoke"))).bearer_auth(token);
        if let Some(reason) = reason {
            request = request.json(&serde_json::json!({"reason": reason}));
        }
        request.send().await.unwrap()
    }

    pub async fn admin_revoke(&self, token: &str, id: &str, reason: Option<&str>) -> Response {
        self.client
            .post(self.url(&format!("/v1/admin/cards/{id}/revoke")))
            .bearer_auth(token)
            .json(&serde_json::json!({"reason": reason}))
            .send()
            .await
            .unwrap()
    }

    pub async fn events(&self, after: i64, limit: i64) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/v1/admin/events?after={after}&limit={limit}")))
            .bearer_auth(self.admin_token("root"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn service_key(&self) -> PublicKey {
        let body: Value = self.client.get(self.url("/v1/service-key")).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["signer"], "virgil");
        PublicKey::from_text(body["public_key"].as_str().unwrap()).unwrap()
    }

    /// Another server over the same database and service key, as a second replica: its address
    /// and a handle that stops it.
    pub async fn another_instance(&self) -> (String, actix_web::dev::ServerHandle) {
        start(self.settings.clone(), self.clock.clone()).await
    }

    /// Another server over the same service key, with its settings changed by `change`.
    pub async fn instance_with(&self, change: impl FnOnce(&mut Settings)) -> (String, actix_web::dev::ServerHandle) {
        let mut settings = self.settings.clone();
        change(&mut settings);
        start(settings, self.clock.clone()).await
    }

    /// Stops the server and starts it again over the same database and service key.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Stops the server; when this returns its pool is closed.
    pub async fn stop(&mut self) {
        self.handle.stop(true).await;
        if let Some(running) = self.running.take() {
            running.await.expect("the server task").expect("the server stopped cleanly");
        }
    }

    /// Starts the server again (after [`Self::stop`]).
    pub async fn start(&mut self) {
        let (address, handle, running) = start_running(self.settings.clone(), self.clock.clone()).await;
        self.address = address;
        self.handle = handle;
        self.running = Some(running);
    }
}

/// The sum of a metric's samples whose line starts with `series` (a name, or a name and the
/// start of its labels), as the server at `address` exports them.
pub async fn metric(client: &reqwest::Client, address: &str, series: &str) -> f64 {
    let text = client.get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(series) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, value)| value.parse::<f64>().ok()))
        .sum()
}

/// Asserts a problem+json answer with this status and code; returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!((actual, body["code"].as_str()), (status, Some(code)), "body: {body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["status"], status);
    body
}

/// Verifies the whole event log through the admin API.
pub async fn assert_event_log_verifies(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = app.events(after, 1000).await;
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        after = page["next"].as_i64().unwrap();
        all.extend(events);
    }
    let bodies: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = all
        .iter()
        .map(|e| {
            (
                serde_json::from_value::<cardinal_card::log::EventBody>(e["event"].clone()).unwrap().canonical_bytes(),
                hex::decode(e["prev_hash"].as_str().unwrap()).unwrap(),
                hex::decode(e["hash"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    cardinal_card::log::verify_chain(
        0,
        cardinal_card::log::GENESIS_HASH,
        bodies.iter().map(|(b, p, h)| cardinal_card::log::StoredEvent { body: b, prev_hash: p, hash: h }),
    )
    .expect("the event hash chain verifies");
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>(), "gap-free");
    all
}

/// A running `cardinal serve`, killed if the test ends first.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `cardinal` binary with a clean environment (none of the caller's CARDINAL_*,
/// DATABASE_URL or RUST_LOG), in `dir`, with `env` set: the one way tests run the binary.
pub fn cardinal_command(dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cardinal"));
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("CARDINAL_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A started `cardinal serve`.
pub struct Spawned {
    pub process: Running,
    pub port: u16,
    /// What it logged up to and including its `listening` line.
    pub startup_log: Vec<String>,
    /// What it logs from then on.
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// Starts `cardinal serve` on a free port and waits until it listens.
pub fn spawn_binary(dir: &std::path::Path, env: &[(&str, &str)]) -> Spawned {
    let mut command = cardinal_command(dir, &[("CARDINAL_SERVER__LISTEN", "127.0.0.1:0")]);
    command.arg("serve").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = Running(command.spawn().unwrap());
    let stderr = process.0.stderr.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    // Keeps draining after the test stops reading, so the server never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut startup_log = Vec::new();
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| panic!("the server did not start:\n{}", startup_log.join("\n")));
        let port = listening_port(&line);
        startup_log.push(line);
        if let Some(port) = port {
            return Spawned { process, port, startup_log, lines };
        }
    }
}

/// The port of a `listening` line, pretty or JSON.
pub fn listening_port(line: &str) -> Option<u16> {
    if !line.contains("listening") {
        return None;
    }
    let pretty = line.split("port=").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next());
    let json =
        serde_json::from_str::<Value>(line).ok().and_then(|v| v["fields"]["port"].as_u64()).map(|p| p.to_string());
    pretty.map(str::to_owned).or(json).and_then(|p| p.parse().ok())
}

/// Runs a `cardinal` command to completion.
pub fn run_binary(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    cardinal_command(dir, env).args(args).output().expect("cardinal runs")
}

pub fn mint(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let output = run_binary(dir, env, args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
