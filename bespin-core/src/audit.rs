//! The append-only audit log.
//!
//! An audit row records who did what (`action`, e.g. `tools.invoke`), with which tool label,
//! under which request id. Rows are keyed by (tenant, instant, sequence), so a tenant's log is
//! one time-ordered range.

use crate::auth::Principal;
use crate::check::Checker;
use crate::error::Result;
use crate::store::{Order, Reader, Record, Table, TableInfo, WriteTx, key};
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

key! {
    /// (tenant, written at, sequence).
    pub(crate) struct AuditKey<'a> { tenant_id: tenant, written_at: ts, seq: u64 }
}

/// (tenant, written at, sequence) → audit row.
pub(crate) const AUDIT: Table<AuditKey<'static>, AuditRec> = Table::new("audit");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&AUDIT];

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
    let key = AuditKey::new(caller.tenant_id(), ctx.now, seq);
    let rec = AuditRec {
        user_id: caller.user_id().to_owned(),
        action: action.to_owned(),
        tool_name: tool_name.map(str::to_owned),
        request_id: request_id.to_owned(),
        created_at: ctx.now,
    };
    tx.put(&AUDIT, &key, &rec)
}

/// The tenant's newest audit rows, newest first.
pub(crate) fn recent(r: &impl Reader, tenant_id: &str, limit: usize) -> Result<Vec<AuditRow>> {
    let rows = r.list(
        &AUDIT,
        &AUDIT.prefix().tenant(tenant_id),
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

/// Checks that every audit row is keyed by its instant and names an existing user of its
/// tenant.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    for a in c.rows(r, &AUDIT)? {
        if a.key.written_at != a.value.created_at {
            c.violation(
                AUDIT.name(),
                &a.bytes,
                "key instant differs from created_at",
            );
        }
        if crate::tenancy::user_exists(r, &a.key.tenant_id, &a.value.user_id)? {
            c.ok();
        } else {
            let d = format!("audit row of missing user {}", a.value.user_id);
            c.violation(AUDIT.name(), &a.bytes, d);
        }
    }
    Ok(())
}

impl Bespin {
    /// The newest audit rows of the caller's tenant, newest first (at most `limit`).
    pub fn audit_log(&self, caller: &Principal, limit: usize) -> Result<Vec<AuditRow>> {
        self.read(|r, _| recent(r, caller.tenant_id(), limit))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::testing::{caught, first_key, populated};

    #[test]
    fn an_audit_row_of_a_missing_user_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &AUDIT);
            let k = AuditKey::decode(&k).unwrap();
            let mut a = tx.get(&AUDIT, &k)?.unwrap();
            a.user_id = "nobody".into();
            tx.put(&AUDIT, &k, &a)
        });
        caught(&db, "audit", "missing user nobody");
    }
}
