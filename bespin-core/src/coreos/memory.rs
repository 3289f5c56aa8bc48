//! Governed memory facts (40 §5).
//!
//! Within a tenant at most one fact per `fact_key` is `active` (keys compare case-sensitively,
//! across categories); a (tenant, fact key) → active fact id table enforces it. Supersede
//! replaces the active version with a new one in one transaction: the old version becomes
//! `superseded` and points forward (`superseded_by_fact_id`), the new one points back
//! (`supersedes_fact_id`). Chains can be any length (spec README decision 9).
//!
//! Check order as 40 §5.2, §5.5 and §5.6 list it: create runs the quota check before the
//! duplicate-key check (409); PATCH does not look at the status, so a superseded version can be
//! edited in place; superseding a non-active fact is 400 `Can only supersede active facts`.
//! `fact_value: null` in a PATCH is 422 (spec README decision 9: an explicit `null` for a
//! required field).

use super::deletion::{self, Deleted, Deletion};
use super::{
    EntityType, Metadata, Paging, Records, check_quota, check_records, filter, new_record_id,
    page_index, page_type, record_effects, search, timeline,
};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::check::{Checker, Expected};
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Id, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CAP: &str = "memory";
const TOOL: &str = "memory";
const CATEGORIES: &[&str] = &[
    "icp",
    "positioning",
    "pricing",
    "goals",
    "constraints",
    "brand",
    "other",
];
const CATEGORY_PATTERN: &str = "^(icp|positioning|pricing|goals|constraints|brand|other)$";

/// A stored memory fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FactRec {
    pub fact_id: String,
    pub created_by: String,
    pub category: String,
    pub fact_key: String,
    pub fact_value: String,
    pub status: String,
    pub supersedes: Option<String>,
    pub superseded_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for FactRec {}

key! {
    /// (tenant, fact).
    pub(crate) struct FactKey<'a> { tenant_id: tenant, fact_id: id }
    /// (tenant, category, fact key, created at, fact): the list's order.
    pub(crate) struct FactOrderKey<'a> {
        tenant_id: tenant,
        category: str,
        fact_key: str,
        created_at: ts,
        fact_id: ext_id,
    }
    /// (tenant, fact key).
    pub(crate) struct ActiveKey<'a> { tenant_id: tenant, fact_key: str }
}

/// (tenant, fact) → memory fact.
pub(crate) const FACTS: Table<FactKey<'static>, FactRec> = Table::new("co_facts");
/// (tenant, category, fact key, created at, fact) → fact id: the list order.
pub(crate) const FACTS_BY_KEY: Table<FactOrderKey<'static>, String> = Table::new("co_facts_by_key");
/// (tenant, fact key) → id of the one active fact with that key.
pub(crate) const ACTIVE_FACTS: Table<ActiveKey<'static>, String> = Table::new("co_active_facts");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&FACTS, &FACTS_BY_KEY, &ACTIVE_FACTS];

/// The key of the fact `id` of the tenant (its record number when the id is sealed).
pub(crate) fn record_key<'a>(r: &impl Reader, tenant: &'a str, id: &'a str) -> FactKey<'a> {
    FactKey::new(tenant, Id::of(r.sealer(), id))
}

fn order_key<'a>(tenant: &'a str, f: &'a FactRec) -> FactOrderKey<'a> {
    FactOrderKey::new(tenant, &f.category, &f.fact_key, f.created_at, &f.fact_id)
}

/// A memory fact as the API shows it (`MemoryFactResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryFact {
    /// The fact (version) id.
    pub fact_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The admin who wrote this version.
    pub created_by_user_id: String,
    /// One of `icp`, `positioning`, `pricing`, `goals`, `constraints`, `brand`, `other`.
    pub category: String,
    /// 1–255 characters; unique among active facts of the tenant.
    pub fact_key: String,
    /// The value.
    pub fact_value: String,
    /// `active` or `superseded`.
    pub status: String,
    /// The version this one replaced, if any.
    pub supersedes_fact_id: Option<String>,
    /// The version that replaced this one, if any.
    pub superseded_by_fact_id: Option<String>,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
}

page_type!(
    /// `GET /v1/memory/facts`.
    MemoryFactPage,
    MemoryFact
);

