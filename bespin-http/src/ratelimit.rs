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
        q.push_back(now);
        Ok(())
    }

    /// The limit and window, for the refusal message.
    pub fn settings(&self) -> RateLimit {
        self.settings
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
}
