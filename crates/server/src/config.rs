//! Settings: the embedded `config/default.toml`, then an optional file, then the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::CardsPerIdentity;
use crate::storage::{PoolSettings, WriteQueueSettings};

/// The built-in defaults, documented key by key.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// Everything Cardinal can be told. Secrets are `SecretString`, so `Debug` redacts them.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// HTTP listener.
    pub server: ServerSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// The service's countersigning key.
    pub service: ServiceSettings,
    /// Pythia brainkey (e3kit's password-derived backup keys).
    pub pythia: PythiaSettings,
    /// First-start app and key.
    pub bootstrap: BootstrapSettings,
    /// Defaults for new apps.
    pub apps: AppDefaults,
    /// Token verification.
    pub auth: AuthSettings,
    /// In-memory caches.
    pub cache: CacheSettings,
    /// Sizes and counts that input controls.
    pub limits: Limits,
    /// Browser access.
    pub cors: CorsSettings,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// Rate limits.
    pub rate_limits: crate::ratelimit::RateLimitSettings,
    /// Logging.
    pub log: LogSettings,
    /// The transparency log.
    pub transparency: TransparencySettings,
}

/// `[transparency]`
#[derive(Debug, Clone, Deserialize)]
pub struct TransparencySettings {
    /// Publish each app's event log as a C2SP transparency log.
    pub enabled: bool,
    /// Origins are `<origin_prefix>/<app_id>`.
    pub origin_prefix: String,
    /// PKCS#8 PEM file of the log key.
    pub signing_key_file: PathBuf,
    /// Create it if missing.
    pub generate_signing_key: bool,
    /// The key itself, instead of the file.
    #[serde(default)]
    pub signing_key: Option<SecretString>,
    /// Checkpoint cadence, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Cosignatures required.
    pub witness_quorum: usize,
    /// How long a witness has to answer, in milliseconds.
    pub witness_timeout_ms: u64,
    /// Witnesses (config file only).
    #[serde(default)]
    pub witnesses: Vec<WitnessSettings>,
}

/// `[[transparency.witnesses]]`
#[derive(Debug, Clone, Deserialize)]
pub struct WitnessSettings {
    /// Its name, as in its vkey.
    pub name: String,
    /// Its submission prefix (`<url>/add-checkpoint`).
    pub url: String,
    /// Its cosignature vkey.
    pub vkey: String,
}

/// The origin prefix a deployment must replace (refused without bootstrap, i.e. in production).
pub const DEFAULT_ORIGIN_PREFIX: &str = "localhost/cardinal";

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Serve them at all.
    pub enabled: bool,
    /// Their own listen address, or empty for the API listener.
    pub listen: String,
}

/// `[cors]`
#[derive(Debug, Clone, Deserialize)]
pub struct CorsSettings {
    /// Allowed origins; `*` for any, empty for none.
    pub allowed_origins: Vec<String>,
    /// Preflight cache lifetime.
    pub max_age_secs: usize,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// `host:port`.
    pub listen: String,
    /// Worker threads, 0 for one per core.
    pub workers: usize,
    /// Seconds in-flight requests get after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Milliseconds a client has to send the request head.
    pub request_header_timeout_ms: u64,
    /// Milliseconds a client has to send the request body.
    pub request_body_timeout_ms: u64,
    /// Seconds an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Connections queued by the kernel before they are accepted.
    pub backlog: u32,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite:…` or `postgres://…`.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// Idle connections kept.
    pub min_connections: u32,
    /// Wait for a connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// Readiness check timeout, in milliseconds.
    pub readiness_timeout_ms: u64,
    /// Whether `url` goes through a transaction-mode pooler (PgBouncer): then no statement
    /// outlives its transaction and no startup option is sent.
    pub behind_pooler: bool,
    /// A direct URL for the change listener (LISTEN does not work through a transaction-mode
    /// pooler); empty: `url`.
    pub listen_url: SecretString,
    /// Read replicas for lookups and searches (PostgreSQL streaming replicas).
    pub replica_urls: Vec<SecretString>,
    /// Most a replica may lag before reads go to the primary, in milliseconds.
    pub replica_max_lag_ms: u64,
    /// SQLite: most writers queued for the one writer path; one more gets 503.
    pub write_queue_max_writers: usize,
    /// SQLite: longest a write waits for its turn before 503, in milliseconds.
    pub write_queue_timeout_ms: u64,
    /// SQLite: each connection's page cache, in KiB.
    pub sqlite_page_cache_kib: u32,
}

impl DatabaseSettings {
    /// The URL itself, for the code that connects (never for a log line).
    pub fn exposed_url(&self) -> &str {
        use secrecy::ExposeSecret;
        self.url.expose_secret()
    }

