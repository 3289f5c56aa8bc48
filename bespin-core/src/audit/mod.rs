//! The append-only, tamper-evident audit log.
//!
//! An audit row records who did what (`action`, e.g. `tools.invoke`), with which tool label,
//! under which request id, with what outcome. Each tenant's rows form a hash chain
//! ([`chain`]): row `n` is keyed by (tenant, n), `n` dense from 0, and stores the hash of the
//! row before it and its own. The chain's head (`AUDIT_HEADS`: size, last hash, last
//! instant) is read and written by every append in the append's transaction, so appends to one
//! tenant's chain are serialised by the writer (redb) or the batch lock (PostgreSQL) and the
//! chain never forks. A row's `created_at` is never earlier than its predecessor's (the later
//! of the head's instant and now), so the key order (tenant, n) is both the chain order and the
//! time order.

pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod query;
pub mod refused;

pub use chain::{Fault, Finding, VerifyReport};
pub use export::{AuditExport, ExportQuery};
pub use query::{AuditPage, AuditQuery, AuditStats, GroupBy, StatsQuery};
pub use refused::Refusal;

use crate::auth::Principal;
use crate::check::Checker;
use crate::error::Result;
use crate::store::{Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::{Bespin, Ctx};
use chain::Hash;
use serde::{Deserialize, Serialize};

/// How a request that wrote an audit row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation was carried out.
    Success,
    /// Refused for lack of role, capability or entitlement (403).
    Denied,
    /// Refused by a quota, cap or credit limit (429).
    Quota,
}

impl Outcome {
    /// The outcome's name, as stored in the chain's canonical encoding and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Quota => "quota",
        }
    }
}

/// A stored audit row: a link of its tenant's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AuditRec {
    /// When it was written (never before the previous row's instant).
    pub created_at: Timestamp,
    pub action: String,
    pub tool_name: Option<String>,
    pub request_id: String,
    pub outcome: Outcome,
    /// The capability the request exercised or lacked.
    pub capability: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Raw units metered for the request.
    pub units: Option<u64>,
    /// Personal: the acting user. Hashed into the chain only through `personal_digest`.
    pub user_id: String,
    /// Personal: the request's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// The salt of `personal_digest`; `None` once the personal fields are erased.
    pub digest_salt: Option<[u8; 16]>,
    pub personal_digest: Hash,
    pub prev_hash: Hash,
    pub row_hash: Hash,
}
impl Record for AuditRec {
    // Version 1 was `LegacyAuditRec`, in the table `audit` (layouts before 8).
    const VERSION: u8 = 2;
}

key! {
    /// (tenant, position in the tenant's chain).
    pub(crate) struct AuditKey<'a> { tenant_id: tenant, n: u64 }
    /// (tenant): its chain's head.
    pub(crate) struct HeadKey<'a> { tenant_id: tenant }
    /// Layouts before 8: (tenant, written at, sequence).
    pub(crate) struct LegacyAuditKey<'a> { tenant_id: tenant, written_at: ts, seq: u64 }
}

/// The head of a tenant's chain: how many rows it has, the last one's hash and instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeadRec {
    pub size: u64,
    pub hash: Hash,
    pub written_at: Timestamp,
}
impl Record for HeadRec {}

impl HeadRec {
    /// The head of a chain without rows.
    const EMPTY: HeadRec = HeadRec {
        size: 0,
        hash: chain::GENESIS,
        written_at: Timestamp(i64::MIN),
    };
}

/// An audit row of layouts before 8 (unchained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LegacyAuditRec {
    pub user_id: String,
    pub action: String,
    pub tool_name: Option<String>,
    pub request_id: String,
    pub created_at: Timestamp,
}
impl Record for LegacyAuditRec {}

/// (tenant, n) → audit row: the tenants' chains.
pub(crate) const AUDIT_LOG: Table<AuditKey<'static>, AuditRec> = Table::new("audit_chain");
/// (tenant) → its chain's head.
pub(crate) const AUDIT_HEADS: Table<HeadKey<'static>, HeadRec> = Table::new("audit_heads");
/// Layouts before 8: (tenant, written at, sequence) → unchained row. Emptied by the upgrade.
pub(crate) const LEGACY_AUDIT: Table<LegacyAuditKey<'static>, LegacyAuditRec> = Table::new("audit");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[
    &AUDIT_LOG,
    &AUDIT_HEADS,
    &checkpoint::CHECKPOINTS,
    &LEGACY_AUDIT,
];

