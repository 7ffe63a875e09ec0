//! The client: requests, token refresh, chunked and cached lookups.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cardinal_card::card::CardBuilder;
use cardinal_card::wire::{
    CardView, EventsPage, LookupResponse, Problem, ProblemCode, ServiceKeyResponse, TokenInspectRequest,
    TokenInspection,
};
use cardinal_card::{CardId, Identity, PublicKey, RawSignedModel, SigningKey};
use futures_util::{StreamExt, stream};
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::cache::{CachedChunk, LookupCache, LookupCacheUsage};
use crate::error::ClientError;
use crate::retry::{self, RetryPolicy};
use crate::transparency::{KeptCheckpoint, LogPins, LogTrust, ProvedLookup, verify_card_log};
use crate::verify::{VerifiedCard, verify_card};
use cardinal_card::tlog::wire::ProofResponse;

/// The lookup cache's default bound: 16 MiB, some ten thousand cards.
pub const DEFAULT_LOOKUP_CACHE_BYTES: u64 = 16 << 20;

/// Mints or fetches a token; `true` asks for a fresh one (the last was refused as expired).
pub type TokenCallback =
    Arc<dyn Fn(bool) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

enum TokenSource {
    Fixed(String),
    Callback(TokenCallback),
}

enum ServiceKeyTrust {
    Pinned(Box<PublicKey>),
    TrustOnFirstUse,
}

/// Configures a [`Client`].
///
/// Beside the token and the service key, two knobs matter to operators, and both have defaults
/// that suit most deployments:
///
/// - **The lookup cache** ([`lookup_cache_bytes`](Self::lookup_cache_bytes)) keeps each chunk's
///   ETag and verified cards, so that a repeated lookup of unchanged identities costs a
///   `304 Not Modified` and no card bodies. It is bounded by an estimate of the memory it holds
///   (16 MiB by default) and evicts the least recently used chunks first.
/// - **Retries** ([`retry`](Self::retry)) of `429 rate_limited` and `503 unavailable`, which
///   Cardinal sends when it refused a request before doing anything. The client waits as
///   `Retry-After` says, or backs off with jitter, and gives up after 3 attempts or 10 s by
///   default, returning the last refusal as [`ClientError::Api`].
///
/// ```
/// use std::time::Duration;
/// use cardinal_client::{Client, RetryPolicy};
///
/// # fn main() -> Result<(), cardinal_client::ClientError> {
/// # let service_key = cardinal_client::SigningKey::generate().public_key();
/// let client = Client::builder("https://cards.example.com")
///     .token("eyJ…")
///     .service_key(service_key)
///     // Cache up to 64 MiB of lookup answers (0 turns the cache off).
///     .lookup_cache_bytes(64 << 20)
///     // Up to 5 attempts within 30 s; without Retry-After, wait ~0.5 s, ~1 s, ~2 s, ….
///     .retry(
///         RetryPolicy::default()
///             .max_attempts(5)
///             .max_elapsed(Duration::from_secs(30))
///             .backoff(Duration::from_millis(500), Duration::from_secs(8)),
///     )
///     .build()?;
/// # Ok(()) }
/// ```
pub struct ClientBuilder {
    base_url: String,
    token: Option<TokenSource>,
    trust: Option<ServiceKeyTrust>,
    chunk_size: usize,
    concurrency: usize,
    cache_bytes: u64,
    retry: RetryPolicy,
    log: Option<LogPins>,
}

impl ClientBuilder {
    /// Pins the app's transparency log key (its vkey, from `GET /v1/transparency`, published
    /// out of band): every lookup then asks for proofs and verifies them, and every checkpoint
    /// must be consistent with the newest verified before.
    pub fn log_key(mut self, vkey: impl Into<String>) -> Self {
        self.log = Some(LogPins { vkey: vkey.into(), witnesses: Vec::new(), quorum: 0, state_file: None });
        self
    }

    /// Witnesses whose cosignatures a checkpoint needs, `quorum` of them (after `log_key`).
    pub fn log_witnesses(mut self, vkeys: Vec<String>, quorum: usize) -> Self {
        if let Some(log) = &mut self.log {
            log.witnesses = vkeys;
            log.quorum = quorum;
        }
        self
    }

