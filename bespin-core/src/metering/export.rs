//! Usage out: every usage event — Bespin's own metering and ingested events alike — as
//! CloudEvents 1.0, oldest first in insertion order, pages resumed from a cursor
//! (`GET /v1/usage/export`, `GET /v1/admin/usage/export`, `bespin export-usage`).
//!
//! Usage events are keyed by the instant of the usage (`(tenant, emitted_at, seq)`), and an
//! ingested event may be late: it lands *before* rows an exporter already read. So the export
//! follows the order of insertion instead — the usage sequence number, which only grows and
//! is handed out under the writer (redb) or the batch lock (PostgreSQL), so a snapshot that
//! holds number `n` holds every smaller number that will ever commit. Two small order tables
//! hold it: `(tenant, seq)` for a tenant's export and `(seq, tenant)` for the platform's, each
//! an append at the end of its table (measured in docs/performance.md: the write cost of the
//! built-in metering). A row names the usage event's instant, so the event is one lookup; a
//! row of a chunk of reported events (`super::chunk`) stands at its first event's number
//! for all of them, and a page that starts from a cursor inside it starts in it.
//!
//! The CloudEvent `id` is `use_` and the usage number sealed (`ids`' sealer: it does not tell
//! a tenant how much the platform meters), so it is stable: a replay after a crash sends the
//! same ids and a receiver de-duplicates them (OpenMeter does). The cursor of a page is the
//! `id` of its last event.

use super::{USAGE_EVENTS, UsageEventRec, UsageKey};
use crate::auth::Principal;
use crate::check::{Checker, Expected};
use crate::error::{Error, Result};
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::query_ints;
use crate::{Bespin, FieldError, LocPart};
use serde::Serialize;

key! {
    /// (tenant, usage sequence number).
    pub(crate) struct TenantUsageSeqKey<'a> { tenant_id: tenant, seq: u64 }
    /// (usage sequence number, tenant): every tenant's usage in one order.
    pub(crate) struct UsageSeqKey<'a> { seq: u64, tenant_id: ext_id }
}

/// (tenant, seq) → the usage event's instant (or a chunk's): a tenant's usage in insertion
/// order.
pub(crate) const USAGE_BY_SEQ: Table<TenantUsageSeqKey<'static>, OrderEntry> =
    Table::new("usage_by_seq").with_companions(forget_global);
/// (seq, tenant) → the usage event's instant, and whether it was reported (or a chunk's): all
/// usage in insertion order (the platform export; the purge of de-duplication rows walks it
/// too).
pub(crate) const USAGE_ALL_BY_SEQ: Table<UsageSeqKey<'static>, OrderEntry> =
    Table::new("usage_all_by_seq");

/// A place in an insertion order: a usage event's, or a chunk's ([`super::chunk`]: the row is
/// keyed by its first event's number and stands for all of them).
///
/// Stored as the instant alone (as layout 9 stored every row), then one byte `1` for a
/// reported event, or a byte `2` and the varint count of a chunk's events (all reported):
/// Bespin's own metering writes the same bytes as before, a row of layout 9 reads as not
/// reported, and a tenant's order (which does not say "reported") writes the instant alone
/// for an event of a row of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OrderEntry {
    /// The usage event's instant (its key's `emitted_at`), or the chunk's key's (its latest
    /// event's).
    pub at: Timestamp,
    /// Whether it was reported, so has a de-duplication row while remembered (in the
    /// platform's order; a chunk's events always are).
    pub reported: bool,
    /// The events of the chunk it stands for; 0 for a usage event's row of its own.
    pub chunk: u32,
}

impl OrderEntry {
    /// The entry of a usage event of its own row: at `at`, `reported` or not.
    pub(crate) fn event(at: Timestamp, reported: bool) -> Self {
        OrderEntry {
            at,
            reported,
            chunk: 0,
        }
    }
}

impl Record for OrderEntry {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        self.at.encode_body(out)?;
        if self.chunk > 0 {
            out.push(2);
            let mut n = self.chunk;
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        } else if self.reported {
            out.push(1);
        }
        Ok(())
    }

    fn decode_body(body: &[u8]) -> Result<Self> {
        let (at, rest) = postcard::take_from_bytes::<Timestamp>(body)
            .map_err(|e| Error::Storage(format!("decode: {e}")))?;
        let bad = || Error::Storage("decode: trailing bytes".into());
        let (reported, chunk) = match rest {
            [] => (false, 0),
            [1] => (true, 0),
            [2, n @ ..] => {
                let (n, rest) = postcard::take_from_bytes::<u32>(n).map_err(|_| bad())?;
                if n == 0 || !rest.is_empty() {
                    return Err(bad());
                }
                (true, n)
            }
            _ => return Err(bad()),
        };
        Ok(OrderEntry {
            at,
            reported,
            chunk,
        })
    }
}

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&USAGE_BY_SEQ, &USAGE_ALL_BY_SEQ];

