//! Authentication: a Bearer EdDSA JWT or a Virgil VEDS512 JWT becomes one [`Caller`].
//!
//! Both schemes pin their algorithm before any key is used, look the key up by `kid`, refuse
//! revoked keys and keys of another app than the issuer, cap the lifetime and allow a small,
//! configured clock skew.

mod cache;
mod extractor;
pub mod jwt;

use std::sync::Arc;
use std::time::Duration;

use cardinal_card::PublicKey;
use cardinal_card::virgil_jwt::VirgilJwt;
use cardinal_card::wire::ProblemCode;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::domain::{Caller, Identity};
use crate::error::ApiError;
use crate::storage::ApiKeyStore;
use cache::{CredentialCache, KnownKey, VerifiedToken};

/// Verifies tokens against the registered API keys.
pub struct Authenticator {
    keys: Arc<dyn ApiKeyStore>,
    policy: TokenPolicy,
    cache: Option<CredentialCache>,
    clock: Arc<dyn Clock>,
}

/// How long keys and verified tokens are remembered (zero: not at all), and how many tokens.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// The window within which a key revocation takes effect.
    pub window: Duration,
    /// Most tokens remembered.
    pub max_tokens: u64,
}

/// Whether a key may come from the credential cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRead {
    Cached,
    Fresh,
}

/// What a token's times must satisfy, and how big it may be.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    /// Longest `exp - iat`, seconds.
    pub max_lifetime_secs: i64,
    /// Tolerated skew, seconds.
    pub clock_skew_secs: i64,
    /// Longest Authorization header value.
    pub max_token_bytes: usize,
}

/// The time claims common to both schemes.
#[derive(Debug, Clone, Copy)]
pub struct TokenTimes {
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// Not before.
    pub nbf: Option<i64>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(ProblemCode::TokenInvalid, detail)
}

/// The one detail for every refusal that depends on the registered keys (unknown or revoked
/// kid, another app's key, a signature that fails): an unauthenticated caller learns nothing
/// about which key ids exist. The log says which at debug level.
pub(crate) const NOT_VALID: &str = "the token is not valid for this service";

pub(crate) fn not_valid(why: &'static str) -> ApiError {
    tracing::debug!(why, "token refused");
    ApiError { withheld_reason: Some(why), ..invalid(NOT_VALID) }
}

impl TokenPolicy {
    /// Checks a token's times at `now`. Arithmetic is checked: a lifetime that overflows is
    /// refused, not wrapped into a small one.
    pub fn check_times(&self, times: TokenTimes, now: i64) -> Result<(), ApiError> {
        let lifetime = times.exp.checked_sub(times.iat).ok_or_else(|| invalid("exp - iat is out of range"))?;
        if lifetime <= 0 {
            return Err(invalid("exp must be after iat"));
        }
        if lifetime > self.max_lifetime_secs {
            return Err(invalid(format!("token lifetime exceeds {} seconds", self.max_lifetime_secs)));
        }
        let oldest_iat = now.saturating_sub(self.max_lifetime_secs).saturating_sub(self.clock_skew_secs);
        if times.iat < oldest_iat || now > times.exp.saturating_add(self.clock_skew_secs) {
            return Err(ApiError::new(ProblemCode::TokenExpired, "the token has expired"));
        }
        let starts = times.nbf.map_or(times.iat, |nbf| nbf.max(times.iat));
        if starts > now.saturating_add(self.clock_skew_secs) {
            return Err(ApiError::new(ProblemCode::TokenExpired, "the token is not valid yet"));
        }
        Ok(())
    }
}

impl Authenticator {
    /// An authenticator over the registered keys, telling time by `clock`.
    pub fn new(keys: Arc<dyn ApiKeyStore>, policy: TokenPolicy, cache: CacheSettings, clock: Arc<dyn Clock>) -> Self {
        Authenticator { keys, policy, cache: CredentialCache::new(cache.window, cache.max_tokens), clock }
    }

