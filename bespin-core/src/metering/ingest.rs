//! Usage in: events a tenant's own services report (`POST /v1/usage/events`), CloudEvents 1.0
//! as OpenMeter ingests them — `type` is a metered event key of the catalogue, `data.value`
//! the raw units.
//!
//! Each event of a request is, in this order: validated (422 at its place); looked up by
//! `(source, id)` — a repeat within the retention answers `duplicate` with the usage id of
//! the first and changes nothing; refused when its `time` lies before the open billing period,
//! in the next one, or more than 5 minutes ahead (422 at `time`); then checked as Bespin's own
//! metering is — subscription and plan, the type (active), the capability an admin tied the
//! type to, the credit allowance, then the plan's monthly cap (the same
//! `super::Limits::admit`) — and recorded with its rollups in the period and on the day of
//! its `time`. The whole request is one operation, so one transaction: concurrent repeats of
//! an event are serialised by the writer (redb) or the batch lock (PostgreSQL), and the first
//! one wins in a race too.
//!
//! The lookup reads the tenant's claims ([`super::claims`]: sorted runs with a filter per
//! block, so a new id costs a few probes in memory and a repeat one block read); an accepted
//! event's claim is written with the request's others as one run at the end. Most of that
//! work is done before the writer takes the request, on a snapshot
//! ([`Bespin::look_ahead_usage`]): the lookups in the runs it lists, and the tenant's next
//! merge step. On PostgreSQL every block the writer's lookups will read is read in one round
//! trip first.
//!
//! Nothing is written for an event before all its checks passed, and its checks read the
//! figures the events before it in the request left (kept in memory: the plan, each type and
//! cap are read once per request, and the rollups written once per key at the end). So an
//! event is applied whole or not at all, and a refused one leaves no trace — in particular no
//! claim: a refusal is not remembered, so the same event sent again after a plan upgrade (or
//! in the next period's allowance) is checked again, and refused junk cannot fill the claims.

use super::{
    DAY_ROLLUPS, Limits, PERIOD_ROLLUPS, Sums, active_event, active_plan, chunk, claims,
    day_rollup_key, export, rollup_key,
};
use crate::auth::Principal;
use crate::billing::catalog::MeteredEventRec;
use crate::billing::{require_capability, thresholds};
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::money::Amount;
use crate::store::{Record, Table, TableInfo, WriteTx, key};
use crate::time::{Date, Timestamp};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, FieldError, LocPart, ids};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// The most events one request may carry.
pub const MAX_BATCH: usize = 1000;
/// How far ahead of the server's clock an event's `time` may lie (5 minutes).
pub const MAX_FUTURE_MICROS: i64 = 5 * 60 * 1_000_000;
/// How long an accepted event's `(source, id)` is remembered by default (32 days).
pub const DEFAULT_DEDUP_RETENTION_MICROS: i64 = 32 * 86_400 * 1_000_000;
/// The largest `data.value` accepted.
pub const MAX_VALUE: i64 = 1_000_000_000_000_000;
/// The most decimal places of `data.value`.
pub const MAX_SCALE: u32 = 12;

/// What layout 13's de-duplication table remembered of an accepted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DedupRec {
    /// Its usage number.
    pub seq: u64,
    /// When it was accepted (the retention counts from here).
    pub accepted_at: Timestamp,
}
impl Record for DedupRec {}

/// The instant past which an event's `time` proves it was accepted within the `retention`
/// at `now` (a `time` lies at most 5 minutes ahead of its acceptance): the checker expects a
/// live claim of every event reported beyond it.
pub(super) fn dedup_horizon(now: Timestamp, retention: i64) -> i64 {
    now.0
        .saturating_sub(retention)
        .saturating_add(MAX_FUTURE_MICROS)
}

key! {
    /// (tenant, CloudEvent source, CloudEvent id).
    pub(crate) struct DedupKey<'a> { tenant_id: tenant, source: str, event_id: ext_id }
    /// Layout 9's expiry order: (UTC date it expires on, tenant, source, id).
    pub(crate) struct DedupExpiryKey<'a> { expires_on: date, tenant_id: str, source: str, event_id: str }
}

