//! The OpenAPI 3.1 document, generated from the handlers' annotations, and Swagger UI served
//! from the binary (no CDN: the UI works offline).

use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use cardinal_card::log::{EventBody, EventKind};
use cardinal_card::wire::{
    CardStatus, CardView, EventView, EventsPage, LookupResponse, Problem, ProblemCode, RevokeRequest, SearchRequest,
    ServiceKeyResponse, TokenInspectRequest, TokenInspection,
};
use cardinal_card::{RawSignature, RawSignedModel};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use super::{admin, cards, health, limited, service_key, transparency};
use crate::error::ApiError;
use crate::ratelimit::RouteClass;
use cardinal_card::tlog::wire::{CardLog, ProofResponse, TransparencyInfo, WitnessInfo};

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
        admin::tokens::inspect_token,
        admin::console_api::list_identities,
        admin::console_api::identity_history,
        admin::console_api::list_keys,
        admin::console_api::revoke_key,
        admin::console_api::overview,
        admin::keyknox::erase_keyknox,
        service_key::get_service_key,
        health::healthz,
        health::readyz,
        transparency::get_transparency,
        transparency::get_inclusion,
        transparency::get_consistency,
        transparency::get_checkpoint,
        transparency::get_tile,
        transparency::get_bundle,
    ),
    components(schemas(
        RawSignedModel, RawSignature, CardStatus, CardView<RawSignedModel>, LookupResponse<RawSignedModel>,
        SearchRequest, RevokeRequest, ServiceKeyResponse, EventView, EventsPage, EventBody, EventKind, Problem, ProblemCode,
        TokenInspectRequest, TokenInspection,
        admin::keyknox::KeyknoxErased,
        TransparencyInfo, WitnessInfo, ProofResponse, CardLog,
    )),
    modifiers(&Security),
    tags(
        (name = "cards", description = "Publish, look up and revoke cards"),
        (name = "admin", description = "Admin tokens only"),
        (name = "service", description = "Health and the service key"),
        (name = "transparency", description = "The app's C2SP transparency log (docs/TRANSPARENCY.md)"),
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

/// The limits the document states, from the configuration (so that a client generating
/// requests from it, schemathesis in the hardening suite, produces only what this service
/// accepts).
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    /// Longest identity.
    pub identity_max_bytes: usize,
    /// Identities per lookup.
    pub identities_per_lookup: usize,
    /// Events per page.
    pub events_page_max: i64,
    /// Longest revocation reason.
    pub reason_max_bytes: usize,
    /// Longest `brainkey_id`, when Pythia is served.
    pub pythia_brainkey_id_max_bytes: Option<usize>,
}

/// The served document: generated from the handlers, then given what the annotations cannot
/// express — the configured input constraints, and the error answers every route shares.
pub struct Document(Value);

impl Document {
    /// The document under these limits.
    pub fn new(limits: &DocumentLimits) -> Result<Self, serde_json::Error> {
        let mut document = serde_json::to_value(ApiDoc::openapi())?;
        constrain(&mut document, limits);
        add_shared_answers(&mut document);
        if let Some(brainkey_id_max_bytes) = limits.pythia_brainkey_id_max_bytes {
            add_pythia(&mut document, brainkey_id_max_bytes);
        }
        Ok(Document(document))
    }

    /// As JSON.
    pub fn as_json(&self) -> &Value {
        &self.0
    }
}

/// Printable ASCII, 1 to the configured length: what `Identity` accepts.
fn identity_schema(limits: &DocumentLimits) -> Value {
    json!({"type": "string", "pattern": "^[ -~]+$", "minLength": 1, "maxLength": limits.identity_max_bytes})
}

fn identity_batch_schema(limits: &DocumentLimits) -> Value {
    json!({"type": "array", "items": identity_schema(limits), "minItems": 1, "maxItems": limits.identities_per_lookup})
}

fn operations(document: &mut Value) -> impl Iterator<Item = (&str, &mut Value)> {
    document["paths"].as_object_mut().into_iter().flat_map(|paths| paths.iter_mut()).flat_map(|(path, operations)| {
        operations.as_object_mut().into_iter().flat_map(|ops| ops.values_mut()).map(move |op| (path.as_str(), op))
    })
}

