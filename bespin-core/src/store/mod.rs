//! The storage seam: the only module that names redb.
//!
//! Domain code speaks in typed [`Table`]s, [`Key`]s built from typed parts, and two transaction
//! types: [`ReadTx`] (a consistent snapshot) and [`WriteTx`] (the single writer). Both implement
//! [`Reader`], so read logic written once runs inside either. Values are records encoded by
//! [`codec`] with a leading version byte.

pub(crate) mod codec;
mod key;
pub(crate) mod tables;

pub(crate) use codec::Record;
pub(crate) use key::{Key, read_id, read_str, read_str_ref, read_ts, read_u64, successor};

use crate::error::{Error, Result};
use crate::ids::{IdSecret, Sealer};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::marker::PhantomData;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

type Raw = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// A typed table: byte keys built with [`Key`], values of record type `R`.
pub(crate) struct Table<R> {
    name: &'static str,
    _record: PhantomData<fn() -> R>,
}

impl<R> Table<R> {
    /// A table stored under `name`.
    pub(crate) const fn new(name: &'static str) -> Self {
        Table {
            name,
            _record: PhantomData,
        }
    }

    /// The table's stored name.
    pub(crate) const fn name(&self) -> &'static str {
        self.name
    }
}

/// Scan direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Ascending key order.
    Asc,
    /// Descending key order.
    Desc,
}

/// Whether a scan visitor wants more rows.
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// Stop the scan.
    Stop,
}

/// The open database.
pub(crate) struct Store {
    db: redb::Database,
    path: Option<std::path::PathBuf>,
    /// Seals record positions into ids with the file's own secret ([`crate::ids::Sealer`]).
    sealer: Arc<Sealer>,
    /// The snapshot of the last commit, shared by every reader until the next commit.
    snapshot: Arc<SharedSnapshot>,
}

/// The read snapshot readers share. Beginning a redb read transaction and opening its tables
/// costs more than the point reads most requests make, so one snapshot serves every read until
/// a commit replaces it. A commit empties the slot *after* it is durable and visible, under
/// the slot's lock, and a reader fills an empty slot under that lock: so no snapshot older than
/// a finished commit can be handed out after that commit returns, and a client that saw its
/// write acknowledged reads it back. Readers of a filled slot only share its read lock, so they
/// never wait for each other.
#[derive(Default)]
struct SharedSnapshot {
    slot: std::sync::RwLock<Option<Arc<ReadTx>>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        // Close the shared read transaction before the database it reads.
        self.snapshot.invalidate();
    }
}

impl SharedSnapshot {
    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<ReadTx>>> {
        self.slot.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared snapshot, if one is in the slot.
    fn current(&self) -> Option<Arc<ReadTx>> {
        self.slot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Arc::clone)
    }

    /// Forgets the shared snapshot (after a commit). Readers still holding it finish on it.
    fn invalidate(&self) {
        let old = self.lock().take();
        // Dropped outside the lock: closing a read transaction takes redb's own locks.
        drop(old);
    }
}

impl Store {
    /// Opens (creating if needed, mode 0600) the database file at `path` and makes sure every
    /// table exists.
    pub(crate) fn open(path: &Path, cache_bytes: usize) -> Result<Store> {
        crate::files::ensure_private_file(path)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", path.display())))?;
        let db = redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        Self::init(db, Some(path.to_path_buf()))
    }

