//! `POST /v1/tenants`, `POST /v1/users`, `GET /v1/me`, `GET /v1/users`,
//! `GET/PATCH /v1/users/{user_id}`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::extract::query_ints;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::tenancy::users::{self, UserInfo, UserPage, UserPatch, UserQuery};
use bespin_core::tenancy::{self, Me, NewTenant, NewUser, TenantCreated, User};

pub fn routes() -> Vec<Route> {
    vec![
        route!(POST "/v1/tenants" => create_tenant as create_tenant, Doc::new("tenancy", "Create a tenant, its admin, limits and starter subscription", Auth::Open)
            .body(schema::<NewTenant>).ok(201, schema::<TenantCreated>)),
        route!(POST "/v1/users" => create_user as create_user, Doc::new("tenancy", "Create a user in the caller's tenant (admin)", Auth::Tenant)
            .body(schema::<NewUser>).ok(201, schema::<User>)),
        route!(GET "/v1/me" => me as get_me, Doc::new("tenancy", "The caller", Auth::Tenant).ok(200, schema::<Me>)),
        route!(GET "/v1/users" => list_users as list_users, Doc::new("tenancy", "The tenant's users in creation order, a page at a time (admin)", Auth::Tenant)
            .query(&[("limit", "1–200, default 50"), ("cursor", "next_cursor of the previous page")]).ok(200, schema::<UserPage>)),
        route!(GET "/v1/users/{user_id}" => get_user as get_user, Doc::new("tenancy", "One user (admin, or the user themself)", Auth::Tenant)
            .ok(200, schema::<UserInfo>)),
        route!(PATCH "/v1/users/{user_id}" => update_user as update_user, Doc::new("tenancy", "Change a user's role or deactivation (admin; 409 for the last active admin)", Auth::Tenant)
            .body(schema::<UserPatch>).ok(200, schema::<UserInfo>)),
    ]
}

fn create_tenant(_: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let req = NewTenant::from_json(&r.json()?)?;
    Ok(Reply::write(
        Op::admin(req, tenancy::create_tenant),
        Reply::created,
    ))
}

fn create_user(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewUser::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, tenancy::create_user),
        Reply::created,
    ))
}

fn me(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.me(&caller)))
}

fn list_users(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = query_ints(&r.query_map(), &["limit", "cursor"])?;
    let q = UserQuery::new(q[0], q[1])?;
    Ok(Reply::ok(&s.bespin.list_users(&caller, q)?))
}

fn get_user(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.get_user(&caller, r.param("user_id"))?))
}

fn update_user(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let patch = UserPatch::from_json(&body)?;
    let id = r.param("user_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, id, patch, users::update),
        Reply::ok,
    ))
}