    /// Keeps the newest verified checkpoint in this file too, across runs (after `log_key`).
    pub fn log_state_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        if let Some(log) = &mut self.log {
            log.state_file = Some(path.into());
        }
        self
    }

    /// A fixed token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(TokenSource::Fixed(token.into()));
        self
    }

    /// A callback that mints or fetches tokens, called again with `true` when the server says
    /// `token_expired`.
    pub fn token_source(mut self, callback: TokenCallback) -> Self {
        self.token = Some(TokenSource::Callback(callback));
        self
    }

    /// Pins the service key that must countersign every card.
    pub fn service_key(mut self, key: PublicKey) -> Self {
        self.trust = Some(ServiceKeyTrust::Pinned(Box::new(key)));
        self
    }

    /// Fetches the service key from `GET /v1/service-key` once and trusts it from then on.
    pub fn trust_on_first_use(mut self) -> Self {
        self.trust = Some(ServiceKeyTrust::TrustOnFirstUse);
        self
    }

    /// Identities per lookup request (the server's limit; 100 by default).
    pub fn lookup_chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = size.max(1);
        self
    }

    /// Lookup requests in flight at once (4 by default).
    pub fn lookup_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Bounds the lookup cache to about `bytes` of memory (16 MiB by default, see
    /// [`DEFAULT_LOOKUP_CACHE_BYTES`]); 0 turns the cache off, so that every lookup is a full
    /// answer.
    ///
    /// The cache holds one entry per chunk of identities (see
    /// [`lookup_chunk_size`](Self::lookup_chunk_size)): its ETag and its verified cards. When the
    /// bound is reached, the least recently used chunks are evicted; a chunk larger than the
    /// whole bound is not cached. [`Client::lookup_cache_usage`] tells what it holds.
    ///
    /// ```
    /// # fn main() -> Result<(), cardinal_client::ClientError> {
    /// # let key = cardinal_client::SigningKey::generate().public_key();
    /// let client = cardinal_client::Client::builder("http://127.0.0.1:8080")
    ///     .service_key(key)
    ///     .lookup_cache_bytes(1 << 20)
    ///     .build()?;
    /// assert_eq!(client.lookup_cache_usage().chunks, 0);
    /// # Ok(()) }
    /// ```
    pub fn lookup_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// How `429 rate_limited` and `503 unavailable` answers are retried (see [`RetryPolicy`]
    /// for the waits and the budget; by default 3 attempts within 10 s).
    /// [`RetryPolicy::never`] returns every refusal as it comes.
    ///
    /// Every call is retried this way, publishes and revocations included: Cardinal sends these
    /// answers when it refused before doing anything, a republished card is recognised by its
    /// id, and a revocation is idempotent. Transport errors are never retried.
    ///
    /// ```
    /// # fn main() -> Result<(), cardinal_client::ClientError> {
    /// # let key = cardinal_client::SigningKey::generate().public_key();
    /// use cardinal_client::{Client, RetryPolicy};
    /// let batch_job = Client::builder("http://127.0.0.1:8080")
    ///     .service_key(key)
    ///     .retry(RetryPolicy::default().max_attempts(10).max_elapsed(std::time::Duration::from_secs(120)))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Builds the client. A service key must be pinned, or trust on first use chosen.
    pub fn build(self) -> Result<Client, ClientError> {
        // reqwest is built without a default TLS provider so that only ring is compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let trust = self.trust.ok_or_else(|| {
            ClientError::InvalidInput(
                "pin the service key with .service_key(), or opt in to .trust_on_first_use()".into(),
            )
        })?;
        let http = reqwest::Client::builder().build()?;
        let service_key = OnceCell::new();
        let tofu = match trust {
            ServiceKeyTrust::Pinned(key) => {
                let _ = service_key.set(*key);
                false
            }
            ServiceKeyTrust::TrustOnFirstUse => true,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: self.base_url.trim_end_matches('/').to_owned(),
                token: self.token,
                service_key,
                tofu,
                chunk_size: self.chunk_size,
                concurrency: self.concurrency,
                cache: LookupCache::new(self.cache_bytes),
                retry: self.retry,
                stats: LookupCounters::default(),
                log: self.log.map(LogTrust::new).transpose()?,
            }),
        })
    }
}

