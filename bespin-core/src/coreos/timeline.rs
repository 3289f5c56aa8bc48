//! The unified timeline (40 §7): append-only events written by the Core OS write operations in
//! the same transaction as the change they describe.
//!
//! Events are stored under (tenant, instant, sequence); two secondary indexes, (tenant, entity
//! type, instant, sequence) and (tenant, entity type, entity created_at, entity id, instant,
//! sequence), serve the filtered views (the record's creation instant keeps the events of new
//! records at the end of the index instead of on a random page; a filter by id looks it up). All three are walked newest first. Offset paging is what the contract
//! offers; for a stable walk while new events arrive, pass the last seen `event_id` as
//! `before`: the page then holds only events older than it, so successive pages have no gaps
//! and no repeats.

use super::{EntityType, Metadata, Paging, filter, metadata_as_object, page_type};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::check::{Checker, Expected};
use crate::error::{Error, Result};
use crate::store::codec::EncodesAs;
use crate::store::{Flow, KeyDef, Order, Prefix, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored timeline event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventRec {
    pub event_id: String,
    pub actor_user_id: String,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub summary: String,
    pub metadata: Metadata,
    pub created_at: Timestamp,
}
impl Record for EventRec {}

/// An [`EventRec`] of borrowed parts, as [`emit`] writes it: the same fields in the same order,
/// so it encodes to the record's bytes (a test decodes one back).
#[derive(Serialize)]
struct EventRow<'a> {
    event_id: &'a str,
    actor_user_id: &'a str,
    event_type: &'a str,
    entity_type: &'a str,
    entity_id: &'a str,
    summary: &'a str,
    metadata: &'a Metadata,
    created_at: Timestamp,
}

impl EncodesAs<EventRec> for EventRow<'_> {
    fn size_hint(&self) -> usize {
        let meta: usize = self
            .metadata
            .0
            .iter()
            .map(|(k, v)| 4 + k.len() + v.as_ref().map_or(0, String::len))
            .sum();
        40 + self.event_id.len()
            + self.actor_user_id.len()
            + self.event_type.len()
            + self.entity_type.len()
            + self.entity_id.len()
            + self.summary.len()
            + meta
    }
}

/// Where an event sits in the main index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventPos {
    pub at: Timestamp,
    pub seq: u64,
}
impl Record for EventPos {}

key! {
    /// (tenant, instant, sequence).
    pub(crate) struct EventKey<'a> { tenant_id: tenant, created_at: ts, seq: u64 }
    /// (tenant, entity type, instant, sequence).
    pub(crate) struct TypeKey<'a> { tenant_id: tenant, entity_type: str, at: ts, seq: u64 }
    /// (tenant, entity type, entity created at, entity id, instant, sequence).
    pub(crate) struct EntityKey<'a> {
        tenant_id: tenant,
        entity_type: str,
        born: ts,
        entity_id: ext_id,
        at: ts,
        seq: u64,
    }
    /// (tenant, event id).
    pub(crate) struct EventIdKey<'a> { tenant_id: tenant, event_id: ext_id }
}

/// (tenant, instant, sequence) → timeline event.
pub(crate) const TIMELINE: Table<EventKey<'static>, EventRec> = Table::new("co_timeline");
/// (tenant, entity type, instant, sequence) → event position.
pub(crate) const BY_TYPE: Table<TypeKey<'static>, EventPos> = Table::new("co_timeline_by_type");
/// (tenant, entity type, entity created_at, entity id, instant, sequence) → event position. The
/// record's creation instant comes before its (random) id so the events of new records append.
pub(crate) const BY_ENTITY: Table<EntityKey<'static>, EventPos> =
    Table::new("co_timeline_by_entity");
/// (tenant, event id) → event position (the `before` cursor of events whose ids are not
/// sealed).
pub(crate) const IDS: Table<EventIdKey<'static>, EventPos> = Table::new("co_timeline_ids");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&TIMELINE, &BY_TYPE, &BY_ENTITY, &IDS];

/// A timeline event as the API shows it (`TimelineEventResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    /// The event id.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The caller who performed the operation.
    pub actor_user_id: String,
    /// One of the event types of 40 §10.1.
    pub event_type: String,
    /// `action`, `task`, `decision`, `meeting` or `memory_fact`.
    pub entity_type: String,
    /// The record the event is about.
    pub entity_id: String,
    /// Human-readable summary.
    pub summary: String,
    /// Event details, keys in the order of 40 §10.1.
    #[serde(serialize_with = "metadata_as_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Metadata,
    /// When the event was written (RFC 3339, UTC).
    pub created_at: String,
}

page_type!(
    /// `GET /v1/timeline`.
    TimelinePage,
    TimelineEvent
);