/// Layout 13's claims, (tenant, source, id) → the accepted event, one row per event at a
/// random place. Moved into runs of claims by the upgrade to layout 14
/// ([`super::purge::rows_to_runs`]) and left empty.
pub(crate) const USAGE_DEDUP: Table<DedupKey<'static>, DedupRec> = Table::new("usage_dedup");
/// Layout 9's purge order, (expiry date, tenant, source, id): a global row per remembered
/// event, at a random place. Emptied by the upgrade to layout 10 and left empty.
pub(crate) const USAGE_DEDUP_BY_EXPIRY: Table<DedupExpiryKey<'static>, ()> =
    Table::new("usage_dedup_by_expiry");

/// Layout 13's `meta` row holding the usage number up to which its purge had walked (deleted
/// by the upgrade to layout 14).
pub(crate) const PURGED_UP_TO: &str = "usage_dedup_purged_up_to";

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&USAGE_DEDUP, &USAGE_DEDUP_BY_EXPIRY];

/// One reported usage event, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEventIn {
    /// The CloudEvent `id`: unique per `source` (1–256 characters).
    pub id: String,
    /// The CloudEvent `source` (1–256 characters).
    pub source: String,
    /// The CloudEvent `type`: a metered event key (1–100 characters).
    pub event_key: String,
    /// The CloudEvent `subject`: what the usage is of (at most 256 characters).
    pub subject: Option<String>,
    /// The CloudEvent `time`; the server's now when absent.
    pub time: Option<Timestamp>,
    /// `data.value`: raw units, > 0, at most 10¹⁵ with at most 12 decimals.
    pub value: Amount,
}

/// A reported usage event as the API documents it (a CloudEvent 1.0 in structured JSON;
/// other attributes and extensions are accepted and ignored).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CloudEventIn {
    /// `1.0`.
    specversion: String,
    /// Unique per source (1–256 characters): a repeat within 32 days is a duplicate.
    id: String,
    /// Where the event comes from (1–256 characters).
    source: String,
    /// A metered event key of the catalogue.
    #[schema(rename = "type")]
    event_type: String,
    /// What the usage is of (≤ 256 characters).
    #[schema(required = false)]
    subject: Option<String>,
    /// RFC 3339; default now. Within the open billing period, at most 5 minutes ahead.
    #[schema(required = false)]
    time: Option<String>,
    /// `{"value": <number > 0>}`: the raw units (a numeric string is accepted too).
    data: CloudEventData,
}

/// The `data` of a reported usage event.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CloudEventData {
    /// Raw units: > 0, ≤ 10¹⁵, at most 12 decimals.
    value: f64,
}

/// The events of one request, each validated or refused where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvents {
    events: Vec<Result<UsageEventIn>>,
    /// A batch (locations of errors start with the event's index).
    batch: bool,
    /// Each event's claim hashes ([`claims::hashes`] of its source and id; 0s for an invalid
    /// event), made where the request is built — on an HTTP worker, or the embedder's thread —
    /// so that the writer does not spend its time on them.
    hashes: Vec<(u64, u64)>,
    /// The lookups made ahead of the writer, if they were ([`Bespin::look_ahead_usage`]).
    pub(crate) ahead: Option<Box<claims::Ahead>>,
}

impl UsageEventIn {
    /// Validates one CloudEvent (structured JSON). Errors: 422 with every field's problem.
    pub fn from_json(v: &Value) -> Result<Self> {
        Self::at(v, Vec::new())
    }

    pub(super) fn at(v: &Value, base: Vec<LocPart>) -> Result<Self> {
        let mut f = Fields::at(v, base.clone())?;
        let spec = f.req_string("specversion", Len::between(1, 10));
        if spec.as_deref().is_some_and(|s| s != "1.0") {
            f.value_error("specversion", "only CloudEvents 1.0 is accepted".into());
        }
        let id = f.req_string("id", Len::between(1, 256));
        let source = f.req_string("source", Len::between(1, 256));
        let event_key = f.req_string("type", Len::between(1, 100));
        let subject = f.string("subject", Presence::Optional, Len::at_most(256));
        let time = f.string("time", Presence::Optional, Len::at_most(64));
        let time = time.map(|t| t.and_then(|t| parse_time(&mut f, &t)));
        let value = match f.object("data", Presence::Required) {
            Some(Some(data)) => {
                let data = Value::Object(data);
                let mut base = base;
                base.push(LocPart::Field("data".into()));
                let mut d = Fields::at(&data, base)?;
                let value = value(&mut d);
                if let Err(Error::Validation(items)) = d.finish() {
                    f.extend(items);
                }
                value
            }
            _ => None,
        };
        f.finish()?;
        Ok(UsageEventIn {
            id: got(id)?,
            source: got(source)?,
            event_key: got(event_key)?,
            subject: got(subject)?,
            time: got(time)?,
            value: got(value)?,
        })
    }
}

