//! `GET /v1/cards?identity=…` (conditional) and `POST /v1/cards/search`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::{LookupResponse, SearchRequest};

use crate::directory::{CardsByIdentity, Count, Directory, Lookup};
use crate::domain::Caller;
use crate::error::ApiError;
use crate::routes::body::Body;
use crate::routes::services::{Answer, Services};
use crate::routes::view::{CACHE_CONTROL, card_view, conditional, if_none_match};
use crate::transparency::Transparency;

/// Batch lookup with ETag revalidation: a matching `If-None-Match` is answered 304 from the
/// identities' change counters, without reading a card.
#[utoipa::path(
    get, path = "/v1/cards", tag = "cards",
    params(("identity" = Vec<String>, Query, description = "1 to 100 distinct identities; repeat the parameter", explode = true),
           ("If-None-Match" = Option<String>, Header, description = "The ETag of an earlier answer for the same identities (ignored with proofs=true)"),
           ("proofs" = Option<bool>, Query, description = "true: add the log's checkpoint and each card's card_published entry with its inclusion proof (no ETag)")),
    responses(
        (status = 200, description = "Active cards of each identity, newest first; every requested identity is a key",
            body = LookupResponse<RawSignedModel>, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Nothing changed for these identities"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn lookup_cards(
    services: Services,
    caller: Caller,
    request: HttpRequest,
    log: Option<web::Data<Transparency>>,
) -> Answer {
    let (directory, metrics) = (&services.directory, &services.metrics);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(request.query_string())
        .map_err(|e| ApiError::invalid_request(format!("malformed query string: {e}")))?;
    let listed = pairs.iter().filter(|(key, _)| key == "identity").map(|(_, value)| value.as_str());
    let identities = directory.lookup_identities(listed, Count::Listed)?;
    let proofs: Vec<&str> = pairs.iter().filter(|(key, _)| key == "proofs").map(|(_, value)| value.as_str()).collect();
    if !proofs.is_empty() {
        let log = proofs_log(proofs == ["true"], log)?;
        metrics.lookup("lookup", identities.len(), false);
        let found = directory.search(&caller, &identities).await?;
        return with_proofs(directory, &log, &caller, &found).await;
    }
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
pub async fn search_cards(
    services: Services,
    caller: Caller,
    body: Body,
    log: Option<web::Data<Transparency>>,
) -> Answer {
    let (directory, metrics) = (&services.directory, &services.metrics);
    let request: SearchRequest = body.json()?;
    let identities = directory.lookup_identities(request.identities.iter().map(String::as_str), Count::Listed)?;
    metrics.lookup("search", identities.len(), false);
    let found = directory.search(&caller, &identities).await?;
    if let Some(proofs) = request.proofs {
        let log = proofs_log(proofs, log)?;
        return with_proofs(directory, &log, &caller, &found).await;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .content_type("application/json")
        .body(render(directory, &found)?))
}

/// The log a `proofs` request needs: `proofs=true` with transparency on, else 400.
fn proofs_log(asked_true: bool, log: Option<web::Data<Transparency>>) -> Result<web::Data<Transparency>, ApiError> {
    if !asked_true {
        return Err(ApiError::invalid_request("proofs takes exactly one value, true"));
    }
    log.ok_or_else(|| ApiError::invalid_request("proofs need the transparency log, which is off"))
}

/// The answer with the checkpoint that proves every card's publication, and each card's
/// entry and inclusion proof. Never conditional: a proof is of one checkpoint.
async fn with_proofs(directory: &Directory, log: &Transparency, caller: &Caller, found: &CardsByIdentity) -> Answer {
    let ids: Vec<String> = found.values().flatten().map(|card| card.record.id.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (checkpoint, mut logs) = log.card_proofs(&caller.app_id, &id_refs).await?;
    // Spliced as text, so each card still embeds its stored JSON as is (a Value would re-encode it).
    let note = log.served_note(&checkpoint).await?;
    let mut body = format!("{{\"checkpoint\":{},\"identities\":{{", json(&note)?);
    for (i, (identity, cards)) in found.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&json(identity.as_str())?);
        body.push_str(":[");
        for (j, card) in cards.iter().enumerate() {
            let view = serde_json::to_string(&card_view(card)?).map_err(|e| ApiError::internal(&e))?;
            let entry = logs
                .remove(card.record.id.as_str())
                .ok_or_else(|| ApiError::internal(&format!("card {} has no entry", card.record.id)))?;
            let view = view.strip_suffix('}').ok_or_else(|| ApiError::internal(&"a card view is not an object"))?;
            if j > 0 {
                body.push(',');
            }
            body.push_str(view);
            body.push_str(",\"log\":");
            body.push_str(&json(&entry)?);
            body.push('}');
        }
        body.push(']');
    }
    body.push_str("}}");
    let body = directory.bounded_answer(body)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .content_type("application/json")
        .body(body))
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::internal(&e))
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
