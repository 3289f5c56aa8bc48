//! Read snapshots: [`ReadTx`], and the slot that shares one among every reader.

use super::backend::{Reads, Snapshot};
use super::reader::Reader;
use super::seal::Sealer;
use super::slots::Slots;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockWriteGuard};

/// The read snapshot readers share. Beginning a read transaction and opening its tables costs
/// more than the point reads most requests make, so one snapshot serves every read until a
/// commit replaces it. A commit empties the slot *after* it is durable and visible, under the
/// slot's lock, and a reader fills an empty slot under that lock: so no snapshot older than a
/// finished commit can be handed out after that commit returns, and a client that saw its
/// write acknowledged reads it back. Readers of a filled slot only share its read lock, so they
/// never wait for each other.
#[derive(Default)]
pub(crate) struct SharedSnapshot {
    slot: RwLock<Option<Arc<ReadTx>>>,
}

impl SharedSnapshot {
    /// The slot's lock, for a reader about to fill it.
    pub(crate) fn lock(&self) -> RwLockWriteGuard<'_, Option<Arc<ReadTx>>> {
        self.slot.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared snapshot, if one is in the slot.
    pub(crate) fn current(&self) -> Option<Arc<ReadTx>> {
        self.slot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Arc::clone)
    }

    /// Forgets the shared snapshot (after a commit). Readers still holding it finish on it.
    pub(crate) fn invalidate(&self) {
        let old = self.lock().take();
        // Dropped outside the lock: closing a read transaction takes the backend's own locks.
        drop(old);
    }
}

/// A consistent read-only snapshot, shared by every thread reading it.
pub struct ReadTx {
    snap: Box<dyn Snapshot>,
    slots: Arc<Slots>,
    sealer: Arc<Sealer>,
    /// Outcomes of checks made on this snapshot ([`Reader::remembered`]).
    remembered: RwLock<HashMap<String, Result<()>>>,
}

impl ReadTx {
    pub(crate) fn new(snap: Box<dyn Snapshot>, slots: Arc<Slots>, sealer: Arc<Sealer>) -> ReadTx {
        ReadTx {
            snap,
            slots,
            sealer,
            remembered: RwLock::default(),
        }
    }

    /// Number of rows in the table named `table`.
    pub(crate) fn count(&self, table: &'static str) -> Result<u64> {
        self.snap.count(self.slots.id(table)?)
    }

    /// The bytes every table's rows take (see [`Snapshot::stored_bytes`]).
    pub(crate) fn stored_bytes(&self) -> Result<u64> {
        self.snap.stored_bytes(self.slots.ids())
    }

    /// The backend's snapshot (for copying it whole).
    pub(crate) fn backend(&self) -> &dyn Snapshot {
        &*self.snap
    }
}

impl Reader for ReadTx {
    fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    fn remembered(&self, key: &[&str], run: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let key = key.join("\u{0}");
        let known = self
            .remembered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(outcome) = known {
            return outcome;
        }
        let outcome = run();
        // Storage failures are not outcomes of the check: they are not kept.
        if !matches!(
            outcome,
            Err(Error::Storage(_) | Error::Internal(_) | Error::Unavailable(_))
        ) {
            self.remembered
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, outcome.clone());
        }
        outcome
    }

    fn source(&self) -> (&Slots, &dyn Reads) {
        (&self.slots, &*self.snap)
    }
}