fn parse_time(f: &mut Fields<'_>, t: &str) -> Option<Timestamp> {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(dt) => Some(Timestamp(dt.timestamp_micros())),
        Err(_) => {
            f.fail(
                "time",
                "datetime_parsing",
                "Input should be a valid RFC 3339 date-time",
                Value::String(t.to_owned()),
            );
            None
        }
    }
}

/// `data.value`: a number (or numeric string) > 0, ≤ 10¹⁵, at most 12 decimals.
fn value(d: &mut Fields<'_>) -> Option<Amount> {
    let raw = match d.raw("value") {
        Some(v) => v,
        None => {
            d.fail("value", "missing", "Field required", Value::Null);
            return None;
        }
    };
    let amount = match raw {
        Value::Number(n) => n.as_f64().and_then(Amount::from_f64),
        Value::String(s) => Amount::parse(s),
        _ => None,
    };
    let Some(a) = amount else {
        d.fail(
            "value",
            "float_type",
            "Input should be a valid number",
            raw.clone(),
        );
        return None;
    };
    if a.is_negative() || a.is_zero() {
        d.fail(
            "value",
            "greater_than",
            "Input should be greater than 0",
            raw.clone(),
        );
        return None;
    }
    if a > Amount::from_int(MAX_VALUE) {
        d.fail(
            "value",
            "less_than_equal",
            "Input should be less than or equal to 1000000000000000",
            raw.clone(),
        );
        return None;
    }
    if a.scale() > MAX_SCALE {
        d.value_error("value", format!("at most {MAX_SCALE} decimal places"));
        return None;
    }
    Some(a)
}

impl UsageEvents {
    /// One event (`application/cloudevents+json`). Errors: 422 for an invalid event (the
    /// request fails as a whole, as a single event should).
    pub fn single(v: &Value) -> Result<Self> {
        Ok(UsageEvents::new(
            vec![Ok(UsageEventIn::from_json(v)?)],
            false,
        ))
    }

    /// A batch (`application/cloudevents-batch+json`): a JSON array of 1–1,000 events. An
    /// invalid event is refused alone, in its result; the others go on. Errors: 422 when the
    /// body is not such an array.
    pub fn batch(v: &Value) -> Result<Self> {
        let Value::Array(items) = v else {
            return Err(Error::field(FieldError::new(
                "list_type",
                Vec::new(),
                "Input should be a valid list (a CloudEvents batch)",
                v.clone(),
            )));
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(Error::field(FieldError::new(
                if items.is_empty() {
                    "too_short"
                } else {
                    "too_long"
                },
                Vec::new(),
                format!("A batch holds 1 to {MAX_BATCH} events, not {}", items.len()),
                Value::Null,
            )));
        }
        let events = items
            .iter()
            .enumerate()
            .map(|(i, v)| UsageEventIn::at(v, vec![LocPart::Index(i)]))
            .collect();
        Ok(UsageEvents::new(events, true))
    }

    /// Events read and validated elsewhere ([`super::typed`]), or by the constructors above.
    pub(super) fn new(events: Vec<Result<UsageEventIn>>, batch: bool) -> Self {
        let hashes = events
            .iter()
            .map(|e| {
                e.as_ref()
                    .map_or((0, 0), |e| claims::hashes(&e.source, &e.id))
            })
            .collect();
        UsageEvents {
            events,
            batch,
            hashes,
            ahead: None,
        }
    }

    /// Events built by an embedder (a batch of them). Errors: 422 for more than 1,000.
    pub fn from_events(events: Vec<UsageEventIn>) -> Result<Self> {
        if events.len() > MAX_BATCH {
            return Err(Error::BadRequest(format!(
                "A batch holds at most {MAX_BATCH} events"
            )));
        }
        Ok(UsageEvents::new(events.into_iter().map(Ok).collect(), true))
    }

