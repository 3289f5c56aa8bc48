//! The event log (issue 20): one durable, ordered log of what changed, per tenant.
//!
//! Every operation that makes a change a user would want to hear about calls `emit` in its
//! own transaction, so an event exists exactly when its change committed (a failed operation
//! is rolled back with its event; a replay writes nothing). Events are stored under
//! (tenant, seq) with `seq` from the database-wide sequence `events`: a tenant's events are one
//! ordered range that appends, and the wire id `evt_<20 digits>` is that seq, stable forever
//! and ordered as text too. A second, global table (seq → tenant, instant) lets the retention
//! purge walk the oldest events first in bounded batches, and tells the stream of other
//! servers what the newest event is.
//!
//! Ordering guarantee the stream relies on: every seq of a committed batch is greater than
//! every seq of any batch committed before it (sequences are counted in the batch and the
//! batches are serialised — one writer on redb, one advisory lock per batch on PostgreSQL), so
//! a reader that has seen every event up to `n` in one snapshot finds every later event above
//! `n` in later snapshots: no gap, no duplicate.
//!
//! Who sees what: each type of the [`catalog`] names the plan capability it needs and its
//! audience (members, the user concerned, or admins); other tenants' events never appear.
//! Retention: [`purge`] deletes events older than [`crate::Options::event_retention_micros`]
//! (default 30 days), at most a given number per call, walking each tenant's log from its
//! oldest event (a read per tenant per call: it runs once a minute), and remembers per tenant
//! the newest seq it purged; a cursor below it is [`Error::CursorExpired`] (HTTP 410).

pub mod catalog;
pub(crate) mod hub;
pub mod stream;
pub(crate) mod tail;

pub use catalog::{Audience, EventType};
pub use stream::Subscription;
pub use tail::SharedEvent;

use crate::auth::Principal;
use crate::check::Checker;
use crate::error::{Error, FieldError, LocPart, Result};
use crate::store::codec::{EncodesAs, StrBytes};
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A stored event (`data` is the JSON the API shows, as text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventRec {
    pub event_type: String,
    pub occurred_at: Timestamp,
    pub actor_user_id: Option<String>,
    pub subject_type: String,
    pub subject_id: String,
    /// The user an `owner`-audience event concerns.
    pub owner: Option<String>,
    pub data: String,
}
impl Record for EventRec {}

/// An [`EventRec`] of borrowed parts, as [`emit`] writes it: the same fields in the same order,
/// so it encodes to the record's bytes (`events::tests` decodes one back).
#[derive(Serialize)]
struct EventRow<'a> {
    event_type: &'a str,
    occurred_at: Timestamp,
    actor_user_id: Option<&'a str>,
    subject_type: &'a str,
    subject_id: &'a str,
    owner: Option<&'a str>,
    data: StrBytes<'a>,
}

impl EncodesAs<EventRec> for EventRow<'_> {
    fn size_hint(&self) -> usize {
        // Five varint lengths, the instant, two option tags and the version: under 48 bytes.
        48 + self.event_type.len()
            + self.actor_user_id.map_or(0, str::len)
            + self.subject_type.len()
            + self.subject_id.len()
            + self.owner.map_or(0, str::len)
            + self.data.0.len()
    }
}

/// The buffer an event's `data` is rendered into: a Core OS record's JSON (a task's is about
/// 400 bytes) fits, so it is allocated once.
const DATA_GUESS: usize = 512;

key! {
    /// (tenant, seq).
    pub(crate) struct EventKey<'a> { tenant_id: tenant, seq: u64 }
    /// (tenant).
    pub(crate) struct FloorKey<'a> { tenant_id: tenant }
}

/// (tenant, seq) → event.
pub(crate) const EVENTS: Table<EventKey<'static>, EventRec> = Table::new("events");
/// (tenant) → the newest seq purged from the tenant's events: cursors below it are stale.
pub(crate) const EVENT_FLOORS: Table<FloorKey<'static>, u64> = Table::new("events_floor");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&EVENTS, &EVENT_FLOORS];