/// Deletes the cross-tenant entry that goes with a tenant's insertion-order row (the key `k`
/// of [`USAGE_BY_SEQ`]): the tenant erasure's step, which deletes the row itself.
fn forget_global(tx: &mut WriteTx, k: &[u8], _: &[u8]) -> Result<()> {
    match TenantUsageSeqKey::decode(k) {
        Some(k) => tx
            .delete(&USAGE_ALL_BY_SEQ, &UsageSeqKey::new(k.seq, &k.tenant_id))
            .map(drop),
        None => Ok(()),
    }
}

/// The most events one page holds.
pub const MAX_PAGE: usize = 1000;
/// Events in a page when the request does not say.
pub const DEFAULT_PAGE: usize = 100;

/// Adds usage event `seq` of `tenant_id` at `at` to both insertion orders (`reported`: it
/// came in through [`super::ingest`]).
pub(crate) fn index(
    tx: &mut WriteTx,
    tenant_id: &str,
    seq: u64,
    at: Timestamp,
    reported: bool,
) -> Result<()> {
    let own = OrderEntry::event(at, false);
    tx.put(&USAGE_BY_SEQ, &TenantUsageSeqKey::new(tenant_id, seq), &own)?;
    let entry = OrderEntry::event(at, reported);
    tx.put(&USAGE_ALL_BY_SEQ, &UsageSeqKey::new(seq, tenant_id), &entry)
}

/// Adds a chunk of `tenant_id` to both insertion orders: one row each, at its first event's
/// number (its events' numbers lie between it and the next row's).
pub(crate) fn index_chunk(
    tx: &mut WriteTx,
    tenant_id: &str,
    c: &super::chunk::UsageChunk,
) -> Result<()> {
    let first = c.first_seq();
    let entry = chunk_entry(c);
    tx.put(
        &USAGE_BY_SEQ,
        &TenantUsageSeqKey::new(tenant_id, first),
        &entry,
    )?;
    tx.put(
        &USAGE_ALL_BY_SEQ,
        &UsageSeqKey::new(first, tenant_id),
        &entry,
    )
}

fn chunk_entry(c: &super::chunk::UsageChunk) -> OrderEntry {
    OrderEntry {
        at: c.last_at(),
        reported: true,
        chunk: u32::try_from(c.events.len()).unwrap_or(u32::MAX),
    }
}

/// Where an export page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportQuery {
    /// The usage number after which the page starts (0: from the first event).
    after: u64,
    /// At most this many events (1–1,000).
    pub limit: usize,
}

impl ExportQuery {
    /// From the first event, `limit` at a time.
    pub fn from_start(limit: usize) -> Self {
        ExportQuery {
            after: 0,
            limit: limit.clamp(1, MAX_PAGE),
        }
    }

    /// Validates `after` (a cursor: the `id` of the last event read, absent or empty for the
    /// start) and `limit` (1–1,000, default 100) against the database that sealed the ids.
    /// Errors: 422 at `["query", name]`.
    pub fn parse(db: &Bespin, after: Option<&str>, limit: Option<&str>) -> Result<Self> {
        let limit = query_ints(|_| limit, &["limit"])?[0].unwrap_or(DEFAULT_PAGE as i64);
        if !(1..=MAX_PAGE as i64).contains(&limit) {
            return Err(Error::field(FieldError::new(
                "value_error",
                vec![LocPart::Field("limit".into())],
                format!("limit must be between 1 and {MAX_PAGE}"),
                serde_json::json!(limit),
            )));
        }
        let after = match after.map(str::trim).filter(|s| !s.is_empty()) {
            None => 0,
            Some(c) => db.unseal_usage_id(c).ok_or_else(|| {
                Error::field(FieldError::new(
                    "value_error",
                    vec![LocPart::Field("after".into())],
                    "after must be the id of an exported usage event",
                    serde_json::json!(c),
                ))
            })?,
        };
        Ok(ExportQuery {
            after,
            limit: limit as usize,
        })
    }
}

