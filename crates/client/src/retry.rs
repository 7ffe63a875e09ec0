//! Retrying the refusals that mean "not now": `429 Too Many Requests` and `503 Service
//! Unavailable`.
//!
//! # Why retrying is safe, publishes included
//!
//! Cardinal answers 429 (`rate_limited`) from its rate-limit middleware, before the request
//! reaches a handler, and 503 (`unavailable`) when the database cannot be had: the pool timed out,
//! or a transient database error rolled the write's transaction back. Either way the server
//! refused before doing anything, so sending the same request again cannot apply it twice.
//!
//! One 503 is not so clean: a connection lost while the database acknowledged a `COMMIT` (or a
//! proxy's 503 after it forwarded the request) leaves the write applied or not. Retrying is still
//! safe for every call the SDK makes, because none of them can take effect twice:
//!
//! - a card's id is the hash of its snapshot, so publishing the same bytes again cannot create a
//!   second card: the server refuses it (`card_exists`, or `already_superseded` for a rotation),
//!   and the client then fetches the card by id to tell "my first attempt landed" from a real
//!   conflict (see `Client::publish`);
//! - revoking is idempotent by contract: revoking a revoked chain is a no-op `200`;
//! - everything else reads.
//!
//! Transport errors are never retried here: after a request was sent, the client cannot know
//! whether the server applied it, and only the refusals above say that it did not.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How a [`Client`](crate::Client) retries `429 rate_limited` and `503 unavailable` answers.
///
/// A refused request is sent again after the server's `Retry-After` (seconds or an HTTP date),
/// or, when the answer has none, after a jittered exponential backoff: the n-th wait is drawn
/// from `[c/2, c]` where `c = min(max_backoff, initial_backoff × 2ⁿ⁻¹)`. A `Retry-After` gets up
/// to 10% of jitter on top, so that clients refused together do not come back together.
///
/// Two budgets bound the retrying, and the first one spent ends it: the number of attempts (the
/// first one included), and the time since the first attempt. A retry whose wait would end past
/// the time budget is not made: the refusal is returned at once, as
/// [`ClientError::Api`](crate::ClientError::Api) with the server's status and problem code. The
/// time budget bounds the waits, not how long the server takes to answer.
///
/// The default: 3 attempts within 10 s, backoff from 250 ms up to 4 s.
///
/// ```
/// use std::time::Duration;
/// use cardinal_client::RetryPolicy;
///
/// // Patient: up to 6 attempts within a minute.
/// let patient = RetryPolicy::default().max_attempts(6).max_elapsed(Duration::from_secs(60));
/// // Fail fast: every refusal is returned as it comes.
/// let never = RetryPolicy::never();
/// assert_eq!(never.attempts(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    max_elapsed: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt per request.
    pub fn never() -> Self {
        RetryPolicy::default().max_attempts(1)
    }

    /// Attempts per request, the first one included (at least 1; 3 by default).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Time from the first attempt within which every retry must start (10 s by default).
    pub fn max_elapsed(mut self, budget: Duration) -> Self {
        self.max_elapsed = budget;
        self
    }

    /// The backoff used when the server sends no `Retry-After`: the first retry waits up to
    /// `initial`, each next one up to twice as long, never more than `max` (250 ms and 4 s by
    /// default).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Attempts per request, the first one included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The time budget.
    pub fn elapsed_budget(&self) -> Duration {
        self.max_elapsed
    }

    /// How long to wait before retry number `retry` (1 for the first), given the server's
    /// `Retry-After`.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
        match retry_after {
            // Saturating: a `Retry-After` of u64::MAX seconds must not overflow.
            Some(wait) => wait.saturating_add(wait.mul_f64(rng.gen_range(0.0..=0.1))),
            None => {
                let doublings = retry.saturating_sub(1).min(31);
                let ceiling = self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff);
                ceiling.mul_f64(rng.gen_range(0.5..=1.0))
            }
        }
    }
}

/// The answers that mean "refused before doing anything; try again later".
pub(crate) fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// The wait a `Retry-After` header asks for: delay-seconds, or an HTTP date (a date in the past
/// asks for no wait). `None` if the header is absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_delay_seconds() {
        let now = SystemTime::now();
        assert_eq!(retry_after(&headers("1"), now), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(&headers(" 120 "), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-1"), now), None);
    }

    #[test]
    fn retry_after_reads_an_http_date_relative_to_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:49:40 GMT"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:49:00 GMT"), now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_is_honoured_with_at_most_ten_percent_of_jitter() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=5 {
            let delay = policy.delay(retry, Some(Duration::from_secs(2)), &mut rng);
            assert!(delay >= Duration::from_secs(2) && delay <= Duration::from_millis(2200), "{delay:?}");
        }
    }

    #[test]
    fn an_absurd_retry_after_does_not_overflow() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        let far = retry_after(&headers(&u64::MAX.to_string()), SystemTime::now()).unwrap();
        assert!(policy.delay(1, Some(far), &mut rng) >= far);
        assert!(policy.delay(1, Some(Duration::MAX), &mut rng) > policy.elapsed_budget());
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_millis(1000));
        let mut rng = StdRng::seed_from_u64(7);
        for (retry, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            for _ in 0..50 {
                let delay = policy.delay(retry, None, &mut rng);
                let ceiling = Duration::from_millis(ceiling_ms);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "retry {retry}: {delay:?}");
            }
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: std::collections::BTreeSet<Duration> = (0..20).map(|_| policy.delay(2, None, &mut rng)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn only_429_and_503_are_retried() {
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        for status in [200, 304, 400, 401, 409, 500, 502, 504] {
            assert!(!is_retryable(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }

    #[test]
    fn attempts_are_at_least_one() {
        assert_eq!(RetryPolicy::default().max_attempts(0).attempts(), 1);
        assert_eq!(RetryPolicy::never().attempts(), 1);
        assert_eq!(RetryPolicy::default().attempts(), 3);
        assert_eq!(RetryPolicy::default().elapsed_budget(), Duration::from_secs(10));
    }
}
