//! `GET /v1/cards/{id}`

use actix_web::{HttpRequest, web};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::CardView;

use crate::domain::Caller;
use crate::error::ApiError;
use crate::routes::services::{Answer, Services};
use crate::routes::view::{card_view, conditional, if_none_match};

/// One card of the caller's app, whatever its status.
#[utoipa::path(
    get, path = "/v1/cards/{id}", tag = "cards",
    params(("id" = String, Path, description = "Card id: 64 lowercase hex characters"),
           ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The card, in any status", body = CardView<RawSignedModel>, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
    ),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn get_card(services: Services, caller: Caller, id: web::Path<String>, request: HttpRequest) -> Answer {
    let answer = services.directory.get_conditional(&caller, &id, &if_none_match(request.headers())).await?;
    conditional(answer, |card| serde_json::to_string(&card_view(&card)?).map_err(|e| ApiError::internal(&e)))
}