/// An audit row as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// The row's position in its tenant's chain (0 first).
    pub n: u64,
    /// The acting user (empty once erased).
    pub user_id: String,
    /// What was done (`tools.invoke`, `briefs.materialize`, …).
    pub action: String,
    /// The tool or area label.
    pub tool_name: Option<String>,
    /// The request the row belongs to.
    pub request_id: String,
    /// How the request ended.
    pub outcome: Outcome,
    /// The capability exercised or lacked.
    pub capability: Option<String>,
    /// The type of the record acted on.
    pub target_type: Option<String>,
    /// The id of the record acted on.
    pub target_id: Option<String>,
    /// Raw units metered for the request.
    pub units: Option<u64>,
    /// The request's `Idempotency-Key`, when it had one.
    pub idempotency_key: Option<String>,
    /// When it was written (RFC 3339, UTC).
    pub created_at: String,
}

impl AuditRow {
    fn of(n: u64, a: AuditRec) -> Self {
        AuditRow {
            n,
            user_id: a.user_id,
            action: a.action,
            tool_name: a.tool_name,
            request_id: a.request_id,
            outcome: a.outcome,
            capability: a.capability,
            target_type: a.target_type,
            target_id: a.target_id,
            units: a.units,
            idempotency_key: a.idempotency_key,
            created_at: a.created_at.to_rfc3339(),
        }
    }
}

/// What an audit row says, before it is chained: [`Entry::new`] for the fields every row has,
/// then the builder methods for the others.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    user_id: &'a str,
    action: &'a str,
    tool_name: Option<&'a str>,
    request_id: &'a str,
    outcome: Outcome,
    capability: Option<&'a str>,
    target: Option<(&'a str, &'a str)>,
    units: Option<u64>,
    idempotency_key: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// A successful `action` by `user_id` under `request_id`.
    pub fn new(user_id: &'a str, action: &'a str, request_id: &'a str) -> Self {
        Entry {
            user_id,
            action,
            tool_name: None,
            request_id,
            outcome: Outcome::Success,
            capability: None,
            target: None,
            units: None,
            idempotency_key: None,
        }
    }
    /// With the tool or area label.
    pub fn tool(mut self, tool_name: Option<&'a str>) -> Self {
        self.tool_name = tool_name;
        self
    }
    /// With how the request ended.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
    /// With the capability exercised or lacked.
    pub fn capability(mut self, capability: &'a str) -> Self {
        self.capability = Some(capability);
        self
    }
    /// With the record acted on.
    pub fn target(mut self, target_type: &'a str, target_id: &'a str) -> Self {
        self.target = Some((target_type, target_id));
        self
    }
    /// With the raw units metered.
    pub fn units(mut self, units: u64) -> Self {
        self.units = Some(units);
        self
    }
    /// With the request's `Idempotency-Key`.
    pub fn idempotency_key(mut self, key: Option<&'a str>) -> Self {
        self.idempotency_key = key;
        self
    }
}

/// A fresh salt for a row's personal digest.
fn salt() -> Result<[u8; 16]> {
    let mut s = [0u8; 16];
    getrandom::fill(&mut s).map_err(|e| crate::Error::Storage(format!("random salt: {e}")))?;
    Ok(s)
}

/// Chains `rec` (its hashes filled in here) onto the head `head` of `tenant_id`'s chain, at
/// position `head.size`; returns the new head.
fn link(tx: &mut WriteTx, tenant_id: &str, head: HeadRec, mut rec: AuditRec) -> Result<HeadRec> {
    rec.created_at = rec.created_at.max(head.written_at);
    rec.prev_hash = head.hash;
    rec.row_hash = chain::row_hash(tenant_id, &rec);
    tx.put(&AUDIT_LOG, &AuditKey::new(tenant_id, head.size), &rec)?;
    Ok(HeadRec {
        size: head.size + 1,
        hash: rec.row_hash,
        written_at: rec.created_at,
    })
}

