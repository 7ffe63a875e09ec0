//! The client commands of `cardinal`: what SDK users and admins type.
//!
//! Output is a table by default and JSON with `--json`. Errors are one line naming the server's
//! problem code and what to do, and the exit code says what kind of failure it was:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other error (bad input, unreadable file) |
//! | 2 | usage error (clap) |
//! | 3 | not authenticated or not allowed (401, 403) |
//! | 4 | not found (404) |
//! | 5 | conflict (409: exists, taken, superseded, revoked) |
//! | 6 | verification failed: the server's answer or the card does not verify |
//! | 7 | the server is unreachable or unavailable (transport, 5xx) |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod inspect;
mod output;
mod replay;
mod transparency;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cardinal_card::{CardId, FormatLimits, ParsedCard, RawSignedModel};
use cardinal_client::{Client, ClientError, ProblemCode, PublicKey, SigningKey};
use clap::{Args, Subcommand};

/// Exit codes scripts can rely on.
pub mod exit {
    /// Other errors.
    pub const FAILURE: u8 = 1;
    /// 401 and 403.
    pub const AUTH: u8 = 3;
    /// 404.
    pub const NOT_FOUND: u8 = 4;
    /// 409.
    pub const CONFLICT: u8 = 5;
    /// A card or an answer failed verification.
    pub const VERIFICATION: u8 = 6;
    /// Unreachable or unavailable.
    pub const UNAVAILABLE: u8 = 7;
}

/// Where the server is and who is calling; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's base URL.
    #[arg(long, global = true, env = "CARDINAL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The token to send (see `cardinal token`).
    #[arg(long, global = true, env = "CARDINAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Pin the service key (base64 SPKI, or a PEM file) instead of trusting the one the server
    /// announces at GET /v1/service-key.
    #[arg(long, global = true, env = "CARDINAL_SERVICE_KEY")]
    pub service_key: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Generate an Ed25519 key pair; writes the private key as PKCS#8 PEM with mode 0600.
    #[command(after_help = "Example:\n  cardinal keygen --out alice.pem")]
    Keygen {
        /// Where to write the private key (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign and publish a card for your identity holding a key's public key.
    #[command(after_help = "Example:\n  CARDINAL_TOKEN=$(cardinal token …) cardinal publish --key alice.pem")]
    Publish {
        /// The private key whose public key the card holds.
        #[arg(long)]
        key: PathBuf,
        /// The identity (default: the token's subject).
        #[arg(long)]
        identity: Option<String>,
    },
    /// Rotate a card to a new key: publishes a card naming the old one as previous.
    #[command(after_help = "Example:\n  cardinal rotate --previous 6a3d…53c7 --key alice-2.pem")]
    Rotate {
        /// The card being replaced.
        #[arg(long)]
        previous: String,
        /// The new private key.
        #[arg(long)]
        key: PathBuf,
        /// The identity (default: the token's subject).
        #[arg(long)]
        identity: Option<String>,
    },
    /// Look up the active cards of identities (any number; verified before they are shown).
    #[command(
        after_help = "Examples:\n  cardinal lookup alice bob\n  cardinal lookup alice --json | jq '.alice[0].id'"
    )]
    Lookup {
        /// The identities.
        #[arg(required = true)]
        identities: Vec<String>,
        /// Pin the app's transparency log key: ask for proofs and verify every card's
        /// publication in the log, and the log's consistency with what was seen before.
        #[arg(long)]
        log_vkey: Option<String>,
        /// Where the newest verified checkpoint is kept across runs (with --log-vkey).
        #[arg(long)]
        log_state: Option<PathBuf>,
    },
    /// Revoke one of your cards (its whole chain).
    #[command(after_help = "Example:\n  cardinal revoke 6a3d…53c7 --reason 'lost my phone'")]
    Revoke {
        /// The card.
        card: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Admin commands (need an admin token).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Audit an app's transparency log: the checkpoint's signatures, every tile and (with a
    /// token) every entry, the root, consistency with the last run, the directory's rules.
    #[command(
        after_help = "Exit: 0 ok, 6 verification failed, 7 unreachable, 1 other.\nExample:\n  cardinal audit --url https://cards.example.com --app chat --vkey 'cards.example.com/tlog/chat+1a2b3c4d+AV…' --state audit.json"
    )]
    Audit {
        /// The app whose log it is.
        #[arg(long)]
        app: String,
        /// The log's verifier key (GET /v1/transparency; publish it out of band).
        #[arg(long)]
        vkey: String,
        /// A witness's cosignature vkey (repeat).
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// Valid cosignatures of those witnesses required.
        #[arg(long, default_value_t = 0)]
        quorum: usize,
        /// Where the last verified checkpoint is kept (a missing file is a first run).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Print every log entry about your identities since the last run (exactly the entry
    /// bytes, one per line); with --expect, exit 6 if one names a card not listed.
    #[command(
        after_help = "Example:\n  cardinal monitor --app chat --vkey … --identity alice --state alice.json --expect 6a3d…53c7"
    )]
    Monitor {
        /// The app whose log it is.
        #[arg(long)]
        app: String,
        /// The log's verifier key.
        #[arg(long)]
        vkey: String,
        /// An identity to watch (repeat).
        #[arg(long = "identity", required = true)]
        identities: Vec<String>,
        /// The cards you know of: any other card of a watched identity is an alarm (exit 6).
        #[arg(long, num_args = 1..)]
        expect: Vec<String>,
        /// A witness's cosignature vkey (repeat).
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// Valid cosignatures of those witnesses required.
        #[arg(long, default_value_t = 0)]
        quorum: usize,
        /// Where the last verified checkpoint is kept.
        #[arg(long)]
        state: PathBuf,
    },
    /// Verify a card file offline: its id, self signature and, with --service-key, the
    /// service countersignature.
    #[command(after_help = "Example:\n  cardinal verify card.json --service-key MCowBQYDK2VwAyEA…")]
    Verify {
        /// A RawSignedModel JSON, or a card as the API returns it.
        file: PathBuf,
    },
}

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Revoke any card's chain in your app, with a reason that the event log keeps.
    #[command(after_help = "Example:\n  cardinal admin revoke 6a3d…53c7 --reason 'employee left'")]
    Revoke {
        /// The card.
        card: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Read the event log, oldest first.
    #[command(
        after_help = "Examples:\n  cardinal admin events --after 100 --limit 50\n  cardinal admin events --follow"
    )]
    Events {
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Events per page.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Keep polling for new events.
        #[arg(long)]
        follow: bool,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        match &error {
            ClientError::Api { status, code, detail } => {
                let exit = match status {
                    401 | 403 => exit::AUTH,
                    404 => exit::NOT_FOUND,
                    409 => exit::CONFLICT,
                    500.. => exit::UNAVAILABLE,
                    _ => exit::FAILURE,
                };
                Failure { code: exit, message: format!("{} ({status}): {detail}{}", code.as_str(), hint(*code)) }
            }
            ClientError::Verification(_) | ClientError::Transparency(_) => {
                Failure { code: exit::VERIFICATION, message: error.to_string() }
            }
            ClientError::Transport(_) => Failure {
                code: exit::UNAVAILABLE,
                message: format!("{error} (is the server running at the --url given?)"),
            },
            ClientError::Token(_) | ClientError::InvalidInput(_) => {
                Failure { code: exit::FAILURE, message: error.to_string() }
            }
        }
    }
}

