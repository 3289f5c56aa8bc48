//! The PostgreSQL backend: every table of the registry a relation `(k bytea primary key,
//! v bytea not null)` in one schema, so that any number of processes share one database.
//!
//! - **Writes** run on one connection per process (the writer's). A batch is `BEGIN` (READ
//!   COMMITTED) and `pg_advisory_xact_lock` of the schema's write lock, sent as one round trip:
//!   every batch of every process is serialised, exactly like redb's single writer, so quota,
//!   cap and credit checks, idempotency, sequences and sealed ids hold across processes, and no
//!   batch ever fails a serialization check (none is ever re-run; operations stay `FnOnce`).
//!   Under the lock a statement sees every commit made before the lock was granted. The
//!   batch's writes are held in an overlay in memory (reads and scans of the batch consult it
//!   first; rows read from the database are kept in it too, so an operation that reads a row
//!   and writes it back costs one round trip) and sent at commit: every table's rows as
//!   binary parameters of one statement, prepared once per shape of batch, then `COMMIT`
//!   (two round trips; `batch.rs`, `PgBatch::flush`). A write that need not know what it
//!   replaced does not read it ([`Prior::Unread`](super::backend::Prior)).
//! - **Reads** take a pooled connection and run in one `REPEATABLE READ READ ONLY`
//!   transaction, whose snapshot is taken at its first statement (the read of the commit
//!   count): a write acknowledged by any process is visible to every read that starts after
//!   it. Reads that start together share one such transaction (`share.rs`: a read joins the
//!   first one to start after it did), so under load a round trip serves every read that
//!   arrived while the one before was in flight. The end of a connection's last read, the
//!   start of the next and that first statement go together as one round trip when the
//!   connection is taken again (handing it back sends nothing); a sweeper thread ends the
//!   read of a connection left idle for a second, so an idle pool never holds an old snapshot
//!   (and PostgreSQL's vacuum) back.
//! - **The row cache** (`cache.rs`, `RowCache`): rows and pages of scans as of one commit
//!   count, shared by the writer and the readers of the process, within a byte budget, so a
//!   plan, an API key, a KPI's last chunk or a page of the search index is read once while
//!   neither another process commits nor this one writes its table. Every batch increments
//!   the count under the write lock.
//! - **Failures** of the server or the connection are [`Error::Unavailable`]; a broken
//!   connection is dropped and the next use connects anew, so a process recovers by itself
//!   once PostgreSQL is back. Nothing is acknowledged before its `COMMIT` returned.
//! - **News between processes** (`listen.rs`): a batch that announced topics sends `NOTIFY`
//!   with its `COMMIT`; one connection per open database, on a thread of its own, `LISTEN`s
//!   and tells the watcher of the other processes' announcements.
//!
//! The URL is a libpq URL (`postgres://user:password@host:port/db`) with five parameters of
//! ours: `schema` (default `bespin`; created at first open), `pool` (the read connections
//! a process keeps open, default 16; a read that finds them all busy waits up to a second for
//! one, then opens one more rather than wait longer: a request holding one snapshot while it
//! takes another can never deadlock the pool), `listen` (default `on`; `off`: no listening
//! connection, for a pooler that cannot `LISTEN`), `cache` (the row cache's budget,
//! default `64MiB`; `0`: none) and `share` (default `on`; `off`: every read takes a snapshot
//! of its own, one round trip each). With the writer's and the listener's, a
//! process holds `pool + 2` connections at rest.

