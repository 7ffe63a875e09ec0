//! Building and running the service from its settings.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::{Method, header};
use actix_web::middleware::{Condition, NormalizePath, TrailingSlash};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

use crate::auth::{Authenticator, TokenPolicy};
use crate::config::{CorsSettings, Settings};
use crate::directory::{Directory, Rules};
use crate::error::ApiError;
use crate::manage;
use crate::routes::{self, BodyLimit};
use crate::storage::{self, CardStore};

/// A bound, ready-to-run service.
pub struct Application {
    port: u16,
    server: Server,
    store: Arc<dyn CardStore>,
}

/// Opens the configured store and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn CardStore>> {
    let store = storage::connect(settings.database.url.expose_secret(), &settings.database.pool())
        .await
        .context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

impl Application {
    /// Opens the store, migrates, loads the service key, bootstraps, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = open_store(&settings).await?;
        let service_key = manage::load_service_key(&settings.service)?;
        manage::bootstrap(store.as_ref(), &settings).await?;
        let listener = TcpListener::bind(&settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        Self::serve(settings, store, service_key, listener)
    }

    fn serve(
        settings: Settings,
        store: Arc<dyn CardStore>,
        service_key: cardinal_card::SigningKey,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        let rules = Rules {
            format: settings.limits.format(),
            identities_per_lookup: settings.limits.identities_per_lookup,
            reason_max_bytes: settings.limits.reason_max_bytes,
            events_page_max: settings.limits.events_page_max,
        };
        let policy = TokenPolicy {
            max_lifetime_secs: settings.auth.max_token_lifetime_secs,
            clock_skew_secs: settings.auth.clock_skew_secs,
            max_token_bytes: settings.limits.token_max_bytes,
        };
        let directory = web::Data::new(Directory::new(store.clone(), service_key, rules));
        let authenticator = web::Data::new(Authenticator::new(store.clone(), policy));
        let body_limit = web::Data::new(BodyLimit(settings.limits.body_bytes));
        let cors = settings.cors.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Condition::new(!cors.allowed_origins.is_empty(), cors_policy(&cors)))
                // Virgil's SDKs build URLs as apiUrl + "/card/v5": a trailing slash in apiUrl
                // gives "//card/v5".
                .wrap(NormalizePath::new(TrailingSlash::MergeOnly))
                .wrap(TracingLogger::default())
                .app_data(directory.clone())
                .app_data(authenticator.clone())
                .app_data(body_limit.clone())
                .app_data(
                    web::QueryConfig::default().error_handler(|e, _| ApiError::invalid_request(e.to_string()).into()),
                )
                .app_data(
                    web::PathConfig::default().error_handler(|e, _| ApiError::invalid_request(e.to_string()).into()),
                )
                .configure(routes::configure)
        })
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(port, backend = ?store.backend(), "listening");
        Ok(Application { port, server: server.run(), store })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle), then closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.store.close().await;
        result
    }
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
