//! What can go wrong talking to Cardinal.

use cardinal_card::wire::ProblemCode;
use thiserror::Error;

/// An SDK error. Server refusals carry the server's stable problem code.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server refused the request.
    #[error("{status} {code}: {detail}", code = code.as_str())]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable problem code.
        code: ProblemCode,
        /// The server's explanation.
        detail: String,
    },
    /// The server answered something that fails verification: a card whose id, signature,
    /// identity or countersignature is wrong. Never accept such an answer.
    #[error("the server's answer failed verification: {0}")]
    Verification(String),
    /// The transparency log failed verification: a checkpoint not signed by the pinned log
    /// key (or short of the witness quorum), a card without a valid proof of its publication,
    /// or a checkpoint inconsistent with one seen before (the log forked or rolled back).
    #[error("the transparency log failed verification: {0}")]
    Transparency(String),
    /// The connection failed or the answer was not what the API promises.
    #[error("transport: {0}")]
    Transport(String),
    /// The token source failed.
    #[error("token: {0}")]
    Token(String),
    /// The caller passed something invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl ClientError {
    /// The server's problem code, if the server refused.
    pub fn code(&self) -> Option<ProblemCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        ClientError::Transport(error.to_string())
    }
}
