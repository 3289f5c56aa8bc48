//! Refused requests in the audit log, bounded per tenant (rule 6).
//!
//! A request refused after its caller authenticated — 403 (role, capability, subscription) or
//! 429 (quota, cap, daily allowance, the plan's request rate, the pace of large writes) —
//! writes one audit row with outcome `denied` or `quota`, through [`Bespin::audit_refusal`].
//! Such rows are unmetered writes that a hostile member could repeat at will, so each tenant
//! has a budget of [`ROWS_PER_MINUTE`] refusal rows per minute of the core's clock (kept in
//! memory, per process). Past it, refusals are only counted; the counts of a minute are
//! written as one summary row per outcome (action [`SUPPRESSED_ACTION`], `units` = how many
//! were left out, target `minute` = the minute's start) with the tenant's next refusal in a
//! later minute, or by the upkeep ([`Bespin::flush_refusal_summaries`]), whichever comes
//! first. So a tenant's refusals cost at most 62 rows a minute, however many it makes.
//!
//! Unauthenticated requests (401, and 403 for a user that does not exist or is not in the
//! tenant) are not audited: no tenant is proven, and a row would let anyone fill any tenant's
//! log. Validation failures (422) and other 4xx are not audited either.

use super::{Entry, Outcome, append};
use crate::auth::Principal;
use crate::error::{Error, ErrorKind, Result};
use crate::op::{Op, Pending};
use crate::store::WriteTx;
use crate::time::Timestamp;
use crate::{Bespin, Ctx};
use std::collections::HashMap;
use std::sync::Mutex;

/// Refusal rows a tenant may write per minute before they are only counted.
pub const ROWS_PER_MINUTE: u32 = 60;

/// The action of a summary row: how many refusals of one outcome a minute left out.
pub const SUPPRESSED_ACTION: &str = "audit.refusals_suppressed";

const MINUTE_MICROS: i64 = 60_000_000;

/// A request refused after its caller authenticated, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused: the operation's name (the server uses the route's OpenAPI
    /// operation id, as `create_task`).
    pub action: String,
    /// `Denied` (403) or `Quota` (429).
    pub outcome: Outcome,
    /// The request's id (the server's `X-Request-ID`).
    pub request_id: String,
    /// The capability the plan lacks, when that was the reason.
    pub capability: Option<String>,
    /// The request's `Idempotency-Key`, when it had one.
    pub idempotency_key: Option<String>,
}

impl Refusal {
    /// The refusal of `action` by the core error `e`, when `e` is one that is audited: a
    /// 403 of role, capability or subscription (`Denied`) or a 429 of quota (`Quota`). `None`
    /// for every other error, and for the 403s of credentials (no proven caller).
    pub fn of_error(action: &str, request_id: &str, e: &Error) -> Option<Refusal> {
        let outcome = match (e, e.kind()) {
            (Error::UserNotFound | Error::UserNotInTenant, _) => return None,
            (_, ErrorKind::Forbidden | ErrorKind::CapabilityDenied) => Outcome::Denied,
            (_, ErrorKind::QuotaExceeded) => Outcome::Quota,
            _ => return None,
        };
        let capability = match e {
            Error::CapabilityDenied { capability_key, .. } => Some(capability_key.clone()),
            _ => None,
        };
        Some(Refusal {
            action: action.to_owned(),
            outcome,
            request_id: request_id.to_owned(),
            capability,
            idempotency_key: None,
        })
    }

    /// A 429 of a rate (the plan's request rate, the pace of large writes) refusing `action`.
    pub fn rate_limited(action: &str, request_id: &str) -> Refusal {
        Refusal {
            action: action.to_owned(),
            outcome: Outcome::Quota,
            request_id: request_id.to_owned(),
            capability: None,
            idempotency_key: None,
        }
    }

    /// The same refusal, recording the request's `Idempotency-Key` (a key the idempotent
    /// endpoints would refuse, blank or too long, is not recorded).
    pub fn with_idempotency_key(mut self, key: Option<&str>) -> Refusal {
        self.idempotency_key = key
            .filter(|k| crate::idempotency::check_key(k).is_ok())
            .map(str::to_owned);
        self
    }
}

/// Refusals of one outcome left out of a tenant's minute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Suppressed {
    count: u64,
    /// The first left-out refusal's user and request, named by the summary row.
    user_id: String,
    request_id: String,
}

/// A tenant's budget in the current minute.
#[derive(Debug, Default)]
struct Window {
    minute: i64,
    written: u32,
    /// Left out this minute: `[denied, quota]`.
    suppressed: [Option<Suppressed>; 2],
}

/// A summary row to write: `count` refusals of `outcome` left out in the minute starting at
/// `minute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    tenant_id: String,
    outcome: Outcome,
    minute: Timestamp,
    left_out: Suppressed,
}

