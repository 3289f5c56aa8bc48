//! The tenant-creation rate limit (10 §7): a sliding window of accepted requests per client.
//!
//! The client is the peer IP address; the first `X-Forwarded-For` entry is used instead only
//! when the server is told it sits behind a proxy (spec README decision 12). `Retry-After` is
//! the time until the oldest counted request leaves the window.

use crate::config::RateLimit;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-client request times.
pub struct RateLimiter {
    settings: RateLimit,
    clients: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// A limiter with `settings`.
    pub fn new(settings: RateLimit) -> Self {
        RateLimiter {
            settings,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Records a request from `client` and returns `Ok`, or `Err(seconds to wait)` when the
    /// client has used its window (the rejected request is not recorded).
    pub fn check(&self, client: &str, now: Instant) -> Result<(), u64> {
        self.admit(client, now, true)
    }

    /// Whether `client` has room in its window now (`Err(seconds to wait)` if not), without
    /// recording anything: for limits on failures, recorded with [`RateLimiter::check`] only
    /// when one happens.
    pub fn peek(&self, client: &str, now: Instant) -> Result<(), u64> {
        self.admit(client, now, false)
    }

    fn admit(&self, client: &str, now: Instant, record: bool) -> Result<(), u64> {
        if !self.settings.enabled {
            return Ok(());
        }
        let window = Duration::from_secs(self.settings.window_secs);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() > 10_000 {
            clients.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = clients.entry(client.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= self.settings.limit {
            let oldest = q.front().copied().unwrap_or(now);
            let left = window.saturating_sub(now.duration_since(oldest));
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        if record {
            q.push_back(now);
        }
        Ok(())
    }

    /// The limit and window, for the refusal message.
    pub fn settings(&self) -> RateLimit {
        self.settings
    }
}

/// Paces one kind of expensive request per tenant: `per_sec` on average, in bursts of up to
/// `burst` (the generic cell rate algorithm: each tenant has a time at which its next request
/// is due). A request ahead of its tenant's pace is told to wait until it is due; one that would
/// wait longer than `max_wait` is refused with the seconds until it could come back.
pub struct Pacer {
    interval: Duration,
    tolerance: Duration,
    max_wait: Duration,
    due: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// A pacer of `per_sec` requests a second per tenant, bursts of `burst`, waits up to
    /// `max_wait`.
    pub fn new(per_sec: f64, burst: u32, max_wait: Duration) -> Pacer {
        let interval = Duration::from_secs_f64(1.0 / per_sec.max(0.001));
        Pacer {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            max_wait,
            due: Mutex::new(HashMap::new()),
        }
    }

    /// Books a request of `tenant` at `now`: `Ok(how long to wait)` (zero when on pace), or
    /// `Err(seconds to come back)` when it would wait past `max_wait` (nothing booked).
    pub fn book(&self, tenant: &str, now: Instant) -> Result<Duration, u64> {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        if due.len() > 100_000 {
            due.retain(|_, t| *t > now);
        }
        let next = due.get(tenant).copied().unwrap_or(now).max(now);
        let start = next.checked_sub(self.tolerance).unwrap_or(now).max(now);
        let wait = start - now;
        if wait > self.max_wait {
            return Err((wait - self.max_wait).as_secs_f64().ceil().max(1.0) as u64);
        }
        due.insert(tenant.to_owned(), next + self.interval);
        Ok(wait)
    }
}

/// The per-tenant request rate limit: one token bucket per tenant, in this process's memory.
///
/// A plan with `requests_per_minute = n` gives each of its tenants a bucket of `n` tokens that
/// refills continuously at `n` per minute; every authenticated request takes one. The limit is
/// read from the tenant's plan on each request, so a plan change applies at once.
pub struct TenantBuckets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The outcome of taking a token, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The plan's limit (requests per minute).
    pub limit: u32,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one token is available (for `Retry-After` on a refusal).
    pub retry_after_secs: u64,
}

impl Taken {
    /// The rate-limit headers (and `Retry-After` on a refusal).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset_secs.to_string()),
        ];
        if !self.allowed {
            h.push(("retry-after", self.retry_after_secs.to_string()));
        }
        h
    }
}

impl Default for TenantBuckets {
    fn default() -> Self {
        Self::new()
    }
}

impl TenantBuckets {
    /// No buckets yet.
    pub fn new() -> Self {
        TenantBuckets {
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `tenant`'s bucket of `limit` per minute at `now`.
    pub fn take(&self, tenant: &str, limit: u32, now: Instant) -> Taken {
        let cap = f64::from(limit.max(1));
        let rate = cap / 60.0; // tokens per second
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Forget buckets that have refilled completely: they hold no state.
            map.retain(|_, b| now.duration_since(b.at).as_secs_f64() * rate < cap);
        }
        let b = map.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(cap);
        b.at = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let secs = |tokens: f64| (tokens / rate).ceil().max(0.0) as u64;
        Taken {
            allowed,
            limit,
            remaining: b.tokens.floor().max(0.0) as u32,
            reset_secs: secs(cap - b.tokens),
            retry_after_secs: secs(1.0 - b.tokens).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_slots_with_time() {
        let l = RateLimiter::new(RateLimit {
            enabled: true,
            limit: 2,
            window_secs: 60,
        });
        let t0 = Instant::now();
        assert!(l.check("a", t0).is_ok());
        assert!(l.check("a", t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(l.check("a", t0 + Duration::from_secs(20)), Err(40));
        assert!(l.check("b", t0 + Duration::from_secs(20)).is_ok());
        assert!(l.check("a", t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn a_pacer_lets_bursts_through_then_spaces_requests_and_refuses_long_waits() {
        let p = Pacer::new(2.0, 3, Duration::from_secs(1));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(p.book("a", t0), Ok(Duration::ZERO));
        }
        assert_eq!(p.book("a", t0), Ok(Duration::from_millis(500)));
        assert_eq!(p.book("a", t0), Ok(Duration::from_secs(1)));
        assert_eq!(
            p.book("a", t0),
            Err(1),
            "a wait of 1.5 s is past the 1 s allowed"
        );
        assert_eq!(
            p.book("b", t0),
            Ok(Duration::ZERO),
            "each tenant has its own pace"
        );
        assert_eq!(
            p.book("a", t0 + Duration::from_secs(10)),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn a_bucket_admits_its_limit_then_refills_over_a_minute() {
        let b = TenantBuckets::new();
        let t0 = Instant::now();
        for i in 0..3 {
            let t = b.take("a", 3, t0);
            assert!(t.allowed);
            assert_eq!(t.remaining, 2 - i);
        }
        let no = b.take("a", 3, t0);
        assert!(!no.allowed);
        assert_eq!(
            (no.remaining, no.retry_after_secs, no.reset_secs),
            (0, 20, 60)
        );
        assert!(
            no.headers()
                .iter()
                .any(|(h, v)| *h == "retry-after" && v == "20")
        );
        // Another tenant has its own bucket.
        assert!(b.take("b", 3, t0).allowed);
        // One token back after 20 s, the whole bucket after a minute.
        assert!(b.take("a", 3, t0 + Duration::from_secs(20)).allowed);
        assert!(!b.take("a", 3, t0 + Duration::from_secs(21)).allowed);
        assert_eq!(b.take("a", 3, t0 + Duration::from_secs(200)).remaining, 2);
    }
}
