//! The Core Business OS (`/v1/actions`, `/v1/tasks`, …; contract part 40): actions with review
//! and execution, tasks, decisions, meeting notes, governed memory facts, evidence links, the
//! unified timeline, global search and the record explorer.
//!
//! One file per entity; this module holds what they share: the entity-type catalogue, JSON
//! helpers, list paging over time-ordered indexes, the timeline writer and the "effects" step
//! (audit row + usage event under one fresh request id).
//!
//! ## Storage
//! Every table is keyed by tenant first. Each entity has a primary table (tenant, id) → record
//! and an index ordered the way its list endpoint orders (for example (tenant, created_at, id)
//! for actions). Lists walk the index in order, filter while walking, count every match for
//! `total`, and load only the rows of the requested page; nothing sorts a full scan in memory.
//!
//! ## Where we differ from the reference (spec README decisions 1, 3, 8–11, 13)
//! - Dates (`due_date`, `decision_date`, `meeting_date` and the `from`/`to`/`due_before`
//!   filters) must be real `YYYY-MM-DD` dates (422 `date_from_datetime_parsing`).
//! - `status=all` (or an empty value) means "no filter" on every list.
//! - An explicit `null` for a required field in a PATCH is 422 (`string_type`).
//! - References are checked: `assigned_to_user_id` must be a user of the caller's tenant
//!   (404 `Assigned user not found`); linked entities (tasks, meeting notes) and evidence targets
//!   must exist in the caller's tenant (404 with the target's not-found detail); a link needs
//!   both `linked_entity_type` (one of the five entity types) and `linked_entity_id`.
//! - Memory facts can be superseded any number of times; each old version records its
//!   successor (`superseded_by_fact_id`).
//! - Timestamps are RFC 3339 UTC with `Z` and microseconds; every row a request writes
//!   (entity, review/execution, timeline event, audit, usage) carries the request's instant.

pub mod actions;
pub mod decisions;
pub mod deletion;
pub mod evidence;
pub mod meetings;
pub mod memory;
pub mod records;
pub mod search;
pub mod tasks;
pub mod timeline;

use crate::auth::Principal;
use crate::check::{Checker, Expected, Row};
use crate::error::{Error, Result};
use crate::metering::Meter;
use crate::store::{Flow, KeyDef, Order, Prefix, Reader, Table, WriteTx};
use crate::time::{Date, Timestamp};
use crate::validate::{Bounds, Fields, Len, Presence};
use crate::{Ctx, audit, ids};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The five Core OS entity types, as named in the timeline, search and the record explorer.
/// They order as [`EntityType::ALL`], the contract's order (search breaks ties by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    /// An action of the Action Center.
    Action,
    /// A task.
    Task,
    /// A decision.
    Decision,
    /// A meeting note.
    Meeting,
    /// A governed memory fact.
    MemoryFact,
}

impl EntityType {
    /// Every type, in the contract's order.
    pub const ALL: [EntityType; 5] = [
        EntityType::Action,
        EntityType::Task,
        EntityType::Decision,
        EntityType::Meeting,
        EntityType::MemoryFact,
    ];

    /// The wire name (`action`, `task`, `decision`, `meeting`, `memory_fact`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Action => "action",
            EntityType::Task => "task",
            EntityType::Decision => "decision",
            EntityType::Meeting => "meeting",
            EntityType::MemoryFact => "memory_fact",
        }
    }

    /// The type named `s`, if any.
    /// The type as a sentence starts with it (`Task`, `Meeting note`, …).
    pub fn label(self) -> &'static str {
        match self {
            EntityType::Action => "Action",
            EntityType::Task => "Task",
            EntityType::Decision => "Decision",
            EntityType::Meeting => "Meeting note",
            EntityType::MemoryFact => "Memory fact",
        }
    }

    /// Parses the stored or sent name of a type.
    pub fn parse(s: &str) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The capability that gates this type.
    pub fn capability(self) -> &'static str {
        match self {
            EntityType::Action => "action_center",
            EntityType::Task => "tasks",
            EntityType::Decision => "decisions",
            EntityType::Meeting => "meetings",
            EntityType::MemoryFact => "memory",
        }
    }

    /// The 404 error for a missing record of this type.
    pub fn not_found(self) -> Error {
        Error::NotFound(
            match self {
                EntityType::Action => "Action not found",
                EntityType::Task => "Task not found",
                EntityType::Decision => "Decision not found",
                EntityType::Meeting => "Meeting note not found",
                EntityType::MemoryFact => "Memory fact not found",
            }
            .into(),
        )
    }
}

