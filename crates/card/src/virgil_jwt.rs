//! Virgil's `VEDS512` JWTs: parsed and verified over the bytes received, never re-encoded.
//!
//! `base64url(header) "." base64url(body) "." base64url(signature)`, where the header is
//! `{"alg":"VEDS512","kid":…,"typ":"JWT","cty":"virgil-jwt;v=1"}`, the body
//! `{"iss":"virgil-<app>","sub":"identity-<identity>","iat":…,"exp":…}` and the signature the
//! 83-byte Virgil form over the ASCII bytes of the first two parts.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::b64;
use crate::crypto::{PublicKey, SigningKey};

/// The `alg` of a Virgil token.
pub const ALGORITHM: &str = "VEDS512";
/// The `cty` of a Virgil token.
pub const CONTENT_TYPE: &str = "virgil-jwt;v=1";
const ISSUER_PREFIX: &str = "virgil-";
const SUBJECT_PREFIX: &str = "identity-";

/// Why a Virgil token was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON with the required fields.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg`, `typ` or `cty` is not Virgil's.
    #[error("token header must be alg VEDS512, typ JWT, cty virgil-jwt;v=1")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
}

/// A Virgil token's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Must be `VEDS512`.
    pub alg: String,
    /// The API key id.
    pub kid: String,
    /// Must be `JWT`.
    pub typ: String,
    /// Must be `virgil-jwt;v=1`.
    pub cty: String,
}

/// A Virgil token's claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// `virgil-<app id>`.
    pub iss: String,
    /// `identity-<identity>`.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Not before, Unix seconds (not written by Virgil's SDKs, honoured when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Additional data, opaque to the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ada: Option<serde_json::Value>,
}

/// A parsed, not yet verified, Virgil token.
#[derive(Debug, Clone)]
pub struct VirgilJwt {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl VirgilJwt {
    /// Splits and decodes a token and checks its header. The signature is checked by
    /// [`VirgilJwt::verify`] once the caller has found the key named by `kid`.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("a token has three dot-separated parts".into()));
        };
        let decode = |part: &str, what: &str| {
            b64::decode_url(part).ok_or_else(|| JwtError::Malformed(format!("{what} is not base64url")))
        };
        let header_json: Header = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
        if header_json.alg != ALGORITHM || header_json.typ != "JWT" || header_json.cty != CONTENT_TYPE {
            return Err(JwtError::WrongAlgorithm);
        }
        let claims: Claims =
            serde_json::from_slice(&decode(body, "body")?).map_err(|e| JwtError::Malformed(format!("body: {e}")))?;
        let signature = decode(signature, "signature")?;
        let signing_input = token.as_bytes()[..header.len() + 1 + body.len()].to_vec();
        Ok(VirgilJwt { header: header_json, claims, signing_input, signature })
    }

    /// Verifies the signature over the first two parts exactly as received.
    pub fn verify(&self, key: &PublicKey) -> Result<(), JwtError> {
        if key.verify_virgil(&self.signing_input, &self.signature) { Ok(()) } else { Err(JwtError::BadSignature) }
    }

    /// The app id named by `iss`, if it has Virgil's prefix.
    pub fn app_id(&self) -> Option<&str> {
        self.claims.iss.strip_prefix(ISSUER_PREFIX)
    }

    /// The identity named by `sub`, if it has Virgil's prefix.
    pub fn identity(&self) -> Option<&str> {
        self.claims.sub.strip_prefix(SUBJECT_PREFIX)
    }
}

/// Mints a Virgil token exactly as Virgil's `JwtGenerator` does.
pub fn sign(key: &SigningKey, kid: &str, app_id: &str, identity: &str, iat: i64, exp: i64) -> String {
    let header = Header { alg: ALGORITHM.into(), kid: kid.into(), typ: "JWT".into(), cty: CONTENT_TYPE.into() };
    let claims = Claims {
        iss: format!("{ISSUER_PREFIX}{app_id}"),
        sub: format!("{SUBJECT_PREFIX}{identity}"),
        iat,
        exp,
        nbf: None,
        ada: None,
    };
    // Structs of strings and integers always serialise.
    let header = b64::encode_url(&serde_json::to_vec(&header).expect("a header of strings always serialises"));
    let body = b64::encode_url(&serde_json::to_vec(&claims).expect("claims of strings and integers always serialise"));
    let input = format!("{header}.{body}");
    let signature = b64::encode_url(&key.sign_virgil(input.as_bytes()));
    format!("{input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_altered_ones_do_not() {
        let key = SigningKey::from_seed(&[5u8; 32]);
        let token = sign(&key, "kid1", "app", "alice", 100, 200);
        let jwt = VirgilJwt::parse(&token).unwrap();
        assert_eq!(jwt.app_id(), Some("app"));
        assert_eq!(jwt.identity(), Some("alice"));
        assert_eq!(jwt.header.kid, "kid1");
        jwt.verify(&key.public_key()).unwrap();
        assert_eq!(jwt.verify(&SigningKey::generate().public_key()), Err(JwtError::BadSignature));

        let other_body = b64::encode_url(br#"{"iss":"virgil-app","sub":"identity-mallory","iat":100,"exp":200}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], other_body, parts[2]);
        assert_eq!(VirgilJwt::parse(&forged).unwrap().verify(&key.public_key()), Err(JwtError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_errors() {
        assert!(matches!(VirgilJwt::parse(""), Err(JwtError::Malformed(_))));
        assert!(matches!(VirgilJwt::parse("a.b"), Err(JwtError::Malformed(_))));
        assert!(matches!(VirgilJwt::parse("a.b.c.d"), Err(JwtError::Malformed(_))));
        assert!(matches!(VirgilJwt::parse("!.!.!"), Err(JwtError::Malformed(_))));
        let none_alg = b64::encode_url(br#"{"alg":"none","kid":"k","typ":"JWT","cty":"virgil-jwt;v=1"}"#);
        assert_eq!(VirgilJwt::parse(&format!("{none_alg}.e30.")).unwrap_err(), JwtError::WrongAlgorithm);
    }
}
