//! The one place where errors become HTTP responses: status, stable code, problem+json body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use cardinal_card::CardError;
use cardinal_card::wire::{Problem, ProblemCode};

use crate::directory::DirectoryError;
use crate::keyknox::KeyknoxError;
use crate::storage::StorageError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct ApiError {
    /// The stable code; it decides the status.
    pub code: ProblemCode,
    /// What went wrong this time, for humans.
    pub detail: String,
    /// Virgil's finer numeric code, where the cause is known more precisely than `code` says.
    pub virgil_code: Option<u32>,
    /// Seconds to wait before retrying (rate limits).
    pub retry_after: Option<u64>,
    /// Why a refusal happened where the client is deliberately told less (which of a token's
    /// key checks failed): for the logs and an admin's token inspection, never in a response.
    pub withheld_reason: Option<&'static str>,
}

impl ApiError {
    /// An error with a code and a detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into(), virgil_code: None, retry_after: None, withheld_reason: None }
    }

    /// Tells the client when to retry.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Sets Virgil's finer numeric code.
    pub fn with_virgil_code(mut self, code: u32) -> Self {
        self.virgil_code = Some(code);
        self
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::InvalidRequest, detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::NotFound, detail)
    }

    /// A 500 whose cause is logged here and never shown to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ProblemCode::Internal, "internal error; the request id is in the X-Request-Id header and the logs")
    }
}

