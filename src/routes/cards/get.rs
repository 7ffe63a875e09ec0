//! `GET /v1/cards/{id}`

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::routes::view::{CACHE_CONTROL, card_etag, card_view, if_none_match};

/// One card of the caller's app, whatever its status.
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
