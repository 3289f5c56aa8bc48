//! Exporting a tenant's audit rows for a period as JSON Lines, a page at a time, from one
//! snapshot.
//!
//! [`Bespin::audit_export`] checks the caller (tenant admin), finds the period's positions
//! (as pages do) and takes the snapshot; [`AuditExport::next_page`] then renders at most
//! [`EXPORT_PAGE`] rows per call, oldest first, so a caller streaming it holds one page in
//! memory whatever the period's size, and every line comes from the same commit. A line holds
//! everything a verifier needs to rehash the row (the fields of a proof row, with the
//! personal fields and their salt while they are not erased): the lines of a period link from
//! the first line's `prev_hash` to the last line's `row_hash`.
//!
//! Bounded work (rule 6): a period holds at most [`EXPORT_MAX_ROWS`] rows (422 at
//! `["query","since"]` beyond, known from the positions before any row is read), and a tenant
//! runs at most [`EXPORTS_PER_TENANT`] exports at once (`Overloaded`, 503, for another), since
//! each holds a snapshot open.

use super::query::{TimeRange, positions, range};
use super::{AuditRec, scan_positions};
use crate::Bespin;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::{Flow, Order, ReadTx};
use crate::validate::Fields;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Rows rendered per [`AuditExport::next_page`].
pub const EXPORT_PAGE: u64 = 500;

/// Rows one export may hold.
pub const EXPORT_MAX_ROWS: u64 = 1_000_000;

/// Exports a tenant may run at once.
pub const EXPORTS_PER_TENANT: usize = 2;

/// `GET /v1/audit/export`'s query: the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportQuery {
    /// `[since, until)`; either end open.
    pub range: TimeRange,
}

impl ExportQuery {
    /// Validates `since` and `until` (RFC 3339 instants or dates), given as a JSON object of
    /// strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let range = range(&mut f);
        f.finish()?;
        Ok(ExportQuery {
            range: crate::validate::got(range)?,
        })
    }
}

/// One exported row: a JSON Lines line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    tenant_id: &'a str,
    n: u64,
    created_at: String,
    /// `created_at` in microseconds since the Unix epoch, as hashed.
    created_at_us: i64,
    action: String,
    tool_name: Option<String>,
    request_id: String,
    outcome: &'static str,
    capability: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    units: Option<u64>,
    user_id: String,
    idempotency_key: Option<String>,
    /// Base64; `null` once the personal fields are erased.
    digest_salt: Option<String>,
    personal_digest: String,
    prev_hash: String,
    row_hash: String,
}

impl<'a> Line<'a> {
    fn of(tenant_id: &'a str, n: u64, a: AuditRec) -> Self {
        Line {
            tenant_id,
            n,
            created_at: a.created_at.to_rfc3339(),
            created_at_us: a.created_at.0,
            action: a.action,
            tool_name: a.tool_name,
            request_id: a.request_id,
            outcome: a.outcome.as_str(),
            capability: a.capability,
            target_type: a.target_type,
            target_id: a.target_id,
            units: a.units,
            user_id: a.user_id,
            idempotency_key: a.idempotency_key,
            digest_salt: a.digest_salt.map(|s| B64.encode(s)),
            personal_digest: B64.encode(a.personal_digest),
            prev_hash: B64.encode(a.prev_hash),
            row_hash: B64.encode(a.row_hash),
        }
    }
}

/// The exports running, per tenant.
#[derive(Debug, Default)]
pub(crate) struct Running {
    tenants: Arc<Mutex<HashMap<String, usize>>>,
}

/// A running export's place in [`Running`], released when the export is dropped.
#[derive(Debug)]
struct Slot {
    tenants: Arc<Mutex<HashMap<String, usize>>>,
    tenant_id: String,
}

impl Running {
    fn take(&self, tenant_id: &str) -> Result<Slot> {
        let mut t = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(tenant_id.to_owned()).or_default();
        if *n >= EXPORTS_PER_TENANT {
            return Err(Error::Overloaded);
        }
        *n += 1;
        Ok(Slot {
            tenants: Arc::clone(&self.tenants),
            tenant_id: tenant_id.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.tenant_id) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.tenant_id);
            }
        }
    }
}

/// An export in progress: a snapshot and the positions left to render.
pub struct AuditExport {
    snapshot: Arc<ReadTx>,
    tenant_id: String,
    next: u64,
    end: u64,
    /// The export's place among the tenant's running ones, given back once its last page is
    /// rendered — not when the value is dropped, which the server does only after the last
    /// bytes went out, so that a client that read one export to its end and asks for the next
    /// never finds its own finished one still counted (a 503 the scope test met once).
    slot: Option<Slot>,
}

impl std::fmt::Debug for AuditExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditExport")
            .field("tenant_id", &self.tenant_id)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

impl AuditExport {
    /// Rows not rendered yet.
    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }

    /// Appends the next page (at most [`EXPORT_PAGE`] rows, oldest first) to `out`, one JSON
    /// object and a newline per row; `false` when every row was rendered already.
    pub fn next_page(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if self.next >= self.end {
            self.slot = None;
            return Ok(false);
        }
        let hi = self.end.min(self.next + EXPORT_PAGE);
        let tenant = self.tenant_id.as_str();
        let mut last = self.next;
        scan_positions(
            &*self.snapshot,
            tenant,
            (self.next, hi),
            Order::Asc,
            |n, a| {
                serde_json::to_writer(&mut *out, &Line::of(tenant, n, a))
                    .map_err(|e| Error::Internal(format!("audit export: {e}")))?;
                out.push(b'\n');
                last = n + 1;
                Ok(Flow::Continue)
            },
        )?;
        // A position without its row (a damaged chain, which `check` reports) is skipped.
        self.next = hi.max(last);
        if self.next >= self.end {
            self.slot = None;
        }
        Ok(true)
    }
}

impl Bespin {
    /// Starts an export of the caller's tenant's audit rows in `q`'s period (tenant admin),
    /// on the snapshot of now; render it with [`AuditExport::next_page`].
    ///
    /// Errors: `Forbidden` for a member; `Validation` at `since` when the period holds more
    /// than [`EXPORT_MAX_ROWS`] rows; `Overloaded` when the tenant runs
    /// [`EXPORTS_PER_TENANT`] exports already.
    pub fn audit_export(&self, caller: &Principal, q: &ExportQuery) -> Result<AuditExport> {
        caller.require_admin_to("read the audit log")?;
        let tenant = caller.tenant_id();
        let slot = self.inner.exports.take(tenant)?;
        let snapshot = self.snapshot()?;
        let (lo, hi) = positions(&*snapshot, tenant, q.range)?;
        if hi - lo > EXPORT_MAX_ROWS {
            let reason = format!(
                "the period holds {} audit rows, more than the {EXPORT_MAX_ROWS} an export may hold: narrow since/until",
                hi - lo
            );
            return Err(super::query_error("since", &reason));
        }
        Ok(AuditExport {
            snapshot,
            tenant_id: tenant.to_owned(),
            next: lo,
            end: hi,
            slot: Some(slot),
        })
    }
}
