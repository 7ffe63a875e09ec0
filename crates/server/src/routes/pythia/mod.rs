//! The Pythia surface (`/pythia/v1`), as e3kit and virgil-pythia call it: Virgil's
//! `{"code","message"}` errors on every answer, 404 and 405 included.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::domain::Caller;
use crate::error::{ApiError, VirgilError};
use crate::metrics::Metrics;
use crate::pythia::{BrainkeyRequest, Brainkeys, PythiaError};
use crate::ratelimit::{self, RouteClass, Surface};
use crate::routes::body::Body;
use crate::routes::limited;
use crate::routes::virgil::Virgil;

/// Where the Virgil SDKs find Pythia (`apiUrl` + this).
pub const PREFIX: &str = "/pythia";

/// Registers `/pythia`, when Pythia is enabled; otherwise its paths are Virgil-shaped 404s.
pub fn configure(cfg: &mut web::ServiceConfig, enabled: bool) {
    let mut scope = web::scope(PREFIX).app_data(Surface::Virgil);
    if enabled {
        scope = scope.service(limited(
            RouteClass::Brainkey,
            web::resource("/v1/brainkey").route(web::post().to(brainkey)).default_service(web::to(not_allowed)),
        ));
    }
    cfg.service(scope.default_service(web::to(not_found)));
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, VirgilError> {
    ratelimit::admit(&request)?;
    Err(ApiError::not_found("no such route").into())
}

async fn not_allowed() -> HttpResponse {
    let error = ApiError::new(cardinal_card::wire::ProblemCode::MethodNotAllowed, "this route takes POST");
    let mut response = actix_web::ResponseError::error_response(&VirgilError(error));
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

#[derive(Debug, Deserialize)]
struct BrainkeyBody {
    blinded_password: String,
    #[serde(default)]
    brainkey_id: Option<String>,
}

/// `POST /pythia/v1/brainkey`: `{"seed"}` for the caller's blinded password. The caller's
/// limits (per address, per identity) were charged before the body was read.
async fn brainkey(
    brainkeys: web::Data<Brainkeys>,
    metrics: web::Data<Metrics>,
    caller: Virgil<Caller>,
    body: Virgil<Body>,
) -> Result<HttpResponse, VirgilError> {
    let request: BrainkeyBody = body.0.json()?;
    let asked =
        BrainkeyRequest { blinded_password: &request.blinded_password, brainkey_id: request.brainkey_id.as_deref() };
    match brainkeys.seed(&caller.0, asked).await {
        Ok(evaluated) => {
            metrics.pythia_evaluations.with_label_values(&["ok"]).inc();
            metrics.pythia_evaluation_seconds.observe(evaluated.took.as_secs_f64());
            let body = serde_json::json!({ "seed": evaluated.seed.to_base64() });
            Ok(HttpResponse::Ok().content_type(ContentType::json()).body(body.to_string()))
        }
        Err(error) => {
            let outcome = match error {
                PythiaError::Busy => "busy",
                PythiaError::Failed(_) => "failed",
                _ => "invalid",
            };
            metrics.pythia_evaluations.with_label_values(&[outcome]).inc();
            Err(ApiError::from(error).into())
        }
    }
}
