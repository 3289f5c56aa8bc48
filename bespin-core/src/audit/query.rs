//! Reading a tenant's audit log: filtered pages with a stable cursor, and counts per group.
//!
//! A tenant's rows are keyed by their chain position `n`, and `created_at` never decreases
//! along the chain, so a time range `[since, until)` is a range of positions found by binary
//! search (about 2·log2(rows) point reads), and a cursor is a position: rows appended while a
//! client pages have larger positions and never shift a page (newest first, `n` descending).
//!
//! Work is bounded per request (README "Limits"): a page examines at most [`SCAN_BUDGET`] rows;
//! when the filters are that selective, the page comes back short (even empty) with a
//! `next_cursor` to go on from. Statistics count a range of at most [`STATS_MAX_ROWS`] rows
//! (known before reading any, from the positions) and refuse a wider one with 422.

use super::{
    AUDIT_HEADS, AUDIT_LOG, AuditKey, AuditRec, AuditRow, HeadKey, Outcome, scan_positions,
};
use crate::auth::Principal;
use crate::error::Result;
use crate::store::{Flow, Order, Reader};
use crate::time::Timestamp;
use crate::validate::{Bounds, Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Rows a page may examine (filtered out or not) before it returns.
pub const SCAN_BUDGET: u64 = 10_000;

/// Rows a statistics request may count.
pub const STATS_MAX_ROWS: u64 = 100_000;

/// Page size: default and maximum.
const LIMIT_DEFAULT: i64 = 50;
const LIMIT_MAX: i64 = 200;

/// `GET /v1/audit`'s query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Only rows of this acting user.
    pub actor_user_id: Option<String>,
    /// Only rows of this action.
    pub action: Option<String>,
    /// Only rows about records of this type.
    pub target_type: Option<String>,
    /// Only rows about the record with this id.
    pub target_id: Option<String>,
    /// Only rows with this outcome.
    pub outcome: Option<Outcome>,
    /// The period: `[since, until)`.
    pub range: TimeRange,
    /// Only rows before this position (a previous page's `next_cursor`).
    pub cursor: Option<u64>,
    /// Page size (1–200, default 50).
    pub limit: usize,
}

/// A period `[since, until)`; either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub since: Option<Timestamp>,
    /// Exclusive end.
    pub until: Option<Timestamp>,
}

/// What `group_by` a statistics request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Per action.
    Action,
    /// Per acting user.
    Actor,
    /// Per outcome.
    Outcome,
    /// Per UTC day of `created_at`.
    Day,
}

/// `GET /v1/audit/stats`'s query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    /// The grouping.
    pub group_by: GroupBy,
    /// The period.
    pub range: TimeRange,
}

/// A page of audit rows, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// The rows.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub items: Vec<AuditRow>,
    /// Pass as `cursor` for the next (older) rows; `null` when there are none.
    pub next_cursor: Option<String>,
}

/// Counts of audit rows per group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditStats {
    /// The grouping asked for.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub group_by: GroupBy,
    /// Rows counted.
    pub total: u64,
    /// One entry per group: `{"key": …, "count": …}`, largest count first, then by key.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub groups: Vec<GroupCount>,
}

/// One group's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCount {
    /// The action, user id, outcome or date (`YYYY-MM-DD`).
    pub key: String,
    /// Rows in the group.
    pub count: u64,
}

fn instant(f: &mut Fields<'_>, name: &str) -> Option<Option<Timestamp>> {
    let s = f.string(name, Presence::Optional, Len::at_most(64))?;
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Some(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&s) {
        return Some(Some(Timestamp::from_datetime(t.to_utc())));
    }
    if let Some(d) = crate::time::Date::parse(&s) {
        return Some(Some(d.start()));
    }
    let reason = "expected an RFC 3339 instant or a date (YYYY-MM-DD)".to_owned();
    f.value_error(name, reason);
    None
}

pub(crate) fn range(f: &mut Fields<'_>) -> Option<TimeRange> {
    let since = instant(f, "since")?;
    let until = instant(f, "until")?;
    Some(TimeRange { since, until })
}

fn text(f: &mut Fields<'_>, name: &str) -> Option<Option<String>> {
    let v = f.string(name, Presence::Optional, Len::at_most(255))?;
    Some(v.filter(|s| !s.is_empty()))
}

const OUTCOMES: &[&str] = &["success", "denied", "quota"];

fn outcome_of(s: &str) -> Option<Outcome> {
    match s {
        "success" => Some(Outcome::Success),
        "denied" => Some(Outcome::Denied),
        "quota" => Some(Outcome::Quota),
        _ => None,
    }
}

impl AuditQuery {
    /// Validates query values (`actor_user_id`, `action`, `target_type`, `target_id`,
    /// `outcome`, `since`, `until`, `cursor`, `limit`), given as a JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let actor_user_id = text(&mut f, "actor_user_id");
        let action = text(&mut f, "action");
        let target_type = text(&mut f, "target_type");
        let target_id = text(&mut f, "target_id");
        let outcome = f.choice(
            "outcome",
            Presence::Optional,
            OUTCOMES,
            "^(success|denied|quota)$",
        );
        let range = range(&mut f);
        let cursor = f.int("cursor", Presence::Optional, Bounds::ge(0));
        let limit = f.int("limit", Presence::Optional, Bounds::range(1, LIMIT_MAX));
        f.finish()?;
        Ok(AuditQuery {
            actor_user_id: got(actor_user_id)?,
            action: got(action)?,
            target_type: got(target_type)?,
            target_id: got(target_id)?,
            outcome: got(outcome)?.as_deref().and_then(outcome_of),
            range: got(range)?,
            cursor: got(cursor)?.map(|c| c as u64),
            limit: got(limit)?.unwrap_or(LIMIT_DEFAULT) as usize,
        })
    }

    fn matches(&self, a: &AuditRec) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        eq(&self.actor_user_id, Some(&a.user_id))
            && eq(&self.action, Some(&a.action))
            && eq(&self.target_type, a.target_type.as_deref())
            && eq(&self.target_id, a.target_id.as_deref())
            && self.outcome.is_none_or(|o| o == a.outcome)
    }
}

