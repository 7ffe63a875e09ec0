//! Bearer tokens: EdDSA JWTs through jsonwebtoken, with the algorithm pinned and signatures
//! verified strictly.
//!
//! jsonwebtoken's bundled backends verify Ed25519 with dalek's non-strict `verify`, under which a
//! small-order public key accepts forged signatures. Cardinal installs its own jsonwebtoken
//! `CryptoProvider` instead: EdDSA only (every other algorithm is refused before a key is used),
//! `verify_strict`, weak keys refused. It also keeps RSA and ECDSA code out of the build.

use std::collections::HashSet;
use std::sync::OnceLock;

use cardinal_card::wire::ProblemCode;
use cardinal_card::{SigningKey, b64};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::ed25519::signature::{self, Signer, Verifier};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::storage::ApiKeyRecord;

/// The claims of a native token. All but `nbf` are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The app id.
    pub iss: String,
    /// The identity, or the admin's name.
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(ProblemCode::TokenInvalid, detail)
}

struct StrictEdDsaSigner(ed25519_dalek::SigningKey);

impl Signer<Vec<u8>> for StrictEdDsaSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(message).to_bytes().to_vec())
    }
}

impl JwtSigner for StrictEdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct StrictEdDsaVerifier(VerifyingKey);

impl Verifier<Vec<u8>> for StrictEdDsaVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let signature = ed25519_dalek::Signature::from_slice(signature)?;
        self.0.verify_strict(message, &signature)
    }
}

impl JwtVerifier for StrictEdDsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::EdDSA {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(key.as_bytes()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(StrictEdDsaSigner(key)))
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::EdDSA {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let raw: &[u8; 32] = key.try_get_as_bytes()?.try_into().map_err(|_| ErrorKind::InvalidEddsaKey)?;
    let key = VerifyingKey::from_bytes(raw).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    if key.is_weak() {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    Ok(Box::new(StrictEdDsaVerifier(key)))
}

/// JWKs are never used, so their helpers stay unimplemented.
static PROVIDER: CryptoProvider =
    CryptoProvider { signer_factory, verifier_factory, key_utils: KeyUtils::new_unimplemented() };

/// Installs [`PROVIDER`] once per process. `false` if another provider was installed first:
/// then nothing is signed or verified (it might not be strict).
fn provider_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| match PROVIDER.install_default() {
        Ok(()) => true,
        Err(existing) => std::ptr::eq(existing, &PROVIDER),
    })
}

fn require_provider() -> Result<(), ApiError> {
    if provider_installed() {
        Ok(())
    } else {
        Err(ApiError::internal(&"another jsonwebtoken CryptoProvider is installed; EdDSA tokens are refused"))
    }
}

/// Reads the `kid` of a token whose header says `EdDSA`; any other `alg` (`none`, HS*, RS*…)
/// is refused here, before a key is even looked up.
pub fn eddsa_kid(token: &str) -> Result<String, ApiError> {
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the one place that reads headers, and it pins the algorithm"
    )]
    let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("malformed token: {e}")))?;
    if header.alg != Algorithm::EdDSA {
        return Err(invalid("the token's alg must be EdDSA"));
    }
    header.kid.ok_or_else(|| invalid("the token has no kid"))
}

