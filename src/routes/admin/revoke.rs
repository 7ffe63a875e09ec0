//! `POST /v1/admin/cards/{id}/revoke`

use actix_web::{HttpResponse, web};
use cardinal_card::wire::RevokeRequest;

use crate::directory::{Caller, Directory};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::body::Body;
use crate::routes::view::card_view;

/// An admin revokes any card's chain in their app, with a reason that the log records.
pub async fn admin_revoke_card(
    directory: web::Data<Directory>,
    metrics: web::Data<Metrics>,
    caller: Caller,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let request: RevokeRequest = body.json_or_default()?;
    let card = directory.revoke_as_admin(&caller, &id, request.reason).await?;
    metrics.chains_revoked.with_label_values(&["admin"]).inc();
    Ok(HttpResponse::Ok().json(card_view(&card)?))
}