fn view(tenant: &str, e: EventRec) -> TimelineEvent {
    TimelineEvent {
        event_id: e.event_id,
        tenant_id: tenant.to_owned(),
        actor_user_id: e.actor_user_id,
        event_type: e.event_type,
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        summary: e.summary,
        metadata: e.metadata,
        created_at: e.created_at.to_rfc3339(),
    }
}

/// Appends a timeline event for `caller` about (`entity`, `entity_id`), a record created at
/// `born`, in the open transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    event_type: &str,
    entity: EntityType,
    entity_id: &str,
    born: Timestamp,
    summary: String,
    metadata: Metadata,
) -> Result<()> {
    let t = caller.tenant_id();
    let seq = tx.next_seq("timeline")?;
    let pos = EventPos { at: ctx.now, seq };
    // The event's position, sealed: the `before` cursor finds it without an index.
    let (event_id, sealed) = crate::ids::new_event_id(tx.sealer(), pos.at.0, seq);
    let et = entity.as_str();
    // Stored from borrowed parts (encodes as an `EventRec`): no owned copy of each field.
    let row = EventRow {
        event_id: &event_id,
        actor_user_id: caller.user_id(),
        event_type,
        entity_type: et,
        entity_id,
        summary: &summary,
        metadata: &metadata,
        created_at: ctx.now,
    };
    tx.put_as(&TIMELINE, &event_key(t, pos), &row)?;
    tx.put(&BY_TYPE, &TypeKey::new(t, et, pos.at, seq), &pos)?;
    let by_entity = EntityKey::new(t, et, born, entity_id, pos.at, seq);
    tx.put(&BY_ENTITY, &by_entity, &pos)?;
    if !sealed {
        // An id that does not name its position (events written before ids were sealed).
        tx.put(&IDS, &EventIdKey::new(t, &event_id), &pos)?;
    }
    Ok(())
}

/// Where the event `id` of the tenant is: unsealed from the id, or — for an event written
/// before event ids were sealed — looked up in the `co_timeline_ids` index.
pub(crate) fn find(r: &impl Reader, tenant: &str, id: &str) -> Result<Option<EventPos>> {
    if let Some((at, seq)) = r.sealer().unseal_event(id) {
        let pos = EventPos {
            at: Timestamp(at),
            seq,
        };
        if stored(r, tenant, pos)?.is_some_and(|e| e.event_id == id) {
            return Ok(Some(pos));
        }
    }
    r.get(&IDS, &EventIdKey::new(tenant, id))
}

/// Where the events of one record start in the per-record index.
fn entity_prefix(
    tenant: &str,
    et: &str,
    born: Timestamp,
    entity_id: &str,
) -> Prefix<EntityKey<'static>> {
    BY_ENTITY
        .prefix()
        .tenant(tenant)
        .str(et)
        .ts(born)
        .ext_id(entity_id)
}

/// Rebuilds the per-record index from the events (for a database of an older layout).
pub(crate) fn rebuild_entity_index(tx: &mut WriteTx) -> Result<()> {
    tx.delete_prefix(&BY_ENTITY, &BY_ENTITY.prefix())?;
    let mut all: Vec<(String, EventRec, EventPos)> = Vec::new();
    tx.scan(
        &TIMELINE,
        &TIMELINE.prefix(),
        Order::Asc,
        |k, e: EventRec| {
            if let Some(k) = EventKey::decode(k) {
                let pos = EventPos {
                    at: e.created_at,
                    seq: k.seq,
                };
                all.push((k.tenant_id.into_owned(), e, pos));
            }
            Ok(Flow::Continue)
        },
    )?;
    for (tenant, e, pos) in &all {
        let Some(et) = EntityType::parse(&e.entity_type) else {
            continue;
        };
        if let Some(born) = super::entity_created_at(tx, tenant, et, &e.entity_id)? {
            let k = EntityKey::new(tenant, et.as_str(), born, &e.entity_id, pos.at, pos.seq);
            tx.put(&BY_ENTITY, &k, pos)?;
        }
    }
    Ok(())
}

/// Query of [`Bespin::timeline`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimelineQuery {
    /// Exact entity type (empty/absent: any).
    pub entity_type: Option<String>,
    /// Exact entity id (empty/absent: any).
    pub entity_id: Option<String>,
    /// Only events older than this event (a stable cursor; absent: from the newest).
    pub before: Option<String>,
    /// `limit` (1–200, default 50) and `offset` (≥ 0, default 0).
    pub paging: Option<Paging>,
}

