//! The native extractors, with their errors rendered the Virgil way.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::error::{ApiError, VirgilError};

/// A native extractor (the caller, the size-limited body) whose refusal is a Virgil error.
pub struct Virgil<T>(pub T);

impl<T> FromRequest for Virgil<T>
where
    T: FromRequest<Error = ApiError> + 'static,
{
    type Error = VirgilError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, VirgilError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let extracted = T::from_request(req, payload);
        Box::pin(async move { Ok(Virgil(extracted.await?)) })
    }
}
