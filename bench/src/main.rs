//! `cardinal-bench`: seeds a directory and prepares the requests `bench/run` replays with wrk.
//!
//! `seed` writes N identities through the real storage layer (so every card is signed,
//! countersigned and logged exactly as a publish would), 10 % of them with a rotated chain and
//! 1 % revoked. `requests` writes, for a running server, the lookup batches with their current
//! ETags, single-identity lookups (uniform and Zipf), Zipf batches, and for each publish scenario
//! its own fresh signed cards with their tokens, on identities no run has published before.

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
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

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
        /// Continue an interrupted seed in `dir`: its keys, and only the identities missing.
        #[arg(long)]
        resume: bool,
    },
    /// Write the request files for a running server seeded with `--identities`.
    Requests {
        #[arg(long)]
        url: String,
        #[arg(long)]
        identities: usize,
        #[arg(long)]
        dir: PathBuf,
        /// Fresh cards to prepare for each publish scenario without a count of its own.
        #[arg(long, default_value_t = 60_000)]
        publishes: usize,
        /// The publish scenarios, `name[:count]`: each gets `<name>.txt` with its own identities.
        #[arg(long, value_delimiter = ',', default_value = "publish")]
        publish_sets: Vec<String>,
        /// The Zipf exponent of the `*_zipf.txt` lookups.
        #[arg(long, default_value_t = ZIPF_EXPONENT)]
        zipf_exponent: f64,
    },
}

const APP: &str = "bench";
const KID: &str = "bench-app";
/// 1.01 rather than 1.0: pgbench's `random_zipfian` (the ceilings) requires s > 1.
const ZIPF_EXPONENT: f64 = 1.01;
/// Fixed, so a size always has the same hot identities.
const ZIPF_SEED: u64 = 0x5eed_0f21;
/// Single-identity lookups per file (uniform and Zipf), and Zipf batches.
const SINGLES: usize = 100_000;
const ZIPF_BATCHES: usize = 10_000;
const BATCH: usize = 50;

/// Zipf over `n` identities by inverse CDF: rank k (1-based) has weight k^-s; ranks map to
/// identities through a fixed shuffle, so the hot ones are spread over the seeding order.
struct Zipf {
    cdf: Vec<f64>,
    identity_of_rank: Vec<usize>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += (k as f64).powf(-s);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= total);
        let mut identity_of_rank: Vec<usize> = (0..n).collect();
        identity_of_rank.shuffle(&mut StdRng::seed_from_u64(ZIPF_SEED));
        Self { cdf, identity_of_rank }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.gen_range(0.0..1.0);
        self.identity_of_rank[self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)]
    }
}

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