impl TimelineQuery {
    /// Validates query values (`entity_type`, `entity_id`, `before`, `limit`, `offset`), given
    /// as a JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let entity_type = filter(&mut f, "entity_type", false);
        let entity_id = filter(&mut f, "entity_id", false);
        let before = f.string("before", Presence::Optional, Len::ANY);
        let paging = Paging::read(&mut f, 200);
        f.finish()?;
        Ok(TimelineQuery {
            entity_type: got(entity_type)?,
            entity_id: got(entity_id)?,
            before: got(before)?.filter(|s| !s.is_empty()),
            paging: Some(got(paging)?),
        })
    }
}

/// The key of the tenant's event at `pos` in the timeline.
fn event_key(tenant: &str, pos: EventPos) -> EventKey<'_> {
    EventKey::new(tenant, pos.at, pos.seq)
}

/// The tenant's event at `pos`, if one is stored there.
fn stored(r: &impl Reader, tenant: &str, pos: EventPos) -> Result<Option<EventRec>> {
    r.get(&TIMELINE, &event_key(tenant, pos))
}

/// Visits the positions in `table` under `prefix`, newest first, before `cursor` if given.
fn walk<K: KeyDef>(
    r: &impl Reader,
    table: &Table<K, EventPos>,
    prefix: Prefix<K>,
    cursor: Option<EventPos>,
    visit: &mut dyn FnMut(EventPos) -> Result<()>,
) -> Result<()> {
    let to = cursor.map(|c| prefix.clone().ts(c.at).u64(c.seq));
    let mut each = |_: &[u8], pos: EventPos| visit(pos).map(|()| Flow::Continue);
    r.scan_range(table, &prefix, None, to.as_ref(), Order::Desc, &mut each)
}

fn load_pos(r: &impl Reader, tenant: &str, pos: EventPos) -> Result<EventRec> {
    stored(r, tenant, pos)?
        .ok_or_else(|| Error::Internal("timeline index points at a missing event".into()))
}

/// The timeline page for `q` in `tenant` (no capability check).
pub(crate) fn list(r: &impl Reader, tenant: &str, q: &TimelineQuery) -> Result<TimelinePage> {
    let paging = q.paging.unwrap_or(Paging::DEFAULT);
    let cursor = match &q.before {
        Some(id) => Some(
            find(r, tenant, id)?
                .ok_or_else(|| Error::NotFound("Timeline event not found".into()))?,
        ),
        None => None,
    };
    let end = paging.offset.saturating_add(paging.limit);
    let mut items = Vec::new();
    let mut matched = 0u64;
    let mut take = |rec: Option<EventRec>, matched: &mut u64| {
        if *matched >= paging.offset
            && *matched < end
            && let Some(rec) = rec
        {
            items.push(view(tenant, rec));
        }
        *matched += 1;
    };
    match (&q.entity_type, &q.entity_id) {
        (Some(et), eid) => {
            let mut visit = |pos: EventPos| {
                let in_page = matched >= paging.offset && matched < end;
                let rec = if in_page {
                    Some(load_pos(r, tenant, pos)?)
                } else {
                    None
                };
                take(rec, &mut matched);
                Ok(())
            };
            match eid {
                Some(eid) => {
                    // Events exist only for stored records of a known type.
                    let born = match EntityType::parse(et) {
                        Some(t) => super::entity_created_at(r, tenant, t, eid)?,
                        None => None,
                    };
                    if let Some(born) = born {
                        let prefix = entity_prefix(tenant, et, born, eid);
                        walk(r, &BY_ENTITY, prefix, cursor, &mut visit)?;
                    }
                }
                None => {
                    let prefix = BY_TYPE.prefix().tenant(tenant).str(et);
                    walk(r, &BY_TYPE, prefix, cursor, &mut visit)?;
                }
            }
        }
        (None, eid) => {
            let prefix = TIMELINE.prefix().tenant(tenant);
            let to = cursor.map(|c| prefix.clone().ts(c.at).u64(c.seq));
            r.scan_range(
                &TIMELINE,
                &prefix,
                None,
                to.as_ref(),
                Order::Desc,
                &mut |_, rec: EventRec| {
                    if eid.as_ref().is_none_or(|id| *id == rec.entity_id) {
                        take(Some(rec), &mut matched);
                    }
                    Ok(Flow::Continue)
                },
            )?;
        }
    }
    Ok(TimelinePage::new(items, matched, paging))
}

/// The newest `limit` events of one record, newest first.
pub(crate) fn for_entity(
    r: &impl Reader,
    tenant: &str,
    entity: EntityType,
    entity_id: &str,
    limit: u64,
) -> Result<Vec<TimelineEvent>> {
    let q = TimelineQuery {
        entity_type: Some(entity.as_str().to_owned()),
        entity_id: Some(entity_id.to_owned()),
        before: None,
        paging: Some(Paging { limit, offset: 0 }),
    };
    Ok(list(r, tenant, &q)?.items)
}