/// Whether a record of type `t` with id `id` exists in the tenant.
pub(crate) fn entity_exists(
    r: &impl Reader,
    tenant: &str,
    t: EntityType,
    id: &str,
) -> Result<bool> {
    match t {
        EntityType::Action => r.contains(&actions::ACTIONS, &actions::record_key(r, tenant, id)),
        EntityType::Task => r.contains(&tasks::TASKS, &tasks::record_key(r, tenant, id)),
        EntityType::Decision => {
            r.contains(&decisions::DECISIONS, &decisions::record_key(r, tenant, id))
        }
        EntityType::Meeting => {
            r.contains(&meetings::MEETINGS, &meetings::record_key(r, tenant, id))
        }
        EntityType::MemoryFact => r.contains(&memory::FACTS, &memory::record_key(r, tenant, id)),
    }
}

/// When the record of type `t` with id `id` was created, if it exists in the tenant.
pub(crate) fn entity_created_at(
    r: &impl Reader,
    tenant: &str,
    t: EntityType,
    id: &str,
) -> Result<Option<crate::time::Timestamp>> {
    Ok(match t {
        EntityType::Action => actions::get(r, tenant, id)?.map(|x| x.created_at),
        EntityType::Task => tasks::get(r, tenant, id)?.map(|x| x.created_at),
        EntityType::Decision => decisions::get(r, tenant, id)?.map(|x| x.created_at),
        EntityType::Meeting => meetings::get(r, tenant, id)?.map(|x| x.created_at),
        EntityType::MemoryFact => memory::get(r, tenant, id)?.map(|x| x.created_at),
    })
}

pub(crate) use crate::ids::new_record_id;

/// What the checks of the record modules gather for the checks after them: every record's
/// (tenant, type, id) with its creation instant, and the search index their text implies.
#[derive(Default)]
pub(crate) struct Records {
    exists: HashMap<(String, EntityType, String), Timestamp>,
    deleted: HashMap<(String, EntityType, String), Timestamp>,
    search: search::Implied,
}

impl Records {
    /// Notes a record of `tenant` stored in `table` under `stored`, after checking that this
    /// is the key its id gives (`expected`).
    pub(crate) fn add(
        &mut self,
        c: &mut Checker,
        table: &'static str,
        (stored, expected): (&[u8], &[u8]),
        tenant: &str,
        rec: &dyn search::Searchable,
    ) {
        let d = rec.search_doc();
        if stored == expected {
            c.ok();
        } else {
            c.violation(
                table,
                stored,
                format!("record id {} differs from its key", d.id),
            );
        }
        let place = (tenant.to_owned(), d.entity_type, d.id.to_owned());
        self.exists.insert(place, d.created_at);
        self.search.add(tenant, rec);
    }

    /// Notes the tombstone of a deleted record (its history stays valid).
    pub(crate) fn add_deleted(&mut self, tenant: &str, et: EntityType, id: &str, born: Timestamp) {
        self.deleted
            .insert((tenant.to_owned(), et, id.to_owned()), born);
    }

    /// The creation instant of the stored record (`et`, `id`) of `tenant`, if it exists.
    pub(crate) fn live(&self, tenant: &str, et: EntityType, id: &str) -> Option<Timestamp> {
        self.exists
            .get(&(tenant.to_owned(), et, id.to_owned()))
            .copied()
    }

