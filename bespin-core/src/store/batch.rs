//! The write path: a [`Batch`] of operations in one write transaction, each operation's view
//! of it ([`WriteTx`]), and the undo log that rolls one operation back alone.
//!
//! All of this sits above the backend: a backend provides one write transaction whose `put`
//! and `remove` return what they replaced, and the undo log here does the rest.

use super::backend::{Prior, RawVisitor, Reads, TableId, WriteBatch};
use super::codec::{self, Record};
use super::key::Prefix;
use super::overlay::Overlay;
use super::reader::{Reader, Shared, with_key};
use super::seal::Sealer;
use super::slots::Slots;
use super::snapshot::SharedSnapshot;
use super::table::{KeyDef, Table};
use super::{Flow, Order};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

/// The single write transaction, shared by the operations of one group commit. Dropping it
/// without [`Batch::commit`] discards every change.
///
/// Each operation runs through [`Batch::run`] with its own [`WriteTx`] view and records what it
/// overwrites in the batch's undo log, so a failing operation is rolled back alone without
/// disturbing the others in the batch.
pub(crate) struct Batch {
    tx: Box<dyn WriteBatch>,
    slots: Arc<Slots>,
    sealer: Arc<Sealer>,
    undo: UndoLog,
    /// Emptied once the batch is committed, so that readers move on to the new state.
    snapshot: Arc<SharedSnapshot>,
    /// Outcomes of per-batch admission checks (a credential still valid at this point of the
    /// batch), by credential id: see [`WriteTx::admission`].
    admissions: HashMap<String, bool>,
    /// The topics the batch's operations announced ([`WriteTx::announce`]), told to other
    /// processes at commit; `None` when no other process shares the database (nothing to
    /// tell: an emitting operation then costs nothing more).
    announced: Option<Vec<String>>,
    /// Rows held in the batch until its commit, and the memo of configuration reads.
    overlay: Overlay,
}

/// The undo log of the running operation: its entries, newest last, and the keys they name,
/// side by side in one buffer. An entry's key runs from its `key` offset to the next entry's
/// (or the buffer's end): entries are only ever added and taken back newest first, so logging
/// a write copies its key without an allocation of its own.
struct UndoLog {
    entries: Vec<Undo>,
    keys: Vec<u8>,
}

/// One entry of the undo log.
enum Undo {
    /// An overwritten row: the table, the key, and what it held before (`Was(None)`: it was
    /// absent; `Unread`: whatever the database holds, which the batch never saw).
    Row {
        table: TableId,
        key: usize,
        old: Prior,
    },
    /// A table emptied or rekeyed without logging its rows ([`WriteTx::clear_unlogged`],
    /// [`WriteTx::move_unlogged`]): the batch cannot be rolled back across it.
    Cleared(TableId),
    /// A held row's value before a change of it ([`WriteTx::put_held`], or a write that put it
    /// in the backend); `None`: it was not held.
    Held {
        table: TableId,
        key: usize,
        old: Option<Vec<u8>>,
    },
}

impl UndoLog {
    fn with_capacity(entries: usize) -> UndoLog {
        UndoLog {
            entries: Vec::with_capacity(entries),
            keys: Vec::with_capacity(entries * 48),
        }
    }

    /// Logs that `key` of `table` held `old` before a write.
    fn row(&mut self, table: TableId, key: &[u8], old: Prior) {
        let at = self.key(key);
        self.entries.push(Undo::Row {
            table,
            key: at,
            old,
        });
    }

    /// Logs that `key` of `table` was held as `old` (`None`: not held) before a change.
    fn held(&mut self, table: TableId, key: &[u8], old: Option<Vec<u8>>) {
        let at = self.key(key);
        self.entries.push(Undo::Held {
            table,
            key: at,
            old,
        });
    }

    /// Appends `key` to the keys; returns where it starts.
    fn key(&mut self, key: &[u8]) -> usize {
        let at = self.keys.len();
        self.keys.extend_from_slice(key);
        at
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.keys.clear();
    }
}

impl Batch {
    pub(crate) fn new(
        tx: Box<dyn WriteBatch>,
        slots: Arc<Slots>,
        sealer: Arc<Sealer>,
        snapshot: Arc<SharedSnapshot>,
        shared_with_others: bool,
    ) -> Batch {
        Batch {
            tx,
            slots,
            sealer,
            undo: UndoLog::with_capacity(64),
            snapshot,
            admissions: HashMap::new(),
            announced: shared_with_others.then(Vec::new),
            overlay: Overlay::default(),
        }
    }

