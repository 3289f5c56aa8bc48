//! `POST/GET /v1/api-keys`, `DELETE /v1/api-keys/{key_id}`, `POST /v1/api-keys/tenant:rotate`,
//! `GET /v1/tenant/export`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::tenancy::export;
use bespin_core::tenancy::keys::{
    self, ApiKey, ApiKeyCreated, NewApiKey, Rotation, TenantKeyRotated,
};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("keys", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/api-keys" => create as create_api_key, d("Make an API key bound to one user, optionally scoped and expiring (admin); the clear key is in this answer only")
            .body(schema::<NewApiKey>).ok(201, schema::<ApiKeyCreated>)),
        route!(GET "/v1/api-keys" => list as list_api_keys, d("The tenant's user-bound keys (admin: all; member: their own), never the secret")
            .ok(200, schema::<Vec<ApiKey>>)),
        route!(DELETE "/v1/api-keys/{key_id}" => revoke as revoke_api_key, d("Revoke a key (admin, or its own user): nothing authenticated by it commits after this answer")
            .ok(200, schema::<ApiKey>)),
        route!(POST "/v1/api-keys/tenant:rotate" => rotate as rotate_tenant_key, d("Rotate the tenant key (admin); the previous one works for grace_seconds more (0–7 days)")
            .body(schema::<Rotation>).ok(200, schema::<TenantKeyRotated>)),
        route!(GET "/v1/tenant/export" => export as export_tenant, Doc::new("tenancy", "Everything the tenant owns as JSON Lines ({table, row} per line), streamed from one snapshot, secrets and key digests left out (admin)", Auth::Tenant)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewApiKey::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, keys::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.list_api_keys(&caller)?))
}

fn revoke(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("key_id").to_owned();
    Ok(Reply::write(Op::on(caller, id, keys::revoke), Reply::ok))
}

fn rotate(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = if r.body.is_empty() {
        serde_json::json!({})
    } else {
        r.json()?
    };
    let caller = r.principal(s)?;
    let req = Rotation::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, keys::rotate_tenant_key),
        Reply::ok,
    ))
}

/// Lines in flight between the exporting thread and the connection: the export's memory is
/// at most this many chunks of `export::CHUNK_BYTES`.
const EXPORT_CHUNKS: usize = 4;

fn export(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    export::may_export(&caller)?;
    let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_CHUNKS);
    let db = s.bespin.clone();
    // The export reads one snapshot on a blocking thread, waiting for room in the channel:
    // a slow client slows it, never grows it.
    tokio::task::spawn_blocking(move || {
        let sent = db.export_tenant(&caller, |chunk| {
            tx.blocking_send(bytes::Bytes::from(chunk))
                .map_err(|_| bespin_core::Error::Unavailable("the client left".into()))
        });
        if let Err(e) = sent {
            tracing::warn!("tenant export ended early: {e}");
        }
    });
    Ok(Reply::streaming("application/x-ndjson", rx))
}
