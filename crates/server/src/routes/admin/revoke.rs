//! `POST /v1/admin/cards/{id}/revoke`

use actix_web::{HttpResponse, web};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::RevokeRequest;
use cardinal_card::wire::{CardView, Problem};

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::body::Body;
use crate::routes::view::card_view;

/// An admin revokes any card's chain in their app, with a reason that the log records.
#[utoipa::path(
    post, path = "/v1/admin/cards/{id}/revoke", tag = "admin",
    params(("id" = String, Path, description = "Any card of the chain to revoke")),
    request_body(content = RevokeRequest, description = "The reason is required"),
    responses(
        (status = 200, description = "The card, its whole chain revoked", body = CardView<RawSignedModel>),
        (status = 400, description = "invalid_request, invalid_card_id", body = Problem, content_type = "application/problem+json"), (status = 401, description = "token_missing, token_invalid, token_expired", body = Problem, content_type = "application/problem+json"), (status = 403, description = "forbidden (not an admin token)", body = Problem, content_type = "application/problem+json"), (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "unavailable (with Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn admin_revoke_card(
    directory: web::Data<Directory>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let request: RevokeRequest = body.json_or_default()?;
    let card = directory.revoke_as_admin(&caller, &id, request.reason).await?;
    metrics.chains_revoked.with_label_values(&["admin"]).inc();
    Ok(HttpResponse::Ok().json(card_view(&card)?))
}
