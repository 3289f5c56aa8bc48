//! What a storage backend must provide: the raw interface behind [`super::Store`].
//!
//! A backend stores byte rows in named tables, each ordered by key. Everything typed — keys,
//! records, prefixes — and everything the write path needs beyond one transaction — the undo
//! log and per-operation rollback, group commit, the shared snapshot and its read-your-writes
//! rule, the secret store, backup — lives above this seam, written once for every backend.
//!
//! A backend is opened with the list of every table (from the crate's registry) and creates
//! the ones it lacks. Tables are named by [`TableId`]: its position in that list (a backend may
//! cache per-table handles by it) and its name.
//!
//! The contract (`store/tests.rs` holds a backend to it through [`super::Store`]; a second
//! backend runs the same tests):
//! - **Snapshots** ([`Snapshot`]) see exactly the state after one commit, for as long as they
//!   live, whatever commits meanwhile; many may be open and shared by threads. The state is
//!   that of the last commit before the snapshot's first read (redb takes it when it is made,
//!   PostgreSQL at its first statement): never older than the snapshot.
//! - **A batch** ([`WriteBatch`]) is one write transaction: its reads see its own writes;
//!   `put` and `remove` return the value they replaced (the undo log keeps it); nothing of it is
//!   visible to anyone else before `commit`, and dropping it uncommitted discards all of it.
//!   One batch is open at a time ([`Backend::begin`] waits for the previous one).
//! - **Scans** visit the rows with keys in a range, in either order, until the visitor says
//!   stop; a backend must not read far past the stop (range scans are how every list pages).
//! - **Sequences** ([`WriteBatch::next_seq`]) only grow, across batches and reopening; values a
//!   batch takes and then drops may be skipped, never given twice.

use super::{Flow, Order};
use crate::error::Result;
use std::ops::Bound;

/// A table as a backend sees it: its position in the list the backend was opened with, and
/// its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableId {
    /// The position in the table list.
    pub slot: usize,
    /// The stored name.
    pub name: &'static str,
    /// Whether a write batch memoises its reads ([`super::Table::memo`]).
    pub memo: bool,
}

/// A visitor of raw rows (key, value) during a scan.
pub(crate) type RawVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<Flow> + 'a;

/// What [`Backend::snapshot_later`] hands the snapshot to.
pub(crate) type SnapshotLater = Box<dyn FnOnce(Result<Box<dyn Snapshot>>) + Send>;

/// An open database.
pub(crate) trait Backend: Send + Sync {
    /// A snapshot of the last commit.
    fn snapshot(&self) -> Result<Box<dyn Snapshot>>;

    /// Begins the one write transaction (waits while another is open). With `durable`
    /// false, its commit may skip flushing to disk.
    fn begin(&self, durable: bool) -> Result<Box<dyn WriteBatch>>;

    /// The bytes the database takes on disk (`None` when it is not a file).
    fn file_size(&self) -> Option<u64>;

    /// Whether one snapshot may serve every reader until this process's next commit (true
    /// when this process is the database's only writer, as on redb). A backend shared with
    /// other processes answers false: each read then takes a snapshot of its own, so it sees
    /// their commits too.
    fn shares_snapshots(&self) -> bool {
        true
    }

    /// Round trips to a database server so far (`None` for an embedded backend).
    fn round_trips(&self) -> Option<u64> {
        None
    }

    /// Whether [`Backend::snapshot_later`] serves a snapshot now without a thread of the
    /// caller's waiting for it (a hint: the answer may change at once).
    fn snapshots_later(&self) -> bool {
        false
    }

    /// Hands `done` a snapshot taken after this call — at once, or from a thread of the
    /// backend's once its round trip returned — so that the calling thread need not wait for
    /// it. The default: at once, [`Backend::snapshot`].
    fn snapshot_later(&self, done: SnapshotLater) {
        done(self.snapshot())
    }

    #[cfg(test)]
    /// Bytes of rows and pages a database server's backend keeps in memory now (`None` for
    /// an embedded backend).
    fn cached_bytes(&self) -> Option<usize> {
        None
    }

    /// Read connections to a database server held by snapshots now, not idle in a pool
    /// (`None` for an embedded backend).
    fn reads_held(&self) -> Option<usize> {
        None
    }

    /// Starts telling `on` about the commits of other processes sharing the database that
    /// announced news ([`WriteBatch::announce`]), for as long as the database is open. A
    /// backend without other processes (redb) never calls it.
    fn watch_others(&self, on: OnOthersCommit) -> Result<()> {
        drop(on);
        Ok(())
    }

    /// Whether another process may commit news now without `on` being told (not watched yet,
    /// or the watch is down and reconnecting): the caller then falls back to polling. False
    /// for a backend no other process writes to.
    fn misses_others(&self) -> bool {
        false
    }
}

/// What [`Backend::watch_others`] calls: with the topics another process's commit announced,
/// or `None` when any topic may have news (several were lost, e.g. while the watch
/// reconnected). Called on the backend's own thread: it must return quickly.
pub(crate) type OnOthersCommit = Box<dyn Fn(Option<&[&str]>) + Send + Sync>;

