//! Wake-ups of the live stream: who is waiting for which tenant's events.
//!
//! Subscribers pull events from the log (the table, through the shared read snapshot); this hub
//! only tells them when to look again. An operation that emits stages its tenant here
//! ([`Hub::stage`]); once the batch holding it is committed and visible, the committer calls
//! [`Hub::publish`], which bumps the version of each staged tenant that has subscribers and
//! wakes them (async `Waker`s and blocking threads alike). Nothing is buffered per subscriber,
//! so a slow subscriber costs the writer nothing: the writer's share is one push per emitting
//! operation and one short locked loop per commit.
//!
//! A staged operation that is later rolled back (or a failed commit) only causes a spurious
//! wake-up: the subscriber reads the log, finds nothing new and waits again. Correctness (no
//! gap, no duplicate) comes from the log alone; the hub only bounds latency.
//!
//! Several servers over one database (PostgreSQL): commits of another process never pass
//! through [`Hub::publish`]. The store tells [`Hub::foreign`] of them instead, with the
//! tenants they announced (PostgreSQL's `NOTIFY`, sent with the `COMMIT`): their subscribers
//! are woken as by a commit of this process. While the store cannot tell (its listening
//! connection is down, or turned off), the server drives [`crate::Bespin::poll_events`] on a
//! timer: it reads the newest event sequence and wakes every subscriber when it moved since
//! the last poll ([`Hub::polled`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::tail::Tail;

#[derive(Default)]
struct Slot {
    /// Bumped at each publish that concerned the tenant.
    version: u64,
    /// Live subscriptions of the tenant.
    subscribers: usize,
    /// Async waiters to wake at the next bump.
    wakers: Vec<Waker>,
    /// The newest tail of the tenant's log read by one of its subscribers (see
    /// [`super::tail`]), kept while the tenant has more than one.
    tail: Option<Arc<Tail>>,
    /// Held by a subscriber reading a tail, so that subscribers woken together read once.
    reading: Arc<Mutex<()>>,
}

