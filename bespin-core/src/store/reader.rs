//! Reads shared by snapshots and write transactions: typed gets, prefix and range scans.

use super::backend::{RawVisitor, Reads};
use super::codec::{self, Record};
use super::key::{Prefix, successor};
use super::seal::Sealer;
use super::slots::Slots;
use super::table::{KeyDef, Table};
use super::{Flow, Order};
use crate::error::{Error, Result};
use std::any::Any;
use std::ops::Bound;
use std::sync::Arc;

/// A value remembered by a reader ([`Reader::remembered_value`]), of any type.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

/// `run`'s value, remembered by `r` under `key` when `r` remembers values (a write batch does,
/// for values computed from configuration tables alone: [`Reader::remembered_value`]). `key`'s
/// first part names what is computed, so one key never holds values of two types.
pub(crate) fn remember<T: Clone + Send + Sync + 'static>(
    r: &impl Reader,
    key: &[&str],
    run: impl FnOnce() -> Result<T>,
) -> Result<T> {
    remember_shared(r, key, run).map(|v| T::clone(&v))
}

/// [`remember`], handing out the remembered value itself rather than a copy of it: for a
/// value every operation of a batch reads (a plan, an event type), whose strings a copy would
/// allocate again each time.
pub(crate) fn remember_shared<T: Send + Sync + 'static>(
    r: &impl Reader,
    key: &[&str],
    run: impl FnOnce() -> Result<T>,
) -> Result<Arc<T>> {
    let mut run = Some(run);
    let v = r.remembered_value(key, &mut || match run.take() {
        Some(f) => f().map(|v| Arc::new(v) as Shared),
        None => Err(Error::Internal("a remembered value computed twice".into())),
    })?;
    v.downcast::<T>()
        .map_err(|_| Error::Internal(format!("remembered {key:?} has another type")))
}

/// Calls `f` with the encoded key `key` of a table keyed by `K`. The bytes are written into a
/// buffer of the thread's, reused from key to key: encoding a key costs no allocation (only
/// a key encoded while another is in use, as in a scan's visitor, gets a buffer of its own).
pub(crate) fn with_key<K: KeyDef, T>(key: &K::Of<'_>, f: impl FnOnce(&[u8]) -> T) -> T {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
    }
    codec::with_thread_buffer(&BUF, |buf| {
        K::encode(key, buf);
        f(buf)
    })
}

/// Read access shared by [`super::ReadTx`] and [`super::WriteTx`], so read logic written once
/// runs inside either.
pub(crate) trait Reader {
    /// The sealer of ids of this database ([`Sealer`]).
    fn sealer(&self) -> &Sealer;

    /// The outcome of the check `key` names (an entitlement check of one tenant, say: the key
    /// parts must say which check and of what), computed by `run`. A read snapshot cannot
    /// change, so it remembers each outcome for its life (until the next commit replaces it):
    /// requests that read one snapshot check a tenant's entitlement once. A write transaction
    /// runs the check every time.
    fn remembered(&self, key: &[&str], run: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let _ = key;
        run()
    }

    /// The value `run` computes, which `key` names (see [`remember`], the typed way to call
    /// it). A write batch remembers it until an operation of the batch writes to a
    /// configuration table ([`super::Table::memo`]), provided `run` read nothing else; any
    /// other reader runs it every time.
    fn remembered_value(
        &self,
        key: &[&str],
        run: &mut dyn FnMut() -> Result<Shared>,
    ) -> Result<Shared> {
        let _ = key;
        run()
    }

    /// The tables and the backend's reads behind this reader.
    fn source(&self) -> (&Slots, &dyn Reads);

