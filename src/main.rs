//! `cardinal`: the service and its administration commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cardinal_card::PublicKey;
use cardinal_server::apps::AppAdmin;
use cardinal_server::auth::jwt::{Claims, mint_eddsa};
use cardinal_server::backup::ServingLock;
use cardinal_server::clock::{self, Clock};
use cardinal_server::config::Settings;
use cardinal_server::domain::{AppId, CardsPerIdentity, KeyRole};
use cardinal_server::startup::{Application, open_store};
use cardinal_server::storage::Backend;
use cardinal_server::{manage, telemetry};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

// A lookup allocates many short-lived strings across worker threads; glibc's allocator spent a
// fifth of the CPU of a batch lookup in malloc/free (see BENCHMARKS.md), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cardinal: a self-hosted public-key directory (cards service).
/// The version, with the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CARDINAL_GIT_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "cardinal",
    version = VERSION,
    about = "Cardinal: a self-hosted public-key directory (cards service)",
    long_about = None,
    after_help = "Exit codes: 0 ok, 1 error, 2 usage, 3 not authenticated or not allowed, 4 not found, 5 conflict, 6 verification failed, 7 server unreachable or unavailable."
)]
struct Cli {
    /// A TOML file applied over the built-in defaults.
    #[arg(long, global = true, env = "CARDINAL_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    connection: cardinal_cli::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (SQLite under ./cardinal-data/ unless configured otherwise).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets masked.
    PrintConfig,
    /// Check a deployment: configuration, key files and their permissions, the database, its
    /// migrations, clock skew against it, the change listener; says what to fix. Exits 1 when
    /// a check fails.
    ///
    /// Example: CARDINAL_CONFIG=/etc/cardinal/production.toml cardinal doctor
    Doctor,
    /// Print a shell completion script.
    ///
    /// Example: cardinal completions bash > /etc/bash_completion.d/cardinal
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff). Example: cardinal man | man -l -
    Man,
    /// Write a consistent copy of the SQLite database while it serves, and verify it.
    ///
    /// PostgreSQL is backed up with pg_dump (README, "Backups and restores").
    /// Example: cardinal backup --out /backups/cardinal-2026-12-01.db
    Backup {
        /// The copy to write (owner-only; must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the SQLite database with a backup (the server must be stopped), after checking
    /// it; the replaced file is kept beside it. Renews the epoch.
    ///
    /// Example: cardinal restore --from /backups/cardinal-2026-12-01.db
    Restore {
        /// The backup to restore.
        #[arg(long)]
        from: PathBuf,
    },
    /// Print the database's epoch, or renew it (after restoring PostgreSQL with pg_restore, or
    /// promoting a replica to take over from a lost primary).
    Epoch {
        /// Give the database a new epoch.
        #[arg(long)]
        renew: bool,
    },
    /// Manage apps (tenants).
    #[command(subcommand)]
    App(AppCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Mint a token with an API private key, or inspect one (`cardinal token inspect`).
    ///
    /// Example: cardinal token --key cardinal-data/default-app-key.pem --kid KID --app default --identity alice
    Token(TokenCommand),
    /// A transparency witness (C2SP tlog-witness) of our own.
    #[command(subcommand)]
    Witness(WitnessCommand),
    #[command(flatten)]
    Client(cardinal_cli::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Serve add-checkpoint for the logs given, cosigning each checkpoint consistent with the
    /// last one it cosigned; exits on SIGTERM.
    ///
    /// Example: cardinal witness serve --key w.pem --name witness.example.org/w1 --listen 0.0.0.0:7380 --state w.db --log 'cards.example.com/tlog/chat=cards.example.com/tlog/chat+1a2b3c4d+AV…'
    Serve {
        /// Its Ed25519 key (PKCS#8 PEM, as `cardinal keygen` writes).
        #[arg(long)]
        key: PathBuf,
        /// Its name (the cosignature key name).
        #[arg(long)]
        name: String,
        /// `host:port`.
        #[arg(long)]
        listen: String,
        /// Its SQLite state file (created if missing).
        #[arg(long)]
        state: PathBuf,
        /// A log it witnesses: `ORIGIN=VKEY` (repeat).
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an app. Example: cardinal app create chat --cards-per-identity single
    Create {
        /// The app id (1 to 64 of A-Z a-z 0-9 - _ .).
        id: String,
        /// One live card chain per identity, or several.
        #[arg(long, value_enum)]
        cards_per_identity: Option<Policy>,
    },
    /// List apps.
    List,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Register a public key. Example: cardinal key add --app chat --role app --public-key backend.pub.pem
    Add {
        #[arg(long)]
        app: String,
        #[arg(long, value_enum)]
        role: Role,
        /// SPKI PEM, or base64 of SPKI DER or of the raw 32 bytes.
        #[arg(long)]
        public_key: PathBuf,
        /// The key id (default: random).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Generate a key pair, write the private key (PKCS#8 PEM, mode 0600) and register the
    /// public key. Example: cardinal key generate --app chat --role admin --out admin.pem
    Generate {
        #[arg(long)]
        app: String,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        kid: Option<String>,
    },
    /// List keys. Example: cardinal key list --app chat
    List {
        #[arg(long)]
        app: Option<String>,
    },
    /// Revoke a key; its tokens stop working within auth.credential_cache_ms (1 s).
    /// Example: cardinal key revoke KID
    Revoke { kid: String },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct TokenCommand {
    #[command(subcommand)]
    action: Option<TokenAction>,
    #[command(flatten)]
    mint: TokenArgs,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Decode a token without trusting it and say what is wrong with it; with --url (and an
    /// admin token of its app in --token), ask the server whether it would accept it and why
    /// not. Exits 0 when it would be accepted, 3 when not.
    ///
    /// Example: cardinal token inspect "$TOKEN" --url "$CARDINAL_URL" --token "$ADMIN_TOKEN"
    Inspect {
        /// The token: a bare JWT, or `Bearer …` / `Virgil …` as sent. (Not named `token`: that
        /// is the global --token, the admin's own.)
        #[arg(value_name = "TOKEN")]
        inspected: String,
    },
}

// Optional only so that `token inspect` needs none of them; clap still requires them for minting.
#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The API private key (PKCS#8 PEM or base64 DER).
    #[arg(long, required = true)]
    key: Option<PathBuf>,
    /// Its key id.
    #[arg(long, required = true)]
    kid: Option<String>,
    /// The app id.
    #[arg(long, required = true)]
    app: Option<String>,
    /// The identity (or, for an admin key, the admin's name).
    #[arg(long, required = true)]
    identity: Option<String>,
    /// Lifetime, e.g. 1h, 30m, 3600s.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// Bearer (EdDSA JWT) or Virgil (VEDS512 JWT, for Virgil SDKs).
    #[arg(long, value_enum, default_value = "bearer")]
    scheme: Scheme,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    Single,
    Multiple,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    App,
    Admin,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scheme {
    Bearer,
    Virgil,
}

impl From<Role> for KeyRole {
    fn from(role: Role) -> Self {
        match role {
            Role::App => KeyRole::App,
            Role::Admin => KeyRole::Admin,
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let Command::Client(command) = cli.command {
        return cardinal_cli::run(command, cli.connection);
    }
    if let Command::Token(TokenCommand { action: Some(TokenAction::Inspect { inspected }), .. }) = &cli.command {
        let url_given = matches!(
            matches.value_source("url"),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        );
        return cardinal_cli::inspect_token(inspected, url_given, &cli.connection);
    }
    if let Command::Completions { shell } = cli.command {
        let shell = match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "cardinal", &mut script);
        return print_bytes(&script);
    }
    if let Command::Man = cli.command {
        let mut page = Vec::new();
        if let Err(error) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
        return print_bytes(&page);
    }
    if let Command::Doctor = cli.command {
        return doctor(cli.config.as_deref(), cli.connection.json);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn witness_serve(
    key: &std::path::Path,
    name: &str,
    listen: &str,
    state: &std::path::Path,
    logs: &[String],
) -> anyhow::Result<()> {
    use cardinal_server::transparency::witness::{Witness, serve};
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = cardinal_server::manage::read_private_key(key)?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&key.to_pkcs8_der()).context("the witness key")?;
    let mut vkeys = Vec::new();
    for log in logs {
        let (origin, vkey) = log.split_once('=').context("--log takes ORIGIN=VKEY")?;
        let vkey =
            cardinal_card::tlog::VerifierKey::parse(vkey).with_context(|| format!("--log {origin}: the vkey"))?;
        if vkey.name != origin || vkey.kind != cardinal_card::tlog::ED25519_TYPE {
            bail!("--log {origin}: the vkey must be an Ed25519 note key named {origin}");
        }
        vkeys.push(vkey);
    }
    let witness = Witness::open(name, key, vkeys, state).await?;
    serve(witness, listen).await
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Token(TokenCommand { mint: args, .. }) = &cli.command {
        println!("{}", mint(args)?);
        return Ok(());
    }
    if let Command::Witness(WitnessCommand::Serve { key, name, listen, state, logs }) = &cli.command {
        telemetry::init(&cardinal_server::config::LogSettings {
            format: cardinal_server::config::LogFormat::Pretty,
            level: "info".into(),
        });
        return actix_web::rt::System::new().block_on(witness_serve(key, name, listen, state, logs));
    }
    let settings = Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    if let Command::PrintConfig = cli.command {
        println!("{settings:#?}");
        return Ok(());
    }
    telemetry::init(&settings.log);
    let json = cli.connection.json;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve => actix_web::rt::System::new().block_on(async move {
            let app =
                Application::build_with(settings, cardinal_server::clock::system(), Some(cardinal_client::http_post()))
                    .await?;
            app.run_until_stopped().await?;
            Ok(())
        }),
        Command::Backup { out } => runtime.block_on(backup(&settings, &out, json)),
        Command::Restore { from } => runtime.block_on(async {
            let url = settings.database.exposed_url();
            if Backend::of_url(url) != Some(Backend::Sqlite) {
                bail!("cardinal restore replaces an SQLite file; restore PostgreSQL with pg_restore, then run `cardinal epoch --renew` (README, \"Backups and restores\")");
            }
            let spinner = progress(&format!("checking and restoring {}", from.display()), json);
            let restored = cardinal_server::backup::restore(url, &from).await;
            if let Some(spinner) = spinner {
                spinner.finish_and_clear();
            }
            let (census, replaced) = restored?;
            println!(
                "restored {} ({} apps, {} events, every chain verified); new epoch {}",
                from.display(),
                census.apps,
                census.events,
                census.epoch
            );
            if let Some(replaced) = replaced {
                println!("the replaced database is kept as {}", replaced.display());
            }
            Ok(())
        }),
        command => runtime.block_on(admin(command, settings, json)),
    }
}

async fn backup(settings: &Settings, out: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let url = settings.database.exposed_url();
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => {}
        _ => bail!(
            "cardinal backup copies an SQLite database; back PostgreSQL up with pg_dump (README, \"Backups and restores\")"
        ),
    }
    let file = cardinal_server::storage::sql::sqlite_file(url)?;
    if !file.exists() {
        bail!("there is no database at {}", file.display());
    }
    let _serving = ServingLock::shared(url)?;
    let store = cardinal_server::storage::connect(url, &settings.database.pool()).await?;
    let spinner = progress(&format!("backing up to {}", out.display()), json);
    let census = cardinal_server::backup::back_up(store.as_ref(), out).await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    store.close().await;
    let census = census?;
    println!(
        "backed up to {} ({} apps, {} events, every chain verified; epoch {})",
        out.display(),
        census.apps,
        census.events,
        census.epoch
    );
    Ok(())
}

async fn admin(command: Command, settings: Settings, json: bool) -> anyhow::Result<()> {
    let _serving = ServingLock::shared(settings.database.exposed_url())?;
    let spinner = progress("opening the database and applying migrations", json);
    let store = open_store(&settings).await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let store = store?;
    let store = store.as_ref();
    let clock = clock::system();
    let apps = AppAdmin::new(store, clock.as_ref());
    match command {
        Command::Migrate => println!("migrations applied"),
        Command::Epoch { renew: false } => println!("{}", store.epoch().await?),
        Command::Epoch { renew: true } => println!("new epoch {}", store.renew_epoch().await?),
        Command::App(AppCommand::Create { id, cards_per_identity }) => {
            let policy = match cards_per_identity {
                Some(Policy::Single) => CardsPerIdentity::Single,
                Some(Policy::Multiple) => CardsPerIdentity::Multiple,
                None => settings.apps.cards_per_identity,
            };
            let app = apps.create_app(&id, policy, "cli").await.with_context(|| format!("creating app {id}"))?;
            println!("created app {} (cards_per_identity = {})", app.id, app.cards_per_identity.as_str());
        }
        Command::App(AppCommand::List) => {
            println!("{:<24} {:<18} CREATED", "APP", "CARDS_PER_IDENTITY");
            for app in store.list_apps().await? {
                println!("{:<24} {:<18} {}", app.id, app.cards_per_identity.as_str(), timestamp(app.created_at));
            }
        }
        Command::Key(KeyCommand::Add { app, role, public_key, kid }) => {
            let text =
                std::fs::read_to_string(&public_key).with_context(|| format!("reading {}", public_key.display()))?;
            let key = PublicKey::from_text(&text)
                .with_context(|| format!("{} is not an Ed25519 public key", public_key.display()))?;
            let record = apps.add_key(&app, role.into(), &key, kid, "cli").await?;
            println!("added {} key {} to app {}", record.role.as_str(), record.kid, record.app_id);
        }
        Command::Key(KeyCommand::Generate { app, role, out, kid }) => {
            if out.exists() {
                bail!("{} exists; refusing to overwrite a private key", out.display());
            }
            let key = cardinal_card::SigningKey::generate();
            manage::write_private_key(&out, &key)?;
            let record = apps.add_key(&app, role.into(), &key.public_key(), kid, "cli").await?;
            println!(
                "generated {} key {} for app {}; private key in {}",
                record.role.as_str(),
                record.kid,
                record.app_id,
                out.display()
            );
        }
        Command::Key(KeyCommand::List { app }) => {
            println!("{:<34} {:<16} {:<6} {:<22} REVOKED", "KID", "APP", "ROLE", "CREATED");
            let app = app.as_deref().map(AppId::parse).transpose()?;
            for key in store.list_api_keys(app.as_ref()).await? {
                let revoked = key.revoked_at.map_or_else(|| "-".to_owned(), timestamp);
                println!(
                    "{:<34} {:<16} {:<6} {:<22} {revoked}",
                    key.kid,
                    key.app_id,
                    key.role.as_str(),
                    timestamp(key.created_at)
                );
            }
        }
        Command::Key(KeyCommand::Revoke { kid }) => {
            if apps.revoke_key(&kid, "cli").await? {
                println!("revoked key {kid}");
            } else {
                println!("key {kid} was already revoked");
            }
        }
        Command::Serve
        | Command::PrintConfig
        | Command::Doctor
        | Command::Completions { .. }
        | Command::Man
        | Command::Token(_)
        | Command::Client(_)
        | Command::Witness(_)
        | Command::Backup { .. }
        | Command::Restore { .. } => {}
    }
    store.close().await;
    Ok(())
}

/// Writes generated text to stdout; a reader that stops early (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Unix seconds as UTC RFC 3339, for tables.
fn timestamp(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| secs.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// `cardinal doctor`: one line per check, and what to do; exit 1 when any check fails.
fn doctor(config: Option<&std::path::Path>, json: bool) -> ExitCode {
    use cardinal_server::doctor::{Finding, Verdict};
    let findings = match Settings::load(config) {
        Err(error) => vec![Finding {
            check: "configuration",
            verdict: Verdict::Fail,
            detail: format!("{error:#}"),
            fix: Some("fix the file named by --config / CARDINAL_CONFIG, or the CARDINAL_* variables".into()),
        }],
        Ok(settings) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(cardinal_server::doctor::examine(&settings)),
            Err(error) => {
                eprintln!("error: cannot start: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    for finding in &findings {
        if json {
            println!("{}", serde_json::to_string(finding).unwrap_or_default());
            continue;
        }
        let verdict = match finding.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        println!("{verdict}  {:<15} {}", finding.check, finding.detail);
        if let Some(fix) = &finding.fix {
            println!("      {:<15} fix: {fix}", "");
        }
    }
    if findings.iter().any(|finding| finding.verdict == Verdict::Fail) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// A spinner on stderr while a long operation runs, when a person watches (a terminal, and
/// not --json); nothing in scripts.
fn progress(message: &str, json: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner().with_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(100));
    Some(spinner)
}

fn mint(args: &TokenArgs) -> anyhow::Result<String> {
    let (Some(key), Some(kid), Some(app), Some(identity)) = (&args.key, &args.kid, &args.app, &args.identity) else {
        bail!("minting needs --key, --kid, --app and --identity");
    };
    let key = manage::read_private_key(key)?;
    let ttl: Duration = args.ttl.into();
    let iat = clock::SystemClock.unix();
    let exp = iat + i64::try_from(ttl.as_secs()).context("ttl is too long")?;
    Ok(match args.scheme {
        Scheme::Bearer => {
            let claims = Claims { iss: app.clone(), sub: identity.clone(), iat, exp, nbf: None };
            mint_eddsa(&key, kid, &claims).context("signing the token")?
        }
        Scheme::Virgil => cardinal_card::virgil_jwt::sign(&key, kid, app, identity, iat, exp),
    })
}