use super::Order;
use super::backend::{
    Backend, OnOthersCommit, RawVisitor, Reads, Snapshot, SnapshotLater, TableId, WriteBatch,
};
use crate::error::{Error, Result};
use cache::Page;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The first key of our advisory locks (the second is a hash of the schema name): writes.
pub(super) const WRITE_LOCK: i32 = 0x6265_7370; // "besp"
/// The first key of the advisory lock held while a process creates or upgrades the schema.
const SCHEMA_LOCK: i32 = 0x6265_7371;
/// The version of the relations this build creates (in `bespin_meta`); the layout of the keys
/// inside them is `layout::CURRENT`, kept in the tables themselves as on redb.
const SCHEMA_VERSION: i64 = 1;
/// The `bespin_meta` row counting commits (see `batch.rs`, the row cache).
pub(super) const COMMITS: &str = "commits";
/// The start of a read transaction (its snapshot is taken by its first statement).
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; ";
/// The end of a read connection's last read and the start of its next one.
const NEXT_READ: &str = "COMMIT; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; ";
/// How long a handed-back read connection may keep its finished read open.
const IDLE_READ: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether `url` names a PostgreSQL database (rather than a file path).
pub(crate) fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A connection and the statements prepared on it (per table and kind of statement).
struct Conn {
    client: Client,
    stmts: HashMap<(usize, u8), Statement>,
    /// A read connection's state between reads: what its next read sends first
    /// ([`BEGIN_READ`], or [`NEXT_READ`] while its last read is still open), and since when.
    next: (&'static str, std::time::Instant),
    /// The writer's flush statements, by shape (`batch.rs`).
    flush: batch::FlushStatements,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            stmts: HashMap::new(),
            next: (BEGIN_READ, std::time::Instant::now()),
            flush: batch::FlushStatements::default(),
        }
    }
}

/// What every connection of one database shares.
struct Shared {
    config: postgres::Config,
    schema: String,
    /// The quoted, schema-qualified name of each table, by slot.
    names: Vec<String>,
    /// Each table's own name, by slot; and the slot of each name.
    tables: Vec<&'static str>,
    slot_of: HashMap<&'static str, usize>,
    /// The second key of the advisory locks: the schema's own.
    lock_key: i32,
    /// Read connections: the idle ones (the most recently handed back last), and how many
    /// are open.
    pool: Mutex<Readers>,
    pool_max: usize,
    reader_free: Condvar,
    /// The writer's connection, and whether a batch holds it.
    writer: Mutex<WriterSlot>,
    writer_free: Condvar,
    /// Rows and pages as of one commit, shared by the writer and the readers
    /// ([`cache::RowCache`]).
    rows: Mutex<cache::RowCache>,
    /// Statements sent to the server (each a round trip), for the figures of issue 19.
    round_trips: AtomicU64,
    /// Reads holding a connection (their own or their generation's) now
    /// ([`Backend::reads_held`]).
    held: AtomicUsize,
    /// Whether reads that start together share one snapshot (the URL's `share`, default on;
    /// `share.rs`).
    share: bool,
    /// The shared snapshots of reads (`share.rs`).
    generations: share::Generations,
    /// Snapshots asked for without waiting, and the thread that makes them.
    later: Arc<share::Later>,
    /// The quoted `LISTEN`/`NOTIFY` channel of the schema (`listen.rs`).
    channel: String,
    /// This open database's name in the notifications it sends (`listen.rs`).
    token: String,
    /// Whether to listen to other processes' commits (the URL's `listen`, default on).
    listen: bool,
    /// Whether the listener is in `LISTEN` now.
    hearing: listen::Hearing,
}

#[derive(Default)]
struct Readers {
    idle: Vec<Conn>,
    open: usize,
}

/// The writer's connection, and whether a batch holds it.
#[derive(Default)]
struct WriterSlot {
    busy: bool,
    conn: Option<Conn>,
}

/// A PostgreSQL database (one schema of it).
pub(crate) struct Postgres {
    shared: Arc<Shared>,
    sequences: TableId,
}

/// `e` as our error: `Unavailable` when the server or the connection failed (it may succeed
/// once the server is back), `Storage` otherwise.
fn pg_err(e: postgres::Error) -> Error {
    let unavailable = match e.code() {
        None => true,
        Some(c) => {
            let c = c.code();
            // 08: connection exceptions; 57P01-3: shutting down, crash recovery, starting up;
            // 53: insufficient resources (too many connections, out of memory or disk).
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
        }
    };
    // The client's own text of a server error is only "db error": say what the server said.
    let what = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {e}"),
    };
    if unavailable {
        Error::Unavailable(what)
    } else {
        Error::Storage(what)
    }
}

/// A 31-bit hash of `s` (FNV-1a), the schema's key in the advisory locks.
fn lock_key(s: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff) as i32
}

