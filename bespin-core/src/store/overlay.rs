//! What a batch keeps of its rows beside the backend's transaction: rows **held** in the
//! batch and written once at its commit, and a **memo** of the reads of configuration tables.
//!
//! Both exist because a batch runs many operations of the same kind one after another, and
//! each of them reads the same few rows (the tenant's plan, subscription, the event type, the
//! webhook endpoints) and rewrites one of them (the audit chain's head). A read or a rewrite
//! in the backend's B-tree costs a few thousand instructions; a lookup here a few hundred.
//!
//! Neither changes what an operation sees:
//! - a held row is read back by every read of the batch (gets and scans, merged in key order),
//!   and an ordinary write or delete of its key first puts it in the backend, so from then on
//!   the key behaves as any other; held rows are undone with their operation like any write;
//! - the memo holds only tables declared [`super::Table::memo`], and any write to such a table
//!   in the batch — by an operation, or by the undo of a failed one — forgets what the memo
//!   held of that table, so the next read goes to the backend again.

use super::backend::{RawVisitor, Reads, TableId};
use super::reader::Shared;
use super::slots::WordHash;
use super::{Flow, Order};
use crate::error::{Error, Result};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

/// The most rows a memoised scan may return and still be kept (a tenant's webhook
/// endpoints, a plan's grants): larger scans are not configuration and go to the backend.
const MEMO_SCAN_ROWS: usize = 64;

/// The rows a batch holds, per table (a batch holds rows of one or two tables: a list).
pub(crate) type HeldRows = Vec<(TableId, BTreeMap<Vec<u8>, Vec<u8>>)>;

/// Rows of one scan kept by the memo.
type Rows = Arc<Vec<(Vec<u8>, Vec<u8>)>>;

/// The held rows and the read memo of one batch.
#[derive(Default)]
pub(crate) struct Overlay {
    /// Held rows, per table.
    held: HeldRows,
    /// The memo, per table slot. A `RefCell` because reads take `&self`; the batch runs on one
    /// thread, and no borrow is held while the backend or a visitor runs.
    memo: RefCell<Vec<(usize, TableMemo)>>,
    /// Values computed from memo tables alone ([`Overlay::remember`]), by key; forgotten with
    /// the memo of any table.
    values: RefCell<HashMap<String, Result<Shared>, std::hash::BuildHasherDefault<WordHash>>>,
    /// The key of the last [`Overlay::remember`] lookup, built in place: a hit (most calls:
    /// every operation of a batch asks for the same few values) allocates nothing.
    scratch: RefCell<String>,
    /// How many [`Overlay::remember`] computations are running (nested), and whether the
    /// innermost one read a table that is not a memo table (its value is then not kept).
    computing: Cell<u32>,
    tainted: Cell<bool>,
}

/// What the memo holds of one table.
#[derive(Default)]
struct TableMemo {
    gets: HashMap<Vec<u8>, Option<Vec<u8>>, std::hash::BuildHasherDefault<WordHash>>,
    /// Whole scans, by their bounds and order.
    scans: Vec<(Vec<u8>, Rows)>,
}

/// The bounds and order of a scan as one comparable key.
fn scan_key(lo: Bound<&[u8]>, hi: Bound<&[u8]>, order: Order) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    for b in [lo, hi] {
        match b {
            Bound::Included(x) => {
                k.push(1);
                k.extend_from_slice(&(x.len() as u32).to_le_bytes());
                k.extend_from_slice(x);
            }
            Bound::Excluded(x) => {
                k.push(2);
                k.extend_from_slice(&(x.len() as u32).to_le_bytes());
                k.extend_from_slice(x);
            }
            Bound::Unbounded => k.push(0),
        }
    }
    k.push(matches!(order, Order::Asc) as u8);
    k
}

impl Overlay {
    /// The held rows of `t`, if it has any.
    fn held_of(&self, t: TableId) -> Option<&BTreeMap<Vec<u8>, Vec<u8>>> {
        self.held
            .iter()
            .find(|(id, _)| id.slot == t.slot)
            .map(|(_, rows)| rows)
    }

    /// The held value of `key` in `t`, if it is held.
    pub(crate) fn held(&self, t: TableId, key: &[u8]) -> Option<&Vec<u8>> {
        self.held_of(t).and_then(|rows| rows.get(key))
    }