    /// A database held in memory only (for tests and embedding without persistence).
    pub(crate) fn in_memory() -> Result<Store> {
        let db =
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db, None)
    }

    fn init(db: redb::Database, path: Option<std::path::PathBuf>) -> Result<Store> {
        let tx = db.begin_write()?;
        for name in tables::ALL {
            tx.open_table(Raw::new(name))?;
        }
        let secret = {
            // The id-sealing secret: made with the file, never changed, never shown.
            let mut t = tx.open_table(Raw::new(tables::SECRETS.name()))?;
            let key = IdSecret::key();
            let stored = t.get(key.as_bytes())?.map(|g| g.value().to_vec());
            match stored {
                Some(bytes) => codec::decode::<IdSecret>(&bytes)?,
                None => {
                    let s = IdSecret::random()?;
                    t.insert(key.as_bytes(), codec::encode(&s)?.as_slice())?;
                    s
                }
            }
        };
        tx.commit()?;
        Ok(Store {
            db,
            path,
            sealer: Arc::new(Sealer::new(&secret.0)),
            snapshot: Arc::default(),
        })
    }

    /// Size of the database file in bytes (`None` for an in-memory database).
    pub(crate) fn file_size(&self) -> Option<u64> {
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    }

    /// Copies every table, as of one read transaction, into a new database file at `out`
    /// (written beside it as `out.partial`, flushed, then renamed, so `out` is either absent
    /// or complete). Concurrent writers are not blocked: the snapshot is the last commit
    /// before the copy started. Returns the number of rows copied. Refuses an existing `out`.
    pub(crate) fn backup(&self, out: &Path) -> Result<u64> {
        if out.exists() {
            return Err(Error::Storage(format!(
                "backup target {} already exists",
                out.display()
            )));
        }
        let mut partial = out.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        let rows = self.read()?.copy_into(&partial)?;
        std::fs::rename(&partial, out)
            .map_err(|e| Error::Storage(format!("backup: cannot rename into place: {e}")))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(rows)
    }

    /// A snapshot of the last commit, shared with concurrent readers (see [`SharedSnapshot`]):
    /// it reflects every commit that finished before this call.
    pub(crate) fn read(&self) -> Result<Arc<ReadTx>> {
        if let Some(s) = self.snapshot.current() {
            return Ok(s);
        }
        let mut slot = self.snapshot.lock();
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        // Begun under the lock, so a commit finishing meanwhile waits to empty the slot
        // until this (possibly older) snapshot is in it.
        let fresh = Arc::new(ReadTx {
            tx: self.db.begin_read()?,
            sealer: Arc::clone(&self.sealer),
            remembered: Default::default(),
            open: (0..tables::ALL.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        });
        *slot = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Starts the write transaction (waits while another one is open) as a batch that
    /// operations run in one after another.
    pub(crate) fn begin(&self, durable: bool) -> Result<Batch> {
        let mut tx = self.db.begin_write()?;
        if !durable {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| Error::Storage(e.to_string()))?;
        }
        Ok(Batch {
            tx: TxTables::new(tx, |tx| OpenTables::new(tx)),
            sealer: Arc::clone(&self.sealer),
            undo: Vec::new(),
            seqs: Vec::new(),
            snapshot: Arc::clone(&self.snapshot),
        })
    }
}

/// A database file opened read-only: redb writes nothing to it, not even the tables this build
/// would create (for `bespin layout`, which must not change the file it reports on).
pub(crate) struct ReadOnlyFile {
    tx: redb::ReadTransaction,
}

impl ReadOnlyFile {
    /// Opens the existing file at `path`. Errors: `Storage` when it is missing, not a redb
    /// file, needs recovery, or is held open for writing by another process.
    pub(crate) fn open(path: &Path) -> Result<ReadOnlyFile> {
        let db = redb::ReadOnlyDatabase::open(path)?;
        Ok(ReadOnlyFile {
            tx: db.begin_read()?,
        })
    }