/// Appends `e` to the chain of `tenant_id` in the open transaction; returns its position. An
/// entry without an idempotency key takes the one the operation runs under, if any
/// ([`crate::Op::once`]).
pub fn append(tx: &mut WriteTx, ctx: &Ctx, tenant_id: &str, e: Entry<'_>) -> Result<u64> {
    let idempotency_key = e.idempotency_key.or(ctx.idempotency_key.as_deref());
    let salt = salt()?;
    let rec = AuditRec {
        created_at: ctx.now,
        action: e.action.to_owned(),
        tool_name: e.tool_name.map(str::to_owned),
        request_id: e.request_id.to_owned(),
        outcome: e.outcome,
        capability: e.capability.map(str::to_owned),
        target_type: e.target.map(|t| t.0.to_owned()),
        target_id: e.target.map(|t| t.1.to_owned()),
        units: e.units,
        user_id: e.user_id.to_owned(),
        idempotency_key: idempotency_key.map(str::to_owned),
        digest_salt: Some(salt),
        personal_digest: chain::personal_digest(&salt, e.user_id, idempotency_key),
        prev_hash: chain::GENESIS,
        row_hash: chain::GENESIS,
    };
    let hk = HeadKey::new(tenant_id);
    let head = tx.get(&AUDIT_HEADS, &hk)?.unwrap_or(HeadRec::EMPTY);
    let n = head.size;
    let head = link(tx, tenant_id, head, rec)?;
    // Held in the batch (every read of it sees it): a batch of many appends to one chain
    // writes its head once, at the commit.
    tx.put_held(&AUDIT_HEADS, &hk, &head)?;
    if head.size.is_multiple_of(checkpoint::EVERY_ROWS) {
        checkpoint::write(tx, ctx, tenant_id, &head)?;
    }
    Ok(n)
}

/// Appends a successful, unmetered `action` of `caller` about the record `target` (type,
/// id) to its tenant's chain in the open transaction, under a fresh request id.
pub fn record(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action: &str,
    target: (&str, &str),
) -> Result<()> {
    let request_id = crate::ids::new_id();
    let e = Entry::new(caller.user_id(), action, &request_id).target(target.0, target.1);
    append(tx, ctx, caller.tenant_id(), e).map(drop)
}

/// Layout 8: moves the unchained rows of [`LEGACY_AUDIT`] into the tenants' chains, in their
/// stored order (time, then sequence), and empties the old table.
pub(crate) fn chain_legacy_rows(tx: &mut WriteTx) -> Result<u64> {
    let mut rows = Vec::new();
    tx.scan(&LEGACY_AUDIT, &LEGACY_AUDIT.prefix(), Order::Asc, |k, v| {
        if let Some(k) = LegacyAuditKey::decode(k) {
            rows.push((k.tenant_id.into_owned(), v));
        }
        Ok(crate::store::Flow::Continue)
    })?;
    let moved = rows.len() as u64;
    let mut current: Option<(String, HeadRec)> = None;
    for (tenant, old) in rows {
        let head = match current.take() {
            Some((t, h)) if t == tenant => h,
            Some((t, h)) => {
                tx.put(&AUDIT_HEADS, &HeadKey::new(&t), &h)?;
                tx.get(&AUDIT_HEADS, &HeadKey::new(&tenant))?
                    .unwrap_or(HeadRec::EMPTY)
            }
            None => tx
                .get(&AUDIT_HEADS, &HeadKey::new(&tenant))?
                .unwrap_or(HeadRec::EMPTY),
        };
        let salt = salt()?;
        let rec = AuditRec {
            created_at: old.created_at,
            action: old.action,
            tool_name: old.tool_name,
            request_id: old.request_id,
            outcome: Outcome::Success,
            capability: None,
            target_type: None,
            target_id: None,
            units: None,
            personal_digest: chain::personal_digest(&salt, &old.user_id, None),
            user_id: old.user_id,
            idempotency_key: None,
            digest_salt: Some(salt),
            prev_hash: chain::GENESIS,
            row_hash: chain::GENESIS,
        };
        let head = link(tx, &tenant, head, rec)?;
        current = Some((tenant, head));
    }
    if let Some((t, h)) = current {
        tx.put(&AUDIT_HEADS, &HeadKey::new(&t), &h)?;
    }
    tx.clear_unlogged(&LEGACY_AUDIT)?;
    Ok(moved)
}

/// Visits `tenant_id`'s rows at positions `[lo, hi)` in `order`, with their position.
pub(crate) fn scan_positions(
    r: &impl Reader,
    tenant_id: &str,
    (lo, hi): (u64, u64),
    order: Order,
    mut visit: impl FnMut(u64, AuditRec) -> Result<crate::store::Flow>,
) -> Result<()> {
    if lo >= hi {
        return Ok(());
    }
    let from = AUDIT_LOG.prefix().tenant(tenant_id).u64(lo);
    let to = AUDIT_LOG.prefix().tenant(tenant_id).u64(hi);
    r.scan_range(
        &AUDIT_LOG,
        &AUDIT_LOG.prefix().tenant(tenant_id),
        Some(&from),
        Some(&to),
        order,
        &mut |k, a| visit(AuditKey::decode(k).map_or(0, |k| k.n), a),
    )
}

/// A 422 about the query value `field`, saying `reason` (a rule that needs the database).
pub(crate) fn query_error(field: &str, reason: &str) -> crate::Error {
    let loc = vec![crate::error::LocPart::Field(field.into())];
    let e = crate::error::FieldError::value_error(loc, serde_json::Value::Null, reason);
    crate::Error::Validation(vec![e])
}