/// Default retention of events: 30 days.
pub const DEFAULT_RETENTION_MICROS: i64 = 30 * Timestamp::DAY_MICROS;

/// The most events a page holds, and rows a page may read past ones the caller may not see.
pub const MAX_PAGE: usize = 500;
const MAX_SKIPPED: usize = 5_000;

/// The wire id of `seq`: `evt_` and 20 digits, so ids sort as text like the seqs they hold.
pub fn event_id(seq: u64) -> String {
    format!("evt_{seq:020}")
}

/// The seq of a wire id (`evt_<digits>`; a bare number is accepted too).
pub fn parse_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("evt_").unwrap_or(id);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What an event is about: `{"type", "id"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subject {
    /// The record type (`task`, `action`, `kpi`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The record id.
    pub id: String,
}

/// An event as the API, the stream and webhooks show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// `evt_<seq>`: orders the tenant's events, stable forever (SSE `id:`, `webhook-id`).
    pub id: String,
    /// Dotted `<noun>.<verb>`, one of the catalogue.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the change committed's operation ran (RFC 3339, UTC).
    pub occurred_at: String,
    /// The tenant.
    pub tenant_id: String,
    /// Who made the change (null for the platform or the scheduler).
    pub actor_user_id: Option<String>,
    /// What the event is about.
    pub subject: Subject,
    /// The record as the API returns it, or the relevant figures.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Box<RawValue>,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id && self.data.get() == o.data.get()
    }
}

impl Event {
    /// The event's seq (its position in the log).
    pub fn seq(&self) -> u64 {
        parse_id(&self.id).unwrap_or(0)
    }

    /// The event as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `data` parsed.
    pub fn data(&self) -> Value {
        serde_json::from_str(self.data.get()).unwrap_or(Value::Null)
    }
}

pub(crate) fn stored_view(tenant: &str, seq: u64, e: EventRec) -> Event {
    let data = RawValue::from_string(e.data)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default());
    Event {
        id: event_id(seq),
        event_type: e.event_type,
        occurred_at: e.occurred_at.to_rfc3339(),
        tenant_id: tenant.to_owned(),
        actor_user_id: e.actor_user_id,
        subject: Subject {
            kind: e.subject_type,
            id: e.subject_id,
        },
        data,
    }
}

/// Who made a change: a user of the tenant, or nobody (the platform, the scheduler).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Actor<'a> {
    /// A caller.
    User(&'a Principal),
    /// A platform operation of the tenant `0`.
    Platform(&'a str),
}

impl<'a> From<&'a Principal> for Actor<'a> {
    fn from(p: &'a Principal) -> Self {
        Actor::User(p)
    }
}

impl Actor<'_> {
    fn tenant(&self) -> &str {
        match self {
            Actor::User(p) => p.tenant_id(),
            Actor::Platform(t) => t,
        }
    }
}

/// Appends an event of type `t` about `subject_id` with `data` (serialised as the API shows
/// it) to the tenant's log, in the open transaction. `owner` is the user an `owner`-audience
/// event concerns.
pub(crate) fn emit<'a>(
    tx: &mut WriteTx,
    ctx: &Ctx,
    actor: impl Into<Actor<'a>>,
    t: &'static EventType,
    subject_id: &str,
    data: &impl Serialize,
) -> Result<u64> {
    emit_for(tx, ctx, actor.into(), t, subject_id, None, data)
}

/// [`emit`] for an event that concerns one user (`owner` audience).
pub(crate) fn emit_for(
    tx: &mut WriteTx,
    ctx: &Ctx,
    actor: Actor<'_>,
    t: &'static EventType,
    subject_id: &str,
    owner: Option<&str>,
    data: &impl Serialize,
) -> Result<u64> {
    append(tx, ctx, actor, t, subject_id, owner, &render(data)?)
}

/// [`emit`] of a record `value` as the API shows it, which comes back with its JSON: the
/// operation's answer is then these bytes, not a second rendering of the same record.
pub(crate) fn emit_rendered<'a, T: Serialize>(
    tx: &mut WriteTx,
    ctx: &Ctx,
    actor: impl Into<Actor<'a>>,
    t: &'static EventType,
    subject_id: &str,
    value: T,
) -> Result<Rendered<T>> {
    let json = render(&value)?;
    append(tx, ctx, actor.into(), t, subject_id, None, &json)?;
    Ok(Rendered { value, json })
}

/// A record as the API shows it, with its compact JSON (serde_json's rendering of it, made
/// once on the writer for its event): the server answers with [`Rendered::json`] as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<T> {
    value: T,
    json: Vec<u8>,
}

impl<T> Rendered<T> {
    /// The record.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The record, without its JSON.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The record's compact JSON, byte for byte what `serde_json::to_vec` makes of it (and
    /// the event's `data`).
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

/// `data` rendered once, straight into bytes (serde_json writes valid UTF-8).
fn render(data: &impl Serialize) -> Result<Vec<u8>> {
    let mut json = Vec::with_capacity(DATA_GUESS);
    serde_json::to_writer(&mut json, data).map_err(|e| Error::Internal(format!("event: {e}")))?;
    Ok(json)
}

/// Appends an event whose `data` is `json` (compact JSON) to the tenant's log, stored from
/// borrowed parts (no owned copy of any field is made for the row), with its webhook outbox
/// rows.
fn append(
    tx: &mut WriteTx,
    ctx: &Ctx,
    actor: Actor<'_>,
    t: &'static EventType,
    subject_id: &str,
    owner: Option<&str>,
    json: &[u8],
) -> Result<u64> {
    let tenant = actor.tenant();
    let seq = tx.next_seq("events")?;
    let row = EventRow {
        event_type: t.name,
        occurred_at: ctx.now,
        actor_user_id: match actor {
            Actor::User(p) => Some(p.user_id()),
            Actor::Platform(_) => None,
        },
        subject_type: t.subject,
        subject_id,
        owner,
        data: StrBytes(json),
    };
    tx.put_as(&EVENTS, &EventKey::new(tenant, seq), &row)?;
    crate::webhooks::enqueue(tx, ctx, tenant, seq, t)?;
    ctx.hub.stage(tenant);
    // Other processes sharing the database are told with the commit (PostgreSQL's NOTIFY).
    tx.announce(tenant);
    Ok(seq)
}

/// The types `caller` may see now: the catalogue less what the tenant's plan or the caller's
/// role hides.
pub(crate) fn visible(r: &impl Reader, caller: &Principal) -> Vec<&'static EventType> {
    catalog::ALL
        .iter()
        .copied()
        .filter(|t| caller.is_admin() || t.audience != Audience::Admins)
        .filter(|t| {
            t.capability
                .is_none_or(|c| crate::billing::require_capability(r, caller, c).is_ok())
        })
        .collect()
}

/// Query of [`Bespin::events`] and [`Bespin::subscribe`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventQuery {
    /// Only events after this one (absent: from the oldest kept).
    pub after: Option<u64>,
    /// Only these types (absent: every type the caller may see).
    pub types: Option<Vec<&'static EventType>>,
    /// Page size (1–500, default 100).
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Validates query values (`after`, `types` — comma-separated —, `limit`), given as a
    /// JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let after = f.string("after", Presence::Optional, Len::between(0, 64));
        let types = f.string("types", Presence::Optional, Len::between(0, 4096));
        let limit = f.int(
            "limit",
            Presence::Optional,
            crate::validate::Bounds::range(1, MAX_PAGE as i64),
        );
        f.finish()?;
        let after = got(after)?.filter(|s| !s.is_empty());
        let types = got(types)?.filter(|s| !s.is_empty());
        Ok(EventQuery {
            after: after.map(|a| parse_cursor("after", &a)).transpose()?,
            types: types.map(|t| parse_types("types", &t)).transpose()?,
            limit: got(limit)?.map(|l| usize::try_from(l).unwrap_or(100)),
        })
    }
}

/// A cursor value (`evt_…`, or `0` for "from the start"), or 422 at `loc`.
pub fn parse_cursor(loc: &str, s: &str) -> Result<u64> {
    parse_id(s.trim()).ok_or_else(|| {
        Error::field(FieldError::value_error(
            vec![LocPart::from(loc)],
            Value::String(s.to_owned()),
            "expected an event id (evt_<digits>)",
        ))
    })
}

/// Comma-separated type names, each of the catalogue, or 422 at `loc`.
pub fn parse_types(loc: &str, s: &str) -> Result<Vec<&'static EventType>> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match catalog::find(name) {
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {}
            None => {
                return Err(Error::field(FieldError::value_error(
                    vec![LocPart::from(loc)],
                    Value::String(name.to_owned()),
                    "unknown event type (see the catalogue in /openapi.json)",
                )));
            }
        }
    }
    Ok(out)
}

/// A page of events (`GET /v1/events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// Events, oldest first.
    pub items: Vec<Event>,
    /// The cursor to continue from (`after=`): the last event read, even one the caller may
    /// not see; `null` only when the log holds nothing after the request's cursor yet and no
    /// cursor was given.
    pub next_cursor: Option<String>,
    /// Whether more events were there to read when this page was made.
    pub has_more: bool,
}