    /// The raw bytes stored under `key` in the table named `table`.
    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let (slots, reads) = self.source();
        reads.get(slots.id(table)?, key)
    }

    /// Visits the rows of the table named `table` with keys in (`lo`, `hi`) in `order`, until
    /// the visitor says stop (for walks over every table, which know them by name only).
    fn scan_raw(
        &self,
        table: &'static str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        let (slots, reads) = self.source();
        reads.scan(slots.id(table)?, lo, hi, order, visit)
    }

    /// The record stored under `key`.
    fn get<K: KeyDef, V: Record>(&self, t: &Table<K, V>, key: &K::Of<'_>) -> Result<Option<V>>
    where
        Self: Sized,
    {
        with_key::<K, _>(key, |k| self.get_stored(t, k))
    }

    /// The record stored under the stored key `key` (bytes of a key of `t`, such as a scan
    /// visited, or built from the parts of one by a layout's declared relation to another's).
    fn get_stored<K: KeyDef, V: Record>(&self, t: &Table<K, V>, key: &[u8]) -> Result<Option<V>>
    where
        Self: Sized,
    {
        match self.get_raw(t.name(), key)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether `key` exists.
    fn contains<K: KeyDef, V: Record>(&self, t: &Table<K, V>, key: &K::Of<'_>) -> Result<bool>
    where
        Self: Sized,
    {
        Ok(with_key::<K, _>(key, |k| self.get_raw(t.name(), k))?.is_some())
    }

    /// Visits the records whose key starts with `prefix`, in `order`, with their stored key.
    fn scan<K: KeyDef, V: Record>(
        &self,
        t: &Table<K, V>,
        prefix: &Prefix<K>,
        order: Order,
        mut visit: impl FnMut(&[u8], V) -> Result<Flow>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        self.scan_range(t, prefix, None, None, order, &mut visit)
    }

    /// Visits the records under `prefix` whose key lies in `[from, to)` (either bound
    /// optional; both longer prefixes of the same table), in `order`.
    fn scan_range<K: KeyDef, V: Record>(
        &self,
        t: &Table<K, V>,
        prefix: &Prefix<K>,
        from: Option<&Prefix<K>>,
        to: Option<&Prefix<K>>,
        order: Order,
        visit: &mut dyn FnMut(&[u8], V) -> Result<Flow>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        let lo = from.map_or(Bound::Unbounded, |k| Bound::Included(k.as_bytes()));
        let hi = to.map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_bytes()));
        self.scan_stored(t, prefix, lo, hi, order, &mut |k, v| {
            visit(k, codec::decode(v)?)
        })
    }

    /// Visits the stored rows of `t` under `prefix` whose key lies within (`lo`, `hi`), in
    /// `order`, until the visitor says stop; an unbounded side is the prefix's own end, and no
    /// row outside the prefix is visited. Values come encoded, for records read in place.
    fn scan_stored<K: KeyDef, V: Record>(
        &self,
        t: &Table<K, V>,
        prefix: &Prefix<K>,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        let prefix = prefix.as_bytes();
        let succ = successor(prefix);
        let lo = match lo {
            Bound::Unbounded => Bound::Included(prefix),
            b => b,
        };
        let hi = match (hi, succ.as_deref()) {
            (Bound::Unbounded, Some(s)) => Bound::Excluded(s),
            (b, _) => b,
        };
        self.scan_raw(t.name(), lo, hi, order, &mut |k, v| {
            if !k.starts_with(prefix) {
                return Ok(Flow::Stop);
            }
            visit(k, v)
        })
    }

    /// Collects the records under `prefix` (at most `limit`, after skipping `offset`).
    fn list<K: KeyDef, V: Record>(
        &self,
        t: &Table<K, V>,
        prefix: &Prefix<K>,
        order: Order,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<V>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        let mut skipped = 0usize;
        if limit == 0 {
            return Ok(out);
        }
        self.scan(t, prefix, order, |_, r| {
            if skipped < offset {
                skipped += 1;
                return Ok(Flow::Continue);
            }
            out.push(r);
            Ok(if out.len() >= limit {
                Flow::Stop
            } else {
                Flow::Continue
            })
        })?;
        Ok(out)
    }
}

/// A reader behind a reference (tools get one without knowing which kind of transaction).
impl Reader for &dyn Reader {
    fn sealer(&self) -> &Sealer {
        (**self).sealer()
    }

    fn remembered(&self, key: &[&str], run: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        (**self).remembered(key, run)
    }

    fn remembered_value(
        &self,
        key: &[&str],
        run: &mut dyn FnMut() -> Result<Shared>,
    ) -> Result<Shared> {
        (**self).remembered_value(key, run)
    }

    fn source(&self) -> (&Slots, &dyn Reads) {
        (**self).source()
    }
}
