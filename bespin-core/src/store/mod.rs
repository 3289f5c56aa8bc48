//! The storage seam: the only module that names a storage engine.
//!
//! Domain code speaks in typed tables ([`Table<K, V>`]: a key type `K` declared with
//! [`key!`](crate::store::key) and a record type `V`), typed [`Prefix`]es for scans, and two
//! transaction types: [`ReadTx`] (a consistent snapshot) and [`WriteTx`] (one operation's view
//! of the single writer). Both implement [`Reader`], so read logic written once runs inside
//! either. Values are records encoded by [`codec`] with a leading version byte. This module
//! imports no domain type: each domain module declares its own tables, and the crate's
//! registry (`schema.rs`) hands the list of all of them to [`Store::open`].
//!
//! Below the typed layer is a narrow raw interface, [`backend`]: what a storage engine must
//! provide — snapshot reads, one write transaction per batch whose writes return what they
//! replaced, ordered range scans both ways with early stop, sequences — written as traits.
//! [`redb`] implements it on one redb file. Everything else is written once, above it:
//!
//! - `snapshot.rs`: [`ReadTx`], and the slot sharing one snapshot among every reader until the
//!   next commit (so an acknowledged write is always read back);
//! - `batch.rs`: [`Batch`] (the operations of one group commit in one write transaction),
//!   [`WriteTx`] and the undo log that rolls a failed operation back alone;
//! - `overlay.rs`: what a batch keeps beside the backend's transaction — rows held until the
//!   commit ([`WriteTx::put_held`]) and the memo of configuration reads ([`Table::memo`],
//!   [`remember`]);
//! - `reader.rs`: [`Reader`], typed gets and scans over either;
//! - `table.rs`, `key.rs`: typed tables and keys, the layout of every key as data;
//! - `slots.rs`: the table list and the lookup of a table by name;
//! - `seal.rs`: [`Sealer`], which turns record positions into ids and back;
//! - here: [`Store`] (opening, the secret store, backup by logical export and import) and the
//!   store's own tables (sequences, secrets).

mod backend;
mod batch;
pub(crate) mod codec;
mod key;
mod overlay;
mod postgres;
mod reader;
mod redb;
mod seal;
mod slots;
mod snapshot;
mod table;

pub(crate) use backend::TableId;
pub(crate) use batch::Batch;
pub use batch::WriteTx;
pub(crate) use codec::Record;
pub(crate) use key::{
    Id, PartValue, Prefix, ext_ids_as_bytes, parts, read_part, read_parts, successor,
};
pub(crate) use postgres::is_url;
pub(crate) use reader::{Reader, remember, remember_shared};
pub(crate) use redb::ReadOnlyFile;
pub(crate) use seal::Sealer;
pub use snapshot::ReadTx;
pub(crate) use table::{KeyDef, Kind, Part, Show, Shown, Table, TableInfo, key};

use crate::error::{Error, Result};
use backend::{Backend, Snapshot, WriteBatch};
use slots::Slots;
use snapshot::SharedSnapshot;
use std::path::Path;
use std::sync::Arc;

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

key! {
    /// (name): a row of the database itself (a sequence, a secret, a property of the file).
    pub(crate) struct NameKey<'a> { name: str }
}

/// Global: (name) → last value of a sequence ([`WriteTx::next_seq`]).
pub(crate) const SEQUENCES: Table<NameKey<'static>, u64> = Table::new("sequences");

/// Global: (name) → a secret of the database: `ids`, the key of [`Sealer`] (later the audit
/// signing key). Never shown.
pub(crate) const SECRETS: Table<NameKey<'static>, Secret> = Table::new("secrets").secret();

/// The store's own tables, for the registry.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&SEQUENCES, &SECRETS];

/// A secret of the database: 32 random bytes, made with it and never changed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Secret(pub [u8; 32]);
impl Record for Secret {}

/// The name of the id-sealing secret in [`SECRETS`].
pub(crate) const ID_SECRET: &str = "ids";

/// The open database.
pub(crate) struct Store {
    backend: Box<dyn Backend>,
    slots: Arc<Slots>,
    /// Seals record positions into ids with the database's own secret ([`Sealer`]).
    sealer: Arc<Sealer>,
    /// The snapshot of the last commit, shared by every reader until the next commit.
    snapshot: Arc<SharedSnapshot>,
    /// The backend's `shares_snapshots`, asked once (it is on every read's path).
    shares_snapshots: bool,
}

impl Drop for Store {
    fn drop(&mut self) {
        // Close the shared read transaction before the database it reads.
        self.snapshot.invalidate();
    }
}

