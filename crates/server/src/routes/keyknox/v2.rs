//! `POST /keyknox/v2/push|pull|keys|reset`.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::{Answer, KeyknoxBody, Services, previous_hash, with_hash};
use crate::domain::Caller;
use crate::keyknox::{KeyknoxEntry, KeysRequest, PullRequest, PushRequest, ResetRequest};
use crate::routes::virgil::Virgil;

fn render(entry: &KeyknoxEntry) -> Answer {
    let identities: Vec<&str> = entry.readers.iter().map(|reader| reader.as_str()).collect();
    let body = json!({
        "owner": entry.key.owner.as_str(),
        "root": entry.key.root,
        "path": entry.key.path,
        "key": entry.key.key,
        "identities": identities,
        "meta": entry.meta,
        "value": entry.value,
    });
    with_hash(&body, &entry.hash)
}

/// Creates or updates the caller's entry.
pub async fn push(services: Services, caller: Virgil<Caller>, request: HttpRequest, body: KeyknoxBody) -> Answer {
    let push: PushRequest = body.0.json()?;
    let previous = previous_hash(&request)?;
    let entry = services.count("push", services.keyknox.push(&caller.0, &push, previous).await)?;
    render(&entry)
}

/// An entry the caller owns or reads; the empty entry when there is none.
pub async fn pull(services: Services, caller: Virgil<Caller>, body: KeyknoxBody) -> Answer {
    let pull: PullRequest = body.0.json()?;
    let entry = services.count("pull", services.keyknox.pull(&caller.0, &pull).await)?;
    render(&entry)
}

/// The keys the caller may read.
pub async fn keys(services: Services, caller: Virgil<Caller>, body: KeyknoxBody) -> Answer {
    let request: KeysRequest = body.0.json_or_default()?;
    let keys = services.count("keys", services.keyknox.keys(&caller.0, &request).await)?;
    Ok(HttpResponse::Ok().json(keys))
}

/// Deletes the caller's matching entries, or removes a reader from them.
pub async fn reset(services: Services, caller: Virgil<Caller>, body: KeyknoxBody) -> Answer {
    let request: ResetRequest = body.0.json_or_default()?;
    let entry = services.count("reset", services.keyknox.reset(&caller.0, &request).await)?;
    render(&entry)
}
