//! Tenant erasure: a tombstone at once, every row in bounded batches after.
//!
//! `DELETE /v1/admin/tenants/{id}` with `{"confirm": "<id>"}` runs [`erase_tenant`]: in one
//! transaction the tenant record goes and a tombstone `(tenant) → (erased_at, state)` takes its
//! place. From that commit on nothing authenticates as the tenant (its key and its users' keys
//! match no tenant: 401, as for a tenant that never existed), its id is never made again
//! ([`super::create_tenant`] looks at the tombstones), and the platform API answers 404 for it.
//!
//! The rows go afterwards, a step at a time ([`erase_step`]): each step deletes at most
//! [`STEP_ROWS`] rows, or what [`STEP_TIME`] allows, of the first tenant still `erasing`, table by
//! table in the reverse order of the registry (indexes and dependants before what they point
//! at, users last), with the global rows each table declares for its rows (its
//! `with_companions`: users' and keys' entries, usage's platform-wide insertion order). A step
//! is one small operation, so other tenants' writes wait at most one step for the writer. The
//! tombstone says `erasing` until the last row is gone, so a crash resumes where the last
//! committed step ended; then it says `erased`, and `bespin check` reports any row of the
//! tenant as a row of a missing tenant. While a tenant is `erasing`, the checker counts its rows as pending and
//! leaves out the violations its half-removed state implies.

use super::{TENANTS, tenant_key};
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::store::{Flow, Order, Reader, Record, Table, WriteTx, key, parts};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, got};
use crate::{Bespin, Ctx, schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::Bound;

/// The most rows one step deletes. Measured with `erasure_bench` (100,000 tasks, 1.6 M rows,
/// durable redb, shared 2-core machine): 2,000 rows a step erased 137,594 rows/s and moved
/// another tenant's write p50 from 3.99 to 4.67 ms, p99 from 10.9 to 28.1 ms; 500 rows a step
/// erases 57,199 rows/s with that tenant's p50 unchanged (4.00 → 3.98 ms) and p99 16.3 → 22.6
/// ms. Erasure is not urgent; other tenants' latency is.
pub const STEP_ROWS: usize = 500;
/// About the longest one step runs.
pub const STEP_TIME: std::time::Duration = std::time::Duration::from_millis(2);

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ErasureState {
    /// Rows remain; steps go on.
    Erasing,
    /// No row of the tenant remains.
    Erased,
}

/// The tombstone of an erased tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TombstoneRec {
    pub erased_at: Timestamp,
    pub state: ErasureState,
    pub rows_deleted: u64,
    pub finished_at: Option<Timestamp>,
}
impl Record for TombstoneRec {}

key! {
    /// Global: (tenant id) — not a tenant part, so the row is not the tenant's own.
    pub(crate) struct TombstoneKey<'a> { tenant_id: ext_id }
}

/// Global: tenant id → tombstone. Never deleted: ids are never reused.
pub(crate) const TOMBSTONES: Table<TombstoneKey<'static>, TombstoneRec> =
    Table::new("tenant_tombstones");

/// An erasure as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erasure {
    /// The erased tenant.
    pub tenant_id: String,
    /// When it was erased (its requests failed from then on).
    pub erased_at: String,
    /// `erasing` or `erased`.
    pub state: ErasureState,
    /// Rows deleted so far.
    pub rows_deleted: u64,
    /// When the last row went.
    pub finished_at: Option<String>,
}

fn view(id: &str, t: &TombstoneRec) -> Erasure {
    Erasure {
        tenant_id: id.to_owned(),
        erased_at: t.erased_at.to_rfc3339(),
        state: t.state,
        rows_deleted: t.rows_deleted,
        finished_at: t.finished_at.map(Timestamp::to_rfc3339),
    }
}

/// The confirmation an erasure needs: `{"confirm": "<the tenant id>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmErasure {
    /// The id of the tenant to erase, again.
    pub confirm: String,
}

impl ConfirmErasure {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let confirm = f.req_string("confirm", Len::between(1, 64));
        f.finish()?;
        Ok(ConfirmErasure {
            confirm: got(confirm)?,
        })
    }
}

/// Whether `id` names an erased (or erasing) tenant.
pub(crate) fn is_erased(r: &impl Reader, id: &str) -> Result<bool> {
    r.contains(&TOMBSTONES, &TombstoneKey::new(id))
}

