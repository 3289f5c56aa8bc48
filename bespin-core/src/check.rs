//! The consistency checker: verifies the database's invariants over one read transaction.
//!
//! [`Bespin::check`] reads every table in one snapshot and reports each broken invariant as a
//! [`Violation`] (table, key, what is wrong), with row counts per table. It never writes. The
//! invariants:
//!
//! - **Every row decodes** with its table's record type, and every row of a tenant-scoped table
//!   belongs to an existing tenant.
//! - **Metering.** Every usage event is counted exactly once in its period rollup and once in
//!   its day rollup: per (tenant, period or UTC date, event key) the sums of raw units, credits
//!   and list cost of the events equal the rollup exactly (decimal arithmetic), `first_used` is
//!   the earliest event, and no rollup exists without events. A daily counter never exceeds the units metered that day.
//! - **References.** Audit rows name an existing user of their tenant; Core OS timeline events,
//!   reviews, executions and evidence point at an existing record; KPI chunks at an existing
//!   KPI; chat messages at an existing conversation; notification de-duplication entries at
//!   the notification they stand for.
//! - **KPI series.** Each chunk holds 1 to 128 points in strictly increasing instant order (no
//!   duplicate instant), is keyed by its first point's instant, and starts after the previous
//!   chunk of its series ends; the row-per-point table of older layouts is empty.
//! - **Idempotency.** Records decode, hold a JSON response, are indexed by age exactly once (so
//!   they are purgeable once past retention), are not dated in the future, and a stored
//!   response naming a `request_id` points at a committed usage event of that request.
//! - **Secondary indexes match their records both ways** (each record has exactly its index
//!   entries, each entry has its record): users by creation and user → tenant, KPIs by name and
//!   by creation, conversations by time, Core OS actions by time, tasks by due date, decisions
//!   and meetings by date, facts by key, the one active fact per key, the timeline's three
//!   indexes, and the search index with its rank rows (recomputed from the records' text and
//!   `updated_at`).
//! - **No plaintext key material.** Tenants store 32-byte SHA-256 digests; no stored value
//!   anywhere contains the plaintext of a live API key (every `bsk_…` token found is hashed and
//!   compared with every tenant's digest).

use crate::coreos::EntityType;
use crate::coreos::memory::FactRec;
use crate::coreos::search::{Searchable, doc_tokens, entry_key, rank_key};
use crate::coreos::timeline::{EventPos, EventRec};
use crate::error::Result;
use crate::kpis::series::{CHUNK_POINTS, ChunkRec};
use crate::limits::Activity;
use crate::metering::RollupRec;
use crate::money::Amount;
use crate::store::codec::{self, Record};
use crate::store::{Flow, Key, Order, Reader, Table, read_id, read_str, read_u64, tables};
use crate::time::{Date, Timestamp};
use crate::{Bespin, ids};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Bound;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The table holding the offending row (or missing it).
    pub table: &'static str,
    /// The row's key, printable (string parts separated by `/`, other bytes as `\xNN`).
    pub key: String,
    /// What is wrong.
    pub description: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.table, self.key, self.description)
    }
}

/// The result of [`Bespin::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every violation found (empty: the database is consistent).
    pub violations: Vec<Violation>,
    /// Rows read per table.
    pub rows: BTreeMap<&'static str, u64>,
    /// How many individual facts were verified.
    pub checks: u64,
}

impl CheckReport {
    /// Whether no invariant is broken.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Rows read in `table` (0 when empty or unknown).
    pub fn rows_in(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.rows.values().sum();
        writeln!(
            f,
            "bespin check: {} tables, {} rows, {} checks, {} violation(s)",
            self.rows.len(),
            total,
            self.checks,
            self.violations.len()
        )?;
        for (t, n) in &self.rows {
            if *n > 0 {
                writeln!(f, "  {t:<24} {n}")?;
            }
        }
        for v in &self.violations {
            writeln!(f, "VIOLATION {v}")?;
        }
        Ok(())
    }
}

/// Renders a key: string parts as text separated by `/`, other bytes as `\xNN`.
pub(crate) fn show_key(k: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < k.len() {
        let b = k[i];
        if b == 0 && k.get(i + 1) == Some(&1) {
            out.push('/');
            i += 2;
            continue;
        }
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
        i += 1;
    }
    out
}

type Rows<R> = Vec<(Vec<u8>, R)>;
type RawRows = BTreeMap<Vec<u8>, Vec<u8>>;

struct Checker<'r, Rd: Reader> {
    r: &'r Rd,
    now: Timestamp,
    retention: i64,
    report: CheckReport,
    tenants: HashSet<String>,
}

fn tenant_of(k: &[u8]) -> Option<String> {
    read_str(k, 0).map(|(s, _)| s)
}

/// The first `n` string parts of a key and the position after them.
fn leading_strs(k: &[u8], n: usize) -> Option<(Vec<String>, usize)> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for _ in 0..n {
        let (s, next) = read_str(k, at)?;
        out.push(s);
        at = next;
    }
    Some((out, at))
}

/// The string parts of a key from the start (stops at the first non-string part).
fn str_parts(k: &[u8], n: usize) -> Option<Vec<String>> {
    leading_strs(k, n).map(|(parts, _)| parts)
}

/// The first `n` string parts of a key and the record id after them (sealed or not).
fn parts_then_id(r: &impl Reader, k: &[u8], n: usize) -> Option<(Vec<String>, String)> {
    let (parts, at) = leading_strs(k, n)?;
    Some((parts, read_id(r.sealer(), k, at)?.0))
}

fn enc<R: Record>(v: &R) -> Vec<u8> {
    codec::encode(v).unwrap_or_default()
}

impl<'r, Rd: Reader> Checker<'r, Rd> {
    fn violation(&mut self, table: &'static str, key: &[u8], description: impl Into<String>) {
        self.report.violations.push(Violation {
            table,
            key: show_key(key),
            description: description.into(),
        });
    }

    fn ok(&mut self) {
        self.report.checks += 1;
    }

    /// Every row of `t`, raw.
    fn raw<R>(&mut self, t: &Table<R>) -> Result<RawRows> {
        let mut out = BTreeMap::new();
        self.r.scan_raw(
            t.name(),
            Bound::Unbounded,
            Bound::Unbounded,
            Order::Asc,
            &mut |k, v| {
                out.insert(k.to_vec(), v.to_vec());
                Ok(Flow::Continue)
            },
        )?;
        self.report.rows.insert(t.name(), out.len() as u64);
        Ok(out)
    }