/// The per-tenant budgets of refusal rows (in memory; each process keeps its own).
#[derive(Debug, Default)]
pub(crate) struct Budget {
    windows: Mutex<HashMap<String, Window>>,
}

/// What the budget allows for one refusal.
enum Admit {
    /// Write it, after the summaries of the tenant's earlier minute.
    Write(Vec<Summary>),
    /// Counted only.
    Suppressed,
}

fn slot(outcome: Outcome) -> usize {
    usize::from(outcome != Outcome::Denied)
}

fn summaries(tenant_id: &str, w: &mut Window) -> Vec<Summary> {
    let minute = Timestamp(w.minute * MINUTE_MICROS);
    [Outcome::Denied, Outcome::Quota]
        .into_iter()
        .filter_map(|outcome| {
            let left_out = w.suppressed[slot(outcome)].take()?;
            Some(Summary {
                tenant_id: tenant_id.to_owned(),
                outcome,
                minute,
                left_out,
            })
        })
        .collect()
}

impl Budget {
    fn admit(&self, now: Timestamp, caller: &Principal, r: &Refusal) -> Admit {
        let minute = now.0.div_euclid(MINUTE_MICROS);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(caller.tenant_id().to_owned()).or_default();
        let mut earlier = Vec::new();
        if w.minute != minute {
            earlier = summaries(caller.tenant_id(), w);
            *w = Window {
                minute,
                ..Window::default()
            };
        }
        if w.written < ROWS_PER_MINUTE {
            w.written += 1;
            return Admit::Write(earlier);
        }
        let s = w.suppressed[slot(r.outcome)].get_or_insert_with(|| Suppressed {
            count: 0,
            user_id: caller.user_id().to_owned(),
            request_id: r.request_id.clone(),
        });
        s.count += 1;
        Admit::Suppressed
    }

    /// The summaries of every minute before `now`'s, and forgets those windows.
    fn flush(&self, now: Timestamp) -> Vec<Summary> {
        let minute = now.0.div_euclid(MINUTE_MICROS);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        windows.retain(|tenant, w| {
            if w.minute >= minute {
                return true;
            }
            out.extend(summaries(tenant, w));
            false
        });
        out
    }
}

/// What [`record`] writes: summary rows, then the refusal of `caller` (if any).
#[derive(Debug)]
pub(crate) struct Rows {
    summaries: Vec<Summary>,
    refusal: Option<(Principal, Refusal)>,
}

/// Appends the summary rows and the refusal row of `rows` to their tenants' chains (a
/// platform operation: the core made `rows` from an authenticated caller).
pub(crate) fn record(tx: &mut WriteTx, ctx: &Ctx, rows: Rows) -> Result<()> {
    for s in &rows.summaries {
        let minute = s.minute.to_rfc3339();
        let e = Entry::new(
            &s.left_out.user_id,
            SUPPRESSED_ACTION,
            &s.left_out.request_id,
        )
        .outcome(s.outcome)
        .units(s.left_out.count)
        .target("minute", &minute);
        append(tx, ctx, &s.tenant_id, e)?;
    }
    if let Some((caller, r)) = &rows.refusal {
        let mut e = Entry::new(caller.user_id(), &r.action, &r.request_id)
            .outcome(r.outcome)
            .idempotency_key(r.idempotency_key.as_deref());
        if let Some(c) = &r.capability {
            e = e.capability(c);
        }
        append(tx, ctx, caller.tenant_id(), e)?;
    }
    Ok(())
}

impl Bespin {
    /// Audits `refusal` of an authenticated `caller` within its tenant's budget: submits the
    /// row (after the summaries of the tenant's earlier minute, if refusals were left out
    /// then) to the writer and returns its pending write, or counts it for the minute's
    /// summary and returns `None` once the tenant wrote [`ROWS_PER_MINUTE`] refusal rows this
    /// minute. Never blocks; a full writer queue settles the pending with `Overloaded` and the
    /// row is not written.
    pub fn audit_refusal(&self, caller: &Principal, refusal: Refusal) -> Option<Pending<()>> {
        match self.inner.refusals.admit(self.ctx().now, caller, &refusal) {
            Admit::Suppressed => None,
            Admit::Write(summaries) => {
                let rows = Rows {
                    summaries,
                    refusal: Some((caller.clone(), refusal)),
                };
                Some(self.submit(Op::admin(rows, record)))
            }
        }
    }

    /// Writes the summary rows of every minute that has ended with refusals left out, and
    /// forgets the budgets of those minutes (the server's upkeep runs this); returns how many
    /// summary rows were written.
    pub fn flush_refusal_summaries(&self) -> Result<usize> {
        let summaries = self.inner.refusals.flush(self.ctx().now);
        let n = summaries.len();
        if n > 0 {
            let rows = Rows {
                summaries,
                refusal: None,
            };
            self.write(|tx, ctx| record(tx, ctx, rows))?;
        }
        Ok(n)
    }
}
