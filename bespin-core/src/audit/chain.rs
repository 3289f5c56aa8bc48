//! The hash chain over a tenant's audit rows, and its verifier.
//!
//! Row `n` of a tenant stores `prev_hash` (row `n - 1`'s `row_hash`, 32 zero bytes for row 0)
//! and
//!
//! ```text
//! row_hash        = SHA-256(prev_hash ‖ canonical(row) ‖ personal_digest)
//! personal_digest = SHA-256(frame("bespin.audit.personal.v1") ‖ salt(16) ‖ frame(user_id)
//!                           ‖ frame(idempotency_key))
//! canonical(row)  = frame("bespin.audit.v1") ‖ frame(tenant_id) ‖ i64 BE(created_at µs)
//!                   ‖ frame(action) ‖ frame(tool_name) ‖ frame(request_id) ‖ frame(outcome)
//!                   ‖ frame(capability) ‖ frame(target_type) ‖ frame(target_id)
//!                   ‖ u64 BE(units) or 0xFF×8 when absent
//! frame(s)        = u32 BE(len(s)) ‖ s, or 0xFFFFFFFF for an absent field
//! ```
//!
//! The encoding is ours, fixed and documented (not serde's), so a verifier in any language can
//! recompute it (`scripts/audit/verify.py` does, in Python). The personal fields (the acting
//! user, the idempotency key) enter the chain only through their salted digest, so erasing
//! them later (blanking the fields and the salt) leaves every hash intact; without the salt
//! the digest cannot be tested against a guessed user id.
//!
//! The verifier tells apart: an **altered row** (its stored `row_hash` is not the hash of its
//! contents), **altered personal fields** (the digest does not match them), a **broken link**
//! (its `prev_hash` is not the previous row's `row_hash`: a row deleted, inserted or moved
//! before it), a **gap** in the positions, and a **head** that does not match the last row (rows
//! removed from the end).

use super::{AUDIT_HEADS, AUDIT_LOG, AuditKey, AuditRec, HeadKey, HeadRec};
use crate::error::Result;
use crate::store::{Flow, Order, Reader, codec};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ops::Bound;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The `prev_hash` of a chain's first row.
pub const GENESIS: Hash = [0; 32];

/// At most this many findings are kept by one verification (the count goes on).
const MAX_FINDINGS: usize = 1_000;

fn frame(h: &mut Sha256, s: Option<&str>) {
    match s {
        Some(s) => {
            // Fields are bounded far below 4 GiB (README "Limits").
            h.update((s.len() as u32).to_be_bytes());
            h.update(s.as_bytes());
        }
        None => h.update(u32::MAX.to_be_bytes()),
    }
}

/// The digest of a row's personal fields under its salt.
pub(crate) fn personal_digest(salt: &[u8; 16], user_id: &str, idem: Option<&str>) -> Hash {
    let mut h = Sha256::new();
    frame(&mut h, Some("bespin.audit.personal.v1"));
    h.update(salt);
    frame(&mut h, Some(user_id));
    frame(&mut h, idem);
    h.finalize().into()
}

/// The hash of `rec` in the chain of `tenant_id`, from its stored `prev_hash` and
/// `personal_digest`.
pub(crate) fn row_hash(tenant_id: &str, rec: &AuditRec) -> Hash {
    let mut h = Sha256::new();
    h.update(rec.prev_hash);
    frame(&mut h, Some("bespin.audit.v1"));
    frame(&mut h, Some(tenant_id));
    h.update(rec.created_at.0.to_be_bytes());
    frame(&mut h, Some(&rec.action));
    frame(&mut h, rec.tool_name.as_deref());
    frame(&mut h, Some(&rec.request_id));
    frame(&mut h, Some(rec.outcome.as_str()));
    frame(&mut h, rec.capability.as_deref());
    frame(&mut h, rec.target_type.as_deref());
    frame(&mut h, rec.target_id.as_deref());
    h.update(rec.units.unwrap_or(u64::MAX).to_be_bytes());
    h.update(rec.personal_digest);
    h.finalize().into()
}

/// What the verifier found wrong at one place of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The row's `row_hash` is not the hash of its contents: the row was changed.
    AlteredRow,
    /// The row's personal digest does not match its personal fields: they were changed.
    AlteredPersonal,
    /// The row does not decode: its bytes were changed.
    Undecodable,
    /// The row's `prev_hash` is not the previous row's `row_hash`: rows were removed,
    /// inserted or reordered before it.
    BrokenLink,
    /// The row's position is not the one after the previous row's: rows are missing before it.
    Gap,
    /// The chain head does not match the last row (rows removed from the end, or the head
    /// rewritten); `n` is the head's size.
    Head,
}

/// One finding: where (tenant, position) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The tenant whose chain it is.
    pub tenant_id: String,
    /// The row's position in the chain (for [`Fault::Head`], the head's size).
    pub n: u64,
    /// What is wrong.
    pub fault: Fault,
    /// A sentence for people.
    pub description: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tenant {} row {}: {}",
            self.tenant_id, self.n, self.description
        )
    }
}

/// The result of recomputing every chain of a database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Chains (tenants with audit rows or a head) walked.
    pub chains: u64,
    /// Rows whose hashes were recomputed.
    pub rows: u64,
    /// What was found wrong, in chain order per tenant (at most 1,000 kept).
    pub findings: Vec<Finding>,
    /// How many findings there were in all (more than `findings.len()` when some were dropped).
    pub total_findings: u64,
}

