//! The redb backend: one file (or memory), one B-tree per table.
//!
//! Tables are opened at most once per snapshot and once per batch, by their position in the
//! table list: opening one is a lookup in redb's table tree, and a batch of fifty operations
//! touching a dozen tables each would otherwise open six hundred. Sequences are counted in the
//! batch and stored once, at its commit: a row rewritten by every operation of a batch would
//! cost each of them a read and a write for nothing.

use super::backend::{
    Backend, BatchSequences, Prior, RawVisitor, Reads, Snapshot, TableId, WriteBatch,
};
use super::codec::{self, Record};
use super::table::{KeyDef, Table};
use super::{Flow, Order};
use crate::error::{Error, Result};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::cell::{OnceCell, RefCell};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

type Raw = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// A redb database.
pub(crate) struct Redb {
    db: redb::Database,
    path: Option<PathBuf>,
    tables: usize,
    /// Where sequences are stored (name → last value).
    sequences: TableId,
}

impl Redb {
    /// Opens (creating if needed, mode 0600) the file at `path` and creates the tables it
    /// lacks. `sequences` is the table sequences are stored in.
    pub(crate) fn open(
        path: &Path,
        cache_bytes: usize,
        tables: &[TableId],
        sequences: TableId,
    ) -> Result<Redb> {
        crate::files::ensure_private_file(path)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", path.display())))?;
        let db = redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        Self::init(db, Some(path.to_path_buf()), tables, sequences)
    }

    /// A database held in memory only.
    pub(crate) fn in_memory(tables: &[TableId], sequences: TableId) -> Result<Redb> {
        let db =
            redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db, None, tables, sequences)
    }

    /// A new file at `path` (which must not exist; created mode 0600), for a copy.
    pub(crate) fn create_new(path: &Path, tables: &[TableId], sequences: TableId) -> Result<Redb> {
        crate::files::ensure_private_file(path).map_err(|e| {
            Error::Storage(format!("backup: cannot create {}: {e}", path.display()))
        })?;
        let db = redb::Database::create(path)?;
        Self::init(db, Some(path.to_path_buf()), tables, sequences)
    }

    fn init(
        db: redb::Database,
        path: Option<PathBuf>,
        tables: &[TableId],
        sequences: TableId,
    ) -> Result<Redb> {
        let tx = db.begin_write()?;
        for t in tables {
            tx.open_table(Raw::new(t.name))?;
        }
        tx.commit()?;
        Ok(Redb {
            db,
            path,
            tables: tables.len(),
            sequences,
        })
    }
}

impl Backend for Redb {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(RedbSnapshot {
            tx: self.db.begin_read()?,
            open: (0..self.tables).map(|_| OnceLock::new()).collect(),
        }))
    }

    fn begin(&self, durable: bool) -> Result<Box<dyn WriteBatch>> {
        let mut tx = self.db.begin_write()?;
        if !durable {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| Error::Storage(e.to_string()))?;
        }
        let n = self.tables;
        Ok(Box::new(RedbBatch {
            tx: TxTables::new(tx, |tx| OpenTables::new(tx, n)),
            seqs: BatchSequences::default(),
            sequences: self.sequences,
        }))
    }

    fn file_size(&self) -> Option<u64> {
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    }
}

/// A read transaction and the tables opened in it, shared by every thread reading it.
struct RedbSnapshot {
    tx: redb::ReadTransaction,
    open: Vec<OnceLock<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>>,
}

impl RedbSnapshot {
    /// The open handle of `t`, opening it on first use.
    fn table(&self, t: TableId) -> Result<&redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        let slot = self.open.get(t.slot).ok_or_else(|| unknown(t))?;
        if let Some(h) = slot.get() {
            return Ok(h);
        }
        let h = self.tx.open_table(Raw::new(t.name))?;
        Ok(slot.get_or_init(|| h))
    }
}

fn unknown(t: TableId) -> Error {
    Error::Internal(format!("table {} was not opened", t.name))
}

impl Reads for RedbSnapshot {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table(t)?.get(key)?.map(|g| g.value().to_vec()))
    }

    fn scan(
        &self,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        scan_table(self.table(t)?, lo, hi, order, visit)
    }
}

impl Snapshot for RedbSnapshot {
    fn count(&self, t: TableId) -> Result<u64> {
        Ok(self.table(t)?.len()?)
    }