/// `name` as a quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Our parameters of a URL.
struct Params {
    schema: String,
    pool: usize,
    listen: bool,
    /// The row cache's budget in bytes.
    cache: usize,
    /// Whether reads that start together share one snapshot.
    share: bool,
}

/// `v` as a number of bytes: digits, then nothing or `B` (bytes), `K`/`KB`/`KiB`,
/// `M`/`MB`/`MiB` or `G`/`GB`/`GiB` (multiples of 1,024).
fn bytes_of(v: &str) -> Option<usize> {
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(digits);
    let shift = match unit {
        "" | "B" => 0,
        "K" | "k" | "KB" | "kB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        _ => return None,
    };
    n.parse::<usize>().ok()?.checked_mul(1 << shift)
}

/// Splits our parameters (`schema`, `pool`, `listen`, `cache`) off `url`; returns the rest and
/// them.
fn split_url(url: &str) -> Result<(String, Params)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = "bespin".to_owned();
    let mut pool = 16usize;
    let mut listen = true;
    let mut cache = cache::DEFAULT_BUDGET;
    let mut share = true;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", v)) => schema = v.to_owned(),
            Some(("pool", v)) => {
                pool = v
                    .parse()
                    .map_err(|_| Error::Storage(format!("pool={v}: not a number")))?
            }
            Some(("listen", v)) => listen = on_off("listen", v)?,
            Some(("share", v)) => share = on_off("share", v)?,
            Some(("cache", v)) => {
                cache = bytes_of(v).ok_or_else(|| {
                    Error::Storage(format!("cache={v}: a size, such as 64MiB (0: none)"))
                })?
            }
            _ => rest.push(pair),
        }
    }
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(Error::Storage(format!(
            "schema={schema}: use 1 to 63 of a-z, 0-9 and _"
        )));
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((
        url,
        Params {
            schema,
            pool,
            listen,
            cache,
            share,
        },
    ))
}

/// The switch `name=v`: `on`/`true`/`1` or `off`/`false`/`0`.
fn on_off(name: &str, v: &str) -> Result<bool> {
    match v {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(Error::Storage(format!("{name}={v}: use on or off"))),
    }
}