/// The reads of a snapshot and of a write batch (which sees its own writes).
pub(crate) trait Reads {
    /// The value stored under `key`.
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the rows with keys within (`lo`, `hi`) in `order` until the visitor says stop.
    fn scan(
        &self,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()>;
}

/// Reads of one consistent state, shared by the threads reading it.
pub(crate) trait Snapshot: Reads + Send + Sync {
    /// The number of rows of `t`.
    fn count(&self, t: TableId) -> Result<u64>;

    /// The bytes the rows of `tables` take (keys, values and the keys of inner tree pages,
    /// without free space): what grows with the data alone.
    fn stored_bytes(&self, tables: &[TableId]) -> Result<u64>;
}

/// What a write replaced, as far as the batch knows it.
#[derive(Debug)]
pub(crate) enum Prior {
    /// The value it replaced (`None`: the key was absent).
    Was(Option<Vec<u8>>),
    /// Not known: the batch had neither read nor written the key, and the write was asked not
    /// to read it (a backend over a network spares the round trip). Undone by
    /// [`WriteBatch::forget`].
    Unread,
}

/// The write transaction of one batch of operations; its reads see its own writes.
pub(crate) trait WriteBatch: Reads + Send {
    /// Stores `value` under `key`; returns what it replaced. With `want_old` false a backend
    /// may answer [`Prior::Unread`] instead of reading the old value (redb always knows it).
    fn put(&mut self, t: TableId, key: &[u8], value: &[u8], want_old: bool) -> Result<Prior>;

    /// Undoes a write that answered [`Prior::Unread`]: the key shows again what the database
    /// held before the batch touched it.
    fn forget(&mut self, t: TableId, key: &[u8]) -> Result<()> {
        let _ = key;
        Err(crate::error::Error::Internal(format!(
            "a write to {} cannot be undone without its old value",
            t.name
        )))
    }

    /// Reads the rows of `keys` the batch does not know yet, so that its later reads and
    /// writes of them need the database no more: for a backend over a network, one round trip
    /// for many keys instead of one each. An embedded backend has nothing to gain (the
    /// default does nothing).
    fn prefetch(&self, t: TableId, keys: &[&[u8]]) -> Result<()> {
        let _ = (t, keys);
        Ok(())
    }

    /// Whether [`WriteBatch::prefetch`] saves anything (a backend over a network): callers
    /// skip preparing the keys otherwise.
    fn prefetches(&self) -> bool {
        false
    }

    /// Removes `key`; returns the value it held.
    fn remove(&mut self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Removes every row of `t`, returning none of them (for tables too large to hold in
    /// memory; the batch cannot be rolled back across it).
    fn clear(&mut self, t: TableId) -> Result<()>;

    /// The next value of the database-wide sequence `name` (the first is 1).
    fn next_seq(&mut self, name: &str) -> Result<u64>;

    /// Makes every change of the batch durable (unless begun not durable) and visible.
    fn commit(self: Box<Self>) -> Result<()>;

    /// Asks the commit to tell the other processes sharing the database that it holds news
    /// for `topics` (seen by their [`Backend::watch_others`]), atomically with it: they are
    /// told if and only if it commits. Without other processes (redb), nothing to do.
    fn announce(&mut self, topics: &[String]) {
        let _ = topics;
    }
}

/// The database-wide sequences a write batch advanced, counted in the batch and stored once at
/// its commit (under the batch's exclusivity: redb's single writer, PostgreSQL's write lock), so
/// a batch of many operations reads each sequence once and writes it once. Shared by every
/// backend's batch.
#[derive(Debug, Default)]
pub(crate) struct BatchSequences {
    /// Each sequence advanced so far and its last value.
    last: Vec<(String, u64)>,
}

impl BatchSequences {
    /// The next value of `name`: one more than its last value in this batch, or than what
    /// `stored` reads from the sequences table under [`seq_key`] (0 if absent) the first time.
    pub(crate) fn next(
        &mut self,
        name: &str,
        stored: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>>,
    ) -> Result<u64> {
        if let Some((_, last)) = self.last.iter_mut().find(|(n, _)| n == name) {
            *last += 1;
            return Ok(*last);
        }
        let stored = match stored(&seq_key(name))? {
            Some(bytes) => super::codec::decode::<u64>(&bytes)?,
            None => 0,
        };
        self.last.push((name.to_owned(), stored + 1));
        Ok(stored + 1)
    }

    /// The rows to store at commit (key and encoded last value of every advanced sequence),
    /// leaving the counter empty.
    pub(crate) fn take_rows(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        std::mem::take(&mut self.last)
            .into_iter()
            .map(|(name, last)| Ok((seq_key(&name), super::codec::encode(&last)?)))
            .collect()
    }
}

/// The key of sequence `name` in the sequences table (one string part).
pub(crate) fn seq_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 2);
    super::key::parts::put_str(name, &mut k);
    k
}
