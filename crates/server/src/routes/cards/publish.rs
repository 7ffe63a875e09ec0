//! `POST /v1/cards`

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::{CardView, Problem};

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::body::Body;
use crate::routes::view::{card_etag, card_view};

/// Publishes a card (or a rotation): 201 with the countersigned card.
#[utoipa::path(
    post, path = "/v1/cards", tag = "cards",
    request_body(content = RawSignedModel, description = "A self-signed card; `previous_card_id` in its snapshot makes it a rotation"),
    responses(
        (status = 201, description = "Published, with the service countersignature appended", body = CardView<RawSignedModel>,
            headers(("Location" = String, description = "/v1/cards/{id}"), ("ETag" = String))),
        (status = 400, description = "invalid_request, invalid_snapshot, invalid_identity, invalid_version, invalid_created_at, invalid_public_key, unsupported_key_type, invalid_previous_card_id, invalid_signature_entry, too_many_signatures, reserved_signer, duplicate_signer, self_signature_missing, extra_snapshot_too_large, bad_signature, previous_card_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "token_missing, token_invalid, token_expired", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "identity_mismatch, forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "card_exists, identity_taken, already_superseded, chain_revoked, previous_card_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "unavailable (with Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn publish_card(
    directory: web::Data<Directory>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let raw: RawSignedModel = body.json()?;
    let card = directory.publish(&caller, raw).await?;
    metrics.card_published(&card);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/cards/{}", card.record.id)))
        .insert_header((header::ETAG, card_etag(&card)))
        .json(card_view(&card)?))
}