    /// The rows of `table`, or `None` when the file has no such table.
    pub(crate) fn count(&self, table: &'static str) -> Result<Option<u64>> {
        match self.tx.open_table(Raw::new(table)) {
            Ok(t) => Ok(Some(t.len()?)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The record under `key` in `table` (`None` when the table or the row is missing).
    pub(crate) fn get<R: Record>(&self, table: &Table<R>, key: &Key) -> Result<Option<R>> {
        let t = match self.tx.open_table(Raw::new(table.name())) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        t.get(key.as_bytes())?
            .map(|g| codec::decode(g.value()))
            .transpose()
    }
}

/// A consistent read-only snapshot. Each table is opened at most once per snapshot, and the
/// handles are shared by every thread reading the snapshot.
pub struct ReadTx {
    tx: redb::ReadTransaction,
    sealer: Arc<Sealer>,
    /// Outcomes of checks made on this snapshot ([`Reader::remembered`]).
    remembered: std::sync::RwLock<std::collections::HashMap<String, Result<()>>>,
    open: Vec<std::sync::OnceLock<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>>,
}

/// The single write transaction, shared by the operations of one group commit. Dropping it
/// without [`Batch::commit`] discards every change.
///
/// Each operation runs through [`Batch::run`] with its own [`WriteTx`] view and records what it
/// overwrites in the batch's undo log, so a failing operation is rolled back alone without
/// disturbing the others in the batch. Tables are opened once per batch, not per operation:
/// opening one is a lookup in redb's table tree, and a batch of fifty operations touching a
/// dozen tables each would otherwise open six hundred.
pub(crate) struct Batch {
    tx: TxTables,
    sealer: Arc<Sealer>,
    undo: Vec<Undo>,
    /// The sequences advanced in this batch and their last value, stored once at commit (see
    /// [`WriteTx::next_seq`]).
    seqs: Vec<(String, u64)>,
    /// Emptied once the batch is committed, so that readers move on to the new state.
    snapshot: Arc<SharedSnapshot>,
}

self_cell::self_cell!(
    /// The write transaction and the handles of the tables opened in it.
    struct TxTables {
        owner: redb::WriteTransaction,
        #[not_covariant]
        dependent: OpenTables,
    }
);

/// One entry of the undo log.
enum Undo {
    /// An overwritten row: the table, the key, and the previous value (`None`: it was absent).
    Row {
        table: &'static str,
        key: Vec<u8>,
        old: Option<Vec<u8>>,
    },
    /// A table emptied without logging its rows ([`WriteTx::clear_unlogged`]): the batch cannot
    /// be rolled back across it.
    Cleared(&'static str),
}

impl Batch {
    /// Runs one operation in the batch. If it fails (or panics) everything it wrote is undone
    /// and its error returned; the rest of the batch is untouched. `Err` from the rollback
    /// itself means the batch can no longer be trusted and must be dropped.
    pub(crate) fn run<T>(
        &mut self,
        op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T>,
    ) -> std::result::Result<Result<T>, Error> {
        let mark = self.undo.len();
        let Batch {
            tx,
            sealer,
            undo,
            seqs,
            ..
        } = self;
        tx.with_dependent(|_, open| {
            let out = {
                let mut w = WriteTx {
                    open,
                    sealer,
                    undo: &mut *undo,
                    seqs,
                };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut w)))
                    .unwrap_or_else(|_| Err(Error::Internal("operation panicked".into())))
            };
            if out.is_err() {
                rollback_to(open, undo, mark)?;
            }
            Ok(out)
        })
    }

    /// Makes every change durable (fsync, unless the database was opened for speed over
    /// durability) and visible to new readers.
    pub(crate) fn commit(self) -> Result<()> {
        let stored = self
            .tx
            .with_dependent(|_, open| store_sequences(open, &self.seqs));
        // The table handles go first: a transaction commits once they are closed.
        let outcome = stored.and_then(|()| Ok(self.tx.into_owner().commit()?));
        // Even a failed commit may have changed what redb shows: readers start afresh.
        self.snapshot.invalidate();
        outcome
    }
}

/// Writes the last value of every sequence the batch advanced.
fn store_sequences(open: &OpenTables<'_>, seqs: &[(String, u64)]) -> Result<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    let mut t = open.get(tables::SEQUENCES.name())?.borrow_mut();
    for (name, last) in seqs {
        let key = Key::new().str(name);
        t.insert(key.as_bytes(), codec::encode(last)?.as_slice())?;
    }
    Ok(())
}

/// Undoes every change recorded after `mark`, newest first.
fn rollback_to(open: &OpenTables<'_>, undo: &mut Vec<Undo>, mark: usize) -> Result<()> {
    while undo.len() > mark {
        let Some(u) = undo.pop() else { break };
        let (table, key, old) = match u {
            Undo::Row { table, key, old } => (table, key, old),
            Undo::Cleared(table) => {
                return Err(Error::Storage(format!(
                    "cannot roll back an operation that emptied table {table}"
                )));
            }
        };
        let mut table = open.get(table)?.borrow_mut();
        match old {
            Some(old) => {
                table.insert(key.as_slice(), old.as_slice())?;
            }
            None => {
                table.remove(key.as_slice())?;
            }
        }
    }
    Ok(())
}

type RawTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// The tables a batch has opened, each at most once (see [`Batch`]). One slot per table of
/// [`tables::ALL`]; a slot is filled through `&self`, so reads cache handles too, and a scan of
/// one table never blocks opening another.
struct OpenTables<'t> {
    tx: &'t redb::WriteTransaction,
    slots: Vec<std::cell::OnceCell<std::cell::RefCell<RawTable<'t>>>>,
}

