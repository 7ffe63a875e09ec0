//! Rate limits: per client address before anything else runs, per authenticated identity once the
//! token is verified (an unverified `sub` would let anyone spend a victim's quota). Each is set
//! per route class: writes (publish, revoke), reads (lookups, gets, events, and every request
//! that matches no route), and Pythia brainkey evaluations, whose budget is a human's pace
//! because each one is a password guess.
//!
//! The class is the matched route's, attached to each resource when routes are registered and
//! read after routing: classifying the raw path instead let `/v1/%63ards` (which actix routes to
//! `/v1/cards`) past every limit.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};
use cardinal_card::wire::ProblemCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use crate::domain::{AppId, Caller, Identity};
use crate::error::{ApiError, VirgilError};
use crate::metrics::Metrics;

/// Which limits a route falls under, attached to the route as resource data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Publish and revoke.
    Write,
    /// Lookups, gets, searches, events, documentation, and requests that match no route.
    Read,
    /// Liveness and metrics: probes must get through during an attack.
    Exempt,
    /// `POST /pythia/v1/brainkey`: each call can test one password guess.
    Brainkey,
}

/// Where the Virgil clients find Pythia: its errors speak Virgil even before (or where) no route
/// matches.
pub const PYTHIA_PREFIX: &str = "/pythia";

/// Which error format a route speaks, attached to the route as resource data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `application/problem+json`.
    Native,
    /// Virgil's `{"code","message"}`.
    Virgil,
}

impl Surface {
    /// The surface of a request: its route's, else the native one.
    pub fn of(request: &HttpRequest) -> Surface {
        request.app_data::<Surface>().copied().unwrap_or(Surface::Native)
    }

    /// The surface of a path that has not been routed yet (as the router sees it: decoded).
    pub fn of_path(path: &str) -> Surface {
        // Whole path segments: "/keyknoxes" is no Virgil path.
        let under =
            |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if [crate::routes::virgil::CARDS_PREFIX, crate::routes::keyknox::KEYKNOX_PREFIX, PYTHIA_PREFIX]
            .into_iter()
            .any(under)
        {
            Surface::Virgil
        } else {
            Surface::Native
        }
    }

    /// `error` rendered the way this surface speaks.
    pub fn render(self, error: ApiError) -> actix_web::HttpResponse {
        match self {
            Surface::Native => error.error_response(),
            Surface::Virgil => VirgilError(error).error_response(),
        }
    }
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
    /// A header set by trusted proxies that names the client address: `X-Forwarded-For` (read
    /// from the right, see `trusted_proxy_hops`) or `X-Real-IP`. Empty: the peer address.
    pub trusted_client_ip_header: String,
    /// How many trusted proxies append to `X-Forwarded-For` in front of Cardinal: the client is
    /// the entry this far from the right (1: the right-most). Entries further left were written
    /// by the client and are ignored.
    pub trusted_proxy_hops: usize,
    /// Publish and revoke.
    pub write: ClassLimits,
    /// Everything else that reads.
    pub read: ClassLimits,
    /// Pythia brainkey evaluations.
    pub brainkey: BrainkeyLimits,
}

/// `[rate_limits.brainkey]`: per minute, as password guesses are counted at a human's pace.
/// 0 turns one off.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BrainkeyLimits {
    /// Evaluations in a burst for one (app, identity).
    pub per_identity_burst: u32,
    /// Evaluations per minute for one (app, identity) once the burst is spent.
    pub per_identity_per_minute: u32,
    /// Evaluations in a burst from one client address.
    pub per_address_burst: u32,
    /// Evaluations per minute from one client address.
    pub per_address_per_minute: u32,
}

/// Virgil's code for a throttled Pythia request: e3kit retries the brainkey call once, 2 s later.
pub const PYTHIA_THROTTLED: u32 = 60007;

struct Limiters {
    by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    by_identity: Option<DefaultKeyedRateLimiter<(AppId, Identity)>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

fn per_minute_limiter<K: std::hash::Hash + Eq + Clone>(
    per_minute: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)))
}

impl Limiters {
    fn new(limits: &ClassLimits) -> Self {
        Limiters {
            by_address: limiter(limits.per_address_per_second, limits.per_address_burst),
            by_identity: limiter(limits.per_identity_per_second, limits.per_identity_burst),
        }
    }

    fn brainkey(limits: &BrainkeyLimits) -> Self {
        Limiters {
            by_address: per_minute_limiter(limits.per_address_per_minute, limits.per_address_burst),
            by_identity: per_minute_limiter(limits.per_identity_per_minute, limits.per_identity_burst),
        }
    }

    fn each(&self) -> impl Iterator<Item = &dyn Forget> {
        let address = self.by_address.as_ref().map(|l| l as &dyn Forget);
        let identity = self.by_identity.as_ref().map(|l| l as &dyn Forget);
        address.into_iter().chain(identity)
    }
}

/// A keyed limiter whatever its key.
trait Forget {
    fn forget_idle(&self);
}

impl<K: std::hash::Hash + Eq + Clone> Forget for DefaultKeyedRateLimiter<K> {
    fn forget_idle(&self) {
        self.retain_recent();
        self.shrink_to_fit();
    }
}

/// The service's limiters.
pub struct RateLimiter {
    enabled: bool,
    client_ip_header: Option<HeaderName>,
    proxy_hops: usize,
    write: Limiters,
    read: Limiters,
    brainkey: Limiters,
}

