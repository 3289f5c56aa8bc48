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
//!   and writes it back costs one round trip) and sent at commit with the `COMMIT` as one
//!   simple query: one round trip for the whole flush.
//! - **Reads** take a pooled connection and run in one `REPEATABLE READ READ ONLY`
//!   transaction, whose snapshot is taken at its first statement: a write acknowledged by any
//!   process is visible to every read that starts after it. A pooled connection waits with
//!   its next transaction already begun (the `COMMIT` of one read and the `BEGIN` of the next
//!   go together when it is handed back), so a read costs one round trip per statement and one
//!   when it ends.
//! - **Failures** of the server or the connection are [`Error::Unavailable`]; a broken
//!   connection is dropped and the next use connects anew, so a process recovers by itself
//!   once PostgreSQL is back. Nothing is acknowledged before its `COMMIT` returned.
//!
//! The URL is a libpq URL (`postgres://user:password@host:port/db`) with two parameters of
//! ours: `schema` (default `bespin`; created at first open) and `pool` (the read connections
//! a process keeps open, default 16; a read that finds them all busy waits up to a second for
//! one, then opens one more rather than wait longer: a request holding one snapshot while it
//! takes another can never deadlock the pool). With the writer's, a process holds `pool + 1`
//! connections at rest.

use super::backend::{Backend, RawVisitor, Reads, Snapshot, TableId, WriteBatch};
use super::codec;
use super::redb::seq_key;
use super::{Flow, Order};
use crate::error::{Error, Result};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The first key of our advisory locks (the second is a hash of the schema name): writes.
const WRITE_LOCK: i32 = 0x6265_7370; // "besp"
/// The first key of the advisory lock held while a process creates or upgrades the schema.
const SCHEMA_LOCK: i32 = 0x6265_7371;
/// The version of the relations this build creates (in `bespin_meta`); the layout of the keys
/// inside them is `layout::CURRENT`, kept in the tables themselves as on redb.
const SCHEMA_VERSION: i64 = 1;
/// Rows fetched by the first page of a scan; each next page is 8 times larger (up to
/// [`MAX_PAGE`]), so a scan that stops after a few rows reads few, and a long one few pages.
const FIRST_PAGE: i64 = 32;
const MAX_PAGE: i64 = 4096;
/// What a read connection runs when it is handed back: the end of its read and the start of
/// the next one (whose snapshot is taken by its first statement, not now).
const NEXT_READ: &str = "COMMIT; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Whether `url` names a PostgreSQL database (rather than a file path).
pub(crate) fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A connection and the statements prepared on it (per table and kind of statement).
struct Conn {
    client: Client,
    stmts: HashMap<(usize, u8), Statement>,
}

/// What every connection of one database shares.
struct Shared {
    config: postgres::Config,
    schema: String,
    /// The quoted, schema-qualified name of each table, by slot.
    names: Vec<String>,
    /// The second key of the advisory locks: the schema's own.
    lock_key: i32,
    /// Read connections: the idle ones, each inside a begun (snapshot-less) read transaction,
    /// and how many are open.
    pool: Mutex<Readers>,
    pool_max: usize,
    reader_free: Condvar,
    /// The writer's connection, and whether a batch holds it.
    writer: Mutex<WriterSlot>,
    writer_free: Condvar,
    /// Statements sent to the server (each a round trip), for the figures of issue 19.
    round_trips: AtomicU64,
}

#[derive(Default)]
struct Readers {
    idle: Vec<Conn>,
    open: usize,
}

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

/// Splits our parameters (`schema`, `pool`) off `url`; returns the rest and them.
fn split_url(url: &str) -> Result<(String, String, usize)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = "bespin".to_owned();
    let mut pool = 16usize;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", v)) => schema = v.to_owned(),
            Some(("pool", v)) => {
                pool = v
                    .parse()
                    .map_err(|_| Error::Storage(format!("pool={v}: not a number")))?
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
    Ok((url, schema, pool))
}

