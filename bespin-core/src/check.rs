//! The consistency checker: verifies the database's invariants over one read transaction.
//!
//! [`Bespin::check`] reads every table in one snapshot and reports each broken invariant as a
//! [`Violation`] (table, key, what is wrong), with row counts per table. It never writes.
//!
//! This module is the harness. It walks every table of the registry (`schema.rs`) and
//! holds every row to what its declaration says: **the key is one key of the table's layout,
//! the value decodes as its record, a tenant-scoped row belongs to an existing tenant**, and
//! **no stored key or value holds the plaintext of a live API key** (every `bsk_…` token found
//! is hashed and compared with every tenant's digest). The domain's own invariants are checked
//! beside the code that keeps them, each module's `check(r, c)`:
//!
//! - `tenancy`: API-key digests; users by creation and user → tenant match the users;
//! - `metering`: every usage event counted exactly once in its period and day rollups (exact
//!   decimal sums, `first_used` the earliest event, no rollup without events), and no daily
//!   counter above the units metered that day;
//! - `audit`: every tenant's hash chain recomputes (no altered row, broken link, gap or head
//!   out of step), its rows name an existing user of their tenant (unless erased), no
//!   unchained row is left;
//! - `idempotency`: records indexed by age exactly once, not dated in the future, holding a
//!   JSON response whose `request_id` names a committed usage event;
//! - `kpis`: the indexes by name and creation; chunks of an existing KPI, 1 to 128 points in
//!   strictly increasing order, keyed by their first instant, not overlapping; no legacy points;
//! - `conversations`, `notifications`: their indexes, messages of existing conversations;
//! - `coreos`: every record under its own id; the indexes by time, due date, date and key; one
//!   active fact per key and whole supersede chains; reviews, executions and evidence of
//!   existing records; the timeline's three indexes; the search index and rank rows
//!   recomputed from the records' text;
//! - `layout`: the file's key layout is this build's; here, the id-sealing secret.
//!
//! The helpers for "an index matches its records both ways" are `Checker::index` and
//! `Expected`.

use crate::error::Result;
use crate::store::{self, KeyDef, Order, PartValue, Reader, Table, TableInfo};
use crate::time::Timestamp;
use crate::{Bespin, Options, ids};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
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

/// Renders a stored key of the table `table`: string parts (and tenant and id parts written
/// as a UUID's bytes, read along the table's layout) as text separated by `/`, other bytes
/// as `\xNN`.
pub(crate) fn show_key(table: &str, k: &[u8]) -> String {
    use crate::store::{Kind, PartValue, read_part};
    let mut out = String::new();
    let mut i = 0;
    let layout = crate::schema::table(table).map_or(&[][..], |t| t.layout());
    for p in layout {
        let Some((v, next)) = read_part(p.kind, k, i) else {
            break;
        };
        match v {
            PartValue::Str(s)
                if matches!(p.kind, Kind::Tenant | Kind::ExtId)
                    && k[i..].starts_with(&store::parts::UUID_TAG) =>
            {
                out.push_str(&s);
                out.push('/');
            }
            _ => show_bytes(&k[i..next], &mut out),
        }
        i = next;
    }
    show_bytes(&k[i..], &mut out);
    out
}

/// Renders key bytes: a string terminator as `/`, printable ASCII as it is, others `\xNN`.
fn show_bytes(k: &[u8], out: &mut String) {
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
}

/// Stored rows by key, encoded.
pub(crate) type RawRows = BTreeMap<Vec<u8>, Vec<u8>>;

/// One decoded row of a table: its stored key, the key read back, and the record.
pub(crate) struct Row<K: KeyDef, V> {
    /// The stored key.
    pub bytes: Vec<u8>,
    /// The key's parts.
    pub key: K::Of<'static>,
    /// The owning tenant (empty for a table that is not tenant-scoped).
    pub tenant: String,
    /// The record.
    pub value: V,
}