fn hint(code: ProblemCode) -> &'static str {
    match code {
        ProblemCode::TokenMissing => " — pass --token or set CARDINAL_TOKEN (mint one with `cardinal token`)",
        ProblemCode::TokenExpired => " — mint a fresh token with `cardinal token`",
        ProblemCode::TokenInvalid => " — check the token's key id, app and signing key (`cardinal key list`)",
        ProblemCode::IdentityTaken => {
            " — rotate the existing card with `cardinal rotate --previous <id>`, or revoke it first"
        }
        ProblemCode::IdentityMismatch => " — the card's identity must be the token's subject",
        ProblemCode::AlreadySuperseded => " — rotate the newest card of the chain instead (`cardinal lookup`)",
        ProblemCode::Forbidden => " — this needs the card owner's token, or an admin token for admin commands",
        _ => "",
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure { code: exit::FAILURE, message: message.into() }
}

/// `cardinal token inspect`: decodes `token` without trusting it and, with `ask_server`, asks
/// the server at `connection.url` (with an admin token) whether it would accept it and why not.
/// Exit 0 when it would be accepted, 3 when not.
pub fn inspect_token(token: &str, ask_server: bool, connection: &Connection) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(fail(format!("cannot start: {e}"))),
    };
    match runtime.block_on(inspect::inspect(token, ask_server, connection)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

/// Runs a client command; prints results on stdout and one error line on stderr.
pub fn run(command: ClientCommand, connection: Connection) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(fail(format!("cannot start: {e}"))),
    };
    match runtime.block_on(execute(command, &connection)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

fn report(failure: Failure) -> ExitCode {
    eprintln!("error: {}", failure.message.replace('\n', " "));
    ExitCode::from(failure.code)
}

fn client(connection: &Connection) -> Result<Client, Failure> {
    Ok(client_builder(connection)?.build()?)
}

fn client_builder(connection: &Connection) -> Result<cardinal_client::ClientBuilder, Failure> {
    let mut builder = Client::builder(&connection.url);
    if let Some(token) = &connection.token {
        builder = builder.token(token.trim());
    }
    builder = match &connection.service_key {
        Some(key) => builder.service_key(read_public_key(key)?),
        None => builder.trust_on_first_use(),
    };
    Ok(builder)
}

fn read_public_key(text_or_path: &str) -> Result<PublicKey, Failure> {
    let text = if Path::new(text_or_path).is_file() {
        std::fs::read_to_string(text_or_path).map_err(|e| fail(format!("{text_or_path}: {e}")))?
    } else {
        text_or_path.to_owned()
    };
    PublicKey::from_text(&text).map_err(|e| fail(format!("service key: {e}")))
}

fn read_private_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    SigningKey::from_text(&text).map_err(|e| fail(format!("{}: {e}", path.display())))
}