/// Erases a tenant (platform operation): the tenant record becomes a tombstone in this
/// transaction; its rows go in later steps. Order: the confirmation names the tenant (422) →
/// the tenant exists (404, also for one already erased) → write.
pub fn erase_tenant(tx: &mut WriteTx, ctx: &Ctx, id: &str, req: ConfirmErasure) -> Result<Erasure> {
    if req.confirm != id {
        return Err(Error::BadRequest(
            "confirm must repeat the id of the tenant to erase".into(),
        ));
    }
    if !tx.delete(&TENANTS, &tenant_key(id))? {
        return Err(Error::NotFound("Tenant not found".into()));
    }
    let tomb = TombstoneRec {
        erased_at: ctx.now,
        state: ErasureState::Erasing,
        rows_deleted: 0,
        finished_at: None,
    };
    tx.put(&TOMBSTONES, &TombstoneKey::new(id), &tomb)?;
    // Credentials checked later in this batch look again.
    tx.forget_admissions();
    Ok(view(id, &tomb))
}

/// One step of the first erasure still running: deletes up to [`STEP_ROWS`] rows (or what
/// [`STEP_TIME`] allows) and records the progress. `None` when no erasure is running.
pub fn erase_step(tx: &mut WriteTx, ctx: &Ctx) -> Result<Option<Erasure>> {
    erase_step_within(tx, ctx, STEP_TIME)
}

