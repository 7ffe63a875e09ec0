//! `POST /v1/admin/cards/{id}/revoke`

use actix_web::web;
use cardinal_card::RawSignedModel;
use cardinal_card::wire::{CardView, RevokeRequest};

use crate::directory::Revoker;
use crate::domain::Caller;
use crate::routes::body::Body;
use crate::routes::cards::revoke::revoke;
use crate::routes::services::{Answer, Services};

/// An admin revokes any card's chain in their app, with a reason that the log records.
#[utoipa::path(
    post, path = "/v1/admin/cards/{id}/revoke", tag = "admin",
    params(("id" = String, Path, description = "Any card of the chain to revoke")),
    request_body(content = RevokeRequest, description = "The reason is required"),
    responses((status = 200, description = "The card, its whole chain revoked", body = CardView<RawSignedModel>)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn admin_revoke_card(services: Services, caller: Caller, id: web::Path<String>, body: Body) -> Answer {
    revoke(&services, &caller, Revoker::Admin, &id, &body).await
}
