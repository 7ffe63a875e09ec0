//! `POST /v1/cards`

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use cardinal_card::RawSignedModel;

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::body::Body;
use crate::routes::view::{card_etag, card_view};

/// Publishes a card (or a rotation): 201 with the countersigned card.
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
