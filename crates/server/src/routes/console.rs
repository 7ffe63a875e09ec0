//! `/admin`: the admin console, served from the binary (no CDN; works offline), under a
//! Content-Security-Policy that allows this origin's script, style and API calls and nothing
//! else (no inline script, no other origin, no framing).

use actix_web::HttpResponse;
use actix_web::http::header;

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");
const ICON: &str = include_str!("../../console/favicon.svg");

/// The console's policy: everything from this origin only, nothing inline.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONSOLE_CSP))
        // A new binary may bring a new console: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

/// `GET /admin`: the console's page.
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /admin/console.js`.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /admin/console.css`.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /admin/favicon.svg`.
pub async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}
