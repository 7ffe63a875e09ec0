//! Liveness and readiness.

use cardinal_card::wire::Problem;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use cardinal_card::wire::ProblemCode;
use serde_json::json;

use crate::error::ApiError;
use crate::storage::Operations;

/// What readiness checks, and how long it waits.
pub struct Readiness {
    /// The database.
    pub database: std::sync::Arc<dyn Operations>,
    /// How long to wait for it.
    pub timeout: Duration,
}

/// `GET /healthz`: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "The process runs")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers within the timeout, else 503.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, description = "The database answers"), (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(readiness: web::Data<Readiness>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(readiness.timeout, readiness.database.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: database check failed");
            Err(ApiError::new(ProblemCode::Unavailable, "the database is not answering"))
        }
        Err(_) => {
            tracing::warn!("not ready: database check timed out");
            Err(ApiError::new(ProblemCode::Unavailable, "the database did not answer in time"))
        }
    }
}
