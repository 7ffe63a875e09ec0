//! The shapes of Cardinal's native `/v1` API, shared by the server and its clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::card::RawSignedModel;

/// A card's place in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    /// The newest card of a chain that is not revoked.
    Active,
    /// Rotated: a newer card names it as `previous_card_id`.
    Superseded,
    /// Its chain was revoked.
    Revoked,
}

impl CardStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Superseded => "superseded",
            CardStatus::Revoked => "revoked",
        }
    }
}

/// A card in a native response. `R` is the raw model: parsed in clients, pre-encoded JSON in the
/// server, which never re-encodes a stored card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CardView<R = RawSignedModel> {
    /// The card id.
    pub id: String,
    /// Whose card it is.
    pub identity: String,
    /// Base64 of the SPKI DER public key.
    pub public_key: String,
    /// The snapshot's `created_at`, Unix seconds.
    pub created_at: i64,
    /// The card this one rotated.
    pub previous_card_id: Option<String>,
    /// Where the card stands.
    pub status: CardStatus,
    /// The card that rotated this one.
    pub superseded_by: Option<String>,
    /// When its chain was revoked, Unix seconds.
    pub revoked_at: Option<i64>,
    /// Why its chain was revoked.
    pub revocation_reason: Option<String>,
    /// The card as published, with the service countersignature.
    pub raw: R,
}

/// The answer to a lookup: every requested identity is a key, with its active cards, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupResponse<R = RawSignedModel> {
    /// Identity → active cards.
    pub identities: BTreeMap<String, Vec<CardView<R>>>,
}

/// Body of `POST /v1/cards/search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchRequest {
    /// The identities to look up.
    pub identities: Vec<String>,
    /// `true`: add the log's checkpoint and each card's entry and inclusion proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proofs: Option<bool>,
}

/// Body of the revoke calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeRequest {
    /// Why; required on the admin route.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Body of `POST /v1/admin/tokens/inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInspectRequest {
    /// The token as it would be sent: `Bearer <jwt>` or `Virgil <jwt>`; a bare JWT is read as
    /// Virgil when its header says `VEDS512`, else as Bearer.
    pub token: String,
}

/// What the server would do with a token, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInspection {
    /// Whether a request with this token would be authenticated now.
    pub accepted: bool,
    /// Accepted: the caller's app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Accepted: the identity, or the admin's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Accepted: `app` or `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Accepted: when it expires, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Refused: the problem code a request would get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ProblemCode>,
    /// Refused: the HTTP status a request would get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Refused: the detail a request would get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Refused: what a request is not told, when the token's key is one of the inspecting
    /// admin's app (unknown key, revoked key, another app's key, a signature that fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `GET /v1/service-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceKeyResponse {
    /// Always `virgil`: the signer name of the countersignature.
    pub signer: String,
    /// Base64 of the service key's SPKI DER.
    pub public_key: String,
}

/// One event of the admin log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Position in the app's log.
    pub seq: i64,
    /// The event's canonical fields.
    pub event: crate::log::EventBody,
    /// Hex of the previous event's hash.
    pub prev_hash: String,
    /// Hex of this event's hash.
    pub hash: String,
}

/// A page of `GET /v1/admin/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<EventView>,
    /// Pass as `after` to read on.
    pub next: i64,
}

/// An `application/problem+json` error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable machine-readable code.
    pub code: ProblemCode,
}

macro_rules! problem_codes {
    ($($variant:ident => $text:literal, $title:literal;)*) => {
        /// Every stable error code of the native API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum ProblemCode {
            $(#[doc = $title] $variant,)*
            /// A code this version does not know (from a newer server).
            #[serde(other)]
            Unknown,
        }

        impl ProblemCode {
            /// The snake_case code.
            pub fn as_str(self) -> &'static str {
                match self { $(ProblemCode::$variant => $text,)* ProblemCode::Unknown => "unknown" }
            }

            /// A short human title.
            pub fn title(self) -> &'static str {
                match self { $(ProblemCode::$variant => $title,)* ProblemCode::Unknown => "Unknown problem" }
            }

            /// Every known code.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)*];
        }
    };
}