async fn seed(database_url: &str, identities: usize, dir: &std::path::Path, resume: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let pool = PoolSettings::simple(16, std::time::Duration::from_secs(30));
    let store: Arc<dyn Store> = storage::connect(database_url, &pool).await?;
    store.migrate().await?;
    let (service, todo) = if resume {
        let service = manage::read_private_key(&dir.join("service-key.pem"))?;
        let app = AppId::parse(APP)?;
        let mut todo = Vec::new();
        let all: Vec<usize> = (0..identities).collect();
        for chunk in all.chunks(1000) {
            let names: Vec<Identity> =
                chunk.iter().map(|n| Identity::parse(&format!("u{n}"))).collect::<Result<_, _>>()?;
            let seeded: std::collections::HashSet<Identity> =
                store.identity_states(&app, &names).await?.into_iter().map(|(identity, _)| identity).collect();
            todo.extend(chunk.iter().zip(&names).filter(|(_, name)| !seeded.contains(*name)).map(|(n, _)| *n));
        }
        eprintln!("resuming: {} of {identities} identities to seed", todo.len());
        (service, todo)
    } else {
        let service = SigningKey::generate();
        manage::write_private_key(&dir.join("service-key.pem"), &service)?;
        let admin = AppAdmin::new(store.as_ref(), &SystemClock);
        admin.create_app(APP, CardsPerIdentity::Single, "bench").await?;
        let app_key = SigningKey::generate();
        manage::write_private_key(&dir.join("app-key.pem"), &app_key)?;
        admin.add_key(APP, KeyRole::App, &app_key.public_key(), Some(KID.into()), "bench").await?;
        (service, (0..identities).collect())
    };
    let started = std::time::Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter(todo.into_iter().map(|n| {
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

fn lines(paths: &[String]) -> String {
    paths.join("\n") + "\n"
}

/// `count` fresh cards with their identities' tokens, on identities `<prefix><j>`, generated on
/// every core.
fn publish_lines(key: &SigningKey, prefix: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                scope.spawn(move || -> anyhow::Result<Vec<String>> {
                    (start..(start + chunk).min(count))
                        .map(|j| {
                            let identity = format!("{prefix}{j}");
                            let signing = SigningKey::generate();
                            let (_, raw) = CardBuilder::new(Identity::parse(&identity)?, &signing, now()).build();
                            Ok(format!("{}\t{}", token(key, &identity)?, serde_json::to_string(&raw)?))
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for handle in handles {
            all.extend(handle.join().map_err(|_| anyhow::anyhow!("a generator thread panicked"))??);
        }
        Ok(all)
    })
}

async fn requests(
    url: &str,
    identities: usize,
    dir: &std::path::Path,
    publishes: usize,
    publish_sets: &[String],
    zipf_exponent: f64,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = manage::read_private_key(&dir.join("app-key.pem"))?;
    let reader = token(&key, "bench-reader")?;
    std::fs::write(dir.join("token"), &reader)?;
    let mut rng = rand::thread_rng();
    let client = reqwest::Client::new();
    let (mut lookups, mut etags) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let query: Vec<String> = (0..BATCH).map(|_| format!("identity=u{}", rng.gen_range(0..identities))).collect();
        let path = format!("/v1/cards?{}", query.join("&"));
        let response = client.get(format!("{url}{path}")).bearer_auth(&reader).send().await?;
        anyhow::ensure!(response.status().is_success(), "seeded lookup failed: {}", response.status());
        let etag = response.headers().get("etag").context("an ETag")?.to_str()?.to_owned();
        lookups.push(path);
        etags.push(etag);
    }
    std::fs::write(dir.join("lookups.txt"), lines(&lookups))?;
    std::fs::write(dir.join("etags.txt"), lines(&etags))?;
    let singles: Vec<String> =
        (0..SINGLES).map(|_| format!("/v1/cards?identity=u{}", rng.gen_range(0..identities))).collect();
    std::fs::write(dir.join("singles.txt"), lines(&singles))?;
    // Zipf: the draws are random, the distribution (and so the hot identities) fixed.
    let zipf = Zipf::new(identities, zipf_exponent);
    let singles: Vec<String> = (0..SINGLES).map(|_| format!("/v1/cards?identity=u{}", zipf.sample(&mut rng))).collect();
    std::fs::write(dir.join("singles_zipf.txt"), lines(&singles))?;
    let mut batches = Vec::with_capacity(ZIPF_BATCHES);
    for _ in 0..ZIPF_BATCHES {
        let mut picked = std::collections::BTreeSet::new();
        let mut query = Vec::with_capacity(BATCH);
        while query.len() < BATCH.min(identities) {
            let n = zipf.sample(&mut rng);
            if picked.insert(n) {
                query.push(format!("identity=u{n}"));
            }
        }
        batches.push(format!("/v1/cards?{}", query.join("&")));
    }
    std::fs::write(dir.join("lookups_zipf.txt"), lines(&batches))?;
    // Fresh identities for every publish scenario of every run: this run's time in the prefix.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    for (n, set) in publish_sets.iter().enumerate() {
        let (set, publishes) = match set.split_once(':') {
            Some((name, count)) => (name, count.parse().context("a publish set's count")?),
            None => (set.as_str(), publishes),
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{set}.txt")))?);
        for line in publish_lines(&key, &format!("p{run}.{n}."), publishes)? {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed { database_url, identities, dir, resume } => seed(&database_url, identities, &dir, resume).await,
        Command::Requests { url, identities, dir, publishes, publish_sets, zipf_exponent } => {
            requests(&url, identities, &dir, publishes, &publish_sets, zipf_exponent).await
        }
    }
}