impl Shared {
    /// Counts a round trip about to be made; refused inside [`crate::without_waiting`], so
    /// that no statement is ever sent from a thread that must not wait (a runtime's worker,
    /// where the `postgres` client's own runtime would panic besides).
    fn trip(&self) -> Result<()> {
        crate::nowait::may_wait("a PostgreSQL round trip")?;
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn connect(&self) -> Result<Client> {
        self.trip()?;
        self.config.connect(NoTls).map_err(pg_err)
    }

    /// Runs `sql` (one or more statements, no parameters) as one round trip.
    fn batch(&self, c: &mut Conn, sql: &str) -> Result<()> {
        self.trip()?;
        c.client.batch_execute(sql).map_err(pg_err)
    }

    /// The statement of `kind` on table `slot`, prepared on `c` at first use.
    fn stmt(&self, c: &mut Conn, slot: usize, kind: u8) -> Result<Statement> {
        if let Some(s) = c.stmts.get(&(slot, kind)) {
            return Ok(s.clone());
        }
        let sql = sql_of(&self.names[slot], kind);
        self.trip()?;
        let s = c.client.prepare(&sql).map_err(pg_err)?;
        c.stmts.insert((slot, kind), s.clone());
        Ok(s)
    }

    fn query(
        &self,
        c: &mut Conn,
        slot: usize,
        kind: u8,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        let s = self.stmt(c, slot, kind)?;
        self.trip()?;
        c.client.query(&s, params).map_err(pg_err)
    }

    /// Starts a read on `c` (ending its last one if still open) and returns the commit count
    /// its snapshot sees (the snapshot is taken by that statement): one round trip.
    ///
    /// What the counts tell of other processes' commits goes to the row cache first
    /// ([`cache::RowCache::learn`]).
    fn begin_read(&self, c: &mut Conn) -> Result<i64> {
        let since = lock(&self.rows).since();
        let sql = format!("{}{}", c.next.0, counts::sql(&self.schema, since));
        self.trip()?;
        let answer = c.client.simple_query(&sql).map_err(pg_err)?;
        c.next.0 = NEXT_READ;
        let seen = counts::parse(&answer, since)?;
        self.learn(&seen);
        Ok(seen.epoch)
    }

    /// Hands what a snapshot or a batch read first to the row cache.
    fn learn(&self, seen: &counts::Seen) {
        lock(&self.rows).learn(seen, |name| self.slot_of.get(name).copied());
    }

    /// A read begun on `lent` (or a connection of the pool), and the commit count its
    /// snapshot sees; on failure the connection is dropped and no longer counted.
    fn open_read(&self, lent: Option<Conn>) -> Result<(Conn, i64)> {
        let mut c = match lent {
            Some(c) => c,
            None => self.take_reader()?,
        };
        match self.begin_read(&mut c) {
            Ok(epoch) => Ok((c, epoch)),
            Err(e) => {
                drop(c);
                self.reader_failed(&e);
                Err(e)
            }
        }
    }

    fn get(&self, c: &mut Conn, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rows = self.query(c, t.slot, GET, &[&key])?;
        rows.first()
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg_err))
            .transpose()
    }

    /// The rows of `keys` that exist, in one round trip.
    fn get_many(
        &self,
        c: &mut Conn,
        t: TableId,
        keys: &[&[u8]],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.query(c, t.slot, GET_MANY, &[&keys])?;
        key_values(&rows)
    }

    /// [`Shared::page`] as of the commit count `epoch` (the state a snapshot or a write batch
    /// reads): read once per commit count and kept in the row cache (which a commit writing
    /// the table, or another process's commit, empties of it).
    fn page_at(&self, c: &mut Conn, epoch: i64, p: PageOf<'_>) -> Result<Page> {
        match self.cached_page(epoch, &p) {
            Ok(rows) => Ok(rows),
            Err(range) => self.fetch_page(c, epoch, p, range),
        }
    }

    /// [`Shared::page`], kept in the row cache as of `epoch` under `range` (what the cache was
    /// looked in under first).
    fn fetch_page(
        &self,
        c: &mut Conn,
        epoch: i64,
        p: PageOf<'_>,
        range: cache::PageRange,
    ) -> Result<Page> {
        let rows = Arc::new(self.page(c, p)?);
        lock(&self.rows).remember_page(epoch, p.t.slot, range, &rows);
        Ok(rows)
    }

    /// The page [`Shared::page_at`] would read, if the row cache has it at `epoch`; on a miss,
    /// the cache's name of the page, for [`Shared::fetch_page`] to keep it under.
    fn cached_page(
        &self,
        epoch: i64,
        p: &PageOf<'_>,
    ) -> std::result::Result<Page, cache::PageRange> {
        let range = p.range();
        lock(&self.rows).page(epoch, p.t.slot, &range).ok_or(range)
    }

    /// One page of a scan, read from the server.
    fn page(&self, c: &mut Conn, p: PageOf<'_>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let PageOf {
            t,
            lo,
            hi,
            order,
            limit,
        } = p;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(3);
        let code = |b: &Bound<&[u8]>| match b {
            Bound::Unbounded => 0u8,
            Bound::Included(_) => 1,
            Bound::Excluded(_) => 2,
        };
        let (lc, hc) = (code(&lo), code(&hi));
        let (lv, hv);
        if let Bound::Included(v) | Bound::Excluded(v) = lo {
            lv = v;
            params.push(&lv);
        }
        if let Bound::Included(v) | Bound::Excluded(v) = hi {
            hv = v;
            params.push(&hv);
        }
        params.push(&limit);
        let kind = SCAN + (lc * 3 + hc) * 2 + u8::from(order == Order::Desc);
        let rows = self.query(c, t.slot, kind, &params)?;
        key_values(&rows)
    }

    /// A read connection: an idle one of the pool, or a new one while fewer than `pool_max`
    /// are open (past that, after waiting a second for one to come back).
    fn take_reader(&self) -> Result<Conn> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        {
            let mut p = lock(&self.pool);
            loop {
                if let Some(c) = p.idle.pop() {
                    if !c.client.is_closed() {
                        return Ok(c);
                    }
                    p.open = p.open.saturating_sub(1);
                    continue;
                }
                let now = std::time::Instant::now();
                if p.open < self.pool_max || now >= deadline {
                    p.open += 1;
                    break;
                }
                p = self
                    .reader_free
                    .wait_timeout(p, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let opened = self.connect().map(Conn::new);
        if opened.is_err() {
            self.reader_gone();
        }
        opened
    }

    /// Hands a read connection back, its read left open (the next read ends it), and keeps it
    /// idle (unless it broke, or more than `pool_max` are open).
    /// A connection it does not keep is closed on a thread of its own: the caller may be a
    /// runtime's worker ([`crate::Bespin::request_snapshot_later`]), where closing a `postgres`
    /// client (which runs a small runtime of its own) would panic.
    fn give_reader(&self, mut c: Conn) {
        if c.client.is_closed() {
            close_elsewhere(c);
            return self.reader_gone();
        }
        c.next.1 = std::time::Instant::now();
        let mut p = lock(&self.pool);
        if p.open > self.pool_max {
            p.open -= 1;
            drop(p);
            close_elsewhere(c);
        } else {
            p.idle.push(c);
        }
        self.reader_free.notify_one();
    }

    /// Ends the read of every idle connection that has kept its finished read open for
    /// [`IDLE_READ`], one round trip each, so that no idle connection holds an old snapshot
    /// (and PostgreSQL's vacuum) back. Run by the sweeper thread about once a second.
    fn sweep_idle_reads(&self) {
        loop {
            let stale = {
                let mut p = lock(&self.pool);
                let i = p
                    .idle
                    .iter()
                    .position(|c| c.next.0 == NEXT_READ && c.next.1.elapsed() >= IDLE_READ);
                match i {
                    Some(i) => p.idle.remove(i),
                    None => return,
                }
            };
            let mut c = stale;
            if self.batch(&mut c, "COMMIT").is_err() {
                self.reader_gone();
                continue;
            }
            c.next.0 = BEGIN_READ;
            lock(&self.pool).idle.insert(0, c);
            self.reader_free.notify_one();
        }
    }

    /// Starts the thread that sweeps idle reads ([`Shared::sweep_idle_reads`]) while the
    /// database is open; it ends within a second of the last handle's drop.
    fn start_sweeper(shared: &Arc<Shared>) -> Result<()> {
        let weak = Arc::downgrade(shared);
        std::thread::Builder::new()
            .name("bespin-pg-sweeper".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(IDLE_READ);
                    match weak.upgrade() {
                        Some(shared) => {
                            drop(shared.generations.forget_stale());
                            shared.sweep_idle_reads()
                        }
                        None => return,
                    }
                }
            })
            .map(drop)
            .map_err(|e| Error::Internal(format!("cannot start the PostgreSQL sweeper: {e}")))
    }

    /// A read connection was dropped.
    fn reader_gone(&self) {
        let mut p = lock(&self.pool);
        p.open = p.open.saturating_sub(1);
        self.reader_free.notify_one();
    }

    /// A read connection failed with `e` and was dropped: it is no longer counted, and when
    /// the server is unavailable the idle connections went with it.
    fn reader_failed(&self, e: &Error) {
        self.reader_gone();
        if matches!(e, Error::Unavailable(_)) {
            self.drop_idle();
        }
    }

    /// The server went away: the idle connections went with it.
    fn drop_idle(&self) {
        let mut p = lock(&self.pool);
        let n = p.idle.len();
        p.idle.clear();
        p.open = p.open.saturating_sub(n);
        self.reader_free.notify_all();
    }
}

