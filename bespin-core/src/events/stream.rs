//! Following the log live: [`Subscription`] (Rust's `subscribe`, Python's `events(follow=True)`
//! and the server's SSE stream all read through it).

use super::hub::Hub;
use super::tail::{SharedEvent, Tail};
use super::{EventQuery, event_id};
use crate::auth::Principal;
use crate::error::Result;
use crate::{Bespin, events::Event};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The longest a blocking wait sleeps before it reads the log again: bounds the delay of a
/// wake-up that raced with the subscription's start.
const RECHECK: Duration = Duration::from_millis(500);

/// A live view of one caller's events: every event after a cursor, then each new one as its
/// commit lands, exactly once and in order (the log is the source; wake-ups only say when to
/// look). Holds nothing but one page; dropping it unsubscribes.
///
/// As an [`Iterator`] it blocks until the next event (or [`Subscription::close`] from another
/// thread, through a [`Closer`]); [`Subscription::next_timeout`] bounds the wait; async code
/// uses [`Subscription::fetch`] and awaits [`Subscription::changed`] when it is empty.
pub struct Subscription {
    db: Bespin,
    hub: Arc<Hub>,
    caller: Principal,
    query: EventQuery,
    buf: VecDeque<Arc<SharedEvent>>,
    version: u64,
    more: bool,
    closed: Arc<AtomicBool>,
    /// The types the caller may see, and when they were worked out: a plan or role change
    /// reaches a live subscription within [`VISIBLE_FOR`].
    visible: Option<(Instant, Vec<&'static super::EventType>)>,
}

/// How long a subscription keeps the types its caller may see before working them out again.
const VISIBLE_FOR: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("after", &self.query.after)
            .finish_non_exhaustive()
    }
}

/// Closes a [`Subscription`] from another thread: its blocked `next` returns `None`.
#[derive(Debug, Clone)]
pub struct Closer {
    closed: Arc<AtomicBool>,
    hub: Arc<Hub>,
}

impl Closer {
    /// Ends the subscription (a blocked iterator returns `None` within its recheck interval).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.hub.wake_all();
    }
}

impl Bespin {
    /// Follows the caller's events after `q.after` (every kept event when absent), filtered by
    /// `q.types` and by what the caller may see. The first read fails with
    /// [`crate::Error::CursorExpired`] when the cursor is older than the retention.
    pub fn subscribe(&self, caller: &Principal, q: EventQuery) -> Result<Subscription> {
        let hub = self.hub_arc();
        let version = hub.join(caller.tenant_id());
        let mut s = Subscription {
            db: self.clone(),
            hub,
            caller: caller.clone(),
            query: q,
            buf: VecDeque::new(),
            version,
            more: true,
            closed: Arc::new(AtomicBool::new(false)),
            visible: None,
        };
        // Checks the cursor now, so a stale one fails here rather than at the first `next`.
        s.fill()?;
        Ok(s)
    }
}

impl Subscription {
    /// The cursor: the id of the last event read from the log (seen or not).
    pub fn cursor(&self) -> Option<String> {
        self.query.after.map(event_id)
    }

    /// A handle that closes this subscription from another thread.
    pub fn closer(&self) -> Closer {
        Closer {
            closed: Arc::clone(&self.closed),
            hub: Arc::clone(&self.hub),
        }
    }

    /// Ends the subscription.
    pub fn close(&self) {
        self.closer().close();
    }

