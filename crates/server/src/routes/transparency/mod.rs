//! The transparency log over HTTP: C2SP tlog-tiles under `/tlog/<app>/` (the checkpoint and hash
//! tiles without authentication; entry bundles, which name identities, with a token of the app)
//! and the `/v1/transparency` endpoints.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use cardinal_card::tlog::wire::{ProofResponse, TransparencyInfo, WitnessInfo};
use cardinal_card::tlog::{self, TilePath};
use cardinal_card::wire::ProblemCode;
use serde::Deserialize;

use crate::domain::{AppId, Caller};
use crate::error::ApiError;
use crate::routes::services::Answer;
use crate::transparency::{Transparency, TransparencyError};

/// Tiles and bundles never change once served.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";

impl From<TransparencyError> for ApiError {
    fn from(error: TransparencyError) -> Self {
        match error {
            TransparencyError::NotFound => ApiError::not_found("not found"),
            TransparencyError::InvalidRequest(detail) => ApiError::invalid_request(detail),
            TransparencyError::Unavailable(detail) => ApiError::new(ProblemCode::Unavailable, detail),
            TransparencyError::Storage(error) => error.into(),
        }
    }
}

/// The log, or 404 when transparency is off.
fn enabled(log: Option<web::Data<Transparency>>) -> Result<web::Data<Transparency>, ApiError> {
    log.ok_or_else(|| ApiError::not_found("transparency is off"))
}

fn app_of(text: &str) -> Result<AppId, ApiError> {
    AppId::parse(text).map_err(|_| ApiError::not_found("no such log"))
}

/// The newest checkpoint of an app's log (C2SP tlog-checkpoint signed note).
#[utoipa::path(
    get, path = "/tlog/{app}/checkpoint", tag = "transparency",
    params(("app" = String, Path, description = "App id")),
    responses((status = 200, description = "The newest signed checkpoint, with its cosignatures", content_type = "text/plain; charset=utf-8", body = String),
               (status = 404, description = "Unknown app, no checkpoint yet, or transparency off")),
)]
pub async fn get_checkpoint(log: Option<web::Data<Transparency>>, app: web::Path<String>) -> Answer {
    let log = enabled(log)?;
    let checkpoint = log.newest(&app_of(&app)?).await?.ok_or_else(|| ApiError::not_found("no checkpoint yet"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/plain; charset=utf-8")
        .body(log.served_note(&checkpoint).await?))
}

/// A hash tile (C2SP tlog-tiles): `<L>/<N>[.p/<W>]`.
#[utoipa::path(
    get, path = "/tlog/{app}/tile/{path}", tag = "transparency",
    params(("app" = String, Path, description = "App id"), ("path" = String, Path, description = "`<L>/<N>[.p/<W>]`, N in 3-digit groups (x001/234)")),
    responses((status = 200, description = "32-byte hashes, concatenated", content_type = "application/octet-stream", body = Vec<u8>),
               (status = 404, description = "No such tile in the newest checkpoint")),
)]
pub async fn get_tile(log: Option<web::Data<Transparency>>, path: web::Path<(String, String)>) -> Answer {
    let log = enabled(log)?;
    let (app, tail) = path.into_inner();
    let tile =
        TilePath::parse(&tail).filter(|tile| !tile.entries).ok_or_else(|| ApiError::not_found("no such tile"))?;
    let bytes = log.tile(&app_of(&app)?, tile).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, IMMUTABLE))
        .content_type("application/octet-stream")
        .body(bytes))
}

/// An entry bundle (C2SP tlog-tiles): `entries/<N>[.p/<W>]`; any token of the app.
#[utoipa::path(
    get, path = "/tlog/{app}/tile/entries/{path}", tag = "transparency",
    params(("app" = String, Path, description = "App id"), ("path" = String, Path, description = "`<N>[.p/<W>]`")),
    responses((status = 200, description = "Each entry as a big-endian uint16 length and its bytes", content_type = "application/octet-stream", body = Vec<u8>),
               (status = 403, description = "A token of another app"),
               (status = 404, description = "No such bundle in the newest checkpoint")),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn get_bundle(
    log: Option<web::Data<Transparency>>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Answer {
    let log = enabled(log)?;
    let (app, tail) = path.into_inner();
    let app = app_of(&app)?;
    if caller.app_id != app {
        return Err(ApiError::new(ProblemCode::Forbidden, "entries are readable by tokens of their app only"));
    }
    let tile = TilePath::parse(&format!("entries/{tail}")).ok_or_else(|| ApiError::not_found("no such bundle"))?;
    let bytes = log.bundle(&app, tile).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, PRIVATE_IMMUTABLE))
        .content_type("application/octet-stream")
        .body(bytes))
}

/// The caller's app's log: origin, vkey, size, witnesses.
#[utoipa::path(
    get, path = "/v1/transparency", tag = "transparency",
    responses((status = 200, description = "The log of the caller's app", body = TransparencyInfo)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn get_transparency(log: Option<web::Data<Transparency>>, caller: Caller) -> Answer {
    let log = enabled(log)?;
    let size = log.newest(&caller.app_id).await?.map_or(0, |c| c.size);
    let witnesses =
        log.witnesses().iter().map(|w| WitnessInfo { name: w.name.clone(), vkey: w.vkey.to_string() }).collect();
    Ok(HttpResponse::Ok().json(TransparencyInfo {
        origin: log.origin(&caller.app_id),
        vkey: log.vkey(&caller.app_id).to_string(),
        size,
        witnesses,
        quorum: log.quorum(),
    }))
}

/// `index` and `size`.
#[derive(Debug, Deserialize)]
pub struct InclusionQuery {
    index: u64,
    size: u64,
}

/// RFC 6962 PATH(index, D\[0:size\]).
#[utoipa::path(
    get, path = "/v1/transparency/inclusion", tag = "transparency",
    params(("index" = u64, Query, description = "Entry index"), ("size" = u64, Query, description = "Tree size, at most the newest checkpoint's")),
    responses((status = 200, description = "The inclusion proof", body = ProofResponse)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn get_inclusion(
    log: Option<web::Data<Transparency>>,
    caller: Caller,
    query: web::Query<InclusionQuery>,
) -> Answer {
    let log = enabled(log)?;
    let proof = log.inclusion(&caller.app_id, query.index, query.size).await?;
    Ok(HttpResponse::Ok().json(ProofResponse { proof: proof.iter().map(tlog::encode_hash).collect() }))
}

/// `from` and `to`.
#[derive(Debug, Deserialize)]
pub struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// RFC 6962 PROOF(from, D\[0:to\]).
#[utoipa::path(
    get, path = "/v1/transparency/consistency", tag = "transparency",
    params(("from" = u64, Query, description = "Older size"), ("to" = u64, Query, description = "Newer size, at most the newest checkpoint's")),
    responses((status = 200, description = "The consistency proof (empty for from = 0 or from = to)", body = ProofResponse)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn get_consistency(
    log: Option<web::Data<Transparency>>,
    caller: Caller,
    query: web::Query<ConsistencyQuery>,
) -> Answer {
    let log = enabled(log)?;
    let proof = log.consistency(&caller.app_id, query.from, query.to).await?;
    Ok(HttpResponse::Ok().json(ProofResponse { proof: proof.iter().map(tlog::encode_hash).collect() }))
}
