//! `POST /v1/tenants`, `POST /v1/users`, `GET /v1/me`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::tenancy::{self, Me, NewTenant, NewUser, TenantCreated, User};

pub fn routes() -> Vec<Route> {
    vec![
        route!(POST "/v1/tenants" => create_tenant as create_tenant, Doc::new("tenancy", "Create a tenant, its admin, limits and starter subscription", Auth::Open)
            .body(schema::<NewTenant>).ok(201, schema::<TenantCreated>)),
        route!(POST "/v1/users" => create_user as create_user, Doc::new("tenancy", "Create a user in the caller's tenant (admin)", Auth::Tenant)
            .body(schema::<NewUser>).ok(201, schema::<User>)),
        route!(GET "/v1/me" => me as get_me, Doc::new("tenancy", "The caller", Auth::Tenant).ok(200, schema::<Me>)),
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
