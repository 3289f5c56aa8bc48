//! Read-only access for the developer console (`/console`, contract part 50 §1).
//!
//! The console shows raw rows across tenants, which no tenant-facing operation does. This module
//! is that window, kept deliberately small and read-only:
//!
//! - [`Console::counts`]: row counts per table for the overview;
//! - [`Console::rows`]: rows of one allow-listed table ([`tables`]) as ordered `(column, value)`
//!   pairs — the key parts first (`tenant_id`, `user_id`, …), then the record's fields — with
//!   every secret removed (API-key digests, request hashes, stored response bodies);
//! - [`Console::snapshot`]: a consistent copy of the whole database as a redb file.
//!
//! Nothing here writes, and nothing here can return a credential: [`is_secret`] is applied to
//! every field of every row.

use crate::Bespin;
use crate::error::{Error, Result};
use crate::kpis::series;
use crate::metering::{USAGE_EVENTS, chunk};
use crate::store::{Flow, Kind, Order, PartValue, Reader, Sealer, TableInfo, parts, read_parts};
use crate::time::Timestamp;
use serde_json::Value;
use std::io::Write;
use std::ops::Bound;

/// One row: `(column, value)` pairs, key parts first, then the record's fields by name.
pub type Row = Vec<(String, Value)>;

/// The table viewer's allow-list, in the contract's order (50 §1.4.6): viewer name → stored
/// table. What a row shows — its key parts by name, its record's fields — comes from the
/// table's declaration ([`crate::schema`]); a table declared secret is never shown.
const VIEWS: &[(&str, &str)] = &[
    ("tenants", "tenants"),
    ("users", "users"),
    ("kpi_definitions", "kpis"),
    ("kpi_points", "kpi_chunks"),
    ("briefs", "briefs"),
    ("audit_logs", "audit_chain"),
    ("usage_events", "usage_events"),
    ("idempotency_keys", "idempotency"),
    ("notification_prefs", "notification_prefs"),
    ("notification_outbox", "notifications"),
    ("conversations", "conversations"),
    ("messages", "messages"),
    ("metered_event_types", "metered_events"),
    ("plans", "plans"),
    ("plan_capabilities", "plan_capabilities"),
    ("plan_event_caps", "plan_caps"),
    ("tenant_subscriptions", "subscriptions"),
    ("usage_rollups_period", "period_rollups"),
    ("actions", "co_actions"),
    ("action_reviews", "co_action_reviews"),
    ("action_executions", "co_action_executions"),
    ("tasks", "co_tasks"),
    ("meeting_notes", "co_meetings"),
    ("decisions", "co_decisions"),
    ("memory_facts", "co_facts"),
    ("evidence_links", "co_evidence"),
    ("timeline_events", "co_timeline"),
];

/// The overview's counters, in the contract's order (50 §1.4.1): label and viewer name.
const COUNTERS: &[(&str, &str)] = &[
    ("Tenants", "tenants"),
    ("Users", "users"),
    ("KPI Definitions", "kpi_definitions"),
    ("KPI Points", "kpi_points"),
    ("Briefs", "briefs"),
    ("Audit Logs", "audit_logs"),
    ("Usage Events", "usage_events"),
    ("Idempotency Keys", "idempotency_keys"),
    ("Notification Prefs", "notification_prefs"),
    ("Notification Outbox", "notification_outbox"),
    ("Conversations", "conversations"),
    ("Messages", "messages"),
    ("Metered Events", "metered_event_types"),
    ("Plans", "plans"),
    ("Subscriptions", "tenant_subscriptions"),
    ("Actions", "actions"),
    ("Tasks", "tasks"),
    ("Decisions", "decisions"),
    ("Meeting Notes", "meeting_notes"),
    ("Memory Facts", "memory_facts"),
    ("Evidence Links", "evidence_links"),
    ("Timeline Events", "timeline_events"),
];

/// The declaration of the table the viewer shows as `view`, unless it is unknown or secret.
fn viewed(view: &str) -> Option<&'static dyn TableInfo> {
    let &(_, table) = VIEWS.iter().find(|(v, _)| *v == view)?;
    crate::schema::table(table).filter(|t| !t.is_secret())
}

/// The table viewer's allow-list (viewer names, in display order). `tenant_limits`, the daily
/// rollups, the indexes and the sequences are not viewable.
pub fn tables() -> impl Iterator<Item = &'static str> {
    VIEWS.iter().map(|(v, _)| *v)
}

