//! Read-only access for the developer console (`/console`, contract part 50 §1).
//!
//! The console shows raw rows across tenants, which no tenant-facing operation does. This module
//! is that window, kept deliberately small and read-only:
//!
//! - [`Console::counts`]: row counts per table for the overview;
//! - [`Console::rows`]: rows of one allow-listed table ([`TABLES`]) as ordered `(column, value)`
//!   pairs — the key parts first (`tenant_id`, `user_id`, …), then the record's fields — with
//!   every secret removed (API-key digests, request hashes, stored response bodies);
//! - [`Console::snapshot`]: a consistent copy of the whole database as a redb file.
//!
//! Nothing here writes, and nothing here can return a credential: [`is_secret`] is applied to
//! every field of every row.

use crate::Bespin;
use crate::audit::AuditRec;
use crate::billing::catalog::{CapRec, MeteredEventRec, PlanRec};
use crate::billing::subscriptions::SubscriptionRec;
use crate::briefs::BriefRec;
use crate::conversations::{ConversationRec, MessageRec};
use crate::coreos::actions::{ActionRec, ExecutionRec, ReviewRec};
use crate::coreos::decisions::DecisionRec;
use crate::coreos::evidence::EvidenceRec;
use crate::coreos::meetings::MeetingRec;
use crate::coreos::memory::FactRec;
use crate::coreos::tasks::TaskRec;
use crate::coreos::timeline::EventRec;
use crate::error::{Error, Result};
use crate::idempotency::IdemRec;
use crate::kpis::series::{self, ChunkRec};
use crate::kpis::{KpiRec, PointRec};
use crate::metering::{RollupRec, UsageEventRec};
use crate::notifications::{NotificationRec, PrefRec};
use crate::store::{
    Flow, Key, Order, Reader, Record, codec, read_id, read_str, read_ts, read_u64, tables,
};
use crate::tenancy::{TenantRec, UserRec};
use crate::time::Timestamp;
use serde_json::Value;
use std::io::Write;
use std::ops::Bound;

/// One row: `(column, value)` pairs, key parts first, then the record's fields by name.
pub type Row = Vec<(String, Value)>;

/// How a key part is encoded.
#[derive(Clone, Copy)]
enum K {
    /// A string (ids, dates, names).
    S,
    /// A timestamp (shown as RFC 3339).
    T,
    /// An unsigned sequence number.
    U,
    /// A record id: a sealed record number (shown as the id) or an older, random id.
    I,
}

struct Spec {
    name: &'static str,
    table: &'static str,
    key: &'static [(&'static str, K)],
    decode: Decode,
}

/// How a stored row becomes viewer rows.
#[derive(Clone, Copy)]
enum Decode {
    /// One record: one row of its fields.
    One(fn(&[u8]) -> Result<Value>),
    /// A chunk of KPI points: one row per point, with the columns points had when they were
    /// stored one per row.
    Points,
}

fn dec<R: Record>(bytes: &[u8]) -> Result<Value> {
    json(&codec::decode::<R>(bytes)?)
}

fn json(r: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(r).map_err(|e| Error::Storage(format!("console: {e}")))
}

use Decode::{One, Points};
use K::{I, S, T, U};

const TENANT: (&str, K) = ("tenant_id", S);