    /// Authenticates an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, ApiError> {
        let value = authorization
            .ok_or_else(|| ApiError::new(ProblemCode::TokenMissing, "an Authorization header is required"))?;
        if value.len() > self.policy.max_token_bytes {
            return Err(invalid("the Authorization header is too long"));
        }
        let instant = self.clock.now();
        let now = instant.timestamp();
        let Some(cache) = &self.cache else {
            return Ok(self.verify(value, now, instant, KeyRead::Cached).await?.caller);
        };
        let digest = CredentialCache::token_digest(value);
        if let Some(known) = cache.token(&digest, instant) {
            self.policy.check_times(known.times, now)?;
            return Ok(known.caller);
        }
        let verified = self.verify(value, now, instant, KeyRead::Cached).await?;
        cache.remember_token(digest, verified.clone());
        Ok(verified.caller)
    }

    /// Verifies an `Authorization` header value as a request would, but reading its key as
    /// stored now (an inspection must not be answered from the credential cache). On refusal,
    /// the error's `withheld_reason` says which key check failed.
    pub async fn inspect(&self, authorization: &[u8]) -> Result<(Caller, TokenTimes), ApiError> {
        if authorization.len() > self.policy.max_token_bytes {
            return Err(invalid("the Authorization header is too long"));
        }
        let instant = self.clock.now();
        let verified = self.verify(authorization, instant.timestamp(), instant, KeyRead::Fresh).await?;
        Ok((verified.caller, verified.times))
    }

    /// The app a key id belongs to, read as stored now.
    pub async fn key_app(&self, kid: &str) -> Result<Option<crate::domain::AppId>, ApiError> {
        Ok(self.keys.find_api_key(kid).await?.map(|record| record.app_id))
    }

    /// The key id a token names, unverified.
    pub fn stated_kid(authorization: &str) -> Option<String> {
        let (scheme, token) = authorization.split_once(' ')?;
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            jwt::eddsa_kid(token).ok()
        } else if scheme.eq_ignore_ascii_case("virgil") {
            VirgilJwt::parse(token).ok().map(|jwt| jwt.header.kid)
        } else {
            None
        }
    }

    async fn verify(
        &self,
        value: &[u8],
        now: i64,
        instant: DateTime<Utc>,
        read: KeyRead,
    ) -> Result<VerifiedToken, ApiError> {
        let value = std::str::from_utf8(value).map_err(|_| invalid("the Authorization header is not ASCII"))?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| invalid("use 'Bearer <jwt>' or 'Virgil <jwt>'"))?;
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            self.authenticate_bearer(token, now, instant, read).await
        } else if scheme.eq_ignore_ascii_case("virgil") {
            self.authenticate_virgil(token, now, instant, read).await
        } else {
            Err(invalid("unsupported authorization scheme; use Bearer or Virgil"))
        }
    }

    /// Cheap checks first (the pinned algorithm, the stated times, issuer and subject), then
    /// the key, then the signature: a junk token costs no verification and no database read.
    async fn authenticate_bearer(
        &self,
        token: &str,
        now: i64,
        instant: DateTime<Utc>,
        read: KeyRead,
    ) -> Result<VerifiedToken, ApiError> {
        let kid = jwt::eddsa_kid(token)?;
        let stated = jwt::unverified_claims(token)?;
        let stated_times = TokenTimes { iat: stated.iat, exp: stated.exp, nbf: stated.nbf };
        self.policy.check_times(stated_times, now)?;
        Identity::parse(&stated.sub).map_err(|e| invalid(format!("sub: {e}")))?;
        let key = self.usable_key(&kid, instant, read).await?;
        if stated.iss != key.record.app_id.as_str() {
            return Err(not_valid("the issuer is not the key's app"));
        }
        let claims = jwt::verify_eddsa(token, &key.record)?;
        let times = TokenTimes { iat: claims.iat, exp: claims.exp, nbf: claims.nbf };
        self.caller(key, &claims.iss, &claims.sub, times, now)
    }

    async fn authenticate_virgil(
        &self,
        token: &str,
        now: i64,
        instant: DateTime<Utc>,
        read: KeyRead,
    ) -> Result<VerifiedToken, ApiError> {
        let jwt = VirgilJwt::parse(token).map_err(|e| invalid(e.to_string()))?;
        let times = TokenTimes { iat: jwt.claims.iat, exp: jwt.claims.exp, nbf: jwt.claims.nbf };
        self.policy.check_times(times, now)?;
        let app = jwt.app_id().ok_or_else(|| invalid("iss must be virgil-<app id>"))?;
        let subject = jwt.identity().ok_or_else(|| invalid("sub must be identity-<identity>"))?;
        Identity::parse(subject).map_err(|e| invalid(format!("sub: {e}")))?;
        let key = self.usable_key(&jwt.header.kid, instant, read).await?;
        if app != key.record.app_id.as_str() {
            return Err(not_valid("the issuer is not the key's app"));
        }
        let public = PublicKey::from_bytes(&key.record.public_key).map_err(|_| not_valid("the API key is unusable"))?;
        public.check_strong().map_err(|_| not_valid("the API key is weak"))?;
        jwt.verify(&public).map_err(|_| not_valid("the signature does not verify"))?;
        self.caller(key, app, subject, times, now)
    }

    async fn usable_key(&self, kid: &str, instant: DateTime<Utc>, read: KeyRead) -> Result<KnownKey, ApiError> {
        let load = self.keys.find_api_key(kid);
        let cache = self.cache.as_ref().filter(|_| read == KeyRead::Cached);
        let found = match cache {
            None => load.await?.map(|record| KnownKey { record, read_at: instant }),
            Some(cache) => cache.key(kid, instant, load).await?,
        };
        let key = found.ok_or_else(|| not_valid("unknown key id"))?;
        if key.record.revoked_at.is_some() {
            return Err(not_valid("the key is revoked"));
        }
        Ok(key)
    }

    fn caller(
        &self,
        key: KnownKey,
        issuer: &str,
        subject: &str,
        times: TokenTimes,
        now: i64,
    ) -> Result<VerifiedToken, ApiError> {
        if issuer != key.record.app_id.as_str() {
            return Err(not_valid("the issuer is not the key's app"));
        }
        self.policy.check_times(times, now)?;
        let subject = Identity::parse(subject).map_err(|e| invalid(format!("sub: {e}")))?;
        let KnownKey { record, read_at } = key;
        let caller = Caller { app_id: record.app_id, subject, role: record.role };
        Ok(VerifiedToken { caller, times, key_read_at: read_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: TokenPolicy = TokenPolicy { max_lifetime_secs: 3600, clock_skew_secs: 60, max_token_bytes: 8192 };

    fn code(times: TokenTimes, now: i64) -> Option<ProblemCode> {
        POLICY.check_times(times, now).err().map(|e| e.code)
    }

    #[test]
    fn token_times_are_checked_with_skew_and_a_lifetime_cap() {
        let t = |iat, exp, nbf| TokenTimes { iat, exp, nbf };
        assert_eq!(code(t(1000, 2000, None), 1500), None);
        assert_eq!(code(t(1000, 2000, None), 2060), None, "within skew after exp");
        assert_eq!(code(t(1000, 2000, None), 2061), Some(ProblemCode::TokenExpired));
        assert_eq!(code(t(1000, 2000, None), 940), None, "within skew before iat");
        assert_eq!(code(t(1000, 2000, None), 939), Some(ProblemCode::TokenExpired));
        assert_eq!(code(t(1000, 2000, Some(1500)), 1200), Some(ProblemCode::TokenExpired));
        assert_eq!(code(t(1000, 4601, None), 1500), Some(ProblemCode::TokenInvalid), "lifetime over the cap");
        assert_eq!(code(t(1000, 1000, None), 1000), Some(ProblemCode::TokenInvalid));
    }

    /// The review's never-expiring token: `exp - iat` overflowed and wrapped to a small number.
    #[test]
    fn a_lifetime_that_overflows_is_refused_and_iat_is_bounded() {
        let t = |iat, exp| TokenTimes { iat, exp, nbf: None };
        assert_eq!(code(t(-1, i64::MAX), 1500), Some(ProblemCode::TokenInvalid));
        assert_eq!(code(t(i64::MIN, 0), 1500), Some(ProblemCode::TokenInvalid));
        assert_eq!(code(t(i64::MIN, i64::MAX), 1500), Some(ProblemCode::TokenInvalid));
        // An iat far in the past with a short lifetime is expired, not merely old.
        assert_eq!(code(t(1500 - 3600 - 61, 1500 - 61), 1500), Some(ProblemCode::TokenExpired));
        assert_eq!(code(t(i64::MAX - 10, i64::MAX), 1500), Some(ProblemCode::TokenExpired));
    }
}
