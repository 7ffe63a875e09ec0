//! The native extractors, with their errors rendered the Virgil way.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::directory::Caller;
use crate::error::VirgilError;
use crate::routes::body::Body;

/// The authenticated caller.
pub struct VirgilCaller(pub Caller);

/// The request body, size-limited.
pub struct VirgilBody(pub Body);

impl FromRequest for VirgilCaller {
    type Error = VirgilError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, VirgilError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move { Ok(VirgilCaller(caller.await?)) })
    }
}

impl FromRequest for VirgilBody {
    type Error = VirgilError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, VirgilError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Body::from_request(req, payload);
        Box::pin(async move { Ok(VirgilBody(body.await?)) })
    }
}
