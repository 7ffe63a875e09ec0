//! Request bodies: the size limit is enforced before anything is parsed.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest, web};
use cardinal_card::wire::ProblemCode;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body accepted, and how long a client may take to send it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    /// Bytes.
    pub bytes: usize,
    /// Time from the handler's first read to the last byte.
    pub timeout: std::time::Duration,
}

/// A request body read up to the limit.
pub struct Body(Bytes);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(ProblemCode::PayloadTooLarge, format!("the body exceeds {limit} bytes"))
}

impl Body {
    /// Parses the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.0)
            .map_err(|e| ApiError::invalid_request(format!("the body is not the expected JSON: {e}")))
    }

    /// Parses the body as JSON, or gives the default when there is none.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { self.json() }
    }
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Body, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let config = req
            .app_data::<web::Data<BodyLimit>>()
            .map_or(BodyLimit { bytes: 64 * 1024, timeout: std::time::Duration::from_secs(10) }, |l| *l.get_ref());
        Body::read(req, payload, config)
    }
}

impl Body {
    /// Reads the body within `config` (routes whose bodies may be larger than the service's
    /// limit, such as Keyknox's ciphertext, read with their own).
    pub fn read(
        req: &HttpRequest,
        payload: &mut Payload,
        config: BodyLimit,
    ) -> Pin<Box<dyn Future<Output = Result<Body, ApiError>>>> {
        let limit = config.bytes;
        let declared = req.headers().get(CONTENT_LENGTH).map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()));
        let mut payload = payload.take();
        Box::pin(async move {
            match declared {
                Some(None) => return Err(ApiError::invalid_request("Content-Length is not a number")),
                Some(Some(length)) if length > limit as u64 => return Err(too_large(limit)),
                _ => {}
            }
            // A client that sends its headers and then trickles its body would otherwise hold
            // a connection and a worker slot for as long as it likes.
            let read = async {
                let mut body = BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk =
                        chunk.map_err(|e| ApiError::invalid_request(format!("the body could not be read: {e}")))?;
                    if body.len() + chunk.len() > limit {
                        return Err(too_large(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Body(body.freeze()))
            };
            tokio::time::timeout(config.timeout, read).await.unwrap_or_else(|_| {
                Err(ApiError::new(ProblemCode::RequestTimeout, "the request body was not received in time"))
            })
        })
    }
}