    /// The creation instant of the record (`et`, `id`) of `tenant`, stored or deleted: what
    /// its history (the timeline) may name.
    pub(crate) fn created_at(&self, tenant: &str, et: EntityType, id: &str) -> Option<Timestamp> {
        let key = (tenant.to_owned(), et, id.to_owned());
        self.exists
            .get(&key)
            .or_else(|| self.deleted.get(&key))
            .copied()
    }
}

/// Checks the records of `table`: each stored under the key its id gives and listed in `index`
/// (both ways) under the key its fields give (`keys`: the record's own key and its index key,
/// encoded), and notes each in `records`. Returns the rows.
pub(crate) fn check_records<Rd, K, V, I>(
    r: &Rd,
    c: &mut Checker,
    records: &mut Records,
    (table, index, what): (&Table<K, V>, &Table<I, String>, &str),
    keys: impl Fn(&Rd, &str, &V) -> (Vec<u8>, Vec<u8>),
) -> Result<Vec<Row<K, V>>>
where
    Rd: Reader,
    K: KeyDef,
    V: crate::store::Record + search::Searchable,
    I: KeyDef,
{
    let rows = c.rows(r, table)?;
    let mut expected = Expected::new();
    for x in &rows {
        let (own, listed) = keys(r, &x.tenant, &x.value);
        records.add(c, table.name(), (&x.bytes, &own), &x.tenant, &x.value);
        expected.add_encoded(listed, &x.value.search_doc().id.to_owned());
    }
    c.index(r, index, expected, what)?;
    Ok(rows)
}

/// Checks the Core OS: each record module's own invariants (records under their own ids,
/// their list indexes, reviews, executions, the memory's supersede chains), then what refers
/// to records (search index and rank rows, evidence, the timeline).
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let mut records = Records::default();
    actions::check(r, c, &mut records)?;
    tasks::check(r, c, &mut records)?;
    decisions::check(r, c, &mut records)?;
    meetings::check(r, c, &mut records)?;
    memory::check(r, c, &mut records)?;
    deletion::check(r, c, &mut records)?;
    search::check(r, c, std::mem::take(&mut records.search))?;
    evidence::check(r, c, &records)?;
    timeline::check(r, c, &records)
}

/// Timeline metadata: an ordered map of string (or null) values, serialised as a JSON object
/// with its keys in the order of 40 §10.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata(pub Vec<(String, Option<String>)>);

impl Metadata {
    /// An empty object.
    pub fn empty() -> Self {
        Metadata(Vec::new())
    }

    /// Metadata from `(key, value)` pairs, in order.
    pub fn of(pairs: &[(&str, Option<&str>)]) -> Self {
        Metadata(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
        )
    }

    /// The value stored under `key` (outer `None` when the key is absent).
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref())
    }
}

/// Serialises [`Metadata`] as a JSON object, keys in stored order.
pub(crate) fn metadata_as_object<S: Serializer>(m: &Metadata, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(m.0.len()))?;
    for (k, v) in &m.0 {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Parses stored JSON-object text back into a value (`{}` if unreadable, which cannot happen
/// for text this module wrote).
pub(crate) fn json_object(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// The text stored for a JSON object.
pub(crate) fn object_text(m: &Map<String, Value>) -> String {
    Value::Object(m.clone()).to_string()
}

/// Runs the quota check of `event_key` (tool label `tool`) in the caller's tenant.
pub(crate) fn check_quota<'a>(
    tx: &WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    event_key: &'a str,
    tool: &'a str,
) -> Result<crate::metering::Permit<'a>> {
    Meter::one(event_key, tool).check(tx, ctx, caller.tenant_id())
}

/// Writes the audit row (about the record `target`) and the usage event of a successful write
/// under one fresh request id.
pub(crate) fn record_effects(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    permit: crate::metering::Permit<'_>,
    audit_action: &str,
    tool: &str,
    target: (EntityType, &str),
) -> Result<()> {
    let request_id = ids::new_id();
    let entry = audit::Entry::new(caller.user_id(), audit_action, &request_id)
        .tool(Some(tool))
        .capability(target.0.capability())
        .target(target.0.as_str(), target.1)
        .units(permit.units());
    audit::append(tx, ctx, caller.tenant_id(), entry)?;
    permit.record(tx, ctx, caller, &request_id)
}

/// `limit`/`offset` of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Page size.
    pub limit: u64,
    /// Rows skipped.
    pub offset: u64,
}

