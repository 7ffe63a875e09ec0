//! `GET /v1/cards?identity=…` (conditional) and `POST /v1/cards/search`.

use cardinal_card::RawSignedModel;
use cardinal_card::wire::Problem;
use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use cardinal_card::wire::{LookupResponse, SearchRequest};

use crate::directory::{Caller, Card, Count, Directory};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::body::Body;
use crate::routes::view::{CACHE_CONTROL, card_view, if_none_match};

/// Batch lookup with ETag revalidation: a matching `If-None-Match` is answered 304 from the
/// identities' change counters, without reading a card.
#[utoipa::path(
    get, path = "/v1/cards", tag = "cards",
    params(("identity" = Vec<String>, Query, description = "1 to 100 distinct identities; repeat the parameter", explode = true),
           ("If-None-Match" = Option<String>, Header, description = "The ETag of an earlier answer for the same identities")),
    responses(
        (status = 200, description = "Active cards of each identity, newest first; every requested identity is a key",
            body = LookupResponse<RawSignedModel>, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Nothing changed for these identities"),
        (status = 400, description = "invalid_request, invalid_identity, too_many_identities", body = Problem, content_type = "application/problem+json"), (status = 401, description = "token_missing, token_invalid, token_expired", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "unavailable (with Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn lookup_cards(
    directory: web::Data<Directory>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(request.query_string())
        .map_err(|e| ApiError::invalid_request(format!("malformed query string: {e}")))?;
    let identities = directory.lookup_identities(
        pairs.iter().filter(|(key, _)| key == "identity").map(|(_, value)| value.as_str()),
        Count::Listed,
    )?;
    // Revalidation reads only the change counters; a full answer reads counters and cards in
    // one statement.
    if request.headers().contains_key(header::IF_NONE_MATCH) {
        let current = directory.lookup_tag(&caller, &identities).await?;
        if current.from_memory {
            metrics.revalidations_from_memory.inc();
        }
        let etag = current.etag;
        if if_none_match(request.headers(), &etag) {
            metrics.lookup("lookup", identities.len(), true);
            return Ok(HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
                .finish());
        }
    }
    metrics.lookup("lookup", identities.len(), false);
    let (etag, found) = directory.lookup_tagged(&caller, &identities).await?;
    let body = directory.bounded_answer(render_found(&found)?)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .content_type("application/json")
        .body(body))
}

/// The same lookup for batches too long for a URL; no conditional semantics.
#[utoipa::path(
    post, path = "/v1/cards/search", tag = "cards",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "As GET /v1/cards, for batches too long for a URL", body = LookupResponse<RawSignedModel>),
        (status = 400, description = "invalid_request, invalid_identity, too_many_identities", body = Problem, content_type = "application/problem+json"), (status = 401, description = "token_missing, token_invalid, token_expired", body = Problem, content_type = "application/problem+json"), (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate_limited (with Retry-After)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "unavailable (with Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn search_cards(
    directory: web::Data<Directory>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let request: SearchRequest = body.json()?;
    let identities = directory.lookup_identities(request.identities.iter().map(String::as_str), Count::Listed)?;
    metrics.lookup("search", identities.len(), false);
    let body = render(&directory, &caller, &identities).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .content_type("application/json")
        .body(body))
}

async fn render(directory: &Directory, caller: &Caller, identities: &[String]) -> Result<String, ApiError> {
    Ok(directory.bounded_answer(render_found(&directory.lookup(caller, identities).await?)?)?)
}

fn render_found(found: &BTreeMap<String, Vec<Card>>) -> Result<String, ApiError> {
    let mut views = BTreeMap::new();
    for (identity, cards) in found {
        views.insert(identity.clone(), cards.iter().map(card_view).collect::<Result<Vec<_>, _>>()?);
    }
    serde_json::to_string(&LookupResponse { identities: views }).map_err(|e| ApiError::internal(&e))
}
