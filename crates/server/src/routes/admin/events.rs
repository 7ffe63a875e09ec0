//! `GET /v1/admin/events?after=SEQ&limit=N`

use actix_web::{HttpResponse, web};
use cardinal_card::log::EventBody;
use cardinal_card::wire::{EventView, EventsPage};
use serde::Deserialize;

use crate::domain::Caller;
use crate::error::ApiError;
use crate::routes::services::{Answer, Services};

/// The page being asked for.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// The app's event log, oldest first, with each event's hash link.
#[utoipa::path(
    get, path = "/v1/admin/events", tag = "admin",
    params(("after" = Option<i64>, Query, description = "Sequence number to start after (default 0)"),
           ("limit" = Option<i64>, Query, description = "Events per page, 1 to 1000 (default 100)")),
    responses((status = 200, description = "The app's event log, oldest first, hash-chained", body = EventsPage)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn list_events(services: Services, caller: Caller, page: web::Query<Page>) -> Answer {
    let rows = services.directory.events(&caller, page.after, page.limit).await?;
    let next = rows.last().map_or(page.after, |row| row.seq);
    let events = rows
        .into_iter()
        .map(|row| {
            let event: EventBody =
                serde_json::from_str(&row.body).map_err(|e| ApiError::internal(&format!("event {}: {e}", row.seq)))?;
            Ok(EventView { seq: row.seq, event, prev_hash: hex::encode(&row.prev_hash), hash: hex::encode(&row.hash) })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(HttpResponse::Ok().json(EventsPage { events, next }))
}
