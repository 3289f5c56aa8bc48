//! Repeated authentication failures, slowed down.
//!
//! Every failed tenant authentication (all three credentials given, and wrong) is counted per
//! client (the address `crate::client::key` gives) and per claimed tenant (its `X-Tenant-ID`,
//! when one is sent: a bearer key alone claims none and counts for its client only)
//! in windows of [`WINDOW`]. The first failures of a window are answered at once; past
//! `Config::auth_tarpit_after` of either count, the answer is held back — [`STEP`] more for
//! each further failure, at most [`MAX_DELAY`] — and carries `Retry-After` (the seconds until
//! the window ends). Holding an answer is a timer on the runtime (no worker thread, no lock),
//! and at most [`MAX_HELD`] answers are held at once: past that they go at once with the
//! connection closed, so a flood of failures can never hold the connection slots of others.
//!
//! Only failures are slowed: a request whose credentials are good is never delayed, whatever
//! others claiming its tenant or sharing its address did.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How much longer each failure past the free ones is held.
pub const STEP: Duration = Duration::from_millis(100);
/// The longest an answer is held.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// The most answers held at once.
pub const MAX_HELD: usize = 256;
/// Keys of each kind remembered at once; past it, only keys that already fail are counted
/// (a client making up a new tenant id for every request still counts as one client).
const MAX_KEYS: usize = 100_000;
/// How many clients and claimed tenants `/metrics` names (those with the most failures in
/// their current window).
pub const TOP: usize = 10;

#[derive(Debug, Clone, Copy)]
struct Count {
    since: Instant,
    failures: u32,
}

/// Failures per key in the current window.
#[derive(Debug, Default)]
struct Counts(HashMap<String, Count>);

impl Counts {
    /// Counts a failure of `key` at `now`: the failures of its window so far and when that
    /// window ends.
    fn fail(&mut self, key: &str, now: Instant) -> Option<(u32, Instant)> {
        if self.0.len() >= MAX_KEYS && !self.0.contains_key(key) {
            self.0.retain(|_, c| now.duration_since(c.since) < WINDOW);
            if self.0.len() >= MAX_KEYS {
                return None;
            }
        }
        let c = self.0.entry(key.to_owned()).or_insert(Count {
            since: now,
            failures: 0,
        });
        if now.duration_since(c.since) >= WINDOW {
            *c = Count {
                since: now,
                failures: 0,
            };
        }
        c.failures = c.failures.saturating_add(1);
        Some((c.failures, c.since + WINDOW))
    }

    /// The `n` keys with the most failures in a window still running at `now`.
    fn top(&self, n: usize, now: Instant) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self
            .0
            .iter()
            .filter(|(_, c)| now.duration_since(c.since) < WINDOW)
            .map(|(k, c)| (k.clone(), c.failures))
            .collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// What the tarpit decided for one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer at once.
    Now,
    /// Hold the answer this long; it carries `Retry-After` of this many seconds.
    Hold(Duration, u64),
    /// Too many answers held already: answer at once, with `Retry-After` of this many
    /// seconds, and close the connection.
    Close(u64),
}

/// The tarpit of one server, and its counters for `/metrics`.
#[derive(Debug)]
pub struct Tarpit {
    after: Option<u32>,
    clients: Mutex<Counts>,
    tenants: Mutex<Counts>,
    held: AtomicUsize,
    failures: AtomicU64,
    delayed: AtomicU64,
}

/// A held answer's place among the [`MAX_HELD`]; freed when dropped.
pub struct Held<'a>(&'a Tarpit);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The failures of the clients and claimed tenants that fail most, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Failing {
    /// Failed authentications since the start.
    pub failures: u64,
    /// Answers held back.
    pub delayed: u64,
    /// Clients with the most failures in their current window.
    pub clients: Vec<(String, u32)>,
    /// Claimed tenants with the most failures in their current window.
    pub tenants: Vec<(String, u32)>,
}

impl Tarpit {
    /// A tarpit that answers `after` failures per window and key at once (`None`: it only
    /// counts, never holds).
    pub fn new(after: Option<u32>) -> Tarpit {
        Tarpit {
            after,
            clients: Mutex::default(),
            tenants: Mutex::default(),
            held: AtomicUsize::new(0),
            failures: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        }
    }