/// The tenant's purge floor: events at or below it are gone.
fn floor(r: &impl Reader, tenant: &str) -> Result<u64> {
    Ok(r.get(&EVENT_FLOORS, &FloorKey::new(tenant))?.unwrap_or(0))
}

/// A page of `caller`'s events after `q.after` (see [`EventQuery`]); `Err(CursorExpired)` when
/// the cursor is older than the retention.
pub(crate) fn page(r: &impl Reader, caller: &Principal, q: &EventQuery) -> Result<EventPage> {
    page_of(r, caller, q, &visible(r, caller))
}

/// [`page`] for the types `seen` the caller may see (a subscription keeps them a while).
pub(crate) fn page_of(
    r: &impl Reader,
    caller: &Principal,
    q: &EventQuery,
    seen: &[&'static EventType],
) -> Result<EventPage> {
    let tenant = caller.tenant_id();
    let (items, next, has_more) = walk(r, caller, q, seen, |seq, e| stored_view(tenant, seq, e))?;
    Ok(EventPage {
        items,
        next_cursor: next.map(event_id),
        has_more,
    })
}

/// The caller's events after `q.after` that `seen` and `q.types` let through, each made into a
/// `T` by `make`: the items, the cursor after them (the last row read) and whether more rows
/// were left. `Err(CursorExpired)` for a cursor below the tenant's purge floor.
pub(crate) fn walk<T>(
    r: &impl Reader,
    caller: &Principal,
    q: &EventQuery,
    seen: &[&'static EventType],
    mut make: impl FnMut(u64, EventRec) -> T,
) -> Result<(Vec<T>, Option<u64>, bool)> {
    let tenant = caller.tenant_id();
    let after = q.after.unwrap_or(0);
    if q.after.is_some() && after < floor(r, tenant)? {
        return Err(Error::CursorExpired);
    }
    let mut pager = Pager::new(caller, q, seen);
    let mut items = Vec::new();
    rows_after(r, tenant, after, |seq, e| {
        if pager.full(items.len()) {
            return Flow::Stop;
        }
        if pager.admits(seq, &e.event_type, e.owner.as_deref()) {
            items.push(make(seq, e));
        }
        Flow::Continue
    })?;
    Ok((items, pager.last().or(q.after), pager.stopped()))
}

/// Calls `f` with each of `tenant`'s events after `after`, oldest first, until it stops.
fn rows_after(
    r: &impl Reader,
    tenant: &str,
    after: u64,
    mut f: impl FnMut(u64, EventRec) -> Flow,
) -> Result<()> {
    let from = EVENTS.prefix().tenant(tenant).u64(after.saturating_add(1));
    let prefix = EVENTS.prefix().tenant(tenant);
    r.scan_range(
        &EVENTS,
        &prefix,
        Some(&from),
        None,
        Order::Asc,
        &mut |k, e: EventRec| {
            Ok(match EventKey::decode(k) {
                Some(k) => f(k.seq, e),
                None => Flow::Continue,
            })
        },
    )
}

/// The choice of one page of a caller's events as the log's rows go by, oldest first: the
/// types it may see and asked for, its own `owner`-audience events, at most `limit` events and
/// [`MAX_SKIPPED`] rows. One rule for a read of the log ([`walk`]) and a shared tail
/// ([`tail::Tail::select`]).
pub(crate) struct Pager<'a> {
    q: &'a EventQuery,
    seen: &'a [&'static EventType],
    me: &'a str,
    admin: bool,
    limit: usize,
    read: usize,
    last: Option<u64>,
    stopped: bool,
}