/// Closes `c` on a thread of its own (see [`Shared::give_reader`]); rare: a connection that
/// broke, or one over the pool's size.
fn close_elsewhere(c: Conn) {
    // A thread that cannot start leaves the connection to close here.
    let _ = std::thread::Builder::new()
        .name("bespin-pg-close".into())
        .spawn(move || drop(c));
}

impl Drop for Shared {
    /// Closes the pooled connections on a thread of their own: closing a `postgres` client
    /// runs its own small runtime, which panics on a thread that is running async tasks, and
    /// the last handle of a database embedded in an async program is often dropped on one.
    fn drop(&mut self) {
        // Snapshots still asked for fail: the database is closing.
        for done in self.later.close() {
            done(Err(Error::Unavailable("the database is closing".into())));
        }
        let idle = std::mem::take(&mut lock(&self.pool).idle);
        let writer = lock(&self.writer).conn.take();
        let newest = self.generations.take();
        if idle.is_empty() && writer.is_none() && newest.is_none() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("bespin-pg-close".into())
            .spawn(move || drop((idle, writer, newest)))
            .map(|t| t.join());
    }
}

/// One page of a scan of table `t`: at most `limit` rows within (`lo`, `hi`) in `order`.
#[derive(Clone, Copy)]
struct PageOf<'a> {
    t: TableId,
    lo: Bound<&'a [u8]>,
    hi: Bound<&'a [u8]>,
    order: Order,
    limit: i64,
}