impl Store {
    /// Opens (creating if needed, mode 0600) the redb file at `path` with the tables of
    /// `tables` (the registry's list; missing ones are created).
    pub(crate) fn open(
        path: &Path,
        cache_bytes: usize,
        tables: &[&'static dyn TableInfo],
    ) -> Result<Store> {
        let slots = Slots::new(tables)?;
        let seq = slots.id(SEQUENCES.name())?;
        let db = redb::Redb::open(path, cache_bytes, slots.ids(), seq)?;
        Self::with(Box::new(db), slots)
    }

    /// Opens the PostgreSQL database of `url` (a `postgres://` URL; see `postgres.rs` for
    /// its parameters), creating the schema and the tables it lacks.
    pub(crate) fn open_url(url: &str, tables: &[&'static dyn TableInfo]) -> Result<Store> {
        let slots = Slots::new(tables)?;
        let seq = slots.id(SEQUENCES.name())?;
        let db = postgres::Postgres::open(url, slots.ids(), seq)?;
        Self::with(Box::new(db), slots)
    }

    /// Whether reads wait on a network round trip, so that a caller on an async runtime
    /// should run them where blocking is allowed: a backend shared with other processes is a
    /// database server's (PostgreSQL).
    pub(crate) fn reads_block(&self) -> bool {
        !self.shares_snapshots
    }

    /// Whether [`Store::read_later`] serves a snapshot now without the caller's thread waiting
    /// (PostgreSQL while its reads share snapshots; a hint).
    pub(crate) fn reads_later(&self) -> bool {
        self.backend.snapshots_later()
    }

    /// Hands `done` a snapshot taken after this call, from a thread of the backend's when its
    /// round trip returns (PostgreSQL), so the caller's thread does not wait for it.
    pub(crate) fn read_later(&self, done: impl FnOnce(Result<Arc<ReadTx>>) + Send + 'static) {
        let (slots, sealer) = (Arc::clone(&self.slots), Arc::clone(&self.sealer));
        self.backend.snapshot_later(Box::new(move |snap| {
            done(snap.map(|s| Arc::new(ReadTx::new(s, slots, sealer))))
        }));
    }

    /// Whether other processes may write to this database too (PostgreSQL): a batch left
    /// open then holds their writes back.
    pub(crate) fn shared_with_others(&self) -> bool {
        !self.shares_snapshots
    }

    /// Round trips to the database server so far (`None` for an embedded backend).
    pub(crate) fn round_trips(&self) -> Option<u64> {
        self.backend.round_trips()
    }

    /// Read connections held by snapshots now (`None` for an embedded backend).
    pub(crate) fn reads_held(&self) -> Option<usize> {
        self.backend.reads_held()
    }

    /// Bytes the row cache of a database server's backend holds now (`None` for an embedded
    /// backend, which reads its file's pages instead).
    #[cfg(test)]
    pub(crate) fn cached_bytes(&self) -> Option<usize> {
        self.backend.cached_bytes()
    }

    /// A database held in memory only (for tests and embedding without persistence).
    pub(crate) fn in_memory(tables: &[&'static dyn TableInfo]) -> Result<Store> {
        let slots = Slots::new(tables)?;
        let seq = slots.id(SEQUENCES.name())?;
        let db = redb::Redb::in_memory(slots.ids(), seq)?;
        Self::with(Box::new(db), slots)
    }

    fn with(backend: Box<dyn Backend>, slots: Slots) -> Result<Store> {
        slots.id(SECRETS.name())?;
        let slots = Arc::new(slots);
        let secret = secret(&*backend, &slots, ID_SECRET)?;
        Ok(Store {
            slots,
            sealer: Arc::new(Sealer::new(&secret.0)),
            snapshot: Arc::default(),
            shares_snapshots: backend.shares_snapshots(),
            backend,
        })
    }

    /// The secret `name` of the database, made (32 random bytes) and stored the first time
    /// it is asked for. Never shown, never changed. (Today only the id sealer's, read at open;
    /// the token sealers of `tokens.rs`.)
    pub(crate) fn secret(&self, name: &str) -> Result<Secret> {
        secret(&*self.backend, &self.slots, name)
    }

    /// Size of the database file in bytes (`None` for an in-memory database).
    pub(crate) fn file_size(&self) -> Option<u64> {
        self.backend.file_size()
    }

    /// Copies every table, as of one snapshot, into a new redb file at `out` (written beside
    /// it as `out.partial`, flushed, then renamed, so `out` is either absent or complete).
    /// Concurrent writers are not blocked: the snapshot is the last commit before the copy
    /// started. Returns the number of rows copied. Refuses an existing `out`. (The one copy:
    /// `bespin backup`, the console download and `GET /v1/admin/backup` all come here.)
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
        let rows = {
            let seq = self.slots.id(SEQUENCES.name())?;
            let dest = redb::Redb::create_new(&partial, self.slots.ids(), seq)?;
            self.copy_into(&dest)?
        };
        std::fs::rename(&partial, out)
            .map_err(|e| Error::Storage(format!("backup: cannot rename into place: {e}")))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(rows)
    }

    /// Copies every table, as of one snapshot, into the PostgreSQL database of `url` (its
    /// schema and tables created when missing), in one transaction, which first checks that
    /// every table there is empty: a restore never mixes into a database in use. The secrets
    /// go along, so every id sealed here reads the same there. Returns the rows copied.
    pub(crate) fn restore_into(&self, url: &str) -> Result<u64> {
        let seq = self.slots.id(SEQUENCES.name())?;
        let dest = postgres::Postgres::open(url, self.slots.ids(), seq)?;
        self.copy_into(&dest)
    }

    /// One snapshot of this store copied into the empty backend `dest`, in one transaction.
    fn copy_into(&self, dest: &dyn Backend) -> Result<u64> {
        let mut into = dest.begin(true)?;
        for t in self.slots.ids() {
            let mut any = false;
            into.scan(
                *t,
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                Order::Asc,
                &mut |_, _| {
                    any = true;
                    Ok(Flow::Stop)
                },
            )?;
            if any {
                return Err(Error::Conflict(
                    "the target database is not empty: a restore writes only into a new one".into(),
                ));
            }
        }
        let rows = copy_rows(self.read()?.backend(), &mut *into, self.slots.ids())?;
        into.commit()?;
        Ok(rows)
    }

    /// A snapshot of the last commit, shared with concurrent readers (see
    /// [`snapshot::SharedSnapshot`]): it reflects every commit that finished before this call.
    pub(crate) fn read(&self) -> Result<Arc<ReadTx>> {
        if !self.shares_snapshots {
            // Other processes commit too: every read takes its own snapshot.
            return Ok(Arc::new(ReadTx::new(
                self.backend.snapshot()?,
                Arc::clone(&self.slots),
                Arc::clone(&self.sealer),
            )));
        }
        if let Some(s) = self.snapshot.current() {
            return Ok(s);
        }
        let mut slot = self.snapshot.lock();
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        // Begun under the lock, so a commit finishing meanwhile waits to empty the slot
        // until this (possibly older) snapshot is in it.
        let fresh = Arc::new(ReadTx::new(
            self.backend.snapshot()?,
            Arc::clone(&self.slots),
            Arc::clone(&self.sealer),
        ));
        *slot = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Starts the write transaction (waits while another one is open) as a batch that
    /// operations run in one after another.
    pub(crate) fn begin(&self, durable: bool) -> Result<Batch> {
        Ok(Batch::new(
            self.backend.begin(durable)?,
            Arc::clone(&self.slots),
            Arc::clone(&self.sealer),
            Arc::clone(&self.snapshot),
            !self.shares_snapshots,
        ))
    }

    /// Calls `on` (on a thread of the backend) whenever another process sharing the database
    /// commits news ([`WriteTx::announce`]): with the topics it announced, or `None` when any
    /// topic may have news (some announcements may have been lost, as while the backend
    /// reconnects). Nothing for a database no other process writes to.
    pub(crate) fn watch_others(&self, on: backend::OnOthersCommit) -> Result<()> {
        self.backend.watch_others(on)
    }

    /// Whether another process may commit news now without [`Store::watch_others`] telling:
    /// the caller should poll the database instead (false without other processes).
    pub(crate) fn misses_others(&self) -> bool {
        self.backend.misses_others()
    }
}

/// Reads the secret `name`, or makes and stores it, in a write transaction of its own (so two
/// processes opening one database together agree on it).
fn secret(backend: &dyn Backend, slots: &Slots, name: &str) -> Result<Secret> {
    let table = slots.id(SECRETS.name())?;
    let key = NameKey::new(name).encode();
    let mut tx = backend.begin(true)?;
    if let Some(bytes) = tx.get(table, &key)? {
        return codec::decode(&bytes);
    }
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let s = Secret(s);
    tx.put(table, &key, &codec::encode(&s)?, false)?;
    tx.commit()?;
    Ok(s)
}

/// The logical export and import of a database: copies every row of `tables` from a
/// snapshot into a write transaction (of any two backends); returns the rows copied.
fn copy_rows(from: &dyn Snapshot, to: &mut dyn WriteBatch, tables: &[TableId]) -> Result<u64> {
    let mut rows = 0u64;
    for t in tables {
        from.scan(
            *t,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            Order::Asc,
            &mut |k, v| {
                to.put(*t, k, v, false)?;
                rows += 1;
                Ok(Flow::Continue)
            },
        )?;
    }
    Ok(rows)
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;