    /// Counts a failed authentication of `client` claiming `tenant` at `now`, and says how to
    /// answer it. `tenant` is `None` when the request claimed none (a bearer key alone): the
    /// failure then counts for the client only, never under an empty tenant id.
    pub fn fail(&self, client: &str, tenant: Option<&str>, now: Instant) -> Verdict {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let count = |m: &Mutex<Counts>, key: &str| {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .fail(&truncate(key), now)
        };
        let by_client = count(&self.clients, client);
        let by_tenant = tenant
            .filter(|t| !t.is_empty())
            .and_then(|t| count(&self.tenants, t));
        let Some(after) = self.after else {
            return Verdict::Now;
        };
        let (failures, ends) = [by_client, by_tenant]
            .into_iter()
            .flatten()
            .max_by_key(|(f, _)| *f)
            .unwrap_or((0, now));
        if failures <= after {
            return Verdict::Now;
        }
        let delay = STEP.saturating_mul(failures - after).min(MAX_DELAY);
        let retry_after = ends.saturating_duration_since(now).as_secs().max(1);
        if self.held.load(Ordering::Relaxed) >= MAX_HELD {
            return Verdict::Close(retry_after);
        }
        self.delayed.fetch_add(1, Ordering::Relaxed);
        Verdict::Hold(delay, retry_after)
    }

    /// Takes a place among the held answers (released when the guard drops).
    pub fn hold(&self) -> Held<'_> {
        self.held.fetch_add(1, Ordering::Relaxed);
        Held(self)
    }

    /// The counters, and the [`TOP`] clients and claimed tenants failing most now.
    pub fn failing(&self, now: Instant) -> Failing {
        let top = |m: &Mutex<Counts>| m.lock().unwrap_or_else(|p| p.into_inner()).top(TOP, now);
        Failing {
            failures: self.failures.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
            clients: top(&self.clients),
            tenants: top(&self.tenants),
        }
    }
}

/// A key as remembered and shown: at most 64 characters (a claimed tenant id is whatever the
/// client sent).
fn truncate(key: &str) -> String {
    key.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_are_held_longer_up_to_the_bound_and_windows_reset() {
        let t = Tarpit::new(Some(3));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.fail("1.2.3.4", Some("acme"), t0), Verdict::Now);
        }
        assert_eq!(
            t.fail("1.2.3.4", Some("acme"), t0),
            Verdict::Hold(STEP, 60),
            "the fourth failure of the window is held"
        );
        assert_eq!(
            t.fail("1.2.3.4", Some("acme"), t0 + Duration::from_secs(30)),
            Verdict::Hold(STEP * 2, 30)
        );
        for _ in 0..40 {
            t.fail("1.2.3.4", Some("acme"), t0);
        }
        assert_eq!(
            t.fail("1.2.3.4", Some("acme"), t0),
            Verdict::Hold(MAX_DELAY, 60)
        );
        // Another client claiming another tenant is not slowed by them.
        assert_eq!(t.fail("5.6.7.8", Some("other"), t0), Verdict::Now);
        // Many clients claiming one tenant are slowed by the tenant's count.
        for i in 0..3 {
            t.fail(&format!("10.0.0.{i}"), Some("victim"), t0);
        }
        assert!(matches!(
            t.fail("10.0.0.9", Some("victim"), t0),
            Verdict::Hold(..)
        ));
        let f = t.failing(t0 + Duration::from_secs(1));
        assert_eq!((f.failures, f.delayed), (51, 44));
        assert_eq!(f.clients[0], ("1.2.3.4".to_owned(), 46));
        assert_eq!(f.tenants[0], ("acme".to_owned(), 46));
        // A new window starts afresh.
        assert_eq!(t.fail("1.2.3.4", Some("acme"), t0 + WINDOW), Verdict::Now);
    }

    #[test]
    fn held_answers_are_bounded_and_an_off_tarpit_only_counts() {
        let t = Tarpit::new(Some(0));
        let t0 = Instant::now();
        let held: Vec<Held> = (0..MAX_HELD).map(|_| t.hold()).collect();
        assert_eq!(t.fail("c", Some("t"), t0), Verdict::Close(60));
        drop(held);
        assert!(matches!(t.fail("c", Some("t"), t0), Verdict::Hold(..)));
        let off = Tarpit::new(None);
        for _ in 0..100 {
            assert_eq!(off.fail("c", Some("t"), t0), Verdict::Now);
        }
        assert_eq!(off.failing(t0).failures, 100);
    }

    #[test]
    fn a_failure_claiming_no_tenant_counts_for_its_client_only() {
        let t = Tarpit::new(Some(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            t.fail("9.9.9.9", None, t0);
        }
        t.fail("9.9.9.9", Some(""), t0);
        let f = t.failing(t0);
        assert_eq!(f.failures, 4);
        assert_eq!(f.clients, [("9.9.9.9".to_owned(), 4)]);
        assert!(f.tenants.is_empty(), "{:?}", f.tenants);
        // Still slowed down by its client's count.
        assert!(matches!(t.fail("9.9.9.9", None, t0), Verdict::Hold(..)));
    }
}
