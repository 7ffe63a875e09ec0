//! HTTP routes: thin handlers that authenticate, call the directory and render.

mod admin;
mod body;
mod cards;
pub mod health;
pub mod openapi;
mod service_key;
mod view;
pub mod virgil;

use actix_web::dev::ResourceDef;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, guard, web};
use cardinal_card::wire::ProblemCode;

use crate::error::ApiError;

pub use body::{Body, BodyLimit};

/// Declares every native route once: `configure` registers them and [`ROUTES`] lists them, so
/// tests can hold the OpenAPI document to the routes that really exist.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every native route, as (method, path template).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Registers every route of the service.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        .guard(guard::Method(actix_web::http::Method::$method))
                        .to($handler),
                );
            )*
            cfg.configure(virgil::configure)
                .configure(openapi::configure)
                .default_service(web::to(unrouted));
        }
    };
}

routes! {
    GET "/healthz" => health::healthz;
    GET "/readyz" => health::readyz;
    GET "/v1/service-key" => service_key::get_service_key;
    POST "/v1/cards" => cards::publish::publish_card;
    GET "/v1/cards" => cards::lookup::lookup_cards;
    POST "/v1/cards/search" => cards::lookup::search_cards;
    GET "/v1/cards/{id}" => cards::get::get_card;
    POST "/v1/cards/{id}/revoke" => cards::revoke::revoke_card;
    POST "/v1/admin/cards/{id}/revoke" => admin::revoke::admin_revoke_card;
    GET "/v1/admin/events" => admin::events::list_events;
}

/// 405 with `Allow` when the path exists under another method, else 404.
async fn unrouted(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, path)| ResourceDef::new(*path).is_match(request.path()))
        .map(|(method, _)| *method)
        .collect();
    if allowed.is_empty() {
        return Err(ApiError::not_found("no such route"));
    }
    let error = ApiError::new(ProblemCode::MethodNotAllowed, format!("this route takes {}", allowed.join(", ")));
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = header::HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}