pub(crate) fn view(tenant: &str, f: &FactRec) -> MemoryFact {
    MemoryFact {
        fact_id: f.fact_id.clone(),
        tenant_id: tenant.to_owned(),
        created_by_user_id: f.created_by.clone(),
        category: f.category.clone(),
        fact_key: f.fact_key.clone(),
        fact_value: f.fact_value.clone(),
        status: f.status.clone(),
        supersedes_fact_id: f.supersedes.clone(),
        superseded_by_fact_id: f.superseded_by.clone(),
        created_at: f.created_at.to_rfc3339(),
        updated_at: f.updated_at.to_rfc3339(),
    }
}

/// Input of [`Bespin::create_memory_fact`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewFact {
    /// One of the seven categories.
    pub category: String,
    /// 1–255 characters.
    pub fact_key: String,
    /// At least 1 character.
    pub fact_value: String,
}

impl NewFact {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let category = f.choice("category", Presence::Required, CATEGORIES, CATEGORY_PATTERN);
        let key = f.req_string("fact_key", Len::between(1, 255));
        let value = f.req_string("fact_value", Len::TEXT_REQUIRED);
        f.finish()?;
        Ok(NewFact {
            category: got(category.flatten())?,
            fact_key: got(key)?,
            fact_value: got(value)?,
        })
    }
}

/// Input of PATCH and supersede: the new value.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactValue {
    /// The value (at least 1 character); `None` in a PATCH leaves it unchanged.
    pub fact_value: Option<String>,
}

impl FactValue {
    /// Validates a PATCH body: `fact_value` optional, `null` is 422.
    pub fn patch_from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let value = super::patch_string(&mut f, "fact_value", Len::TEXT_REQUIRED, false);
        f.finish()?;
        Ok(FactValue {
            fact_value: match got(value)? {
                super::Change::Set(s) => Some(s),
                _ => None,
            },
        })
    }

    /// Validates a supersede body: `fact_value` required.
    pub fn supersede_from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let value = f.req_string("fact_value", Len::TEXT_REQUIRED);
        f.finish()?;
        Ok(FactValue {
            fact_value: Some(got(value)?),
        })
    }
}

/// Query of [`Bespin::list_memory_facts`].
#[derive(Debug, Clone, PartialEq)]
pub struct FactQuery {
    /// Exact category.
    pub category: Option<String>,
    /// Exact status; default `active`; `all` or empty: no filter.
    pub status: Option<String>,
    /// `limit` 1–100 (default 50), `offset` ≥ 0.
    pub paging: Paging,
}

impl Default for FactQuery {
    fn default() -> Self {
        FactQuery {
            category: None,
            status: Some("active".into()),
            paging: Paging::DEFAULT,
        }
    }
}

impl FactQuery {
    /// Validates query values given as a JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let given = f.has("status");
        let category = filter(&mut f, "category", true);
        let status = filter(&mut f, "status", true);
        let paging = Paging::read(&mut f, 100);
        f.finish()?;
        let status = got(status)?;
        Ok(FactQuery {
            category: got(category)?,
            status: if given { status } else { Some("active".into()) },
            paging: got(paging)?,
        })
    }
}

/// The fact `id` of the tenant (any status), or 404.
pub(crate) fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<FactRec> {
    get(r, tenant, id)?.ok_or_else(|| EntityType::MemoryFact.not_found())
}

/// The fact `id` of the tenant (any status), if it exists there.
pub(crate) fn get(r: &impl Reader, tenant: &str, id: &str) -> Result<Option<FactRec>> {
    r.get(&FACTS, &record_key(r, tenant, id))
}

pub(crate) fn active_key<'a>(tenant: &'a str, fact_key: &'a str) -> ActiveKey<'a> {
    ActiveKey::new(tenant, fact_key)
}

/// Inserts a new active version (its id just sealed) and its index rows.
fn insert(tx: &mut WriteTx, tenant: &str, f: &FactRec) -> Result<()> {
    search::insert(tx, &FACTS, &record_key(tx, tenant, &f.fact_id), tenant, f)?;
    tx.put(&FACTS_BY_KEY, &order_key(tenant, f), &f.fact_id)?;
    tx.put(&ACTIVE_FACTS, &active_key(tenant, &f.fact_key), &f.fact_id)
}

