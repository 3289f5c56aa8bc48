//! `POST /v1/cofounder/chat`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::chat::{self, ChatReply, ChatRequest};

pub fn routes() -> Vec<Route> {
    vec![
        route!(POST "/v1/cofounder/chat" => chat as chat, Doc::new("chat", "Send a message to the cofounder and get its reply", Auth::Tenant)
        .body(schema::<ChatRequest>).ok(200, schema::<ChatReply>)),
    ]
}

fn chat(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = ChatRequest::from_json(&body)?;
    Ok(Reply::write(Op::with(caller, req, chat::chat), Reply::ok))
}