impl VerifyReport {
    /// Whether every chain verified.
    pub fn is_clean(&self) -> bool {
        self.total_findings == 0
    }

    fn add(&mut self, tenant_id: &str, n: u64, fault: Fault, description: String) {
        self.total_findings += 1;
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(Finding {
                tenant_id: tenant_id.to_owned(),
                n,
                fault,
                description,
            });
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "audit chains: {} chains, {} rows recomputed",
            self.chains, self.rows
        )?;
        if self.is_clean() {
            return writeln!(f, "every chain verifies");
        }
        writeln!(f, "{} findings:", self.total_findings)?;
        for x in &self.findings {
            writeln!(f, "  {x}")?;
        }
        if self.total_findings > self.findings.len() as u64 {
            writeln!(
                f,
                "  … and {} more",
                self.total_findings - self.findings.len() as u64
            )?;
        }
        Ok(())
    }
}

/// The walk's state within one tenant's chain.
struct Walk {
    tenant: String,
    next_n: u64,
    /// The previous row's stored `row_hash` (None after an undecodable row).
    prev: Option<Hash>,
}

/// Recomputes every tenant's chain from the snapshot `r`, one row at a time (memory bounded by
/// the number of tenants, for the heads).
pub(crate) fn verify(r: &impl Reader) -> Result<VerifyReport> {
    let mut heads: BTreeMap<String, HeadRec> = BTreeMap::new();
    r.scan(&AUDIT_HEADS, &AUDIT_HEADS.prefix(), Order::Asc, |k, h| {
        if let Some(k) = HeadKey::decode(k) {
            heads.insert(k.tenant_id.into_owned(), h);
        }
        Ok(Flow::Continue)
    })?;
    let mut rep = VerifyReport::default();
    let mut walk: Option<Walk> = None;
    r.scan_raw(
        AUDIT_LOG.name(),
        Bound::Unbounded,
        Bound::Unbounded,
        Order::Asc,
        &mut |k, v| {
            let Some(key) = AuditKey::decode(k) else {
                // The walk over every table reports keys that do not read back.
                return Ok(Flow::Continue);
            };
            if walk.as_ref().map(|w| w.tenant.as_str()) != Some(&key.tenant_id) {
                if let Some(w) = walk.take() {
                    finish(&mut rep, &mut heads, w);
                }
                rep.chains += 1;
                walk = Some(Walk {
                    tenant: key.tenant_id.to_string(),
                    next_n: 0,
                    prev: Some(GENESIS),
                });
            }
            let Some(w) = walk.as_mut() else {
                return Ok(Flow::Continue);
            };
            let (t, n) = (&w.tenant, key.n);
            rep.rows += 1;
            if n != w.next_n {
                let d = format!("gap: rows {}..{} are missing", w.next_n, n);
                rep.add(t, n, Fault::Gap, d);
            }
            w.next_n = n + 1;
            let rec = match codec::decode::<AuditRec>(v) {
                Ok(rec) => rec,
                Err(e) => {
                    rep.add(t, n, Fault::Undecodable, format!("altered row: {e}"));
                    w.prev = None;
                    return Ok(Flow::Continue);
                }
            };
            if let Some(salt) = &rec.digest_salt {
                let d = personal_digest(salt, &rec.user_id, rec.idempotency_key.as_deref());
                if d != rec.personal_digest {
                    let what = "altered personal fields: the digest does not match them";
                    rep.add(t, n, Fault::AlteredPersonal, what.into());
                }
            }
            if row_hash(t, &rec) != rec.row_hash {
                let what = "altered row: row_hash does not match its contents";
                rep.add(t, n, Fault::AlteredRow, what.into());
            }
            if let Some(prev) = w.prev
                && prev != rec.prev_hash
            {
                let what = "broken link: prev_hash is not the previous row's row_hash";
                rep.add(t, n, Fault::BrokenLink, what.into());
            }
            w.prev = Some(rec.row_hash);
            Ok(Flow::Continue)
        },
    )?;
    if let Some(w) = walk.take() {
        finish(&mut rep, &mut heads, w);
    }
    for (tenant, h) in heads {
        if h.size > 0 {
            rep.chains += 1;
            let d = format!("head says {} rows, none are stored", h.size);
            rep.add(&tenant, h.size, Fault::Head, d);
        }
    }
    Ok(rep)
}

/// Holds the end of a tenant's chain to its head.
fn finish(rep: &mut VerifyReport, heads: &mut BTreeMap<String, HeadRec>, w: Walk) {
    let head = heads.remove(&w.tenant);
    let ok = match (&head, w.prev) {
        (Some(h), Some(prev)) => h.size == w.next_n && h.hash == prev,
        (Some(h), None) => h.size == w.next_n,
        (None, _) => false,
    };
    if !ok {
        let d = match head {
            Some(h) => format!(
                "head (size {}) does not match the last row (size {})",
                h.size, w.next_n
            ),
            None => "rows without a chain head".to_owned(),
        };
        let at = head.map_or(w.next_n, |h| h.size);
        rep.add(&w.tenant, at, Fault::Head, d);
    }
}