    /// The pool part.
    pub fn pool(&self) -> PoolSettings {
        use secrecy::ExposeSecret;
        let listen_url = self.listen_url.expose_secret().trim();
        PoolSettings {
            max_connections: self.max_connections.max(1),
            min_connections: self.min_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            behind_pooler: self.behind_pooler,
            listen_url: (!listen_url.is_empty()).then(|| listen_url.to_owned()),
            replica_urls: self.replica_urls.iter().map(|url| url.expose_secret().to_owned()).collect(),
            replica_max_lag: Duration::from_millis(self.replica_max_lag_ms),
            write_queue: WriteQueueSettings {
                max_writers: self.write_queue_max_writers.max(1),
                max_wait: Duration::from_millis(self.write_queue_timeout_ms),
            },
            sqlite_page_cache_kib: self.sqlite_page_cache_kib,
        }
    }
}

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    /// PKCS#8 PEM file of the countersigning key.
    pub signing_key_file: PathBuf,
    /// Create it if missing.
    pub generate_signing_key: bool,
    /// The key itself, instead of the file.
    #[serde(default)]
    pub signing_key: Option<SecretString>,
}

/// `[pythia]`
#[derive(Debug, Clone, Deserialize)]
pub struct PythiaSettings {
    /// Serve `POST /pythia/v1/brainkey` at all.
    pub enabled: bool,
    /// The file holding the secret every backup key derives from.
    pub secret_file: PathBuf,
    /// Create it if missing.
    pub generate_secret: bool,
    /// The secret itself, instead of the file.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Evaluations running at once; 0: half the cores, at least one.
    pub max_concurrent_evaluations: usize,
    /// How long a request waits for an evaluation slot before 503, in milliseconds.
    pub queue_timeout_ms: u64,
    /// Longest `brainkey_id`, in bytes.
    pub brainkey_id_max_bytes: usize,
}

/// `[bootstrap]`
#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    /// Whether to create the first app and key.
    pub enabled: bool,
    /// Its id.
    pub app_id: String,
    /// Where its private key goes.
    pub key_file: PathBuf,
}

/// `[apps]`
#[derive(Debug, Clone, Deserialize)]
pub struct AppDefaults {
    /// Policy of apps created without one.
    pub cards_per_identity: CardsPerIdentity,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// Longest accepted `exp - iat`.
    pub max_token_lifetime_secs: i64,
    /// Tolerated skew.
    pub clock_skew_secs: i64,
    /// How long API keys and verified tokens are remembered; a key revocation takes effect
    /// within this window. Zero reads the key on every request.
    pub credential_cache_ms: u64,
    /// Most verified tokens remembered.
    pub credential_cache_tokens: u64,
}

/// `[cache]`
#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    /// Identity states kept in memory for revalidations (PostgreSQL only); 0: none.
    pub identity_versions: u64,
    /// How long memory is trusted past the newest probe the listener heard back, in
    /// milliseconds: the bound on a stale answer when notifications silently stop.
    pub identity_versions_trust_ms: u64,
    /// Bytes of identities' active cards kept for lookups (the answer cache); 0: none.
    pub answer_bytes: u64,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
pub struct Limits {
    /// Request body bytes.
    pub body_bytes: usize,
    /// Identities per lookup.
    pub identities_per_lookup: usize,
    /// Signatures per card.
    pub signatures_per_card: usize,
    /// Extra snapshot bytes.
    pub extra_snapshot_bytes: usize,
    /// Public key bytes, at least.
    pub public_key_min_bytes: usize,
    /// Public key bytes, at most.
    pub public_key_max_bytes: usize,
    /// Identity bytes.
    pub identity_max_bytes: usize,
    /// Revocation reason bytes.
    pub reason_max_bytes: usize,
    /// Events per page.
    pub events_page_max: i64,
    /// Authorization header bytes.
    pub token_max_bytes: usize,
    /// All request headers' bytes.
    pub header_bytes: usize,
    /// Decoded snapshot bytes.
    pub snapshot_bytes: usize,
    /// Decoded bytes of one signature.
    pub signature_bytes: usize,
    /// Bytes of a card as stored and served.
    pub card_bytes: usize,
    /// Live chains per identity in apps that allow several.
    pub live_chains_per_identity: i64,
    /// Newest cards of each chain in a Virgil search.
    pub search_cards_per_chain: i64,
    /// Bytes of one answer's cards or events.
    pub answer_bytes: usize,
    /// Bytes of a Keyknox entry's meta.
    pub keyknox_meta_bytes: usize,
    /// Bytes of a Keyknox entry's value.
    pub keyknox_value_bytes: usize,
    /// Readers of one Keyknox v2 entry, its owner included.
    pub keyknox_readers_per_entry: usize,
    /// Keyknox v2 entries one identity owns.
    pub keyknox_entries_per_identity: i64,
    /// Bytes of a Keyknox root, path or key.
    pub keyknox_name_bytes: usize,
}