    /// How many events the request holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A usage event's id (`use_` and its sealed usage number, the `id` of its export), sealed
/// when it is shown rather than on the writer: sealing and formatting cost about as much as
/// one of the event's rows (docs/performance.md), and the answer is rendered off the writer.
#[derive(Clone)]
pub struct UsageId {
    seq: u64,
    sealer: std::sync::Arc<crate::store::Sealer>,
}

impl UsageId {
    fn new(tx: &WriteTx, seq: u64) -> UsageId {
        UsageId {
            seq,
            sealer: tx.shared_sealer(),
        }
    }
}

impl std::fmt::Display for UsageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "use_{}", self.sealer.seal(self.seq))
    }
}

impl std::fmt::Debug for UsageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Two ids are equal when they name the same usage event (of one database).
impl PartialEq for UsageId {
    fn eq(&self, other: &UsageId) -> bool {
        self.seq == other.seq
    }
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Recorded now, as the usage event with this id (the id of its export).
    Accepted {
        /// `use_…`.
        usage_id: UsageId,
    },
    /// Recorded before (same `source` and `id` within the retention): nothing changed.
    Duplicate {
        /// The usage id of the first.
        usage_id: UsageId,
    },
    /// Refused with this error (a 422, 400, 403 or 429 of its own); nothing was written.
    Rejected(Error),
}

/// One event's result.
#[derive(Debug, Clone, PartialEq)]
pub struct EventResult {
    /// Its place in the request.
    pub index: usize,
    /// Its `id`, when it had a valid one.
    pub id: Option<String>,
    /// What became of it.
    pub outcome: Outcome,
}

/// The results of a request, in the order of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestReport {
    /// One per event.
    pub results: Vec<EventResult>,
    /// Whether the request was a batch (a single event's refusal is the request's answer).
    pub batch: bool,
}

impl IngestReport {
    /// How many were (accepted, duplicates, rejected).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for r in &self.results {
            match r.outcome {
                Outcome::Accepted { .. } => n.0 += 1,
                Outcome::Duplicate { .. } => n.1 += 1,
                Outcome::Rejected(_) => n.2 += 1,
            }
        }
        n
    }

    /// The report as the API shows it: `status_of` gives the status a surface answers an
    /// error with (HTTP's mapping; `None` where there is none, as in Python), `loc_root` the
    /// first part of a validation error's location (`body`).
    pub fn view(&self, status_of: impl Fn(&Error) -> Option<u16>, loc_root: &str) -> IngestView {
        let (accepted, duplicates, rejected) = self.counts();
        let results = self
            .results
            .iter()
            .map(|r| {
                let (status, usage_id, error) = match &r.outcome {
                    Outcome::Accepted { usage_id } => {
                        ("accepted", Some(usage_id.to_string()), None)
                    }
                    Outcome::Duplicate { usage_id } => {
                        ("duplicate", Some(usage_id.to_string()), None)
                    }
                    Outcome::Rejected(e) => {
                        ("rejected", None, Some(refusal(e, &status_of, loc_root)))
                    }
                };
                ResultView {
                    index: r.index,
                    id: r.id.clone(),
                    status,
                    usage_id,
                    error,
                }
            })
            .collect();
        IngestView {
            accepted,
            duplicates,
            rejected,
            results,
        }
    }
}

fn refusal(e: &Error, status_of: &impl Fn(&Error) -> Option<u16>, loc_root: &str) -> Refusal {
    let detail = match e {
        Error::Validation(items) => serde_json::json!(
            items
                .iter()
                .map(|i| i.clone().prefixed(loc_root))
                .collect::<Vec<_>>()
        ),
        other => other.detail(),
    };
    Refusal {
        status: status_of(e),
        code: e.code(),
        body: serde_json::json!({ "detail": detail }),
    }
}

/// `POST /v1/usage/events`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestView {
    /// Events recorded now.
    pub accepted: usize,
    /// Events recorded before (nothing changed).
    pub duplicates: usize,
    /// Events refused (nothing written for them).
    pub rejected: usize,
    /// One per event, in request order.
    pub results: Vec<ResultView>,
}

/// One event's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultView {
    /// Its place in the request (0-based).
    pub index: usize,
    /// Its `id`, when it had a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    /// The usage event's id (`use_…`, the `id` of its export): the new one, or the first's
    /// for a duplicate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_id: Option<String>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
}

/// A refused event: the status and body the request would have had for it alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refusal {
    /// The HTTP status (422, 400, 403, 429); absent outside HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error's stable code (`validation_error`, `quota_exceeded`, …).
    pub code: &'static str,
    /// The body: `{"detail": …}` as the endpoint answers that error.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: Value,
}