/// Stores a changed fact and brings the search index along.
fn save(tx: &mut WriteTx, tenant: &str, f: &FactRec) -> Result<()> {
    let key = record_key(tx, tenant, &f.fact_id);
    search::save(tx, &FACTS, &key, tenant, f)
}

fn conflict_key(key: &str) -> Error {
    Error::Conflict(format!(
        "Active fact with key '{key}' already exists. Use supersede to update."
    ))
}

/// Creates an active fact (admin). Order (40 §5.2): capability → admin (403) → quota (429) →
/// duplicate active key (409) → write.
pub fn create(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, req: NewFact) -> Result<MemoryFact> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let permit = check_quota(tx, ctx, caller, "memory_fact_created", TOOL)?;
    if tx.contains(&ACTIVE_FACTS, &active_key(t, &req.fact_key))? {
        return Err(conflict_key(&req.fact_key));
    }
    let f = FactRec {
        fact_id: new_record_id(tx)?,
        created_by: caller.user_id().to_owned(),
        category: req.category,
        fact_key: req.fact_key,
        fact_value: req.fact_value,
        status: "active".into(),
        supersedes: None,
        superseded_by: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    insert(tx, t, &f)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "memory_fact_created",
        EntityType::MemoryFact,
        &f.fact_id,
        f.created_at,
        format!("Memory fact created: {}", f.fact_key),
        Metadata::of(&[("category", Some(&f.category))]),
    )?;
    let v = view(t, &f);
    events::emit(tx, ctx, caller, catalog::MEMORY_CREATED, &f.fact_id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "memory.create",
        TOOL,
        (EntityType::MemoryFact, &f.fact_id),
    )?;
    Ok(v)
}

/// Edits the value of a fact in place, whatever its status (admin). Order (40 §5.5):
/// capability → admin (403) → 404 → no change (200 no-op) → quota → write.
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    fact_id: &str,
    req: FactValue,
) -> Result<MemoryFact> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let mut f = load(tx, t, fact_id)?;
    match req.fact_value {
        Some(v) if v != f.fact_value => f.fact_value = v,
        _ => return Ok(view(t, &f)),
    }
    let permit = check_quota(tx, ctx, caller, "memory_fact_updated", TOOL)?;
    f.updated_at = ctx.now;
    save(tx, t, &f)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "memory_fact_updated",
        EntityType::MemoryFact,
        &f.fact_id,
        f.created_at,
        format!("Memory fact updated: {}", f.fact_key),
        Metadata::empty(),
    )?;
    let v = view(t, &f);
    events::emit(tx, ctx, caller, catalog::MEMORY_UPDATED, &f.fact_id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "memory.update",
        TOOL,
        (EntityType::MemoryFact, &f.fact_id),
    )?;
    Ok(v)
}

/// Replaces an active fact by a new version (admin). Order (40 §5.6): capability → admin (403)
/// → 404 → not active (400) → quota → write. Returns the new version.
pub fn supersede(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    fact_id: &str,
    req: FactValue,
) -> Result<MemoryFact> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let mut old = load(tx, t, fact_id)?;
    if old.status != "active" {
        return Err(Error::BadRequest("Can only supersede active facts".into()));
    }
    let value = req
        .fact_value
        .ok_or_else(|| Error::Internal("supersede without a value".into()))?;
    let permit = check_quota(tx, ctx, caller, "memory_fact_superseded", TOOL)?;
    let new = FactRec {
        fact_id: new_record_id(tx)?,
        created_by: caller.user_id().to_owned(),
        category: old.category.clone(),
        fact_key: old.fact_key.clone(),
        fact_value: value,
        status: "active".into(),
        supersedes: Some(old.fact_id.clone()),
        superseded_by: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    old.status = "superseded".into();
    old.superseded_by = Some(new.fact_id.clone());
    old.updated_at = ctx.now;
    save(tx, t, &old)?;
    insert(tx, t, &new)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "memory_fact_superseded",
        EntityType::MemoryFact,
        &new.fact_id,
        new.created_at,
        format!("Memory fact superseded: {}", new.fact_key),
        Metadata::of(&[("supersedes_fact_id", Some(&old.fact_id))]),
    )?;
    let v = view(t, &new);
    events::emit(
        tx,
        ctx,
        caller,
        catalog::MEMORY_SUPERSEDED,
        &old.fact_id,
        &v,
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "memory.supersede",
        TOOL,
        (EntityType::MemoryFact, &new.fact_id),
    )?;
    Ok(v)
}

