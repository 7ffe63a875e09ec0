//! The OpenAPI 3.1 document, generated from the handlers' annotations, and Swagger UI served
//! from the binary (no CDN: the UI works offline).

use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use cardinal_card::log::{EventBody, EventKind};
use cardinal_card::wire::{
    CardStatus, CardView, EventView, EventsPage, LookupResponse, Problem, ProblemCode, RevokeRequest, SearchRequest,
    ServiceKeyResponse,
};
use cardinal_card::{RawSignature, RawSignedModel};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use super::{admin, cards, health, limited, service_key};
use crate::error::ApiError;
use crate::ratelimit::RouteClass;

/// The native API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cardinal",
        description = "A self-hosted public-key directory. Errors are application/problem+json with a stable `code`.",
    ),
    paths(
        cards::publish::publish_card,
        cards::get::get_card,
        cards::lookup::lookup_cards,
        cards::lookup::search_cards,
        cards::revoke::revoke_card,
        admin::revoke::admin_revoke_card,
        admin::events::list_events,
        service_key::get_service_key,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        RawSignedModel, RawSignature, CardStatus, CardView<RawSignedModel>, LookupResponse<RawSignedModel>,
        SearchRequest, RevokeRequest, ServiceKeyResponse, EventView, EventsPage, EventBody, EventKind, Problem, ProblemCode,
    )),
    modifiers(&Security),
    tags(
        (name = "cards", description = "Publish, look up and revoke cards"),
        (name = "admin", description = "Admin tokens only"),
        (name = "service", description = "Health and the service key"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT (EdDSA)").build(),
            ),
        );
        components.add_security_scheme(
            "virgil",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Virgil <VEDS512 JWT>`, as Virgil's SDKs send it",
            ))),
        );
    }
}

/// The document, built once: generated from the handlers, then given the input constraints that
/// the annotations cannot express, so that a client generating requests from it (schemathesis
/// in the hardening suite) produces only what the service accepts.
pub static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    constrain(&mut document);
    serde_json::from_value(document).unwrap_or_else(|_| ApiDoc::openapi())
});

/// Printable ASCII, 1 to 1024 bytes: what `Identity` accepts.
fn identity_schema() -> Value {
    json!({"type": "string", "pattern": "^[ -~]+$", "minLength": 1, "maxLength": 1024})
}

fn identity_batch_schema() -> Value {
    json!({"type": "array", "items": identity_schema(), "minItems": 1, "maxItems": 100})
}

fn constrain(document: &mut Value) {
    if let Some(paths) = document["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
            for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
                let schema = match parameter["name"].as_str() {
                    Some("id") => json!({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
                    Some("identity") => identity_batch_schema(),
                    Some("after") => json!({"type": "integer", "format": "int64", "minimum": 0}),
                    Some("limit") => json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": 1000}),
                    _ => continue,
                };
                parameter["schema"] = schema;
            }
        }
    }
    let schemas = &mut document["components"]["schemas"];
    schemas["SearchRequest"]["properties"]["identities"] = identity_batch_schema();
    schemas["RevokeRequest"]["properties"]["reason"] = json!({"type": ["string", "null"], "maxLength": 1024});
}

/// Where the document is served, and where the UI reads it.
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// The UI's configuration: it reads the document from [`DOCUMENT_PATH`].
static UI_CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| Arc::new(Config::new([DOCUMENT_PATH])));

/// `GET /openapi.json` and the UI at `/docs/`, limited as reads like every other route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(limited(RouteClass::Read, web::resource(DOCUMENT_PATH).route(web::get().to(document))))
        .service(limited(RouteClass::Read, web::resource("/docs").route(web::get().to(docs_root))))
        .service(limited(RouteClass::Read, web::resource("/docs/{file:.*}").route(web::get().to(docs_file))));
}

async fn document() -> HttpResponse {
    HttpResponse::Ok().json(&*DOCUMENT)
}

/// Swagger UI loads its own scripts and styles (no inline script, some inline styles) and reads
/// the document from this origin; nothing else.
const DOCS_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                           frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn docs_root() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
}

/// One file of Swagger UI, from the copy built into the binary.
async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&file, UI_CONFIG.clone()) {
        Ok(Some(found)) => {
            let mut response = HttpResponse::Ok();
            response.insert_header((header::CONTENT_SECURITY_POLICY, DOCS_POLICY));
            if found.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, header::ContentEncoding::Gzip));
            }
            Ok(response.content_type(found.content_type).body(found.bytes.into_owned()))
        }
        Ok(None) => Err(ApiError::not_found("no such documentation file")),
        Err(error) => Err(ApiError::internal(&error)),
    }
}