/// [`erase_step`] with a time budget of `budget`: a step deletes at least one row whatever the
/// budget, so an erasure always moves.
fn erase_step_within(
    tx: &mut WriteTx,
    ctx: &Ctx,
    budget: std::time::Duration,
) -> Result<Option<Erasure>> {
    let mut first = None;
    tx.scan(
        &TOMBSTONES,
        &TOMBSTONES.prefix(),
        Order::Asc,
        |k, t: TombstoneRec| {
            if t.state == ErasureState::Erasing
                && let Some(k) = TombstoneKey::decode(k)
            {
                first = Some((k.tenant_id.into_owned(), t));
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        },
    )?;
    let Some((id, mut tomb)) = first else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let mut prefix = Vec::new();
    parts::tenant::put(&id, &mut prefix);
    let end = crate::store::successor(&prefix);
    let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut deleted = 0usize;
    let mut more = false;
    for table in schema::tables().iter().rev().filter(|t| t.tenant_scoped()) {
        let room = STEP_ROWS - deleted;
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        tx.scan_raw(
            table.name(),
            Bound::Included(prefix.as_slice()),
            hi,
            Order::Asc,
            &mut |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                Ok(if rows.len() > room {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            },
        )?;
        let full = rows.len() > room;
        rows.truncate(room);
        for (k, v) in &rows {
            if let Some(forget) = table.companions() {
                forget(tx, k, v)?;
            }
            tx.delete_raw(table.name(), k)?;
        }
        deleted += rows.len();
        // Time ends a step only once it deleted something: tables already emptied come first
        // in every step, and where a scan is a round trip (PostgreSQL under load) scanning
        // them alone can take the whole budget — the erasure would never move.
        let out_of_time = deleted > 0 && started.elapsed() >= budget;
        if full || deleted >= STEP_ROWS || out_of_time {
            more = true;
            break;
        }
    }
    tomb.rows_deleted += deleted as u64;
    if !more {
        tomb.state = ErasureState::Erased;
        tomb.finished_at = Some(ctx.now);
    }
    tx.put(&TOMBSTONES, &TombstoneKey::new(&id), &tomb)?;
    Ok(Some(view(&id, &tomb)))
}

/// Records the tombstones with the checker: an `erasing` tenant's rows are pending (it counts
/// as existing until its last step), an `erased` one's are rows of a missing tenant; no
/// tombstone may name a tenant that exists. Returns the tenants still erasing.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<Vec<String>> {
    let mut erasing = Vec::new();
    for t in c.rows(r, &TOMBSTONES)? {
        let id = t.key.tenant_id.as_ref();
        if r.contains(&TENANTS, &tenant_key(id))? {
            c.violation(
                TOMBSTONES.name(),
                &t.bytes,
                "tombstone of a tenant that exists",
            );
        } else {
            c.ok();
        }
        if t.value.state == ErasureState::Erasing {
            c.add_tenant(id.to_owned());
            erasing.push(id.to_owned());
        }
    }
    Ok(erasing)
}

impl Bespin {
    /// Erases a tenant ([`erase_tenant`]); its rows go in later steps ([`Bespin::erase_step`]).
    pub fn erase_tenant(&self, id: &str, req: ConfirmErasure) -> Result<Erasure> {
        self.write(|tx, ctx| erase_tenant(tx, ctx, id, req))
    }

    /// Runs one step of the first erasure still running ([`erase_step`]): `None` when none is.
    /// A server calls it in a loop in the background; an embedding program, until `None`.
    pub fn erase_step(&self) -> Result<Option<Erasure>> {
        self.write(erase_step)
    }

    /// The erasure of tenant `id`, if it was erased (platform).
    pub fn erasure(&self, id: &str) -> Result<Option<Erasure>> {
        self.read(|r, _| {
            Ok(r.get(&TOMBSTONES, &TombstoneKey::new(id))?
                .map(|t| view(id, &t)))
        })
    }
}

/// Rows of tenant `id` in every table of the registry (the tenant-scoped ones, under its
/// prefix): what an erasure must bring to 0.
#[cfg(test)]
pub(crate) fn rows_of(r: &impl Reader, id: &str) -> Result<u64> {
    let mut prefix = Vec::new();
    parts::tenant::put(id, &mut prefix);
    let end = crate::store::successor(&prefix);
    let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut n = 0;
    for table in schema::tables().iter().filter(|t| t.tenant_scoped()) {
        r.scan_raw(
            table.name(),
            Bound::Included(prefix.as_slice()),
            hi,
            Order::Asc,
            &mut |_, _| {
                n += 1;
                Ok(Flow::Continue)
            },
        )?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coreos::tasks::NewTask;
    use crate::tenancy::UserKey;
    use crate::tenancy::keys::NewApiKey;
    use crate::testutil::{db, kpi, report_usage, tenant};
    use crate::{Credentials, Error};
    use serde_json::json;

    /// The global tables (keys not starting with a tenant) with a row whose key or value holds
    /// tenant `id`, as text or as the 16 bytes of a key part (ids are unique random strings,
    /// so the bytes say it).
    fn global_rows_naming(r: &impl Reader, id: &str) -> Result<Vec<&'static str>> {
        let raw = parts::uuid_bytes(id).expect("a UUID");
        let needles = [id.as_bytes(), &raw[..]];
        let holds = |b: &[u8]| needles.iter().any(|n| b.windows(n.len()).any(|w| w == *n));
        let mut naming = Vec::new();
        for table in schema::tables().iter().filter(|t| !t.tenant_scoped()) {
            let mut found = false;
            r.scan_raw(
                table.name(),
                Bound::Unbounded,
                Bound::Unbounded,
                Order::Asc,
                &mut |k, v| {
                    found = holds(k) || holds(v);
                    Ok(if found { Flow::Stop } else { Flow::Continue })
                },
            )?;
            if found {
                naming.push(table.name());
            }
        }
        Ok(naming)
    }

    #[test]
    fn an_erased_tenant_is_gone_at_once_and_its_rows_in_bounded_steps() {
        let (db, _) = db();
        let (a, _) = tenant(&db);
        let (b, _) = tenant(&db);
        for i in 0..300 {
            let t = NewTask::from_json(&json!({"title": format!("a task {i}")})).expect("t");
            db.create_task(&a, t).expect("task");
        }
        kpi(&db, &a, "MRR", &[("2026-01-01", 1.0)]);
        kpi(&db, &b, "MRR", &[("2026-01-01", 1.0)]);
        // Reported usage leaves rows whose keys do not start with the tenant (the platform's
        // insertion order): they go with the tenant's own.
        report_usage(&db, &a, &["u1", "u2", "u3"]);
        report_usage(&db, &b, &["u1"]);
        // A user-bound key has a global digest row.
        let bound = NewApiKey::from_json(&json!({"user_id": a.user_id(), "name": "ci"}));
        db.create_api_key(&a, bound.expect("key")).expect("key");
        let (ta, tb) = (a.tenant_id().to_owned(), b.tenant_id().to_owned());
        // Global rows name the tenant: each table that has them declares what deletes them.
        let naming = db.read(|r, _| global_rows_naming(r, &ta)).expect("rows");
        for table in ["user_tenant", "api_key_digests", "usage_all_by_seq"] {
            assert!(naming.contains(&table), "{table} in {naming:?}");
        }
        let b_rows = db.read(|r, _| rows_of(r, &tb)).expect("rows");
        let a_rows = db.read(|r, _| rows_of(r, &ta)).expect("rows");
        assert!(
            a_rows > STEP_ROWS as u64,
            "{a_rows} rows: more than one step"
        );
        let bad = ConfirmErasure {
            confirm: tb.clone(),
        };
        assert!(matches!(
            db.erase_tenant(&ta, bad),
            Err(Error::BadRequest(_))
        ));
        let ok = ConfirmErasure {
            confirm: ta.clone(),
        };
        let e = db.erase_tenant(&ta, ok.clone()).expect("erase");
        assert_eq!(e.state, ErasureState::Erasing);
        // At once: nothing authenticates as it, and a second erasure is 404.
        let creds = Credentials::new(Some(&ta), Some(a.user_id()), Some("bsk_x"));
        assert!(matches!(
            db.authenticate(&creds),
            Err(Error::InvalidCredentials)
        ));
        assert!(matches!(db.erase_tenant(&ta, ok), Err(Error::NotFound(_))));
        // Half way: the checker counts its rows as pending.
        let first = db.erase_step().expect("step").expect("running");
        // A step stops at its row count or its time, whichever comes first.
        assert!(first.rows_deleted > 0 && first.rows_deleted <= STEP_ROWS as u64);
        let report = db.check().expect("check");
        assert!(report.is_ok(), "{report}");
        let mut steps = 1;
        while let Some(e) = db.erase_step().expect("step") {
            steps += 1;
            if e.state == ErasureState::Erased {
                // Every row but the tenant record, which the first transaction removed.
                assert_eq!(e.rows_deleted, a_rows - 1);
                break;
            }
        }
        assert!(steps >= 2);
        assert!(db.erase_step().expect("idle").is_none());
        assert_eq!(db.read(|r, _| rows_of(r, &ta)).expect("rows"), 0);
        // No global row names it any more, but its tombstone.
        let naming = db.read(|r, _| global_rows_naming(r, &ta)).expect("rows");
        assert_eq!(naming, [TOMBSTONES.name()]);
        assert_eq!(db.read(|r, _| rows_of(r, &tb)).expect("rows"), b_rows);
        let report = db.check().expect("check");
        assert!(report.is_ok(), "{report}");
        // b's one request: one run of one block, its filter.
        for table in [
            "usage_claim_runs",
            "usage_claim_blocks",
            "usage_claim_filters",
        ] {
            assert_eq!(report.rows_in(table), 1, "only b's {table}");
        }
        assert_eq!(report.rows_in("usage_chunks"), 1, "only b's");
        assert_eq!(
            report.rows_in("usage_all_by_seq"),
            report.rows_in("usage_events") + report.rows_in("usage_chunks")
        );
        assert_eq!(
            db.erasure(&ta).expect("get").expect("tombstone").state,
            ErasureState::Erased
        );
    }

    #[test]
    fn a_row_left_of_an_erased_tenant_is_caught() {
        let (db, _) = db();
        let (a, _) = tenant(&db);
        let ta = a.tenant_id().to_owned();
        let confirm = ConfirmErasure {
            confirm: ta.clone(),
        };
        db.erase_tenant(&ta, confirm).expect("erase");
        while db
            .erase_step()
            .expect("step")
            .is_some_and(|e| e.state == ErasureState::Erasing)
        {}
        db.tamper(|tx| {
            let key = UserKey::new(&ta, "someone");
            tx.put(&super::super::users::USER_DEACTIVATED, &key, &Timestamp(0))
        });
        let report = db.check().expect("check");
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.description.contains("missing tenant")),
            "{report}"
        );
    }

    /// Every step deletes something even when its time is gone before it reaches a row (as
    /// on PostgreSQL under load, where each scan of an emptied table is a round trip): with no
    /// time at all, the erasure still ends, one table's worth of rows at most per step.
    #[test]
    fn an_erasure_moves_even_when_every_step_is_out_of_time() {
        let (db, _) = db();
        let (a, _) = tenant(&db);
        for i in 0..20 {
            let t = NewTask::from_json(&json!({"title": format!("a task {i}")})).expect("t");
            db.create_task(&a, t).expect("task");
        }
        let ta = a.tenant_id().to_owned();
        let rows = db.read(|r, _| rows_of(r, &ta)).expect("rows");
        let ok = ConfirmErasure {
            confirm: ta.clone(),
        };
        db.erase_tenant(&ta, ok).expect("erase");
        let no_time = std::time::Duration::ZERO;
        let mut steps = 0;
        while let Some(e) = db
            .write(|tx, ctx| erase_step_within(tx, ctx, no_time))
            .expect("step")
        {
            steps += 1;
            assert!(steps <= rows, "step {steps} of an erasure of {rows} rows");
            if e.state == ErasureState::Erased {
                break;
            }
        }
        assert_eq!(db.read(|r, _| rows_of(r, &ta)).expect("rows"), 0);
        assert!(db.check().expect("check").is_ok());
    }
}
