//! A short-lived memory of API keys and verified tokens.
//!
//! Without it every request reads its key from the database and verifies a signature: on the
//! lookup and revalidation paths that read is half the round trips. The price is that revoking
//! an API key (which happens in another process, `cardinal key revoke`) takes effect within
//! `auth.credential_cache_ms` instead of at once. Token times are still checked on every
//! request, so a cached token never outlives its `exp`.

use std::future::Future;
use std::time::Duration;

use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::TokenTimes;
use crate::directory::Caller;
use crate::storage::ApiKeyRecord;

/// A token that verified, as it verified.
#[derive(Debug, Clone)]
pub(super) struct VerifiedToken {
    pub caller: Caller,
    pub times: TokenTimes,
}

/// Both memories, or none when the window is zero.
pub(super) struct CredentialCache {
    /// Loads of one kid are shared: when an entry expires under load, one request reads it
    /// and the others wait for that read instead of each sending their own.
    keys: moka::future::Cache<String, ApiKeyRecord>,
    tokens: Cache<[u8; 32], VerifiedToken>,
}

/// Keys are few; a bound still matters because a `kid` is chosen by whoever sends a token.
const MAX_KEYS: u64 = 10_000;

impl CredentialCache {
    /// `None` when `window` is zero: every request then reads its key and verifies its token.
    pub fn new(window: Duration, max_tokens: u64) -> Option<Self> {
        if window.is_zero() {
            return None;
        }
        Some(CredentialCache {
            keys: moka::future::Cache::builder().max_capacity(MAX_KEYS).time_to_live(window).build(),
            tokens: Cache::builder().max_capacity(max_tokens).time_to_live(window).build(),
        })
    }

    /// Tokens are remembered by digest: the map never holds a bearer credential, and a lookup's
    /// timing depends on the digest only, which tells an observer nothing about other tokens.
    pub fn token_digest(authorization: &[u8]) -> [u8; 32] {
        Sha256::digest(authorization).into()
    }

    pub fn token(&self, digest: &[u8; 32]) -> Option<VerifiedToken> {
        self.tokens.get(digest)
    }

    pub fn remember_token(&self, digest: [u8; 32], token: VerifiedToken) {
        self.tokens.insert(digest, token);
    }

    /// The key, remembered or loaded by `load` (`None`: no such key, which is not remembered).
    pub async fn key<E>(
        &self,
        kid: &str,
        load: impl Future<Output = Result<Option<ApiKeyRecord>, E>>,
    ) -> Result<Option<ApiKeyRecord>, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        let loaded = self
            .keys
            .try_get_with_by_ref(kid, async {
                match load.await {
                    Ok(Some(key)) => Ok(key),
                    Ok(None) => Err(KeyLoadError::Unknown),
                    Err(error) => Err(KeyLoadError::Failed(error)),
                }
            })
            .await;
        match loaded {
            Ok(key) => Ok(Some(key)),
            Err(shared) => match &*shared {
                KeyLoadError::Unknown => Ok(None),
                KeyLoadError::Failed(error) => Err(error.clone()),
            },
        }
    }
}

/// Why a key could not be loaded (shared by every request that waited for the same load).
#[derive(Debug)]
enum KeyLoadError<E> {
    /// There is no such key.
    Unknown,
    /// The store failed.
    Failed(E),
}
