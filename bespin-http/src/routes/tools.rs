//! `GET /v1/tools`, `POST /v1/tools/invoke`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, list_of, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::tools::{self, Invocation, InvokeRequest, ToolInfo};

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/v1/tools" => list as list_tools, Doc::new("tools", "The registered tools and their input schemas", Auth::Tenant).ok(200, list_of::<ToolInfo>)),
        route!(POST "/v1/tools/invoke" => invoke as invoke_tool, Doc::new("tools", "Invoke a tool (idempotent; admin)", Auth::TenantIdempotent)
            .body(schema::<InvokeRequest>).ok(200, schema::<Invocation>)),
    ]
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.tools(&caller)?))
}

fn invoke(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let key = r.idempotency_key()?;
    let caller = r.principal(s)?;
    let req = InvokeRequest::from_json(&body)?;
    Ok(Reply::write(
        tools::invoke_op(caller, key, req),
        Reply::stored,
    ))
}