impl<'t> OpenTables<'t> {
    fn new(tx: &'t redb::WriteTransaction) -> Self {
        OpenTables {
            tx,
            slots: (0..tables::ALL.len())
                .map(|_| std::cell::OnceCell::new())
                .collect(),
        }
    }

    /// The open handle of `table`, opening it on first use.
    fn get(&self, table: &'static str) -> Result<&std::cell::RefCell<RawTable<'t>>> {
        let slot = &self.slots[slot_of(table)?];
        if let Some(t) = slot.get() {
            return Ok(t);
        }
        let t = self.tx.open_table(Raw::new(table))?;
        Ok(slot.get_or_init(|| std::cell::RefCell::new(t)))
    }
}

/// The position of `table` in [`tables::ALL`]. Looked up on every table access, so the map
/// hashes with FNV-1a rather than the default SipHash (the keys are a few fixed short names;
/// collision resistance buys nothing here).
fn slot_of(table: &'static str) -> Result<usize> {
    type Fnv = std::hash::BuildHasherDefault<Fnv1a>;
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, usize, Fnv>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            tables::ALL
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, i))
                .collect()
        })
        .get(table)
        .copied()
        .ok_or_else(|| Error::Internal(format!("unknown table {table}")))
}

/// FNV-1a, 64 bits.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One operation's view of the write transaction: reads, writes and an undo log entry for
/// every write. Made by [`Batch::run`]; domain operations take `&mut WriteTx`.
pub struct WriteTx<'a, 't> {
    open: &'a OpenTables<'t>,
    sealer: &'a Sealer,
    undo: &'a mut Vec<Undo>,
    seqs: &'a mut Vec<(String, u64)>,
}

impl WriteTx<'_, '_> {
    fn raw_insert(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        let old = self
            .open
            .get(table)?
            .borrow_mut()
            .insert(key, value)?
            .map(|g| g.value().to_vec());
        self.undo.push(Undo::Row {
            table,
            key: key.to_vec(),
            old,
        });
        Ok(())
    }

    fn raw_remove(&mut self, table: &'static str, key: &[u8]) -> Result<bool> {
        let old = self
            .open
            .get(table)?
            .borrow_mut()
            .remove(key)?
            .map(|g| g.value().to_vec());
        let existed = old.is_some();
        if existed {
            self.undo.push(Undo::Row {
                table,
                key: key.to_vec(),
                old,
            });
        }
        Ok(existed)
    }