    /// Runs one operation in the batch. If it fails (or panics) everything it wrote is undone
    /// and its error returned; the rest of the batch is untouched. `Err` from the rollback
    /// itself means the batch can no longer be trusted and must be dropped.
    pub(crate) fn run<T>(
        &mut self,
        op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T>,
    ) -> std::result::Result<Result<T>, Error> {
        let mark = self.undo.len();
        let announced = self.announced.as_ref().map_or(0, Vec::len);
        let out = {
            let mut w = WriteTx {
                batch: &mut *self.tx,
                slots: &self.slots,
                sealer: &self.sealer,
                undo: &mut self.undo,
                admissions: &mut self.admissions,
                announced: self.announced.as_mut(),
                overlay: &mut self.overlay,
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut w)))
                .unwrap_or_else(|_| Err(Error::Internal("operation panicked".into())))
        };
        if out.is_err() {
            // A rolled-back operation's news is no news.
            if let Some(a) = &mut self.announced {
                a.truncate(announced);
            }
            rollback_to(&mut *self.tx, &mut self.overlay, &mut self.undo, mark)?;
        } else {
            // Only a failing operation is ever rolled back, and only to its own start: what
            // a finished one logged is never read again, so the log starts empty for the
            // next (its keys and old values freed now, its capacity kept).
            self.undo.clear();
        }
        Ok(out)
    }

    /// Makes every change durable (fsync, unless the database was opened for speed over
    /// durability) and visible to new readers.
    pub(crate) fn commit(mut self) -> Result<()> {
        if let Some(a) = self.announced.take().filter(|a| !a.is_empty()) {
            self.tx.announce(&a);
        }
        // The held rows first, each written once however many operations changed it.
        let held = self.overlay.take_held();
        let outcome = held
            .iter()
            .flat_map(|(t, rows)| rows.iter().map(move |(k, v)| (*t, k, v)))
            .try_for_each(|(t, k, v)| self.tx.put(t, k, v, false).map(drop))
            .and_then(|()| self.tx.commit());
        // Even a failed commit may have changed what the backend shows: readers start afresh.
        self.snapshot.invalidate();
        outcome
    }
}

/// Undoes every change recorded after `mark`, newest first. The memo forgets every table
/// the undo writes to.
fn rollback_to(
    tx: &mut dyn WriteBatch,
    overlay: &mut Overlay,
    undo: &mut UndoLog,
    mark: usize,
) -> Result<()> {
    while undo.entries.len() > mark {
        let Some(u) = undo.entries.pop() else { break };
        let at = match &u {
            Undo::Row { table, key, .. } => {
                overlay.forget_memo(*table);
                *key
            }
            Undo::Held { key, .. } => *key,
            Undo::Cleared(_) => undo.keys.len(),
        };
        let key = undo.keys.get(at..).unwrap_or_default();
        match u {
            Undo::Row {
                table,
                old: Prior::Was(Some(old)),
                ..
            } => {
                tx.put(table, key, &old, false)?;
            }
            Undo::Row {
                table,
                old: Prior::Was(None),
                ..
            } => {
                tx.remove(table, key)?;
            }
            Undo::Row {
                table,
                old: Prior::Unread,
                ..
            } => {
                tx.forget(table, key)?;
            }
            Undo::Held { table, old, .. } => overlay.restore(table, key, old),
            Undo::Cleared(table) => {
                return Err(Error::Storage(format!(
                    "cannot roll back an operation that emptied or rekeyed table {} unlogged",
                    table.name
                )));
            }
        }
        undo.keys.truncate(at);
    }
    Ok(())
}

/// One operation's view of the write transaction: reads, writes and an undo log entry for
/// every write. Made by `Batch::run` for each operation; domain operations take `&mut WriteTx`.
pub struct WriteTx<'a, 't> {
    batch: &'a mut (dyn WriteBatch + 't),
    slots: &'a Slots,
    sealer: &'a Arc<Sealer>,
    undo: &'a mut UndoLog,
    admissions: &'a mut HashMap<String, bool>,
    announced: Option<&'a mut Vec<String>>,
    overlay: &'a mut Overlay,
}

