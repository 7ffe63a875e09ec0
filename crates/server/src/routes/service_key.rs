//! The service's countersigning key, for clients to pin.

use actix_web::{HttpResponse, web};
use cardinal_card::SERVICE_SIGNER;
use cardinal_card::wire::ServiceKeyResponse;

use crate::directory::Directory;

/// `GET /v1/service-key`
#[utoipa::path(get, path = "/v1/service-key", tag = "service",
    responses((status = 200, description = "The key that countersigns every card", body = ServiceKeyResponse)))]
pub async fn get_service_key(directory: web::Data<Directory>) -> HttpResponse {
    HttpResponse::Ok().json(ServiceKeyResponse {
        signer: SERVICE_SIGNER.to_owned(),
        public_key: directory.service_key().public_key().to_spki_base64(),
    })
}
