//! The newest part of one tenant's log, read once and shared by every live subscriber of the
//! tenant (issue 20: many subscribers must not multiply the cost of a commit).
//!
//! Without it, each subscriber woken by a commit read the log itself: a scan and a decode of
//! every new event per subscriber on redb, and a round trip per subscriber on PostgreSQL, whose
//! snapshots are not shared. Now the first subscriber of a tenant to look after a wake-up reads
//! the tenant's rows after its cursor (at most [`TAIL_ROWS`] rows, [`TAIL_BYTES`] of data) into
//! a [`Tail`], which the hub keeps with the tenant's version; every other subscriber at that
//! version whose cursor lies in the tail selects its page from memory, with the same filters as
//! a read of the log, and shares each event's JSON, made once.
//!
//! Why a tail is as good as a read of its own (no gap, no duplicate): the tail records the
//! tenant's hub version observed *before* its snapshot began. Every commit not in that
//! snapshot becomes visible after it began, and its publish (or another server's
//! notification, or the poll) bumps the version after that — so a subscriber that finds the
//! version still equal to the tail's may take the tail as its read, and will be woken for
//! whatever the tail lacks, exactly as after a read of its own.

use super::{EventType, Pager, stored_view};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::{Flow, Reader};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// The most rows a tail holds.
pub(crate) const TAIL_ROWS: usize = 1_000;
/// The most bytes of event data a tail holds (a row is read past it only when it is the first).
pub(crate) const TAIL_BYTES: usize = 1 << 20;

/// One event of the log as the subscribers of its tenant share it: the event, and its JSON
/// made once for all of them. Dereferences to the [`super::Event`].
#[derive(Debug)]
pub struct SharedEvent {
    event: super::Event,
    seq: u64,
    /// The user an `owner`-audience event concerns.
    owner: Option<String>,
    json: OnceLock<String>,
}

impl SharedEvent {
    /// The event as compact JSON (made at the first call, then shared).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.event.to_json())
    }

    /// The event.
    pub fn event(&self) -> &super::Event {
        &self.event
    }
}

impl Deref for SharedEvent {
    type Target = super::Event;

    fn deref(&self) -> &super::Event {
        &self.event
    }
}

/// The rows of one tenant's log after `after`, as one snapshot saw them (see the module doc).
#[derive(Debug)]
pub(crate) struct Tail {
    /// The tenant's hub version observed before the snapshot began.
    pub version: u64,
    /// The cursor the rows follow.
    pub after: u64,
    /// The tenant's purge floor in the snapshot.
    floor: u64,
    rows: Vec<Arc<SharedEvent>>,
    /// Whether `rows` reach the end of the log (the snapshot's).
    complete: bool,
}

impl Tail {
    /// Reads the rows of `tenant` after `after` (see [`TAIL_ROWS`], [`TAIL_BYTES`]); `version`
    /// is the tenant's hub version read before `r` was taken.
    pub(crate) fn read(r: &impl Reader, tenant: &str, after: u64, version: u64) -> Result<Tail> {
        let floor = super::floor(r, tenant)?;
        let (mut rows, mut bytes, mut complete) = (Vec::new(), 0usize, true);
        super::rows_after(r, tenant, after, |seq, e| {
            if rows.len() >= TAIL_ROWS || (bytes >= TAIL_BYTES && !rows.is_empty()) {
                complete = false;
                return Flow::Stop;
            }
            bytes += e.data.len();
            let owner = e.owner.clone();
            rows.push(Arc::new(SharedEvent {
                event: stored_view(tenant, seq, e),
                seq,
                owner,
                json: OnceLock::new(),
            }));
            Flow::Continue
        })?;
        Ok(Tail {
            version,
            after,
            floor,
            rows,
            complete,
        })
    }

    /// Whether this tail can stand for a read after `after` at the tenant's `version`.
    pub(crate) fn serves(&self, version: u64, after: u64) -> bool {
        self.version == version
            && self.after <= after
            && (self.complete || self.rows.last().is_some_and(|e| e.seq > after))
    }

    /// The page a read of the log after `q.after` would give `caller` (see
    /// [`super::walk`]): the events `seen` and `q.types` let through, the cursor after them and
    /// whether rows were left. `Err(CursorExpired)` for a cursor below the purge floor.
    pub(crate) fn select(
        &self,
        caller: &Principal,
        q: &super::EventQuery,
        seen: &[&'static EventType],
    ) -> Result<(Vec<Arc<SharedEvent>>, Option<u64>, bool)> {
        let after = q.after.unwrap_or(0);
        if q.after.is_some() && after < self.floor {
            return Err(Error::CursorExpired);
        }
        let mut pager = Pager::new(caller, q, seen);
        let mut items = Vec::new();
        let start = self.rows.partition_point(|e| e.seq <= after);
        for e in &self.rows[start..] {
            if pager.full(items.len()) {
                break;
            }
            if pager.admits(e.seq, &e.event.event_type, e.owner.as_deref()) {
                items.push(Arc::clone(e));
            }
        }
        // Rows past the tail may follow: the next read takes them from the log.
        let more = pager.stopped() || !self.complete;
        Ok((items, pager.last().or(q.after), more))
    }
}