impl<'a> Pager<'a> {
    pub(crate) fn new(
        caller: &'a Principal,
        q: &'a EventQuery,
        seen: &'a [&'static EventType],
    ) -> Self {
        Pager {
            q,
            seen,
            me: caller.user_id(),
            admin: caller.is_admin(),
            limit: q.limit.unwrap_or(100).clamp(1, MAX_PAGE),
            read: 0,
            last: None,
            stopped: false,
        }
    }

    /// Whether the page is done before the next row, `items` events in (then rows were left:
    /// [`Pager::stopped`]).
    pub(crate) fn full(&mut self, items: usize) -> bool {
        self.stopped = items >= self.limit || self.read >= MAX_SKIPPED;
        self.stopped
    }

    /// Counts the row `seq` as read; whether the caller gets its event.
    pub(crate) fn admits(&mut self, seq: u64, event_type: &str, owner: Option<&str>) -> bool {
        self.read += 1;
        self.last = Some(seq);
        let wanted = self.seen.iter().any(|t| t.name == event_type)
            && self
                .q
                .types
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| t.name == event_type));
        wanted && (self.admin || owner.is_none_or(|o| o == self.me))
    }

    /// The last row read.
    pub(crate) fn last(&self) -> Option<u64> {
        self.last
    }

    /// Whether the page stopped with rows left.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }
}