    /// Every row of `t`, decoded; rows that do not decode are violations. With `scoped`, rows
    /// whose tenant does not exist are violations too.
    fn rows<R: Record>(&mut self, t: &Table<R>, scoped: bool) -> Result<Rows<R>> {
        let raw = self.raw(t)?;
        let mut out = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            if scoped {
                self.scoped(t.name(), &k);
            }
            match codec::decode::<R>(&v) {
                Ok(r) => {
                    self.ok();
                    out.push((k, r));
                }
                Err(e) => self.violation(t.name(), &k, format!("row does not decode: {e}")),
            }
        }
        Ok(out)
    }

    /// Checks that the key's leading tenant part names an existing tenant.
    fn scoped(&mut self, table: &'static str, k: &[u8]) {
        match tenant_of(k) {
            Some(t) if self.tenants.contains(&t) => self.ok(),
            Some(t) => self.violation(table, k, format!("row of missing tenant {t}")),
            None => self.violation(table, k, "key has no tenant part"),
        }
    }

    /// Reads index `t` and holds it to `expected` ([`Checker::same`]).
    fn index<R>(&mut self, t: &Table<R>, expected: RawRows, what: &str) -> Result<()> {
        let actual = self.raw(t)?;
        self.same(t.name(), expected, &actual, what);
        Ok(())
    }

    /// Compares an index's rows with the rows its records imply, both ways.
    fn same(&mut self, table: &'static str, expected: RawRows, actual: &RawRows, what: &str) {
        for (k, v) in &expected {
            match actual.get(k) {
                None => self.violation(table, k, format!("missing index entry for {what}")),
                Some(a) if a != v => self.violation(
                    table,
                    k,
                    format!("index entry for {what} has a wrong value"),
                ),
                Some(_) => self.ok(),
            }
        }
        for k in actual.keys() {
            if !expected.contains_key(k) {
                self.violation(
                    table,
                    k,
                    format!("index entry without its {what} (dangling or stale)"),
                );
            }
        }
    }

    fn run(&mut self) -> Result<()> {
        // Tenants first: every tenant-scoped row is checked against them.
        let tenants = self.rows(&tables::TENANTS, false)?;
        let mut digests: HashSet<[u8; 32]> = HashSet::new();
        for (k, t) in &tenants {
            if let Some(id) = tenant_of(k) {
                self.tenants.insert(id);
            }
            if t.api_key_digest == [0u8; 32] {
                self.violation(tables::TENANTS.name(), k, "API key digest is all zeros");
            }
            digests.insert(t.api_key_digest);
        }
        self.users()?;
        let events = self.metering()?;
        self.audit()?;
        self.idempotency(&events)?;
        self.kpis()?;
        self.conversations()?;
        self.notifications()?;
        self.coreos()?;
        self.plain()?;
        self.no_plaintext_keys(&digests)?;
        Ok(())
    }

    fn users(&mut self) -> Result<()> {
        let users = self.rows(&tables::USERS, true)?;
        let index = self.rows(&tables::USER_TENANT, false)?;
        let by_creation = self.rows(&tables::USERS_BY_CREATION, true)?;
        let mut known: HashSet<(String, String)> = HashSet::new();
        let mut user_tenant: HashMap<String, String> = HashMap::new();
        for (k, t) in &index {
            if let Some(u) = tenant_of(k) {
                user_tenant.insert(u, t.clone());
            }
        }
        for (k, _) in &users {
            let Some([t, u]) = two(k) else {
                self.violation(tables::USERS.name(), k, "malformed key");
                continue;
            };
            match user_tenant.get(&u) {
                Some(x) if *x == t => self.ok(),
                _ => self.violation(
                    tables::USER_TENANT.name(),
                    k,
                    "user has no user → tenant entry",
                ),
            }
            known.insert((t, u));
        }
        for (u, t) in &user_tenant {
            if !known.contains(&(t.clone(), u.clone())) {
                let k = Key::new().str(u);
                self.violation(
                    tables::USER_TENANT.name(),
                    k.as_bytes(),
                    format!("points at missing user of tenant {t}"),
                );
            }
        }
        let mut seen: HashMap<(String, String), u32> = HashMap::new();
        for (k, u) in &by_creation {
            let t = tenant_of(k).unwrap_or_default();
            if !known.contains(&(t.clone(), u.clone())) {
                self.violation(
                    tables::USERS_BY_CREATION.name(),
                    k,
                    format!("points at missing user {u}"),
                );
            }
            *seen.entry((t, u.clone())).or_default() += 1;
        }
        for (t, u) in &known {
            match seen.get(&(t.clone(), u.clone())) {
                Some(1) => self.ok(),
                n => {
                    let k = tables_key(&[t, u]);
                    self.violation(
                        tables::USERS_BY_CREATION.name(),
                        k.as_bytes(),
                        format!(
                            "user listed {} times in creation order (want 1)",
                            n.copied().unwrap_or(0)
                        ),
                    )
                }
            }
        }
        Ok(())
    }

    /// Usage events against period and day rollups and daily counters. Returns (tenant,
    /// request id) of every event.
    fn metering(&mut self) -> Result<HashSet<(String, String)>> {
        let events = self.rows(&tables::USAGE_EVENTS, true)?;
        let daily = self.rows(&tables::DAILY_ROLLUPS, true)?;
        let mut periods: BTreeMap<Vec<u8>, RollupRec> = BTreeMap::new();
        let mut days: BTreeMap<Vec<u8>, RollupRec> = BTreeMap::new();
        let mut per_day: HashMap<(String, Date), Amount> = HashMap::new();
        let mut requests = HashSet::new();
        for (k, e) in &events {
            let t = tenant_of(k).unwrap_or_default();
            if !k.starts_with(Key::new().str(&t).ts(e.created_at).as_bytes()) {
                self.violation(
                    tables::USAGE_EVENTS.name(),
                    k,
                    "key instant differs from created_at",
                );
            }
            requests.insert((t.clone(), e.request_id.clone()));
            let period = crate::metering::rollup_key(&t, e.created_at.period(), &e.event_key);
            let day = crate::metering::day_rollup_key(&t, e.created_at.date(), &e.event_key);
            for (sums, key) in [(&mut periods, period), (&mut days, day)] {
                let s = sums
                    .entry(key.as_bytes().to_vec())
                    .or_insert_with(|| RollupRec {
                        raw_units: Amount::ZERO,
                        credits: Amount::ZERO,
                        list_cost_estimate: Amount::ZERO,
                        first_used: e.created_at,
                    });
                s.raw_units += e.raw_units;
                s.credits += e.credits;
                s.list_cost_estimate += e.list_cost_estimate;
                s.first_used = s.first_used.min(e.created_at);
            }
            *per_day.entry((t, e.created_at.date())).or_default() += e.raw_units;
        }
        self.rollups(&tables::PERIOD_ROLLUPS, &periods)?;
        self.rollups(&tables::DAY_ROLLUPS, &days)?;
        // Daily counters: keyed (tenant, date, activity); each unit counted was metered by an
        // event of that tenant on that day.
        let mut expected_daily: HashMap<Vec<u8>, Amount> = HashMap::new();
        for ((t, d), units) in &per_day {
            for a in Activity::ALL {
                let k = crate::limits::rollup_key(t, *d, a);
                expected_daily.insert(k.as_bytes().to_vec(), *units);
            }
        }
        for (k, n) in &daily {
            if *n < 0 {
                self.violation(
                    tables::DAILY_ROLLUPS.name(),
                    k,
                    format!("negative counter {n}"),
                );
                continue;
            }
            match expected_daily.get(k) {
                Some(max) if Amount::from_int(*n) <= *max => self.ok(),
                Some(max) => self.violation(
                    tables::DAILY_ROLLUPS.name(),
                    k,
                    format!("daily counter {n} exceeds the {max} units metered that day"),
                ),
                None if *n == 0 => self.ok(),
                None => self.violation(
                    tables::DAILY_ROLLUPS.name(),
                    k,
                    format!("daily counter {n} without any usage event that day"),
                ),
            }
        }
        Ok(requests)
    }

    /// The rollups of `table` against the sums of their usage events (`expected`, by key): each
    /// equal, none without events, no events uncounted.
    fn rollups(
        &mut self,
        table: &Table<RollupRec>,
        expected: &BTreeMap<Vec<u8>, RollupRec>,
    ) -> Result<()> {
        let rows = self.rows(table, true)?;
        let name = table.name();
        let mut seen = HashSet::new();
        for (k, r) in &rows {
            seen.insert(k.clone());
            let Some(s) = expected.get(k) else {
                self.violation(name, k, "rollup without any usage event");
                continue;
            };
            let mut diff = Vec::new();
            if r.raw_units != s.raw_units {
                diff.push(format!(
                    "raw units {} ≠ events {}",
                    r.raw_units, s.raw_units
                ));
            }
            if r.credits != s.credits {
                diff.push(format!("credits {} ≠ events {}", r.credits, s.credits));
            }
            if r.list_cost_estimate != s.list_cost_estimate {
                let cost = s.list_cost_estimate;
                diff.push(format!("cost {} ≠ events {cost}", r.list_cost_estimate));
            }
            if r.first_used != s.first_used {
                diff.push("first_used is not the earliest event".into());
            }
            if diff.is_empty() {
                self.ok();
            } else {
                self.violation(name, k, diff.join("; "));
            }
        }
        for k in expected.keys() {
            if !seen.contains(k) {
                self.violation(name, k, "usage events not counted in any rollup");
            }
        }
        Ok(())
    }

    fn audit(&mut self) -> Result<()> {
        let rows = self.rows(&tables::AUDIT, true)?;
        for (k, a) in &rows {
            let t = tenant_of(k).unwrap_or_default();
            if !k.starts_with(Key::new().str(&t).ts(a.created_at).as_bytes()) {
                self.violation(
                    tables::AUDIT.name(),
                    k,
                    "key instant differs from created_at",
                );
            }
            if crate::tenancy::user_exists(self.r, &t, &a.user_id)? {
                self.ok();
            } else {
                self.violation(
                    tables::AUDIT.name(),
                    k,
                    format!("audit row of missing user {}", a.user_id),
                );
            }
        }
        Ok(())
    }

    fn idempotency(&mut self, requests: &HashSet<(String, String)>) -> Result<()> {
        let recs = self.rows(&tables::IDEMPOTENCY, true)?;
        let by_age = self.raw(&tables::IDEMPOTENCY_BY_AGE)?;
        let mut expected = BTreeMap::new();
        for (k, rec) in &recs {
            let t = tenant_of(k).unwrap_or_default();
            let age = [Key::new().ts(rec.created_at).as_bytes(), k.as_slice()].concat();
            expected.insert(age, enc(&()));
            if rec.created_at.0 > self.now.0 + 60_000_000 {
                self.violation(tables::IDEMPOTENCY.name(), k, "record dated in the future");
            }
            let expired = rec.created_at.0 + self.retention <= self.now.0;
            match crate::idempotency::parse_stored::<serde_json::Value>(&rec.response) {
                Ok(v) => {
                    self.ok();
                    if let Some(id) = v.get("request_id").and_then(|x| x.as_str())
                        && !expired
                    {
                        if requests.contains(&(t.clone(), id.to_owned())) {
                            self.ok();
                        } else {
                            self.violation(
                                tables::IDEMPOTENCY.name(),
                                k,
                                format!("stored response names request {id} with no usage event"),
                            );
                        }
                    }
                }
                Err(e) => self.violation(
                    tables::IDEMPOTENCY.name(),
                    k,
                    format!("response is not JSON: {e}"),
                ),
            }
            if rec.request_hash.len() != 64
                || !rec.request_hash.bytes().all(|b| b.is_ascii_hexdigit())
            {
                self.violation(
                    tables::IDEMPOTENCY.name(),
                    k,
                    "request hash is not SHA-256 hex",
                );
            }
        }
        self.same(
            tables::IDEMPOTENCY_BY_AGE.name(),
            expected,
            &by_age,
            "idempotency record",
        );
        Ok(())
    }

    fn kpis(&mut self) -> Result<()> {
        let kpis = self.rows(&tables::KPIS, true)?;
        let by_creation = self.raw(&tables::KPIS_BY_CREATION)?;
        let by_name = self.raw(&tables::KPIS_BY_NAME)?;
        let chunks = self.rows(&tables::KPI_CHUNKS, true)?;
        let (mut e_creation, mut e_name) = (BTreeMap::new(), BTreeMap::new());
        let mut ids = HashSet::new();
        for (k, rec) in &kpis {
            let Some([t, id]) = two(k) else {
                self.violation(tables::KPIS.name(), k, "malformed key");
                continue;
            };
            e_creation.insert(
                Key::new()
                    .str(&t)
                    .ts(rec.created_at)
                    .u64(rec.seq)
                    .as_bytes()
                    .to_vec(),
                enc(&id),
            );
            e_name.insert(
                Key::new()
                    .str(&t)
                    .str(&rec.name)
                    .u64(rec.seq)
                    .as_bytes()
                    .to_vec(),
                enc(&id),
            );
            ids.insert(Key::new().str(&t).str(&id).as_bytes().to_vec());
        }
        self.same(
            tables::KPIS_BY_CREATION.name(),
            e_creation,
            &by_creation,
            "KPI",
        );
        self.same(tables::KPIS_BY_NAME.name(), e_name, &by_name, "KPI");
        self.kpi_chunks(&chunks, &ids);
        // The upgrade to layout 4 moves the rows of the per-point table into chunks.
        let legacy = self.raw(&tables::KPI_POINTS)?;
        for k in legacy.keys() {
            self.violation(
                tables::KPI_POINTS.name(),
                k,
                "point row of a layout before chunks (the upgrade empties this table)",
            );
        }
        if legacy.is_empty() {
            self.ok();
        }
        Ok(())
    }

    /// Every chunk: of an existing KPI (`kpis` holds the (tenant, kpi) key prefixes), 1 to
    /// [`CHUNK_POINTS`] points in strictly increasing instant order, keyed by its first
    /// instant, and after the end of the previous chunk of its series.
    fn kpi_chunks(&mut self, chunks: &Rows<ChunkRec>, kpis: &HashSet<Vec<u8>>) {
        let table = tables::KPI_CHUNKS.name();
        // The series and last instant of the previous chunk (rows come in key order).
        let mut prev: Option<(Key, Timestamp)> = None;
        for (k, c) in chunks {
            let Some([t, id]) = two(k) else {
                self.violation(table, k, "malformed key");
                continue;
            };
            let series = Key::new().str(&t).str(&id);
            if kpis.contains(series.as_bytes()) {
                self.ok();
            } else {
                self.violation(table, k, "chunk of a missing KPI");
            }
            let n = c.points.len();
            if (1..=CHUNK_POINTS).contains(&n) {
                self.ok();
            } else {
                self.violation(
                    table,
                    k,
                    format!("chunk holds {n} points (want 1 to {CHUNK_POINTS})"),
                );
            }
            let pairs = || c.points.windows(2).map(|w| (w[0].ts, w[1].ts));
            if pairs().any(|(a, b)| a == b) {
                self.violation(table, k, "chunk holds a duplicate instant");
            } else if pairs().any(|(a, b)| a > b) {
                self.violation(table, k, "chunk points are not in instant order");
            } else {
                self.ok();
            }
            match c.points.first() {
                Some(f) if series.clone().ts(f.ts).as_bytes() == k.as_slice() => self.ok(),
                _ => self.violation(table, k, "chunk key is not its first point's instant"),
            }
            if let (Some((s, last)), Some(first)) = (&prev, c.points.first())
                && *s == series
            {
                if first.ts > *last {
                    self.ok();
                } else {
                    self.violation(table, k, "chunk overlaps the previous chunk of its series");
                }
            }
            prev = c.points.last().map(|l| (series, l.ts));
        }
    }

    fn conversations(&mut self) -> Result<()> {
        let convs = self.rows(&tables::CONVERSATIONS, true)?;
        let by_time = self.raw(&tables::CONVERSATIONS_BY_TIME)?;
        let messages = self.rows(&tables::MESSAGES, true)?;
        let mut expected = BTreeMap::new();
        // (tenant, conversation sequence): messages are keyed by it.
        let mut numbers = HashSet::new();
        for (k, c) in &convs {
            let Some((v, id)) = parts_then_id(self.r, k, 2) else {
                self.violation(tables::CONVERSATIONS.name(), k, "malformed key");
                continue;
            };
            let (t, owner, id) = (&v[0], &v[1], &id);
            expected.insert(
                Key::new()
                    .str(t)
                    .str(owner)
                    .ts(c.created_at)
                    .u64(c.seq)
                    .as_bytes()
                    .to_vec(),
                enc(id),
            );
            numbers.insert((t.clone(), c.seq));
        }
        self.same(
            tables::CONVERSATIONS_BY_TIME.name(),
            expected,
            &by_time,
            "conversation",
        );
        for (k, _) in &messages {
            let conv = read_str(k, 0).and_then(|(t, at)| Some((t, read_u64(k, at)?)));
            match conv {
                Some(c) if numbers.contains(&c) => self.ok(),
                _ => self.violation(
                    tables::MESSAGES.name(),
                    k,
                    "message of a missing conversation",
                ),
            }
        }
        Ok(())
    }

    fn notifications(&mut self) -> Result<()> {
        let notes = self.rows(&tables::NOTIFICATIONS, true)?;
        let unique = self.raw(&tables::NOTIFICATION_UNIQUE)?;
        let mut expected = BTreeMap::new();
        for (k, n) in &notes {
            let Some([t, u]) = two(k) else {
                self.violation(tables::NOTIFICATIONS.name(), k, "malformed key");
                continue;
            };
            let id = read_u64(k, k.len().saturating_sub(8)).unwrap_or(0);
            expected.insert(
                Key::new()
                    .str(&t)
                    .str(&u)
                    .str(&n.notification_type)
                    .part(n.date)
                    .as_bytes()
                    .to_vec(),
                enc(&id),
            );
        }
        self.same(
            tables::NOTIFICATION_UNIQUE.name(),
            expected,
            &unique,
            "notification",
        );
        let _ = self.rows(&tables::NOTIFICATION_PREFS, true)?;
        Ok(())
    }

    fn coreos(&mut self) -> Result<()> {
        use crate::coreos::{memory, tasks};
        let t_actions = self.rows(&tables::CO_ACTIONS, true)?;
        let t_tasks = self.rows(&tables::CO_TASKS, true)?;
        let t_decisions = self.rows(&tables::CO_DECISIONS, true)?;
        let t_meetings = self.rows(&tables::CO_MEETINGS, true)?;
        let t_facts = self.rows(&tables::CO_FACTS, true)?;
        // (tenant, type, id) of every record.
        let mut exists: HashMap<(String, &'static str, String), Timestamp> = HashMap::new();
        let mut entries: RawRows = BTreeMap::new();
        let mut ranks: RawRows = BTreeMap::new();
        let mut doc = |t: &str, rec: &dyn Searchable| {
            if !rec.indexed() {
                return;
            }
            let d = rec.search_doc();
            for (w, mask) in &doc_tokens(d.title, &d.bodies) {
                let k = entry_key(t, w, d.entity_type, d.created_at, d.id);
                entries.insert(k.as_bytes().to_vec(), enc(mask));
            }
            let k = rank_key(t, d.entity_type, d.created_at, d.id);
            ranks.insert(k.as_bytes().to_vec(), enc(&d.updated_at));
        };
        let (
            mut i_actions,
            mut i_tasks,
            mut i_decisions,
            mut i_meetings,
            mut i_facts,
            mut i_active,
        ) = (
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        for (k, a) in &t_actions {
            let t = tenant_of(k).unwrap_or_default();
            self.id_matches(tables::CO_ACTIONS.name(), k, &t, &a.action_id);
            exists.insert(
                (t.clone(), EntityType::Action.as_str(), a.action_id.clone()),
                a.created_at,
            );
            i_actions.insert(
                Key::new()
                    .str(&t)
                    .ts(a.created_at)
                    .str(&a.action_id)
                    .as_bytes()
                    .to_vec(),
                enc(&a.action_id),
            );
            doc(&t, a);
        }
        for (k, x) in &t_tasks {
            let t = tenant_of(k).unwrap_or_default();
            self.id_matches(tables::CO_TASKS.name(), k, &t, &x.task_id);
            exists.insert(
                (t.clone(), EntityType::Task.as_str(), x.task_id.clone()),
                x.created_at,
            );
            i_tasks.insert(tasks::order_key(&t, x).as_bytes().to_vec(), enc(&x.task_id));
            doc(&t, x);
        }
        for (k, d) in &t_decisions {
            let t = tenant_of(k).unwrap_or_default();
            self.id_matches(tables::CO_DECISIONS.name(), k, &t, &d.decision_id);
            exists.insert(
                (
                    t.clone(),
                    EntityType::Decision.as_str(),
                    d.decision_id.clone(),
                ),
                d.created_at,
            );
            i_decisions.insert(
                Key::new()
                    .str(&t)
                    .part(d.decision_date)
                    .ts(d.created_at)
                    .str(&d.decision_id)
                    .as_bytes()
                    .to_vec(),
                enc(&d.decision_id),
            );
            doc(&t, d);
        }
        for (k, m) in &t_meetings {
            let t = tenant_of(k).unwrap_or_default();
            self.id_matches(tables::CO_MEETINGS.name(), k, &t, &m.meeting_id);
            exists.insert(
                (
                    t.clone(),
                    EntityType::Meeting.as_str(),
                    m.meeting_id.clone(),
                ),
                m.created_at,
            );
            i_meetings.insert(
                Key::new()
                    .str(&t)
                    .part(m.meeting_date)
                    .ts(m.created_at)
                    .str(&m.meeting_id)
                    .as_bytes()
                    .to_vec(),
                enc(&m.meeting_id),
            );
            doc(&t, m);
        }
        let facts: HashMap<(String, String), &FactRec> = t_facts
            .iter()
            .map(|(k, f)| ((tenant_of(k).unwrap_or_default(), f.fact_id.clone()), f))
            .collect();
        for (k, f) in &t_facts {
            let t = tenant_of(k).unwrap_or_default();
            let table = tables::CO_FACTS.name();
            self.id_matches(table, k, &t, &f.fact_id);
            exists.insert(
                (
                    t.clone(),
                    EntityType::MemoryFact.as_str(),
                    f.fact_id.clone(),
                ),
                f.created_at,
            );
            i_facts.insert(
                Key::new()
                    .str(&t)
                    .str(&f.category)
                    .str(&f.fact_key)
                    .ts(f.created_at)
                    .str(&f.fact_id)
                    .as_bytes()
                    .to_vec(),
                enc(&f.fact_id),
            );
            match f.status.as_str() {
                "active" => {
                    let ak = memory::active_key(&t, &f.fact_key).as_bytes().to_vec();
                    if i_active.insert(ak.clone(), enc(&f.fact_id)).is_some() {
                        self.violation(
                            table,
                            k,
                            format!("more than one active fact with key {}", f.fact_key),
                        );
                    }
                    if f.superseded_by.is_some() {
                        self.violation(table, k, "active fact has a successor");
                    }
                    doc(&t, f);
                }
                "superseded" => match &f.superseded_by {
                    Some(next) => match facts.get(&(t.clone(), next.clone())) {
                        Some(n) if n.supersedes.as_deref() == Some(&f.fact_id) => self.ok(),
                        Some(_) => self.violation(table, k, "successor does not point back"),
                        None => self.violation(table, k, format!("successor {next} missing")),
                    },
                    None => self.violation(table, k, "superseded fact without a successor"),
                },
                other => self.violation(table, k, format!("unknown status {other}")),
            }
            if let Some(prev) = &f.supersedes {
                match facts.get(&(t.clone(), prev.clone())) {
                    Some(p) if p.superseded_by.as_deref() == Some(&f.fact_id) => self.ok(),
                    _ => self.violation(
                        table,
                        k,
                        format!("predecessor {prev} missing or not linked"),
                    ),
                }
            }
        }
        self.index(&tables::CO_ACTIONS_BY_TIME, i_actions, "action")?;
        self.index(&tables::CO_TASKS_BY_DUE, i_tasks, "task")?;
        self.index(&tables::CO_DECISIONS_BY_DATE, i_decisions, "decision")?;
        self.index(&tables::CO_MEETINGS_BY_DATE, i_meetings, "meeting")?;
        self.index(&tables::CO_FACTS_BY_KEY, i_facts, "memory fact")?;
        self.index(&tables::CO_ACTIVE_FACTS, i_active, "active memory fact")?;

        // Search: the inverted index is exactly what the records' text implies (the legacy
        // per-record token table is emptied when a database is opened).
        self.index(
            &tables::CO_SEARCH_DOCS,
            BTreeMap::new(),
            "legacy search document",
        )?;
        self.index(&tables::CO_SEARCH, entries, "search token")?;
        self.index(&tables::CO_SEARCH_RANK, ranks, "search rank")?;

        // Reviews, executions and evidence point at their record.
        let reviews = self.rows(&tables::CO_ACTION_REVIEWS, true)?;
        let executions = self.rows(&tables::CO_ACTION_EXECUTIONS, true)?;
        let action = EntityType::Action.as_str();
        for k in reviews
            .iter()
            .map(|x| &x.0)
            .chain(executions.iter().map(|x| &x.0))
        {
            match parts_then_id(self.r, k, 1) {
                Some((t, id)) if exists.contains_key(&(t[0].clone(), action, id.clone())) => {
                    self.ok()
                }
                _ => self.violation(
                    tables::CO_ACTION_REVIEWS.name(),
                    k,
                    "review or execution of a missing action",
                ),
            }
        }
        let mut reviewed: HashSet<Vec<u8>> = reviews.iter().map(|x| x.0.clone()).collect();
        for (k, a) in &t_actions {
            let reviewed_status = matches!(a.status.as_str(), "approved" | "rejected" | "executed");
            let has = reviewed.remove(k);
            if reviewed_status && !has {
                self.violation(
                    tables::CO_ACTIONS.name(),
                    k,
                    format!("action is {} but has no review", a.status),
                );
            }
        }
        let evidence = self.rows(&tables::CO_EVIDENCE, true)?;
        for (k, e) in &evidence {
            let t = tenant_of(k).unwrap_or_default();
            let et = EntityType::parse(&e.entity_type)
                .map(EntityType::as_str)
                .unwrap_or("");
            if exists.contains_key(&(t, et, e.entity_id.clone())) {
                self.ok();
            } else {
                self.violation(
                    tables::CO_EVIDENCE.name(),
                    k,
                    "evidence for a missing record",
                );
            }
        }

        // The timeline: every event points at an existing record; three indexes, both ways.
        let events = self.rows(&tables::CO_TIMELINE, true)?;
        let (mut by_type, mut by_entity, mut by_id) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (k, e) in &events {
            let t = tenant_of(k).unwrap_or_default();
            let seq = read_u64(k, k.len().saturating_sub(8)).unwrap_or(0);
            let pos = EventPos {
                at: e.created_at,
                seq,
            };
            if Key::new().str(&t).ts(e.created_at).u64(seq).as_bytes() != k.as_slice() {
                self.violation(
                    tables::CO_TIMELINE.name(),
                    k,
                    "key instant differs from created_at",
                );
            }
            let et = EntityType::parse(&e.entity_type)
                .map(EntityType::as_str)
                .unwrap_or("");
            let born = exists.get(&(t.clone(), et, e.entity_id.clone())).copied();
            if born.is_some() {
                self.ok();
            } else {
                self.violation(
                    tables::CO_TIMELINE.name(),
                    k,
                    format!("event for missing {} {}", e.entity_type, e.entity_id),
                );
            }
            // A sealed event id names its own position; only older ids need the id index.
            let sealed = self.r.sealer().unseal_event(&e.event_id) == Some((pos.at.0, pos.seq));
            let indexes = (
                &mut by_type,
                &mut by_entity,
                (!sealed).then_some(&mut by_id),
            );
            timeline_keys(&t, e, &pos, born, indexes);
        }
        self.index(&tables::CO_TIMELINE_BY_TYPE, by_type, "timeline event")?;
        self.index(&tables::CO_TIMELINE_BY_ENTITY, by_entity, "timeline event")?;
        self.index(&tables::CO_TIMELINE_IDS, by_id, "timeline event")?;
        Ok(())
    }

    /// Checks that a Core OS record is stored under (tenant, its own id).
    fn id_matches(&mut self, table: &'static str, k: &[u8], t: &str, id: &str) {
        if crate::coreos::id_key(self.r, t, id).as_bytes() == k {
            self.ok();
        } else {
            self.violation(table, k, format!("record id {id} differs from its key"));
        }
    }

    /// Decodes the tables no other check reads.
    fn plain(&mut self) -> Result<()> {
        let _ = self.rows(&tables::LIMITS, true)?;
        let _ = self.rows(&tables::SUBSCRIPTIONS, true)?;
        let _ = self.rows(&tables::BRIEFS, true)?;
        let _ = self.rows(&tables::METERED_EVENTS, false)?;
        let _ = self.rows(&tables::PLANS, false)?;
        let _ = self.rows(&tables::PLAN_CAPABILITIES, false)?;
        let _ = self.rows(&tables::PLAN_CAPS, false)?;
        let _ = self.rows(&tables::PLAN_RATE_LIMITS, false)?;
        let _ = self.rows(&tables::SEQUENCES, false)?;
        let _ = self.rows(&tables::META, false)?;
        // The id-sealing secret: present and readable (never printed).
        let secrets = self.rows(&tables::SECRETS, false)?;
        if secrets.len() == 1 && secrets[0].0 == crate::ids::IdSecret::key().as_bytes() {
            self.ok();
        } else {
            self.violation(
                tables::SECRETS.name(),
                b"ids",
                "the id-sealing secret is missing",
            );
        }
        let layout = crate::layout::version(self.r)?;
        if layout == crate::layout::CURRENT {
            self.ok();
        } else {
            self.violation(
                tables::META.name(),
                b"layout",
                format!(
                    "key layout version {layout}, expected {}",
                    crate::layout::CURRENT
                ),
            );
        }
        Ok(())
    }

    /// Looks for `bsk_` tokens in every stored key and value and fails any that is the
    /// plaintext of a tenant's API key.
    fn no_plaintext_keys(&mut self, digests: &HashSet<[u8; 32]>) -> Result<()> {
        let prefix = ids::API_KEY_PREFIX.as_bytes();
        for name in tables::ALL {
            let mut found: Vec<Vec<u8>> = Vec::new();
            self.r.scan_raw(
                name,
                Bound::Unbounded,
                Bound::Unbounded,
                Order::Asc,
                &mut |k, v| {
                    for bytes in [k, v] {
                        let mut at = 0;
                        while let Some(i) = find(&bytes[at..], prefix) {
                            let start = at + i;
                            let end = bytes[start + prefix.len()..]
                                .iter()
                                .position(|b| {
                                    !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                                })
                                .map_or(bytes.len(), |p| start + prefix.len() + p);
                            if let Ok(s) = std::str::from_utf8(&bytes[start..end])
                                && digests.contains(&ids::key_digest(s))
                            {
                                found.push(k.to_vec());
                            }
                            at = end.max(start + 1);
                        }
                    }
                    Ok(Flow::Continue)
                },
            )?;
            let table = tables::ALL
                .iter()
                .find(|t| *t == name)
                .copied()
                .unwrap_or("?");
            if found.is_empty() {
                self.ok();
            }
            for k in found {
                self.violation(table, &k, "contains the plaintext of a tenant API key");
            }
        }
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn two(k: &[u8]) -> Option<[String; 2]> {
    str_parts(k, 2).and_then(|v| <[String; 2]>::try_from(v).ok())
}

fn tables_key(parts: &[&String]) -> Key {
    parts.iter().fold(Key::new(), |k, p| k.str(p))
}

fn timeline_keys(
    t: &str,
    e: &EventRec,
    pos: &EventPos,
    born: Option<Timestamp>,
    (by_type, by_entity, by_id): (&mut RawRows, &mut RawRows, Option<&mut RawRows>),
) {
    let p = enc(pos);
    by_type.insert(
        Key::new()
            .str(t)
            .str(&e.entity_type)
            .ts(pos.at)
            .u64(pos.seq)
            .as_bytes()
            .to_vec(),
        p.clone(),
    );
    // An event of a missing record is reported as such; it has no place in this index.
    if let Some(born) = born {
        let k = crate::coreos::timeline::entity_prefix(t, &e.entity_type, born, &e.entity_id);
        by_entity.insert(k.ts(pos.at).u64(pos.seq).as_bytes().to_vec(), p.clone());
    }
    if let Some(by_id) = by_id {
        by_id.insert(Key::new().str(t).str(&e.event_id).as_bytes().to_vec(), p);
    }
}

/// Runs every check over `r`.
pub(crate) fn check(r: &impl Reader, now: Timestamp, retention: i64) -> Result<CheckReport> {
    let mut c = Checker {
        r,
        now,
        retention,
        report: CheckReport::default(),
        tenants: HashSet::new(),
    };
    c.run()?;
    for name in tables::ALL {
        c.report.rows.entry(name).or_insert(0);
    }
    Ok(c.report)
}

impl Bespin {
    /// Verifies the database's invariants over one consistent snapshot (see [`crate::check`])
    /// and reports every violation with row counts. Read-only; safe while the database is in
    /// use.
    pub fn check(&self) -> Result<CheckReport> {
        self.read(|r, ctx| check(r, ctx.now, ctx.options.idempotency_retention_micros))
    }
}

#[cfg(test)]
impl Bespin {
    /// Test-only hook: changes stored rows behind the domain's back (to corrupt a database on
    /// purpose and see the checker catch it).
    pub(crate) fn tamper(&self, f: impl FnOnce(&mut crate::WriteTx) -> Result<()>) {
        self.write(|tx, _| f(tx)).expect("tamper");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Principal;
    use crate::chat::ChatRequest;
    use crate::coreos::actions::{NewAction, ReviewComment};
    use crate::coreos::decisions::NewDecision;
    use crate::coreos::evidence::NewEvidence;
    use crate::coreos::meetings::NewMeeting;
    use crate::coreos::memory::{FactValue, NewFact};
    use crate::coreos::tasks::NewTask;
    use crate::store::WriteTx;
    use crate::testutil;
    use crate::tools::InvokeRequest;
    use serde_json::json;

    /// A database with a bit of everything, in two tenants.
    pub(crate) fn populated() -> (Bespin, Principal, Principal) {
        let (db, _clock) = testutil::db();
        let (a, am) = testutil::tenant(&db);
        let (b, _) = testutil::tenant(&db);
        for p in [&a, &b] {
            testutil::kpi(&db, p, "MRR", &[("2026-01-01T00:00:00Z", 10.0)]);
            db.chat(
                p,
                ChatRequest {
                    message: "hello".into(),
                    conversation_id: None,
                    date: None,
                },
            )
            .unwrap();
            let inv = InvokeRequest::from_json(&json!({"tool_name": "echo", "payload": {"x": 1}}))
                .unwrap();
            db.invoke_tool(p, "key-1", inv).unwrap();
            let act = db
                .create_action(
                    p,
                    NewAction::from_json(
                        &json!({"title": "Call the bank", "action_type": "outreach"}),
                    )
                    .unwrap(),
                )
                .unwrap();
            db.approve_action(p, &act.action_id, ReviewComment::default())
                .unwrap();
            db.create_task(
                p,
                NewTask::from_json(
                    &json!({"title": "Ship pricing page", "due_date": "2026-02-03"}),
                )
                .unwrap(),
            )
            .unwrap();
            db.create_decision(
                p,
                NewDecision::from_json(
                    &json!({"decision_date": "2026-01-30", "title": "Pricing", "decision": "Go"}),
                )
                .unwrap(),
            )
            .unwrap();
            db.create_meeting(
                p,
                NewMeeting::from_json(
                    &json!({"meeting_date": "2026-01-15", "title": "Sync", "notes": "talked"}),
                )
                .unwrap(),
            )
            .unwrap();
            let f = db
                .create_memory_fact(
                    p,
                    NewFact::from_json(
                        &json!({"category": "icp", "fact_key": "price", "fact_value": "10"}),
                    )
                    .unwrap(),
                )
                .unwrap();
            db.supersede_memory_fact(
                p,
                &f.fact_id,
                FactValue::supersede_from_json(&json!({"fact_value": "12"})).unwrap(),
            )
            .unwrap();
            db.create_evidence(
                p,
                NewEvidence::from_json(&json!({"entity_type": "action", "entity_id": act.action_id, "source_type": "kpi", "source_ref": {}}))
                    .unwrap(),
            )
            .unwrap();
        }
        (db, a, am)
    }

    fn first_key<R>(tx: &WriteTx, t: &Table<R>) -> Vec<u8> {
        let mut out = None;
        tx.scan_raw(
            t.name(),
            Bound::Unbounded,
            Bound::Unbounded,
            Order::Asc,
            &mut |k, _| {
                out = Some(k.to_vec());
                Ok(Flow::Stop)
            },
        )
        .unwrap();
        out.expect("table has a row")
    }

    fn caught(db: &Bespin, table: &str, needle: &str) {
        let r = db.check().unwrap();
        assert!(
            r.violations
                .iter()
                .any(|v| v.table == table && v.description.contains(needle)),
            "expected a violation in {table} containing {needle:?}, got:\n{r}"
        );
    }

    #[test]
    fn a_healthy_database_passes() {
        let (db, _, _) = populated();
        let r = db.check().unwrap();
        assert!(r.is_ok(), "{r}");
        assert!(r.checks > 100);
        assert_eq!(r.rows_in("tenants"), 2);
        assert!(r.rows_in("co_search") > 0);
        assert!(r.to_string().contains("0 violation(s)"));
    }

    #[test]
    fn a_lost_usage_event_breaks_its_rollup() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &tables::USAGE_EVENTS);
            tx.delete(&tables::USAGE_EVENTS, &Key::from_raw(&k))
                .map(|_| ())
        });
        caught(&db, "period_rollups", "");
    }

    #[test]
    fn a_rollup_off_by_one_credit_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = Key::from_raw(&first_key(tx, &tables::PERIOD_ROLLUPS));
            let mut r = tx.get(&tables::PERIOD_ROLLUPS, &k)?.unwrap();
            r.credits += Amount::from_int(1);
            tx.put(&tables::PERIOD_ROLLUPS, &k, &r)
        });
        caught(&db, "period_rollups", "credits");
    }

    #[test]
    fn a_missing_index_entry_and_a_dangling_one_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &tables::KPIS_BY_NAME);
            tx.delete(&tables::KPIS_BY_NAME, &Key::from_raw(&k))?;
            let c = first_key(tx, &tables::CONVERSATIONS_BY_TIME);
            let mut dangling = c.clone();
            dangling.push(7);
            tx.put(
                &tables::CONVERSATIONS_BY_TIME,
                &Key::from_raw(&dangling),
                &"ghost".to_owned(),
            )
        });
        caught(&db, "kpis_by_name", "missing index entry");
        caught(&db, "conversations_by_time", "dangling");
    }

    #[test]
    fn a_stale_search_entry_and_a_missing_token_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &tables::CO_SEARCH);
            tx.delete(&tables::CO_SEARCH, &Key::from_raw(&k))?;
            tx.put(
                &tables::CO_SEARCH,
                &Key::from_raw(&[k.as_slice(), b"x"].concat()),
                &1u8,
            )
        });
        caught(&db, "co_search", "missing index entry");
        caught(&db, "co_search", "dangling or stale");
    }

    #[test]
    fn a_stale_search_rank_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &tables::CO_SEARCH_RANK);
            tx.put(
                &tables::CO_SEARCH_RANK,
                &Key::from_raw(&k),
                &crate::time::Timestamp(1),
            )
        });
        caught(&db, "co_search_rank", "wrong value");
    }

    #[test]
    fn a_timeline_event_of_a_missing_record_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &tables::CO_DECISIONS);
            tx.delete(&tables::CO_DECISIONS, &Key::from_raw(&k))
                .map(|_| ())
        });
        caught(&db, "co_timeline", "event for missing decision");
        caught(&db, "co_decisions_by_date", "dangling");
        caught(&db, "co_search", "dangling or stale");
    }

    #[test]
    fn a_record_moved_off_its_sealed_key_and_an_unfindable_event_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            // A task moved one record number up: its id no longer names its key.
            let k = first_key(tx, &tables::CO_TASKS);
            let t: crate::coreos::tasks::TaskRec =
                tx.get(&tables::CO_TASKS, &Key::from_raw(&k))?.unwrap();
            tx.delete(&tables::CO_TASKS, &Key::from_raw(&k))?;
            let mut moved = k.clone();
            if let Some(last) = moved.last_mut() {
                *last = last.wrapping_add(1);
            }
            tx.put(&tables::CO_TASKS, &Key::from_raw(&moved), &t)?;
            // An event whose id names no position and that the id index does not know.
            let e = first_key(tx, &tables::CO_TIMELINE);
            let mut ev: EventRec = tx.get(&tables::CO_TIMELINE, &Key::from_raw(&e))?.unwrap();
            ev.event_id = crate::ids::new_id();
            tx.put(&tables::CO_TIMELINE, &Key::from_raw(&e), &ev)
        });
        caught(&db, "co_tasks", "differs from its key");
        caught(&db, "co_timeline_ids", "missing index entry");
    }

    #[test]
    fn a_missing_id_secret_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            tx.delete(&tables::SECRETS, &crate::ids::IdSecret::key())
                .map(|_| ())
        });
        caught(&db, "secrets", "missing");
    }

    #[test]
    fn two_active_facts_and_a_broken_supersede_chain_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let mut superseded = None;
            tx.scan(
                &tables::CO_FACTS,
                &Key::new(),
                Order::Asc,
                |k, f: FactRec| {
                    if f.status == "superseded" {
                        superseded = Some((k.to_vec(), f));
                        return Ok(Flow::Stop);
                    }
                    Ok(Flow::Continue)
                },
            )?;
            let (k, mut f) = superseded.unwrap();
            f.status = "active".into();
            f.superseded_by = None;
            tx.put(&tables::CO_FACTS, &Key::from_raw(&k), &f)
        });
        caught(&db, "co_facts", "more than one active fact");
        caught(&db, "co_facts", "not linked");
    }

    #[test]
    fn an_audit_row_of_a_missing_user_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = Key::from_raw(&first_key(tx, &tables::AUDIT));
            let mut a = tx.get(&tables::AUDIT, &k)?.unwrap();
            a.user_id = "nobody".into();
            tx.put(&tables::AUDIT, &k, &a)
        });
        caught(&db, "audit", "missing user nobody");
    }

    #[test]
    fn an_unpurgeable_or_unbacked_idempotency_record_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &tables::IDEMPOTENCY_BY_AGE);
            tx.delete(&tables::IDEMPOTENCY_BY_AGE, &Key::from_raw(&k))?;
            let k = Key::from_raw(&first_key(tx, &tables::IDEMPOTENCY));
            let mut r = tx.get(&tables::IDEMPOTENCY, &k)?.unwrap();
            r.response = br#"{"request_id":"never-ran","result":{}}"#.to_vec();
            tx.put(&tables::IDEMPOTENCY, &k, &r)
        });
        caught(&db, "idempotency_by_age", "missing index entry");
        caught(&db, "idempotency", "no usage event");
    }

    #[test]
    fn plaintext_key_material_and_undecodable_rows_are_caught() {
        let db = Bespin::open_in_memory().unwrap();
        let t = db
            .create_tenant(crate::tenancy::NewTenant {
                name: "Acme".into(),
                region: "eu".into(),
                admin_email: "a@acme.example".into(),
            })
            .unwrap();
        assert!(db.check().unwrap().is_ok());
        let leaked = format!("the key is {}.", t.api_key);
        db.tamper(|tx| {
            tx.put(&tables::SEQUENCES, &Key::new().str(&leaked), &1u64)?;
            tx.raw_insert_for_test(
                tables::LIMITS.name(),
                Key::new().str(&t.tenant_id).as_bytes(),
                &[1, 0xFF],
            )
        });
        caught(&db, "sequences", "plaintext");
        caught(&db, "limits", "does not decode");
        // A random bsk_ token that is nobody's key is not reported.
        let db = Bespin::open_in_memory().unwrap();
        db.tamper(|tx| tx.put(&tables::SEQUENCES, &Key::new().str("bsk_notakey"), &1u64));
        assert!(db.check().unwrap().is_ok());
    }

    #[test]
    fn broken_kpi_chunks_and_leftover_point_rows_are_caught() {
        use crate::kpis::PointRec;
        use crate::kpis::series::ChunkPoint;
        let (db, a, _) = populated();
        let t = a.tenant_id().to_owned();
        let pts = |n: i64| -> Vec<(String, f64)> {
            (0..n)
                .map(|d| (Timestamp(d * 1_000_000).to_rfc3339(), d as f64))
                .collect()
        };
        let kpi = |name: &str, n: i64| {
            let p = pts(n);
            let p: Vec<(&str, f64)> = p.iter().map(|(s, v)| (s.as_str(), *v)).collect();
            testutil::kpi(&db, &a, name, &p)
        };
        // Each KPI gets one kind of damage.
        let ids: Vec<String> = ["dup", "order", "big", "key", "overlap", "empty"]
            .iter()
            .map(|n| kpi(n, 2 * CHUNK_POINTS as i64))
            .collect();
        assert!(db.check().unwrap().is_ok());
        let chunk_of = |tx: &WriteTx, id: &str, i: usize| -> (Key, ChunkRec) {
            let mut all = Vec::new();
            tx.scan(
                &tables::KPI_CHUNKS,
                &Key::new().str(&t).str(id),
                Order::Asc,
                |k, c: ChunkRec| {
                    all.push((Key::from_raw(k), c));
                    Ok(Flow::Continue)
                },
            )
            .unwrap();
            all.swap_remove(i)
        };
        db.tamper(|tx| {
            let (k, mut c) = chunk_of(tx, &ids[0], 1);
            c.points[6].ts = c.points[5].ts;
            tx.put(&tables::KPI_CHUNKS, &k, &c)?;
            let (k, mut c) = chunk_of(tx, &ids[1], 0);
            c.points.swap(6, 7);
            tx.put(&tables::KPI_CHUNKS, &k, &c)?;
            let (k, mut c) = chunk_of(tx, &ids[2], 1);
            let last = c.points[CHUNK_POINTS - 1];
            c.points.push(ChunkPoint {
                ts: Timestamp(last.ts.0 + 1),
                ..last
            });
            tx.put(&tables::KPI_CHUNKS, &k, &c)?;
            let (k, c) = chunk_of(tx, &ids[3], 1);
            tx.delete(&tables::KPI_CHUNKS, &k)?;
            let moved = Key::new()
                .str(&t)
                .str(&ids[3])
                .ts(Timestamp(c.points[0].ts.0 - 1));
            tx.put(&tables::KPI_CHUNKS, &moved, &c)?;
            let (k, mut c) = chunk_of(tx, &ids[4], 0);
            c.points[CHUNK_POINTS - 1].ts = Timestamp(c.points[CHUNK_POINTS - 1].ts.0 + 1_000_000);
            tx.put(&tables::KPI_CHUNKS, &k, &c)?;
            let (k, _) = chunk_of(tx, &ids[5], 1);
            tx.put(&tables::KPI_CHUNKS, &k, &ChunkRec::default())?;
            let (_, c) = chunk_of(tx, &ids[5], 0);
            tx.put(
                &tables::KPI_CHUNKS,
                &Key::new().str(&t).str("ghost").ts(c.points[0].ts),
                &c,
            )?;
            tx.put(
                &tables::KPI_POINTS,
                &Key::new().str(&t).str(&ids[5]).ts(Timestamp(0)),
                &PointRec {
                    value: 1.0,
                    created_at: Timestamp(0),
                },
            )
        });
        caught(&db, "kpi_chunks", "duplicate instant");
        caught(&db, "kpi_chunks", "not in instant order");
        caught(
            &db,
            "kpi_chunks",
            &format!("holds {} points", CHUNK_POINTS + 1),
        );
        caught(&db, "kpi_chunks", "holds 0 points");
        caught(&db, "kpi_chunks", "key is not its first point's instant");
        caught(&db, "kpi_chunks", "overlaps the previous chunk");
        caught(&db, "kpi_chunks", "chunk of a missing KPI");
        caught(&db, "kpi_points", "layout before chunks");
        let r = db.check().unwrap();
        let mine = |id: &str| r.violations.iter().filter(|v| v.key.contains(id)).count();
        assert!(ids.iter().all(|id| mine(id) >= 1), "{r}");
    }

    #[test]
    fn rows_of_a_missing_tenant_are_caught() {
        let (db, a, _) = populated();
        db.tamper(|tx| {
            tx.delete(&tables::TENANTS, &Key::new().str(a.tenant_id()))
                .map(|_| ())
        });
        caught(&db, "usage_events", "missing tenant");
        caught(&db, "co_tasks", "missing tenant");
    }
}