/// One usage event as a CloudEvent 1.0 (structured JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageCloudEvent {
    /// Always `1.0`.
    pub specversion: &'static str,
    /// `use_` and the event's sealed usage number: stable, unique in the database; also the
    /// cursor that resumes after this event.
    pub id: String,
    /// `bespin/<tenant id>`.
    pub source: String,
    /// The metered event key.
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the usage is of: an ingested event's `subject`, otherwise the user it was
    /// metered for.
    pub subject: String,
    /// When the usage happened (RFC 3339, UTC).
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: &'static str,
    /// The amounts and where they came from.
    pub data: UsageData,
}

/// The `data` of an exported usage event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageData {
    /// Raw units (`data.value` of an ingested event).
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub value: serde_json::Number,
    /// Credits at the weight in force when it was recorded.
    pub credits: f64,
    /// List cost at the price in force when it was recorded.
    pub list_cost_estimate: f64,
    /// The tenant.
    pub tenant_id: String,
    /// The user it was metered for (for an ingested event: the caller that reported it).
    pub user_id: String,
    /// The label of the emitting endpoint (Bespin's own metering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// The request the event belongs to.
    pub request_id: String,
    /// An ingested event's own `source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_source: Option<String>,
    /// An ingested event's own `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_id: Option<String>,
}

/// A page of the export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportPage {
    /// The events, oldest first (by insertion).
    pub events: Vec<UsageCloudEvent>,
    /// Where the next page starts: the last event's id, or the query's cursor when the page
    /// is empty (`None` for an empty page from the start).
    pub next_cursor: Option<String>,
}

fn cloud_event(r: &impl Reader, tenant_id: &str, seq: u64, e: UsageEventRec) -> UsageCloudEvent {
    let (origin_source, origin_id, subject) = match e.origin {
        Some(o) => (Some(o.source), Some(o.id), o.subject),
        None => (None, None, None),
    };
    UsageCloudEvent {
        specversion: "1.0",
        id: usage_id(r, seq),
        source: format!("bespin/{tenant_id}"),
        event_type: e.event_key,
        subject: subject.unwrap_or_else(|| e.user_id.clone()),
        time: e.created_at.to_rfc3339(),
        datacontenttype: "application/json",
        data: UsageData {
            value: e.raw_units.to_json_number(),
            credits: e.credits.to_f64(),
            list_cost_estimate: e.list_cost_estimate.to_f64(),
            tenant_id: tenant_id.to_owned(),
            user_id: e.user_id,
            tool_name: e.tool_name,
            request_id: e.request_id,
            origin_source,
            origin_id,
        },
    }
}

/// The public id of usage event `seq`.
pub(crate) fn usage_id(r: &impl Reader, seq: u64) -> String {
    format!("use_{}", r.sealer().seal(seq))
}

/// A row of an insertion order: tenant, number, entry.
type OrderRow = (String, u64, OrderEntry);

/// At most `max` rows of the insertion order (a tenant's, or the platform's) from number
/// `from` on; and whether the order ended before `max`.
fn order_rows(
    r: &impl Reader,
    tenant: Option<&str>,
    from: u64,
    max: usize,
) -> Result<(Vec<OrderRow>, bool)> {
    let mut rows = Vec::with_capacity(max.min(MAX_PAGE));
    let mut push = |t: &str, seq, e| {
        rows.push((t.to_owned(), seq, e));
        if rows.len() >= max {
            Flow::Stop
        } else {
            Flow::Continue
        }
    };
    match tenant {
        Some(t) => {
            let start = USAGE_BY_SEQ.prefix().tenant(t).u64(from);
            r.scan_range(
                &USAGE_BY_SEQ,
                &USAGE_BY_SEQ.prefix().tenant(t),
                Some(&start),
                None,
                Order::Asc,
                &mut |k, e: OrderEntry| {
                    Ok(match TenantUsageSeqKey::decode(k) {
                        Some(k) => push(t, k.seq, e),
                        None => Flow::Continue,
                    })
                },
            )?;
        }
        None => {
            let start = USAGE_ALL_BY_SEQ.prefix().u64(from);
            r.scan_range(
                &USAGE_ALL_BY_SEQ,
                &USAGE_ALL_BY_SEQ.prefix(),
                Some(&start),
                None,
                Order::Asc,
                &mut |k, e: OrderEntry| {
                    Ok(match UsageSeqKey::decode(k) {
                        Some(k) => push(&k.tenant_id, k.seq, e),
                        None => Flow::Continue,
                    })
                },
            )?;
        }
    }
    let ended = rows.len() < max;
    Ok((rows, ended))
}