/// The table viewer's allow-list, in display order: viewer name → stored table and key layout.
const SPECS: &[Spec] = &[
    Spec {
        name: "tenants",
        table: tables::TENANTS.name(),
        key: &[TENANT],
        decode: One(dec::<TenantRec>),
    },
    Spec {
        name: "users",
        table: tables::USERS.name(),
        key: &[TENANT, ("user_id", S)],
        decode: One(dec::<UserRec>),
    },
    Spec {
        name: "kpi_definitions",
        table: tables::KPIS.name(),
        key: &[TENANT, ("kpi_id", S)],
        decode: One(dec::<KpiRec>),
    },
    Spec {
        name: "kpi_points",
        table: tables::KPI_CHUNKS.name(),
        key: &[TENANT, ("kpi_id", S)],
        decode: Points,
    },
    Spec {
        name: "briefs",
        table: tables::BRIEFS.name(),
        key: &[TENANT, ("brief_date", S)],
        decode: One(dec::<BriefRec>),
    },
    Spec {
        name: "audit_logs",
        table: tables::AUDIT.name(),
        key: &[TENANT, ("written_at", T), ("seq", U)],
        decode: One(dec::<AuditRec>),
    },
    Spec {
        name: "usage_events",
        table: tables::USAGE_EVENTS.name(),
        key: &[TENANT, ("emitted_at", T), ("seq", U)],
        decode: One(dec::<UsageEventRec>),
    },
    Spec {
        name: "idempotency_keys",
        table: tables::IDEMPOTENCY.name(),
        key: &[TENANT, ("endpoint", S), ("idempotency_key", S)],
        decode: One(dec::<IdemRec>),
    },
    Spec {
        name: "notification_prefs",
        table: tables::NOTIFICATION_PREFS.name(),
        key: &[TENANT, ("user_id", S)],
        decode: One(dec::<PrefRec>),
    },
    Spec {
        name: "notification_outbox",
        table: tables::NOTIFICATIONS.name(),
        key: &[TENANT, ("user_id", S), ("id", U)],
        decode: One(dec::<NotificationRec>),
    },
    Spec {
        name: "conversations",
        table: tables::CONVERSATIONS.name(),
        key: &[TENANT, ("user_id", S), ("conversation_id", I)],
        decode: One(dec::<ConversationRec>),
    },
    Spec {
        name: "messages",
        table: tables::MESSAGES.name(),
        key: &[TENANT, ("conversation_seq", U), ("seq", U)],
        decode: One(dec::<MessageRec>),
    },
    Spec {
        name: "metered_event_types",
        table: tables::METERED_EVENTS.name(),
        key: &[("event_key", S)],
        decode: One(dec::<MeteredEventRec>),
    },
    Spec {
        name: "plans",
        table: tables::PLANS.name(),
        key: &[("plan_id", S)],
        decode: One(dec::<PlanRec>),
    },
    Spec {
        name: "plan_capabilities",
        table: tables::PLAN_CAPABILITIES.name(),
        key: &[("plan_id", S), ("capability_key", S)],
        decode: One(dec::<()>),
    },
    Spec {
        name: "plan_event_caps",
        table: tables::PLAN_CAPS.name(),
        key: &[("plan_id", S), ("event_key", S), ("period", S)],
        decode: One(dec::<CapRec>),
    },
    Spec {
        name: "tenant_subscriptions",
        table: tables::SUBSCRIPTIONS.name(),
        key: &[TENANT],
        decode: One(dec::<SubscriptionRec>),
    },
    Spec {
        name: "usage_rollups_period",
        table: tables::PERIOD_ROLLUPS.name(),
        key: &[TENANT, ("period_start", S), ("event_key", S)],
        decode: One(dec::<RollupRec>),
    },
    Spec {
        name: "actions",
        table: tables::CO_ACTIONS.name(),
        key: &[TENANT, ("action_id", I)],
        decode: One(dec::<ActionRec>),
    },
    Spec {
        name: "action_reviews",
        table: tables::CO_ACTION_REVIEWS.name(),
        key: &[TENANT, ("action_id", I)],
        decode: One(dec::<ReviewRec>),
    },
    Spec {
        name: "action_executions",
        table: tables::CO_ACTION_EXECUTIONS.name(),
        key: &[TENANT, ("action_id", I)],
        decode: One(dec::<ExecutionRec>),
    },
    Spec {
        name: "tasks",
        table: tables::CO_TASKS.name(),
        key: &[TENANT, ("task_id", I)],
        decode: One(dec::<TaskRec>),
    },
    Spec {
        name: "meeting_notes",
        table: tables::CO_MEETINGS.name(),
        key: &[TENANT, ("meeting_id", I)],
        decode: One(dec::<MeetingRec>),
    },
    Spec {
        name: "decisions",
        table: tables::CO_DECISIONS.name(),
        key: &[TENANT, ("decision_id", I)],
        decode: One(dec::<DecisionRec>),
    },
    Spec {
        name: "memory_facts",
        table: tables::CO_FACTS.name(),
        key: &[TENANT, ("fact_id", I)],
        decode: One(dec::<FactRec>),
    },
    Spec {
        name: "evidence_links",
        table: tables::CO_EVIDENCE.name(),
        key: &[
            TENANT,
            ("entity_type", S),
            ("entity_id", S),
            ("created_at", T),
            ("evidence_id", S),
        ],
        decode: One(dec::<EvidenceRec>),
    },
    Spec {
        name: "timeline_events",
        table: tables::CO_TIMELINE.name(),
        key: &[TENANT, ("created_at", T), ("seq", U)],
        decode: One(dec::<EventRec>),
    },
];