impl PageOf<'_> {
    /// The row cache's name of the page (of its table).
    fn range(&self) -> cache::PageRange {
        let owned = |b: Bound<&[u8]>| b.map(<[u8]>::to_vec);
        (
            owned(self.lo),
            owned(self.hi),
            self.order == Order::Desc,
            self.limit,
        )
    }
}

/// The (key, value) pairs of rows that select `k, v`.
fn key_values(rows: &[postgres::Row]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?)))
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kinds of prepared statement.
const GET: u8 = 0;
const COUNT: u8 = 1;
const BYTES: u8 = 2;
const GET_MANY: u8 = 3;
/// Scans: `SCAN + (lo * 3 + hi) * 2 + desc`, bounds coded 0 unbounded, 1 included, 2 excluded.
const SCAN: u8 = 8;

fn sql_of(table: &str, kind: u8) -> String {
    match kind {
        GET => format!("SELECT v FROM {table} WHERE k = $1"),
        GET_MANY => format!("SELECT k, v FROM {table} WHERE k = ANY($1)"),
        COUNT => format!("SELECT count(*) FROM {table}"),
        BYTES => {
            format!("SELECT coalesce(sum(octet_length(k) + octet_length(v)), 0)::int8 FROM {table}")
        }
        _ => {
            let n = kind - SCAN;
            let (bounds, desc) = (n / 2, n % 2 == 1);
            let (lo, hi) = (bounds / 3, bounds % 3);
            let mut sql = format!("SELECT k, v FROM {table} WHERE true");
            let mut p = 0;
            if lo > 0 {
                p += 1;
                let _ = write!(sql, " AND k {} ${p}", if lo == 1 { ">=" } else { ">" });
            }
            if hi > 0 {
                p += 1;
                let _ = write!(sql, " AND k {} ${p}", if hi == 1 { "<=" } else { "<" });
            }
            let _ = write!(
                sql,
                " ORDER BY k {} LIMIT ${}",
                if desc { "DESC" } else { "ASC" },
                p + 1
            );
            sql
        }
    }
}

impl Postgres {
    /// Connects to the database of `url`, creates the schema and the tables it lacks (under an
    /// advisory lock, so processes starting together do not race), and checks the schema's
    /// version. `sequences` is the table sequences are stored in.
    pub(crate) fn open(url: &str, tables: &[TableId], sequences: TableId) -> Result<Postgres> {
        let (url, p) = split_url(url)?;
        let (schema, pool_max) = (p.schema, p.pool);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| Error::Storage(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        config.keepalives(true);
        config.application_name("bespin");
        let names = tables
            .iter()
            .map(|t| format!("{}.{}", ident(&schema), ident(t.name)))
            .collect();
        let key = lock_key(&schema);
        let shared = Arc::new(Shared {
            config,
            lock_key: key,
            channel: listen::channel(&schema, key),
            token: listen::token()?,
            listen: p.listen,
            hearing: listen::Hearing::default(),
            schema,
            names,
            tables: tables.iter().map(|t| t.name).collect(),
            slot_of: tables.iter().map(|t| (t.name, t.slot)).collect(),
            pool: Mutex::new(Readers::default()),
            pool_max: pool_max.max(1),
            reader_free: Condvar::new(),
            writer: Mutex::new(WriterSlot::default()),
            writer_free: Condvar::new(),
            rows: Mutex::new(cache::RowCache::new(p.cache)),
            round_trips: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            share: p.share,
            generations: share::Generations::default(),
            later: Arc::default(),
        });
        let mut c = Conn::new(shared.connect()?);
        shared.batch(&mut c, &create_sql(&shared, tables))?;
        Shared::start_sweeper(&shared)?;
        share::Later::start(&shared)?;
        shared.round_trips.fetch_add(1, Ordering::Relaxed);
        let version: i64 = c
            .client
            .query_one(
                &format!(
                    "SELECT value FROM {}.bespin_meta WHERE name = 'schema_version'",
                    ident(&shared.schema)
                ),
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Storage(format!(
                "schema {} is of version {version}, newer than this build's {SCHEMA_VERSION}: \
                 upgrade bespin",
                shared.schema
            )));
        }
        lock(&shared.writer).conn = Some(c);
        Ok(Postgres { shared, sequences })
    }