/// Lists facts by category, then key (then creation), through the key index.
pub(crate) fn list(r: &impl Reader, tenant: &str, q: &FactQuery) -> Result<MemoryFactPage> {
    let all = FACTS_BY_KEY.prefix().tenant(tenant);
    let prefix = match &q.category {
        Some(c) => all.str(c),
        None => all,
    };
    let (items, total) = page_index(
        r,
        &FACTS_BY_KEY,
        &prefix,
        None,
        None,
        Order::Asc,
        q.paging,
        q.status.is_some(),
        |r, id| {
            let f = load(r, tenant, id)?;
            let ok = q.status.as_ref().is_none_or(|s| *s == f.status);
            Ok(ok.then(|| view(tenant, &f)))
        },
    )?;
    Ok(MemoryFactPage::new(items, total, q.paging))
}

/// Deletes a memory fact with every version of its supersede chain (admin): forgetting a fact
/// forgets what it said before too. Each version leaves its table, the list index and search in
/// this transaction (and the active-key entry, for the active one), with its evidence links;
/// the timeline stays, with `memory_fact_deleted` on the fact named. Order: capability →
/// admin (403) → 404 → write.
pub fn delete(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, id: &str) -> Result<Deleted> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let named = load(tx, t, id)?;
    // The chain: back through `supersedes`, forward through `superseded_by` (each version is
    // read once; a chain is as long as its supersedes, each a metered write).
    let mut chain = vec![named.clone()];
    let mut back = named.supersedes.clone();
    while let Some(prev) = back {
        let f = load(tx, t, &prev)?;
        back = f.supersedes.clone();
        chain.push(f);
    }
    let mut fwd = named.superseded_by.clone();
    while let Some(next) = fwd {
        let f = load(tx, t, &next)?;
        fwd = f.superseded_by.clone();
        chain.push(f);
    }
    for f in &chain {
        let key = record_key(tx, t, &f.fact_id);
        search::remove(tx, &FACTS, &key, t)?;
        tx.delete(&FACTS_BY_KEY, &order_key(t, f))?;
        if f.status == "active" {
            tx.delete(&ACTIVE_FACTS, &active_key(t, &f.fact_key))?;
        }
        if f.fact_id != named.fact_id {
            super::evidence::delete_all_of(tx, t, EntityType::MemoryFact, &f.fact_id)?;
            deletion::tombstone(
                tx,
                ctx,
                caller,
                EntityType::MemoryFact,
                &f.fact_id,
                f.created_at,
            )?;
        }
    }
    deletion::finish(
        tx,
        ctx,
        caller,
        Deletion {
            et: EntityType::MemoryFact,
            id: &named.fact_id,
            created_at: named.created_at,
            title: &named.fact_key,
            audit_action: "memory.delete",
            event: catalog::MEMORY_DELETED,
        },
    )
}

impl Bespin {
    /// `POST /v1/memory/facts` (admin). Errors: entitlement, `Forbidden`, `Conflict`
    /// (active key exists), `QuotaExceeded`.
    pub fn create_memory_fact(&self, caller: &Principal, req: NewFact) -> Result<MemoryFact> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// `GET /v1/memory/facts`. Capability `memory`.
    pub fn list_memory_facts(&self, caller: &Principal, q: &FactQuery) -> Result<MemoryFactPage> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            list(r, caller.tenant_id(), q)
        })
    }

    /// `GET /v1/memory/facts/{id}` (any status). Errors: entitlement, `NotFound`.
    pub fn get_memory_fact(&self, caller: &Principal, fact_id: &str) -> Result<MemoryFact> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            Ok(view(
                caller.tenant_id(),
                &load(r, caller.tenant_id(), fact_id)?,
            ))
        })
    }

    /// `PATCH /v1/memory/facts/{id}` (admin). Errors: entitlement, `Forbidden`, `NotFound`,
    /// `Conflict` (superseded), `QuotaExceeded`.
    pub fn update_memory_fact(
        &self,
        caller: &Principal,
        fact_id: &str,
        req: FactValue,
    ) -> Result<MemoryFact> {
        self.write_as(caller, |tx, ctx| update(tx, ctx, caller, fact_id, req))
    }

    /// `POST /v1/memory/facts/{id}/supersede` (admin). Errors: entitlement, `Forbidden`,
    /// `NotFound`, `Conflict` (not active), `QuotaExceeded`.
    pub fn supersede_memory_fact(
        &self,
        caller: &Principal,
        fact_id: &str,
        req: FactValue,
    ) -> Result<MemoryFact> {
        self.write_as(caller, |tx, ctx| supersede(tx, ctx, caller, fact_id, req))
    }
}

