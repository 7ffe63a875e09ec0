//! Bearer tokens: EdDSA JWTs through jsonwebtoken, with the algorithm pinned.

use std::collections::HashSet;

use cardinal_card::SigningKey;
use cardinal_card::wire::ProblemCode;
use ed25519_dalek::VerifyingKey;
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

/// Verifies a token's signature with a registered key and returns its claims. Times are checked
/// by the caller, the same way for both schemes.
pub fn verify_eddsa(token: &str, key: &ApiKeyRecord) -> Result<Claims, ApiError> {
    // jsonwebtoken's rust_crypto backend panics on a short key: parse it with dalek first.
    let raw: &[u8; 32] = key.public_key.as_slice().try_into().map_err(|_| invalid("the API key is unusable"))?;
    let verifying = VerifyingKey::from_bytes(raw).map_err(|_| invalid("the API key is unusable"))?;
    let decoding = DecodingKey::from_ed_der(verifying.as_bytes());
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| invalid(format!("token rejected: {e}")))
}

/// Mints a native token (for `cardinal token`, the SDK's tests and the README's curl examples).
pub fn mint_eddsa(key: &SigningKey, kid: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let encoding = EncodingKey::from_ed_der(&key.to_pkcs8_der());
    jsonwebtoken::encode(&header, claims, &encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::KeyRole;

    fn key(public_key: Vec<u8>) -> ApiKeyRecord {
        ApiKeyRecord {
            kid: "k".into(),
            app_id: "a".into(),
            role: KeyRole::App,
            public_key,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn short_or_invalid_registered_keys_are_errors_not_panics() {
        // jsonwebtoken's rust_crypto backend panics on a short EdDSA key; keys are parsed first.
        let signer = SigningKey::from_seed(&[3u8; 32]);
        let claims = Claims { iss: "a".into(), sub: "alice".into(), iat: 1, exp: 2, nbf: None };
        let token = mint_eddsa(&signer, "k", &claims).unwrap();
        for bytes in [vec![], vec![1u8; 16], vec![1u8; 31], vec![1u8; 33]] {
            assert_eq!(verify_eddsa(&token, &key(bytes)).unwrap_err().code, ProblemCode::TokenInvalid);
        }
        assert_eq!(verify_eddsa(&token, &key(signer.public_key().raw_bytes().to_vec())).unwrap(), claims);
    }

    #[test]
    fn only_eddsa_headers_name_a_key() {
        assert!(eddsa_kid("").is_err());
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({}),
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(eddsa_kid(&hs256).is_err());
    }
}