fn card_id(text: &str) -> Result<CardId, Failure> {
    text.parse().map_err(|_| fail(format!("{text:?} is not a card id (64 lowercase hex characters)")))
}

/// The token's subject, read without verification: only to default `--identity`. Virgil
/// tokens write it `identity-<identity>` under an issuer `virgil-<app>`.
fn token_subject(connection: &Connection) -> Option<String> {
    let token = connection.token.as_deref()?.trim();
    let claims = cardinal_card::b64::decode_url(token.split('.').nth(1)?)?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    let sub = claims["sub"].as_str()?;
    let virgil = claims["iss"].as_str().is_some_and(|iss| iss.starts_with("virgil-"));
    Some(if virgil { sub.strip_prefix("identity-").unwrap_or(sub) } else { sub }.to_owned())
}

fn identity(explicit: Option<String>, connection: &Connection) -> Result<String, Failure> {
    explicit
        .or_else(|| token_subject(connection))
        .ok_or_else(|| fail("pass --identity (or a token whose subject is the identity)"))
}

async fn execute(command: ClientCommand, connection: &Connection) -> Result<(), Failure> {
    let json = connection.json;
    match command {
        ClientCommand::Keygen { out } => {
            if out.exists() {
                return Err(fail(format!("{} exists; refusing to overwrite a private key", out.display())));
            }
            let key = SigningKey::generate();
            output::write_private_key(&out, &key).map_err(|e| fail(format!("{}: {e}", out.display())))?;
            output::keygen(&out, &key.public_key(), json);
        }
        ClientCommand::Publish { key, identity: who } => {
            let key = read_private_key(&key)?;
            let who = identity(who, connection)?;
            let card = client(connection)?.publish_new(&who, &key).await?;
            output::card(&card, json);
        }
        ClientCommand::Rotate { previous, key, identity: who } => {
            let key = read_private_key(&key)?;
            let who = identity(who, connection)?;
            let card = client(connection)?.rotate(&who, &card_id(&previous)?, &key).await?;
            output::card(&card, json);
        }
        ClientCommand::Lookup { identities, log_vkey, log_state } => {
            let found = match log_vkey {
                Some(vkey) => {
                    let mut builder = client_builder(connection)?.log_key(vkey);
                    if let Some(state) = log_state {
                        builder = builder.log_state_file(state);
                    }
                    builder.build()?.lookup(&identities).await?
                }
                None => client(connection)?.lookup(&identities).await?,
            };
            output::lookup(&found, json);
        }
        ClientCommand::Revoke { card, reason } => {
            let card = client(connection)?.revoke(&card_id(&card)?, reason.as_deref()).await?;
            output::card(&card, json);
        }
        ClientCommand::Admin(AdminCommand::Revoke { card, reason }) => {
            let card = client(connection)?.admin_revoke(&card_id(&card)?, &reason).await?;
            output::card(&card, json);
        }
        ClientCommand::Admin(AdminCommand::Events { mut after, limit, follow }) => {
            let client = client(connection)?;
            let mut header = !json;
            loop {
                let page = client.events(after, limit).await?;
                output::events(&page, json, header);
                header = false;
                let advanced = page.next > after;
                after = page.next;
                if !follow {
                    break;
                }
                if !advanced {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        ClientCommand::Audit { app, vkey, witnesses, quorum, state } => {
            let args = transparency::LogArgs { app: &app, vkey: &vkey, witnesses: &witnesses, quorum };
            transparency::audit(&client(connection)?, &args, connection.token.is_some(), state.as_ref()).await?;
        }
        ClientCommand::Monitor { app, vkey, identities, expect, witnesses, quorum, state } => {
            let args = transparency::LogArgs { app: &app, vkey: &vkey, witnesses: &witnesses, quorum };
            transparency::monitor(&client(connection)?, &args, &identities, &expect, &state).await?;
        }
        ClientCommand::Verify { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| fail(format!("{}: not JSON: {e}", file.display())))?;
            let raw_value = if value.get("raw").is_some() { value["raw"].clone() } else { value };
            let raw: RawSignedModel =
                serde_json::from_value(raw_value).map_err(|e| fail(format!("not a card: {e}")))?;
            let card = ParsedCard::parse_published(raw, &FormatLimits::default())
                .map_err(|e| Failure { code: exit::VERIFICATION, message: format!("the card does not verify: {e}") })?;
            let countersigned = match &connection.service_key {
                Some(key) => {
                    let key = read_public_key(key)?;
                    if !card.has_valid_countersignature(&key) {
                        return Err(Failure {
                            code: exit::VERIFICATION,
                            message: "the service countersignature is missing or does not verify with that key".into(),
                        });
                    }
                    Some(true)
                }
                None => None,
            };
            output::verified(&card, countersigned, json);
        }
    }
    Ok(())
}
