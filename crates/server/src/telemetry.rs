//! Logging: pretty or JSON lines, each carrying the request id of the span it was logged in.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG` overrides the configured filter. Calling it twice
/// is harmless (tests start many servers in one process).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_ansi(ansi)
        // Reporting a failed log write with eprintln! panics the request when stderr is a
        // closed pipe (a log shipper restarting): a lost log line must not cost a request.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The request id of the current request, as logged and returned in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The header that carries the request id both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A caller-supplied id is kept only if it is short and plain, so it cannot forge log lines.
fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: gives every request an id (the caller's `X-Request-Id` if well-formed), runs it
/// inside a span carrying that id so every log line of the request has it, logs one line when it
/// finishes, and returns the id in `X-Request-Id`.
pub async fn trace_requests(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    use tracing::Instrument;
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    // The route is known only once the router has run: the route middleware records it.
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), route = tracing::field::Empty);
    let started = std::time::Instant::now();
    let mut response = next.call(request).instrument(span.clone()).await?;
    // Every route is wrapped by the route middleware, which named it: only a request that
    // matched none is left to name.
    if response.request().match_pattern().is_none() {
        span.record("route", "unmatched");
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request finished");
        }
    });
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id) {
        response.headers_mut().insert(actix_web::http::header::HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        assert!(well_formed("3fa85f64-5717-4562-b3fc-2c963f66afa6"));
        assert!(well_formed("req_01:abc.def"));
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed("a b"));
        assert!(!well_formed("x\ny"));
        assert!(!well_formed("{\"injected\":1}"));
    }
}
