//! Rendering cards. The stored RawSignedModel JSON is embedded as is, never re-encoded.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use cardinal_card::wire::CardView;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::directory::Card;
use crate::error::ApiError;

/// A card ready to serialise, borrowing its stored JSON.
pub fn card_view(card: &Card) -> Result<CardView<&RawValue>, ApiError> {
    let record = &card.record;
    let raw: &RawValue = serde_json::from_str(&record.raw)
        .map_err(|e| ApiError::internal(&format!("stored card {} is not JSON: {e}", record.id)))?;
    Ok(CardView {
        id: record.id.clone(),
        identity: record.identity.clone(),
        public_key: record.public_key.clone(),
        created_at: record.created_at,
        previous_card_id: record.previous_card_id.clone(),
        status: card.status(),
        superseded_by: record.superseded_by.clone(),
        revoked_at: record.revoked_at,
        revocation_reason: record.revocation_reason.clone(),
        raw,
    })
}

/// The strong ETag of one card's representation: it changes when its status does.
pub fn card_etag(card: &Card) -> String {
    let record = &card.record;
    let mut hasher = Sha256::new();
    for part in [
        record.id.as_str(),
        card.status().as_str(),
        record.superseded_by.as_deref().unwrap_or(""),
        record.revocation_reason.as_deref().unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(record.revoked_at.unwrap_or(0).to_be_bytes());
    format!("\"c1-{}\"", hex::encode(&hasher.finalize()[..16]))
}

/// Whether `If-None-Match` matches `etag` (weak comparison, as RFC 9110 prescribes for it).
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let wanted = bare(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|value| value.split(',').any(|candidate| candidate.trim() == "*" || bare(candidate) == wanted))
}

/// Clients must revalidate cached lookups every time; the ETag makes that cheap.
pub const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");