    /// Test-only: stores raw bytes (to plant undecodable rows for the checker's tests).
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
    pub(crate) fn put<R: Record>(&mut self, t: &Table<R>, key: &Key, value: &R) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.raw_insert(t.name, key.as_bytes(), &bytes)
    }

    /// Stores `value` under `key` like [`WriteTx::put`] and returns the record it replaced.
    pub(crate) fn replace<R: Record>(
        &mut self,
        t: &Table<R>,
        key: &Key,
        value: &R,
    ) -> Result<Option<R>> {
        self.put(t, key, value)?;
        // The previous value is the one `raw_insert` just logged for undo.
        match self.undo.last() {
            Some(Undo::Row {
                old: Some(bytes), ..
            }) => codec::decode(bytes).map(Some),
            _ => Ok(None),
        }
    }

    /// Stores `value` under `key` unless the key exists; returns whether it was inserted.
    pub(crate) fn insert_new<R: Record>(
        &mut self,
        t: &Table<R>,
        key: &Key,
        value: &R,
    ) -> Result<bool> {
        if self.get_raw(t.name, key.as_bytes())?.is_some() {
            return Ok(false);
        }
        self.put(t, key, value)?;
        Ok(true)
    }

    /// Removes `key`; returns whether it existed.
    pub(crate) fn delete<R>(&mut self, t: &Table<R>, key: &Key) -> Result<bool> {
        self.raw_remove(t.name, key.as_bytes())
    }

    /// Removes every key that starts with `prefix`; returns how many were removed.
    pub(crate) fn delete_prefix<R>(&mut self, t: &Table<R>, prefix: &Key) -> Result<usize> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let p = prefix.as_bytes();
        self.scan_raw(
            t.name,
            Bound::Included(p),
            Bound::Unbounded,
            Order::Asc,
            &mut |k, _| {
                if !k.starts_with(p) {
                    return Ok(Flow::Stop);
                }
                keys.push(k.to_vec());
                Ok(Flow::Continue)
            },
        )?;
        for k in &keys {
            self.raw_remove(t.name, k)?;
        }
        Ok(keys.len())
    }

    /// Removes every row of `t` without copying them into the undo log (a table of millions
    /// of rows would otherwise be held in memory twice). The batch can no longer be rolled
    /// back to before this call: if this operation then fails, the whole batch is dropped
    /// uncommitted. Meant for the layout upgrade in the opening transaction, where that is
    /// what a failure does anyway.
    pub(crate) fn clear_unlogged<R>(&mut self, t: &Table<R>) -> Result<()> {
        let mut table = self.open.get(t.name)?.borrow_mut();
        if table.len()? > 0 {
            table.retain(|_, _| false)?;
        }
        drop(table);
        self.undo.push(Undo::Cleared(t.name));
        Ok(())
    }

    /// The next value of the database-wide sequence `name` (the first is 1). Values only
    /// grow; an operation that fails leaves a gap rather than giving its values back.
    ///
    /// The counter lives in the batch and is written to the sequences table once, when the
    /// batch commits: a row rewritten by every operation of a batch would cost each of them a
    /// read and a write for nothing.
    pub(crate) fn next_seq(&mut self, name: &str) -> Result<u64> {
        if let Some((_, last)) = self.seqs.iter_mut().find(|(n, _)| n == name) {
            *last += 1;
            return Ok(*last);
        }
        let stored = self
            .get(&tables::SEQUENCES, &Key::new().str(name))?
            .unwrap_or(0);
        self.seqs.push((name.to_owned(), stored + 1));
        Ok(stored + 1)
    }
}

/// A visitor of raw rows during a scan.
pub(crate) type RawVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<Flow> + 'a;

type RawItem<'a> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

/// Read access shared by [`ReadTx`] and [`WriteTx`].
pub(crate) trait Reader {
    /// The sealer of ids of this database ([`crate::ids::Sealer`]).
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

