//! The one place where errors become HTTP responses: status, stable code, problem+json body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use cardinal_card::CardError;
use cardinal_card::wire::{Problem, ProblemCode};

use crate::directory::DirectoryError;
use crate::storage::StorageError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct ApiError {
    /// The stable code; it decides the status.
    pub code: ProblemCode,
    /// What went wrong this time, for humans.
    pub detail: String,
}

impl ApiError {
    /// An error with a code and a detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into() }
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
        | InvalidIdentity
        | InvalidCardId
        | TooManyIdentities
        | PreviousCardNotFound => StatusCode::BAD_REQUEST,
        TokenMissing | TokenInvalid | TokenExpired => StatusCode::UNAUTHORIZED,
        IdentityMismatch | Forbidden => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        CardExists | IdentityTaken | AlreadySuperseded | ChainRevoked | PreviousCardMismatch => StatusCode::CONFLICT,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Internal | Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds a client should wait before retrying a 503.
const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 2;

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
        if self.code == ProblemCode::Unavailable {
            response.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER_SECS));
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
            StorageError::NotFound => ApiError::not_found("not found"),
            other => ApiError::internal(&other),
        }
    }
}

impl From<CardError> for ApiError {
    fn from(error: CardError) -> Self {
        use CardError::*;
        let code = match &error {
            SnapshotEmpty | SnapshotNotBase64 | SnapshotNotJson(_) => ProblemCode::InvalidSnapshot,
            IdentityEmpty | IdentityTooLong { .. } | IdentityNotPrintableAscii => ProblemCode::InvalidIdentity,
            InvalidVersion => ProblemCode::InvalidVersion,
            InvalidCreatedAt => ProblemCode::InvalidCreatedAt,
            PublicKeyNotBase64 | PublicKeyTooShort { .. } | PublicKeyTooLong { .. } | InvalidKey(_) => {
                ProblemCode::InvalidPublicKey
            }
            UnsupportedKeyType => ProblemCode::UnsupportedKeyType,
            InvalidPreviousCardId => ProblemCode::InvalidPreviousCardId,
            InvalidCardId => ProblemCode::InvalidCardId,
            NoSignatures | SignerEmpty | SignerTooLong | SignatureNotBase64(_) | ExtraSnapshotNotBase64(_) => {
                ProblemCode::InvalidSignatureEntry
            }
            TooManySignatures { .. } => ProblemCode::TooManySignatures,
            ReservedSigner => ProblemCode::ReservedSigner,
            DuplicateSigner(_) => ProblemCode::DuplicateSigner,
            SelfSignatureMissing => ProblemCode::SelfSignatureMissing,
            ExtraSnapshotTooLong { .. } => ProblemCode::ExtraSnapshotTooLarge,
            BadSignature => ProblemCode::BadSignature,
        };
        ApiError::new(code, error.to_string())
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
            E::TooManyIdentities { .. } => ProblemCode::TooManyIdentities,
            E::NoIdentities | E::InvalidReason(_) | E::InvalidPage(_) => ProblemCode::InvalidRequest,
            E::InvalidIdentity(_) => ProblemCode::InvalidIdentity,
            E::InvalidCardId => ProblemCode::InvalidCardId,
        };
        ApiError::new(code, detail)
    }
}