/// Whether a column must never be shown: digests, hashes, secrets, tokens, passwords, and the
/// stored response bodies of idempotent requests (which may echo anything).
pub fn is_secret(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    ["digest", "hash", "secret", "password", "token", "api_key"]
        .iter()
        .any(|s| c.contains(s))
        || c == "response"
}

/// The read-only console view of a database; see [`Bespin::console`].
#[derive(Clone, Copy)]
pub struct Console<'a>(&'a Bespin);

impl Bespin {
    /// The developer console's read-only view.
    pub fn console(&self) -> Console<'_> {
        Console(self)
    }
}

impl Console<'_> {
    /// Row counts over all tenants, as `(label, count)` in the overview's order ("KPI Points"
    /// counts points, not the chunks that hold them).
    pub fn counts(&self) -> Result<Vec<(&'static str, u64)>> {
        self.0.read(|r, _| {
            COUNTERS
                .iter()
                .map(|&(label, view)| {
                    let table = viewed(view)
                        .ok_or_else(|| Error::Internal(format!("no table for {view}")))?;
                    let n = if table.name() == series::KPI_CHUNKS.name() {
                        series::count_points(r)?
                    } else if table.name() == USAGE_EVENTS.name() {
                        r.count(table.name())? + chunk::count_events(r)?
                    } else {
                        r.count(table.name())?
                    };
                    Ok((label, n))
                })
                .collect()
        })
    }

    /// Up to `limit` rows of the viewer table `name`, in key order, secrets removed. With
    /// `first`, only rows whose first key part equals it (the tenant id for tenant tables, the
    /// plan id for `plans`, `plan_capabilities` and `plan_event_caps`). `None` if `name` is
    /// not on the allow-list.
    pub fn rows(&self, name: &str, first: Option<&str>, limit: usize) -> Result<Option<Vec<Row>>> {
        let Some(table) = viewed(name) else {
            return Ok(None);
        };
        self.0.read(|r, _| {
            let prefix = first.map(|f| {
                let mut p = Vec::new();
                // A tenant's id, a user's in `user_tenant`, are UUIDs: written as such.
                match table.layout().first().map(|p| p.kind) {
                    Some(Kind::Tenant | Kind::ExtId) => parts::ext_id::put(f, &mut p),
                    _ => parts::put_str(f, &mut p),
                }
                p
            });
            let succ = prefix.as_deref().map(crate::store::successor);
            let lo = match &prefix {
                Some(p) => Bound::Included(p.as_slice()),
                None => Bound::Unbounded,
            };
            let hi = match &succ {
                Some(Some(s)) => Bound::Excluded(s.as_slice()),
                _ => Bound::Unbounded,
            };
            if limit == 0 {
                return Ok(Some(Vec::new()));
            }
            // Usage events are rows of their own and events of chunks, keyed alike (tenant,
            // instant, number): both are shown, merged in key order.
            let shown: &[&dyn TableInfo] = if table.name() == USAGE_EVENTS.name() {
                &[table, &chunk::USAGE_CHUNKS]
            } else {
                &[table]
            };
            // Up to `limit` rows of each table with their stored keys; a stored row of several
            // records gives them all under its key, in their order.
            let mut keyed: Vec<(Vec<u8>, Row)> = Vec::new();
            for table in shown.iter().copied() {
                let mut taken = 0;
                r.scan_raw(table.name(), lo, hi, Order::Asc, &mut |k, v| {
                    let key = decode_key(r.sealer(), table, k);
                    for (more, fields) in table.show(v)? {
                        if taken >= limit {
                            break;
                        }
                        let mut cols = key.clone();
                        cols.extend(more.into_iter().map(|(c, v)| (c.to_owned(), v)));
                        keyed.push((k.to_vec(), row(cols, fields)));
                        taken += 1;
                    }
                    Ok(if taken >= limit {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    })
                })?;
            }
            // Stable: the records of one stored row keep their order.
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed.truncate(limit);
            Ok(Some(keyed.into_iter().map(|(_, row)| row).collect()))
        })
    }

    /// Writes a consistent snapshot of the whole database to `out` as a redb file, and returns
    /// its size. [`Bespin::backup`] copies every table inside one read transaction into a fresh
    /// file in the temporary directory, which is streamed to `out` and removed; writers keep
    /// running.
    pub fn snapshot(&self, out: &mut impl Write) -> Result<u64> {
        // Written through a directory only this user can enter, as a file only it can read.
        let dir = crate::files::private_temp_dir("bespin-snapshot").map_err(io)?;
        let path = dir.join("snapshot.redb");
        let copied = self.0.backup(&path).and_then(|_| {
            let mut f = std::fs::File::open(&path).map_err(io)?;
            let n = std::io::copy(&mut f, out).map_err(io)?;
            out.flush().map_err(io)?;
            Ok(n)
        });
        let _ = std::fs::remove_dir_all(&dir);
        copied
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(format!("snapshot: {e}"))
}