impl Paging {
    /// The defaults: 50 rows from the start.
    pub const DEFAULT: Paging = Paging {
        limit: 50,
        offset: 0,
    };

    /// Reads `limit` (default 50, 1–`max`) and `offset` (default 0, ≥ 0) from query values.
    pub(crate) fn read(f: &mut Fields<'_>, max: i64) -> Option<Paging> {
        let limit = f.int("limit", Presence::Optional, Bounds::range(1, max));
        let offset = f.int("offset", Presence::Optional, Bounds::ge(0));
        Some(Paging {
            limit: u64::try_from(limit?.unwrap_or(50)).unwrap_or(50),
            offset: u64::try_from(offset?.unwrap_or(0)).unwrap_or(0),
        })
    }
}

/// A filter value from a query: absent, empty or (where `all_means_none`) `all` turn it off.
pub(crate) fn filter(
    f: &mut Fields<'_>,
    name: &str,
    all_means_none: bool,
) -> Option<Option<String>> {
    let v = f.string(name, Presence::Optional, Len::ANY)?;
    Some(v.filter(|s| !s.is_empty() && (!all_means_none || s != "all")))
}

/// What a PATCH asks of one field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    /// The key was absent: leave the value.
    #[default]
    Keep,
    /// The key was `null` on a nullable field: clear it.
    Clear,
    /// Set this value.
    Set(T),
}

impl<T: PartialEq + Clone> Change<T> {
    /// Applies the change to an optional stored value; returns whether it changed.
    pub(crate) fn apply_opt(&self, slot: &mut Option<T>) -> bool {
        let new = match self {
            Change::Keep => return false,
            Change::Clear => None,
            Change::Set(v) => Some(v.clone()),
        };
        if *slot == new {
            false
        } else {
            *slot = new;
            true
        }
    }

    /// Applies the change to a required stored value (`Clear` never reaches here: validation
    /// refuses `null` for required fields); returns whether it changed.
    pub(crate) fn apply(&self, slot: &mut T) -> bool {
        match self {
            Change::Set(v) if v != slot => {
                *slot = v.clone();
                true
            }
            _ => false,
        }
    }
}

/// A string member of a PATCH body. `nullable` fields read `null` as [`Change::Clear`];
/// required fields refuse `null` with 422 `string_type`.
pub(crate) fn patch_string(
    f: &mut Fields<'_>,
    name: &str,
    len: Len,
    nullable: bool,
) -> Option<Change<String>> {
    if f.has(name) && f.raw(name).is_none() {
        if nullable {
            return Some(Change::Clear);
        }
        f.fail(
            name,
            "string_type",
            "Input should be a valid string",
            Value::Null,
        );
        return None;
    }
    match f.string(name, Presence::Optional, len)? {
        Some(s) => Some(Change::Set(s)),
        None => Some(Change::Keep),
    }
}

/// The entity link of a task or meeting note: a type and an id, both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The linked record's type.
    pub entity_type: EntityType,
    /// The linked record's id.
    pub entity_id: String,
}

/// Reads `linked_entity_type` + `linked_entity_id` (both or neither; the type one of the five
/// entity types).
pub(crate) fn link_fields(f: &mut Fields<'_>) -> Option<Option<Link>> {
    let t = f.choice(
        "linked_entity_type",
        Presence::Optional,
        &["action", "task", "decision", "meeting", "memory_fact"],
        LINK_PATTERN,
    );
    let id = f.string("linked_entity_id", Presence::Optional, Len::between(1, 36));
    let (t, id) = (t?, id?);
    match (t, id) {
        (None, None) => Some(None),
        (Some(t), Some(id)) => Some(Some(Link {
            entity_type: EntityType::parse(&t)?,
            entity_id: id,
        })),
        (Some(_), None) => {
            missing_with(f, "linked_entity_id");
            None
        }
        (None, Some(_)) => {
            missing_with(f, "linked_entity_type");
            None
        }
    }
}