problem_codes! {
    InvalidRequest => "invalid_request", "The request is malformed";
    InvalidSnapshot => "invalid_snapshot", "The card snapshot is malformed";
    InvalidVersion => "invalid_version", "The card version must be 5.0";
    InvalidCreatedAt => "invalid_created_at", "The card's created_at is invalid";
    InvalidPublicKey => "invalid_public_key", "The card's public key is malformed or of the wrong size";
    UnsupportedKeyType => "unsupported_key_type", "Only Ed25519 keys are supported";
    InvalidPreviousCardId => "invalid_previous_card_id", "previous_card_id is malformed";
    InvalidSignatureEntry => "invalid_signature_entry", "A signature entry is malformed";
    TooManySignatures => "too_many_signatures", "The card carries too many signatures";
    ReservedSigner => "reserved_signer", "The signer name is reserved for the service";
    DuplicateSigner => "duplicate_signer", "A signer appears more than once";
    SelfSignatureMissing => "self_signature_missing", "The card has no self signature";
    ExtraSnapshotTooLarge => "extra_snapshot_too_large", "An extra snapshot is too large";
    BadSignature => "bad_signature", "The self signature does not verify";
    SnapshotTooLarge => "snapshot_too_large", "The card snapshot is too large";
    CardTooLarge => "card_too_large", "The card is too large";
    InvalidIdentity => "invalid_identity", "The identity is invalid";
    InvalidCardId => "invalid_card_id", "The card id is invalid";
    TooManyIdentities => "too_many_identities", "Too many identities in one lookup";
    PreviousCardNotFound => "previous_card_not_found", "The previous card does not exist";
    TokenMissing => "token_missing", "An access token is required";
    TokenInvalid => "token_invalid", "The access token is invalid";
    TokenExpired => "token_expired", "The access token is expired or not yet valid";
    IdentityMismatch => "identity_mismatch", "The card's identity is not the token's";
    Forbidden => "forbidden", "Not allowed";
    NotFound => "not_found", "Not found";
    MethodNotAllowed => "method_not_allowed", "Method not allowed";
    CardExists => "card_exists", "The card already exists";
    IdentityTaken => "identity_taken", "The identity already has an active card chain";
    AlreadySuperseded => "already_superseded", "The previous card was already superseded";
    ChainRevoked => "chain_revoked", "The card's chain is revoked";
    PreviousCardMismatch => "previous_card_mismatch", "The previous card belongs to another identity";
    TooManyChains => "too_many_chains", "The identity has as many live card chains as allowed";
    AnswerTooLarge => "answer_too_large", "The answer would be too large; ask for fewer identities";
    PayloadTooLarge => "payload_too_large", "The request body is too large";
    RequestTimeout => "request_timeout", "The request body was not received in time";
    HeadersTooLarge => "headers_too_large", "The request headers are too large";
    RateLimited => "rate_limited", "Too many requests";
    Unavailable => "unavailable", "The service is temporarily unavailable";
    Internal => "internal", "Internal error";
    KeyknoxEntryExists => "keyknox_entry_exists", "The Keyknox entry exists; send its hash as the previous hash";
    KeyknoxHashMismatch => "keyknox_hash_mismatch", "The Keyknox entry changed since its hash was read";
    KeyknoxValueTooLarge => "keyknox_value_too_large", "The Keyknox meta or value is too large";
    TooManyReaders => "too_many_readers", "The Keyknox entry would have too many readers";
    TooManyEntries => "too_many_entries", "The identity owns as many Keyknox entries as allowed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_codes_serialise_as_their_snake_case_text() {
        for code in ProblemCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ProblemCode>(&json).unwrap(), *code);
        }
        assert_eq!(serde_json::from_str::<ProblemCode>("\"from_the_future\"").unwrap(), ProblemCode::Unknown);
    }
}