#[derive(Default)]
struct LookupCounters {
    requests: AtomicU64,
    not_modified: AtomicU64,
}

/// How lookups were answered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupStats {
    /// Lookup requests answered (a request retried after a `429` or `503` counts once).
    pub requests: u64,
    /// Of those, answered `304 Not Modified` from the cache.
    pub not_modified: u64,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    token: Option<TokenSource>,
    service_key: OnceCell<PublicKey>,
    tofu: bool,
    chunk_size: usize,
    concurrency: usize,
    cache: LookupCache,
    retry: RetryPolicy,
    stats: LookupCounters,
    log: Option<LogTrust>,
}

/// A Cardinal client. Cheap to clone; clones share the connection pool and the lookup cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Starts configuring a client for the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            trust: None,
            chunk_size: 100,
            concurrency: 4,
            cache_bytes: DEFAULT_LOOKUP_CACHE_BYTES,
            retry: RetryPolicy::default(),
            log: None,
        }
    }

    /// What the lookup cache holds now: at most the bound set with
    /// [`ClientBuilder::lookup_cache_bytes`].
    pub fn lookup_cache_usage(&self) -> LookupCacheUsage {
        self.inner.cache.usage()
    }

    /// How lookups were answered so far.
    pub fn lookup_stats(&self) -> LookupStats {
        LookupStats {
            requests: self.inner.stats.requests.load(Ordering::Relaxed),
            not_modified: self.inner.stats.not_modified.load(Ordering::Relaxed),
        }
    }

    /// The service key cards must be countersigned with: the pinned one, or the one fetched
    /// on first use.
    pub async fn service_key(&self) -> Result<PublicKey, ClientError> {
        let inner = &self.inner;
        inner
            .service_key
            .get_or_try_init(|| async {
                if !inner.tofu {
                    return Err(ClientError::InvalidInput("no service key".into()));
                }
                let url = self.url("/v1/service-key");
                let (response, _) = self.send_retrying(|| inner.http.get(&url), false).await?;
                let body: ServiceKeyResponse = decode(response).await?;
                PublicKey::from_text(&body.public_key)
                    .map_err(|e| ClientError::Verification(format!("service key: {e}")))
            })
            .await
            .cloned()
    }

    async fn token(&self, refresh: bool) -> Result<Option<String>, ClientError> {
        match &self.inner.token {
            None => Ok(None),
            Some(TokenSource::Fixed(token)) => Ok(Some(token.clone())),
            Some(TokenSource::Callback(callback)) => callback(refresh).await.map(Some).map_err(ClientError::Token),
        }
    }

    /// Sends a request with the token, once more with a fresh one if it was expired, and again
    /// after a `429` or `503` as the retry policy allows.
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, ClientError> {
        self.send_retrying(build, true).await.map(|(response, _)| response)
    }

    /// [`Self::send`], also telling whether the request was sent more than once after a refusal.
    ///
    /// Only `429` and `503` are retried: the module `retry` explains why that is safe for
    /// every call, publishes included. A transport error is returned as it comes, since after
    /// the request was sent the server may have applied it.
    async fn send_retrying(
        &self,
        build: impl Fn() -> RequestBuilder,
        authenticate: bool,
    ) -> Result<(Response, bool), ClientError> {
        let policy = &self.inner.retry;
        let started = tokio::time::Instant::now();
        let callback = matches!(self.inner.token, Some(TokenSource::Callback(_)));
        let mut refresh_now = false;
        let mut refreshed = false;
        let mut attempt = 1;
        let mut retried = false;
        loop {
            let mut request = build();
            if authenticate && let Some(token) = self.token(refresh_now).await? {
                request = request.bearer_auth(token);
            }
            refresh_now = false;
            let response = request.send().await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && authenticate && callback && !refreshed {
                let problem = problem(response).await;
                if problem.code() == Some(ProblemCode::TokenExpired) {
                    refresh_now = true;
                    refreshed = true;
                    continue;
                }
                return Err(problem);
            }
            if retry::is_retryable(status) && attempt < policy.attempts() {
                let wait = retry::retry_after(response.headers(), std::time::SystemTime::now());
                let delay = policy.delay(attempt, wait, &mut rand::thread_rng());
                if started.elapsed().saturating_add(delay) <= policy.elapsed_budget() {
                    // Read the small problem body so that the connection can be reused.
                    let _ = response.bytes().await;
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                    retried = true;
                    continue;
                }
            }
            return Ok((response, retried));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base_url)
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self
            .send(|| {
                let request = self.inner.http.request(method.clone(), &url);
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        decode(response).await
    }

    async fn verified(&self, view: CardView) -> Result<VerifiedCard, ClientError> {
        verify_card(view, &self.service_key().await?)
    }

    /// Publishes a card the caller built and signed.
    ///
    /// A `429` or `503` is retried as the [`RetryPolicy`] allows. Should an attempt the server
    /// answered `503` have landed all the same (a lost commit acknowledgement), the retry is
    /// refused as `card_exists` (or `already_superseded` for a rotation); the client then fetches
    /// the card by its id, and returns it if the server holds exactly these bytes.
    pub async fn publish(&self, card: &RawSignedModel) -> Result<VerifiedCard, ClientError> {
        let url = self.url("/v1/cards");
        let (response, retried) = self.send_retrying(|| self.inner.http.post(&url).json(card), true).await?;
        let view: CardView = match decode(response).await {
            Ok(view) => view,
            Err(refused)
                if retried
                    && matches!(refused.code(), Some(ProblemCode::CardExists | ProblemCode::AlreadySuperseded)) =>
            {
                match self.find_published(card).await? {
                    Some(view) => view,
                    None => return Err(refused),
                }
            }
            Err(other) => return Err(other),
        };
        let verified = self.verified(view).await?;
        if verified.card.raw.content_snapshot != card.content_snapshot {
            return Err(ClientError::Verification("the published card is not the one sent".into()));
        }
        Ok(verified)
    }

    /// The card with the id of `card`, if the server holds one.
    async fn find_published(&self, card: &RawSignedModel) -> Result<Option<CardView>, ClientError> {
        let Some(snapshot) = cardinal_card::b64::decode_std(&card.content_snapshot) else {
            return Ok(None);
        };
        let id = CardId::of_snapshot(&snapshot);
        match self.call::<(), CardView>(Method::GET, &format!("/v1/cards/{id}"), None).await {
            Ok(view) => Ok(Some(view)),
            Err(error) if error.code() == Some(ProblemCode::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Builds, signs and publishes a root card for `identity` holding `key`'s public key.
    pub async fn publish_new(&self, identity: &str, key: &SigningKey) -> Result<VerifiedCard, ClientError> {
        let identity = Identity::parse(identity).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let (_, card) = CardBuilder::new(identity, key, now()).build();
        self.publish(&card).await
    }

    /// Builds, signs and publishes a card that rotates `previous` to `key`.
    pub async fn rotate(
        &self,
        identity: &str,
        previous: &CardId,
        key: &SigningKey,
    ) -> Result<VerifiedCard, ClientError> {
        let identity = Identity::parse(identity).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let (_, card) = CardBuilder::new(identity, key, now()).previous(previous.clone()).build();
        self.publish(&card).await
    }

    /// One card by id, in any status.
    pub async fn get(&self, id: &CardId) -> Result<VerifiedCard, ClientError> {
        let view: CardView = self.call::<(), _>(Method::GET, &format!("/v1/cards/{id}"), None).await?;
        if view.id != id.as_str() {
            return Err(ClientError::Verification(format!("asked for card {id}, got {}", view.id)));
        }
        self.verified(view).await
    }

    /// Revokes the chain of one of the caller's cards.
    pub async fn revoke(&self, id: &CardId, reason: Option<&str>) -> Result<VerifiedCard, ClientError> {
        let body = serde_json::json!({ "reason": reason });
        let view: CardView = self.call(Method::POST, &format!("/v1/cards/{id}/revoke"), Some(&body)).await?;
        self.verified(view).await
    }

    /// Revokes any card's chain (admin token).
    pub async fn admin_revoke(&self, id: &CardId, reason: &str) -> Result<VerifiedCard, ClientError> {
        let body = serde_json::json!({ "reason": reason });
        let view: CardView = self.call(Method::POST, &format!("/v1/admin/cards/{id}/revoke"), Some(&body)).await?;
        self.verified(view).await
    }

    /// Whether the server would accept `token` now, and why not (admin token; the reason a
    /// request is not told is given for the admin's own app's keys).
    pub async fn inspect_token(&self, token: &str) -> Result<TokenInspection, ClientError> {
        let body = TokenInspectRequest { token: token.to_owned() };
        self.call(Method::POST, "/v1/admin/tokens/inspect", Some(&body)).await
    }

    /// A page of the event log (admin token).
    pub async fn events(&self, after: i64, limit: i64) -> Result<EventsPage, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/v1/admin/events?after={after}&limit={limit}"), None).await
    }

    /// The active cards of any number of identities, newest first; every identity is a key.
    pub async fn lookup<S: AsRef<str>>(
        &self,
        identities: &[S],
    ) -> Result<BTreeMap<String, Vec<VerifiedCard>>, ClientError> {
        let distinct: BTreeSet<String> = identities.iter().map(|i| i.as_ref().to_owned()).collect();
        for identity in &distinct {
            Identity::parse(identity).map_err(|e| ClientError::InvalidInput(format!("{identity:?}: {e}")))?;
        }
        let chunks: Vec<Vec<String>> =
            distinct.into_iter().collect::<Vec<_>>().chunks(self.inner.chunk_size).map(<[String]>::to_vec).collect();
        let results: Vec<Result<BTreeMap<String, Vec<VerifiedCard>>, ClientError>> =
            stream::iter(chunks.into_iter().map(|chunk| self.lookup_chunk(chunk)))
                .buffer_unordered(self.inner.concurrency)
                .collect()
                .await;
        let mut all = BTreeMap::new();
        for result in results {
            all.extend(result?);
        }
        Ok(all)
    }

    /// The newest checkpoint this client verified (with a pinned log key).
    pub async fn kept_checkpoint(&self) -> Option<KeptCheckpoint> {
        match &self.inner.log {
            Some(log) => log.kept().await,
            None => None,
        }
    }

    /// A chunk looked up with proofs, every one verified.
    async fn lookup_proved(
        &self,
        log: &LogTrust,
        chunk: Vec<String>,
    ) -> Result<BTreeMap<String, Vec<VerifiedCard>>, ClientError> {
        let mut query: Vec<(&str, &str)> = chunk.iter().map(|i| ("identity", i.as_str())).collect();
        query.push(("proofs", "true"));
        let url = self.url("/v1/cards");
        let response = self.send(|| self.inner.http.get(&url).query(&query)).await?;
        self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
        let body: ProvedLookup = decode(response).await?;
        let checkpoint = log
            .accept(&body.checkpoint, |from, to| async move {
                let path = format!("/v1/transparency/consistency?from={from}&to={to}");
                self.call::<(), ProofResponse>(Method::GET, &path, None).await
            })
            .await?;
        let service_key = self.service_key().await?;
        let mut cards = BTreeMap::new();
        for (identity, proved) in body.identities {
            if !chunk.contains(&identity) {
                return Err(ClientError::Verification(format!(
                    "the server answered for {identity:?}, which was not asked"
                )));
            }
            let mut verified = Vec::with_capacity(proved.len());
            for card in proved {
                verify_card_log(&checkpoint, &card.view.id, &identity, &card.log)?;
                let card = verify_card(card.view, &service_key)?;
                if card.card.content.identity.as_str() != identity {
                    return Err(ClientError::Verification(format!(
                        "a card of another identity was listed under {identity:?}"
                    )));
                }
                verified.push(card);
            }
            cards.insert(identity, verified);
        }
        if let Some(missing) = chunk.iter().find(|i| !cards.contains_key(*i)) {
            return Err(ClientError::Verification(format!("the server left out {missing:?}")));
        }
        Ok(cards)
    }

    async fn lookup_chunk(&self, chunk: Vec<String>) -> Result<BTreeMap<String, Vec<VerifiedCard>>, ClientError> {
        if let Some(log) = &self.inner.log {
            return self.lookup_proved(log, chunk).await;
        }
        // A chunk's identities, joined: an empty key would make every chunk share one entry.
        let key = serde_json::to_string(&chunk).expect("a list of strings always serialises");
        // Held for the whole call, so that a 304 can be answered even if the chunk is evicted
        // meanwhile.
        let cached = self.inner.cache.get(&key);
        let cached_etag = cached.as_ref().map(|c| c.etag.clone());
        let query: Vec<(&str, &str)> = chunk.iter().map(|i| ("identity", i.as_str())).collect();
        let url = self.url("/v1/cards");
        let response = self
            .send(|| {
                let request = self.inner.http.get(&url).query(&query);
                match &cached_etag {
                    Some(etag) => request.header(IF_NONE_MATCH, etag),
                    None => request,
                }
            })
            .await?;
        self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
        if response.status() == StatusCode::NOT_MODIFIED {
            self.inner.stats.not_modified.fetch_add(1, Ordering::Relaxed);
            if let Some(cached) = cached {
                return Ok(cached.cards.clone());
            }
            return Err(ClientError::Transport("304 for a lookup that is not cached".into()));
        }
        let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: LookupResponse = decode(response).await?;
        let service_key = self.service_key().await?;
        let mut cards = BTreeMap::new();
        for (identity, views) in body.identities {
            if !chunk.contains(&identity) {
                return Err(ClientError::Verification(format!(
                    "the server answered for {identity:?}, which was not asked"
                )));
            }
            let mut verified = Vec::with_capacity(views.len());
            for view in views {
                let card = verify_card(view, &service_key)?;
                if card.card.content.identity.as_str() != identity {
                    return Err(ClientError::Verification(format!(
                        "a card of {:?} was listed under {identity:?}",
                        card.card.content.identity.as_str()
                    )));
                }
                verified.push(card);
            }
            cards.insert(identity, verified);
        }
        if let Some(missing) = chunk.iter().find(|i| !cards.contains_key(*i)) {
            return Err(ClientError::Verification(format!("the server left out {missing:?}")));
        }
        if let Some(etag) = etag {
            self.inner.cache.insert(key, CachedChunk { etag, cards: cards.clone() });
        }
        Ok(cards)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

async fn problem(response: Response) -> ClientError {
    let status = response.status();
    match response.json::<Problem>().await {
        Ok(problem) => ClientError::Api { status: status.as_u16(), code: problem.code, detail: problem.detail },
        Err(_) => {
            // A proxy in front of Cardinal answers in its own words; its 429 and 503 still mean
            // what Cardinal's do.
            let code = match status {
                StatusCode::TOO_MANY_REQUESTS => ProblemCode::RateLimited,
                StatusCode::SERVICE_UNAVAILABLE => ProblemCode::Unavailable,
                _ => ProblemCode::Unknown,
            };
            ClientError::Api { status: status.as_u16(), code, detail: format!("HTTP {}", status.as_u16()) }
        }
    }
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    if !response.status().is_success() {
        return Err(problem(response).await);
    }
    response.json::<T>().await.map_err(|e| ClientError::Transport(format!("unexpected answer: {e}")))
}

/// The transparency log's raw reads, for auditors and monitors (the verification is theirs).
impl Client {
    /// The bytes at a path under the server (a checkpoint, a tile, a bundle), with the token
    /// when `authenticate`.
    pub async fn get_bytes(&self, path: &str, authenticate: bool) -> Result<Vec<u8>, ClientError> {
        let url = self.url(path);
        let (response, _) = self.send_retrying(|| self.inner.http.get(&url), authenticate).await?;
        if !response.status().is_success() {
            return Err(problem(response).await);
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// `GET /v1/transparency`.
    pub async fn transparency(&self) -> Result<cardinal_card::tlog::wire::TransparencyInfo, ClientError> {
        self.call::<(), _>(Method::GET, "/v1/transparency", None).await
    }
}
