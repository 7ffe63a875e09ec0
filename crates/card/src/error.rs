//! Why a card, key or signature was refused.

use thiserror::Error;

/// Every way a card, a key or a signature can fail the format rules.
///
/// Each variant is one validation, so the service can answer with a precise, stable code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CardError {
    /// `content_snapshot` is missing or empty.
    #[error("content_snapshot is empty")]
    SnapshotEmpty,
    /// `content_snapshot` is not standard padded base64.
    #[error("content_snapshot is not valid base64")]
    SnapshotNotBase64,
    /// The decoded snapshot is not a JSON object of the expected field types.
    #[error("content_snapshot is not a JSON card snapshot: {0}")]
    SnapshotNotJson(String),
    /// The snapshot's `identity` is missing or empty.
    #[error("identity is empty")]
    IdentityEmpty,
    /// The identity is longer than the limit.
    #[error("identity is longer than {max} bytes")]
    IdentityTooLong {
        /// the limit in bytes
        max: usize,
    },
    /// The identity holds a byte outside printable ASCII (0x20 to 0x7E).
    #[error("identity must be printable ASCII (0x20 to 0x7E)")]
    IdentityNotPrintableAscii,
    /// `version` is not `"5.0"`.
    #[error("version must be \"5.0\"")]
    InvalidVersion,
    /// `created_at` is not an integer above 0.
    #[error("created_at must be an integer above 0")]
    InvalidCreatedAt,
    /// `public_key` is missing or not standard base64.
    #[error("public_key is not valid base64")]
    PublicKeyNotBase64,
    /// The public key is shorter than the limit.
    #[error("public_key is shorter than {min} bytes")]
    PublicKeyTooShort {
        /// the limit in bytes
        min: usize,
    },
    /// The public key is longer than the limit.
    #[error("public_key is longer than {max} bytes")]
    PublicKeyTooLong {
        /// the limit in bytes
        max: usize,
    },
    /// The public key is not an Ed25519 SubjectPublicKeyInfo.
    #[error("only Ed25519 public keys (SPKI DER) are supported")]
    UnsupportedKeyType,
    /// `previous_card_id` is not 64 lowercase hex characters.
    #[error("previous_card_id must be 64 lowercase hex characters")]
    InvalidPreviousCardId,
    /// A card id (outside a snapshot) is malformed.
    #[error("card id must be 64 lowercase hex characters")]
    InvalidCardId,
    /// `signatures` is empty.
    #[error("a card needs at least one signature")]
    NoSignatures,
    /// More signatures than the limit.
    #[error("a card may carry at most {max} signatures")]
    TooManySignatures {
        /// the limit
        max: usize,
    },
    /// A signature entry's `signer` is empty.
    #[error("signer must not be empty")]
    SignerEmpty,
    /// A signature entry's `signer` is longer than 1024 characters.
    #[error("signer is longer than 1024 characters")]
    SignerTooLong,
    /// A client sent the service's reserved signer name.
    #[error("signer \"virgil\" is reserved for the service")]
    ReservedSigner,
    /// A signer appears twice.
    #[error("signer {0:?} appears more than once")]
    DuplicateSigner(String),
    /// No `self` signature.
    #[error("the self signature is missing")]
    SelfSignatureMissing,
    /// A signature value is empty or not base64.
    #[error("signature of signer {0:?} is empty or not valid base64")]
    SignatureNotBase64(String),
    /// An extra snapshot is not base64.
    #[error("extra snapshot of signer {0:?} is not valid base64")]
    ExtraSnapshotNotBase64(String),
    /// An extra snapshot is longer than the limit.
    #[error("extra snapshot is longer than {max} bytes")]
    ExtraSnapshotTooLong {
        /// the limit in bytes
        max: usize,
    },
    /// The self signature does not verify with the card's key.
    #[error("the self signature does not verify with the card's public key")]
    BadSignature,
    /// A key's DER or PEM could not be read.
    #[error("not a valid Ed25519 key: {0}")]
    InvalidKey(String),
    /// The key is a small-order point or not canonically encoded: signatures "by" it can be
    /// forged by anyone, so it is never accepted.
    #[error("the Ed25519 public key is a small-order point or not canonically encoded")]
    WeakKey,
    /// The decoded snapshot is larger than the limit.
    #[error("content_snapshot is longer than {max} bytes")]
    SnapshotTooLong {
        /// the limit in bytes
        max: usize,
    },
    /// The snapshot carries a field the card format does not define.
    #[error("content_snapshot has a field the card format does not define: {0:?}")]
    UnknownSnapshotField(String),
    /// A decoded signature is longer than any signature algorithm needs.
    #[error("signature of signer {signer:?} is longer than {max} bytes")]
    SignatureTooLong {
        /// the signer
        signer: String,
        /// the limit in bytes
        max: usize,
    },
    /// The whole card is larger than the limit.
    #[error("the card is longer than {max} bytes")]
    CardTooLarge {
        /// the limit in bytes
        max: usize,
    },
}