/// The pattern of `linked_entity_type`.
pub(crate) const LINK_PATTERN: &str = "^(action|task|decision|meeting|memory_fact)$";

fn missing_with(f: &mut Fields<'_>, name: &str) {
    f.fail(
        name,
        "missing",
        "Field required when the other link field is given",
        Value::Null,
    );
}

/// Checks that a link target exists in the tenant (404 with the target's detail).
pub(crate) fn check_link(r: &impl Reader, tenant: &str, link: Option<&Link>) -> Result<()> {
    if let Some(l) = link
        && !entity_exists(r, tenant, l.entity_type, &l.entity_id)?
    {
        return Err(l.entity_type.not_found());
    }
    Ok(())
}

/// Checks that an assignee is a user of the tenant (404 `Assigned user not found`).
pub(crate) fn check_assignee(r: &impl Reader, tenant: &str, user: Option<&str>) -> Result<()> {
    if let Some(u) = user
        && !crate::tenancy::user_exists(r, tenant, u)?
    {
        return Err(Error::NotFound("Assigned user not found".into()));
    }
    Ok(())
}

/// Walks a time-ordered index (values are entity ids) and returns one page plus the number of
/// matches. `load` reads an id and returns the item if it passes the filters. When
/// `filtered` is false every index row counts as a match and only the page's rows are loaded.
#[allow(clippy::too_many_arguments)]
pub(crate) fn page_index<R: Reader, K: KeyDef, T>(
    r: &R,
    index: &Table<K, String>,
    prefix: &Prefix<K>,
    from: Option<&Prefix<K>>,
    to: Option<&Prefix<K>>,
    order: Order,
    paging: Paging,
    filtered: bool,
    mut load: impl FnMut(&R, &str) -> Result<Option<T>>,
) -> Result<(Vec<T>, u64)> {
    let mut items = Vec::new();
    let mut matched = 0u64;
    let end = paging.offset.saturating_add(paging.limit);
    r.scan_range(index, prefix, from, to, order, &mut |_, id: String| {
        let in_page = matched >= paging.offset && matched < end;
        if !filtered {
            if in_page && let Some(item) = load(r, &id)? {
                items.push(item);
            }
            matched += 1;
        } else if let Some(item) = load(r, &id)? {
            if in_page {
                items.push(item);
            }
            matched += 1;
        }
        Ok(Flow::Continue)
    })?;
    Ok((items, matched))
}

