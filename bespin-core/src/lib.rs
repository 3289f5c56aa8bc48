//! # Bespin core
//!
//! The multi-tenant backend of an "AI co-founder" product as an embeddable library: tenants,
//! users and API keys, roles, plans, credits and entitlements, usage metering, audit, daily
//! limits and idempotent retries, stored in one [redb](https://docs.rs/redb) file.
//!
//! ```
//! use bespin_core::{Bespin, Credentials, tenancy::NewTenant};
//!
//! # fn main() -> bespin_core::Result<()> {
//! let db = Bespin::open_in_memory()?;
//! let t = db.create_tenant(NewTenant {
//!     name: "Acme".into(),
//!     region: "eu-west-1".into(),
//!     admin_email: "ada@acme.example".into(),
//! })?;
//! let me = db.authenticate(&Credentials::new(
//!     Some(&t.tenant_id),
//!     Some(&t.admin.user_id),
//!     Some(&t.api_key),
//! ))?;
//! assert!(me.is_admin());
//! # Ok(())
//! # }
//! ```
//!
//! ## Guarantees
//! - **One operation, one transaction.** Every state-changing operation runs in one redb write
//!   transaction holding all of it: checks, the change, audit row, usage event and rollups, the
//!   idempotency record. A failed check writes nothing. Operations are plain functions over an
//!   open [`WriteTx`], so [`Bespin::transaction`] can commit several with one fsync.
//! - **Tenant isolation by construction.** Every tenant-scoped key starts with the tenant id;
//!   another tenant's record is indistinguishable from a missing one.
//! - **Exact money.** Credits and costs are decimal ([`money::Amount`]); sums never drift.

mod carried;
mod commit;
mod compact;
mod error;
mod nowait;
pub mod op;
mod schema;
mod store;

pub mod audit;
pub mod auth;
pub mod billing;
pub mod briefs;
pub mod chat;
pub mod check;
pub mod console;
pub mod conversations;
pub mod coreos;
pub mod email;
pub mod events;
pub mod files;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod kpis;
pub mod layout;
pub mod limits;
pub mod metering;
pub mod money;
pub mod notifications;
pub mod tenancy;
pub mod time;
pub mod tokens;
pub mod tools;
pub mod validate;
pub mod webhooks;

#[cfg(test)]
mod testutil;

pub use auth::{Credentials, Principal, Role};
pub use carried::RequestSnapshot;
pub use commit::{
    BATCH_SIZE_BUCKETS, COMMIT_SECONDS_BUCKETS, CommitStats, QUEUE_WAIT_SECONDS_BUCKETS,
};
pub use error::{DailyQuotaExceeded, Error, ErrorKind, FieldError, LocPart, QuotaExceeded, Result};
pub use nowait::without_waiting;
pub use op::{Op, Pending};
pub use store::{ReadTx, WriteTx};

use std::path::Path;
use std::sync::Arc;

/// Whether `db` names a database server (a `postgres://` URL) rather than a redb file.
pub fn is_server_url(db: &Path) -> bool {
    db.to_str().is_some_and(store::is_url)
}

/// `db` as it may be shown in logs and messages: a URL without its password.
pub fn shown_db(db: &Path) -> String {
    let text = db.display().to_string();
    if !is_server_url(db) {
        return text;
    }
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &text[s + 3..at];
            match user.split_once(':') {
                Some((name, _)) => format!("{}{name}:***{}", &text[..s + 3], &text[at..]),
                None => text,
            }
        }
        _ => text,
    }
}

/// A URL of a new schema of the PostgreSQL database named by `BESPIN_TEST_DB` (unset or not a
/// `postgres://` URL: `None`, the tests run on redb).
#[cfg(any(test, feature = "testing"))]
pub fn test_database_url() -> Option<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var("BESPIN_TEST_DB").ok()?;
    if !store::is_url(&base) {
        return None;
    }
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!("t{}_{n}_{nanos}", std::process::id());
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}schema={schema}&pool=4"))
}
use time::{Clock, SystemClock, Timestamp};

