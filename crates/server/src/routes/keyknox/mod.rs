//! The Keyknox surface (`/keyknox/v1`, `/keyknox/v2`), as e3kit and the standalone Keyknox SDK
//! speak it: Virgil's `{"code","message"}` errors on every answer, 404 and 405 included (the
//! clients keep the server's code only when the body has both), the content hash in
//! `Virgil-Keyknox-Hash` and the previous one in `Virgil-Keyknox-Previous-Hash`.

mod v1;
mod v2;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::{Payload, ResourceDef};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, guard, web};
use cardinal_card::wire::ProblemCode;

use crate::error::{ApiError, VirgilError};
use crate::keyknox::{Keyknox, KeyknoxError};
use crate::metrics::Metrics;
use crate::ratelimit::{self, RouteClass, Surface};
use crate::routes::body::{Body, BodyLimit};
use crate::routes::limited;

/// Where the clients find Keyknox (`apiUrl` + this).
pub const KEYKNOX_PREFIX: &str = "/keyknox";

/// The response header with an entry's content hash.
pub const HASH_HEADER: &str = "virgil-keyknox-hash";

/// The request header with the hash the client last read.
pub const PREVIOUS_HASH_HEADER: &str = "virgil-keyknox-previous-hash";

/// Every Keyknox route, as (method, path under the prefix), for 405s.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1"),
    ("PUT", "/v1"),
    ("POST", "/v1/reset"),
    ("POST", "/v2/push"),
    ("POST", "/v2/pull"),
    ("POST", "/v2/keys"),
    ("POST", "/v2/reset"),
];

/// The body limit of Keyknox's routes: ciphertext for a whole group is larger than a card.
#[derive(Debug, Clone, Copy)]
pub struct KeyknoxBodyLimit(pub BodyLimit);

/// Registers `/keyknox`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(KEYKNOX_PREFIX)
            .app_data(Surface::Virgil)
            .service(limited(RouteClass::Read, web::resource("/v1").guard(guard::Get()).to(v1::get)))
            .service(limited(RouteClass::Write, web::resource("/v1").guard(guard::Put()).to(v1::put)))
            .service(limited(RouteClass::Write, web::resource("/v1/reset").guard(guard::Post()).to(v1::reset)))
            .service(limited(RouteClass::Write, web::resource("/v2/push").guard(guard::Post()).to(v2::push)))
            .service(limited(RouteClass::Read, web::resource("/v2/pull").guard(guard::Post()).to(v2::pull)))
            .service(limited(RouteClass::Read, web::resource("/v2/keys").guard(guard::Post()).to(v2::keys)))
            .service(limited(RouteClass::Write, web::resource("/v2/reset").guard(guard::Post()).to(v2::reset)))
            .default_service(web::to(unrouted)),
    );
}

/// 405 with `Allow` for a Keyknox path under another method, else 404; Virgil's shape either way.
async fn unrouted(request: HttpRequest) -> Result<HttpResponse, VirgilError> {
    ratelimit::admit(&request)?;
    let path = request.path().strip_prefix(KEYKNOX_PREFIX).unwrap_or_default();
    let allowed: Vec<&str> =
        ROUTES.iter().filter(|(_, route)| ResourceDef::new(*route).is_match(path)).map(|(method, _)| *method).collect();
    if allowed.is_empty() {
        return Err(ApiError::not_found("no such Keyknox route").into());
    }
    let error = ApiError::new(ProblemCode::MethodNotAllowed, format!("this route takes {}", allowed.join(", ")));
    let mut response = actix_web::ResponseError::error_response(&VirgilError(error));
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}

/// A Keyknox handler's answer.
type Answer = Result<HttpResponse, VirgilError>;

/// Keyknox and the metrics, as one extractor.
pub struct Services {
    keyknox: web::Data<Keyknox>,
    metrics: web::Data<Metrics>,
}

impl Services {
    /// Counts an answered operation, or the conflict that refused it.
    fn count<T>(&self, op: &str, result: Result<T, KeyknoxError>) -> Result<T, KeyknoxError> {
        match &result {
            Ok(_) => self.metrics.keyknox_operations.with_label_values(&[op]).inc(),
            Err(KeyknoxError::EntryExists) => self.metrics.keyknox_conflicts.with_label_values(&["entry_exists"]).inc(),
            Err(KeyknoxError::HashMismatch) => {
                self.metrics.keyknox_conflicts.with_label_values(&["hash_mismatch"]).inc()
            }
            Err(_) => {}
        }
        result
    }
}

impl FromRequest for Services {
    type Error = VirgilError;
    type Future = std::future::Ready<Result<Self, VirgilError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let keyknox = req.app_data::<web::Data<Keyknox>>().cloned();
        let metrics = req.app_data::<web::Data<Metrics>>().cloned();
        std::future::ready(match (keyknox, metrics) {
            (Some(keyknox), Some(metrics)) => Ok(Services { keyknox, metrics }),
            _ => Err(ApiError::internal(&"Keyknox or the metrics are not configured").into()),
        })
    }
}

/// A Keyknox request body, read within [`KeyknoxBodyLimit`].
pub struct KeyknoxBody(Body);

impl FromRequest for KeyknoxBody {
    type Error = VirgilError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, VirgilError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<KeyknoxBodyLimit>>()
            .map(|limit| limit.0)
            .or_else(|| req.app_data::<web::Data<BodyLimit>>().map(|limit| *limit.get_ref()));
        let limit = limit.unwrap_or(BodyLimit { bytes: 64 * 1024, timeout: std::time::Duration::from_secs(10) });
        let read = Body::read(req, payload, limit);
        Box::pin(async move { Ok(KeyknoxBody(read.await?)) })
    }
}

/// The hash the client last read, if it sent one.
fn previous_hash(request: &HttpRequest) -> Result<Option<&str>, VirgilError> {
    match request.headers().get(PREVIOUS_HASH_HEADER) {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::invalid_request("Virgil-Keyknox-Previous-Hash is not ASCII"))?
                .trim();
            Ok((!text.is_empty()).then_some(text))
        }
    }
}

/// A JSON answer with the entry's hash.
fn with_hash(body: &serde_json::Value, hash: &str) -> Answer {
    let value = HeaderValue::from_str(hash).map_err(|e| ApiError::internal(&format!("a stored hash: {e}")))?;
    Ok(HttpResponse::Ok().insert_header((HeaderName::from_static(HASH_HEADER), value)).json(body))
}
