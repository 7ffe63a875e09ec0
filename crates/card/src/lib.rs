//! # The Cardinal card format
//!
//! A **card** is a self-signed statement "identity X holds public key K". Cardinal speaks the
//! Virgil Cards v5 *RawSignedModel* form, byte for byte, so apps written against Virgil's SDKs
//! work unchanged.
//!
//! ## RawSignedModel
//!
//! ```json
//! {"content_snapshot": "<base64>", "signatures": [{"signer": "self", "signature": "<base64>", "snapshot": "<base64, optional>"}]}
//! ```
//!
//! * `content_snapshot` is standard base64 (with `=` padding) of a compact JSON object, the
//!   **snapshot**, with the fields `identity` (1 to 1024 bytes of printable ASCII), optional
//!   `previous_card_id` (64 lowercase hex characters, the card this one rotates), `created_at`
//!   (Unix seconds, an integer above 0), `version` (exactly `"5.0"`) and `public_key` (base64 of
//!   the key's DER SubjectPublicKeyInfo; only Ed25519, RFC 8410, is accepted).
//! * The snapshot bytes are the contract: they are stored and returned exactly as received and are
//!   never re-serialised. Every hash and signature is computed over those bytes.
//! * The **card id** is the lowercase hex of the first 32 bytes of SHA-512 of the decoded snapshot.
//! * `signatures` holds 1 to 8 entries with distinct non-empty `signer` names. Exactly one is
//!   `"self"`, made by the card's own key. `"virgil"` is reserved for the service's
//!   countersignature, which the service appends on publish; clients may not send it. An entry's
//!   optional `snapshot` carries *extra* signed bytes (at most 1024).
//!
//! ## Signatures
//!
//! A signature is Virgil's 83-byte form: the DER
//! `SEQUENCE { AlgorithmIdentifier { sha512, NULL }, OCTET STRING(64) }`, i.e. the fixed 19-byte
//! prefix `3051300d060960864801650304020305000440` followed by a 64-byte Ed25519 (RFC 8032)
//! signature over the 64-byte **SHA-512 digest** of the message (not over the message itself, and
//! not Ed25519ph). A signer signs `snapshot bytes || extra snapshot bytes`; the service
//! countersignature signs the snapshot bytes alone.
//!
//! ## Keys
//!
//! Public keys travel as SPKI DER (44 bytes for Ed25519), private keys as PKCS#8 v1 DER (48 bytes)
//! or its PEM armour.
//!
//! ## Tokens and the event log
//!
//! [`virgil_jwt`] parses and verifies Virgil's `VEDS512` JWTs over the bytes received. [`log`]
//! defines the canonical bytes of a directory event and the SHA-256 hash chain that links each
//! event to the one before it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod b64;
pub mod card;
pub mod crypto;
pub mod error;
pub mod id;
pub mod identity;
pub mod log;
pub mod tlog;
pub mod virgil_jwt;
pub mod wire;

pub use card::{CardContent, FormatLimits, ParsedCard, RawSignature, RawSignedModel, SELF_SIGNER, SERVICE_SIGNER};
pub use crypto::{PublicKey, SigningKey};
pub use error::CardError;
pub use id::CardId;
pub use identity::Identity;
