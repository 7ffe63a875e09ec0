//! What handlers use: the directory and the metrics, as one extractor, and the answer type.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

use crate::directory::Directory;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A native handler's answer.
pub type Answer = Result<HttpResponse, ApiError>;

/// The directory and the metrics of the running service.
pub struct Services {
    /// The rules.
    pub directory: web::Data<Directory>,
    /// The counters.
    pub metrics: web::Data<Metrics>,
}

impl FromRequest for Services {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let directory = req.app_data::<web::Data<Directory>>().cloned();
        let metrics = req.app_data::<web::Data<Metrics>>().cloned();
        ready(match (directory, metrics) {
            (Some(directory), Some(metrics)) => Ok(Services { directory, metrics }),
            _ => Err(ApiError::internal(&"the directory or the metrics are not configured")),
        })
    }
}
