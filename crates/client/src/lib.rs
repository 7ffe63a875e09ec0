//! # cardinal-client
//!
//! The Rust SDK for [Cardinal](https://github.com/), a self-hosted public-key directory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cardinal_client::ClientError> {
//! use cardinal_client::{Client, SigningKey};
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .token("eyJ…")            // or .token_source(…) to mint and refresh
//!     .trust_on_first_use()     // or .service_key(pinned)
//!     .build()?;
//! let key = SigningKey::generate();
//! let mine = client.publish_new("alice", &key).await?;
//! let found = client.lookup(&["bob", "carol"]).await?;
//! # Ok(()) }
//! ```
//!
//! Every card the SDK returns has been verified: its id is the hash of its snapshot, its self
//! signature verifies, its identity is one that was asked for, and the service countersignature
//! verifies with the service key (pinned, or fetched once from `GET /v1/service-key` when the
//! caller opts in to trust on first use). An answer that fails any check is an error.
//!
//! Lookups of any number of identities are split into chunks of the server's limit, sent
//! concurrently, and cached per chunk: a repeated lookup revalidates with `If-None-Match`, so
//! unchanged identities cost a `304` and no card bodies. The cache is bounded (16 MiB by
//! default, [`ClientBuilder::lookup_cache_bytes`]) and evicts the least recently used chunks.
//!
//! `429 rate_limited` and `503 unavailable` answers are retried after the server's
//! `Retry-After`, or with jittered exponential backoff, within a budget of attempts and time
//! ([`ClientBuilder::retry`], [`RetryPolicy`]); the last refusal is returned as
//! [`ClientError::Api`] with the server's problem code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod client;
mod error;
mod retry;
mod transparency;
mod verify;

pub use cache::LookupCacheUsage;
pub use cardinal_card::wire::{CardStatus, EventsPage, ProblemCode, TokenInspection};
pub use cardinal_card::{CardId, PublicKey, SigningKey};
pub use client::{Client, ClientBuilder, DEFAULT_LOOKUP_CACHE_BYTES, LookupStats, TokenCallback};
pub use error::ClientError;
pub use retry::RetryPolicy;
pub use transparency::{KeptCheckpoint, verify_card_log};
pub use verify::{VerifiedCard, verify_card};

/// What [`http_post`] returns: (url, body, timeout) to (status, content type, body).
pub type HttpPost = std::sync::Arc<dyn Fn(String, String, std::time::Duration) -> PostFuture + Send + Sync>;

/// The answer of an [`HttpPost`].
pub type PostFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(u16, String, String), String>> + Send>>;

/// One HTTP POST of a text body, answering (status, content type, body): what Cardinal's
/// server sends checkpoints to its witnesses with (its crate compiles no HTTP client).
pub fn http_post() -> HttpPost {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    std::sync::Arc::new(move |url, body, timeout| {
        let http = http.clone();
        Box::pin(async move {
            let response = http.post(url).body(body).timeout(timeout).send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = response.text().await.map_err(|e| e.to_string())?;
            Ok((status, content_type, text))
        })
    })
}