fn limited(class: RouteClass, wait: Duration) -> ApiError {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let error = ApiError::new(ProblemCode::RateLimited, format!("too many requests; retry in {seconds} s"))
        .retry_after(seconds);
    match class {
        RouteClass::Brainkey => error.with_virgil_code(PYTHIA_THROTTLED),
        _ => error,
    }
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64 (one subscriber's
/// allocation, which holds 2^64 addresses to rotate through).
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
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
            proxy_hops: settings.trusted_proxy_hops.max(1),
            write: Limiters::new(&settings.write),
            read: Limiters::new(&settings.read),
            brainkey: Limiters::brainkey(&settings.brainkey),
        })
    }

    fn limiters(&self, class: RouteClass) -> Option<&Limiters> {
        match class {
            RouteClass::Write => Some(&self.write),
            RouteClass::Read => Some(&self.read),
            RouteClass::Brainkey => Some(&self.brainkey),
            RouteClass::Exempt => None,
        }
    }

    /// The client's address: from the trusted proxy header if configured and well-formed, else
    /// the peer. In a list, the entry `trusted_proxy_hops` from the right: each trusted proxy
    /// appended the address it saw, so everything to its left came from the client.
    pub fn client_address(&self, request: &HttpRequest) -> Option<IpAddr> {
        if let Some(header) = &self.client_ip_header {
            let named = request.headers().get(header).and_then(|v| v.to_str().ok()).and_then(|value| {
                let entries: Vec<&str> = value.split(',').map(str::trim).collect();
                entries.len().checked_sub(self.proxy_hops).map(|i| entries[i])
            });
            if let Some(address) = named.and_then(|v| v.parse().ok()) {
                return Some(address);
            }
        }
        request.peer_addr().map(|a| a.ip())
    }

    /// Checks the per-address limit of a routed request of `class`.
    pub fn check_address(&self, request: &HttpRequest, class: RouteClass) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let (Some(limiters), Some(address)) = (self.limiters(class), self.client_address(request)) else {
            return Ok(());
        };
        match &limiters.by_address {
            Some(limiter) => limiter
                .check_key(&address_key(address))
                .map_err(|not_until| limited(class, not_until.wait_time_from(DefaultClock::default().now()))),
            None => Ok(()),
        }
    }

    /// Checks the per-identity limit of an authenticated request of `class`.
    pub fn check_identity(&self, class: RouteClass, caller: &Caller) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(limiters) = self.limiters(class) else { return Ok(()) };
        match &limiters.by_identity {
            Some(limiter) => limiter
                .check_key(&(caller.app_id.clone(), caller.subject.clone()))
                .map_err(|not_until| limited(class, not_until.wait_time_from(DefaultClock::default().now()))),
            None => Ok(()),
        }
    }

    /// Forgets keys that are back to a full quota, so memory follows recent clients only.
    pub fn forget_idle_keys(&self) {
        for limiter in [&self.write, &self.read, &self.brainkey].into_iter().flat_map(Limiters::each) {
            limiter.forget_idle();
        }
    }
}

/// The class of a routed request: its route's; a request that matched no route is a read.
pub fn class_of(request: &HttpRequest) -> RouteClass {
    request.app_data::<RouteClass>().copied().unwrap_or(RouteClass::Read)
}

/// The per-address check for a request, counting refusals; used by the route middleware and by
/// the handlers of unmatched paths (which no route middleware wraps).
pub fn admit(request: &HttpRequest) -> Result<(), ApiError> {
    let Some(limiter) = request.app_data::<web::Data<RateLimiter>>() else { return Ok(()) };
    let class = class_of(request);
    limiter.check_address(request, class).inspect_err(|_| {
        if let Some(metrics) = request.app_data::<web::Data<Metrics>>() {
            metrics.refused(class, "address");
        }
    })
}

/// Route middleware, run after routing: names the matched route in the request's log span and
/// applies the per-address limit of its class.
pub async fn limit_route(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(pattern) = request.match_pattern() {
        tracing::Span::current().record("route", pattern.as_str());
    }
    match admit(request.request()) {
        Ok(()) => next.call(request).await.map(ServiceResponse::map_into_left_body),
        Err(error) => {
            let response = Surface::of(request.request()).render(error);
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(address_key("10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    fn limiter_with(header: &str, hops: usize) -> Arc<RateLimiter> {
        let off = ClassLimits {
            per_address_per_second: 0,
            per_address_burst: 0,
            per_identity_per_second: 0,
            per_identity_burst: 0,
        };
        RateLimiter::new(&RateLimitSettings {
            enabled: true,
            trusted_client_ip_header: header.into(),
            trusted_proxy_hops: hops,
            write: off,
            read: off,
            brainkey: BrainkeyLimits {
                per_identity_burst: 0,
                per_identity_per_minute: 0,
                per_address_burst: 0,
                per_address_per_minute: 0,
            },
        })
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_past_the_trusted_hops() {
        let request = |xff: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("X-Forwarded-For", xff))
                .peer_addr("192.0.2.9:1234".parse().unwrap())
                .to_http_request()
        };
        let one = limiter_with("X-Forwarded-For", 1);
        // The client wrote "6.6.6.6"; the proxy appended the address it saw.
        assert_eq!(one.client_address(&request("6.6.6.6, 203.0.113.7")), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(one.client_address(&request("203.0.113.7")), Some("203.0.113.7".parse().unwrap()));
        let two = limiter_with("X-Forwarded-For", 2);
        assert_eq!(
            two.client_address(&request("6.6.6.6, 203.0.113.7, 10.0.0.2")),
            Some("203.0.113.7".parse().unwrap())
        );
        // Fewer entries than trusted hops: the request did not come through the proxies.
        assert_eq!(two.client_address(&request("203.0.113.7")), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(one.client_address(&request("not an address")), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(limiter_with("", 1).client_address(&request("203.0.113.7")), Some("192.0.2.9".parse().unwrap()));
    }
}