/// Checks the facts: each under its own id and in the list's index (both ways); one active
/// fact per key, in the index of active keys (both ways); whole supersede chains (an active
/// fact has no successor, a superseded one has one that points back, a predecessor points
/// forward).
pub(crate) fn check(r: &impl Reader, c: &mut Checker, records: &mut Records) -> Result<()> {
    let tables = (&FACTS, &FACTS_BY_KEY, "memory fact");
    let rows = check_records(r, c, records, tables, |r, t, f| {
        (
            record_key(r, t, &f.fact_id).encode(),
            order_key(t, f).encode(),
        )
    })?;
    let facts: std::collections::HashMap<(&str, &str), &FactRec> = rows
        .iter()
        .map(|x| ((x.tenant.as_str(), x.value.fact_id.as_str()), &x.value))
        .collect();
    let table = FACTS.name();
    let mut active = Expected::new();
    for x in &rows {
        let (t, f, k) = (x.tenant.as_str(), &x.value, &x.bytes);
        let linked = |id: &str, back: fn(&FactRec) -> Option<&str>| {
            facts
                .get(&(t, id))
                .map(|n| back(n) == Some(f.fact_id.as_str()))
        };
        match f.status.as_str() {
            "active" => {
                if active.add(&active_key(t, &f.fact_key), &f.fact_id) {
                    let d = format!("more than one active fact with key {}", f.fact_key);
                    c.violation(table, k, d);
                }
                if f.superseded_by.is_some() {
                    c.violation(table, k, "active fact has a successor");
                }
            }
            "superseded" => match &f.superseded_by {
                Some(next) => match linked(next, |n| n.supersedes.as_deref()) {
                    Some(true) => c.ok(),
                    Some(false) => c.violation(table, k, "successor does not point back"),
                    None => c.violation(table, k, format!("successor {next} missing")),
                },
                None => c.violation(table, k, "superseded fact without a successor"),
            },
            other => c.violation(table, k, format!("unknown status {other}")),
        }
        if let Some(prev) = &f.supersedes {
            match linked(prev, |p| p.superseded_by.as_deref()) {
                Some(true) => c.ok(),
                _ => c.violation(
                    table,
                    k,
                    format!("predecessor {prev} missing or not linked"),
                ),
            }
        }
    }
    c.index(r, &ACTIVE_FACTS, active, "active memory fact")
}

impl search::Searchable for FactRec {
    fn search_doc(&self) -> search::SearchDoc<'_> {
        search::SearchDoc {
            entity_type: EntityType::MemoryFact,
            id: &self.fact_id,
            title: &self.fact_key,
            bodies: vec![&self.fact_value],
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    fn indexed(&self) -> bool {
        self.status == "active"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::testing::{caught, populated};
    use crate::store::Flow;

    #[test]
    fn two_active_facts_and_a_broken_supersede_chain_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let mut superseded = None;
            tx.scan(&FACTS, &FACTS.prefix(), Order::Asc, |k, f: FactRec| {
                if f.status == "superseded" {
                    superseded = Some((k.to_vec(), f));
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            })?;
            let (k, mut f) = superseded.unwrap();
            f.status = "active".into();
            f.superseded_by = None;
            tx.put_stored(&FACTS, &k, &f)
        });
        caught(&db, "co_facts", "more than one active fact");
        caught(&db, "co_facts", "not linked");
    }
}