    /// The raw bytes stored under `key`.
    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits rows with keys in `(lo, hi)` in `order`, until the visitor says stop.
    fn scan_raw(
        &self,
        table: &'static str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()>;

    /// The record stored under `key`.
    fn get<R: Record>(&self, t: &Table<R>, key: &Key) -> Result<Option<R>>
    where
        Self: Sized,
    {
        match self.get_raw(t.name, key.as_bytes())? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether `key` exists.
    fn contains<R>(&self, t: &Table<R>, key: &Key) -> Result<bool>
    where
        Self: Sized,
    {
        Ok(self.get_raw(t.name, key.as_bytes())?.is_some())
    }

    /// Visits the records whose key starts with `prefix`, in `order`.
    fn scan<R: Record>(
        &self,
        t: &Table<R>,
        prefix: &Key,
        order: Order,
        mut visit: impl FnMut(&[u8], R) -> Result<Flow>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        self.scan_range(t, prefix, None, None, order, &mut visit)
    }

    /// Visits the records under `prefix` whose key lies in `[from, to)` (either bound optional,
    /// both full keys that start with `prefix`), in `order`.
    fn scan_range<R: Record>(
        &self,
        t: &Table<R>,
        prefix: &Key,
        from: Option<&Key>,
        to: Option<&Key>,
        order: Order,
        visit: &mut dyn FnMut(&[u8], R) -> Result<Flow>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        let lo = from.map_or(Bound::Unbounded, |k| Bound::Included(k.as_bytes()));
        let hi = to.map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_bytes()));
        self.scan_prefix_raw(t.name, prefix.as_bytes(), lo, hi, order, &mut |k, v| {
            visit(k, codec::decode(v)?)
        })
    }

    /// Visits the raw rows of `table` under `prefix` whose key lies within (`lo`, `hi`), in
    /// `order`, until the visitor says stop; an unbounded side is the prefix's own end, and no
    /// row outside the prefix is visited.
    fn scan_prefix_raw(
        &self,
        table: &'static str,
        prefix: &[u8],
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        let succ = key::successor(prefix);
        let lo = match lo {
            Bound::Unbounded => Bound::Included(prefix),
            b => b,
        };
        let hi = match (hi, succ.as_deref()) {
            (Bound::Unbounded, Some(s)) => Bound::Excluded(s),
            (b, _) => b,
        };
        self.scan_raw(table, lo, hi, order, &mut |k, v| {
            if !k.starts_with(prefix) {
                return Ok(Flow::Stop);
            }
            visit(k, v)
        })
    }

