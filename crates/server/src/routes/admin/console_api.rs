//! The admin read API: identities, one identity's history, the app's keys, and an overview
//! (counts, the event log's verification, this instance's counters). Admin tokens only; every
//! answer is the caller's app's.

use actix_web::{HttpResponse, web};
use cardinal_card::log::EventBody;
use cardinal_card::wire::{CardStatus, EventView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::Admin;
use crate::directory::Card;
use crate::domain::Caller;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::services::Answer;
use crate::storage::EventRow;
use crate::transparency::Transparency;

fn default_limit() -> i64 {
    100
}

/// A page of identities.
#[derive(Debug, Deserialize, IntoParams)]
pub struct IdentitiesPage {
    /// Only identities that start with this.
    #[serde(default)]
    prefix: String,
    /// The previous page's `next`.
    after: Option<String>,
    /// Rows, 1 to 500 (default 100).
    #[serde(default = "default_limit")]
    limit: i64,
}

/// One identity in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityRow {
    identity: String,
    /// Its change counter.
    version: i64,
    /// Cards it ever published.
    cards: i64,
    /// Of those, active now.
    active: i64,
    /// Its last change (a card accepted or a chain revoked), Unix seconds.
    last_change_at: Option<i64>,
}

/// `GET /v1/admin/identities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentitiesAnswer {
    identities: Vec<IdentityRow>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The app's identities, in byte order, by prefix.
#[utoipa::path(
    get, path = "/v1/admin/identities", tag = "admin", params(IdentitiesPage),
    responses((status = 200, description = "A page of the app's identities", body = IdentitiesAnswer)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn list_identities(admin: web::Data<Admin>, caller: Caller, page: web::Query<IdentitiesPage>) -> Answer {
    let (rows, next) = admin.identities(&caller, &page.prefix, page.after.as_deref(), page.limit).await?;
    let identities = rows
        .into_iter()
        .map(|row| IdentityRow {
            identity: row.identity.to_string(),
            version: row.version,
            cards: row.cards,
            active: row.active,
            last_change_at: row.last_published_at.max(row.last_revoked_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(IdentitiesAnswer { identities, next }))
}

/// A page of an identity's history.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryPage {
    /// The previous page's `next`.
    after: Option<String>,
    /// Cards, 1 to 500 (default 100).
    #[serde(default = "default_limit")]
    limit: i64,
}

/// A card in an identity's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryCardView {
    id: String,
    chain_id: String,
    /// Its position in its chain: 0 for the root.
    chain_index: i64,
    #[schema(value_type = String)]
    status: CardStatus,
    public_key: String,
    /// The snapshot's `created_at`.
    created_at: i64,
    /// When the service accepted it.
    published_at: i64,
    previous_card_id: Option<String>,
    superseded_by: Option<String>,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
    revoked_by: Option<String>,
    /// Whether its self signature verifies now.
    self_signature_valid: bool,
    /// Whether the service's countersignature verifies now, with this instance's service key.
    countersignature_valid: bool,
}

/// `GET /v1/admin/identities/{identity}/history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryAnswer {
    identity: String,
    /// Chains in the order they began, each from its root.
    cards: Vec<HistoryCardView>,
    /// Pass as `after` for the next page of cards; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// The events naming its cards (who, when, why), oldest first.
    events: Vec<EventView>,
}

fn event_view(row: EventRow) -> Result<EventView, ApiError> {
    let event: EventBody =
        serde_json::from_str(&row.body).map_err(|e| ApiError::internal(&format!("event {}: {e}", row.seq)))?;
    Ok(EventView { seq: row.seq, event, prev_hash: hex::encode(&row.prev_hash), hash: hex::encode(&row.hash) })
}

/// Every card of one identity in any status, with the events that made it so.
#[utoipa::path(
    get, path = "/v1/admin/identities/{identity}/history", tag = "admin",
    params(("identity" = String, Path, description = "The identity"), HistoryPage),
    responses((status = 200, description = "The identity's cards and events", body = HistoryAnswer)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn identity_history(
    admin: web::Data<Admin>,
    caller: Caller,
    identity: web::Path<String>,
    page: web::Query<HistoryPage>,
) -> Answer {
    let history = admin.history(&caller, &identity, page.after.as_deref(), page.limit).await?;
    let cards = history
        .cards
        .iter()
        .map(|entry| {
            let signatures = admin.signatures(&entry.card);
            let record = &entry.card;
            HistoryCardView {
                id: record.id.to_string(),
                chain_id: record.chain_id.to_string(),
                chain_index: record.chain_index,
                status: Card { record: record.clone() }.status(),
                public_key: record.public_key.clone(),
                created_at: record.created_at,
                published_at: record.published_at,
                previous_card_id: record.previous_card_id.as_ref().map(ToString::to_string),
                superseded_by: record.superseded_by.as_ref().map(ToString::to_string),
                revoked_at: record.revoked_at,
                revocation_reason: record.revocation_reason.clone(),
                revoked_by: record.revoked_by.clone(),
                self_signature_valid: signatures.self_signature,
                countersignature_valid: signatures.countersignature,
            }
        })
        .collect();
    let next = history.next;
    let events = history.events.into_iter().map(event_view).collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(HistoryAnswer { identity: identity.into_inner(), cards, next, events }))
}

