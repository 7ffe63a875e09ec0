//! Building and running the service from its settings.

use std::net::TcpListener;
use std::sync::Arc;

use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Condition, DefaultHeaders, Next, NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use actix_web_prom::PrometheusMetricsBuilder;
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::admin::{Admin, AdminLimits};
use crate::auth::{Authenticator, CacheSettings, TokenPolicy};
use crate::backup::ServingLock;
use crate::clock::{self, Clock};
use crate::config::{CorsSettings, DEFAULT_ORIGIN_PREFIX, Settings};
use crate::directory::{AnswerCache, Directory, Rules, VersionCache};
use crate::error::ApiError;
use crate::keyknox::Keyknox;
use crate::manage;
use crate::metrics::Metrics;
use crate::pythia::Brainkeys;
use crate::ratelimit::{RateLimiter, Surface};
use crate::routes::health::Readiness;
use crate::routes::keyknox::KeyknoxBodyLimit;
use crate::routes::openapi::{Document, DocumentLimits};
use crate::routes::{self, BodyLimit};
use crate::storage::sql::{QUEUE_SWEEP, sweep_queue};
use crate::storage::{self, Backend, Store};
use crate::telemetry;
use crate::transparency::{self, LogSetup, Transparency};

/// A bound, ready-to-run service.
pub struct Application {
    port: u16,
    server: Server,
    metrics_server: Option<Server>,
    metrics_port: Option<u16>,
    housekeeping: tokio::task::JoinHandle<()>,
    /// Listens for changes to keep the version cache coherent, when there is one, and measures
    /// the read replicas' freshness, when there are some.
    watchers: Vec<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
    /// Keeps a restore from replacing the SQLite file while this server uses it.
    serving: Option<ServingLock>,
}

/// Opens the configured store and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = storage::connect(settings.database.url.expose_secret(), &settings.database.pool())
        .await
        .context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