fn constrain(document: &mut Value, limits: &DocumentLimits) {
    for (path, operation) in operations(document) {
        // The admin read API pages by identity or by a cursor it gave, up to its own bound.
        let admin_reads = path.starts_with("/v1/admin/identities");
        // `get_mut`: indexing would insert a null `parameters` into operations that have none.
        let parameters = operation.get_mut("parameters").and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten() {
            let schema = match parameter["name"].as_str() {
                Some("id") => json!({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
                Some("identity") if parameter["in"] == "path" => identity_schema(limits),
                Some("identity") => identity_batch_schema(limits),
                Some("after") if admin_reads => json!({"type": "string", "minLength": 1, "maxLength": 256}),
                Some("prefix") => json!({"type": "string", "maxLength": 256}),
                Some("limit") if admin_reads => {
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": crate::admin::AdminLimits::default().page_max})
                }
                Some("after") => json!({"type": "integer", "format": "int64", "minimum": 0}),
                Some("limit") => {
                    json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": limits.events_page_max})
                }
                _ => continue,
            };
            parameter["schema"] = schema;
        }
    }
    let schemas = &mut document["components"]["schemas"];
    schemas["SearchRequest"]["properties"]["identities"] = identity_batch_schema(limits);
    schemas["RevokeRequest"]["properties"]["reason"] =
        json!({"type": ["string", "null"], "maxLength": limits.reason_max_bytes});
}

/// A problem answer.
fn problem(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

/// The problem codes each route answers besides the shared ones, by status. One table rather
/// than a list in every handler's annotation: the codes are the directory's, not the handlers'.
const ROUTE_PROBLEMS: &[(&str, &[(&str, &str)])] = &[
    (
        "post /v1/cards",
        &[
            (
                "400",
                "invalid_request, invalid_snapshot, invalid_identity, invalid_version, invalid_created_at, \
                 invalid_public_key, unsupported_key_type, invalid_previous_card_id, invalid_signature_entry, \
                 too_many_signatures, reserved_signer, duplicate_signer, self_signature_missing, \
                 extra_snapshot_too_large, snapshot_too_large, card_too_large, bad_signature, previous_card_not_found",
            ),
            ("403", "identity_mismatch, forbidden"),
            (
                "409",
                "card_exists, identity_taken, already_superseded, chain_revoked, previous_card_mismatch, too_many_chains",
            ),
        ],
    ),
    ("get /v1/cards", &[("400", "invalid_request, invalid_identity, too_many_identities, answer_too_large")]),
    ("post /v1/cards/search", &[("400", "invalid_request, invalid_identity, too_many_identities, answer_too_large")]),
    ("get /v1/cards/{id}", &[("400", "invalid_card_id"), ("404", "not_found (also for a card of another app)")]),
    (
        "post /v1/cards/{id}/revoke",
        &[("400", "invalid_request, invalid_card_id"), ("403", "forbidden"), ("404", "not_found")],
    ),
    (
        "post /v1/admin/cards/{id}/revoke",
        &[("400", "invalid_request, invalid_card_id"), ("403", "forbidden (not an admin token)"), ("404", "not_found")],
    ),
    ("get /v1/admin/events", &[("400", "invalid_request"), ("403", "forbidden (not an admin token)")]),
    (
        "post /v1/admin/identities/{identity}/keyknox/erase",
        &[("400", "invalid_identity"), ("403", "forbidden (not an admin token)")],
    ),
    ("get /v1/admin/identities", &[("400", "invalid_request"), ("403", "forbidden (not an admin token)")]),
    (
        "get /v1/admin/identities/{identity}/history",
        &[("400", "invalid_request, invalid_identity"), ("403", "forbidden (not an admin token)")],
    ),
    ("get /v1/admin/keys", &[("403", "forbidden (not an admin token)")]),
    (
        "post /v1/admin/keys/{kid}/revoke",
        &[("403", "forbidden (not an admin token)"), ("404", "not_found (no such key in this app)")],
    ),
    ("get /v1/admin/overview", &[("403", "forbidden (not an admin token)")]),
    ("post /v1/admin/tokens/inspect", &[("400", "invalid_request"), ("403", "forbidden (not an admin token)")]),
    ("get /v1/transparency", &[("404", "not_found (transparency is off)")]),
    ("get /v1/transparency/inclusion", &[("400", "invalid_request"), ("404", "not_found (transparency is off)")]),
    ("get /v1/transparency/consistency", &[("400", "invalid_request"), ("404", "not_found (transparency is off)")]),
];

/// What every route can answer, stated once instead of in every handler's annotation: its own
/// problems ([`ROUTE_PROBLEMS`]), 401 where a token is needed, 413 where a body is read, 429 and
/// 503 everywhere but liveness.
fn add_shared_answers(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut().map(std::mem::take) else { return };
    let mut annotated = serde_json::Map::new();
    for (path, mut operations) in paths {
        for (method, operation) in operations.as_object_mut().into_iter().flatten() {
            let route = format!("{method} {path}");
            let problems = ROUTE_PROBLEMS.iter().find(|(r, _)| *r == route).map_or(&[][..], |(_, problems)| *problems);
            add_answers(&path, operation, problems);
        }
        annotated.insert(path, operations);
    }
    document["paths"] = Value::Object(annotated);
}

fn add_answers(path: &str, operation: &mut Value, problems: &[(&str, &str)]) {
    if path == "/healthz" {
        return;
    }
    let authenticated = operation.get("security").is_some();
    let reads_a_body = operation.get("requestBody").is_some();
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };
    let mut add = |status: &str, answer: Value| {
        responses.entry(status).or_insert(answer);
    };
    for (status, codes) in problems {
        add(status, problem(codes));
    }
    if authenticated {
        add("401", problem("token_missing, token_invalid, token_expired"));
    }
    if reads_a_body {
        add("413", problem("payload_too_large"));
    }
    add("429", problem("rate_limited (with Retry-After)"));
    add("503", problem("unavailable (with Retry-After)"));
}

/// `POST /pythia/v1/brainkey`, written out here: it speaks Virgil's `{"code","message"}` errors,
/// not problem+json, so the shared answers do not apply.
fn add_pythia(document: &mut Value, brainkey_id_max_bytes: usize) {
    let virgil = |description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VirgilError"}}}})
    };
    document["components"]["schemas"]["VirgilError"] = json!({
        "type": "object",
        "description": "Virgil's error body: a numeric code (the stable, machine-readable part) and a message",
        "required": ["code", "message"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    });
    if let Some(tags) = document["tags"].as_array_mut() {
        tags.push(json!({"name": "pythia", "description": "Pythia brainkey: e3kit's password-derived backup keys"}));
    }
    document["paths"]["/pythia/v1/brainkey"] = json!({"post": {
        "tags": ["pythia"],
        "operationId": "pythia_brainkey",
        "summary": "The seed e(k·x, Q) for a blinded password (Virgil's Pythia brainkey, as e3kit calls it)",
        "description": "x is the client's blinded password; k and Q are secret to the server and fixed per             (app, identity, brainkey_id). The client deblinds the seed and derives its backup key pair from it.             Every call can test one password guess: it is rate-limited per (app, identity) and per address             ([rate_limits.brainkey]); over the limit, 429 with code 60007 (e3kit retries once after 2 s) and             Retry-After. User (app-role) tokens only.",
        "security": [{"virgil": []}, {"bearer": []}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["blinded_password"],
            "properties": {
                "blinded_password": {"type": "string", "description": "Standard base64 of relic's 49-byte                     compressed G1 point: 0x02 + bit 0 of y in Montgomery form, then x (48 bytes big-endian, < p);                     it must be in the prime-order subgroup", "minLength": 68, "maxLength": 68},
                "brainkey_id": {"type": ["string", "null"], "maxLength": brainkey_id_max_bytes,
                    "description": "Another key of the same user (e3kit sends none; absent and empty are one)"},
            },
        }}}},
        "responses": {
            "200": {"description": "The seed", "content": {"application/json": {"schema": {
                "type": "object", "required": ["seed"],
                "properties": {"seed": {"type": "string", "description": "Standard base64 of 384 bytes: relic's                     packed GT element, f.c0.c1 ‖ f.c0.c2 ‖ f.c1.c0 ‖ f.c1.c2"}},
            }}}},
            "400": virgil("30001 malformed body; 60101 blinded_password not base64; 60102 not 49 bytes with                 prefix 0x02 or 0x03; 60103 x not below p; 60104 not a point of the curve; 60105 the identity                 or outside the prime-order subgroup; 60106 brainkey_id too long"),
            "401": virgil("20300 token missing or invalid; 20304 token expired"),
            "403": virgil("60107 an admin token (brainkeys are for users)"),
            "413": virgil("30001 the body is too large"),
            "429": virgil("60007 throttled (with Retry-After)"),
            "503": virgil("10000 no evaluation slot in time, or the database is unavailable (with Retry-After)"),
        },
    }});
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

async fn document(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok().json(document.as_json())
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