impl WriteTx<'_, '_> {
    /// Announces news for `topic` (a tenant with new events) to the other processes sharing
    /// the database, if this operation commits: they are told with the commit itself (see
    /// [`super::Store::watch_others`]). Rolled back with the operation.
    pub(crate) fn announce(&mut self, topic: &str) {
        if let Some(a) = self.announced.as_deref_mut()
            && !a.iter().any(|t| t == topic)
        {
            a.push(topic.to_owned());
        }
    }

    /// The database's id sealer, to be kept past the operation: to seal an id after it,
    /// off the writer (an answer's ids, when the answer is shown).
    pub(crate) fn shared_sealer(&self) -> Arc<Sealer> {
        Arc::clone(self.sealer)
    }

    /// The memoised outcome of an admission check of credential `id` in this batch, if any.
    pub(crate) fn admission(&self, id: &str) -> Option<bool> {
        self.admissions.get(id).copied()
    }

    /// Memoises the outcome of an admission check of credential `id` for the rest of the batch.
    pub(crate) fn remember_admission(&mut self, id: &str, ok: bool) {
        self.admissions.insert(id.to_owned(), ok);
    }

    /// Forgets every memoised admission: an operation that may have invalidated a credential
    /// (a revocation, a deactivation) calls it, so the operations after it look again.
    pub(crate) fn forget_admissions(&mut self) {
        self.admissions.clear();
    }

    /// Stores `value` under `key`, logging what it replaced for undo. `want_old`: the caller
    /// needs the old value (in the log's last entry); otherwise a backend over a network need
    /// not read it.
    fn raw_insert_with(
        &mut self,
        table: &'static str,
        key: &[u8],
        value: &[u8],
        want_old: bool,
    ) -> Result<()> {
        let table = self.slots.id(table)?;
        self.unhold(table, key)?;
        self.overlay.forget_memo(table);
        let old = self.batch.put(table, key, value, want_old)?;
        self.undo.row(table, key, old);
        Ok(())
    }

    /// Puts the held row `key` of `table`, if it is held, in the backend (both steps logged),
    /// so that an ordinary write or delete of it then works on the backend's row as usual.
    fn unhold(&mut self, table: TableId, key: &[u8]) -> Result<()> {
        let Some(held) = self.overlay.release(table, key) else {
            return Ok(());
        };
        let old = self.batch.put(table, key, &held, false)?;
        self.undo.held(table, key, Some(held));
        self.undo.row(table, key, old);
        Ok(())
    }

