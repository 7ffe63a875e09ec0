//! `Caller` as an actix extractor: the only way a handler learns who calls.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};

use cardinal_card::wire::ProblemCode;

use super::Authenticator;
use crate::domain::Caller;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::{self, RateLimiter};

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let metrics = req.app_data::<web::Data<Metrics>>().cloned();
        let limiter = req.app_data::<web::Data<RateLimiter>>().cloned();
        let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        let class = ratelimit::class_of(req);
        Box::pin(async move {
            let authenticator = authenticator.ok_or_else(|| ApiError::internal(&"authenticator not configured"))?;
            let caller = authenticator.authenticate(header.as_deref()).await.inspect_err(|error| {
                let reason = match error.code {
                    ProblemCode::TokenMissing => "missing",
                    ProblemCode::TokenExpired => "expired",
                    ProblemCode::TokenInvalid => "invalid",
                    _ => return,
                };
                if let Some(metrics) = &metrics {
                    metrics.token_rejections.with_label_values(&[reason]).inc();
                }
            })?;
            if let Some(limiter) = &limiter {
                limiter.check_identity(class, &caller).inspect_err(|_| {
                    if let Some(metrics) = &metrics {
                        metrics.refused(class, "identity");
                    }
                })?;
            }
            Ok(caller)
        })
    }
}