/// Declares the storage of a Core OS record listed by a date (decisions, meeting notes): the
/// record under (tenant, id), its list's index (tenant, date, created at, id) → id, the key of
/// a record by id (`record_key`), its row in the index (`date_key`), the lookup by id (`get`)
/// and the module's `check`.
macro_rules! dated_records {
    (
        $rec:ty, $what:literal, $id:ident, $date:ident,
        $table:ident = $name:literal, $key:ident;
        $index:ident = $iname:literal, $ikey:ident;
    ) => {
        $crate::store::key! {
            /// (tenant, record).
            pub(crate) struct $key<'a> { tenant_id: tenant, $id: id }
            /// (tenant, date, created at, record): the list's order.
            pub(crate) struct $ikey<'a> { tenant_id: tenant, $date: date, created_at: ts, $id: ext_id }
        }

        #[doc = concat!("(tenant, ", $what, ") → ", $what, ".")]
        pub(crate) const $table: $crate::store::Table<$key<'static>, $rec> =
            $crate::store::Table::new($name);
        #[doc = concat!("(tenant, date, created at, ", $what, ") → ", $what, " id: the list order.")]
        pub(crate) const $index: $crate::store::Table<$ikey<'static>, String> =
            $crate::store::Table::new($iname);

        /// The tables of this module.
        pub(crate) const TABLES: &[&dyn $crate::store::TableInfo] = &[&$table, &$index];

        /// The key of the record `id` of the tenant (its record number when the id is sealed).
        pub(crate) fn record_key<'a>(
            r: &impl $crate::store::Reader,
            tenant: &'a str,
            id: &'a str,
        ) -> $key<'a> {
            $key::new(tenant, $crate::store::Id::of(r.sealer(), id))
        }

        /// The record's row in its list's index.
        fn date_key<'a>(tenant: &'a str, x: &'a $rec) -> $ikey<'a> {
            $ikey::new(tenant, x.$date, x.created_at, &x.$id)
        }

        /// Removes the record, its row in the list's index and its search entries (a delete).
        fn remove(
            tx: &mut $crate::store::WriteTx,
            tenant: &str,
            x: &$rec,
        ) -> $crate::error::Result<()> {
            let key = record_key(tx, tenant, &x.$id);
            super::search::remove(tx, &$table, &key, tenant)?;
            tx.delete(&$index, &date_key(tenant, x))?;
            Ok(())
        }

        /// The record `id` of the tenant, if it exists there.
        pub(crate) fn get(
            r: &impl $crate::store::Reader,
            tenant: &str,
            id: &str,
        ) -> $crate::error::Result<Option<$rec>> {
            r.get(&$table, &record_key(r, tenant, id))
        }

        /// Checks the records: each under its own id and in the index by date (both ways).
        pub(crate) fn check(
            r: &impl $crate::store::Reader,
            c: &mut $crate::check::Checker,
            records: &mut super::Records,
        ) -> $crate::error::Result<()> {
            let tables = (&$table, &$index, $what);
            super::check_records(r, c, records, tables, |r, t, x| {
                (record_key(r, t, &x.$id).encode(), date_key(t, x).encode())
            })?;
            Ok(())
        }
    };
}
pub(crate) use dated_records;

macro_rules! page_type {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name {
            /// The rows of this page.
            pub items: Vec<$item>,
            /// Rows matching the filters, before `limit`/`offset`.
            pub total: u64,
            /// The page size in effect.
            pub limit: u64,
            /// The offset in effect.
            pub offset: u64,
        }

        impl $name {
            pub(crate) fn new(items: Vec<$item>, total: u64, p: crate::coreos::Paging) -> Self {
                $name {
                    items,
                    total,
                    limit: p.limit,
                    offset: p.offset,
                }
            }
        }
    };
}
pub(crate) use page_type;

/// A choice member of a PATCH body whose stored value is required: `null` is 422.
pub(crate) fn patch_choice(
    f: &mut Fields<'_>,
    name: &str,
    choices: &[&str],
    pattern: &str,
) -> Option<Change<String>> {
    if f.has(name) && f.raw(name).is_none() {
        f.fail(
            name,
            "string_type",
            "Input should be a valid string",
            Value::Null,
        );
        return None;
    }
    match f.choice(name, Presence::Optional, choices, pattern)? {
        Some(s) => Some(Change::Set(s)),
        None => Some(Change::Keep),
    }
}

/// A nullable date member of a PATCH body (`null` clears it).
pub(crate) fn patch_date(f: &mut Fields<'_>, name: &str) -> Option<Change<Date>> {
    if f.has(name) && f.raw(name).is_none() {
        return Some(Change::Clear);
    }
    match f.date(name, Presence::Optional)? {
        Some(d) => Some(Change::Set(d)),
        None => Some(Change::Keep),
    }
}

/// The day after `d` (for inclusive upper bounds on date-ordered indexes).
pub(crate) fn next_day(d: Date) -> Date {
    Date(d.0.succ_opt().unwrap_or(d.0))
}

#[cfg(test)]
mod tests {
    use super::EntityType;

    #[test]
    fn types_order_as_the_contract_lists_them() {
        assert!(EntityType::ALL.windows(2).all(|w| w[0] < w[1]));
    }
}