/// Checks the timeline: every event keyed by its instant and about an existing record, and
/// its three indexes (by type, by record, and by id for events whose ids are not sealed)
/// exactly what the events imply, both ways.
pub(crate) fn check(r: &impl Reader, c: &mut Checker, records: &super::Records) -> Result<()> {
    let (mut by_type, mut by_entity, mut by_id) =
        (Expected::new(), Expected::new(), Expected::new());
    for x in c.rows(r, &TIMELINE)? {
        let (t, e, k) = (x.tenant.as_str(), &x.value, &x.bytes);
        let pos = EventPos {
            at: e.created_at,
            seq: x.key.seq,
        };
        if x.key.created_at != e.created_at {
            c.violation(TIMELINE.name(), k, "key instant differs from created_at");
        }
        let born = EntityType::parse(&e.entity_type)
            .and_then(|et| records.created_at(t, et, &e.entity_id));
        match born {
            Some(born) => {
                c.ok();
                // An event of a missing record is reported as such; it has no place here.
                let key = EntityKey::new(t, &e.entity_type, born, &e.entity_id, pos.at, pos.seq);
                by_entity.add(&key, &pos);
            }
            None => {
                let d = format!("event for missing {} {}", e.entity_type, e.entity_id);
                c.violation(TIMELINE.name(), k, d);
            }
        }
        by_type.add(&TypeKey::new(t, &e.entity_type, pos.at, pos.seq), &pos);
        // A sealed event id names its own position; only older ids need the id index.
        if r.sealer().unseal_event(&e.event_id) != Some((pos.at.0, pos.seq)) {
            by_id.add(&EventIdKey::new(t, &e.event_id), &pos);
        }
    }
    c.index(r, &BY_TYPE, by_type, "timeline event")?;
    c.index(r, &BY_ENTITY, by_entity, "timeline event")?;
    c.index(r, &IDS, by_id, "timeline event")
}

impl Bespin {
    /// `GET /v1/timeline`: the tenant's events, newest first, filtered by entity type and/or
    /// id. Capability `timeline`. Errors: the entitlement errors; `NotFound` for an unknown
    /// `before` cursor.
    pub fn timeline(&self, caller: &Principal, q: &TimelineQuery) -> Result<TimelinePage> {
        self.read(|r, _| {
            require_capability(r, caller, "timeline")?;
            list(r, caller.tenant_id(), q)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::testing::{caught, first_key, populated};
    use crate::coreos::{decisions, tasks};

    #[test]
    fn a_timeline_event_of_a_missing_record_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &decisions::DECISIONS);
            tx.delete_stored(&decisions::DECISIONS, &k).map(|_| ())
        });
        caught(&db, "co_timeline", "event for missing decision");
        caught(&db, "co_decisions_by_date", "dangling");
        caught(&db, "co_search", "dangling or stale");
    }

    #[test]
    fn a_record_moved_off_its_sealed_key_and_an_unfindable_event_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            // A task moved one record number up: its id no longer names its key.
            let k = first_key(tx, &tasks::TASKS);
            let key = tasks::TaskKey::decode(&k).unwrap().into_owned();
            let t = tx.get(&tasks::TASKS, &key)?.unwrap();
            tx.delete(&tasks::TASKS, &key)?;
            let mut moved = k.clone();
            if let Some(last) = moved.last_mut() {
                *last = last.wrapping_add(1);
            }
            tx.put_stored(&tasks::TASKS, &moved, &t)?;
            // An event whose id names no position and that the id index does not know.
            let e = first_key(tx, &TIMELINE);
            let e = EventKey::decode(&e).unwrap().into_owned();
            let mut ev = tx.get(&TIMELINE, &e)?.unwrap();
            ev.event_id = crate::ids::new_id();
            tx.put(&TIMELINE, &e, &ev)
        });
        caught(&db, "co_tasks", "differs from its key");
        caught(&db, "co_timeline_ids", "missing index entry");
    }

    #[test]
    fn a_row_of_borrowed_parts_encodes_as_the_stored_event() {
        let rec = EventRec {
            event_id: "evt-1".into(),
            actor_user_id: "u1".into(),
            event_type: "task_created".into(),
            entity_type: "task".into(),
            entity_id: "t1".into(),
            summary: "Task created: é \"x\"".into(),
            metadata: Metadata::of(&[("priority", Some("high")), ("assigned_to", None)]),
            created_at: Timestamp(1_700_000_000_123_456),
        };
        let row = EventRow {
            event_id: &rec.event_id,
            actor_user_id: &rec.actor_user_id,
            event_type: &rec.event_type,
            entity_type: &rec.entity_type,
            entity_id: &rec.entity_id,
            summary: &rec.summary,
            metadata: &rec.metadata,
            created_at: rec.created_at,
        };
        crate::store::codec::assert_encodes_as(&row, &rec);
    }
}