/// The row of the insertion order with the greatest number at or below `seq`, when it is a
/// chunk's: the chunk that may hold the events right after a cursor `seq` inside it.
fn chunk_around(r: &impl Reader, tenant: Option<&str>, seq: u64) -> Result<Option<OrderRow>> {
    let mut found = None;
    let upto = seq.saturating_add(1);
    match tenant {
        Some(t) => {
            let prefix = USAGE_BY_SEQ.prefix().tenant(t);
            let end = prefix.clone().u64(upto);
            r.scan_range(
                &USAGE_BY_SEQ,
                &prefix,
                None,
                Some(&end),
                Order::Desc,
                &mut |k, e: OrderEntry| {
                    found = TenantUsageSeqKey::decode(k).map(|k| (t.to_owned(), k.seq, e));
                    Ok(Flow::Stop)
                },
            )?;
        }
        None => {
            let end = USAGE_ALL_BY_SEQ.prefix().u64(upto);
            r.scan_range(
                &USAGE_ALL_BY_SEQ,
                &USAGE_ALL_BY_SEQ.prefix(),
                None,
                Some(&end),
                Order::Desc,
                &mut |k, e: OrderEntry| {
                    found = UsageSeqKey::decode(k).map(|k| (k.tenant_id.into_owned(), k.seq, e));
                    Ok(Flow::Stop)
                },
            )?;
        }
    }
    Ok(found.filter(|(_, _, e)| e.chunk > 0))
}

/// Reads one page: the rows of an order table after the cursor, each looked up, a chunk's
/// events those after the cursor. A page starts inside the chunk that holds the cursor, and
/// ends where `limit` events were taken, inside a chunk if need be (its next page resumes
/// there).
fn page(
    r: &impl Reader,
    q: ExportQuery,
    tenant: Option<&str>,
) -> Result<(Vec<UsageCloudEvent>, Option<u64>)> {
    let mut events = Vec::with_capacity(q.limit);
    // Events taken: those shown, and those of an erased tenant whose order rows outlived
    // them (skipped, but passed by the cursor).
    let mut taken = 0;
    let mut last = None;
    let mut rows: Vec<OrderRow> = match q.after {
        0 => Vec::new(),
        after => chunk_around(r, tenant, after)?.into_iter().collect(),
    };
    let mut next = q.after.saturating_add(1);
    let mut ended = false;
    while taken < q.limit {
        if rows.is_empty() {
            if ended {
                break;
            }
            (rows, ended) = order_rows(r, tenant, next, q.limit - taken)?;
            if rows.is_empty() {
                break;
            }
        }
        for (t, seq, e) in std::mem::take(&mut rows) {
            next = next.max(seq.saturating_add(1));
            if taken >= q.limit {
                break;
            }
            if e.chunk == 0 {
                taken += 1;
                last = Some(seq);
                if let Some(rec) = r.get(&USAGE_EVENTS, &UsageKey::new(&t, e.at, seq))? {
                    events.push(cloud_event(r, &t, seq, rec));
                }
                continue;
            }
            let Some(c) = super::chunk::get(r, &t, e.at, seq)? else {
                taken += 1;
                last = Some(seq);
                continue;
            };
            for ev in c.events.iter().filter(|ev| ev.seq > q.after) {
                if taken >= q.limit {
                    break;
                }
                taken += 1;
                last = Some(ev.seq);
                events.push(cloud_event(r, &t, ev.seq, c.record(ev)?));
            }
        }
    }
    Ok((events, last))
}

fn finish(
    r: &impl Reader,
    q: ExportQuery,
    (events, last): (Vec<UsageCloudEvent>, Option<u64>),
) -> ExportPage {
    let next = last.or((q.after > 0).then_some(q.after));
    ExportPage {
        events,
        next_cursor: next.map(|s| usage_id(r, s)),
    }
}