/// What one request has read and used so far, per event type.
struct TypeState {
    rec: std::sync::Arc<MeteredEventRec>,
    cap: Option<Amount>,
    used_units: Amount,
    /// The lines of its limits, once its first event was checked.
    watch: Option<thresholds::Watch>,
}

/// Records the reported events for the caller's tenant (tenant admin), each applied whole or
/// refused alone (see the module). Errors (the request as a whole): `Forbidden` for a member.
pub fn record_usage_events(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: UsageEvents,
) -> Result<IngestReport> {
    caller.require_admin_to("report usage events")?;
    let tenant = caller.tenant_id();
    let period = ctx.now.period();
    let bounds = TimeBounds::new(ctx.now, period);
    let today = ctx.now.date();
    let retention = ctx.options.usage_dedup_retention_micros;
    let request_id = ids::new_id();
    let mut plan = None;
    let mut used_credits = None;
    let mut types: HashMap<String, std::result::Result<TypeState, Error>> = HashMap::new();
    // The accepted events' sums per day and type (a request holds few: one type, one day,
    // unless late events spread it), the period's made from them at the end.
    let mut day_sums: Vec<(Date, String, Sums)> = Vec::new();
    let mut results = Vec::with_capacity(req.events.len());
    // The accepted events, written as one chunk at the end (super::chunk).
    let mut chunk = chunk::UsageChunk::new(caller.user_id(), &request_id);
    // The tenant's claims, and every block a lookup of the request's events will read, read
    // at once (on PostgreSQL one round trip for the batch, not one per event; nothing on redb).
    let mut claims = claims::Claims::open(tx, tenant, req.ahead.map(|a| *a))?;
    let valid = (req.events.iter().zip(&req.hashes).enumerate())
        .filter(|(_, (e, _))| e.is_ok())
        .map(|(i, (_, h))| (i, h.0));
    claims.prefetch(tx, valid)?;
    let parsed_events = req.events.into_iter().zip(req.hashes);
    for (index, (parsed, h)) in parsed_events.enumerate() {
        let loc = |name: &str| {
            let mut l = if req.batch {
                vec![LocPart::Index(index)]
            } else {
                Vec::new()
            };
            l.push(LocPart::Field(name.into()));
            l
        };
        let e = match parsed {
            Ok(e) => e,
            Err(err) => {
                results.push(EventResult {
                    index,
                    id: None,
                    outcome: Outcome::Rejected(err),
                });
                continue;
            }
        };
        let mut result = |outcome| {
            results.push(EventResult {
                index,
                id: Some(e.id.clone()),
                outcome,
            })
        };
        // A repeat answers the first, even where it would be refused now (a plan changed
        // since). A claim past its retention counts as gone.
        if let Some(seq) = claims.find(tx, (index, h), ctx.now, retention)? {
            result(Outcome::Duplicate {
                usage_id: UsageId::new(tx, seq),
            });
            continue;
        }
        let at = e.time.unwrap_or(ctx.now);
        let checked = 'checks: {
            if let Some(why) = bounds.refusal(at) {
                let input = Value::String(at.to_rfc3339());
                let err = FieldError::value_error(loc("time"), input, &why);
                break 'checks Err(Error::field(err));
            }
            if plan.is_none() {
                plan = Some(match active_plan(tx, tenant) {
                    Ok(p) => Ok(p),
                    Err(
                        e @ (Error::NoSubscription
                        | Error::SubscriptionSuspended { .. }
                        | Error::PlanMissing { .. }),
                    ) => Err(e),
                    Err(e) => return Err(e),
                });
            }
            let plan = match plan.as_ref() {
                Some(Ok(p)) => p,
                Some(Err(err)) => break 'checks Err(err.clone()),
                None => return Err(Error::Internal("plan not read".into())),
            };
            let state = match types.get_mut(&e.event_key) {
                Some(s) => s,
                None => {
                    let s = type_state(tx, caller, &plan.plan_id, period, &e.event_key)?;
                    types.entry(e.event_key.clone()).or_insert(s)
                }
            };
            let state = match state {
                Ok(s) => s,
                Err(err) => break 'checks Err(err.clone()),
            };
            let used = match used_credits {
                Some(u) => u,
                None => *used_credits.insert(super::used_credits(tx, tenant, period)?),
            };
            let limits = Limits {
                included: Amount::from_int(plan.plan.included_credits),
                used_credits: used,
                cap: state.cap.map(|c| (c, state.used_units)),
            };
            let credits = e.value * state.rec.credits_per_unit;
            let admitted = limits.admit_credits(period, &e.event_key, e.value, credits);
            admitted.map(|()| (state, limits, used, credits))
        };
        let (state, limits, used, credits) = match checked {
            Ok(passed) => passed,
            Err(err) => {
                result(Outcome::Rejected(err));
                continue;
            }
        };
        let seq = tx.next_seq("usage")?;
        claims.add(h, seq);
        // Every check passed and the event is new: its writes, then its share of the rollups.
        let weight = state.rec.credits_per_unit;
        let cost = credits * state.rec.list_price_per_credit;
        // Its result first (it copies the id), so that the id and subject can then move into
        // the chunk instead of being copied (an error below fails the whole request anyway).
        result(Outcome::Accepted {
            usage_id: UsageId::new(tx, seq),
        });
        chunk.push(chunk::Accepted {
            seq,
            event_key: &e.event_key,
            credits_per_unit: weight,
            list_price_per_credit: state.rec.list_price_per_credit,
            source: &e.source,
            id: e.id,
            subject: e.subject,
            at,
            raw_units: e.value,
        });
        let sums = Sums {
            raw_units: e.value,
            credits,
            cost,
            at,
        };
        // Most events are of now (no `time`): their day is made once, not from the calendar
        // each time.
        let day = if at == ctx.now { today } else { at.date() };
        match day_sums
            .iter_mut()
            .rfind(|(d, k, _)| *d == day && *k == e.event_key)
        {
            Some((_, _, total)) => total.add(&sums),
            None => day_sums.push((day, e.event_key.clone(), sums)),
        }
        let used_now = thresholds::Used {
            event_key: &e.event_key,
            credits,
            units: e.value,
            limits: Some(limits),
        };
        let (credits_after, units_after) = (used + credits, state.used_units + e.value);
        let watch = state
            .watch
            .get_or_insert_with(|| thresholds::Watch::of(&limits));
        if watch.may_cross(&used_now, credits_after, units_after) {
            thresholds::crossed(tx, ctx, tenant, caller.into(), used_now)?;
        }
        used_credits = Some(credits_after);
        state.used_units = units_after;
    }
    claims.finish(tx, ctx.now, retention)?;
    if !chunk.events.is_empty() {
        // The accepted events as one row, and one row per insertion order.
        let key = chunk::UsageChunkKey::new(tenant, chunk.last_at(), chunk.first_seq());
        tx.put(&chunk::USAGE_CHUNKS, &key, &chunk)?;
        export::index_chunk(tx, tenant, &chunk)?;
    }
    let mut period_sums: Vec<(&str, Sums)> = Vec::new();
    for (day, key, s) in &day_sums {
        s.to(tx, &DAY_ROLLUPS, &day_rollup_key(tenant, *day, key))?;
        match period_sums.iter_mut().find(|(k, _)| k == key) {
            Some((_, total)) => total.add(s),
            None => period_sums.push((key, *s)),
        }
    }
    for (key, s) in &period_sums {
        s.to(tx, &PERIOD_ROLLUPS, &rollup_key(tenant, period, key))?;
    }
    let report = IngestReport {
        results,
        batch: req.batch,
    };
    let (accepted, duplicates, rejected) = report.counts();
    if accepted > 0 {
        // One audit row and one event per request that recorded usage (the usage events
        // carry the same request id).
        let row = crate::audit::Entry::new(caller.user_id(), "usage.events_reported", &request_id)
            .units(accepted as u64);
        crate::audit::append(tx, ctx, tenant, row)?;
        let data = serde_json::json!({
            "request_id": request_id,
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
        });
        let t = catalog::USAGE_EVENTS_INGESTED;
        events::emit(tx, ctx, caller, t, &request_id, &data)?;
    }
    Ok(report)
}

