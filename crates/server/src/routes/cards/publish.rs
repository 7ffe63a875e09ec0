//! `POST /v1/cards`

use actix_web::HttpResponse;
use actix_web::http::header;
use cardinal_card::RawSignedModel;
use cardinal_card::wire::CardView;

use crate::directory::card_etag;
use crate::domain::Caller;
use crate::routes::body::Body;
use crate::routes::services::{Answer, Services};
use crate::routes::view::card_view;

/// Publishes a card (or a rotation): 201 with the countersigned card.
#[utoipa::path(
    post, path = "/v1/cards", tag = "cards",
    request_body(content = RawSignedModel, description = "A self-signed card; `previous_card_id` in its snapshot makes it a rotation"),
    responses((status = 201, description = "Published, with the service countersignature appended", body = CardView<RawSignedModel>,
        headers(("Location" = String, description = "/v1/cards/{id}"), ("ETag" = String)))),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn publish_card(services: Services, caller: Caller, body: Body) -> Answer {
    let card = services.directory.publish(&caller, body.json()?).await?;
    services.metrics.card_published(&card);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/cards/{}", card.record.id)))
        .insert_header((header::ETAG, card_etag(&card)))
        .json(card_view(&card)?))
}