    /// Collects the records under `prefix` (at most `limit`, after skipping `offset`).
    fn list<R: Record>(
        &self,
        t: &Table<R>,
        prefix: &Key,
        order: Order,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<R>>
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

fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    order: Order,
    visit: &mut RawVisitor<'_>,
) -> Result<()> {
    let range = table.range::<&[u8]>((lo, hi))?;
    let mut step = |item: RawItem<'_>| -> Result<Flow> {
        let (k, v) = item?;
        visit(k.value(), v.value())
    };
    match order {
        Order::Asc => {
            for item in range {
                if let Flow::Stop = step(item)? {
                    break;
                }
            }
        }
        Order::Desc => {
            for item in range.rev() {
                if let Flow::Stop = step(item)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

impl ReadTx {
    /// Number of rows in `table`.
    pub(crate) fn count(&self, table: &'static str) -> Result<u64> {
        let t = self.tx.open_table(Raw::new(table))?;
        Ok(t.len()?)
    }

    /// The bytes every table's keys and values take, with the keys of their inner tree pages
    /// (redb's `stored_bytes` + `metadata_bytes`): what grows with the data, without free or
    /// fragmented space.
    pub(crate) fn stored_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for name in tables::ALL {
            let stats = self.tx.open_table(Raw::new(name))?.stats()?;
            total += stats.stored_bytes() + stats.metadata_bytes();
        }
        Ok(total)
    }

    /// Copies every table as it is in this snapshot into a new database file at `path` (which
    /// must not exist yet), then closes that file. The copy is consistent: it is one read
    /// transaction, so concurrent writers neither block it nor show through. Returns the rows
    /// copied. (The one snapshot implementation: [`Store::backup`], `bespin backup`, the console
    /// download and `GET /v1/admin/backup` all come here.)
    pub(crate) fn copy_into(&self, path: &Path) -> Result<u64> {
        crate::files::ensure_private_file(path).map_err(|e| {
            Error::Storage(format!("backup: cannot create {}: {e}", path.display()))
        })?;
        let dest = redb::Database::create(path)?;
        let w = dest.begin_write()?;
        let mut rows = 0u64;
        for name in tables::ALL {
            let src = self.tx.open_table(Raw::new(name))?;
            let mut dst = w.open_table(Raw::new(name))?;
            for row in src.iter()? {
                let (k, v) = row?;
                dst.insert(k.value(), v.value())?;
                rows += 1;
            }
        }
        w.commit()?;
        Ok(rows)
    }
}

impl ReadTx {
    /// The open handle of `table`, opening it on first use.
    fn table(
        &self,
        table: &'static str,
    ) -> Result<&redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        let slot = &self.open[slot_of(table)?];
        if let Some(t) = slot.get() {
            return Ok(t);
        }
        let t = self.tx.open_table(Raw::new(table))?;
        Ok(slot.get_or_init(|| t))
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
        if !matches!(outcome, Err(Error::Storage(_)) | Err(Error::Internal(_))) {
            self.remembered
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, outcome.clone());
        }
        outcome
    }

    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table(table)?.get(key)?.map(|g| g.value().to_vec()))
    }

    fn scan_raw(
        &self,
        table: &'static str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        scan_table(self.table(table)?, lo, hi, order, visit)
    }
}

impl Reader for WriteTx<'_, '_> {
    fn sealer(&self) -> &Sealer {
        self.sealer
    }

    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = self.open.get(table)?.borrow();
        Ok(t.get(key)?.map(|g| g.value().to_vec()))
    }

    fn scan_raw(
        &self,
        table: &'static str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        let t = self.open.get(table)?.borrow();
        scan_table(&*t, lo, hi, order, visit)
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.to_string())
            }
        }
    )*};
}
storage_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn next(b: &mut Batch, name: &str) -> u64 {
        b.run(|tx| tx.next_seq(name)).unwrap().unwrap()
    }

    #[test]
    fn sequences_grow_across_batches_failures_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq.redb");
        {
            let store = Store::open(&path, 1 << 20).unwrap();
            let mut b = store.begin(true).unwrap();
            assert_eq!(
                (next(&mut b, "a"), next(&mut b, "a"), next(&mut b, "b")),
                (1, 2, 1)
            );
            // A failing operation gives nothing back: the next value skips what it took.
            let failed: Result<u64> = b
                .run(|tx| {
                    tx.next_seq("a")?;
                    Err(Error::Conflict("no".into()))
                })
                .unwrap();
            assert!(failed.is_err());
            assert_eq!(next(&mut b, "a"), 4);
            b.commit().unwrap();
            let mut b = store.begin(true).unwrap();
            assert_eq!(next(&mut b, "a"), 5);
            // A batch dropped without commit stores nothing.
            drop(b);
            let mut b = store.begin(true).unwrap();
            assert_eq!(next(&mut b, "a"), 5);
            b.commit().unwrap();
        }
        let store = Store::open(&path, 1 << 20).unwrap();
        let mut b = store.begin(true).unwrap();
        assert_eq!((next(&mut b, "a"), next(&mut b, "b")), (6, 2));
        let stored: Option<u64> = store
            .read()
            .unwrap()
            .get(&tables::SEQUENCES, &Key::new().str("a"))
            .unwrap();
        assert_eq!(stored, Some(5));
    }
}