impl StatsQuery {
    /// Validates `group_by` (required: `action`, `actor`, `outcome` or `day`), `since`,
    /// `until`, given as a JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let group_by = f.choice(
            "group_by",
            Presence::Required,
            &["action", "actor", "outcome", "day"],
            "^(action|actor|outcome|day)$",
        );
        let range = range(&mut f);
        f.finish()?;
        let group_by = match got(group_by)?.as_deref() {
            Some("actor") => GroupBy::Actor,
            Some("outcome") => GroupBy::Outcome,
            Some("day") => GroupBy::Day,
            _ => GroupBy::Action,
        };
        Ok(StatsQuery {
            group_by,
            range: got(range)?,
        })
    }
}

/// The first position of `tenant`'s chain (of `size` rows) whose row is at or after `t`.
fn first_at_or_after(r: &impl Reader, tenant: &str, size: u64, t: Timestamp) -> Result<u64> {
    let (mut lo, mut hi) = (0, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let before = match r.get(&AUDIT_LOG, &AuditKey::new(tenant, mid))? {
            Some(a) => a.created_at < t,
            // A missing row (a damaged chain, which `check` reports) counts as before.
            None => true,
        };
        if before {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The positions `[lo, hi)` of `tenant`'s rows in `range`.
pub(crate) fn positions(r: &impl Reader, tenant: &str, range: TimeRange) -> Result<(u64, u64)> {
    let size = r
        .get(&AUDIT_HEADS, &HeadKey::new(tenant))?
        .map_or(0, |h| h.size);
    let lo = match range.since {
        Some(t) => first_at_or_after(r, tenant, size, t)?,
        None => 0,
    };
    let hi = match range.until {
        Some(t) => first_at_or_after(r, tenant, size, t)?,
        None => size,
    };
    Ok((lo, hi.max(lo)))
}

/// A page of `tenant`'s rows matching `q`, newest first.
pub(crate) fn page(r: &impl Reader, tenant: &str, q: &AuditQuery) -> Result<AuditPage> {
    let (lo, mut hi) = positions(r, tenant, q.range)?;
    if let Some(c) = q.cursor {
        hi = hi.min(c);
    }
    let mut items = Vec::new();
    let mut examined = 0u64;
    // The position the next page starts below, when this one stops early.
    let mut stopped_at = None;
    scan_positions(r, tenant, (lo, hi), Order::Desc, |n, a| {
        if items.len() >= q.limit || examined >= SCAN_BUDGET {
            stopped_at = Some(n + 1);
            return Ok(Flow::Stop);
        }
        examined += 1;
        if q.matches(&a) {
            items.push(AuditRow::of(n, a));
        }
        Ok(Flow::Continue)
    })?;
    Ok(AuditPage {
        items,
        next_cursor: stopped_at.map(|n| n.to_string()),
    })
}

/// Counts `tenant`'s rows in `q.range` per group.
pub(crate) fn stats(r: &impl Reader, tenant: &str, q: &StatsQuery) -> Result<AuditStats> {
    let (lo, hi) = positions(r, tenant, q.range)?;
    if hi - lo > STATS_MAX_ROWS {
        let reason = format!(
            "the period holds {} audit rows, more than the {STATS_MAX_ROWS} a statistics request may count: narrow since/until",
            hi - lo
        );
        return Err(super::query_error("since", &reason));
    }
    let mut groups: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0;
    scan_positions(r, tenant, (lo, hi), Order::Asc, |_, a| {
        let key = match q.group_by {
            GroupBy::Action => a.action,
            GroupBy::Actor => a.user_id,
            GroupBy::Outcome => a.outcome.as_str().to_owned(),
            GroupBy::Day => a.created_at.date().to_string(),
        };
        *groups.entry(key).or_default() += 1;
        total += 1;
        Ok(Flow::Continue)
    })?;
    let mut groups: Vec<GroupCount> = groups
        .into_iter()
        .map(|(key, count)| GroupCount { key, count })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    Ok(AuditStats {
        group_by: q.group_by,
        total,
        groups,
    })
}

impl Bespin {
    /// A page of the caller's tenant's audit rows matching `q`, newest first (tenant admin).
    ///
    /// Errors: `Forbidden` for a member.
    pub fn audit_page(&self, caller: &Principal, q: &AuditQuery) -> Result<AuditPage> {
        caller.require_admin_to("read the audit log")?;
        self.read(|r, _: &Ctx| page(r, caller.tenant_id(), q))
    }

    /// Counts of the caller's tenant's audit rows per group over a period (tenant admin).
    ///
    /// Errors: `Forbidden` for a member; `Validation` when the period holds more than
    /// [`STATS_MAX_ROWS`] rows.
    pub fn audit_stats(&self, caller: &Principal, q: &StatsQuery) -> Result<AuditStats> {
        caller.require_admin_to("read the audit log")?;
        self.read(|r, _: &Ctx| stats(r, caller.tenant_id(), q))
    }
}
