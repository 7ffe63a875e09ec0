//! The Virgil Cards v5 surface (`/card/v5`): a thin adapter over the same directory as `/v1`,
//! speaking what Virgil's SDKs expect — the stored RawSignedModel as the body, Virgil's statuses
//! and numeric `{"code","message"}` errors, `X-Virgil-Is-Superseeded` on outdated cards.

mod extract;

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::directory::{Count, Directory, Revoker};
use crate::domain::Caller;
use crate::error::{ApiError, VirgilError};
use crate::ratelimit::{self, RouteClass, Surface};
use crate::routes::body::Body;
use crate::routes::limited;
use crate::routes::services::Services;
pub(crate) use extract::Virgil;

/// The header the SDK reads to mark a fetched card outdated (sic: Virgil's spelling).
pub const SUPERSEDED_HEADER: &str = "x-virgil-is-superseeded";

/// Where the Virgil SDKs find the Cards service (`apiUrl` + this).
pub const CARDS_PREFIX: &str = "/card/v5";

/// Registers `/card/v5`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(CARDS_PREFIX)
            .app_data(Surface::Virgil)
            .service(limited(RouteClass::Write, web::resource("").route(web::post().to(publish_card))))
            .service(limited(RouteClass::Read, web::resource("/actions/search").route(web::post().to(search_cards))))
            .service(limited(
                RouteClass::Write,
                web::resource("/actions/revoke/{id}").route(web::post().to(revoke_card)),
            ))
            .service(limited(RouteClass::Read, web::resource("/{id}").route(web::get().to(get_card))))
            .default_service(web::to(not_found)),
    );
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, VirgilError> {
    ratelimit::admit(&request)?;
    Err(ApiError::not_found("no such route").into())
}

fn raw_json(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(body)
}

/// A Virgil handler's answer.
type Answer = Result<HttpResponse, VirgilError>;

/// `POST /card/v5`: 201 with the stored model, the service countersignature appended.
async fn publish_card(services: Services, caller: Virgil<Caller>, body: Virgil<Body>) -> Answer {
    let card = services.directory.publish(&caller.0, body.0.json()?).await?;
    services.metrics.card_published(&card);
    Ok(HttpResponse::Created().content_type(ContentType::json()).body(card.record.raw))
}

/// `GET /card/v5/{id}`
async fn get_card(directory: web::Data<Directory>, caller: Virgil<Caller>, id: web::Path<String>) -> Answer {
    let card = directory.get(&caller.0, &id).await?;
    let outdated = card.status() != cardinal_card::wire::CardStatus::Active;
    let mut response = raw_json(card.record.raw);
    if outdated {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(SUPERSEDED_HEADER),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// The SDKs send `identities`; Virgil's service also took a single `identity`.
#[derive(Debug, Deserialize)]
struct SearchRequest {
    #[serde(default)]
    identities: Vec<String>,
    #[serde(default)]
    identity: Option<String>,
}

/// `POST /card/v5/actions/search`: a JSON array of the newest cards of every unrevoked chain.
async fn search_cards(services: Services, caller: Virgil<Caller>, body: Virgil<Body>) -> Answer {
    let request: SearchRequest = body.0.json()?;
    let wanted = request.identities.iter().chain(request.identity.as_ref()).map(String::as_str);
    let directory = &services.directory;
    let identities = directory.lookup_identities(wanted, Count::Distinct)?;
    services.metrics.lookup("virgil_search", identities.len(), false);
    let cards = directory.unrevoked_chains(&caller.0, &identities).await?;
    // The stored models are JSON already: join them, never re-encode.
    let array = format!("[{}]", cards.iter().map(|card| card.record.raw.as_str()).collect::<Vec<_>>().join(","));
    Ok(raw_json(directory.bounded_answer(array)?))
}

/// `POST /card/v5/actions/revoke/{id}`: revokes the card's whole chain, as e3kit's `unregister`
/// assumes (it revokes only the newest card it found).
async fn revoke_card(services: Services, caller: Virgil<Caller>, id: web::Path<String>, _: Virgil<Body>) -> Answer {
    services.directory.revoke(&caller.0, Revoker::Owner, &id, None).await?;
    services.metrics.chains_revoked.with_label_values(&[Revoker::Owner.as_str()]).inc();
    Ok(HttpResponse::Ok().finish())
}