    /// Holds `value` under `key` in `t`; returns the value held before (for the undo log).
    pub(crate) fn hold(&mut self, t: TableId, key: &[u8], value: Vec<u8>) -> Option<Vec<u8>> {
        self.forget_memo(t);
        let at = match self.held.iter().position(|(id, _)| id.slot == t.slot) {
            Some(i) => i,
            None => {
                self.held.push((t, BTreeMap::new()));
                self.held.len() - 1
            }
        };
        self.held[at].1.insert(key.to_vec(), value)
    }

    /// Stops holding `key` in `t`; returns its held value.
    pub(crate) fn release(&mut self, t: TableId, key: &[u8]) -> Option<Vec<u8>> {
        let held = self
            .held
            .iter_mut()
            .find(|(id, _)| id.slot == t.slot)
            .and_then(|(_, rows)| rows.remove(key));
        if held.is_some() {
            self.forget_memo(t);
        }
        held
    }

    /// Undoes a [`Overlay::hold`] or [`Overlay::release`]: `key` holds `old` again (`None`:
    /// it was not held).
    pub(crate) fn restore(&mut self, t: TableId, key: &[u8], old: Option<Vec<u8>>) {
        match old {
            Some(v) => {
                self.hold(t, key, v);
            }
            None => {
                self.release(t, key);
            }
        }
    }

    /// Drops every held row of `t` (the table is being emptied).
    pub(crate) fn drop_table(&mut self, t: TableId) {
        self.forget_memo(t);
        self.held.retain(|(id, _)| id.slot != t.slot);
    }

    /// Every held row, emptying the overlay: what the commit writes.
    pub(crate) fn take_held(&mut self) -> HeldRows {
        std::mem::take(&mut self.held)
    }

    /// Forgets what the memo holds of `t` (a write to it, or the undo of one).
    pub(crate) fn forget_memo(&self, t: TableId) {
        if t.memo {
            self.memo.borrow_mut().retain(|(slot, _)| *slot != t.slot);
            self.values.borrow_mut().clear();
        }
    }

    /// Notes a read of `t`: a computation being remembered that reads a table other than a
    /// memo table depends on rows the batch may change at any time, so it is not kept.
    fn note_read(&self, t: TableId) {
        if !t.memo && self.computing.get() > 0 {
            self.tainted.set(true);
        }
    }

    /// The value `run` computes, remembered under `key` for the rest of the batch when `run`
    /// read memo tables only, until a write to one of them. Failures of storage are never
    /// kept; refusals (a missing subscription, say) are, as outcomes of the configuration.
    pub(crate) fn remember(
        &self,
        key: &[&str],
        run: &mut dyn FnMut() -> Result<Shared>,
    ) -> Result<Shared> {
        let key = {
            let mut scratch = self.scratch.borrow_mut();
            scratch.clear();
            for (i, part) in key.iter().enumerate() {
                if i > 0 {
                    scratch.push('\u{0}');
                }
                scratch.push_str(part);
            }
            if let Some(known) = self.values.borrow().get(scratch.as_str()) {
                return known.clone();
            }
            // A miss: the key is kept with the value (`run` may remember values of its own,
            // so the scratch is not borrowed while it runs).
            scratch.clone()
        };
        let outer = self.tainted.replace(false);
        self.computing.set(self.computing.get() + 1);
        let out = run();
        self.computing.set(self.computing.get() - 1);
        let tainted = self.tainted.get();
        self.tainted.set(outer || tainted);
        if !tainted
            && !matches!(
                out,
                Err(Error::Storage(_) | Error::Internal(_) | Error::Unavailable(_))
            )
        {
            self.values.borrow_mut().insert(key, out.clone());
        }
        out
    }

    /// The held value of `key` in `t`, read in place (a read like [`Overlay::get`], which
    /// copies it out), or `None` when it is not held.
    pub(crate) fn read_held(&self, t: TableId, key: &[u8]) -> Option<&[u8]> {
        let v = self.held(t, key)?;
        self.note_read(t);
        Some(v)
    }