/// Settings of an open database.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long idempotency records are kept (default 24 h).
    pub idempotency_retention_micros: i64,
    /// Whether each commit is flushed to disk before the operations in it return (default
    /// `true`). `false` trades durability for speed: every operation committed since the last
    /// durable commit can be lost in a crash of the process or the machine (the file itself
    /// stays consistent). Opt-in only; the HTTP server always runs durable.
    pub durable: bool,
    /// The most operations one group commit may hold (default 256).
    pub max_batch: usize,
    /// Size of the page cache in bytes (default 32 MiB). The operating system's page cache
    /// holds the rest of a file; a bigger cache trades memory for fewer reads.
    pub cache_bytes: usize,
    /// The most index entries one search reads (default
    /// [`coreos::search::DEFAULT_MAX_SCAN`]); a search that would read more is refused with
    /// 422 at `["q"]`, so its cost is bounded whatever the tenant stored.
    pub search_max_scan: usize,
    /// The most operations waiting for the writer thread ([`Bespin::submit`]; default 1,024).
    /// An operation submitted while that many wait is refused at once with
    /// `Error::Overloaded`, instead of queueing without end.
    pub writer_queue: usize,
    /// How long events are kept (default 30 days, [`events::DEFAULT_RETENTION_MICROS`]);
    /// older ones are purged in bounded batches, and a cursor older than that is refused
    /// with `Error::CursorExpired` (HTTP 410).
    pub event_retention_micros: i64,
    /// How long an ingested usage event's `(source, id)` is remembered, so that a repeat is
    /// answered as a duplicate (default 32 days,
    /// [`metering::ingest::DEFAULT_DEDUP_RETENTION_MICROS`]; at least a billing period, since
    /// older events are refused anyway).
    pub usage_dedup_retention_micros: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idempotency_retention_micros: 24 * 3600 * 1_000_000,
            durable: true,
            max_batch: 256,
            cache_bytes: 32 * 1024 * 1024,
            search_max_scan: coreos::search::DEFAULT_MAX_SCAN,
            writer_queue: 1024,
            event_retention_micros: events::DEFAULT_RETENTION_MICROS,
            usage_dedup_retention_micros: metering::ingest::DEFAULT_DEDUP_RETENTION_MICROS,
        }
    }
}

/// What an operation knows about its moment: the instant it runs at and the settings.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The instant of the operation (one value for everything it writes).
    pub now: Timestamp,
    /// The database settings.
    pub options: Options,
    /// Where emitted events are announced to subscribers once committed.
    pub(crate) hub: Arc<events::hub::Hub>,
    /// The idempotency key the operation runs under when its caller gave one outside the
    /// operation's own arguments ([`Op::once`]: an MCP tool's `idempotency_key`): its audit
    /// rows record it, as the REST `Idempotency-Key` is recorded.
    pub(crate) idempotency_key: Option<String>,
}

struct Inner {
    store: Arc<store::Store>,
    committer: Arc<commit::Committer>,
    options: Options,
    /// The per-tenant budgets of refused requests' audit rows.
    refusals: audit::refused::Budget,
    /// The audit exports running, per tenant.
    exports: audit::export::Running,
}

/// An open Bespin database. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Bespin {
    inner: Arc<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer thread holds the store; stop it so the file is closed when this returns.
        self.committer.shutdown();
    }
}

impl std::fmt::Debug for Bespin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bespin").finish_non_exhaustive()
    }
}

impl Bespin {
    /// Opens the database at `path`, creating it if missing, and seeds the billing catalogue
    /// (insert-if-missing). `path` is a redb file, or a PostgreSQL URL
    /// (`postgres://user@host/db?schema=bespin`): any number of processes may open one
    /// PostgreSQL database together, with the same guarantees as one process on a file (see
    /// the README's "PostgreSQL").
    pub fn open(path: impl AsRef<Path>) -> Result<Bespin> {
        Self::open_with(path, Arc::new(SystemClock), Options::default())
    }

