//! A short-lived memory of API keys and verified tokens.
//!
//! Without it every request reads its key from the database and verifies a signature: on the
//! lookup and revalidation paths that read is half the round trips. The price is that revoking
//! an API key (which happens in another process, `cardinal key revoke`) takes effect within
//! `auth.credential_cache_ms` instead of at once. A token is remembered no longer than the key
//! it was verified with (so the window is not doubled by a token verified against a key read
//! just before it expired), and token times are still checked on every request, so a cached
//! token never outlives its `exp`. Unknown key ids are remembered too, apart, so that tokens
//! naming random kids cost one database read per kid and window, and cannot evict real keys.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::TokenTimes;
use crate::domain::Caller;
use crate::storage::ApiKeyRecord;

/// A token that verified, as it verified.
#[derive(Debug, Clone)]
pub(super) struct VerifiedToken {
    pub caller: Caller,
    pub times: TokenTimes,
    /// When the key it was verified with was read: the token is forgotten with that key.
    pub key_read_at: DateTime<Utc>,
}

/// A key as read, and when.
#[derive(Debug, Clone)]
pub(super) struct KnownKey {
    pub record: ApiKeyRecord,
    pub read_at: DateTime<Utc>,
}

/// Both memories, or none when the window is zero. Whether an entry is still good is decided by
/// the authenticator's clock (so tests move time instead of sleeping); the caches' own expiry
/// only bounds how long entries take memory.
pub(super) struct CredentialCache {
    window: chrono::Duration,
    /// Loads of one kid are shared: when an entry expires under load, one request reads it
    /// and the others wait for that read instead of each sending their own.
    keys: moka::future::Cache<String, KnownKey>,
    unknown_kids: Cache<String, DateTime<Utc>>,
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
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            keys: moka::future::Cache::builder().max_capacity(MAX_KEYS).time_to_live(window).build(),
            unknown_kids: Cache::builder().max_capacity(MAX_KEYS).time_to_live(window).build(),
            tokens: Cache::builder().max_capacity(max_tokens).time_to_live(window).build(),
        })
    }

    /// Tokens are remembered by digest: the map never holds a bearer credential, and a lookup's
    /// timing depends on the digest only, which tells an observer nothing about other tokens.
    pub fn token_digest(authorization: &[u8]) -> [u8; 32] {
        Sha256::digest(authorization).into()
    }

    /// A remembered token, unless the key it was verified with is older than the window.
    pub fn token(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Option<VerifiedToken> {
        self.tokens.get(digest).filter(|token| now - token.key_read_at < self.window)
    }

    pub fn remember_token(&self, digest: [u8; 32], token: VerifiedToken) {
        self.tokens.insert(digest, token);
    }

    /// The key, remembered or loaded by `load` (`None`: no such key, remembered as unknown).
    pub async fn key<E>(
        &self,
        kid: &str,
        now: DateTime<Utc>,
        load: impl Future<Output = Result<Option<ApiKeyRecord>, E>>,
    ) -> Result<Option<KnownKey>, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        if self.unknown_kids.get(kid).is_some_and(|seen_at| now - seen_at < self.window) {
            return Ok(None);
        }
        if let Some(known) = self.keys.get(kid).await
            && now - known.read_at >= self.window
        {
            self.keys.invalidate(kid).await;
        }
        let loaded = self
            .keys
            .try_get_with_by_ref(kid, async {
                match load.await {
                    Ok(Some(record)) => Ok(KnownKey { record, read_at: now }),
                    Ok(None) => Err(KeyLoadError::Unknown),
                    Err(error) => Err(KeyLoadError::Failed(error)),
                }
            })
            .await;
        match loaded {
            Ok(key) => Ok(Some(key)),
            Err(shared) => match &*shared {
                KeyLoadError::Unknown => {
                    self.unknown_kids.insert(kid.to_owned(), now);
                    Ok(None)
                }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::{AppId, Identity, KeyRole};

    fn record() -> ApiKeyRecord {
        ApiKeyRecord {
            kid: "k".into(),
            app_id: AppId::parse("a").unwrap(),
            role: KeyRole::App,
            public_key: vec![1; 32],
            created_at: 0,
            revoked_at: None,
        }
    }

    fn verified(key_read_at: DateTime<Utc>) -> VerifiedToken {
        VerifiedToken {
            caller: Caller {
                app_id: AppId::parse("a").unwrap(),
                subject: Identity::parse("alice").unwrap(),
                role: KeyRole::App,
            },
            times: TokenTimes { iat: 0, exp: 1, nbf: None },
            key_read_at,
        }
    }

    /// The review measured revocations taking up to twice the window: a token first seen just
    /// before its key's entry expired got a fresh window of its own.
    #[test]
    fn a_token_is_forgotten_with_the_key_it_was_verified_with() {
        let window = Duration::from_secs(1);
        let cache = CredentialCache::new(window, 100).unwrap();
        let key_read_at = Utc::now();
        let digest = CredentialCache::token_digest(b"Bearer late-token");
        // Verified 900 ms after the key was read, against that cached key.
        cache.remember_token(digest, verified(key_read_at));
        assert!(cache.token(&digest, key_read_at + chrono::Duration::milliseconds(900)).is_some());
        assert!(
            cache.token(&digest, key_read_at + chrono::Duration::from_std(window).unwrap()).is_none(),
            "gone with its key, not 1 s after its own insert"
        );
    }

    #[tokio::test]
    async fn unknown_kids_are_remembered_apart_and_read_once_per_window() {
        let cache = CredentialCache::new(Duration::from_secs(60), 100).unwrap();
        let reads = AtomicUsize::new(0);
        let now = Utc::now();
        for _ in 0..3 {
            let found = cache
                .key("nope", now, async {
                    reads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(None)
                })
                .await
                .unwrap();
            assert!(found.is_none());
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let later = now + chrono::Duration::seconds(61);
        let read_again = cache
            .key("nope", later, async {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(None)
            })
            .await
            .unwrap();
        assert!(read_again.is_none());
        assert_eq!(reads.load(Ordering::SeqCst), 2, "read again once the window passed");
        let known = cache.key("k", now, async { Ok::<_, String>(Some(record())) }).await.unwrap().unwrap();
        assert_eq!((known.record, known.read_at), (record(), now));
    }

    /// Revoking a key shows within the window by the authenticator's clock, not the cache's.
    #[tokio::test]
    async fn a_key_older_than_the_window_is_read_again() {
        let cache = CredentialCache::new(Duration::from_secs(1), 100).unwrap();
        let now = Utc::now();
        cache.key("k", now, async { Ok::<_, String>(Some(record())) }).await.unwrap();
        let revoked = ApiKeyRecord { revoked_at: Some(5), ..record() };
        let soon =
            cache.key("k", now + chrono::Duration::milliseconds(500), async { Ok::<_, String>(Some(revoked.clone())) });
        assert_eq!(soon.await.unwrap().unwrap().record.revoked_at, None, "within the window: remembered");
        let later =
            cache.key("k", now + chrono::Duration::seconds(1), async { Ok::<_, String>(Some(revoked.clone())) });
        assert_eq!(later.await.unwrap().unwrap().record.revoked_at, Some(5), "after it: read again");
    }
}