/// The instants that bound an event's `time` in a request: the open billing period's (of
/// `now`) and 5 minutes ahead of `now`, made once per request rather than per event.
pub(super) struct TimeBounds {
    now: Timestamp,
    period: crate::time::Period,
    /// The period's first instant (midnight UTC of its first day).
    start: Timestamp,
    /// The next period's first instant, when it lies after `start` (it always does, but for
    /// a date at the end of the calendar, where each event's own period is compared instead).
    end: Option<Timestamp>,
}

impl TimeBounds {
    pub(super) fn new(now: Timestamp, period: crate::time::Period) -> TimeBounds {
        let start = period.start().start();
        let end = Some(period.end().start()).filter(|e| *e > start);
        TimeBounds {
            now,
            period,
            start,
            end,
        }
    }

    /// Why an event at `at` cannot be counted now: before the open billing period, more than
    /// 5 minutes ahead of `now`, or in the next period (checked in that order).
    pub(super) fn refusal(&self, at: Timestamp) -> Option<String> {
        if at < self.start {
            Some(format!(
                "time lies before the open billing period (from {})",
                self.period.start()
            ))
        } else if at.0 > self.now.0 + MAX_FUTURE_MICROS {
            Some("time lies more than 5 minutes in the future".into())
        } else if self.end.is_some_and(|end| at < end) {
            // From the period's first instant to the next's: within it.
            None
        } else if at.period() != self.period {
            Some("time lies in the next billing period, which is not open yet".into())
        } else {
            None
        }
    }
}