    /// Statements sent to the server so far (connections, prepares, queries, each a round
    /// trip).
    pub(crate) fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::Relaxed)
    }
}

/// The schema, its version row and every table, created if missing, in one transaction under
/// the schema lock (`CREATE ... IF NOT EXISTS` alone races: two creators can both miss).
fn create_sql(s: &Shared, tables: &[TableId]) -> String {
    let schema = ident(&s.schema);
    let mut sql = format!(
        "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}, {key}); \
         CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.bespin_meta (name text PRIMARY KEY, value int8 NOT NULL); \
         INSERT INTO {schema}.bespin_meta VALUES ('schema_version', {SCHEMA_VERSION}), ('{COMMITS}', 0) \
         ON CONFLICT DO NOTHING; {counts}",
        key = s.lock_key,
        counts = counts::create_sql(&s.schema),
    );
    for t in tables {
        let _ = write!(
            sql,
            "CREATE TABLE IF NOT EXISTS {} (k bytea PRIMARY KEY, v bytea NOT NULL); ",
            s.names[t.slot]
        );
    }
    sql.push_str("COMMIT");
    sql
}

impl Backend for Postgres {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(PgSnapshot {
            shared: Arc::clone(&self.shared),
            read: Mutex::new(None),
        }))
    }

    fn snapshots_later(&self) -> bool {
        self.shared.share && !lock(&self.shared.rows).others_lately()
    }

    fn snapshot_later(&self, done: SnapshotLater) {
        if let Some(done) = self.shared.later.ask(done) {
            done(Err(Error::Unavailable("the database is closing".into())));
        }
    }

    fn begin(&self, durable: bool) -> Result<Box<dyn WriteBatch>> {
        crate::nowait::may_wait("a PostgreSQL write transaction")?;
        Ok(Box::new(batch::PgBatch::begin(
            &self.shared,
            self.sequences,
            durable,
        )?))
    }

    fn file_size(&self) -> Option<u64> {
        None
    }

    fn shares_snapshots(&self) -> bool {
        false
    }

    fn round_trips(&self) -> Option<u64> {
        Some(self.round_trips())
    }

    fn reads_held(&self) -> Option<usize> {
        Some(self.shared.held.load(Ordering::SeqCst))
    }

    #[cfg(test)]
    fn cached_bytes(&self) -> Option<usize> {
        Some(lock(&self.shared.rows).bytes())
    }

    fn watch_others(&self, on: OnOthersCommit) -> Result<()> {
        listen::start(&self.shared, on)
    }

    fn misses_others(&self) -> bool {
        !self.shared.hearing.load(Ordering::SeqCst)
    }
}

/// A read: its own transaction on a pooled connection, or a share of a generation's
/// (`share.rs`), taken at its first read.
struct PgSnapshot {
    shared: Arc<Shared>,
    read: Mutex<Option<Read>>,
}

/// What a read reads on, and the commit count its snapshot saw (its first statement).
enum Read {
    /// Boxed: most reads share (`Joined`), and a `Conn` is large.
    Own(Box<Conn>, i64),
    Joined(Arc<share::Generation>),
}

impl PgSnapshot {
    /// A read of generation `g`, started.
    fn joined(shared: &Arc<Shared>, g: Arc<share::Generation>) -> PgSnapshot {
        shared.held.fetch_add(1, Ordering::SeqCst);
        PgSnapshot {
            shared: Arc::clone(shared),
            read: Mutex::new(Some(Read::Joined(g))),
        }
    }

