//! Rendering: cards as the native API shows them (the stored RawSignedModel JSON embedded as is,
//! never re-encoded), and conditional answers (200 with a tag, or 304).

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use cardinal_card::wire::CardView;
use serde_json::value::RawValue;

use crate::directory::{Card, IfNoneMatch, Lookup};
use crate::error::ApiError;

/// A card ready to serialise, borrowing its stored JSON.
pub fn card_view(card: &Card) -> Result<CardView<&RawValue>, ApiError> {
    let record = &card.record;
    let raw: &RawValue = serde_json::from_str(&record.raw)
        .map_err(|e| ApiError::internal(&format!("stored card {} is not JSON: {e}", record.id)))?;
    Ok(CardView {
        id: record.id.to_string(),
        identity: record.identity.to_string(),
        public_key: record.public_key.clone(),
        created_at: record.created_at,
        previous_card_id: record.previous_card_id.as_ref().map(ToString::to_string),
        status: card.status(),
        superseded_by: record.superseded_by.as_ref().map(ToString::to_string),
        revoked_at: record.revoked_at,
        revocation_reason: record.revocation_reason.clone(),
        raw,
    })
}

/// The request's `If-None-Match`.
pub fn if_none_match(headers: &HeaderMap) -> IfNoneMatch {
    IfNoneMatch::parse(headers.get_all(header::IF_NONE_MATCH).filter_map(|value| value.to_str().ok()))
}

/// Clients must revalidate cached answers every time; the ETag makes that cheap.
pub const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");

/// A conditional answer: 304 with the tag, or 200 with the tag and `render`'s JSON body.
pub fn conditional<T>(
    answer: Lookup<T>,
    render: impl FnOnce(T) -> Result<String, ApiError>,
) -> Result<HttpResponse, ApiError> {
    match answer {
        Lookup::NotModified { etag, .. } => Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
            .finish()),
        Lookup::Found { etag, value } => Ok(HttpResponse::Ok()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
            .content_type("application/json")
            .body(render(value)?)),
    }
}
