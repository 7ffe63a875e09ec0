//! `GET /v1/cards/{id}`

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::{CardView, Problem};

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::routes::view::{CACHE_CONTROL, card_etag, card_view, if_none_match};

/// One card of the caller's app, whatever its status.
#[utoipa::path(
    get, path = "/v1/cards/{id}", tag = "cards",
    params(("id" = String, Path, description = "Card id: 64 lowercase hex characters"),
           ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The card, in any status", body = CardView<RawSignedModel>, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "invalid_card_id", body = Problem, content_type = "application/problem+json"), (status = 401, description = "token_missing, token_invalid, token_expired", body = Problem, content_type = "application/problem+json"), (status = 404, description = "not_found (also for a card of another app)", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "unavailable (with Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn get_card(
    directory: web::Data<Directory>,
    caller: Caller,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let card = directory.get(&caller, &id).await?;
    let etag = card_etag(&card);
    if if_none_match(request.headers(), &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .json(card_view(&card)?))
}