/// The tenant's newest audit rows, newest first.
pub(crate) fn recent(r: &impl Reader, tenant_id: &str, limit: usize) -> Result<Vec<AuditRow>> {
    let mut out = Vec::new();
    r.scan(
        &AUDIT_LOG,
        &AUDIT_LOG.prefix().tenant(tenant_id),
        Order::Desc,
        |k, a| {
            if out.len() >= limit {
                return Ok(crate::store::Flow::Stop);
            }
            let n = AuditKey::decode(k).map_or(0, |k| k.n);
            out.push(AuditRow::of(n, a));
            Ok(crate::store::Flow::Continue)
        },
    )?;
    Ok(out)
}

/// Checks that every tenant's chain verifies ([`chain`]), that every row names an existing
/// user of its tenant (unless erased), and that the old unchained table is empty.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let rep = chain::verify(r)?;
    for f in &rep.findings {
        let key = match f.fault {
            chain::Fault::Head => HeadKey::new(&f.tenant_id).encode(),
            _ => AuditKey::new(&f.tenant_id, f.n).encode(),
        };
        let table = match f.fault {
            chain::Fault::Head => AUDIT_HEADS.name(),
            _ => AUDIT_LOG.name(),
        };
        c.violation(table, &key, f.description.clone());
    }
    if rep.is_clean() {
        c.ok();
    }
    for a in c.rows(r, &AUDIT_LOG)? {
        if a.value.digest_salt.is_none()
            || crate::tenancy::user_exists(r, &a.key.tenant_id, &a.value.user_id)?
        {
            c.ok();
        } else {
            let d = format!("audit row of missing user {}", a.value.user_id);
            c.violation(AUDIT_LOG.name(), &a.bytes, d);
        }
    }
    for a in c.rows(r, &LEGACY_AUDIT)? {
        c.violation(LEGACY_AUDIT.name(), &a.bytes, "unchained audit row left");
    }
    Ok(())
}

impl Bespin {
    /// The newest audit rows of the caller's tenant, newest first (at most `limit`).
    pub fn audit_log(&self, caller: &Principal, limit: usize) -> Result<Vec<AuditRow>> {
        self.read(|r, _| recent(r, caller.tenant_id(), limit))
    }

    /// Recomputes every tenant's audit chain from the current snapshot and reports what does
    /// not verify: altered rows, broken links, gaps, heads that do not match.
    pub fn audit_verify(&self) -> Result<VerifyReport> {
        self.read(|r, _| chain::verify(r))
    }
}

impl Bespin {
    /// Testing only: changes the `action` of row `n` of `tenant_id`'s chain behind the chain's
    /// back (its hashes kept), as an attacker editing the stored row would, so that tests of
    /// other crates (the CLI's) can see it detected. Returns whether the row existed.
    #[cfg(any(test, feature = "testing"))]
    pub fn tamper_audit_row_for_test(&self, tenant_id: &str, n: u64) -> Result<bool> {
        self.write(|tx, _| {
            let k = AuditKey::new(tenant_id, n);
            let Some(mut a) = tx.get(&AUDIT_LOG, &k)? else {
                return Ok(false);
            };
            a.action.push('!');
            tx.put(&AUDIT_LOG, &k, &a)?;
            Ok(true)
        })
    }
}

/// Test-only: stores the chained rows as layouts before 8 did (unchained, in `audit`), for the
/// upgrade's tests.
#[cfg(test)]
pub(crate) fn unchain_for_test(tx: &mut WriteTx) -> Result<()> {
    let mut rows = Vec::new();
    tx.scan(&AUDIT_LOG, &AUDIT_LOG.prefix(), Order::Asc, |k, v| {
        rows.push((k.to_vec(), v));
        Ok(crate::store::Flow::Continue)
    })?;
    for (seq, (k, a)) in rows.into_iter().enumerate() {
        tx.delete_stored(&AUDIT_LOG, &k)?;
        let Some(key) = AuditKey::decode(&k) else {
            continue;
        };
        let old = LegacyAuditKey::new(&key.tenant_id, a.created_at, seq as u64);
        let rec = LegacyAuditRec {
            user_id: a.user_id,
            action: a.action,
            tool_name: a.tool_name,
            request_id: a.request_id,
            created_at: a.created_at,
        };
        tx.put(&LEGACY_AUDIT, &old, &rec)?;
    }
    tx.delete_prefix(&AUDIT_HEADS, &AUDIT_HEADS.prefix())?;
    Ok(())
}

#[cfg(test)]
mod tests;
