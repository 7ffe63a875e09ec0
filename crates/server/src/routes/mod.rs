//! HTTP routes: thin handlers that authenticate, call the directory and render.

mod admin;
mod body;
mod cards;
mod console;
pub mod health;
pub mod keyknox;
pub mod openapi;
pub mod pythia;
mod service_key;
mod services;
mod transparency;
mod view;
pub mod virgil;

use actix_web::body::MessageBody;
use actix_web::dev::{HttpServiceFactory, ResourceDef, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Compress, DefaultHeaders, from_fn};
use actix_web::{Error, HttpRequest, HttpResponse, Resource, guard, web};
use cardinal_card::wire::ProblemCode;

use crate::error::ApiError;
use crate::ratelimit::{self, RouteClass};

pub use body::{Body, BodyLimit};

/// Declares every native route once: `configure` registers them and [`ROUTES`] lists them, so
/// tests can hold the OpenAPI document to the routes that really exist. Literal paths come
/// first and shadow the templated ones for every method, as a path names one resource:
/// `GET /v1/cards/search` is a 405, not a lookup of the card "search".
/// A templated route marked `+ gzip` is compressed for clients that accept it (`gzip` below).
macro_rules! routes {
    (
        literal { $($method:ident $path:literal => $handler:path, $class:ident;)* }
        templated { $($t_method:ident $t_path:literal => $t_handler:path, $t_class:ident $(+ $t_wrap:ident)?;)* }
    ) => {
        /// Every native route, as (method, path template).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)* $((stringify!($t_method), $t_path),)*];

        /// Registers every route of the service (Pythia's when `pythia_enabled`).
        pub fn configure(cfg: &mut web::ServiceConfig, pythia_enabled: bool) {
            $(
                cfg.service(limited(
                    RouteClass::$class,
                    web::resource($path).guard(guard::Method(actix_web::http::Method::$method)).to($handler),
                ));
            )*
            let mut literal_paths = vec![$($path),*];
            literal_paths.dedup();
            for path in literal_paths {
                cfg.service(web::resource(path).to(unrouted));
            }
            $(
                cfg.service(limited(
                    RouteClass::$t_class,
                    $($t_wrap)? (web::resource($t_path).guard(guard::Method(actix_web::http::Method::$t_method)).to($t_handler)),
                ));
            )*
            cfg.configure(virgil::configure)
                .configure(keyknox::configure)
                .configure(|cfg| pythia::configure(cfg, pythia_enabled))
                .configure(openapi::configure)
                .default_service(web::to(unrouted));
        }
    };
}

routes! {
    literal {
        GET "/healthz" => health::healthz, Exempt;
        GET "/admin" => console::index, Read;
        GET "/admin/console.js" => console::script, Read;
        GET "/admin/console.css" => console::style, Read;
        GET "/admin/favicon.svg" => console::icon, Read;
        GET "/readyz" => health::readyz, Read;
        GET "/v1/service-key" => service_key::get_service_key, Read;
        POST "/v1/cards" => cards::publish::publish_card, Write;
        GET "/v1/cards" => cards::lookup::lookup_cards, Read;
        POST "/v1/cards/search" => cards::lookup::search_cards, Read;
        GET "/v1/admin/events" => admin::events::list_events, Read;
        POST "/v1/admin/tokens/inspect" => admin::tokens::inspect_token, Read;
        GET "/v1/admin/identities" => admin::console_api::list_identities, Read;
        GET "/v1/admin/keys" => admin::console_api::list_keys, Read;
        GET "/v1/admin/overview" => admin::console_api::overview, Read;
        GET "/v1/transparency" => transparency::get_transparency, Read;
        GET "/v1/transparency/inclusion" => transparency::get_inclusion, Read;
        GET "/v1/transparency/consistency" => transparency::get_consistency, Read;
    }
    templated {
        GET "/v1/cards/{id}" => cards::get::get_card, Read;
        POST "/v1/cards/{id}/revoke" => cards::revoke::revoke_card, Write;
        POST "/v1/admin/cards/{id}/revoke" => admin::revoke::admin_revoke_card, Write;
        GET "/v1/admin/identities/{identity}/history" => admin::console_api::identity_history, Read;
        POST "/v1/admin/keys/{kid}/revoke" => admin::console_api::revoke_key, Write;
        POST "/v1/admin/identities/{identity}/keyknox/erase" => admin::keyknox::erase_keyknox, Write;
        GET "/tlog/{app}/checkpoint" => transparency::get_checkpoint, Read;
        GET "/tlog/{app}/tile/entries/{path:.*}" => transparency::get_bundle, Read + gzip;
        GET "/tlog/{app}/tile/{path:.*}" => transparency::get_tile, Read + gzip;
    }
}

/// A route of `class`: its limits are applied after routing, by the route it matched, so every
/// spelling of a path that reaches the handler (percent-encoded, doubled slashes) counts alike.
pub(crate) fn limited<T, B>(class: RouteClass, resource: Resource<T>) -> impl HttpServiceFactory
where
    T: ServiceFactory<ServiceRequest, Config = (), Response = ServiceResponse<B>, Error = Error, InitError = ()>
        + 'static,
    B: MessageBody + 'static,
{
    resource.app_data(class).wrap(from_fn(ratelimit::limit_route))
}

/// A route whose answers are gzipped when the request accepts it (`+ gzip` above: the
/// transparency tiles and entry bundles, which C2SP tlog-tiles lets a server compress at the HTTP
/// layer). Every answer says `Vary: Accept-Encoding`, compressed or not, so a cache keeps the two
/// apart; `Compress` adds it to the compressed ones and `DefaultHeaders` to the others.
fn gzip(
    resource: Resource,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    resource.wrap(Compress::default()).wrap(DefaultHeaders::new().add((header::VARY, "Accept-Encoding")))
}

/// 405 with `Allow` when the path exists under another method, else 404. Limited as a read:
/// unmatched paths are no way around the limits. Rendered the way the path's surface speaks:
/// Virgil's clients under `/pythia` (and any Virgil prefix without a route yet) read only
/// `{"code","message"}`.
async fn unrouted(request: HttpRequest) -> HttpResponse {
    let surface = ratelimit::Surface::of_path(request.path());
    native_unrouted(&request).await.unwrap_or_else(|error| surface.render(error))
}

async fn native_unrouted(request: &HttpRequest) -> Result<HttpResponse, ApiError> {
    ratelimit::admit(request)?;
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