impl Limits {
    /// The card-format part.
    pub fn format(&self) -> cardinal_card::FormatLimits {
        cardinal_card::FormatLimits {
            max_signatures: self.signatures_per_card,
            max_extra_snapshot_bytes: self.extra_snapshot_bytes,
            min_public_key_bytes: self.public_key_min_bytes,
            max_public_key_bytes: self.public_key_max_bytes,
            max_identity_bytes: self.identity_max_bytes.min(cardinal_card::identity::MAX_IDENTITY_BYTES),
            max_snapshot_bytes: self.snapshot_bytes,
            max_signature_bytes: self.signature_bytes,
            max_card_bytes: self.card_bytes,
        }
    }
}

impl Limits {
    /// The Keyknox part.
    pub fn keyknox(&self) -> crate::keyknox::KeyknoxLimits {
        crate::keyknox::KeyknoxLimits {
            meta_bytes: self.keyknox_meta_bytes,
            value_bytes: self.keyknox_value_bytes,
            readers_per_entry: self.keyknox_readers_per_entry.max(1),
            entries_per_identity: self.keyknox_entries_per_identity.max(1),
            name_bytes: self.keyknox_name_bytes.max(1),
            identity_bytes: self.format().max_identity_bytes,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// Filter directives.
    pub level: String,
}

impl Settings {
    /// Loads the layers. Loading never writes anything.
    pub fn load(file: Option<&Path>) -> Result<Settings, Box<figment::Error>> {
        Self::figment(file).extract().map_err(Box::new)
    }

    /// The layered sources, for callers that add their own on top (tests).
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("CARDINAL_").split("__").ignore(&["config", "url", "token"]))
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database.url".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_load_and_debug_redacts_the_database_url() {
        let settings: Settings = Figment::from(Toml::string(DEFAULT_CONFIG)).extract().unwrap();
        assert_eq!(settings.server.listen, "127.0.0.1:8080");
        assert_eq!(settings.limits.body_bytes, 65536);
        assert_eq!(settings.apps.cards_per_identity, CardsPerIdentity::Single);
        let with_password: Settings = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(("database.url", "postgres://u:hunter2@h/db"))
            .extract()
            .unwrap();
        assert_eq!(with_password.database.url.expose_secret(), "postgres://u:hunter2@h/db");
        assert!(!format!("{with_password:?}").contains("hunter2"));
        let with_log_key: Settings = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(("transparency.signing_key", "-----BEGIN PRIVATE KEY-----MC4CAQAwBQYDK2VwBCIEIlogkey"))
            .extract()
            .unwrap();
        assert!(with_log_key.transparency.signing_key.is_some());
        assert!(!format!("{with_log_key:?}").contains("MC4CAQAw"), "the log key is masked like the service key");
        assert_eq!(with_log_key.transparency.origin_prefix, DEFAULT_ORIGIN_PREFIX);
        assert_eq!(with_log_key.transparency.checkpoint_interval_ms, 1000);
    }

    #[test]
    fn a_provisioned_pythia_secret_is_redacted_in_debug() {
        let secret = "cardinal-pythia-v1:c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IHNlY3I=";
        let settings: Settings =
            Figment::from(Toml::string(DEFAULT_CONFIG)).merge(("pythia.secret", secret)).extract().unwrap();
        assert_eq!(settings.pythia.secret.as_ref().unwrap().expose_secret(), secret);
        assert!(!format!("{settings:?}").contains("c2VjcmV0"));
        assert!(settings.pythia.enabled && settings.pythia.generate_secret);
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment's Jail fixes the closure's error type")]
    fn environment_overrides_the_file_layers() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("extra.toml", "[server]\nlisten = \"0.0.0.0:1\"\n[limits]\nbody_bytes = 10")?;
            jail.set_env("CARDINAL_SERVER__LISTEN", "0.0.0.0:2");
            jail.set_env("DATABASE_URL", "postgres://x@y/z");
            let settings = Settings::load(Some(Path::new("extra.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(settings.server.listen, "0.0.0.0:2");
            assert_eq!(settings.limits.body_bytes, 10);
            assert_eq!(settings.database.url.expose_secret(), "postgres://x@y/z");
            Ok(())
        });
    }
}