    /// A database held only in memory.
    pub fn open_in_memory() -> Result<Bespin> {
        Self::with(
            store::Store::in_memory(schema::tables())?,
            Arc::new(SystemClock),
            Options::default(),
        )
    }

    /// A database in memory with the given clock and options (for tests and simulations).
    pub fn open_in_memory_with(clock: Arc<dyn Clock>, options: Options) -> Result<Bespin> {
        Self::with(store::Store::in_memory(schema::tables())?, clock, options)
    }

    /// Opens `path` (a redb file or a PostgreSQL URL, as [`Bespin::open`]) with the given
    /// clock and options.
    pub fn open_with(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Bespin> {
        let path = path.as_ref();
        let store = match path.to_str() {
            Some(url) if store::is_url(url) => store::Store::open_url(url, schema::tables())?,
            _ => store::Store::open(path, options.cache_bytes, schema::tables())?,
        };
        Self::with(store, clock, options)
    }

    /// A fresh database for a test: in memory, or — when `BESPIN_TEST_DB` holds a PostgreSQL
    /// URL — a new schema of that database of its own (so the suites run on both backends,
    /// and tests running at once never see each other's rows).
    #[cfg(any(test, feature = "testing"))]
    pub fn open_for_test(clock: Arc<dyn Clock>, options: Options) -> Result<Bespin> {
        match test_database_url() {
            Some(url) => Self::open_with(url, clock, options),
            None => Self::open_in_memory_with(clock, options),
        }
    }

    /// Whether this database's reads wait on a network round trip (PostgreSQL): a caller on
    /// an async runtime then runs them where blocking is allowed. False for redb, whose reads
    /// are memory and page-cache work.
    pub fn reads_block(&self) -> bool {
        self.inner.store.reads_block()
    }

    /// Whether [`Bespin::request_snapshot_later`] would serve a request now without a thread
    /// of the caller's waiting (PostgreSQL while its reads share snapshots; a hint, which may
    /// change at once). False on redb, whose reads never wait.
    pub fn snapshots_later(&self) -> bool {
        self.inner.store.reads_later()
    }

    /// Asks for a request's snapshot without waiting for it: `done` gets it, on a thread of
    /// the database's, once a snapshot taken after this call is ready (on PostgreSQL the round
    /// trip that reads that start together share), to be carried into the request's reads
    /// ([`RequestSnapshot::scope`]) — run inside [`without_waiting`], they then mostly need
    /// no thread that may wait. Everything a read would see with a snapshot of its own holds:
    /// every commit acknowledged before this call is in it. `done` must not wait itself (it
    /// runs where the next requests' snapshots are made), and a [`RequestSnapshot`] it drops
    /// hands its connection back without closing anything.
    pub fn request_snapshot_later(
        &self,
        done: impl FnOnce(Result<RequestSnapshot>) + Send + 'static,
    ) {
        let inner = Arc::clone(&self.inner);
        self.inner.store.read_later(move |tx| {
            done(tx.map(|tx| RequestSnapshot::of(&inner, tx)));
        });
    }

    /// Round trips to the database server so far (`None` for redb): statements, prepares and
    /// connections, for measuring what an operation costs.
    pub fn round_trips(&self) -> Option<u64> {
        self.inner.store.round_trips()
    }

    /// Read connections to the database server held by open snapshots now, rather than idle
    /// in the pool (`None` for redb): a request that waits for the writer holds none, so this
    /// is what shows a read kept open too long.
    pub fn reads_held(&self) -> Option<usize> {
        self.inner.store.reads_held()
    }

    fn with(store: store::Store, clock: Arc<dyn Clock>, options: Options) -> Result<Bespin> {
        // Made once per database, before any operation may need it to sign a checkpoint.
        store.secret(audit::checkpoint::SIGNING_SECRET)?;
        let store = Arc::new(store);
        let committer = Arc::new(commit::Committer::new(
            Arc::clone(&store),
            clock,
            options.clone(),
        ));
        let db = Bespin {
            inner: Arc::new(Inner {
                store,
                committer,
                options,
                refusals: Default::default(),
                exports: Default::default(),
            }),
        };
        // Other processes' events wake this one's subscribers at once (PostgreSQL's NOTIFY);
        // the hook holds the hub only, so it keeps nothing else of the database alive.
        let hub = db.hub_arc();
        db.inner
            .store
            .watch_others(Box::new(move |tenants| hub.foreign(tenants)))?;
        // The layout first: a database of a newer layout is refused before anything is written.
        db.write(layout::upgrade)?;
        db.write(billing::catalog::seed)?;
        Ok(db)
    }

    /// The operation context for now.
    pub fn ctx(&self) -> Ctx {
        self.inner.committer.ctx()
    }

    /// Runs `f` in one write transaction and commits it if `f` succeeds; on error nothing of
    /// `f` is kept. This is how a caller batches several operations under one fsync.
    pub fn transaction<T>(&self, f: impl FnOnce(&mut WriteTx, &Ctx) -> Result<T>) -> Result<T> {
        self.write(f)
    }

    /// Runs `f` as one operation: it shares a transaction and its fsync with concurrent
    /// operations (group commit), is rolled back alone if it fails, and returns only once its
    /// changes are committed.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut WriteTx, &Ctx) -> Result<T>) -> Result<T> {
        nowait::may_wait("a write")?;
        self.release_carried();
        self.inner.committer.run(f)
    }