impl Shared {
    fn connect(&self) -> Result<Client> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.config.connect(NoTls).map_err(pg_err)
    }

    /// Runs `sql` (one or more statements, no parameters) as one round trip.
    fn batch(&self, c: &mut Conn, sql: &str) -> Result<()> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        c.client.batch_execute(sql).map_err(pg_err)
    }

    /// The statement of `kind` on table `slot`, prepared on `c` at first use.
    fn stmt(&self, c: &mut Conn, slot: usize, kind: u8) -> Result<Statement> {
        if let Some(s) = c.stmts.get(&(slot, kind)) {
            return Ok(s.clone());
        }
        let sql = sql_of(&self.names[slot], kind);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
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
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        c.client.query(&s, params).map_err(pg_err)
    }

    fn get(&self, c: &mut Conn, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rows = self.query(c, t.slot, GET, &[&key])?;
        rows.first()
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg_err))
            .transpose()
    }

    /// One page of a scan: at most `limit` rows within (`lo`, `hi`) in `order`.
    fn page(
        &self,
        c: &mut Conn,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        limit: i64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
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
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?)))
            .collect()
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
        let opened = self.connect().and_then(|client| {
            let mut c = Conn {
                client,
                stmts: HashMap::new(),
            };
            self.batch(&mut c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            Ok(c)
        });
        if opened.is_err() {
            self.reader_gone();
        }
        opened
    }

    /// Hands a read connection back: ends its read and begins the next, and keeps it idle
    /// (unless it broke, or more than `pool_max` are open).
    fn give_reader(&self, mut c: Conn, used: bool) {
        if c.client.is_closed() || (used && self.batch(&mut c, NEXT_READ).is_err()) {
            return self.reader_gone();
        }
        let mut p = lock(&self.pool);
        if p.open > self.pool_max {
            p.open -= 1;
        } else {
            p.idle.push(c);
        }
        self.reader_free.notify_one();
    }

    /// A read connection was dropped.
    fn reader_gone(&self) {
        let mut p = lock(&self.pool);
        p.open = p.open.saturating_sub(1);
        self.reader_free.notify_one();
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kinds of prepared statement.
const GET: u8 = 0;
const COUNT: u8 = 1;
const BYTES: u8 = 2;
/// Scans: `SCAN + (lo * 3 + hi) * 2 + desc`, bounds coded 0 unbounded, 1 included, 2 excluded.
const SCAN: u8 = 8;

fn sql_of(table: &str, kind: u8) -> String {
    match kind {
        GET => format!("SELECT v FROM {table} WHERE k = $1"),
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
        let (url, schema, pool_max) = split_url(url)?;
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
        let shared = Arc::new(Shared {
            config,
            lock_key: lock_key(&schema),
            schema,
            names,
            pool: Mutex::new(Readers::default()),
            pool_max: pool_max.max(1),
            reader_free: Condvar::new(),
            writer: Mutex::new(WriterSlot::default()),
            writer_free: Condvar::new(),
            round_trips: AtomicU64::new(0),
        });
        let mut c = Conn {
            client: shared.connect()?,
            stmts: HashMap::new(),
        };
        shared.batch(&mut c, &create_sql(&shared, tables))?;
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
         INSERT INTO {schema}.bespin_meta VALUES ('schema_version', {SCHEMA_VERSION}) ON CONFLICT DO NOTHING; ",
        key = s.lock_key
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
            conn: Mutex::new(None),
        }))
    }

    fn begin(&self, durable: bool) -> Result<Box<dyn WriteBatch>> {
        let s = &self.shared;
        let mut conn = {
            let mut w = lock(&s.writer);
            while w.busy {
                w = s.writer_free.wait(w).unwrap_or_else(|p| p.into_inner());
            }
            w.busy = true;
            w.conn.take()
        };
        let begun = (|| {
            let mut c = match conn.take() {
                Some(c) if !c.client.is_closed() => c,
                _ => Conn {
                    client: s.connect()?,
                    stmts: HashMap::new(),
                },
            };
            let sync = if durable {
                ""
            } else {
                "SET LOCAL synchronous_commit = off; "
            };
            s.batch(
                &mut c,
                &format!(
                    "BEGIN; {sync}SELECT pg_advisory_xact_lock({WRITE_LOCK}, {})",
                    s.lock_key
                ),
            )?;
            Ok(c)
        })();
        match begun {
            Ok(c) => Ok(Box::new(PgBatch {
                shared: Arc::clone(s),
                conn: std::cell::RefCell::new(Some(c)),
                tables: std::cell::RefCell::new(HashMap::new()),
                seqs: Vec::new(),
                sequences: self.sequences,
                released: false,
            })),
            Err(e) => {
                release_writer(s, None);
                Err(e)
            }
        }
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
}