    fn stored_bytes(&self, tables: &[TableId]) -> Result<u64> {
        let mut total = 0;
        for t in tables {
            let stats = self.table(*t)?.stats()?;
            total += stats.stored_bytes() + stats.metadata_bytes();
        }
        Ok(total)
    }
}

type RawTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// The tables a batch has opened, each at most once. A slot is filled through `&self`, so
/// reads cache handles too, and a scan of one table never blocks opening another.
struct OpenTables<'t> {
    tx: &'t redb::WriteTransaction,
    slots: Vec<OnceCell<RefCell<RawTable<'t>>>>,
}

impl<'t> OpenTables<'t> {
    fn new(tx: &'t redb::WriteTransaction, n: usize) -> Self {
        OpenTables {
            tx,
            slots: (0..n).map(|_| OnceCell::new()).collect(),
        }
    }

    /// The open handle of `t`, opening it on first use.
    fn get(&self, t: TableId) -> Result<&RefCell<RawTable<'t>>> {
        let slot = self.slots.get(t.slot).ok_or_else(|| unknown(t))?;
        if let Some(h) = slot.get() {
            return Ok(h);
        }
        let h = self.tx.open_table(Raw::new(t.name))?;
        Ok(slot.get_or_init(|| RefCell::new(h)))
    }
}

self_cell::self_cell!(
    /// The write transaction and the handles of the tables opened in it.
    struct TxTables {
        owner: redb::WriteTransaction,
        #[not_covariant]
        dependent: OpenTables,
    }
);

/// The write transaction of a batch.
struct RedbBatch {
    tx: TxTables,
    /// The sequences advanced in this batch, stored once at commit.
    seqs: BatchSequences,
    sequences: TableId,
}

impl Reads for RedbBatch {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tx.with_dependent(|_, open| {
            let h = open.get(t)?.borrow();
            Ok(h.get(key)?.map(|g| g.value().to_vec()))
        })
    }

    fn scan(
        &self,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        self.tx.with_dependent(|_, open| {
            let h = open.get(t)?.borrow();
            scan_table(&*h, lo, hi, order, visit)
        })
    }
}

impl WriteBatch for RedbBatch {
    fn put(&mut self, t: TableId, key: &[u8], value: &[u8], _want_old: bool) -> Result<Prior> {
        // redb finds the old value on the way to the insert: it is always known.
        self.tx.with_dependent(|_, open| {
            let mut h = open.get(t)?.borrow_mut();
            Ok(Prior::Was(
                h.insert(key, value)?.map(|g| g.value().to_vec()),
            ))
        })
    }

    fn remove(&mut self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tx.with_dependent(|_, open| {
            let mut h = open.get(t)?.borrow_mut();
            Ok(h.remove(key)?.map(|g| g.value().to_vec()))
        })
    }

    fn clear(&mut self, t: TableId) -> Result<()> {
        self.tx.with_dependent(|_, open| {
            let mut h = open.get(t)?.borrow_mut();
            if h.len()? > 0 {
                h.retain(|_, _| false)?;
            }
            Ok(())
        })
    }

    fn next_seq(&mut self, name: &str) -> Result<u64> {
        let mut seqs = std::mem::take(&mut self.seqs);
        let next = seqs.next(name, |key| self.get(self.sequences, key));
        self.seqs = seqs;
        next
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let RedbBatch {
            tx,
            mut seqs,
            sequences,
        } = *self;
        let rows = seqs.take_rows()?;
        tx.with_dependent(|_, open| -> Result<()> {
            if rows.is_empty() {
                return Ok(());
            }
            let mut h = open.get(sequences)?.borrow_mut();
            for (key, value) in &rows {
                h.insert(key.as_slice(), value.as_slice())?;
            }
            Ok(())
        })?;
        // The table handles go first: a transaction commits once they are closed.
        Ok(tx.into_owner().commit()?)
    }
}

type RawItem<'a> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

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
    pub(crate) fn get<K: KeyDef, V: Record>(
        &self,
        table: &Table<K, V>,
        key: &K::Of<'_>,
    ) -> Result<Option<V>> {
        let t = match self.tx.open_table(Raw::new(table.name())) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut k = Vec::with_capacity(96);
        K::encode(key, &mut k);
        t.get(k.as_slice())?
            .map(|g| codec::decode(g.value()))
            .transpose()
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