    /// The value of `key` in `t`: held, memoised, or read from `reads` (and memoised when `t`
    /// is a memo table).
    pub(crate) fn get(&self, reads: &dyn Reads, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.note_read(t);
        if let Some(v) = self.held(t, key) {
            return Ok(Some(v.clone()));
        }
        if !t.memo {
            return reads.get(t, key);
        }
        if let Some(hit) = self
            .memo
            .borrow()
            .iter()
            .find(|(slot, _)| *slot == t.slot)
            .and_then(|(_, m)| m.gets.get(key))
        {
            return Ok(hit.clone());
        }
        let v = reads.get(t, key)?;
        self.with_memo(t, |m| {
            m.gets.insert(key.to_vec(), v.clone());
        });
        Ok(v)
    }

    fn with_memo(&self, t: TableId, f: impl FnOnce(&mut TableMemo)) {
        let mut memo = self.memo.borrow_mut();
        let at = match memo.iter().position(|(slot, _)| *slot == t.slot) {
            Some(i) => i,
            None => {
                memo.push((t.slot, TableMemo::default()));
                memo.len() - 1
            }
        };
        f(&mut memo[at].1);
    }

    /// Visits the rows of `t` within (`lo`, `hi`) in `order`: the backend's merged with the
    /// held ones (a held row in place of a stored one of the same key), or the memo's.
    pub(crate) fn scan(
        &self,
        reads: &dyn Reads,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        self.note_read(t);
        if let Some(held) = self.held_of(t) {
            let mut rows: Vec<(&[u8], &[u8])> = held
                .range::<[u8], _>((lo, hi))
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            if !rows.is_empty() {
                if matches!(order, Order::Desc) {
                    rows.reverse();
                }
                return merged_scan(reads, t, (lo, hi), order, &rows, visit);
            }
        }
        if !t.memo {
            return reads.scan(t, lo, hi, order, visit);
        }
        let key = scan_key(lo, hi, order);
        let hit: Option<Rows> = self
            .memo
            .borrow()
            .iter()
            .find(|(slot, _)| *slot == t.slot)
            .and_then(|(_, m)| m.scans.iter().find(|(k, _)| *k == key))
            .map(|(_, rows)| Arc::clone(rows));
        if let Some(rows) = hit {
            for (k, v) in rows.iter() {
                if let Flow::Stop = visit(k, v)? {
                    break;
                }
            }
            return Ok(());
        }
        // A miss: visit the backend's rows, collecting them while the scan stays small and
        // runs to its end (a scan stopped early is not the whole range).
        let mut kept: Option<Vec<(Vec<u8>, Vec<u8>)>> = Some(Vec::new());
        reads.scan(t, lo, hi, order, &mut |k, v| {
            let flow = visit(k, v)?;
            let whole_so_far = matches!(flow, Flow::Continue);
            kept = match kept.take() {
                Some(mut rows) if whole_so_far && rows.len() < MEMO_SCAN_ROWS => {
                    rows.push((k.to_vec(), v.to_vec()));
                    Some(rows)
                }
                _ => None,
            };
            Ok(flow)
        })?;
        if let Some(rows) = kept {
            self.with_memo(t, |m| m.scans.push((key, Arc::new(rows))));
        }
        Ok(())
    }
}

/// The backend's rows of `t` in `range`, with `held` (in range, in visiting order) in place of
/// stored rows of the same key and between the others in key order.
fn merged_scan(
    reads: &dyn Reads,
    t: TableId,
    (lo, hi): (Bound<&[u8]>, Bound<&[u8]>),
    order: Order,
    held: &[(&[u8], &[u8])],
    visit: &mut RawVisitor<'_>,
) -> Result<()> {
    // Whether `a` is visited before `b`.
    let before = |a: &[u8], b: &[u8]| match order {
        Order::Asc => a < b,
        Order::Desc => a > b,
    };
    let mut next = 0;
    let mut stopped = false;
    reads.scan(t, lo, hi, order, &mut |k, v| {
        while next < held.len() && before(held[next].0, k) {
            let (hk, hv) = held[next];
            next += 1;
            if let Flow::Stop = visit(hk, hv)? {
                stopped = true;
                return Ok(Flow::Stop);
            }
        }
        let flow = if next < held.len() && held[next].0 == k {
            let (hk, hv) = held[next];
            next += 1;
            visit(hk, hv)?
        } else {
            visit(k, v)?
        };
        if let Flow::Stop = flow {
            stopped = true;
        }
        Ok(flow)
    })?;
    if !stopped {
        for (hk, hv) in &held[next..] {
            if let Flow::Stop = visit(hk, hv)? {
                break;
            }
        }
    }
    Ok(())
}