fn release_writer(s: &Shared, conn: Option<Conn>) {
    let mut w = lock(&s.writer);
    w.busy = false;
    w.conn = conn.filter(|c| !c.client.is_closed());
    s.writer_free.notify_one();
}

/// A read transaction on a pooled connection, taken at the first read.
struct PgSnapshot {
    shared: Arc<Shared>,
    conn: Mutex<Option<Conn>>,
}

impl PgSnapshot {
    fn with<T>(&self, f: impl FnOnce(&Shared, &mut Conn) -> Result<T>) -> Result<T> {
        let mut slot = lock(&self.conn);
        if slot.is_none() {
            *slot = Some(self.shared.take_reader()?);
        }
        let Some(c) = slot.as_mut() else {
            return Err(Error::Internal("no read connection".into()));
        };
        let out = f(&self.shared, c);
        if let Err(e) = &out {
            // The transaction is aborted (or the connection gone): this snapshot cannot read
            // on; its connection is dropped rather than handed back.
            if slot.take().is_some() {
                self.shared.reader_gone();
            }
            if matches!(e, Error::Unavailable(_)) {
                self.shared.drop_idle();
            }
        }
        out
    }
}

impl Drop for PgSnapshot {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.conn).take() {
            self.shared.give_reader(c, true);
        }
    }
}

impl Reads for PgSnapshot {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(|s, c| s.get(c, t, key))
    }

    fn scan(
        &self,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        paged(
            &mut |lo, hi, limit| self.with(|s, c| s.page(c, t, lo, hi, order, limit)),
            &mut |_, _| Vec::new(),
            lo,
            hi,
            order,
            visit,
        )
    }
}

impl Snapshot for PgSnapshot {
    fn count(&self, t: TableId) -> Result<u64> {
        self.with(|s, c| {
            let rows = s.query(c, t.slot, COUNT, &[])?;
            let n: i64 = rows
                .first()
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(pg_err)?
                .unwrap_or(0);
            Ok(n.max(0) as u64)
        })
    }

    fn stored_bytes(&self, tables: &[TableId]) -> Result<u64> {
        let mut total = 0u64;
        for t in tables {
            total += self.with(|s, c| {
                let rows = s.query(c, t.slot, BYTES, &[])?;
                let n: i64 = rows
                    .first()
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(pg_err)?
                    .unwrap_or(0);
                Ok(n.max(0) as u64)
            })?;
        }
        Ok(total)
    }
}