/// The overview's counters: label and stored table (50 §1.4.1).
const COUNTERS: &[(&str, &str)] = &[
    ("Tenants", tables::TENANTS.name()),
    ("Users", tables::USERS.name()),
    ("KPI Definitions", tables::KPIS.name()),
    ("KPI Points", tables::KPI_CHUNKS.name()),
    ("Briefs", tables::BRIEFS.name()),
    ("Audit Logs", tables::AUDIT.name()),
    ("Usage Events", tables::USAGE_EVENTS.name()),
    ("Idempotency Keys", tables::IDEMPOTENCY.name()),
    ("Notification Prefs", tables::NOTIFICATION_PREFS.name()),
    ("Notification Outbox", tables::NOTIFICATIONS.name()),
    ("Conversations", tables::CONVERSATIONS.name()),
    ("Messages", tables::MESSAGES.name()),
    ("Metered Events", tables::METERED_EVENTS.name()),
    ("Plans", tables::PLANS.name()),
    ("Subscriptions", tables::SUBSCRIPTIONS.name()),
    ("Actions", tables::CO_ACTIONS.name()),
    ("Tasks", tables::CO_TASKS.name()),
    ("Decisions", tables::CO_DECISIONS.name()),
    ("Meeting Notes", tables::CO_MEETINGS.name()),
    ("Memory Facts", tables::CO_FACTS.name()),
    ("Evidence Links", tables::CO_EVIDENCE.name()),
    ("Timeline Events", tables::CO_TIMELINE.name()),
];

/// The table viewer's allow-list (viewer names, in display order). `tenant_limits`, the daily
/// rollups, the indexes and the sequences are not viewable.
pub fn tables() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|s| s.name)
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
                .map(|&(label, table)| {
                    let n = if table == tables::KPI_CHUNKS.name() {
                        series::count_points(r)?
                    } else {
                        r.count(table)?
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
        let Some(spec) = SPECS.iter().find(|s| s.name == name) else {
            return Ok(None);
        };
        self.0.read(|r, _| {
            let prefix = first.map(|f| Key::new().str(f));
            let succ = prefix
                .as_ref()
                .map(|p| crate::store::successor(p.as_bytes()));
            let lo = match &prefix {
                Some(p) => Bound::Included(p.as_bytes()),
                None => Bound::Unbounded,
            };
            let hi = match &succ {
                Some(Some(s)) => Bound::Excluded(s.as_slice()),
                _ => Bound::Unbounded,
            };
            let mut out = Vec::new();
            if limit == 0 {
                return Ok(Some(out));
            }
            r.scan_raw(spec.table, lo, hi, Order::Asc, &mut |k, v| {
                let key = decode_key(r.sealer(), spec.key, k);
                match spec.decode {
                    One(decode) => out.push(row(key, decode(v)?)),
                    Points => point_rows(key, v, limit, &mut out)?,
                }
                Ok(if out.len() >= limit {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })?;
            Ok(Some(out))
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
fn row(mut out: Row, value: Value) -> Row {
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

/// The points of a KPI chunk as rows, until `out` holds `limit`: the chunk's key columns
/// (`series`), the point's `ts`, then its fields as a [`PointRec`] — the columns of the
/// one-row-per-point table.
fn point_rows(series: Row, value: &[u8], limit: usize, out: &mut Vec<Row>) -> Result<()> {
    let chunk: ChunkRec = codec::decode(value)?;
    for p in chunk.points.iter().take(limit.saturating_sub(out.len())) {
        let mut cols = series.clone();
        cols.push(("ts".into(), Value::String(p.ts.to_string())));
        let rec = PointRec {
            value: p.value,
            created_at: p.created_at,
        };
        out.push(row(cols, json(&rec)?));
    }
    Ok(())
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

/// Splits a stored key into its named parts; if it does not parse, the raw key in hex.
fn decode_key(sealer: &crate::ids::Sealer, layout: &[(&'static str, K)], key: &[u8]) -> Row {
    let mut out = Vec::with_capacity(layout.len());
    let mut at = 0;
    for &(name, kind) in layout {
        let part = match kind {
            K::S => read_str(key, at).map(|(s, next)| {
                at = next;
                Value::String(s)
            }),
            K::I => read_id(sealer, key, at).map(|(s, next)| {
                at = next;
                Value::String(s)
            }),
            K::T => read_ts(key, at).map(|t| {
                at += 8;
                Value::String(t.to_string())
            }),
            K::U => read_u64(key, at).map(|n| {
                at += 8;
                Value::from(n)
            }),
        };
        match part {
            Some(v) => out.push((name.to_string(), v)),
            None => {
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                return vec![("key".into(), Value::String(hex))];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::NewTenant;

    fn db_with_tenant() -> (Bespin, crate::tenancy::TenantCreated) {
        let db = Bespin::open_in_memory().unwrap();
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