/// Deletes up to `max` events older than the retention, tenant by tenant, oldest first;
/// returns how many went. Run periodically by the server (and callable by embedders).
pub fn purge(tx: &mut WriteTx, ctx: &Ctx, max: usize) -> Result<usize> {
    let cutoff = Timestamp(ctx.now.0.saturating_sub(ctx.options.event_retention_micros));
    let mut tenants: Vec<String> = Vec::new();
    let all = crate::tenancy::TENANTS.prefix();
    tx.scan(
        &crate::tenancy::TENANTS,
        &all,
        Order::Asc,
        |k, _: crate::tenancy::TenantRec| {
            if let Some(k) = crate::tenancy::TenantKey::decode(k) {
                tenants.push(k.tenant_id.into_owned());
            }
            Ok(Flow::Continue)
        },
    )?;
    let mut purged = 0;
    for tenant in tenants {
        if purged >= max {
            break;
        }
        let mut old: Vec<u64> = Vec::new();
        let prefix = EVENTS.prefix().tenant(&tenant);
        tx.scan(&EVENTS, &prefix, Order::Asc, |k, e: EventRec| {
            if purged + old.len() >= max || e.occurred_at >= cutoff {
                return Ok(Flow::Stop);
            }
            old.extend(EventKey::decode(k).map(|k| k.seq));
            Ok(Flow::Continue)
        })?;
        let Some(&newest_purged) = old.last() else {
            continue;
        };
        for seq in &old {
            tx.delete(&EVENTS, &EventKey::new(&tenant, *seq))?;
        }
        tx.put(&EVENT_FLOORS, &FloorKey::new(&tenant), &newest_purged)?;
        purged += old.len();
    }
    Ok(purged)
}