    /// [`Bespin::write`] for `caller`: the operation first re-checks, in its transaction, the
    /// key that authenticated the caller ([`tenancy::keys::admit`]), as every `Op` with a
    /// caller does, so an embedder's or Python's session of a revoked key, an expired key or a
    /// deactivated user writes nothing, and a read-only key's session no change.
    pub(crate) fn write_as<T>(
        &self,
        caller: &Principal,
        f: impl FnOnce(&mut WriteTx, &Ctx) -> Result<T>,
    ) -> Result<T> {
        self.write(|tx, ctx| {
            tenancy::keys::admit(tx, ctx, caller, tenancy::keys::Access::Write)?;
            f(tx, ctx)
        })
    }

    /// Runs `op` on the calling thread as one operation of the shared batch (the path of
    /// embedders and Python: the same as every `Bespin` write method) and returns its value
    /// once the commit holding it is durable.
    pub fn run<T: 'static>(&self, op: Op<T>) -> Result<T> {
        self.write(|tx, ctx| op.call(tx, ctx))
    }

    /// Queues `op` for the database's writer thread (started on first use) and returns at once;
    /// the [`Pending`] resolves with the op's value once the commit holding it is durable, or
    /// with its error or its commit's. The writer runs queued operations back to back in one
    /// batch and commits them with one fsync, so a server awaiting many writes costs no thread
    /// switch inside the database; it runs nothing but operations of the core. When
    /// [`Options::writer_queue`] operations wait already, the pending resolves at once with
    /// `Error::Overloaded` (answer "busy, retry").
    pub fn submit<T: Send + 'static>(&self, op: Op<T>) -> Pending<T> {
        self.enqueue(op, false)
    }

    /// [`Bespin::submit`], but the pending resolves as soon as the operation ran (its writes
    /// are in the open batch and visible to nothing yet): for writes whose caller need not wait
    /// for durability — a crash may lose them. The server uses it for the metering of reads
    /// when told to (`BESPIN_READ_METERING=deferred`).
    pub fn submit_deferred<T: Send + 'static>(&self, op: Op<T>) -> Pending<T> {
        self.enqueue(op, true)
    }

    fn enqueue<T: Send + 'static>(&self, op: Op<T>, early: bool) -> Pending<T> {
        if let Err(e) = nowait::may_wait("an operation queued") {
            // Refused inside `without_waiting`, whose result is dropped: the operation is
            // queued by the try that counts, and only once.
            let (pending, done) = op::pending();
            done.complete(Err(e));
            return pending;
        }
        self.release_carried();
        let (pending, done) = op::pending();
        self.inner.committer.submit(op, done, early);
        pending
    }

    /// The bytes the records and their indexes take in the last commit: keys, values and the
    /// keys of the trees' inner pages, not free or fragmented space. Unlike the file's size it
    /// grows with the data alone, so it is what the growth a request may cause is measured by.
    pub fn stored_bytes(&self) -> Result<u64> {
        self.inner.store.read()?.stored_bytes()
    }

    /// Size of the database file in bytes (`None` in memory).
    pub fn db_size_bytes(&self) -> Option<u64> {
        self.inner.store.file_size()
    }

    /// How many commits and operations the group committer has done.
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.committer.stats()
    }

    /// Operations waiting for the writer thread now. Unlike [`Bespin::commit_stats`] it takes
    /// no lock, so it answers while the writer runs a long operation.
    pub fn writer_queue_depth(&self) -> usize {
        self.inner.committer.queue_depth()
    }

    /// The wake-up hub of the live stream.
    pub(crate) fn hub(&self) -> &events::hub::Hub {
        self.inner.committer.hub()
    }

    pub(crate) fn hub_arc(&self) -> Arc<events::hub::Hub> {
        Arc::clone(self.inner.committer.hub_arc())
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&ReadTx, &Ctx) -> Result<T>) -> Result<T> {
        let tx = self.snapshot()?;
        let ctx = self.ctx();
        f(&tx, &ctx)
    }

    /// The snapshot a read runs on: the one carried for the request's first read
    /// ([`RequestSnapshot::scope`]), else the store's (on redb the shared one, on PostgreSQL a
    /// fresh one). It reflects every commit acknowledged before the request started.
    pub(crate) fn snapshot(&self) -> Result<Arc<ReadTx>> {
        // Only PostgreSQL carries one: redb's reads pay this branch, not the thread-local.
        if self.inner.store.reads_block()
            && let Some(carried) = carried::take(&self.inner)
        {
            return Ok(carried);
        }
        self.inner.store.read()
    }

    /// Drops the snapshot carried for this thread's request, if any, before a write: a
    /// request never holds a read connection while it waits for the writer, and what it reads
    /// after its write sees it.
    fn release_carried(&self) {
        if self.inner.store.reads_block() {
            drop(carried::take(&self.inner));
        }
    }

    /// Writes a consistent online snapshot of the whole database to the new file `out` (every
    /// table copied inside one read transaction, so it is exactly the state after some commit;
    /// concurrent writes go on meanwhile). `out` must not exist; it appears only once complete.
    /// Restoring is opening (or starting the server on) the copy. Returns the rows copied.
    pub fn backup(&self, out: impl AsRef<Path>) -> Result<u64> {
        self.inner.store.backup(out.as_ref())
    }

    /// Copies this database, as of one snapshot, into the new database at `target`, in one
    /// transaction: a PostgreSQL URL (schema and tables made when missing; every table there
    /// must be empty, else `Error::Conflict` and nothing is written), or a redb file that must
    /// not exist (as [`Bespin::backup`]). Secrets, sequences and every row go along, so ids,
    /// keys and cursors read the same there. This is how a `bespin backup` file is restored
    /// into PostgreSQL (open the file, copy it into the URL), and how a database moves
    /// between backends. Writers here go on meanwhile; the copy is the last commit before it
    /// started. Returns the rows copied.
    pub fn copy_into(&self, target: impl AsRef<Path>) -> Result<u64> {
        let target = target.as_ref();
        match target.to_str() {
            Some(url) if store::is_url(url) => self.inner.store.restore_into(url),
            _ => self.backup(target),
        }
    }

    /// Checks that the database answers a trivial read.
    pub fn health(&self) -> Result<()> {
        self.read(|r, _| {
            use store::Reader;
            r.get(&store::SEQUENCES, &store::NameKey::new("users"))
                .map(|_| ())
        })
    }
}