/// The event type's record and cap, with the units used this period, read once per request;
/// `Err` inside when the type cannot be reported (unknown or inactive, or its capability not
/// granted).
fn type_state(
    tx: &WriteTx,
    caller: &Principal,
    plan_id: &str,
    period: crate::time::Period,
    event_key: &str,
) -> Result<std::result::Result<TypeState, Error>> {
    let rec = match active_event(tx, event_key) {
        Ok(r) => r,
        Err(e @ Error::UnknownEventType { .. }) => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    if let Some(c) = &rec.capability {
        match require_capability(tx, caller, c) {
            Ok(()) => {}
            Err(e @ Error::CapabilityDenied { .. }) => return Ok(Err(e)),
            Err(e) => return Err(e),
        }
    }
    let cap = crate::billing::catalog::monthly_cap(tx, plan_id, event_key)?;
    let used_units = match cap {
        Some(_) => super::used_units(tx, caller.tenant_id(), period, event_key)?,
        None => Amount::ZERO,
    };
    Ok(Ok(TypeState {
        rec,
        cap,
        used_units,
        watch: None,
    }))
}

pub use super::purge::purge_dedup;
pub(crate) use super::purge::{check, drop_expiry_order, rows_to_runs};
#[cfg(test)]
pub(crate) use super::purge::{rows_to_runs_in, runs_to_rows_for_test};

impl Bespin {
    /// Records usage events reported by the caller's tenant's own services (tenant admin):
    /// see [`record_usage_events`].
    pub fn record_usage_events(
        &self,
        caller: &Principal,
        mut events: UsageEvents,
    ) -> Result<IngestReport> {
        self.look_ahead_usage(caller, &mut events);
        self.write(|tx, ctx| record_usage_events(tx, ctx, caller, events))
    }

    /// Makes the de-duplication lookups of `events` that a snapshot can answer, before they
    /// reach the writer (see `claims::Ahead`): the writer then asks, for an event found in
    /// no run of the snapshot, only the runs written since. What the request then does is the
    /// same either way — only where the work is done differs; a caller who submits the
    /// operation itself ([`Op::with`](crate::Op::with) with [`record_usage_events`]) calls
    /// this first, on its own thread. A failed read leaves every lookup to the writer; a
    /// caller the operation will refuse (a member) gets no look, so it cannot take a merge
    /// step from the tenant's admins' requests.
    pub fn look_ahead_usage(&self, caller: &Principal, events: &mut UsageEvents) {
        if !caller.is_admin() {
            return;
        }
        let hashes =
            (events.events.iter().zip(&events.hashes)).map(|(e, h)| e.is_ok().then_some(h.0));
        let tenant = caller.tenant_id();
        events.ahead = self
            .read(|r, ctx| {
                let retention = ctx.options.usage_dedup_retention_micros;
                claims::Ahead::look(r, tenant, hashes, ctx.now, retention)
            })
            .ok()
            .map(Box::new);
    }

    /// The minute's upkeep of the de-duplication claims (see [`purge_dedup`]): at most about
    /// `max` of work over the tenants' runs — runs past the retention dropped, merges left half
    /// done by idle tenants continued; returns how many claims were forgotten.
    pub fn purge_usage_dedup(&self, max: usize) -> Result<usize> {
        self.write(|tx, ctx| purge_dedup(tx, ctx, max))
    }
}