    /// Stores `value` under `key` in the batch only, to be written once, at its commit: for a
    /// row that many operations of a batch rewrite one after another (an audit chain's head),
    /// which then costs one backend write per batch instead of one per operation. Every read
    /// of the batch sees it at once (gets and scans); it is undone with its operation like any
    /// write, and an ordinary write or delete of the key replaces it.
    pub(crate) fn put_held<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        value: &V,
    ) -> Result<()> {
        let table = self.slots.id(t.name())?;
        let value = codec::encode(value)?;
        with_key::<K, _>(key, |k| {
            self.hold(table, k, value);
            Ok(())
        })
    }

    /// Stores what `f` makes of the record under `key` (`None`: there is none) in its place,
    /// held in the batch like [`WriteTx::put_held`]: for a row that every operation of a batch
    /// reads and rewrites (a usage rollup, a daily counter).
    pub(crate) fn update_held<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        f: impl FnOnce(Option<V>) -> V,
    ) -> Result<()> {
        let table = self.slots.id(t.name())?;
        with_key::<K, _>(key, |k| {
            // A row held already (every operation's but the batch's first) is decoded in
            // place rather than copied out first.
            let old = match self.overlay.read_held(table, k) {
                Some(held) => Some(codec::decode(held)?),
                None => self.get_stored(t, k)?,
            };
            let value = codec::encode(&f(old))?;
            self.hold(table, k, value);
            Ok(())
        })
    }

    /// Holds `value` under `key` of `table`, logging what was held before for undo.
    fn hold(&mut self, table: TableId, key: &[u8], value: Vec<u8>) {
        let old = self.overlay.hold(table, key, value);
        self.undo.held(table, key, old);
    }

    fn raw_insert(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        self.raw_insert_with(table, key, value, false)
    }

    fn raw_remove(&mut self, table: &'static str, key: &[u8]) -> Result<bool> {
        let table = self.slots.id(table)?;
        self.unhold(table, key)?;
        self.overlay.forget_memo(table);
        let old = self.batch.remove(table, key)?;
        let existed = old.is_some();
        if existed {
            self.undo.row(table, key, Prior::Was(old));
        }
        Ok(existed)
    }

    /// Test-only: stores raw bytes (to plant rows of older layouts, or undecodable ones, for
    /// the checker's and the upgrade's tests).
    #[cfg(test)]
    pub(crate) fn raw_insert_for_test(
        &mut self,
        table: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.raw_insert(table, key, value)
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub(crate) fn put<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        value: &V,
    ) -> Result<()> {
        codec::with_encoded(value, |bytes| {
            with_key::<K, _>(key, |k| self.raw_insert(t.name(), k, bytes))
        })
    }

    /// Stores `bytes`, a record of `t` already encoded with its version byte (by a module that
    /// writes its records in place, from borrowed parts: the blocks of claims), under `key`.
    pub(crate) fn put_encoded<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        bytes: &[u8],
    ) -> Result<()> {
        debug_assert_eq!(bytes.first(), Some(&V::VERSION));
        with_key::<K, _>(key, |k| self.raw_insert(t.name(), k, bytes))
    }

    /// Stores the record that `value` stands for (see [`codec::EncodesAs`]) under `key`, like
    /// [`WriteTx::put`] with the record itself.
    pub(crate) fn put_as<K: KeyDef, V: Record, B: codec::EncodesAs<V>>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        value: &B,
    ) -> Result<()> {
        codec::with_encoded_as::<V, B, _>(value, |bytes| {
            with_key::<K, _>(key, |k| self.raw_insert(t.name(), k, bytes))
        })
    }

    /// Test-only: stores `value` under the stored key `key` (bytes a scan of `t` visited).
    #[cfg(test)]
    pub(crate) fn put_stored<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &[u8],
        value: &V,
    ) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.raw_insert(t.name(), key, &bytes)
    }

    /// Reads the rows of `keys` in `t` ahead of the operation's reads and writes of them
    /// ([`WriteBatch::prefetch`]): on PostgreSQL one round trip for all of them instead of
    /// one each; nothing on redb. What the operation then reads is the same either way.
    pub(crate) fn prefetch<'k, K: KeyDef, V: Record>(
        &self,
        t: &Table<K, V>,
        keys: impl IntoIterator<Item = K::Of<'k>>,
    ) -> Result<()> {
        // The keys are not even made where nothing would be read ahead (redb).
        if !self.batch.prefetches() {
            return Ok(());
        }
        let encoded: Vec<Vec<u8>> = keys
            .into_iter()
            .map(|k| {
                let mut buf = Vec::new();
                K::encode(&k, &mut buf);
                buf
            })
            .collect();
        if encoded.is_empty() {
            return Ok(());
        }
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        self.batch.prefetch(self.slots.id(t.name())?, &refs)
    }

    /// Whether [`WriteTx::prefetch`] reads anything ahead (PostgreSQL): a caller can skip
    /// working out what it would ask for otherwise.
    pub(crate) fn prefetches(&self) -> bool {
        self.batch.prefetches()
    }

    /// Stores `value` under `key` like [`WriteTx::put`] and returns the record it replaced.
    pub(crate) fn replace<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        value: &V,
    ) -> Result<Option<V>> {
        codec::with_encoded(value, |bytes| {
            with_key::<K, _>(key, |k| self.raw_insert_with(t.name(), k, bytes, true))
        })?;
        // The previous value is the one just logged for undo.
        match self.undo.entries.last() {
            Some(Undo::Row {
                old: Prior::Was(Some(bytes)),
                ..
            }) => codec::decode(bytes).map(Some),
            Some(Undo::Row {
                old: Prior::Was(None),
                ..
            }) => Ok(None),
            _ => Err(Error::Internal(
                "replace: the old value was not read".into(),
            )),
        }
    }

    /// Stores `value` under `key` unless the key exists; returns whether it was inserted.
    pub(crate) fn insert_new<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
        value: &V,
    ) -> Result<bool> {
        with_key::<K, _>(key, |k| {
            if self.get_raw(t.name(), k)?.is_some() {
                return Ok(false);
            }
            codec::with_encoded(value, |bytes| self.raw_insert(t.name(), k, bytes))?;
            Ok(true)
        })
    }

    /// Removes the row `key` of the table named `table`, whatever its types (a walk over the
    /// registry, as the tenant erasure's); returns whether it existed.
    pub(crate) fn delete_raw(&mut self, table: &'static str, key: &[u8]) -> Result<bool> {
        self.raw_remove(table, key)
    }

    /// Removes `key`; returns whether it existed.
    pub(crate) fn delete<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &K::Of<'_>,
    ) -> Result<bool> {
        with_key::<K, _>(key, |k| self.raw_remove(t.name(), k))
    }

    /// Removes the row under the stored key `key` (bytes a scan of `t` visited); returns
    /// whether it existed.
    pub(crate) fn delete_stored<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        key: &[u8],
    ) -> Result<bool> {
        self.raw_remove(t.name(), key)
    }

    /// Removes every row whose key starts with `prefix`; returns how many were removed.
    pub(crate) fn delete_prefix<K: KeyDef, V: Record>(
        &mut self,
        t: &Table<K, V>,
        prefix: &Prefix<K>,
    ) -> Result<usize> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        self.scan_stored(
            t,
            prefix,
            Bound::Unbounded,
            Bound::Unbounded,
            Order::Asc,
            &mut |k, _| {
                keys.push(k.to_vec());
                Ok(Flow::Continue)
            },
        )?;
        for k in &keys {
            self.raw_remove(t.name(), k)?;
        }
        Ok(keys.len())
    }

    /// Moves the row `from` of the table named `table` to the key `to` (with `value`, what it
    /// holds) without copying either write into the undo log, as [`WriteTx::clear_unlogged`]
    /// does: for the layout upgrade in the opening transaction, which rewrites every key of a
    /// table and whose failure drops the whole batch anyway.
    pub(crate) fn move_unlogged(
        &mut self,
        table: &'static str,
        from: &[u8],
        to: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let t = self.slots.id(table)?;
        self.overlay.drop_table(t);
        self.batch.remove(t, from)?;
        self.batch.put(t, to, value, false)?;
        if !matches!(self.undo.entries.last(), Some(Undo::Cleared(x)) if *x == t) {
            self.undo.entries.push(Undo::Cleared(t));
        }
        Ok(())
    }

    /// Removes every row of `t` without copying them into the undo log (a table of millions
    /// of rows would otherwise be held in memory twice). The batch can no longer be rolled
    /// back to before this call: if this operation then fails, the whole batch is dropped
    /// uncommitted. Meant for the layout upgrade in the opening transaction, where that is
    /// what a failure does anyway.
    pub(crate) fn clear_unlogged<K: KeyDef, V: Record>(&mut self, t: &Table<K, V>) -> Result<()> {
        let table = self.slots.id(t.name())?;
        self.overlay.drop_table(table);
        self.batch.clear(table)?;
        self.undo.entries.push(Undo::Cleared(table));
        Ok(())
    }

    /// The next value of the database-wide sequence `name` (the first is 1). Values only
    /// grow; an operation that fails leaves a gap rather than giving its values back. (On
    /// redb the counter lives in the batch and is stored once, at its commit.)
    pub(crate) fn next_seq(&mut self, name: &str) -> Result<u64> {
        self.batch.next_seq(name)
    }
}

impl Reader for WriteTx<'_, '_> {
    fn sealer(&self) -> &Sealer {
        self.sealer.as_ref()
    }

    fn source(&self) -> (&Slots, &dyn Reads) {
        (self.slots, &*self.batch)
    }

    // A check of configuration alone (an entitlement) is remembered for the batch, like any
    // value computed from configuration tables alone.
    fn remembered(&self, key: &[&str], run: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        self.overlay
            .remember(key, &mut || run().map(|()| Arc::new(()) as Shared))
            .map(drop)
    }

    fn remembered_value(
        &self,
        key: &[&str],
        run: &mut dyn FnMut() -> Result<Shared>,
    ) -> Result<Shared> {
        self.overlay.remember(key, run)
    }

    // Every read of a write transaction goes through the overlay: held rows, the memo.
    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.overlay.get(&*self.batch, self.slots.id(table)?, key)
    }

    fn scan_raw(
        &self,
        table: &'static str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        let t = self.slots.id(table)?;
        self.overlay.scan(&*self.batch, t, lo, hi, order, visit)
    }
}