/// The HTTP status of each code. Exhaustive: a new code does not compile until it has one.
pub fn status_of(code: ProblemCode) -> StatusCode {
    use ProblemCode::*;
    match code {
        InvalidRequest
        | InvalidSnapshot
        | InvalidVersion
        | InvalidCreatedAt
        | InvalidPublicKey
        | UnsupportedKeyType
        | InvalidPreviousCardId
        | InvalidSignatureEntry
        | TooManySignatures
        | ReservedSigner
        | DuplicateSigner
        | SelfSignatureMissing
        | ExtraSnapshotTooLarge
        | BadSignature
        | SnapshotTooLarge
        | CardTooLarge
        | AnswerTooLarge
        | InvalidIdentity
        | InvalidCardId
        | TooManyIdentities
        | PreviousCardNotFound
        | TooManyReaders => StatusCode::BAD_REQUEST,
        TokenMissing | TokenInvalid | TokenExpired => StatusCode::UNAUTHORIZED,
        IdentityMismatch | Forbidden => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        CardExists | IdentityTaken | AlreadySuperseded | ChainRevoked | PreviousCardMismatch | TooManyChains
        | KeyknoxEntryExists | KeyknoxHashMismatch | TooManyEntries => StatusCode::CONFLICT,
        PayloadTooLarge | KeyknoxValueTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Internal | Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds a client should wait before retrying a 503.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

impl ApiError {
    fn retry_after_secs(&self) -> Option<u64> {
        match self.code {
            ProblemCode::Unavailable => Some(self.retry_after.unwrap_or(UNAVAILABLE_RETRY_AFTER_SECS)),
            ProblemCode::RateLimited => Some(self.retry_after.unwrap_or(1)),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let problem = Problem {
            type_: format!("https://cardinal.dev/problems/{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if let Some(seconds) = self.retry_after_secs() {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Virgil")));
        }
        response.json(problem)
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::new(ProblemCode::Unavailable, "the database is unavailable; retry shortly")
            }
            // Refused by design under load, counted in the metrics: not worth a log line each.
            StorageError::Busy(_) => {
                ApiError::new(ProblemCode::Unavailable, "too many writes are waiting; retry shortly").retry_after(1)
            }
            StorageError::NotFound => ApiError::not_found("not found"),
            StorageError::TooLarge { max_bytes } => ApiError::new(
                ProblemCode::AnswerTooLarge,
                format!("the answer would exceed {max_bytes} bytes; ask for fewer identities per request"),
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl From<CardError> for ApiError {
    fn from(error: CardError) -> Self {
        use CardError::*;
        let (code, virgil) = match &error {
            SnapshotEmpty => (ProblemCode::InvalidSnapshot, 40001),
            SnapshotNotBase64 => (ProblemCode::InvalidSnapshot, 40002),
            SnapshotNotJson(_) => (ProblemCode::InvalidSnapshot, 40003),
            IdentityEmpty => (ProblemCode::InvalidIdentity, 40033),
            IdentityTooLong { .. } | IdentityNotPrintableAscii => (ProblemCode::InvalidIdentity, 40017),
            InvalidVersion => (ProblemCode::InvalidVersion, 40011),
            InvalidCreatedAt => (ProblemCode::InvalidCreatedAt, 40018),
            PublicKeyNotBase64 | InvalidKey(_) => (ProblemCode::InvalidPublicKey, 40012),
            PublicKeyTooShort { .. } => (ProblemCode::InvalidPublicKey, 40030),
            PublicKeyTooLong { .. } => (ProblemCode::InvalidPublicKey, 40029),
            // Virgil has no code for these; Cardinal's own are 4004x (README, "Coming from Virgil").
            UnsupportedKeyType => (ProblemCode::UnsupportedKeyType, virgil::UNSUPPORTED_KEY_TYPE),
            WeakKey => (ProblemCode::InvalidPublicKey, virgil::WEAK_KEY),
            SnapshotTooLong { .. } => (ProblemCode::SnapshotTooLarge, virgil::SNAPSHOT_TOO_LARGE),
            UnknownSnapshotField(_) => (ProblemCode::InvalidSnapshot, virgil::UNKNOWN_SNAPSHOT_FIELD),
            SignatureTooLong { .. } => (ProblemCode::InvalidSignatureEntry, virgil::SIGNATURE_TOO_LONG),
            CardTooLarge { .. } => (ProblemCode::CardTooLarge, virgil::CARD_TOO_LARGE),
            InvalidPreviousCardId => (ProblemCode::InvalidPreviousCardId, 40014),
            InvalidCardId => (ProblemCode::InvalidCardId, 10001),
            NoSignatures => (ProblemCode::InvalidSignatureEntry, 40022),
            SignerEmpty => (ProblemCode::InvalidSignatureEntry, 40035),
            SignerTooLong => (ProblemCode::InvalidSignatureEntry, 40036),
            SignatureNotBase64(_) => (ProblemCode::InvalidSignatureEntry, 40020),
            ExtraSnapshotNotBase64(_) => (ProblemCode::InvalidSignatureEntry, 40019),
            TooManySignatures { .. } => (ProblemCode::TooManySignatures, 40023),
            ReservedSigner => (ProblemCode::ReservedSigner, 40007),
            DuplicateSigner(_) => (ProblemCode::DuplicateSigner, 40031),
            SelfSignatureMissing => (ProblemCode::SelfSignatureMissing, 40008),
            ExtraSnapshotTooLong { .. } => (ProblemCode::ExtraSnapshotTooLarge, 40026),
            BadSignature => (ProblemCode::BadSignature, 40021),
        };
        ApiError::new(code, error.to_string()).with_virgil_code(virgil)
    }
}

impl From<crate::admin::AdminError> for ApiError {
    fn from(error: crate::admin::AdminError) -> Self {
        use crate::admin::AdminError as E;
        let detail = error.to_string();
        let code = match error {
            E::Storage(storage) => return storage.into(),
            E::NotAdmin => ProblemCode::Forbidden,
            E::InvalidPage(_) => ProblemCode::InvalidRequest,
            E::InvalidIdentity(_) => ProblemCode::InvalidIdentity,
            E::UnknownKey => ProblemCode::NotFound,
        };
        ApiError::new(code, detail)
    }
}

impl From<DirectoryError> for ApiError {
    fn from(error: DirectoryError) -> Self {
        use DirectoryError as E;
        let detail = error.to_string();
        let code = match error {
            E::Card(card) => return card.into(),
            E::Storage(storage) => return storage.into(),
            E::IdentityMismatch { .. } => ProblemCode::IdentityMismatch,
            E::Forbidden(_) => ProblemCode::Forbidden,
            E::CardNotFound => ProblemCode::NotFound,
            E::PreviousCardNotFound => ProblemCode::PreviousCardNotFound,
            E::PreviousCardMismatch => ProblemCode::PreviousCardMismatch,
            E::AlreadySuperseded => ProblemCode::AlreadySuperseded,
            E::ChainRevoked => ProblemCode::ChainRevoked,
            E::CardExists => ProblemCode::CardExists,
            E::IdentityTaken => ProblemCode::IdentityTaken,
            E::TooManyChains { .. } => ProblemCode::TooManyChains,
            E::AnswerTooLarge { .. } => ProblemCode::AnswerTooLarge,
            E::TooManyIdentities { .. } => ProblemCode::TooManyIdentities,
            E::NoIdentities => return ApiError::new(ProblemCode::InvalidRequest, detail).with_virgil_code(40200),
            E::InvalidReason(_) | E::InvalidPage(_) => ProblemCode::InvalidRequest,
            E::InvalidIdentity(_) => ProblemCode::InvalidIdentity,
            E::InvalidCardId => ProblemCode::InvalidCardId,
        };
        ApiError::new(code, detail)
    }
}

/// Cardinal's own numeric codes on the Virgil surface, for refusals Virgil's service has no code
/// for. They sit above Virgil's 400xx card codes, which end at 40037.
pub mod virgil {
    /// A second live chain under the single-chain policy.
    pub const IDENTITY_TAKEN: u32 = 40040;
    /// A card key that is not Ed25519.
    pub const UNSUPPORTED_KEY_TYPE: u32 = 40041;
    /// A small-order or non-canonical Ed25519 key.
    pub const WEAK_KEY: u32 = 40042;
    /// A snapshot over `limits.snapshot_bytes`.
    pub const SNAPSHOT_TOO_LARGE: u32 = 40043;
    /// A snapshot field the card format does not define.
    pub const UNKNOWN_SNAPSHOT_FIELD: u32 = 40044;
    /// A signature over `limits.signature_bytes`.
    pub const SIGNATURE_TOO_LONG: u32 = 40045;
    /// A card over `limits.card_bytes`.
    pub const CARD_TOO_LARGE: u32 = 40046;
    /// More live chains than `limits.live_chains_per_identity`.
    pub const TOO_MANY_CHAINS: u32 = 40047;
    /// An answer over `limits.answer_bytes`.
    pub const ANSWER_TOO_LARGE: u32 = 40048;

    /// Keyknox v2 push over an existing entry without a previous hash: Virgil's own code, which
    /// e3kit maps to `GroupTicketAlreadyExistsError`.
    pub const KEYKNOX_ENTRY_EXISTS: u32 = 50010;
    /// A Keyknox previous hash that is not the entry's (the code stand-ins that pass every e3kit
    /// flow used; the clients look at the 409 only).
    pub const KEYKNOX_HASH_MISMATCH: u32 = 50017;
    /// Cardinal's own Keyknox codes, above Virgil's known ones: meta or value over its limit.
    pub const KEYKNOX_TOO_LARGE: u32 = 50040;
    /// More readers than `limits.keyknox_readers_per_entry`.
    pub const KEYKNOX_TOO_MANY_READERS: u32 = 50041;
    /// More entries than `limits.keyknox_entries_per_identity`.
    pub const KEYKNOX_TOO_MANY_ENTRIES: u32 = 50042;
    /// A malformed root, path or key.
    pub const KEYKNOX_INVALID_NAME: u32 = 50043;
    /// Only one of meta and value set.
    pub const KEYKNOX_ONE_SIDED: u32 = 50044;
    /// A pull by someone the owner did not list as a reader, or with an admin token.
    pub const KEYKNOX_FORBIDDEN: u32 = 50045;
}

impl From<KeyknoxError> for ApiError {
    fn from(error: KeyknoxError) -> Self {
        use KeyknoxError as E;
        let detail = error.to_string();
        let (code, virgil_code) = match error {
            E::Storage(storage) => return storage.into(),
            E::Forbidden(_) => (ProblemCode::Forbidden, virgil::KEYKNOX_FORBIDDEN),
            E::InvalidName(_) => (ProblemCode::InvalidRequest, virgil::KEYKNOX_INVALID_NAME),
            E::InvalidIdentity(_) => (ProblemCode::InvalidIdentity, 40017),
            E::OneSided => (ProblemCode::InvalidRequest, virgil::KEYKNOX_ONE_SIDED),
            E::TooLarge { .. } => (ProblemCode::KeyknoxValueTooLarge, virgil::KEYKNOX_TOO_LARGE),
            E::TooManyReaders { .. } => (ProblemCode::TooManyReaders, virgil::KEYKNOX_TOO_MANY_READERS),
            E::TooManyEntries { .. } => (ProblemCode::TooManyEntries, virgil::KEYKNOX_TOO_MANY_ENTRIES),
            E::EntryExists => (ProblemCode::KeyknoxEntryExists, virgil::KEYKNOX_ENTRY_EXISTS),
            E::HashMismatch => (ProblemCode::KeyknoxHashMismatch, virgil::KEYKNOX_HASH_MISMATCH),
        };
        ApiError::new(code, detail).with_virgil_code(virgil_code)
    }
}

/// Cardinal's numeric codes for refused Pythia requests (Virgil's own are not published, apart
/// from 60007, throttled, which e3kit retries: `ratelimit::PYTHIA_THROTTLED`).
pub mod pythia_codes {
    /// `blinded_password` is not base64.
    pub const NOT_BASE64: u32 = 60101;
    /// Not 49 bytes with prefix 0x02 or 0x03 (relic's compressed G1 point).
    pub const NOT_A_COMPRESSED_POINT: u32 = 60102;
    /// x is not below p.
    pub const NON_CANONICAL: u32 = 60103;
    /// No point of the curve has this x.
    pub const NOT_ON_CURVE: u32 = 60104;
    /// The identity, or a point outside the prime-order subgroup.
    pub const NOT_IN_SUBGROUP: u32 = 60105;
    /// `brainkey_id` is too long.
    pub const BRAINKEY_ID_TOO_LONG: u32 = 60106;
    /// An admin token asked for a brainkey.
    pub const NOT_A_USER: u32 = 60107;
}

impl From<crate::pythia::PythiaError> for ApiError {
    fn from(error: crate::pythia::PythiaError) -> Self {
        use crate::pythia::PythiaError as E;
        use cardinal_pythia::BlindedPasswordError as B;
        let detail = error.to_string();
        let virgil = match &error {
            E::BlindedPassword(B::NotBase64) => pythia_codes::NOT_BASE64,
            E::BlindedPassword(B::Length(_) | B::Prefix(_)) => pythia_codes::NOT_A_COMPRESSED_POINT,
            E::BlindedPassword(B::NonCanonical) => pythia_codes::NON_CANONICAL,
            E::BlindedPassword(B::NotOnCurve) => pythia_codes::NOT_ON_CURVE,
            E::BlindedPassword(B::NotInSubgroup) => pythia_codes::NOT_IN_SUBGROUP,
            E::BrainkeyIdTooLong { .. } => pythia_codes::BRAINKEY_ID_TOO_LONG,
            E::NotAUser => {
                return ApiError::new(ProblemCode::Forbidden, detail).with_virgil_code(pythia_codes::NOT_A_USER);
            }
            E::Busy => return ApiError::new(ProblemCode::Unavailable, detail),
            E::Failed(_) => return ApiError::internal(&error),
        };
        ApiError::invalid_request(detail).with_virgil_code(virgil)
    }
}

/// The same error on the Virgil Cards v5 surface: Virgil's status and numeric code in a
/// `{"code","message"}` body. Every 4xx carries a JSON body: the Virgil SDK parses it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct VirgilError(#[from] pub ApiError);

/// Virgil's status and code for an error. The Virgil service answers 400 where Cardinal's
/// native API is more specific (403 identity mismatch, 409 conflicts); its clients expect that.
pub fn virgil_status_and_code(error: &ApiError) -> (StatusCode, u32) {
    use ProblemCode::*;
    let (status, code) = match error.code {
        InvalidRequest => (StatusCode::BAD_REQUEST, 30001),
        TooManyIdentities => (StatusCode::BAD_REQUEST, 40300),
        InvalidIdentity => (StatusCode::BAD_REQUEST, 40017),
        TokenMissing | TokenInvalid => (StatusCode::UNAUTHORIZED, 20300),
        TokenExpired => (StatusCode::UNAUTHORIZED, 20304),
        IdentityMismatch => (StatusCode::BAD_REQUEST, 40034),
        Forbidden => (StatusCode::FORBIDDEN, 40100),
        NotFound | InvalidCardId => (StatusCode::NOT_FOUND, 10001),
        MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 10001),
        CardExists => (StatusCode::BAD_REQUEST, 40027),
        // Virgil itself allowed several root cards per identity; Cardinal's single-chain
        // policy has no Virgil code, so it keeps the native status with a code of its own.
        IdentityTaken => (StatusCode::CONFLICT, virgil::IDENTITY_TAKEN),
        TooManyChains => (StatusCode::CONFLICT, virgil::TOO_MANY_CHAINS),
        // The SDKs surface the search limit's code; the remedy is the same: ask for fewer.
        AnswerTooLarge => (StatusCode::BAD_REQUEST, virgil::ANSWER_TOO_LARGE),
        PreviousCardNotFound => (StatusCode::BAD_REQUEST, 40015),
        PreviousCardMismatch => (StatusCode::BAD_REQUEST, 40032),
        AlreadySuperseded => (StatusCode::BAD_REQUEST, 40037),
        ChainRevoked => (StatusCode::FORBIDDEN, 40310),
        // Keyknox speaks only the Virgil surface: the native statuses, Keyknox's codes.
        KeyknoxEntryExists => (StatusCode::CONFLICT, virgil::KEYKNOX_ENTRY_EXISTS),
        KeyknoxHashMismatch => (StatusCode::CONFLICT, virgil::KEYKNOX_HASH_MISMATCH),
        KeyknoxValueTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, virgil::KEYKNOX_TOO_LARGE),
        TooManyReaders => (StatusCode::BAD_REQUEST, virgil::KEYKNOX_TOO_MANY_READERS),
        TooManyEntries => (StatusCode::CONFLICT, virgil::KEYKNOX_TOO_MANY_ENTRIES),
        PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 30001),
        RequestTimeout => (StatusCode::REQUEST_TIMEOUT, 30001),
        HeadersTooLarge => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, 30001),
        RateLimited => (StatusCode::TOO_MANY_REQUESTS, 30429),
        Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 10000),
        Internal | Unknown => (StatusCode::INTERNAL_SERVER_ERROR, 10000),
        InvalidSnapshot
        | InvalidVersion
        | InvalidCreatedAt
        | InvalidPublicKey
        | UnsupportedKeyType
        | InvalidPreviousCardId
        | InvalidSignatureEntry
        | TooManySignatures
        | ReservedSigner
        | DuplicateSigner
        | SelfSignatureMissing
        | ExtraSnapshotTooLarge
        | SnapshotTooLarge
        | CardTooLarge
        | BadSignature => (StatusCode::BAD_REQUEST, 40003),
    };
    (status, error.virgil_code.unwrap_or(code))
}

impl ResponseError for VirgilError {
    fn status_code(&self) -> StatusCode {
        virgil_status_and_code(&self.0).0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = virgil_status_and_code(&self.0);
        let mut response = HttpResponse::build(status);
        if let Some(seconds) = self.0.retry_after_secs() {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.json(serde_json::json!({"code": code, "message": self.0.detail}))
    }
}

impl From<KeyknoxError> for VirgilError {
    fn from(error: KeyknoxError) -> Self {
        VirgilError(error.into())
    }
}

impl From<DirectoryError> for VirgilError {
    fn from(error: DirectoryError) -> Self {
        VirgilError(error.into())
    }
}
