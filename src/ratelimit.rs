//! Rate limits: per client address before anything else runs, per authenticated identity once the
//! token is verified (an unverified `sub` would let anyone spend a victim's quota). Each is set
//! per route class: writes (publish, revoke) and reads (lookups, get, events).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header::HeaderName;
use cardinal_card::wire::ProblemCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use crate::directory::Caller;
use crate::error::ApiError;

/// Which limits a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Publish and revoke.
    Write,
    /// Lookups, gets, searches, events.
    Read,
}

/// `[rate_limits.write]` or `[rate_limits.read]`: sustained rate and burst, per address and
/// per identity. 0 turns one off.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ClassLimits {
    /// Requests per second from one client address.
    pub per_address_per_second: u32,
    /// Requests in a burst from one client address.
    pub per_address_burst: u32,
    /// Requests per second by one identity (or admin).
    pub per_identity_per_second: u32,
    /// Requests in a burst by one identity.
    pub per_identity_burst: u32,
}

/// `[rate_limits]`
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Master switch.
    pub enabled: bool,
    /// A header set by a trusted proxy that names the client address (`X-Forwarded-For`, whose
    /// first address is taken, or `X-Real-IP`). Empty: the peer address.
    pub trusted_client_ip_header: String,
    /// Publish and revoke.
    pub write: ClassLimits,
    /// Everything else that reads.
    pub read: ClassLimits,
}

struct Limiters {
    by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    by_identity: Option<DefaultKeyedRateLimiter<(String, String)>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

impl Limiters {
    fn new(limits: &ClassLimits) -> Self {
        Limiters {
            by_address: limiter(limits.per_address_per_second, limits.per_address_burst),
            by_identity: limiter(limits.per_identity_per_second, limits.per_identity_burst),
        }
    }
}

/// The service's limiters.
pub struct RateLimiter {
    enabled: bool,
    client_ip_header: Option<HeaderName>,
    write: Limiters,
    read: Limiters,
}

fn limited(wait: Duration) -> ApiError {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::new(ProblemCode::RateLimited, format!("too many requests; retry in {seconds} s")).retry_after(seconds)
}

impl RateLimiter {
    /// Limiters as configured.
    pub fn new(settings: &RateLimitSettings) -> Arc<Self> {
        let header = settings.trusted_client_ip_header.trim();
        Arc::new(RateLimiter {
            enabled: settings.enabled,
            client_ip_header: (!header.is_empty())
                .then(|| HeaderName::try_from(header.to_ascii_lowercase()).ok())
                .flatten(),
            write: Limiters::new(&settings.write),
            read: Limiters::new(&settings.read),
        })
    }

    fn limiters(&self, class: RouteClass) -> &Limiters {
        match class {
            RouteClass::Write => &self.write,
            RouteClass::Read => &self.read,
        }
    }

    /// The route class of a request; `None` for health, metrics and documentation.
    pub fn classify(method: &Method, path: &str) -> Option<RouteClass> {
        let api = path.starts_with("/v1/cards") || path.starts_with("/v1/admin") || path.starts_with("/card/v5");
        if !api {
            return None;
        }
        let searching = path.ends_with("/search");
        Some(if *method == Method::POST && !searching { RouteClass::Write } else { RouteClass::Read })
    }

    /// The client's address: the trusted proxy header if configured and valid, else the peer.
    pub fn client_address(&self, request: &ServiceRequest) -> Option<IpAddr> {
        if let Some(header) = &self.client_ip_header {
            let named = request.headers().get(header).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next());
            if let Some(address) = named.and_then(|v| v.trim().parse().ok()) {
                return Some(address);
            }
        }
        request.peer_addr().map(|a| a.ip())
    }

    /// Checks the per-address limit of a request.
    pub fn check_address(&self, request: &ServiceRequest) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let (Some(class), Some(address)) =
            (Self::classify(request.method(), request.path()), self.client_address(request))
        else {
            return Ok(());
        };
        match &self.limiters(class).by_address {
            Some(limiter) => limiter
                .check_key(&address)
                .map_err(|not_until| limited(not_until.wait_time_from(DefaultClock::default().now()))),
            None => Ok(()),
        }
    }

    /// Checks the per-identity limit of an authenticated request.
    pub fn check_identity(&self, method: &Method, path: &str, caller: &Caller) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(class) = Self::classify(method, path) else { return Ok(()) };
        match &self.limiters(class).by_identity {
            Some(limiter) => limiter
                .check_key(&(caller.app_id.clone(), caller.subject.clone()))
                .map_err(|not_until| limited(not_until.wait_time_from(DefaultClock::default().now()))),
            None => Ok(()),
        }
    }

    /// Forgets keys that are back to a full quota, so memory follows recent clients only.
    pub fn forget_idle_keys(&self) {
        for limiters in [&self.write, &self.read] {
            if let Some(l) = &limiters.by_address {
                l.retain_recent();
                l.shrink_to_fit();
            }
            if let Some(l) = &limiters.by_identity {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_write_and_read_classes() {
        assert_eq!(RateLimiter::classify(&Method::POST, "/v1/cards"), Some(RouteClass::Write));
        assert_eq!(RateLimiter::classify(&Method::POST, "/v1/cards/ab/revoke"), Some(RouteClass::Write));
        assert_eq!(RateLimiter::classify(&Method::POST, "/card/v5/actions/revoke/ab"), Some(RouteClass::Write));
        assert_eq!(RateLimiter::classify(&Method::POST, "/v1/cards/search"), Some(RouteClass::Read));
        assert_eq!(RateLimiter::classify(&Method::POST, "/card/v5/actions/search"), Some(RouteClass::Read));
        assert_eq!(RateLimiter::classify(&Method::GET, "/v1/cards"), Some(RouteClass::Read));
        assert_eq!(RateLimiter::classify(&Method::GET, "/v1/admin/events"), Some(RouteClass::Read));
        assert_eq!(RateLimiter::classify(&Method::GET, "/healthz"), None);
        assert_eq!(RateLimiter::classify(&Method::GET, "/metrics"), None);
    }
}
