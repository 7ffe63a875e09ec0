//! `cardinal-bench`: seeds a directory and prepares the requests `bench/run` replays with wrk.
//!
//! `seed` writes N identities through the real storage layer (so every card is signed,
//! countersigned and logged exactly as a publish would), 10 % of them with a rotated chain and
//! 1 % revoked. `requests` writes, for a running server, the lookup batches with their current
//! ETags, single-identity lookups, and fresh signed cards with their tokens for the publish run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cardinal_card::card::{CardBuilder, countersign};
use cardinal_card::log::EventKind;
use cardinal_card::{CardId, FormatLimits, Identity, ParsedCard, SigningKey};
use cardinal_server::apps::AppAdmin;
use cardinal_server::auth::jwt::{Claims, mint_eddsa};
use cardinal_server::clock::SystemClock;
use cardinal_server::domain::{AppId, CardsPerIdentity, KeyRole};
use cardinal_server::manage;
use cardinal_server::storage::{self, EventDraft, NewCard, Placement, PoolSettings, Revocation, Store};
use clap::{Parser, Subcommand};
use futures_util::{StreamExt, stream};
use rand::Rng;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed `--identities` identities into the database (app `bench`), keys into `--dir`.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        identities: usize,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write the request files for a running server seeded with `--identities`.
    Requests {
        #[arg(long)]
        url: String,
        #[arg(long)]
        identities: usize,
        #[arg(long)]
        dir: PathBuf,
        /// Fresh cards to prepare for the publish run.
        #[arg(long, default_value_t = 60_000)]
        publishes: usize,
    },
}

const APP: &str = "bench";
const KID: &str = "bench-app";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn app_id() -> AppId {
    AppId::parse(APP).expect("the bench app id is valid")
}

fn event(kind: EventKind, card: &CardId, identity: &Identity) -> EventDraft {
    EventDraft {
        kind,
        at_ms: now() * 1000,
        card_id: Some(card.clone()),
        identity: Some(identity.clone()),
        actor: format!("user:{identity}"),
        detail: BTreeMap::new(),
    }
}

fn signed(
    identity: &Identity,
    previous: Option<&CardId>,
    service: &SigningKey,
) -> anyhow::Result<(ParsedCard, NewCard)> {
    let key = SigningKey::generate();
    let mut builder = CardBuilder::new(identity.clone(), &key, now());
    if let Some(previous) = previous {
        builder = builder.previous(previous.clone());
    }
    let (_, raw) = builder.build();
    let parsed = ParsedCard::parse(raw, &FormatLimits::default())?;
    let mut countersigned = parsed.raw.clone();
    countersign(&mut countersigned, &parsed.snapshot, service);
    let new = NewCard {
        app_id: app_id(),
        id: parsed.id.clone(),
        identity: identity.clone(),
        chain_index: i64::from(previous.is_some()),
        created_at: parsed.content.created_at,
        published_at: now(),
        public_key: parsed.content.public_key_base64.clone(),
        raw: serde_json::to_string(&countersigned)?,
    };
    Ok((parsed, new))
}

async fn seed_identity(store: &dyn Store, service: &SigningKey, n: usize) -> anyhow::Result<()> {
    let identity = Identity::parse(&format!("u{n}"))?;
    let (root, card) = signed(&identity, None, service)?;
    store
        .insert_card(
            &card,
            &Placement::Root { exclusive: true, max_live_chains: 1 },
            &[event(EventKind::CardPublished, &card.id, &identity)],
        )
        .await?;
    if n.is_multiple_of(10) {
        let (_, next) = signed(&identity, Some(&root.id), service)?;
        let placement = Placement::Successor { chain_id: card.id.clone(), previous_card_id: card.id.clone() };
        store
            .insert_card(
                &next,
                &placement,
                &[
                    event(EventKind::CardPublished, &next.id, &identity),
                    event(EventKind::CardSuperseded, &card.id, &identity),
                ],
            )
            .await?;
    }
    if n % 100 == 1 {
        let revocation = Revocation {
            app_id: app_id(),
            chain_id: card.id.clone(),
            identity: identity.clone(),
            at: now(),
            reason: Some("bench".into()),
            by: format!("user:{identity}"),
        };
        store.revoke_chain(&revocation, event(EventKind::ChainRevoked, &card.id, &identity)).await?;
    }
    Ok(())
}

async fn seed(database_url: &str, identities: usize, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let pool = PoolSettings::simple(16, std::time::Duration::from_secs(30));
    let store: Arc<dyn Store> = storage::connect(database_url, &pool).await?;
    store.migrate().await?;
    let service = SigningKey::generate();
    manage::write_private_key(&dir.join("service-key.pem"), &service)?;
    let admin = AppAdmin::new(store.as_ref(), &SystemClock);
    admin.create_app(APP, CardsPerIdentity::Single, "bench").await?;
    let app_key = SigningKey::generate();
    manage::write_private_key(&dir.join("app-key.pem"), &app_key)?;
    admin.add_key(APP, KeyRole::App, &app_key.public_key(), Some(KID.into()), "bench").await?;
    let started = std::time::Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter((0..identities).map(|n| {
        let (store, service) = (store.clone(), service.clone());
        async move { seed_identity(store.as_ref(), &service, n).await }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    for result in results {
        result?;
    }
    eprintln!("seeded {identities} identities in {:.1} s", started.elapsed().as_secs_f64());
    store.close().await;
    Ok(())
}

fn token(key: &SigningKey, identity: &str) -> anyhow::Result<String> {
    Ok(mint_eddsa(
        key,
        KID,
        &Claims { iss: APP.into(), sub: identity.into(), iat: now(), exp: now() + 86_000, nbf: None },
    )?)
}

async fn requests(url: &str, identities: usize, dir: &std::path::Path, publishes: usize) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = manage::read_private_key(&dir.join("app-key.pem"))?;
    let reader = token(&key, "bench-reader")?;
    std::fs::write(dir.join("token"), &reader)?;
    let mut rng = rand::thread_rng();
    let client = reqwest::Client::new();
    let (mut lookups, mut etags, mut singles) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..1000 {
        let query: Vec<String> = (0..50).map(|_| format!("identity=u{}", rng.gen_range(0..identities))).collect();
        let path = format!("/v1/cards?{}", query.join("&"));
        let response = client.get(format!("{url}{path}")).bearer_auth(&reader).send().await?;
        anyhow::ensure!(response.status().is_success(), "seeded lookup failed: {}", response.status());
        let etag = response.headers().get("etag").context("an ETag")?.to_str()?.to_owned();
        lookups.push(path);
        etags.push(etag);
        singles.push(format!("/v1/cards?identity=u{}", rng.gen_range(0..identities)));
    }
    std::fs::write(dir.join("lookups.txt"), lookups.join("\n") + "\n")?;
    std::fs::write(dir.join("etags.txt"), etags.join("\n") + "\n")?;
    std::fs::write(dir.join("singles.txt"), singles.join("\n") + "\n")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("publish.txt"))?);
    for j in 0..publishes {
        let identity = format!("p{j}");
        let signing = SigningKey::generate();
        let (_, raw) = CardBuilder::new(Identity::parse(&identity)?, &signing, now()).build();
        writeln!(out, "{}\t{}", token(&key, &identity)?, serde_json::to_string(&raw)?)?;
    }
    out.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed { database_url, identities, dir } => seed(&database_url, identities, &dir).await,
        Command::Requests { url, identities, dir, publishes } => requests(&url, identities, &dir, publishes).await,
    }
}
