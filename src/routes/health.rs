//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use cardinal_card::wire::ProblemCode;
use serde_json::json;

use crate::directory::Directory;
use crate::error::ApiError;

/// How long readiness waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 while the process runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers within the timeout, else 503.
pub async fn readyz(directory: web::Data<Directory>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(READINESS_TIMEOUT, directory.store().ping()).await {
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
