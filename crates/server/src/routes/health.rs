//! Liveness and readiness.

use cardinal_card::wire::Problem;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use cardinal_card::wire::ProblemCode;
use serde_json::json;

use crate::directory::Directory;
use crate::error::ApiError;

/// How long readiness waits for the database.
#[derive(Debug, Clone, Copy)]
pub struct ReadinessTimeout(pub Duration);

/// `GET /healthz`: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "The process runs")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers within the timeout, else 503.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, description = "The database answers"), (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(
    directory: web::Data<Directory>,
    timeout: web::Data<ReadinessTimeout>,
) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(timeout.0, directory.store().ping()).await {
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
