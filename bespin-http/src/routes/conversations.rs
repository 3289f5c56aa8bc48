//! `POST/GET /v1/conversations`, `GET /v1/conversations/{conversation_id}`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Req, query_ints};
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::conversations::{
    self, Conversation, ConversationDetail, ConversationList, NewConversation,
};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("chat", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/conversations" => create as create_conversation, d("Start a conversation").body(schema::<NewConversation>).ok(201, schema::<Conversation>)),
        route!(GET "/v1/conversations" => list as list_conversations, d("The caller's conversations, newest first")
            .query(&[("limit", "1..200, default 50"), ("offset", "default 0")]).ok(200, schema::<ConversationList>)),
        route!(DELETE "/v1/conversations/{conversation_id}" => delete as delete_conversation, d("Delete one of the caller's conversations with its messages").ok(200, schema::<bespin_core::coreos::deletion::Deleted>)),
        route!(GET "/v1/conversations/{conversation_id}" => get as get_conversation, d("One conversation with its messages").ok(200, schema::<ConversationDetail>)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewConversation::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, conversations::start),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = query_ints(&r.query_map(), &["limit", "offset"])?;
    Ok(Reply::ok(&s.bespin.conversations(&caller, q[0], q[1])?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.conversation(&caller, r.param("conversation_id"))?,
    ))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("conversation_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, bespin_core::conversations::delete),
        Reply::ok,
    ))
}