    /// Starts the read if it has not started: joins a generation, or (`share=off`) begins a
    /// transaction of its own.
    fn start(&self, slot: &mut Option<Read>) -> Result<()> {
        if slot.is_some() {
            return Ok(());
        }
        crate::nowait::may_wait("a PostgreSQL snapshot")?;
        let read = if self.shared.share && !lock(&self.shared.rows).others_lately() {
            Read::Joined(self.shared.join()?)
        } else {
            let (c, epoch) = self.shared.open_read(None)?;
            Read::Own(Box::new(c), epoch)
        };
        self.shared.held.fetch_add(1, Ordering::SeqCst);
        *slot = Some(read);
        Ok(())
    }

    /// The commit count the read sees (starting it): what its answers from the row cache
    /// must be valid at.
    fn epoch(&self) -> Result<i64> {
        let mut slot = lock(&self.read);
        self.start(&mut slot)?;
        Ok(match slot.as_ref() {
            Some(Read::Own(_, epoch)) => *epoch,
            Some(Read::Joined(g)) => g.epoch,
            None => return Err(Error::Internal("no read".into())),
        })
    }

    /// Runs `f` on the read's connection, inside its transaction.
    fn with<T>(&self, f: impl FnOnce(&Shared, &mut Conn, i64) -> Result<T>) -> Result<T> {
        crate::nowait::may_wait("a PostgreSQL statement")?;
        let mut slot = lock(&self.read);
        self.start(&mut slot)?;
        if let Some(Read::Joined(g)) = slot.as_ref() {
            let g = Arc::clone(g);
            drop(slot);
            return g.with(&self.shared, |c| f(&self.shared, c, g.epoch));
        }
        let Some(Read::Own(c, epoch)) = slot.as_mut() else {
            return Err(Error::Internal("no read connection".into()));
        };
        let out = f(&self.shared, c, *epoch);
        if let Err(e) = &out {
            // The transaction is aborted (or the connection gone): this snapshot cannot read
            // on; its connection is dropped rather than handed back.
            if slot.take().is_some() {
                self.shared.held.fetch_sub(1, Ordering::SeqCst);
                self.shared.reader_failed(e);
            }
        }
        out
    }
}

impl Drop for PgSnapshot {
    fn drop(&mut self) {
        let Some(read) = lock(&self.read).take() else {
            return;
        };
        self.shared.held.fetch_sub(1, Ordering::SeqCst);
        if let Read::Own(c, _) = read {
            self.shared.give_reader(*c);
        }
    }
}

impl Reads for PgSnapshot {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let epoch = self.epoch()?;
        if let Some(v) = lock(&self.shared.rows).get(epoch, t, key) {
            return Ok(v);
        }
        self.with(|s, c, epoch| {
            let v = s.get(c, t, key)?;
            lock(&s.rows).remember(epoch, t, key, &v);
            Ok(v)
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
        scan::paged(
            &mut |lo, hi, limit| {
                let p = PageOf {
                    t,
                    lo,
                    hi,
                    order,
                    limit,
                };
                match self.shared.cached_page(self.epoch()?, &p) {
                    Ok(page) => Ok(page),
                    Err(range) => self.with(|s, c, epoch| s.fetch_page(c, epoch, p, range)),
                }
            },
            &mut |_, _| Vec::new(),
            lo,
            hi,
            order,
            visit,
        )
    }
}

impl PgSnapshot {
    /// The one non-negative integer that `sql` (an aggregate over table `t`) answers.
    fn figure(&self, t: TableId, sql: u8) -> Result<u64> {
        self.with(|s, c, _| {
            let rows = s.query(c, t.slot, sql, &[])?;
            let n: i64 = rows
                .first()
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(pg_err)?
                .unwrap_or(0);
            Ok(n.max(0) as u64)
        })
    }
}

impl Snapshot for PgSnapshot {
    fn count(&self, t: TableId) -> Result<u64> {
        self.figure(t, COUNT)
    }

    fn stored_bytes(&self, tables: &[TableId]) -> Result<u64> {
        tables.iter().map(|&t| self.figure(t, BYTES)).sum()
    }
}

mod batch;
mod cache;
mod counts;
mod listen;
mod scan;
mod share;