/// The newest event seq of the last commit (0 when there is none): the stored value of the
/// `events` sequence (a seq a failed operation took counts too: as a cursor it is as good).
pub(crate) fn newest(r: &impl Reader) -> Result<u64> {
    Ok(r.get(
        &crate::store::SEQUENCES,
        &crate::store::NameKey::new("events"),
    )?
    .unwrap_or(0))
}

/// Invariants: each type is of the catalogue, `data` is JSON, and no event lies at or below
/// its tenant's purge floor.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let floors: std::collections::HashMap<String, u64> = c
        .rows(r, &EVENT_FLOORS)?
        .into_iter()
        .map(|x| (x.tenant, x.value))
        .collect();
    for x in c.rows(r, &EVENTS)? {
        let e = &x.value;
        if catalog::find(&e.event_type).is_none() {
            c.violation(EVENTS.name(), &x.bytes, "event type not in the catalogue");
        } else if serde_json::from_str::<&RawValue>(&e.data).is_err() {
            c.violation(EVENTS.name(), &x.bytes, "event data is not JSON");
        } else if floors.get(&x.tenant).is_some_and(|f| x.key.seq <= *f) {
            c.violation(EVENTS.name(), &x.bytes, "event at or below its purge floor");
        } else {
            c.ok();
        }
    }
    Ok(())
}

impl Bespin {
    /// A page of the caller's events, oldest first (see [`EventQuery`]); 410
    /// ([`Error::CursorExpired`]) for a cursor older than the retention.
    pub fn events(&self, caller: &Principal, q: &EventQuery) -> Result<EventPage> {
        self.read(|r, _| page(r, caller, q))
    }

    /// The seq of the newest event of any tenant (0 when there is none): a cursor meaning
    /// "from now on".
    pub fn newest_event_seq(&self) -> Result<u64> {
        self.read(|r, _| newest(r))
    }

    /// Whether some tenant's oldest event is past the retention (a read, one per tenant: the
    /// server asks before it submits a purge).
    pub fn events_expired(&self) -> Result<bool> {
        self.read(|r, ctx| {
            let cutoff = Timestamp(ctx.now.0.saturating_sub(ctx.options.event_retention_micros));
            let mut tenants: Vec<String> = Vec::new();
            let all = crate::tenancy::TENANTS.prefix();
            r.scan(
                &crate::tenancy::TENANTS,
                &all,
                Order::Asc,
                |k, _: crate::tenancy::TenantRec| {
                    tenants.extend(
                        crate::tenancy::TenantKey::decode(k).map(|k| k.tenant_id.into_owned()),
                    );
                    Ok(Flow::Continue)
                },
            )?;
            for t in tenants {
                let mut old = false;
                r.scan(
                    &EVENTS,
                    &EVENTS.prefix().tenant(&t),
                    Order::Asc,
                    |_, e: EventRec| {
                        old = e.occurred_at < cutoff;
                        Ok(Flow::Stop)
                    },
                )?;
                if old {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Purges up to `max` events older than the retention; how many went.
    pub fn purge_events(&self, max: usize) -> Result<usize> {
        self.write(|tx, ctx| purge(tx, ctx, max))
    }

    /// The fallback for commits of other processes sharing the database that this process was
    /// not told of (the backend's notifications, PostgreSQL's `LISTEN`, are down or turned
    /// off): wakes every subscriber of this process when the newest event seq moved since the
    /// last poll; returns whether it did. Cheap (one read of the newest event, and none while
    /// the notifications work or no other process can write): the server calls it on a timer
    /// (`BESPIN_EVENT_POLL_SECS`).
    pub fn poll_events(&self) -> Result<bool> {
        if !self.inner.store.misses_others() {
            return Ok(false);
        }
        let newest = self.read(|r, _| newest(r))?;
        let moved = self.hub().polled(newest);
        if moved {
            self.hub().wake_all();
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests;