impl Application {
    /// Opens the store, migrates, loads the service key, bootstraps, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, clock::system()).await
    }

    /// The same, telling time by `clock` (tests move it instead of sleeping).
    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        Self::build_with(settings, clock, None).await
    }

    /// The same, with the HTTP client that sends checkpoints to witnesses (the server crate
    /// compiles none; without one, witnesses are configured but not contacted).
    pub async fn build_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        post: Option<transparency::Post>,
    ) -> anyhow::Result<Application> {
        let serving = ServingLock::shared(settings.database.url.expose_secret())?;
        let store = open_store(&settings).await?;
        let service_key = manage::load_service_key(&settings.service)?;
        // Only a deployment that serves Pythia needs (and creates) its secret.
        let pythia_secret =
            if settings.pythia.enabled { Some(crate::pythia::load_secret(&settings.pythia)?) } else { None };
        manage::bootstrap(store.as_ref(), clock.as_ref(), &settings).await?;
        // Events a crash left queued (committed changes whose round never ran) go into the log
        // before anything is served.
        sweep_queue(store.as_ref()).await;
        let log = open_log(&settings, store.clone(), &service_key, clock.clone(), post).await?;
        let listener = bind_with_backlog(&settings.server.listen, settings.server.backlog)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let mut app = Self::serve(settings, store, service_key, pythia_secret, log, listener, clock)?;
        app.serving = serving;
        Ok(app)
    }

    fn serve(
        settings: Settings,
        store: Arc<dyn Store>,
        service_key: cardinal_card::SigningKey,
        pythia_secret: Option<cardinal_pythia::Secret>,
        log: Option<Arc<Transparency>>,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        let rules = Rules {
            format: settings.limits.format(),
            identities_per_lookup: settings.limits.identities_per_lookup,
            reason_max_bytes: settings.limits.reason_max_bytes,
            events_page_max: settings.limits.events_page_max,
            live_chains_per_identity: settings.limits.live_chains_per_identity.max(1),
            search_cards_per_chain: settings.limits.search_cards_per_chain.max(1),
            answer_bytes: settings.limits.answer_bytes,
        };
        let policy = TokenPolicy {
            max_lifetime_secs: settings.auth.max_token_lifetime_secs,
            clock_skew_secs: settings.auth.clock_skew_secs,
            max_token_bytes: settings.limits.token_max_bytes,
        };
        let admin = web::Data::new(Admin::new(
            store.clone(),
            clock.clone(),
            service_key.public_key(),
            AdminLimits { format: settings.limits.format(), ..AdminLimits::default() },
        ));
        let mut directory = Directory::new(store.clone(), service_key, rules, clock.clone());
        let mut watchers = Vec::new();
        if settings.cache.identity_versions > 0 && store.backend() == Backend::Postgres {
            let trust = Duration::from_millis(settings.cache.identity_versions_trust_ms.max(1));
            let cache = Arc::new(VersionCache::new(settings.cache.identity_versions, trust));
            directory = directory.with_version_cache(cache.clone());
            let feed = store.clone();
            watchers.push(tokio::spawn(async move {
                feed.watch_changes(cache.probe_every(), &|heard| cache.hear(heard)).await;
            }));
        }
        let answers = if settings.cache.answer_bytes > 0 {
            let cache =
                Arc::new(AnswerCache::new(settings.cache.answer_bytes).map_err(|e| anyhow::anyhow!("metrics: {e}"))?);
            directory =
                directory.with_answer_cache(cache.clone()).with_replicas(!settings.database.replica_urls.is_empty());
            Some(cache)
        } else {
            None
        };
        let tracked = store.clone();
        watchers.push(tokio::spawn(async move { tracked.track_replicas().await }));
        let directory = web::Data::new(directory);
        let keyknox_limits = settings.limits.keyknox();
        let keyknox = web::Data::new(Keyknox::new(store.clone(), keyknox_limits, clock.clone()));
        let keyknox_body = web::Data::new(KeyknoxBodyLimit(BodyLimit {
            bytes: keyknox_limits.body_bytes().max(settings.limits.body_bytes),
            timeout: Duration::from_millis(settings.server.request_body_timeout_ms),
        }));
        let authenticator = web::Data::new(Authenticator::new(
            store.clone(),
            policy,
            CacheSettings {
                window: Duration::from_millis(settings.auth.credential_cache_ms),
                max_tokens: settings.auth.credential_cache_tokens,
            },
            clock,
        ));
        let document = web::Data::new(
            Document::new(&DocumentLimits {
                identity_max_bytes: settings.limits.format().max_identity_bytes,
                identities_per_lookup: settings.limits.identities_per_lookup,
                events_page_max: settings.limits.events_page_max,
                reason_max_bytes: settings.limits.reason_max_bytes,
                pythia_brainkey_id_max_bytes: settings.pythia.enabled.then_some(settings.pythia.brainkey_id_max_bytes),
            })
            .context("building the OpenAPI document")?,
        );
        let brainkeys = pythia_secret.map(|secret| web::Data::new(Brainkeys::new(secret, &settings.pythia)));
        let pythia_enabled = brainkeys.is_some();
        let header_limit = web::Data::new(HeaderLimit(settings.limits.header_bytes));
        let body_limit = web::Data::new(BodyLimit {
            bytes: settings.limits.body_bytes,
            timeout: Duration::from_millis(settings.server.request_body_timeout_ms),
        });
        let readiness = web::Data::new(Readiness {
            database: store.clone(),
            timeout: Duration::from_millis(settings.database.readiness_timeout_ms),
        });
        let metrics = web::Data::new(Metrics::new(store.clone()).map_err(|e| anyhow::anyhow!("metrics: {e}"))?);
        if let Some(answers) = &answers {
            for counter in [&answers.hits, &answers.misses] {
                metrics.registry.register(Box::new(counter.clone())).map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            }
            let bytes = crate::directory::AnswerCacheBytes::new(answers.clone(), settings.cache.answer_bytes)
                .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            metrics.registry.register(Box::new(bytes)).map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        }
        if let Some(log) = &log {
            metrics
                .registry
                .register(Box::new(log.inconsistent_counter()))
                .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            metrics
                .registry
                .register(Box::new(log.submissions_counter()))
                .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
            let signer = log.clone();
            watchers.push(tokio::spawn(async move { signer.run().await }));
        }
        let log = log.map(web::Data::from);
        let limiter = web::Data::from(RateLimiter::new(&settings.rate_limits));
        let metrics_inline = settings.metrics.enabled && settings.metrics.listen.is_empty();
        let prometheus = {
            let mut builder = PrometheusMetricsBuilder::new("cardinal")
                .registry(metrics.registry.clone())
                .exclude("/metrics")
                .exclude_regex("^/docs")
                .mask_unmatched_patterns("UNMATCHED");
            if metrics_inline {
                builder = builder.endpoint("/metrics");
            }
            builder.build().map_err(|e| anyhow::anyhow!("metrics: {e}"))?
        };
        let cors = settings.cors.clone();
        let app_metrics = metrics.clone();
        let app_limiter = limiter.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(directory.clone())
                .app_data(admin.clone())
                .app_data(keyknox.clone())
                .app_data(keyknox_body.clone())
                .app_data(authenticator.clone())
                .app_data(body_limit.clone())
                .app_data(header_limit.clone())
                .app_data(document.clone())
                .app_data(readiness.clone())
                .app_data(app_metrics.clone())
                .app_data(app_limiter.clone())
                .configure(|config| {
                    if let Some(log) = &log {
                        config.app_data(log.clone());
                    }
                })
                .app_data(
                    web::QueryConfig::default().error_handler(|e, _| ApiError::invalid_request(e.to_string()).into()),
                )
                .app_data(
                    web::PathConfig::default().error_handler(|e, _| ApiError::invalid_request(e.to_string()).into()),
                )
                .configure(|cfg| {
                    if let Some(brainkeys) = &brainkeys {
                        cfg.app_data(brainkeys.clone());
                    }
                    routes::configure(cfg, pythia_enabled);
                })
                // Outermost last: ids and logs cover everything, CORS answers preflights, and
                // metrics count the requests that limits (applied per route) refuse.
                .wrap(from_fn(guard_requests))
                .wrap(security_headers())
                .wrap(prometheus.clone())
                .wrap(Condition::new(!cors.allowed_origins.is_empty(), cors_policy(&cors)))
                // Virgil's SDKs build URLs as apiUrl + "/card/v5": a trailing slash in apiUrl
                // gives "//card/v5".
                .wrap(NormalizePath::new(TrailingSlash::MergeOnly))
                .wrap(from_fn(telemetry::trace_requests))
        })
        .shutdown_timeout(settings.server.shutdown_grace_secs)
        .client_request_timeout(Duration::from_millis(settings.server.request_header_timeout_ms))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(settings.server.keep_alive_secs))
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }

        let (metrics_server, metrics_port) = if settings.metrics.enabled && !settings.metrics.listen.is_empty() {
            let listener = TcpListener::bind(&settings.metrics.listen)
                .with_context(|| format!("binding the metrics listener {}", settings.metrics.listen))?;
            let metrics_port = listener.local_addr()?.port();
            let metrics = metrics.clone();
            let server = HttpServer::new(move || {
                let metrics = metrics.clone();
                App::new().route(
                    "/metrics",
                    web::get().to(move || {
                        let rendered = metrics.render();
                        async move {
                            match rendered {
                                Ok(body) => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(body),
                                Err(error) => actix_web::ResponseError::error_response(&ApiError::internal(&error)),
                            }
                        }
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
            tracing::info!(port = metrics_port, "metrics listening");
            (Some(server), Some(metrics_port))
        } else {
            (None, None)
        };

        let queue = store.clone();
        let housekeeping = tokio::spawn(async move {
            let mut forget = tokio::time::interval(Duration::from_secs(60));
            let mut sweep = tokio::time::interval(QUEUE_SWEEP);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = forget.tick() => limiter.forget_idle_keys(),
                    _ = sweep.tick() => sweep_queue(queue.as_ref()).await,
                }
            }
        });
        tracing::info!(port, backend = ?store.backend(), "listening");
        Ok(Application {
            port,
            server: server.run(),
            metrics_server,
            metrics_port,
            housekeeping,
            watchers,
            store,
            serving: None,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when it has its own.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle): stops accepting, lets in-flight
    /// requests finish within the grace period, then closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let result = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(false).await;
            let _ = task.await;
        }
        self.housekeeping.abort();
        for watcher in self.watchers {
            watcher.abort();
        }
        self.store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// The transparency log, when it is on: its key, its settings checked, every app's newest
/// checkpoint checked against the entries, and a first round of checkpoints.
async fn open_log(
    settings: &Settings,
    store: Arc<dyn Store>,
    service_key: &cardinal_card::SigningKey,
    clock: Arc<dyn Clock>,
    post: Option<transparency::Post>,
) -> anyhow::Result<Option<Arc<Transparency>>> {
    let config = &settings.transparency;
    if !config.enabled {
        return Ok(None);
    }
    // Production (no bootstrap, a provisioned log key) names its own logs; a laptop or a test
    // with generated keys may keep the default (docs/TRANSPARENCY.md, "Deviations").
    if !settings.bootstrap.enabled
        && !config.generate_signing_key
        && config.origin_prefix.trim_end_matches('/') == DEFAULT_ORIGIN_PREFIX
    {
        anyhow::bail!(
            "transparency.origin_prefix is the default {DEFAULT_ORIGIN_PREFIX:?}: a deployment names its own logs \
             (the scheme-less URL of its tiles, e.g. cards.example.com/tlog)"
        );
    }
    if config.origin_prefix.is_empty()
        || config.origin_prefix.contains(char::is_whitespace)
        || config.origin_prefix.contains('+')
    {
        anyhow::bail!("transparency.origin_prefix must be non-empty, without spaces or '+'");
    }
    let setup = LogSetup {
        key: transparency::load_log_key(config, service_key)?,
        origin_prefix: config.origin_prefix.clone(),
        interval: Duration::from_millis(config.checkpoint_interval_ms.max(10)),
        witnesses: transparency::witnesses(config)?,
        quorum: config.witness_quorum,
        post,
        witness_timeout: Duration::from_millis(config.witness_timeout_ms.max(1)),
    };
    let log = Arc::new(Transparency::new(store, setup, clock));
    let refused = log.check_at_start().await.context("checking the transparency logs")?;
    if refused > 0 {
        tracing::error!(refused, "transparency logs refused: they are served but not signed (see the errors above)");
    }
    if let Err(error) = log.sign_due().await {
        tracing::warn!(%error, "the first checkpoints could not be signed yet");
    }
    Ok(Some(log))
}

/// Most bytes of all request headers together.
#[derive(Debug, Clone, Copy)]
struct HeaderLimit(usize);

/// Refuses, before any other work, requests whose headers are too large (actix alone accepts
/// up to 128 KiB). Rate limits run later, once the route is known (`ratelimit::limit_route`).
async fn guard_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let header_bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    let header_limit = request.app_data::<web::Data<HeaderLimit>>().map_or(usize::MAX, |l| l.0);
    if header_bytes <= header_limit {
        return next.call(request).await.map(ServiceResponse::map_into_left_body);
    }
    let error = ApiError::new(
        cardinal_card::wire::ProblemCode::HeadersTooLarge,
        format!("the request headers exceed {header_limit} bytes"),
    );
    // Not routed yet: the path as the router will see it (percent-decoded) names the surface.
    let response = Surface::of_path(request.match_info().as_str()).render(error);
    Ok(request.into_response(response).map_into_right_body())
}

/// The API answers JSON and text to programs: nothing it serves is a page to frame, sniff or
/// run scripts in. `/docs` sets a policy of its own (its files need scripts and styles).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"))
}

/// The CORS policy browser clients need: Virgil's request headers allowed, the headers its
/// clients read exposed.
fn cors_policy(settings: &CorsSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("virgil-agent"),
            header::HeaderName::from_static("virgil-keyknox-previous-hash"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static(crate::routes::virgil::SUPERSEDED_HEADER),
            header::HeaderName::from_static("virgil-keyknox-hash"),
        ])
        .max_age(settings.max_age_secs);
    for origin in &settings.allowed_origins {
        cors = if origin == "*" { cors.allow_any_origin().send_wildcard() } else { cors.allowed_origin(origin) };
    }
    cors
}

/// A listening socket with its own backlog: `std`'s `TcpListener::bind` always asks for 128, and
/// actix-web's `backlog` setting applies only to sockets it binds itself, so 1,000 clients
/// connecting at once overflowed the queue and waited for their SYN retries.
fn bind_with_backlog(address: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut last_error = None;
    for address in std::net::ToSocketAddrs::to_socket_addrs(address)? {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
        // As std does: a restarted server rebinds while old connections sit in TIME_WAIT.
        socket.set_reuse_address(true)?;
        match socket.bind(&address.into()).and_then(|()| socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))) {
            Ok(()) => return Ok(socket.into()),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the address resolves to nothing")))
}