/// A row: the given key columns, then the record's fields (secrets removed).
pub(crate) fn row(mut out: Row, value: Value) -> Row {
    match value {
        Value::Object(fields) => {
            for (name, v) in fields {
                if is_secret(&name) {
                    continue;
                }
                let v = readable(&name, v);
                out.push((name, v));
            }
        }
        Value::Null => {}
        other => out.push(("value".into(), other)),
    }
    out
}

/// Stored encodings made readable: timestamps (micros) as RFC 3339, money amounts (a decimal's
/// 16 serialised bytes) as decimal text.
fn readable(name: &str, v: Value) -> Value {
    let is_time = name.ends_with("_at") || matches!(name, "ts" | "at" | "first_used");
    match v {
        Value::Number(n) if is_time => n
            .as_i64()
            .map(|m| Value::String(Timestamp(m).to_string()))
            .unwrap_or(Value::Number(n)),
        Value::Array(a) if a.len() == 16 => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|x| x.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            match <[u8; 16]>::try_from(bytes) {
                Ok(b) => Value::String(
                    rust_decimal::Decimal::deserialize(b)
                        .normalize()
                        .to_string(),
                ),
                Err(_) => Value::Array(a),
            }
        }
        other => other,
    }
}

/// Splits a stored key into its named parts (as many as the table shows); if it does not
/// parse, the raw key in hex.
pub(crate) fn decode_key(sealer: &Sealer, table: &dyn TableInfo, key: &[u8]) -> Row {
    let Some(values) = read_parts(table.layout(), key) else {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        return vec![("key".into(), Value::String(hex))];
    };
    let shown = table.shown_key_parts();
    table
        .layout()
        .iter()
        .zip(values)
        .take(shown)
        .map(|(part, v)| {
            let v = match v {
                PartValue::Str(s) => Value::String(s.into_owned()),
                PartValue::Id(id) => Value::String(id.to_id(sealer).into_owned()),
                PartValue::U64(n) => Value::from(n),
                PartValue::I64(n) => Value::from(n),
                PartValue::Ts(t) => Value::String(t.to_string()),
                PartValue::Date(d) => Value::String(d.map(|d| d.to_string()).unwrap_or_default()),
            };
            (part.name.to_owned(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::NewTenant;

    fn db_with_tenant() -> (Bespin, crate::tenancy::TenantCreated) {
        let db = Bespin::open_for_test(
            std::sync::Arc::new(crate::time::SystemClock),
            Default::default(),
        )
        .unwrap();
        let t = db
            .create_tenant(NewTenant {
                name: "Acme <b>".into(),
                region: "eu".into(),
                admin_email: "ada@acme.io".into(),
            })
            .unwrap();
        (db, t)
    }

    #[test]
    fn counts_follow_the_overview_order() {
        let (db, _) = db_with_tenant();
        let c = db.console().counts().unwrap();
        assert_eq!(c.len(), 22);
        assert_eq!(c[0], ("Tenants", 1));
        assert_eq!(c[1], ("Users", 1));
        assert!(c.iter().any(|&(l, n)| l == "Plans" && n > 0));
    }

    #[test]
    fn every_table_decodes_and_no_secret_is_returned() {
        let (db, t) = db_with_tenant();
        for name in tables() {
            let rows = db.console().rows(name, None, 1000).unwrap().unwrap();
            for r in &rows {
                assert!(r.iter().all(|(c, _)| !is_secret(c)), "{name}: {r:?}");
                assert!(
                    r.iter().all(|(c, _)| c != "key"),
                    "{name}: key did not parse: {r:?}"
                );
                let text = serde_json::to_string(&r).unwrap();
                assert!(!text.contains(&t.api_key), "{name} leaks the key");
            }
        }
        let tenants = db.console().rows("tenants", None, 10).unwrap().unwrap();
        assert_eq!(
            tenants[0][0],
            ("tenant_id".into(), Value::String(t.tenant_id.clone()))
        );
        assert!(
            tenants[0]
                .iter()
                .any(|(c, v)| c == "created_at" && v.as_str().is_some_and(|s| s.ends_with('Z')))
        );
        let users = db
            .console()
            .rows("users", Some(&t.tenant_id), 10)
            .unwrap()
            .unwrap();
        assert_eq!(users.len(), 1);
        assert!(
            db.console()
                .rows("users", Some("nobody"), 10)
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert!(
            db.console()
                .rows("usage_rollups_period", None, 10)
                .unwrap()
                .unwrap()
                .iter()
                .all(|r| r.iter().all(|(c, _)| c != "key"))
        );
    }

    #[test]
    fn kpi_points_are_listed_and_counted_one_per_point() {
        let (db, _) = crate::testutil::db();
        let (admin, _) = crate::testutil::tenant(&db);
        let days: Vec<String> = (1..=28)
            .flat_map(|d| (0..5).map(move |h| format!("2026-02-{d:02}T{h:02}:00:00Z")))
            .collect();
        let points: Vec<(&str, f64)> = days
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i as f64))
            .collect();
        let id = crate::testutil::kpi(&db, &admin, "MRR", &points);
        let (other, _) = crate::testutil::tenant(&db);
        crate::testutil::kpi(&db, &other, "Other", &[("2026-01-01", 1.0)]);
        let counts = db.console().counts().unwrap();
        assert!(counts.contains(&("KPI Points", 141)), "{counts:?}");
        let rows = db
            .console()
            .rows("kpi_points", Some(admin.tenant_id()), 139)
            .unwrap()
            .unwrap();
        assert_eq!(rows.len(), 139, "the limit counts points, across chunks");
        let columns: Vec<&str> = rows[0].iter().map(|(c, _)| c.as_str()).collect();
        // The record's fields come in the order the one-row-per-point table showed them.
        assert_eq!(
            columns,
            ["tenant_id", "kpi_id", "ts", "created_at", "value"]
        );
        assert_eq!(rows[0][1].1, Value::String(id));
        let last = &rows[138];
        assert_eq!(
            last[2].1,
            Value::String("2026-02-28T03:00:00.000000Z".into())
        );
        assert_eq!(last[4].1, Value::from(138.0));
        assert_eq!(
            last[3].1,
            Value::String("2026-01-31T12:00:00.000000Z".into())
        );
        let all = db
            .console()
            .rows("kpi_points", None, 1000)
            .unwrap()
            .unwrap();
        assert_eq!(all.len(), 141);
    }

    #[test]
    fn every_view_is_a_declared_table_that_is_not_secret() {
        for (view, table) in VIEWS {
            let t = crate::schema::table(table).unwrap();
            assert!(!t.is_secret(), "{view}");
            assert!(viewed(view).is_some(), "{view}");
        }
        assert!(COUNTERS.iter().all(|(_, v)| viewed(v).is_some()));
        assert!(
            crate::schema::tables()
                .iter()
                .all(|t| !t.is_secret() || ["secrets", "webhook_endpoints"].contains(&t.name()))
        );
    }

    #[test]
    fn unknown_and_hidden_tables_are_refused() {
        let (db, _) = db_with_tenant();
        for name in [
            "tenant_limits",
            "usage_rollups_daily",
            "sequences",
            "user_tenant",
            "nope",
        ] {
            assert!(
                db.console().rows(name, None, 10).unwrap().is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn snapshot_is_a_readable_copy() {
        let (db, t) = db_with_tenant();
        let mut bytes = Vec::new();
        let n = db.console().snapshot(&mut bytes).unwrap();
        assert_eq!(n as usize, bytes.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.redb");
        std::fs::write(&path, &bytes).unwrap();
        let copy = Bespin::open(&path).unwrap();
        let rows = copy.console().rows("tenants", None, 10).unwrap().unwrap();
        assert_eq!(rows[0][0].1, Value::String(t.tenant_id));
    }
}
