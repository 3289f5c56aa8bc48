//! `GET /v1/audit`, `/v1/audit/stats`, `/v1/audit/export`, `/v1/audit/proof`,
//! `/v1/audit/public-key`: the tenant's audit log for its admins.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::audit::checkpoint::{Proof, ProofQuery, PublicKey};
use bespin_core::audit::{AuditExport, AuditPage, AuditQuery, AuditStats, ExportQuery, StatsQuery};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Pages of an export buffered between the lane that renders them and the connection: with
/// the page being rendered, what one export holds in memory (about 500 rows a page).
const EXPORT_BUFFER: usize = 2;

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
        route!(GET "/v1/audit/export" => export as audit_export, d("The tenant's audit rows of a period as JSON Lines (application/x-ndjson), oldest first, streamed a page at a time from one snapshot; each line holds what a verifier needs to rehash its row, and X-Audit-Rows says how many lines a complete export has (tenant admin; at most 1,000,000 rows, 2 exports at once)")
            .query(&[("since", "RFC 3339 instant or date: rows at or after it"),
                ("until", "RFC 3339 instant or date: rows before it")])),
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

fn export(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = ExportQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    let export = s
        .bespin
        .audit_export(&caller, &q)
        .map_err(ApiError::query)?;
    let rows = export.remaining();
    let (tx, rx) = mpsc::channel(EXPORT_BUFFER);
    tokio::spawn(feed(
        Arc::clone(&s.lane),
        caller.tenant_id().to_owned(),
        export,
        tx,
        s.config.stream_slow_consumer,
    ));
    Ok(Reply::streaming("application/x-ndjson", rx).with_header("x-audit-rows", rows.to_string()))
}

/// An export that is dropped off the runtime's workers: on PostgreSQL its snapshot is a
/// transaction of the blocking client, whose end blocks (and must not run on a worker).
struct Held(Option<AuditExport>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(x) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(x))),
                // A lane thread: blocking is its job.
                Err(_) => drop(x),
            }
        }
    }
}

/// Renders `export` a page at a time in the background lane, in its tenant's turn, and sends
/// each page; stops when it is done, the client leaves or reads too slowly (the connection's
/// body then ends early: fewer lines than `X-Audit-Rows`), the lane is busy, or a page fails
/// (logged).
async fn feed(
    lane: Arc<crate::lane::Lane>,
    tenant_id: String,
    export: AuditExport,
    tx: mpsc::Sender<Bytes>,
    patience: std::time::Duration,
) {
    let mut held = Held(Some(export));
    loop {
        let page = lane.run(tenant_id.clone(), move || {
            let mut out = Vec::new();
            let more = match held.0.as_mut().map(|x| x.next_page(&mut out)) {
                Some(Ok(true)) => true,
                Some(Err(e)) => {
                    tracing::warn!("audit export stopped: {e}");
                    false
                }
                _ => false,
            };
            (held, out, more)
        });
        let Ok((back, out, more)) = page.await else {
            return;
        };
        held = back;
        if !more {
            return;
        }
        if !crate::routes::events::send(&tx, Bytes::from(out), patience).await {
            return;
        }
    }
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