    /// Whether the subscription was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Reads the next page of the log into the buffer (when it is empty): from the tail the
    /// tenant's subscribers share when it stands for a read now, else from a tail this
    /// subscriber reads and shares (see [`super::tail`]).
    fn fill(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            return Ok(());
        }
        let seen = self.seen_types()?;
        let tenant = self.caller.tenant_id();
        let after = self.query.after.unwrap_or(0);
        // The version first: a commit landing after the read below changes it, so the wait
        // that follows an empty read cannot miss it.
        let mut version = self.hub.version(tenant);
        let tail = match self.hub.tail(tenant, version, after) {
            Some(t) => t,
            None => {
                let lock = self.hub.reading(tenant);
                let _reading = lock
                    .as_ref()
                    .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
                // Another subscriber may have read it while this one waited.
                version = self.hub.version(tenant);
                match self.hub.tail(tenant, version, after) {
                    Some(t) => t,
                    None => {
                        let t =
                            Arc::new(self.db.read(|r, _| Tail::read(r, tenant, after, version))?);
                        self.hub.keep(tenant, &t);
                        t
                    }
                }
            }
        };
        let (items, next, more) = tail.select(&self.caller, &self.query, &seen)?;
        self.version = version;
        self.query.after = next;
        self.more = more;
        self.buf.extend(items);
        Ok(())
    }

    /// Every event available now (at most one page), without waiting; empty when the caller is
    /// up to date.
    pub fn fetch(&mut self) -> Result<Vec<Event>> {
        Ok(self
            .fetch_shared()?
            .iter()
            .map(|e| e.event().clone())
            .collect())
    }

    /// [`Subscription::fetch`] as the events the tenant's subscribers share, each with its JSON
    /// made once for all of them (the server's streams send these).
    pub fn fetch_shared(&mut self) -> Result<Vec<Arc<SharedEvent>>> {
        self.fill()?;
        Ok(self.buf.drain(..).collect())
    }

    /// The types the caller may see, worked out again when older than [`VISIBLE_FOR`].
    fn seen_types(&mut self) -> Result<Vec<&'static super::EventType>> {
        if let Some((at, v)) = &self.visible
            && at.elapsed() < VISIBLE_FOR
        {
            return Ok(v.clone());
        }
        let caller = &self.caller;
        let v = self.db.read(|r, _| Ok(super::visible(r, caller)))?;
        self.visible = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// Whether the last read stopped before the end of the log (read again at once).
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// Resolves once a commit may have added events for this subscription's tenant since the
    /// last read (or the subscription was closed).
    pub fn changed(&self) -> Changed {
        Changed {
            hub: Arc::clone(&self.hub),
            tenant: self.caller.tenant_id().to_owned(),
            seen: self.version,
            closed: Arc::clone(&self.closed),
        }
    }

    /// How long a woken subscriber may wait before it reads, so that the commits of that
    /// moment reach it in one read: nothing for a tenant with a few subscribers, 20 µs per
    /// subscriber beyond 16, at most 50 ms (1,000 subscribers: 20 ms). Every subscriber of a
    /// busy tenant then reads once per window instead of once per commit, which keeps the cost
    /// of a commit from growing with the subscribers; a delay the stream's clients see only
    /// when a tenant has many of them.
    pub fn coalesce(&self) -> Duration {
        let n = self.hub.subscribers_of(self.caller.tenant_id());
        if n <= 16 {
            return Duration::ZERO;
        }
        Duration::from_micros(20 * n as u64).min(Duration::from_millis(50))
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` when none came (or closed).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_closed() {
                return Ok(None);
            }
            self.fill()?;
            if let Some(e) = self.buf.pop_front() {
                return Ok(Some(e.event().clone()));
            }
            if self.more {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let tenant = self.caller.tenant_id().to_owned();
            self.hub.wait(&tenant, self.version, left.min(RECHECK));
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<Event>;

    /// Blocks until the next event; `None` once closed.
    fn next(&mut self) -> Option<Result<Event>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) if self.is_closed() => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.leave(self.caller.tenant_id());
    }
}

/// The future of [`Subscription::changed`].
#[derive(Debug)]
pub struct Changed {
    hub: Arc<Hub>,
    tenant: String,
    seen: u64,
    closed: Arc<AtomicBool>,
}

impl Future for Changed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.hub
            .poll_changed(&self.tenant, self.seen, cx)
            .map(|_| ())
    }
}
