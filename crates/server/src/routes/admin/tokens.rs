//! `POST /v1/admin/tokens/inspect`: why a token is refused, for the admin of its app.

use actix_web::{HttpResponse, web};
use cardinal_card::wire::{ProblemCode, TokenInspectRequest, TokenInspection};

use crate::auth::Authenticator;
use crate::domain::{Caller, KeyRole};
use crate::error::{ApiError, status_of};
use crate::routes::body::Body;
use crate::routes::services::Answer;

/// A bare JWT is sent as its header says: Virgil's tokens are VEDS512, everything else Bearer.
fn as_authorization(token: &str) -> String {
    let token = token.trim();
    if token.contains(' ') {
        return token.to_owned();
    }
    let virgil = token
        .split('.')
        .next()
        .and_then(cardinal_card::b64::decode_url)
        .and_then(|header| serde_json::from_slice::<serde_json::Value>(&header).ok())
        .is_some_and(|header| header["alg"] == "VEDS512");
    format!("{} {token}", if virgil { "Virgil" } else { "Bearer" })
}

/// Verifies a token exactly as a request would (its key read as stored now, not from the
/// credential cache) and says whether it would be accepted. A refusal carries the code and
/// detail a request would get and, when the token's key belongs to the admin's app, the reason
/// that requests are not told (unknown, revoked or another app's key, a failing signature).
#[utoipa::path(
    post, path = "/v1/admin/tokens/inspect", tag = "admin",
    request_body(content = TokenInspectRequest, description = "The token to inspect"),
    responses((status = 200, description = "Whether the token would be accepted, and why not", body = TokenInspection)),
    security(("bearer" = []), ("virgil" = []))
)]
pub async fn inspect_token(caller: Caller, authenticator: web::Data<Authenticator>, body: Body) -> Answer {
    if caller.role != KeyRole::Admin {
        return Err(ApiError::new(ProblemCode::Forbidden, "inspecting tokens needs an admin token"));
    }
    let request: TokenInspectRequest = body.json()?;
    let authorization = as_authorization(&request.token);
    let inspection = match authenticator.inspect(authorization.as_bytes()).await {
        Ok((accepted, times)) if accepted.app_id == caller.app_id => TokenInspection {
            accepted: true,
            app: Some(accepted.app_id.to_string()),
            subject: Some(accepted.subject.to_string()),
            role: Some(accepted.role.as_str().to_owned()),
            expires_at: Some(times.exp),
            code: None,
            status: None,
            detail: None,
            reason: None,
        },
        // Another app's valid token: the admin learns only that it is not one of theirs.
        Ok(_) => refused(
            &ApiError::new(ProblemCode::TokenInvalid, crate::auth::NOT_VALID),
            Some("the token's key is not one of this app's keys"),
        ),
        Err(error) => {
            let own_key = match Authenticator::stated_kid(&authorization) {
                Some(kid) => authenticator.key_app(&kid).await?.is_some_and(|app| app == caller.app_id),
                None => false,
            };
            let reason = match error.withheld_reason {
                Some(_) if !own_key => Some("the token's key is not one of this app's keys"),
                reason => reason,
            };
            refused(&error, reason)
        }
    };
    Ok(HttpResponse::Ok().json(inspection))
}

fn refused(error: &ApiError, reason: Option<&str>) -> TokenInspection {
    TokenInspection {
        accepted: false,
        app: None,
        subject: None,
        role: None,
        expires_at: None,
        code: Some(error.code),
        status: Some(status_of(error.code).as_u16()),
        detail: Some(error.detail.clone()),
        reason: reason.map(str::to_owned),
    }
}
