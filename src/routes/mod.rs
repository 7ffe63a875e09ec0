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
/// tests can hold the OpenAPI document to the routes that really exist. Literal paths come
/// first and shadow the templated ones for every method, as a path names one resource:
/// `GET /v1/cards/search` is a 405, not a lookup of the card "search".
macro_rules! routes {
    (
        literal { $($method:ident $path:literal => $handler:path;)* }
        templated { $($t_method:ident $t_path:literal => $t_handler:path;)* }
    ) => {
        /// Every native route, as (method, path template).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)* $((stringify!($t_method), $t_path),)*];

        /// Registers every route of the service.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(web::resource($path).guard(guard::Method(actix_web::http::Method::$method)).to($handler));
            )*
            let mut literal_paths = vec![$($path),*];
            literal_paths.dedup();
            for path in literal_paths {
                cfg.service(web::resource(path).to(unrouted));
            }
            $(
                cfg.service(web::resource($t_path).guard(guard::Method(actix_web::http::Method::$t_method)).to($t_handler));
            )*
            cfg.configure(virgil::configure).configure(openapi::configure).default_service(web::to(unrouted));
        }
    };
}

routes! {
    literal {
        GET "/healthz" => health::healthz;
        GET "/readyz" => health::readyz;
        GET "/v1/service-key" => service_key::get_service_key;
        POST "/v1/cards" => cards::publish::publish_card;
        GET "/v1/cards" => cards::lookup::lookup_cards;
        POST "/v1/cards/search" => cards::lookup::search_cards;
        GET "/v1/admin/events" => admin::events::list_events;
    }
    templated {
        GET "/v1/cards/{id}" => cards::get::get_card;
        POST "/v1/cards/{id}/revoke" => cards::revoke::revoke_card;
        POST "/v1/admin/cards/{id}/revoke" => admin::revoke::admin_revoke_card;
    }
}

/// 405 with `Allow` when the path exists under another method, else 404.
async fn unrouted(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = request.path();
    let matching: Vec<&(&str, &str)> =
        ROUTES.iter().filter(|(_, route)| ResourceDef::new(*route).is_match(path)).collect();
    // A literal route ("/v1/cards/search") wins over a template that also matches its path
    // ("/v1/cards/{id}"), as in the router.
    let literal = matching.iter().any(|(_, route)| *route == path);
    let allowed: Vec<&str> =
        matching.iter().filter(|(_, route)| !literal || *route == path).map(|(method, _)| *method).collect();
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
