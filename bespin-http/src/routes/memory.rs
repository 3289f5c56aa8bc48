//! Governed memory: `POST/GET /v1/memory/facts`, `GET/PATCH /v1/memory/facts/{fact_id}`,
//! `POST /v1/memory/facts/{fact_id}/supersede`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::coreos::deletion::Deleted;
use bespin_core::coreos::memory::{
    self, FactQuery, FactValue, MemoryFact, MemoryFactPage, NewFact,
};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("memory", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/memory/facts" => create as create_memory_fact, d("Create an active memory fact (admin)").body(schema::<NewFact>).ok(201, schema::<MemoryFact>)).paced(),
        route!(GET "/v1/memory/facts" => list as list_memory_facts, d("The tenant's memory facts by category, then key")
            .query(&[("category", "exact category"), ("status", "active (default) | superseded; all or empty: any"),
                ("limit", "1..100, default 50"), ("offset", "default 0")])
            .ok(200, schema::<MemoryFactPage>)),
        route!(DELETE "/v1/memory/facts/{fact_id}" => delete as delete_memory_fact, d("Delete a memory fact with every version of its supersede chain (admin)").ok(200, schema::<Deleted>)),
        route!(GET "/v1/memory/facts/{fact_id}" => get as get_memory_fact, d("A memory fact, whatever its status").ok(200, schema::<MemoryFact>)),
        route!(PATCH "/v1/memory/facts/{fact_id}" => update as update_memory_fact, d("Correct an active fact's value in place (admin)")
            .body(schema::<FactValue>).ok(200, schema::<MemoryFact>)).paced(),
        route!(POST "/v1/memory/facts/{fact_id}/supersede" => supersede as supersede_memory_fact, d("Replace an active fact with a new version (admin); answers the new version")
            .body(schema::<FactValue>).ok(200, schema::<MemoryFact>)).paced(),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewFact::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, memory::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = FactQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_memory_facts(&caller, &q)?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.get_memory_fact(&caller, r.param("fact_id"))?,
    ))
}

fn update(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = FactValue::patch_from_json(&body)?;
    let fact_id = r.param("fact_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, fact_id, req, memory::update),
        Reply::ok,
    ))
}

fn supersede(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = FactValue::supersede_from_json(&body)?;
    let fact_id = r.param("fact_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, fact_id, req, memory::supersede),
        Reply::ok,
    ))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("fact_id").to_owned();
    Ok(Reply::write(Op::on(caller, id, memory::delete), Reply::ok))
}
