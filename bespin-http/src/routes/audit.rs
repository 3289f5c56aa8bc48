//! `GET /v1/audit`, `GET /v1/audit/stats`: the tenant's audit log for its admins.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::audit::checkpoint::{Proof, ProofQuery, PublicKey};
use bespin_core::audit::{AuditPage, AuditQuery, AuditStats, StatsQuery};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("audit", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/audit" => list as list_audit, d("The tenant's audit rows, newest first (tenant admin)")
            .query(&[("actor_user_id", "exact acting user"), ("action", "exact action"),
                ("target_type", "exact target type"), ("target_id", "exact target id"),
                ("outcome", "success, denied or quota"),
                ("since", "RFC 3339 instant or date: rows at or after it"),
                ("until", "RFC 3339 instant or date: rows before it"),
                ("cursor", "a page's next_cursor: only older rows (stable while rows arrive)"),
                ("limit", "1..200, default 50")])
            .ok(200, schema::<AuditPage>)),
        route!(GET "/v1/audit/stats" => stats as audit_stats, d("Counts of the tenant's audit rows per group over a period (tenant admin)")
            .query(&[("group_by", "action, actor, outcome or day (required)"),
                ("since", "RFC 3339 instant or date"), ("until", "RFC 3339 instant or date (exclusive)")])
            .ok(200, schema::<AuditStats>)),
        route!(GET "/v1/audit/proof" => proof as audit_proof, d("What a client needs to verify audit rows from..=to offline: their hashed fields, the hash before them, the first signed checkpoint covering them (tenant admin)")
            .query(&[("from", "first chain position"), ("to", "last chain position (at most from + 1999)")])
            .ok(200, schema::<Proof>)),
        route!(GET "/v1/audit/public-key" => public_key as audit_public_key, d("The Ed25519 key that signs audit checkpoints, as a note verifier key")
            .ok(200, schema::<PublicKey>)),
    ]
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = AuditQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.audit_page(&caller, &q)?))
}

fn stats(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = StatsQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    let stats = s.bespin.audit_stats(&caller, &q).map_err(ApiError::query)?;
    Ok(Reply::ok(&stats))
}

fn proof(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = ProofQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    let proof = s.bespin.audit_proof(&caller, q).map_err(ApiError::query)?;
    Ok(Reply::ok(&proof))
}

fn public_key(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    r.principal(s)?;
    Ok(Reply::ok(&s.bespin.audit_public_key()?))
}