/// The rows an index should hold, as its records imply them ([`Checker::index`]).
pub(crate) struct Expected<K, V> {
    rows: RawRows,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: KeyDef, V: store::Record> Default for Expected<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: KeyDef, V: store::Record> Expected<K, V> {
    /// No rows expected yet.
    pub(crate) fn new() -> Self {
        Expected {
            rows: RawRows::new(),
            _types: PhantomData,
        }
    }

    /// Expects `value` under `key`; returns whether that key was expected already.
    pub(crate) fn add(&mut self, key: &K::Of<'_>, value: &V) -> bool {
        let mut k = Vec::with_capacity(96);
        K::encode(key, &mut k);
        self.add_encoded(k, value)
    }

    /// Expects `value` under the encoded key `key`.
    pub(crate) fn add_encoded(&mut self, key: Vec<u8>, value: &V) -> bool {
        let v = store::codec::encode(value).unwrap_or_default();
        self.rows.insert(key, v).is_some()
    }
}

/// What the checks share: the report being written, the snapshot's instant and settings, and
/// the tenants that exist.
pub(crate) struct Checker {
    now: Timestamp,
    retention: i64,
    report: CheckReport,
    tenants: HashSet<String>,
    dedup_retention: i64,
}

impl Checker {
    /// Reports a broken invariant of the row `key` of `table`.
    pub(crate) fn violation(
        &mut self,
        table: &'static str,
        key: &[u8],
        description: impl Into<String>,
    ) {
        self.report.violations.push(Violation {
            table,
            key: show_key(table, key),
            description: description.into(),
        });
    }

    /// Counts one verified fact.
    pub(crate) fn ok(&mut self) {
        self.report.checks += 1;
    }

    /// The instant the check runs at.
    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// How long idempotency records are kept (microseconds).
    pub(crate) fn retention(&self) -> i64 {
        self.retention
    }

    /// How long ingested usage events are remembered for de-duplication (microseconds).
    pub(crate) fn options_dedup_retention(&self) -> i64 {
        self.dedup_retention
    }

    /// Records that tenant `id` exists (rows of tenants not recorded are violations).
    pub(crate) fn add_tenant(&mut self, id: String) {
        self.tenants.insert(id);
    }

    /// Every row of `t` whose key reads back and whose record decodes, in key order (the
    /// walk over every table reports the others).
    pub(crate) fn rows<K: KeyDef, V: store::Record>(
        &mut self,
        r: &impl Reader,
        t: &Table<K, V>,
    ) -> Result<Vec<Row<K, V>>> {
        let scoped = t.tenant_scoped();
        let mut out = Vec::new();
        for (bytes, v) in raw(r, t.name())? {
            let key = K::decode(&bytes).map(K::into_owned);
            if let (Some(key), Ok(value)) = (key, store::codec::decode::<V>(&v)) {
                let tenant = match store::parts::tenant::get(&bytes, 0) {
                    Some((t, _)) if scoped => t.into_owned(),
                    _ => String::new(),
                };
                out.push(Row {
                    bytes,
                    key,
                    tenant,
                    value,
                });
            }
        }
        Ok(out)
    }

    /// Holds the index `t` to the rows its records imply, both ways: each expected entry
    /// present with its value, no entry without its record (`what` names the record).
    pub(crate) fn index<K: KeyDef, V: store::Record>(
        &mut self,
        r: &impl Reader,
        t: &Table<K, V>,
        expected: Expected<K, V>,
        what: &str,
    ) -> Result<()> {
        let actual = raw(r, t.name())?;
        let table = t.name();
        for (k, v) in &expected.rows {
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
            if !expected.rows.contains_key(k) {
                self.violation(
                    table,
                    k,
                    format!("index entry without its {what} (dangling or stale)"),
                );
            }
        }
        Ok(())
    }

    /// The walk over every table: row counts, each key one of its table's layout, each value
    /// decoding as its record, each tenant-scoped row of an existing tenant, and no plaintext
    /// API key (`digests`: every tenant's) anywhere.
    fn walk(&mut self, r: &impl Reader, digests: &HashSet<[u8; 32]>) -> Result<()> {
        for t in crate::schema::tables() {
            let name = t.name();
            let mut rows = 0u64;
            r.scan_raw(
                name,
                Bound::Unbounded,
                Bound::Unbounded,
                Order::Asc,
                &mut |k, v| {
                    rows += 1;
                    self.row(*t, k, v, digests);
                    Ok(store::Flow::Continue)
                },
            )?;
            self.report.rows.insert(name, rows);
        }
        Ok(())
    }

