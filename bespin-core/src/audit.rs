//! The append-only audit log.
//!
//! An audit row records who did what (`action`, e.g. `tools.invoke`), with which tool label,
//! under which request id. Rows are keyed by (tenant, instant, sequence), so a tenant's log is
//! one time-ordered range.

use crate::auth::Principal;
use crate::error::Result;
use crate::store::{Key, Order, Reader, Record, WriteTx, tables};
use crate::time::Timestamp;
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AuditRec {
    pub user_id: String,
    pub action: String,
    pub tool_name: Option<String>,
    pub request_id: String,
    pub created_at: Timestamp,
}
impl Record for AuditRec {}

/// An audit row as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// The acting user.
    pub user_id: String,
    /// What was done (`tools.invoke`, `briefs.materialize`, …).
    pub action: String,
    /// The tool or area label.
    pub tool_name: Option<String>,
    /// The request the row belongs to.
    pub request_id: String,
    /// When it was written (RFC 3339, UTC).
    pub created_at: String,
}

/// Appends an audit row for `caller` in the open transaction.
pub fn record(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action: &str,
    tool_name: Option<&str>,
    request_id: &str,
) -> Result<()> {
    let seq = tx.next_seq("audit")?;
    let key = Key::new().str(caller.tenant_id()).ts(ctx.now).u64(seq);
    let rec = AuditRec {
        user_id: caller.user_id().to_owned(),
        action: action.to_owned(),
        tool_name: tool_name.map(str::to_owned),
        request_id: request_id.to_owned(),
        created_at: ctx.now,
    };
    tx.put(&tables::AUDIT, &key, &rec)
}

/// The tenant's newest audit rows, newest first.
pub(crate) fn recent(r: &impl Reader, tenant_id: &str, limit: usize) -> Result<Vec<AuditRow>> {
    let rows = r.list(
        &tables::AUDIT,
        &Key::new().str(tenant_id),
        Order::Desc,
        0,
        limit,
    )?;
    Ok(rows
        .into_iter()
        .map(|a| AuditRow {
            user_id: a.user_id,
            action: a.action,
            tool_name: a.tool_name,
            request_id: a.request_id,
            created_at: a.created_at.to_rfc3339(),
        })
        .collect())
}

impl Bespin {
    /// The newest audit rows of the caller's tenant, newest first (at most `limit`).
    pub fn audit_log(&self, caller: &Principal, limit: usize) -> Result<Vec<AuditRow>> {
        self.read(|r, _| recent(r, caller.tenant_id(), limit))
    }
}
