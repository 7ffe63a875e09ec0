//! `GET /v1/cards?identity=…` (conditional) and `POST /v1/cards/search`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::{LookupResponse, SearchRequest};

use crate::directory::{CardsByIdentity, Count, Directory, Lookup};
use crate::domain::Caller;
use crate::error::ApiError;
use crate::routes::body::Body;
use crate::routes::services::{Answer, Services};
use crate::routes::view::{CACHE_CONTROL, card_view, conditional, if_none_match};

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
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn lookup_cards(services: Services, caller: Caller, request: HttpRequest) -> Answer {
    let (directory, metrics) = (&services.directory, &services.metrics);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(request.query_string())
        .map_err(|e| ApiError::invalid_request(format!("malformed query string: {e}")))?;
    let listed = pairs.iter().filter(|(key, _)| key == "identity").map(|(_, value)| value.as_str());
    let identities = directory.lookup_identities(listed, Count::Listed)?;
    let answer = directory.lookup(&caller, &identities, &if_none_match(request.headers())).await?;
    if let Lookup::NotModified { counters_from_memory: true, .. } = &answer {
        metrics.revalidations_from_memory.inc();
    }
    metrics.lookup("lookup", identities.len(), matches!(answer, Lookup::NotModified { .. }));
    conditional(answer, |found| render(directory, &found))
}

/// The same lookup for batches too long for a URL; no conditional semantics.
#[utoipa::path(
    post, path = "/v1/cards/search", tag = "cards",
    request_body = SearchRequest,
    responses((status = 200, description = "As GET /v1/cards, for batches too long for a URL", body = LookupResponse<RawSignedModel>)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn search_cards(services: Services, caller: Caller, body: Body) -> Answer {
    let (directory, metrics) = (&services.directory, &services.metrics);
    let request: SearchRequest = body.json()?;
    let identities = directory.lookup_identities(request.identities.iter().map(String::as_str), Count::Listed)?;
    metrics.lookup("search", identities.len(), false);
    let found = directory.search(&caller, &identities).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .content_type("application/json")
        .body(render(directory, &found)?))
}

/// The answer's JSON, refused over the configured byte bound.
fn render(directory: &Directory, found: &CardsByIdentity) -> Result<String, ApiError> {
    let mut identities = std::collections::BTreeMap::new();
    for (identity, cards) in found {
        identities.insert(identity.to_string(), cards.iter().map(card_view).collect::<Result<Vec<_>, _>>()?);
    }
    let body = serde_json::to_string(&LookupResponse { identities }).map_err(|e| ApiError::internal(&e))?;
    Ok(directory.bounded_answer(body)?)
}