/// Rows of a scan: the pages the database gives (`fetch(lo, hi, limit)`), merged with the
/// rows a batch holds in memory for the part of the range each page covers (`overlay(lo,
/// hi)`: `None` values are removals), visited in `order` until the visitor stops.
#[allow(clippy::type_complexity)]
fn paged(
    fetch: &mut dyn FnMut(Bound<&[u8]>, Bound<&[u8]>, i64) -> Result<Vec<(Vec<u8>, Vec<u8>)>>,
    overlay: &mut dyn FnMut(Bound<&[u8]>, Bound<&[u8]>) -> Vec<(Vec<u8>, Option<Vec<u8>>)>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    order: Order,
    visit: &mut RawVisitor<'_>,
) -> Result<()> {
    let owned = |b: Bound<&[u8]>| b.map(<[u8]>::to_vec);
    let (mut lo, mut hi) = (owned(lo), owned(hi));
    let mut limit = FIRST_PAGE;
    loop {
        let page = fetch(as_ref(&lo), as_ref(&hi), limit)?;
        let done = (page.len() as i64) < limit;
        // The part of the range this page covers: all of what is left when it is the last.
        let edge = match page.last() {
            Some((k, _)) if !done => Bound::Included(k.clone()),
            _ => match order {
                Order::Asc => hi.clone(),
                Order::Desc => lo.clone(),
            },
        };
        let mem = match order {
            Order::Asc => overlay(as_ref(&lo), as_ref(&edge)),
            Order::Desc => {
                let mut m = overlay(as_ref(&edge), as_ref(&hi));
                m.reverse();
                m
            }
        };
        if merge(page, mem, order, visit)? {
            return Ok(());
        }
        if done {
            return Ok(());
        }
        let next = match edge {
            Bound::Included(k) => Bound::Excluded(k),
            other => other,
        };
        match order {
            Order::Asc => lo = next,
            Order::Desc => hi = next,
        }
        limit = (limit * 8).min(MAX_PAGE);
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Visits the rows of `db` and `mem` (both in `order`) as one sequence, `mem` winning on equal
/// keys; `true` when the visitor stopped.
fn merge(
    db: Vec<(Vec<u8>, Vec<u8>)>,
    mem: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    order: Order,
    visit: &mut RawVisitor<'_>,
) -> Result<bool> {
    let before = |a: &[u8], b: &[u8]| match order {
        Order::Asc => a < b,
        Order::Desc => a > b,
    };
    let mut db = db.into_iter().peekable();
    let mut mem = mem.into_iter().peekable();
    loop {
        let take_mem = match (db.peek(), mem.peek()) {
            (None, None) => return Ok(false),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((dk, _)), Some((mk, _))) => {
                if dk == mk {
                    db.next();
                    true
                } else {
                    before(mk, dk)
                }
            }
        };
        let flow = if take_mem {
            match mem.next() {
                Some((k, Some(v))) => visit(&k, &v)?,
                _ => Flow::Continue,
            }
        } else {
            match db.next() {
                Some((k, v)) => visit(&k, &v)?,
                None => Flow::Continue,
            }
        };
        if let Flow::Stop = flow {
            return Ok(true);
        }
    }
}

/// A row a batch knows: read from the database (`clean`), or written by it.
#[derive(Clone)]
struct Known {
    value: Option<Vec<u8>>,
    dirty: bool,
}

/// What a batch holds of one table.
#[derive(Default)]
struct Overlay {
    rows: BTreeMap<Vec<u8>, Known>,
    /// Emptied by the batch: the database's rows of it no longer count, and go at commit.
    cleared: bool,
}

/// The write transaction of a batch (see the module's doc).
struct PgBatch {
    shared: Arc<Shared>,
    /// `None` once committed or broken.
    conn: std::cell::RefCell<Option<Conn>>,
    tables: std::cell::RefCell<HashMap<usize, Overlay>>,
    /// The sequences advanced in this batch and their last value, stored at commit.
    seqs: Vec<(String, u64)>,
    sequences: TableId,
    /// Whether the writer's slot was handed back (by the commit).
    released: bool,
}

impl PgBatch {
    fn with<T>(&self, f: impl FnOnce(&Shared, &mut Conn) -> Result<T>) -> Result<T> {
        let mut slot = self.conn.borrow_mut();
        let Some(c) = slot.as_mut() else {
            return Err(Error::Unavailable(
                "PostgreSQL: the batch's connection failed".into(),
            ));
        };
        let out = f(&self.shared, c);
        if out.is_err() {
            // The transaction is aborted: nothing more of this batch can succeed.
            *slot = None;
        }
        out
    }

    fn known(&self, t: TableId, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let tables = self.tables.borrow();
        let o = tables.get(&t.slot)?;
        match o.rows.get(key) {
            Some(k) => Some(k.value.clone()),
            None if o.cleared => Some(None),
            None => None,
        }
    }

    fn set(&mut self, t: TableId, key: &[u8], value: Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let old = self.get(t, key)?;
        self.tables
            .get_mut()
            .entry(t.slot)
            .or_default()
            .rows
            .insert(key.to_vec(), Known { value, dirty: true });
        Ok(old)
    }

    /// The statements that store the batch's writes, then `COMMIT`: one simple query, so
    /// the whole flush is one round trip (values as hex `bytea` literals, which cannot hold a
    /// quote).
    fn flush_sql(&self) -> String {
        let tables = self.tables.borrow();
        let mut slots: Vec<&usize> = tables.keys().collect();
        slots.sort();
        let mut sql = String::new();
        for slot in slots {
            let o = &tables[slot];
            let name = &self.shared.names[*slot];
            if o.cleared {
                let _ = write!(sql, "DELETE FROM {name}; ");
            }
            let mut puts = o
                .rows
                .iter()
                .filter_map(|(k, r)| Some((k, r.value.as_ref()?)).filter(|_| r.dirty))
                .peekable();
            if puts.peek().is_some() {
                let _ = write!(sql, "INSERT INTO {name} (k, v) VALUES ");
                for (i, (k, v)) in puts.enumerate() {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str("('\\x");
                    hex(&mut sql, k);
                    sql.push_str("'::bytea,'\\x");
                    hex(&mut sql, v);
                    sql.push_str("'::bytea)");
                }
                sql.push_str(" ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v; ");
            }
            let mut dels = o
                .rows
                .iter()
                .filter(|(_, r)| r.dirty && r.value.is_none())
                .peekable();
            if dels.peek().is_some() && !o.cleared {
                let _ = write!(sql, "DELETE FROM {name} WHERE k IN (");
                for (i, (k, _)) in dels.enumerate() {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str("'\\x");
                    hex(&mut sql, k);
                    sql.push_str("'::bytea");
                }
                sql.push_str("); ");
            }
        }
        sql.push_str("COMMIT");
        sql
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

impl Drop for PgBatch {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Uncommitted: roll back (a broken connection is simply dropped).
        let conn = self
            .conn
            .get_mut()
            .take()
            .and_then(|mut c| self.shared.batch(&mut c, "ROLLBACK").ok().map(|()| c));
        release_writer(&self.shared, conn);
    }
}

impl Reads for PgBatch {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.known(t, key) {
            return Ok(v);
        }
        let v = self.with(|s, c| s.get(c, t, key))?;
        // Kept: under the write lock nobody else changes it before this batch ends.
        self.tables
            .borrow_mut()
            .entry(t.slot)
            .or_default()
            .rows
            .insert(
                key.to_vec(),
                Known {
                    value: v.clone(),
                    dirty: false,
                },
            );
        Ok(v)
    }

    fn scan(
        &self,
        t: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut RawVisitor<'_>,
    ) -> Result<()> {
        let cleared = self.tables.borrow().get(&t.slot).is_some_and(|o| o.cleared);
        paged(
            &mut |lo, hi, limit| {
                if cleared {
                    return Ok(Vec::new());
                }
                self.with(|s, c| s.page(c, t, lo, hi, order, limit))
            },
            &mut |lo, hi| {
                let tables = self.tables.borrow();
                let Some(o) = tables.get(&t.slot) else {
                    return Vec::new();
                };
                if matches!((lo, hi), (Bound::Included(a), Bound::Included(b))
                    | (Bound::Included(a), Bound::Excluded(b))
                    | (Bound::Excluded(a), Bound::Included(b))
                    | (Bound::Excluded(a), Bound::Excluded(b)) if a > b)
                {
                    return Vec::new();
                }
                // Clean rows are the database's own values: only what the batch wrote counts.
                o.rows
                    .range::<[u8], _>((lo, hi))
                    .filter(|(_, r)| r.dirty)
                    .map(|(k, r)| (k.clone(), r.value.clone()))
                    .collect()
            },
            lo,
            hi,
            order,
            visit,
        )
    }
}

impl WriteBatch for PgBatch {
    fn put(&mut self, t: TableId, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.set(t, key, Some(value.to_vec()))
    }

    fn remove(&mut self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.set(t, key, None)
    }

    fn clear(&mut self, t: TableId) -> Result<()> {
        let o = self.tables.get_mut().entry(t.slot).or_default();
        o.rows.clear();
        o.cleared = true;
        Ok(())
    }

    fn next_seq(&mut self, name: &str) -> Result<u64> {
        if let Some((_, last)) = self.seqs.iter_mut().find(|(n, _)| n == name) {
            *last += 1;
            return Ok(*last);
        }
        let stored = match self.get(self.sequences, &seq_key(name))? {
            Some(bytes) => codec::decode::<u64>(&bytes)?,
            None => 0,
        };
        self.seqs.push((name.to_owned(), stored + 1));
        Ok(stored + 1)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        for (name, last) in std::mem::take(&mut self.seqs) {
            let v = codec::encode(&last)?;
            self.set(self.sequences, &seq_key(&name), Some(v))?;
        }
        let sql = self.flush_sql();
        let out = self.with(|s, c| s.batch(c, &sql));
        if out.is_ok() {
            // Committed: hand the connection back as it is (Drop would roll back).
            let conn = self.conn.get_mut().take();
            release_writer(&self.shared, conn);
            self.released = true;
        }
        out
    }
}
