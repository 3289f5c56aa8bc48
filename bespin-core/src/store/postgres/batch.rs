//! The write batch of the PostgreSQL backend: the overlay of the batch's writes, the writer's
//! cache, and the flush at commit.

use super::super::Order;
use super::super::backend::{BatchSequences, Prior, RawVisitor, Reads, TableId, WriteBatch};
use super::cache::{RowCache, Write};
use super::scan::paged;
use super::{COMMITS, Conn, Shared, WRITE_LOCK, counts, ident, lock, pg_err};
use crate::error::{Error, Result};
use postgres::Statement;
use postgres::types::{ToSql, Type};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;

/// Brings the row cache from `epoch` to `epoch + 1` by what the batch committed there read
/// and wrote (its overlay): the pages of every table it changed are brought forward by its
/// writes, or go ([`RowCache::changed`]), and everything of a table it emptied goes; the rows
/// it read and wrote are kept. A cache already at `epoch + 1` (a reader saw the commit first)
/// takes them too; one at any other count is left alone.
fn absorb(cache: &mut RowCache, overlays: HashMap<usize, Overlay>, epoch: i64, recorded: bool) {
    if !cache.advance(epoch, recorded) {
        return;
    }
    for (slot, o) in overlays {
        if o.cleared {
            // What is not in the overlay is gone: forget the table.
            cache.drop_table(slot);
        } else {
            let writes: Vec<Write<'_>> = o
                .rows
                .iter()
                .filter(|(_, r)| r.dirty)
                .map(|(k, r)| (k.as_slice(), r.value.as_deref()))
                .collect();
            if !writes.is_empty() {
                cache.changed(slot, Some(&writes));
            }
        }
        for (k, r) in o.rows {
            cache.put_row(slot, k, r.value);
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
pub(super) struct PgBatch {
    shared: Arc<Shared>,
    /// `None` once committed or broken.
    conn: std::cell::RefCell<Option<Conn>>,
    tables: std::cell::RefCell<HashMap<usize, Overlay>>,
    /// The sequences advanced in this batch, stored at commit.
    seqs: BatchSequences,
    sequences: TableId,
    /// Whether the writer's slot was handed back (by the commit).
    released: bool,
    /// The commit count read when the batch began.
    epoch: i64,
    /// The `NOTIFY` sent with the `COMMIT` when the batch announced news (`listen.rs`).
    notify: Option<String>,
    /// Whether the commit records the tables it wrote (`counts.rs`): while another process
    /// commits too (within `OTHERS_LATELY` of its last commit seen), whose row cache then
    /// keeps what this one did not write. A lone server records nothing: two more rows in
    /// every flush cost it 12-14% of its writes on PostgreSQL, for no one.
    record: bool,
}

/// Hands the writer's connection (if it is still good) back, and wakes the next batch.
fn release_writer(s: &Shared, conn: Option<Conn>) {
    let mut w = lock(&s.writer);
    w.busy = false;
    w.conn = conn.filter(|c| !c.client.is_closed());
    s.writer_free.notify_one();
}

impl PgBatch {
    /// Begins the batch: waits for the writer's connection (one batch at a time in a
    /// process), then `BEGIN`, the write lock (every process's batches, one at a time) and the
    /// commit count, in one round trip.
    pub(super) fn begin(shared: &Arc<Shared>, sequences: TableId, durable: bool) -> Result<Self> {
        let s = shared;
        let conn = {
            let mut w = lock(&s.writer);
            while w.busy {
                w = s.writer_free.wait(w).unwrap_or_else(|p| p.into_inner());
            }
            w.busy = true;
            w.conn.take()
        };
        let mut conn = match conn {
            Some(c) if !c.client.is_closed() => Some(c),
            _ => None,
        };
        let begun = (|| {
            let mut c = match conn.take() {
                Some(c) => c,
                None => Conn::new(s.connect()?),
            };
            let sync = if durable {
                ""
            } else {
                "SET LOCAL synchronous_commit = off; "
            };
            let since = lock(&s.rows).since();
            let sql = format!(
                "BEGIN; {sync}SELECT pg_advisory_xact_lock({WRITE_LOCK}, {}); {}",
                s.lock_key,
                counts::sql(&s.schema, since)
            );
            s.round_trips
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let answer = c.client.simple_query(&sql).map_err(pg_err)?;
            let seen = counts::parse(&answer, since)?;
            Ok((c, seen))
        })();
        match begun {
            Ok((c, seen)) => {
                // Another process may have committed since (no reader can be ahead of this
                // count while the lock is held): the cache drops what it wrote.
                s.learn(&seen);
                let epoch = seen.epoch;
                let record = lock(&s.rows).others_lately();
                Ok(PgBatch {
                    shared: Arc::clone(s),
                    conn: std::cell::RefCell::new(Some(c)),
                    tables: std::cell::RefCell::new(HashMap::new()),
                    seqs: BatchSequences::default(),
                    sequences,
                    released: false,
                    epoch,
                    notify: None,
                    record,
                })
            }
            Err(e) => {
                release_writer(s, None);
                Err(e)
            }
        }
    }

    /// After a commit: hands the connection back as it is (Drop would roll back) and frees
    /// the writer's slot.
    fn hand_back(&mut self) {
        let conn = self.conn.get_mut().take();
        release_writer(&self.shared, conn);
        self.released = true;
    }

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
        match tables.get(&t.slot) {
            Some(o) => match o.rows.get(key) {
                Some(k) => Some(k.value.clone()),
                None if o.cleared => Some(None),
                None => lock(&self.shared.rows).get(self.epoch, t, key),
            },
            None => lock(&self.shared.rows).get(self.epoch, t, key),
        }
    }

    /// Writes `value` (`None`: a removal) into the overlay; what it replaced, read from the
    /// database only when `want_old` and the batch does not know it.
    fn set(
        &mut self,
        t: TableId,
        key: &[u8],
        value: Option<Vec<u8>>,
        want_old: bool,
    ) -> Result<Prior> {
        let old = match self.known(t, key) {
            Some(v) => Prior::Was(v),
            None if want_old => Prior::Was(self.get(t, key)?),
            None => Prior::Unread,
        };
        self.tables
            .get_mut()
            .entry(t.slot)
            .or_default()
            .rows
            .insert(key.to_vec(), Known { value, dirty: true });
        Ok(old)
    }

    /// What the batch writes, per table it touched (by slot, in slot order): whether it
    /// emptied it, the rows it puts and the keys it removes.
    fn writes<'a>(tables: &'a HashMap<usize, Overlay>) -> Vec<TableWrites<'a>> {
        let mut slots: Vec<usize> = tables.keys().copied().collect();
        slots.sort_unstable();
        slots
            .into_iter()
            .map(|slot| {
                let o = &tables[&slot];
                let mut w = TableWrites {
                    slot,
                    cleared: o.cleared,
                    puts: Vec::new(),
                    dels: Vec::new(),
                };
                for (k, r) in o.rows.iter().filter(|(_, r)| r.dirty) {
                    match &r.value {
                        Some(v) => w.puts.push((k.as_slice(), v.as_slice())),
                        // A cleared table's removals are done by its `DELETE FROM`.
                        None if !o.cleared => w.dels.push(k.as_slice()),
                        None => {}
                    }
                }
                w
            })
            .collect()
    }

    /// The statements that store the batch's writes, then `COMMIT`, as one simple query
    /// (values as hex `bytea` literals, which cannot hold a quote): the flush of a batch that
    /// emptied a table, whose `DELETE FROM` must come before its new rows (one statement's
    /// CTEs all see the same snapshot: [`PgBatch::flush`]).
    fn flush_sql(&self, writes: &[TableWrites<'_>]) -> String {
        let mut sql = String::new();
        for w in writes {
            let name = &self.shared.names[w.slot];
            if w.cleared {
                let _ = write!(sql, "DELETE FROM {name}; ");
            }
            if !w.puts.is_empty() {
                let _ = write!(sql, "INSERT INTO {name} (k, v) VALUES ");
                for (i, (k, v)) in w.puts.iter().enumerate() {
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
            if !w.dels.is_empty() {
                let _ = write!(sql, "DELETE FROM {name} WHERE k IN (");
                for (i, k) in w.dels.iter().enumerate() {
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
        if self.record {
            let written: Vec<&str> = writes
                .iter()
                .filter(|w| w.cleared || !w.puts.is_empty() || !w.dels.is_empty())
                .map(|w| self.shared.tables[w.slot])
                .collect();
            sql.push_str(&counts::record(
                &self.shared.schema,
                &written,
                &(self.epoch + 1).to_string(),
                false,
            ));
        }
        let _ = write!(
            sql,
            "UPDATE {}.bespin_meta SET value = {} WHERE name = '{COMMITS}'; {}COMMIT",
            ident(&self.shared.schema),
            self.epoch + 1,
            self.notify.as_deref().unwrap_or("")
        );
        sql
    }

    /// The statement storing writes of `shape` ([`shape`]): data-modifying CTEs, one per
    /// table and kind (`INSERT … SELECT * FROM unnest($keys, $values) ON CONFLICT (k) DO
    /// UPDATE`, `DELETE … WHERE k = ANY($keys)`), when the shape ends in [`RECORDS`] the
    /// record of the tables written (`counts::record`), the update of the commit count its main
    /// statement. Its parameters, in order: the [`arrays`], then the new commit count.
    fn flush_statement(&self, shape: &[u32]) -> String {
        let (shape, record) = match shape.split_last() {
            Some((&RECORDS, tables)) => (tables, true),
            _ => (shape, false),
        };
        let mut sql = String::new();
        let mut n = 0;
        for (i, &code) in shape.iter().enumerate() {
            let name = &self.shared.names[(code >> 2) as usize];
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            if code & PUTS != 0 {
                let _ = write!(
                    sql,
                    "w{i} AS (INSERT INTO {name} (k, v) SELECT * FROM unnest(${}::bytea[], \
                     ${}::bytea[]) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v)",
                    n + 1,
                    n + 2
                );
                n += 2;
            } else {
                let _ = write!(
                    sql,
                    "w{i} AS (DELETE FROM {name} WHERE k = ANY(${}::bytea[]))",
                    n + 1
                );
                n += 1;
            }
        }
        if record {
            let mut written: Vec<&str> = shape
                .iter()
                .map(|&code| self.shared.tables[(code >> 2) as usize])
                .collect();
            written.dedup();
            sql.push_str(if shape.is_empty() { "WITH " } else { ", " });
            sql.push_str(&counts::record(
                &self.shared.schema,
                &written,
                &format!("${}::int8", n + 1),
                true,
            ));
        }
        let _ = write!(
            sql,
            " UPDATE {}.bespin_meta SET value = ${}::int8 WHERE name = '{COMMITS}'",
            ident(&self.shared.schema),
            n + 1
        );
        sql
    }

    /// Sends the batch's writes and `COMMIT`.
    ///
    /// A batch that emptied a table (rare: a restore, a layout upgrade) sends SQL text in one
    /// simple query ([`PgBatch::flush_sql`]). Any other sends its rows as binary `bytea[]`
    /// parameters of one statement prepared once per connection and shape (the tables
    /// written, and how: [`FlushStatements`]), then `NOTIFY` (if any) and `COMMIT` as a
    /// simple query: two round trips, a third the first time the connection sees the shape.
    /// PostgreSQL then neither lexes hex literals nor parses, analyses and plans a statement
    /// per table at every batch (see docs/performance.md, "PostgreSQL flush, stop 32").
    fn flush(&self) -> Result<()> {
        let tables = self.tables.borrow();
        let writes = Self::writes(&tables);
        if writes.iter().any(|w| w.cleared) {
            let sql = self.flush_sql(&writes);
            return self.with(|s, c| s.batch(c, &sql));
        }
        let mut shape = shape(&writes);
        if self.record {
            shape.push(RECORDS);
        }
        let arrays = arrays(&writes);
        let count = self.epoch + 1;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        params.push(&count);
        let commit = format!("{}COMMIT", self.notify.as_deref().unwrap_or(""));
        self.with(|s, c| {
            let st = match c.flush.get(&shape) {
                Some(st) => st,
                None => {
                    let mut types = vec![Type::BYTEA_ARRAY; arrays.len()];
                    types.push(Type::INT8);
                    s.trip()?;
                    let st = c
                        .client
                        .prepare_typed(&self.flush_statement(&shape), &types)
                        .map_err(pg_err)?;
                    c.flush.keep(shape, st.clone());
                    st
                }
            };
            s.trip()?;
            c.client.execute(&st, &params).map_err(pg_err)?;
            s.batch(c, &commit)
        })
    }
}

/// A table's code in a [`shape`] when it puts rows (without: when it removes some).
const PUTS: u32 = 1;
/// The last code of a flush statement's shape when the commit records the tables it wrote
/// (`counts::record`; no table's code: slots are far fewer).
const RECORDS: u32 = u32::MAX;

/// The shape of a batch's writes: per table written, in slot order, `slot << 2 | PUTS` when
/// it puts rows, then `slot << 2` when it removes some.
fn shape(writes: &[TableWrites<'_>]) -> Vec<u32> {
    let mut shape = Vec::with_capacity(writes.len() + 2);
    for w in writes {
        let code = (w.slot as u32) << 2;
        if !w.puts.is_empty() {
            shape.push(code | PUTS);
        }
        if !w.dels.is_empty() {
            shape.push(code);
        }
    }
    shape
}

/// The array parameters of a batch's flush statement, in the order of its [`shape`]: a
/// table's keys and values when it puts rows, then its keys removed.
fn arrays<'a>(writes: &[TableWrites<'a>]) -> Vec<Vec<&'a [u8]>> {
    let mut arrays = Vec::new();
    for w in writes {
        if !w.puts.is_empty() {
            arrays.push(w.puts.iter().map(|p| p.0).collect());
            arrays.push(w.puts.iter().map(|p| p.1).collect());
        }
        if !w.dels.is_empty() {
            arrays.push(w.dels.clone());
        }
    }
    arrays
}

/// How many flush statements a connection keeps prepared (the least recently used goes
/// first): a workload's batches come in a few shapes (a run of task creates writes the same
/// tables every time), and each statement kept holds its plan in the server's memory.
const KEPT_SHAPES: usize = 32;

/// The flush statements prepared on a connection, by shape ([`PgBatch::flush`]).
#[derive(Default)]
pub(super) struct FlushStatements {
    by_shape: HashMap<Vec<u32>, (Statement, u64)>,
    uses: u64,
}

impl FlushStatements {
    fn get(&mut self, shape: &[u32]) -> Option<Statement> {
        self.uses += 1;
        let (st, used) = self.by_shape.get_mut(shape)?;
        *used = self.uses;
        Some(st.clone())
    }

    /// Keeps `st`, forgetting the least recently used statement when full (dropping its
    /// last handle closes it on the server).
    fn keep(&mut self, shape: Vec<u32>, st: Statement) {
        if self.by_shape.len() >= KEPT_SHAPES {
            let oldest = self
                .by_shape
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.by_shape.remove(&k);
            }
        }
        self.by_shape.insert(shape, (st, self.uses));
    }
}

/// What a batch writes to one table (see [`PgBatch::writes`]).
struct TableWrites<'a> {
    slot: usize,
    cleared: bool,
    puts: Vec<(&'a [u8], &'a [u8])>,
    dels: Vec<&'a [u8]>,
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
        // Rolled back, the database is as the cache knew it (and if the end of a failed
        // COMMIT did commit, the count moved on and the next batch empties the cache).
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
                    return Ok(Arc::default());
                }
                // The page as of the batch's commit count, which is the database's state all
                // along the batch (its writes are flushed only with its COMMIT, and the write
                // lock keeps other writers out): shared with the snapshots at that count; the
                // batch's own writes merge over it as over a page read now.
                let p = super::PageOf {
                    t,
                    lo,
                    hi,
                    order,
                    limit,
                };
                self.with(|s, c| s.page_at(c, self.epoch, p))
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
    fn put(&mut self, t: TableId, key: &[u8], value: &[u8], want_old: bool) -> Result<Prior> {
        self.set(t, key, Some(value.to_vec()), want_old)
    }

    fn forget(&mut self, t: TableId, key: &[u8]) -> Result<()> {
        if let Some(o) = self.tables.get_mut().get_mut(&t.slot) {
            o.rows.remove(key);
        }
        Ok(())
    }

    fn prefetch(&self, t: TableId, keys: &[&[u8]]) -> Result<()> {
        let unknown: Vec<&[u8]> = keys
            .iter()
            .copied()
            .filter(|k| self.known(t, k).is_none())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut found: HashMap<Vec<u8>, Vec<u8>> = self
            .with(|s, c| s.get_many(c, t, &unknown))?
            .into_iter()
            .collect();
        // Kept as `get` keeps what it read: under the write lock nobody else changes them
        // before this batch ends.
        let mut tables = self.tables.borrow_mut();
        let rows = &mut tables.entry(t.slot).or_default().rows;
        for k in unknown {
            let value = found.remove(k);
            rows.entry(k.to_vec()).or_insert(Known {
                value,
                dirty: false,
            });
        }
        Ok(())
    }

    fn prefetches(&self) -> bool {
        true
    }

    fn remove(&mut self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.set(t, key, None, true)? {
            Prior::Was(old) => Ok(old),
            Prior::Unread => Err(Error::Internal("remove: the old value was not read".into())),
        }
    }

    fn clear(&mut self, t: TableId) -> Result<()> {
        let o = self.tables.get_mut().entry(t.slot).or_default();
        o.rows.clear();
        o.cleared = true;
        Ok(())
    }

    fn next_seq(&mut self, name: &str) -> Result<u64> {
        let mut seqs = std::mem::take(&mut self.seqs);
        let next = seqs.next(name, |key| self.get(self.sequences, key));
        self.seqs = seqs;
        next
    }

    fn announce(&mut self, topics: &[String]) {
        self.notify = Some(super::listen::notify_sql(&self.shared, topics));
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        for (key, value) in self.seqs.take_rows()? {
            self.set(self.sequences, &key, Some(value), false)?;
        }
        let wrote = self
            .tables
            .get_mut()
            .values()
            .any(|o| o.cleared || o.rows.values().any(|r| r.dirty));
        if !wrote && self.notify.is_none() {
            // Nothing written (an upkeep tick that found nothing to do): the commit count
            // stays, so no other process's row cache is emptied for a change that is none —
            // an idle server's ticks used to empty its peers' caches every second.
            let out = self.with(|s, c| s.batch(c, "COMMIT"));
            if out.is_ok() {
                self.hand_back();
            }
            return out;
        }
        // Readers that see the commit before `absorb` brings the cache to it must not empty
        // the cache as for another process's commit.
        lock(&self.shared.rows).committing(Some(self.epoch + 1));
        let out = self.flush();
        if out.is_ok() {
            let written = std::mem::take(self.tables.get_mut());
            absorb(
                &mut lock(&self.shared.rows),
                written,
                self.epoch,
                self.record,
            );
            self.hand_back();
        } else {
            // Maybe committed all the same: then the count moved on, and the next batch or
            // reader that sees it empties the cache.
            lock(&self.shared.rows).committing(None);
        }
        out
    }
}
