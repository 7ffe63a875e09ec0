//! `GET /keyknox/v1`, `PUT /keyknox/v1`, `POST /keyknox/v1/reset`.

use actix_web::HttpRequest;
use serde::Deserialize;
use serde_json::json;

use super::{Answer, KeyknoxBody, Services, previous_hash, with_hash};
use crate::domain::Caller;
use crate::keyknox::V1Entry;
use crate::routes::virgil::Virgil;

/// `PUT /keyknox/v1`'s body.
#[derive(Debug, Deserialize)]
struct PutRequest {
    meta: String,
    value: String,
}

fn render(entry: &V1Entry) -> Answer {
    with_hash(&json!({"meta": entry.meta, "value": entry.value, "version": entry.version}), &entry.hash)
}

/// The caller's entry, or the empty one.
pub async fn get(services: Services, caller: Virgil<Caller>) -> Answer {
    let entry = services.count("v1_get", services.keyknox.v1_get(&caller.0).await)?;
    render(&entry)
}

/// Replaces the caller's entry, if the previous hash is the current one.
pub async fn put(services: Services, caller: Virgil<Caller>, request: HttpRequest, body: KeyknoxBody) -> Answer {
    let put: PutRequest = body.0.json()?;
    let previous = previous_hash(&request)?;
    let entry = services.count("v1_put", services.keyknox.v1_put(&caller.0, &put.meta, &put.value, previous).await)?;
    render(&entry)
}

/// Empties the caller's entry. The clients send no body (and a form content type, or none).
pub async fn reset(services: Services, caller: Virgil<Caller>, _body: KeyknoxBody) -> Answer {
    let entry = services.count("v1_reset", services.keyknox.v1_reset(&caller.0).await)?;
    render(&entry)
}
