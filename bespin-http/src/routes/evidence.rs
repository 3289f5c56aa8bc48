//! Evidence links: `POST /v1/evidence`, `GET /v1/evidence`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::coreos::deletion::Deleted;
use bespin_core::coreos::evidence::{self, EvidenceLink, EvidenceList, EvidenceQuery, NewEvidence};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("evidence", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/evidence" => create as create_evidence, d("Link evidence to an action, task, decision or memory fact")
            .body(schema::<NewEvidence>).ok(201, schema::<EvidenceLink>)),
        route!(DELETE "/v1/records/{entity_type}/{entity_id}/evidence/{evidence_id}" => delete as delete_evidence, d("Delete an evidence link of a record (an admin, or the link's creator)")
            .ok(200, schema::<Deleted>)),
        route!(GET "/v1/evidence" => list as list_evidence, d("A record's evidence links, newest first")
            .query(&[("entity_type", "action | task | decision | memory_fact (required)"), ("entity_id", "the record id (required)")])
            .ok(200, schema::<EvidenceList>)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewEvidence::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, evidence::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = EvidenceQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_evidence(&caller, &q)?))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let target = serde_json::json!({
        "entity_type": r.param("entity_type"),
        "entity_id": r.param("entity_id"),
    });
    let target = EvidenceQuery::from_json(&target).map_err(ApiError::path)?;
    let id = r.param("evidence_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, id, target, evidence::delete),
        Reply::ok,
    ))
}
