//! `POST /v1/cards/{id}/revoke`

use actix_web::{HttpResponse, web};
use cardinal_card::wire::RevokeRequest;

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::body::Body;
use crate::routes::view::card_view;

/// The owner revokes the whole chain of one of their cards; the body and its reason are optional.
pub async fn revoke_card(
    directory: web::Data<Directory>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let request: RevokeRequest = body.json_or_default()?;
    let card = directory.revoke_own(&caller, &id, request.reason).await?;
    metrics.chains_revoked.with_label_values(&["owner"]).inc();
    Ok(HttpResponse::Ok().json(card_view(&card)?))
}