    fn row(&mut self, t: &dyn TableInfo, k: &[u8], v: &[u8], digests: &HashSet<[u8; 32]>) {
        let name = t.name();
        match store::read_parts(t.layout(), k) {
            None => self.violation(name, k, "malformed key: not a key of this table's layout"),
            Some(parts) => {
                self.ok();
                if t.tenant_scoped() {
                    match parts.first() {
                        Some(PartValue::Str(tenant)) if self.tenants.contains(tenant.as_ref()) => {
                            self.ok()
                        }
                        Some(PartValue::Str(tenant)) => {
                            let d = format!("row of missing tenant {tenant}");
                            self.violation(name, k, d)
                        }
                        _ => self.violation(name, k, "key has no tenant part"),
                    }
                }
            }
        }
        match t.decodes(v) {
            Ok(()) => self.ok(),
            Err(e) => self.violation(name, k, format!("row does not decode: {e}")),
        }
        if [k, v].iter().any(|bytes| holds_live_key(bytes, digests)) {
            self.violation(name, k, "contains the plaintext of a tenant API key");
        } else {
            self.ok();
        }
    }
}

/// Every row of the table named `table`, raw.
pub(crate) fn raw(r: &impl Reader, table: &'static str) -> Result<RawRows> {
    let mut out = BTreeMap::new();
    r.scan_raw(
        table,
        Bound::Unbounded,
        Bound::Unbounded,
        Order::Asc,
        &mut |k, v| {
            out.insert(k.to_vec(), v.to_vec());
            Ok(store::Flow::Continue)
        },
    )?;
    Ok(out)
}

/// Whether `bytes` hold a `bsk_` token that is the plaintext of a key with one of `digests`.
fn holds_live_key(bytes: &[u8], digests: &HashSet<[u8; 32]>) -> bool {
    let prefix = ids::API_KEY_PREFIX.as_bytes();
    let mut at = 0;
    while let Some(i) = find(&bytes[at..], prefix) {
        let start = at + i;
        let end = bytes[start + prefix.len()..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
            .map_or(bytes.len(), |p| start + prefix.len() + p);
        if let Ok(s) = std::str::from_utf8(&bytes[start..end])
            && digests.contains(&ids::key_digest(s))
        {
            return true;
        }
        at = end.max(start + 1);
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The id-sealing secret: present and readable (never printed); every other secret is a
/// token sealer's (`token:<purpose>`, [`crate::tokens`]).
fn secrets(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let rows = c.rows(r, &store::SECRETS)?;
    if rows.iter().any(|row| row.key.name == store::ID_SECRET) {
        c.ok();
    } else {
        c.violation(
            store::SECRETS.name(),
            store::ID_SECRET.as_bytes(),
            "the id-sealing secret is missing",
        );
    }
    for row in &rows {
        let known = [store::ID_SECRET, crate::audit::checkpoint::SIGNING_SECRET];
        if !known.contains(&&*row.key.name) && !row.key.name.starts_with("token:") {
            c.violation(
                store::SECRETS.name(),
                row.key.name.as_bytes(),
                "a secret of no known purpose",
            );
        }
    }
    Ok(())
}

/// Runs every check over `r`.
pub(crate) fn check(r: &impl Reader, now: Timestamp, options: &Options) -> Result<CheckReport> {
    let mut c = Checker {
        now,
        retention: options.idempotency_retention_micros,
        dedup_retention: options.usage_dedup_retention_micros,
        report: CheckReport::default(),
        tenants: HashSet::new(),
    };
    // Tenants first: every tenant-scoped row is checked against them.
    let digests = crate::tenancy::check(r, &mut c)?;
    let erasing = crate::tenancy::erasure::check(r, &mut c)?;
    c.walk(r, &digests)?;
    secrets(r, &mut c)?;
    let requests = crate::metering::check(r, &mut c)?;
    crate::metering::export::check(r, &mut c)?;
    crate::metering::ingest::check(r, &mut c)?;
    crate::audit::check(r, &mut c)?;
    crate::idempotency::check(r, &mut c, &requests)?;
    crate::kpis::check(r, &mut c)?;
    crate::conversations::check(r, &mut c)?;
    crate::notifications::check(r, &mut c)?;
    crate::coreos::check(r, &mut c)?;
    crate::events::check(r, &mut c)?;
    crate::webhooks::check(r, &mut c)?;
    crate::layout::check(r, &mut c)?;
    // A tenant being erased is half removed by design: what its partial state breaks is not
    // a violation until its erasure ends.
    c.report
        .violations
        .retain(|v| !erasing.iter().any(|t| v.key.starts_with(t.as_str())));
    Ok(c.report)
}

impl Bespin {
    /// Verifies the database's invariants over one consistent snapshot (see [`crate::check`])
    /// and reports every violation with row counts. Read-only; safe while the database is in
    /// use.
    pub fn check(&self) -> Result<CheckReport> {
        self.read(|r, ctx| check(r, ctx.now, &ctx.options))
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

/// What the checker tests of every module share: a populated database, and the assertion that
/// a violation was caught.
#[cfg(test)]
pub(crate) mod testing {
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
        let (a, am) = populate(&db);
        (db, a, am)
    }

    /// Adds two tenants with a bit of everything to `db`: the first one's (admin, member).
    pub(crate) fn populate(db: &Bespin) -> (Principal, Principal) {
        let (a, am) = testutil::tenant(db);
        let (b, _) = testutil::tenant(db);
        for p in [&a, &b] {
            testutil::kpi(db, p, "MRR", &[("2026-01-01T00:00:00Z", 10.0)]);
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
        (a, am)
    }

    /// The stored key of the first row of `t`.
    pub(crate) fn first_key<K: KeyDef, V: store::Record>(tx: &WriteTx, t: &Table<K, V>) -> Vec<u8> {
        let mut out = None;
        tx.scan_stored(
            t,
            &t.prefix(),
            Bound::Unbounded,
            Bound::Unbounded,
            Order::Asc,
            &mut |k, _| {
                out = Some(k.to_vec());
                Ok(store::Flow::Stop)
            },
        )
        .unwrap();
        out.expect("table has a row")
    }

    /// Asserts that checking `db` reports a violation in `table` whose description contains
    /// `needle`.
    pub(crate) fn caught(db: &Bespin, table: &str, needle: &str) {
        let r = db.check().unwrap();
        assert!(
            r.violations
                .iter()
                .any(|v| v.table == table && v.description.contains(needle)),
            "expected a violation in {table} containing {needle:?}, got:\n{r}"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::testing::*;
    use crate::Bespin;

    #[test]
    fn a_key_is_shown_with_its_tenant_as_text() {
        let id = "0f9e8d7c-6b5a-4948-8776-655443322110";
        let mut k = Vec::new();
        crate::store::parts::tenant::put(id, &mut k);
        crate::store::parts::put_str("MRR", &mut k);
        k.push(7);
        // What the checker's report names, and what it matches an erasing tenant's rows by.
        assert_eq!(super::show_key("kpis", &k), format!("{id}/MRR/\\x07"));
        // An id part after the first, written as bytes (layout 13), is shown as text too.
        let k = crate::metering::export::UsageSeqKey::new(7, id).encode();
        assert_eq!(k.len(), 8 + 18);
        let seq = "\\x00".repeat(7) + "\\x07";
        assert_eq!(
            super::show_key("usage_all_by_seq", &k),
            format!("{seq}{id}/")
        );
        // In a table the key does not fit, it is shown byte by byte.
        assert!(super::show_key("meta", &k).starts_with(&seq));
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
    fn a_missing_index_entry_and_a_dangling_one_are_caught() {
        use crate::conversations::CONVERSATIONS_BY_TIME;
        use crate::kpis::KPIS_BY_NAME;
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &KPIS_BY_NAME);
            tx.delete_stored(&KPIS_BY_NAME, &k)?;
            let c = first_key(tx, &CONVERSATIONS_BY_TIME);
            let mut dangling = c.clone();
            dangling.push(7);
            tx.put_stored(&CONVERSATIONS_BY_TIME, &dangling, &"ghost".to_owned())
        });
        caught(&db, "kpis_by_name", "missing index entry");
        caught(&db, "conversations_by_time", "dangling");
    }

    #[test]
    fn a_missing_id_secret_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            tx.delete(&crate::store::SECRETS, &crate::store::NameKey::new("ids"))
                .map(|_| ())
        });
        caught(&db, "secrets", "missing");
    }

    #[test]
    fn plaintext_key_material_and_undecodable_rows_are_caught() {
        let db = Bespin::open_for_test(
            std::sync::Arc::new(crate::time::SystemClock),
            Default::default(),
        )
        .unwrap();
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
            tx.put(
                &crate::store::SEQUENCES,
                &crate::store::NameKey::new(&leaked),
                &1u64,
            )?;
            tx.raw_insert_for_test(
                crate::limits::LIMITS.name(),
                &crate::limits::LimitsKey::new(&t.tenant_id).encode(),
                &[1, 0xFF],
            )
        });
        caught(&db, "sequences", "plaintext");
        caught(&db, "limits", "does not decode");
        // A random bsk_ token that is nobody's key is not reported.
        let db = Bespin::open_for_test(
            std::sync::Arc::new(crate::time::SystemClock),
            Default::default(),
        )
        .unwrap();
        db.tamper(|tx| {
            tx.put(
                &crate::store::SEQUENCES,
                &crate::store::NameKey::new("bsk_notakey"),
                &1u64,
            )
        });
        assert!(db.check().unwrap().is_ok());
    }

    #[test]
    fn rows_of_a_missing_tenant_are_caught() {
        let (db, a, _) = populated();
        db.tamper(|tx| {
            tx.delete(
                &crate::tenancy::TENANTS,
                &crate::tenancy::TenantKey::new(a.tenant_id()),
            )
            .map(|_| ())
        });
        caught(&db, "usage_events", "missing tenant");
        caught(&db, "co_tasks", "missing tenant");
    }
}
