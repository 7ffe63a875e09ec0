//! `Caller` as an actix extractor: the only way a handler learns who calls.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};

use super::Authenticator;
use crate::directory::Caller;
use crate::error::ApiError;

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        Box::pin(async move {
            let authenticator = authenticator.ok_or_else(|| ApiError::internal(&"authenticator not configured"))?;
            authenticator.authenticate(header.as_deref()).await
        })
    }
}