/// Checks the insertion orders against the usage events: each event of a row of its own is
/// in both exactly once, at its instant (and marked reported in the platform's order exactly
/// when it was), each chunk once in both at its key (its first number, its latest instant,
/// its count), and neither holds a row of no event or chunk.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let mut by_tenant = Expected::new();
    let mut all = Expected::new();
    // Every number an order row stands at, and each chunk's numbers: a page resumes inside
    // a chunk from its row, so no other row may stand within a chunk's numbers.
    let mut rows: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    let mut chunks: std::collections::BTreeMap<u64, u64> = Default::default();
    for x in c.rows(r, &USAGE_EVENTS)? {
        let (t, seq, at) = (x.key.tenant_id.as_ref(), x.key.seq, x.key.emitted_at);
        by_tenant.add(
            &TenantUsageSeqKey::new(t, seq),
            &OrderEntry::event(at, false),
        );
        let reported = x.value.origin.is_some();
        all.add(&UsageSeqKey::new(seq, t), &OrderEntry::event(at, reported));
        rows.push((seq, false, x.bytes));
    }
    for x in c.rows(r, &super::chunk::USAGE_CHUNKS)? {
        let (t, first) = (x.key.tenant_id.as_ref(), x.key.first_seq);
        let entry = OrderEntry {
            at: x.key.last_at,
            ..chunk_entry(&x.value)
        };
        by_tenant.add(&TenantUsageSeqKey::new(t, first), &entry);
        all.add(&UsageSeqKey::new(first, t), &entry);
        chunks.insert(first, x.value.last_seq().max(first));
        rows.push((first, true, x.bytes));
    }
    for (seq, chunk, row) in rows {
        // A chunk's own number is its first; an event's may not be any chunk's.
        let before = if chunk { seq } else { seq.saturating_add(1) };
        match chunks.range(..before).next_back() {
            Some((_, last)) if *last >= seq => c.violation(
                if chunk {
                    super::chunk::USAGE_CHUNKS.name()
                } else {
                    USAGE_EVENTS.name()
                },
                &row,
                "usage number inside a chunk's numbers",
            ),
            _ => c.ok(),
        }
    }
    c.index(r, &USAGE_BY_SEQ, by_tenant, "usage event")?;
    c.index(r, &USAGE_ALL_BY_SEQ, all, "usage event")
}

/// Builds both insertion orders from the usage events (the upgrade to layout 9: events
/// recorded before it have none). Events of one instant keep their number's order.
pub(crate) fn rebuild(tx: &mut WriteTx) -> Result<()> {
    for (t, seq, at, reported) in events(tx, false)? {
        index(tx, &t, seq, at, reported)?;
    }
    Ok(())
}

/// Marks the reported events in the platform's insertion order (the upgrade from layout 9,
/// which did not tell them apart), so that the purge of their de-duplication rows finds them.
pub(crate) fn mark_reported(tx: &mut WriteTx) -> Result<()> {
    for (t, seq, at, reported) in events(tx, true)? {
        let entry = OrderEntry::event(at, reported);
        tx.put(&USAGE_ALL_BY_SEQ, &UsageSeqKey::new(seq, &t), &entry)?;
    }
    Ok(())
}

/// Every usage event's (or, with `reported_only`, every reported one's) tenant, number,
/// instant and whether it was reported.
fn events(tx: &WriteTx, reported_only: bool) -> Result<Vec<(String, u64, Timestamp, bool)>> {
    let mut rows = Vec::new();
    tx.scan(
        &USAGE_EVENTS,
        &USAGE_EVENTS.prefix(),
        Order::Asc,
        |k, e: UsageEventRec| {
            if let Some(k) = UsageKey::decode(k) {
                let reported = e.origin.is_some();
                if reported || !reported_only {
                    rows.push((k.tenant_id.into_owned(), k.seq, k.emitted_at, reported));
                }
            }
            Ok(Flow::Continue)
        },
    )?;
    Ok(rows)
}

impl Bespin {
    /// The caller's tenant's usage events after `q`'s cursor, oldest first by insertion, as
    /// CloudEvents (tenant admin). Reading the same cursor twice gives the same page, and no
    /// event recorded later (a late ingested one included) lands before a cursor already
    /// read. Errors: `Forbidden` for a member.
    pub fn usage_export(&self, caller: &Principal, q: ExportQuery) -> Result<ExportPage> {
        caller.require_admin_to("export usage")?;
        self.read(|r, _| Ok(finish(r, q, page(r, q, Some(caller.tenant_id()))?)))
    }

    /// Every tenant's usage events after `q`'s cursor, oldest first by insertion (platform
    /// admin; see [`Bespin::usage_export`]).
    pub fn admin_usage_export(&self, q: ExportQuery) -> Result<ExportPage> {
        self.read(|r, _| Ok(finish(r, q, page(r, q, None)?)))
    }

    /// The usage number an exported event id was sealed from.
    fn unseal_usage_id(&self, id: &str) -> Option<u64> {
        let uuid = id.strip_prefix("use_")?;
        self.read(|r, _| Ok(r.sealer().unseal(uuid))).ok().flatten()
    }
}
