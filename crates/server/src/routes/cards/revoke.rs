//! `POST /v1/cards/{id}/revoke`, and the revocation both revoke routes share.

use actix_web::{HttpResponse, web};
use cardinal_card::RawSignedModel;
use cardinal_card::wire::{CardView, RevokeRequest};

use crate::directory::Revoker;
use crate::domain::Caller;
use crate::routes::body::Body;
use crate::routes::services::{Answer, Services};
use crate::routes::view::card_view;

/// The owner revokes the whole chain of one of their cards; the body and its reason are optional.
#[utoipa::path(
    post, path = "/v1/cards/{id}/revoke", tag = "cards",
    params(("id" = String, Path, description = "Any card of the chain to revoke")),
    request_body(content = Option<RevokeRequest>, description = "Optional reason"),
    responses((status = 200, description = "The card, its whole chain revoked (repeating is a no-op)", body = CardView<RawSignedModel>)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn revoke_card(services: Services, caller: Caller, id: web::Path<String>, body: Body) -> Answer {
    revoke(&services, &caller, Revoker::Owner, &id, &body).await
}

/// Revokes as `by` says, counts it, and answers the card (both revoke routes).
pub(crate) async fn revoke(services: &Services, caller: &Caller, by: Revoker, id: &str, body: &Body) -> Answer {
    let request: RevokeRequest = body.json_or_default()?;
    let card = services.directory.revoke(caller, by, id, request.reason).await?;
    services.metrics.chains_revoked.with_label_values(&[by.as_str()]).inc();
    Ok(HttpResponse::Ok().json(card_view(&card)?))
}
