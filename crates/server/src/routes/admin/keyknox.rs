//! `POST /v1/admin/identities/{identity}/keyknox/erase`

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::domain::Caller;
use crate::keyknox::Keyknox;
use crate::metrics::Metrics;
use crate::routes::services::Answer;

/// What an erasure removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyknoxErased {
    /// The identity.
    pub identity: String,
    /// Whether it had a v1 entry (its unnamed backup).
    pub v1: bool,
    /// v2 entries it owned (named backups, group tickets it created).
    pub entries: u64,
    /// Its grants on other owners' entries, removed.
    pub grants: u64,
}

/// An admin erases an identity's Keyknox data (a departed user's backups, group tickets and
/// grants), recorded in the event log as `keyknox_erased`. Erasing again changes nothing.
#[utoipa::path(
    post, path = "/v1/admin/identities/{identity}/keyknox/erase", tag = "admin",
    params(("identity" = String, Path, description = "The identity whose Keyknox data goes")),
    responses((status = 200, description = "What was erased", body = KeyknoxErased)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn erase_keyknox(
    keyknox: web::Data<Keyknox>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    identity: web::Path<String>,
) -> Answer {
    let erased = keyknox.erase(&caller, &identity).await?;
    metrics.keyknox_operations.with_label_values(&["erase"]).inc();
    Ok(HttpResponse::Ok().json(KeyknoxErased {
        identity: identity.into_inner(),
        v1: erased.v1,
        entries: erased.entries,
        grants: erased.grants,
    }))
}
