//! The client: requests, token refresh, chunked and cached lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cardinal_card::card::CardBuilder;
use cardinal_card::wire::{CardView, EventsPage, LookupResponse, Problem, ProblemCode, ServiceKeyResponse};
use cardinal_card::{CardId, Identity, PublicKey, RawSignedModel, SigningKey};
use futures_util::{StreamExt, stream};
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OnceCell};

use crate::error::ClientError;
use crate::verify::{VerifiedCard, verify_card};

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
pub struct ClientBuilder {
    base_url: String,
    token: Option<TokenSource>,
    trust: Option<ServiceKeyTrust>,
    chunk_size: usize,
    concurrency: usize,
}

impl ClientBuilder {
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
                cache: Mutex::new(HashMap::new()),
                stats: LookupCounters::default(),
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
    /// Lookup requests sent.
    pub requests: u64,
    /// Of those, answered `304 Not Modified` from the cache.
    pub not_modified: u64,
}

struct CachedChunk {
    etag: String,
    cards: BTreeMap<String, Vec<VerifiedCard>>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    token: Option<TokenSource>,
    service_key: OnceCell<PublicKey>,
    tofu: bool,
    chunk_size: usize,
    concurrency: usize,
    cache: Mutex<HashMap<String, CachedChunk>>,
    stats: LookupCounters,
}

/// A Cardinal client. Cheap to clone; clones share the connection pool and the lookup cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Starts configuring a client for the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder { base_url: base_url.into(), token: None, trust: None, chunk_size: 100, concurrency: 4 }
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
                let response = inner.http.get(format!("{}/v1/service-key", inner.base_url)).send().await?;
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

    /// Sends a request with the token, and once more with a fresh one if it was expired.
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response, ClientError> {
        let mut refresh = false;
        loop {
            let mut request = build();
            if let Some(token) = self.token(refresh).await? {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let callback = matches!(self.inner.token, Some(TokenSource::Callback(_)));
            if response.status() == StatusCode::UNAUTHORIZED && callback && !refresh {
                let problem = problem(response).await;
                if problem.code() == Some(ProblemCode::TokenExpired) {
                    refresh = true;
                    continue;
                }
                return Err(problem);
            }
            return Ok(response);
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
    pub async fn publish(&self, card: &RawSignedModel) -> Result<VerifiedCard, ClientError> {
        let view: CardView = self.call(Method::POST, "/v1/cards", Some(card)).await?;
        let verified = self.verified(view).await?;
        if verified.card.raw.content_snapshot != card.content_snapshot {
            return Err(ClientError::Verification("the published card is not the one sent".into()));
        }
        Ok(verified)
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

    async fn lookup_chunk(&self, chunk: Vec<String>) -> Result<BTreeMap<String, Vec<VerifiedCard>>, ClientError> {
        let key = serde_json::to_string(&chunk).unwrap_or_default();
        let cached_etag = self.inner.cache.lock().await.get(&key).map(|c| c.etag.clone());
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
            if let Some(cached) = self.inner.cache.lock().await.get(&key) {
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
            self.inner.cache.lock().await.insert(key, CachedChunk { etag, cards: cards.clone() });
        }
        Ok(cards)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

async fn problem(response: Response) -> ClientError {
    let status = response.status().as_u16();
    match response.json::<Problem>().await {
        Ok(problem) => ClientError::Api { status, code: problem.code, detail: problem.detail },
        Err(_) => ClientError::Api { status, code: ProblemCode::Unknown, detail: format!("HTTP {status}") },
    }
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    if !response.status().is_success() {
        return Err(problem(response).await);
    }
    response.json::<T>().await.map_err(|e| ClientError::Transport(format!("unexpected answer: {e}")))
}
