//! HTTP routes: thin handlers that authenticate, call the directory and render.

mod admin;
mod body;
mod cards;
pub mod health;
mod service_key;
mod view;
pub mod virgil;

use actix_web::{HttpResponse, web};
use cardinal_card::wire::ProblemCode;

use crate::error::ApiError;

pub use body::{Body, BodyLimit};

/// Registers every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/v1/service-key").route(web::get().to(service_key::get_service_key)))
        .service(
            resource("/v1/cards")
                .route(web::post().to(cards::publish::publish_card))
                .route(web::get().to(cards::lookup::lookup_cards)),
        )
        .service(resource("/v1/cards/search").route(web::post().to(cards::lookup::search_cards)))
        .service(resource("/v1/cards/{id}").route(web::get().to(cards::get::get_card)))
        .service(resource("/v1/cards/{id}/revoke").route(web::post().to(cards::revoke::revoke_card)))
        .service(resource("/v1/admin/cards/{id}/revoke").route(web::post().to(admin::revoke::admin_revoke_card)))
        .service(resource("/v1/admin/events").route(web::get().to(admin::events::list_events)))
        .configure(virgil::configure)
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such route"))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ProblemCode::MethodNotAllowed, "this route does not take that method"))
}