/// One API key of the app.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    kid: String,
    /// `app` or `admin`.
    role: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// `GET /v1/admin/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysAnswer {
    keys: Vec<KeyView>,
}

/// The app's API keys (public metadata only: no key material).
#[utoipa::path(
    get, path = "/v1/admin/keys", tag = "admin",
    responses((status = 200, description = "The app's API keys, oldest first", body = KeysAnswer)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn list_keys(admin: web::Data<Admin>, caller: Caller) -> Answer {
    let keys = admin
        .keys(&caller)
        .await?
        .into_iter()
        .map(|key| KeyView {
            kid: key.kid,
            role: key.role.as_str().to_owned(),
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(KeysAnswer { keys }))
}

/// `POST /v1/admin/keys/{kid}/revoke`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevoked {
    kid: String,
    /// False when it already was.
    revoked: bool,
}

/// Revokes one of the app's API keys; its tokens stop working within `auth.credential_cache_ms`.
#[utoipa::path(
    post, path = "/v1/admin/keys/{kid}/revoke", tag = "admin",
    params(("kid" = String, Path, description = "The key id")),
    responses((status = 200, description = "Revoked (or already was)", body = KeyRevoked)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn revoke_key(admin: web::Data<Admin>, caller: Caller, kid: web::Path<String>) -> Answer {
    let revoked = admin.revoke_key(&caller, &kid).await?;
    Ok(HttpResponse::Ok().json(KeyRevoked { kid: kid.into_inner(), revoked }))
}

/// The event log's verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogStatus {
    /// Whether every event links to the previous one and matches its hash.
    intact: bool,
    /// Events verified.
    checked: i64,
    /// The newest event's hash, hex.
    head: String,
    /// Where it first fails, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
}

/// This instance's counters since it started (all apps).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceCounters {
    lookups: u64,
    lookups_not_modified: u64,
    published: u64,
    revoked: u64,
    rate_limited: u64,
    token_rejections: u64,
}

/// The app's transparency log, when it is served.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogOverview {
    origin: String,
    /// Entries the newest checkpoint covers (0: none signed yet).
    size: u64,
    /// When it was signed, Unix milliseconds.
    signed_at: Option<i64>,
    /// Witnesses configured, and how many cosigned the newest checkpoint.
    witnesses: usize,
    cosigned: usize,
    quorum: usize,
    /// Why the log refuses to sign, when it does (it never forks).
    #[serde(skip_serializing_if = "Option::is_none")]
    refusing_to_sign: Option<String>,
}

/// `GET /v1/admin/overview`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    app: String,
    identities: i64,
    cards: i64,
    active_cards: i64,
    revoked_chains: i64,
    events: i64,
    log: LogStatus,
    /// The transparency log, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    transparency: Option<LogOverview>,
    instance: InstanceCounters,
}

fn sum(counter: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    counter
        .collect()
        .iter()
        .flat_map(|family| family.get_metric().iter().map(|metric| metric.get_counter().value() as u64))
        .sum()
}

/// The app's counts, whether its event log verifies, and this instance's counters.
#[utoipa::path(
    get, path = "/v1/admin/overview", tag = "admin",
    responses((status = 200, description = "A dashboard's figures", body = Overview)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn overview(
    admin: web::Data<Admin>,
    metrics: web::Data<Metrics>,
    transparency: Option<web::Data<Transparency>>,
    caller: Caller,
) -> Answer {
    let counts = admin.counts(&caller).await?;
    let check = admin.check_log(&caller).await?;
    let transparency = match transparency {
        Some(log) => {
            let newest = log.newest(&caller.app_id).await?;
            let cosigned = match &newest {
                // The served note: the log's own signature line, then one per witness.
                Some(checkpoint) => {
                    let note = log.served_note(checkpoint).await?;
                    note.lines().filter(|line| line.starts_with("\u{2014} ")).count().saturating_sub(1)
                }
                None => 0,
            };
            Some(LogOverview {
                origin: log.origin(&caller.app_id),
                size: newest.as_ref().map_or(0, |checkpoint| checkpoint.size),
                signed_at: newest.as_ref().map(|checkpoint| checkpoint.signed_at),
                witnesses: log.witnesses().len(),
                cosigned,
                quorum: log.quorum(),
                refusing_to_sign: log.refusal(&caller.app_id),
            })
        }
        None => None,
    };
    let instance = InstanceCounters {
        lookups: sum(&metrics.lookups),
        lookups_not_modified: metrics.lookup_not_modified.get(),
        published: metrics.cards_published.get(),
        revoked: sum(&metrics.chains_revoked),
        rate_limited: sum(&metrics.rate_limited),
        token_rejections: sum(&metrics.token_rejections),
    };
    Ok(HttpResponse::Ok().json(Overview {
        app: caller.app_id.to_string(),
        identities: counts.identities,
        cards: counts.cards,
        active_cards: counts.active_cards,
        revoked_chains: counts.revoked_chains,
        events: counts.events,
        log: LogStatus {
            intact: check.failure.is_none(),
            checked: check.checked,
            head: check.head,
            failure: check.failure,
        },
        transparency,
        instance,
    }))
}