/// The claims as the token states them, before its signature is checked: only to refuse a token
/// cheaply (expired, wrong app) before a key is read or a signature verified. Nothing is granted
/// on them; [`verify_eddsa`] returns the claims that are.
pub fn unverified_claims(token: &str) -> Result<Claims, ApiError> {
    let payload = token.split('.').nth(1).ok_or_else(|| invalid("malformed token: no payload"))?;
    let bytes = b64::decode_url(payload).ok_or_else(|| invalid("malformed token: the payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("malformed token: {e}")))
}

/// Verifies a token's signature with a registered key and returns its claims. Times are checked
/// by the caller, the same way for both schemes.
pub fn verify_eddsa(token: &str, key: &ApiKeyRecord) -> Result<Claims, ApiError> {
    require_provider()?;
    // jsonwebtoken's rust_crypto backend panicked on a short key; parse with dalek first anyway.
    let raw: &[u8; 32] =
        key.public_key.as_slice().try_into().map_err(|_| super::not_valid("the API key is unusable"))?;
    let verifying = VerifyingKey::from_bytes(raw).map_err(|_| super::not_valid("the API key is unusable"))?;
    let decoding = DecodingKey::from_ed_der(verifying.as_bytes());
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Claims>(token, &decoding, &validation).map(|data| data.claims).map_err(|error| {
        tracing::debug!(%error, "token signature refused");
        super::not_valid("the signature does not verify")
    })
}

/// Mints a native token (for `cardinal token`, the SDK's tests and the README's curl examples).
pub fn mint_eddsa(key: &SigningKey, kid: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    if !provider_installed() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let encoding = EncodingKey::from_ed_der(&key.to_pkcs8_der());
    jsonwebtoken::encode(&header, claims, &encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, KeyRole};

    fn key(public_key: Vec<u8>) -> ApiKeyRecord {
        ApiKeyRecord {
            kid: "k".into(),
            app_id: AppId::parse("a").unwrap(),
            role: KeyRole::App,
            public_key,
            created_at: 0,
            revoked_at: None,
        }
    }

    fn b64url_json(value: &serde_json::Value) -> String {
        b64::encode_url(value.to_string().as_bytes())
    }

    #[test]
    fn short_or_invalid_registered_keys_are_errors_not_panics() {
        let signer = SigningKey::from_seed(&[3u8; 32]);
        let claims = Claims { iss: "a".into(), sub: "alice".into(), iat: 1, exp: 2, nbf: None };
        let token = mint_eddsa(&signer, "k", &claims).unwrap();
        for bytes in [vec![], vec![1u8; 16], vec![1u8; 31], vec![1u8; 33]] {
            assert_eq!(verify_eddsa(&token, &key(bytes)).unwrap_err().code, ProblemCode::TokenInvalid);
        }
        assert_eq!(verify_eddsa(&token, &key(signer.public_key().raw_bytes().to_vec())).unwrap(), claims);
    }

    /// The forgery of the security review: with the identity point registered as a key, R =
    /// identity and S = 0 satisfies the non-strict equation for any message.
    #[test]
    fn a_forged_signature_for_a_small_order_key_is_refused() {
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let header = b64url_json(&serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k"}));
        let payload = b64url_json(&serde_json::json!({"iss": "a", "sub": "root", "iat": 1, "exp": 2}));
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity_point);
        let token = format!("{header}.{payload}.{}", b64::encode_url(&forged));
        // dalek's non-strict check is fooled: the test shows what strictness protects from.
        let weak = VerifyingKey::from_bytes(&identity_point).unwrap();
        let message = format!("{header}.{payload}");
        assert!(weak.verify(message.as_bytes(), &ed25519_dalek::Signature::from_bytes(&forged)).is_ok());
        let refused = verify_eddsa(&token, &key(identity_point.to_vec())).unwrap_err();
        assert_eq!(refused.code, ProblemCode::TokenInvalid);
    }

    #[test]
    fn only_eddsa_headers_name_a_key_and_only_eddsa_is_signed() {
        assert!(eddsa_kid("").is_err());
        let hs256 = format!(
            "{}.{}.{}",
            b64url_json(&serde_json::json!({"alg": "HS256", "kid": "k"})),
            b64url_json(&serde_json::json!({})),
            b64::encode_url(&[0u8; 32])
        );
        assert!(eddsa_kid(&hs256).is_err());
        assert!(provider_installed());
        let refused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({}),
            &EncodingKey::from_secret(b"s"),
        );
        assert!(refused.is_err(), "the provider signs nothing but EdDSA");
    }

    #[test]
    fn unverified_claims_are_read_without_a_key() {
        let signer = SigningKey::from_seed(&[4u8; 32]);
        let claims = Claims { iss: "a".into(), sub: "bob".into(), iat: 10, exp: 20, nbf: Some(11) };
        assert_eq!(unverified_claims(&mint_eddsa(&signer, "k", &claims).unwrap()).unwrap(), claims);
        assert!(unverified_claims("a").is_err());
        assert!(unverified_claims("a.!!.b").is_err());
    }
}
