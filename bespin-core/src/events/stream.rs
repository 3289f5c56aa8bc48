//! Following the log live: [`Subscription`] (Rust's `subscribe`, Python's `events(follow=True)`
//! and the server's SSE stream all read through it).

use super::hub::Hub;
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
    buf: VecDeque<Event>,
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

    /// Reads the next page of the log into the buffer (when it is empty).
    fn fill(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            return Ok(());
        }
        // The version first: a commit landing after the read below changes it, so the wait
        // that follows an empty read cannot miss it.
        self.version = self.hub.version(self.caller.tenant_id());
        let (caller, query) = (&self.caller, &self.query);
        let fresh = self
            .visible
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < VISIBLE_FOR);
        let page = self.db.read(|r, _| {
            if !fresh {
                self.visible = Some((Instant::now(), super::visible(r, caller)));
            }
            let seen = self.visible.as_ref().map_or(&[][..], |(_, v)| v.as_slice());
            super::page_of(r, caller, query, seen)
        })?;
        self.query.after = page.next_cursor.as_deref().and_then(super::parse_id);
        self.more = page.has_more;
        self.buf.extend(page.items);
        Ok(())
    }

    /// Every event available now (at most one page), without waiting; empty when the caller is
    /// up to date.
    pub fn fetch(&mut self) -> Result<Vec<Event>> {
        self.fill()?;
        Ok(self.buf.drain(..).collect())
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

    /// The next event, waiting at most `timeout`; `Ok(None)` when none came (or closed).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_closed() {
                return Ok(None);
            }
            self.fill()?;
            if let Some(e) = self.buf.pop_front() {
                return Ok(Some(e));
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