/// The wake-up hub of one open database (see the module documentation).
#[derive(Default)]
pub(crate) struct Hub {
    /// Tenants emitted into the open batch.
    staged: Mutex<Vec<String>>,
    slots: Mutex<HashMap<String, Slot>>,
    changed: Condvar,
    /// The newest event sequence the last poll of the log saw.
    polled: AtomicU64,
    /// Live subscriptions, all tenants: with none, emitting stages nothing.
    subscribers: AtomicUsize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Hub {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that the open batch holds an event of `tenant` (called by `emit`).
    pub(crate) fn stage(&self, tenant: &str) {
        if self.subscribers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut s = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        if s.last().is_none_or(|t| t != tenant) {
            s.push(tenant.to_owned());
        }
    }

    /// Wakes the subscribers of every tenant staged since the last publish (called after each
    /// commit, once its writes are visible to new snapshots).
    pub(crate) fn publish(&self) {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|p| p.into_inner()));
        if staged.is_empty() {
            return;
        }
        self.wake(staged.iter().map(String::as_str));
    }

    /// Wakes the subscribers of `tenants` (all of them for `None`): another process committed
    /// events of theirs (see the module doc).
    pub(crate) fn foreign(&self, tenants: Option<&[&str]>) {
        match tenants {
            Some(tenants) => self.wake(tenants.iter().copied()),
            None => self.wake_all(),
        }
    }

    /// Bumps the version of each of `tenants` that has subscribers, and wakes them.
    fn wake<'a>(&self, tenants: impl Iterator<Item = &'a str>) {
        let mut slots = self.slots();
        let mut any = false;
        for tenant in tenants {
            if let Some(slot) = slots.get_mut(tenant) {
                slot.version += 1;
                slot.wakers.drain(..).for_each(Waker::wake);
                any = true;
            }
        }
        drop(slots);
        if any {
            self.changed.notify_all();
        }
    }

    /// Wakes every subscriber (commits this process did not make, see the module doc).
    pub(crate) fn wake_all(&self) {
        let mut slots = self.slots();
        for slot in slots.values_mut() {
            slot.version += 1;
            slot.wakers.drain(..).for_each(Waker::wake);
        }
        drop(slots);
        self.changed.notify_all();
    }

    /// The tenant's kept tail, if it stands for a read after `after` at `version`.
    pub(crate) fn tail(&self, tenant: &str, version: u64, after: u64) -> Option<Arc<Tail>> {
        let slots = self.slots();
        let tail = slots.get(tenant)?.tail.as_ref()?;
        tail.serves(version, after).then(|| Arc::clone(tail))
    }

    /// The lock a subscriber of `tenant` holds while it reads a tail.
    pub(crate) fn reading(&self, tenant: &str) -> Option<Arc<Mutex<()>>> {
        self.slots().get(tenant).map(|s| Arc::clone(&s.reading))
    }

    /// Keeps `tail` for the other subscribers of `tenant` (when it has others, and the tail is
    /// not older than the one kept).
    pub(crate) fn keep(&self, tenant: &str, tail: &Arc<Tail>) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(tenant)
            && slot.subscribers > 1
            && slot.tail.as_ref().is_none_or(|t| t.version <= tail.version)
        {
            slot.tail = Some(Arc::clone(tail));
        }
    }

    /// Records that a poll of the log found `seq` the newest event; whether it moved since the
    /// last poll (events of this process count too: which of the new ones were its own is not
    /// known, so the poll wakes everyone, at most once per poll).
    pub(crate) fn polled(&self, seq: u64) -> bool {
        self.polled.fetch_max(seq, Ordering::SeqCst) < seq
    }

    /// Registers a subscriber of `tenant`; returns the tenant's current version.
    pub(crate) fn join(&self, tenant: &str) -> u64 {
        let mut slots = self.slots();
        let slot = slots.entry(tenant.to_owned()).or_default();
        slot.subscribers += 1;
        self.subscribers.fetch_add(1, Ordering::SeqCst);
        slot.version
    }

    /// Unregisters a subscriber of `tenant`.
    pub(crate) fn leave(&self, tenant: &str) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(tenant) {
            self.subscribers.fetch_sub(1, Ordering::SeqCst);
            slot.subscribers = slot.subscribers.saturating_sub(1);
            if slot.subscribers == 0 {
                slots.remove(tenant);
            } else if slot.subscribers == 1 {
                // One subscriber reads for itself: the tail's memory goes.
                slot.tail = None;
            }
        }
    }

    /// The live subscriptions of `tenant`.
    pub(crate) fn subscribers_of(&self, tenant: &str) -> usize {
        self.slots().get(tenant).map_or(0, |s| s.subscribers)
    }

    /// The tenant's version now (0 for a tenant without subscribers).
    pub(crate) fn version(&self, tenant: &str) -> u64 {
        self.slots().get(tenant).map_or(0, |s| s.version)
    }

    /// Ready with the new version once the tenant's version differs from `seen`; otherwise
    /// registers `cx`'s waker for the next publish.
    pub(crate) fn poll_changed(&self, tenant: &str, seen: u64, cx: &mut Context<'_>) -> Poll<u64> {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(tenant) else {
            return Poll::Ready(seen.wrapping_add(1));
        };
        if slot.version != seen {
            return Poll::Ready(slot.version);
        }
        if !slot.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            slot.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Blocks until the tenant's version differs from `seen` or `timeout` passes; the version
    /// then.
    pub(crate) fn wait(&self, tenant: &str, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut slots = self.slots();
        loop {
            let v = slots
                .get(tenant)
                .map_or(seen.wrapping_add(1), |s| s.version);
            let left = deadline.saturating_duration_since(Instant::now());
            if v != seen || left.is_zero() {
                return v;
            }
            slots = self
                .changed
                .wait_timeout(slots, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
