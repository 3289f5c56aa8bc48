//! Users over their lifetime: the paginated list, one user, and the admin's changes of role
//! and deactivation.
//!
//! A deactivated user keeps every record (and stays listed), but their requests get 401 — by
//! the tenant key with their `X-User-ID` as by their own keys, whose revocation is written in
//! the same transaction as the deactivation. The last active admin of a tenant can be neither
//! demoted nor deactivated (409), counted inside the transaction of the change, so two
//! concurrent changes cannot both pass.

use super::{USERS, USERS_BY_CREATION, UserKey, UserRec, UserSeqKey, keys, user_key};
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Flow, Order, Reader, Table, WriteTx};
use crate::time::Timestamp;
use crate::validate::{Fields, Presence, got};
use crate::{Bespin, Ctx};
use serde::Serialize;
use serde_json::Value;

/// (tenant, user) → when the user was deactivated. Absent: active. A table of its own (rather
/// than a field of the user record) keeps the user record's layout unchanged.
pub(crate) const USER_DEACTIVATED: Table<UserKey<'static>, Timestamp> =
    Table::new("user_deactivated");

/// Whether `user` of `tenant` is deactivated.
pub(crate) fn is_deactivated(r: &impl Reader, tenant: &str, user: &str) -> Result<bool> {
    r.contains(&USER_DEACTIVATED, &user_key(tenant, user))
}

/// A user as the user endpoints show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// The user id.
    pub user_id: String,
    /// The user's tenant.
    pub tenant_id: String,
    /// Normalised e-mail.
    pub email: String,
    /// `admin` or `member`.
    pub role: Role,
    /// Creation instant.
    pub created_at: String,
    /// Whether the user is deactivated.
    pub deactivated: bool,
    /// When the user was deactivated.
    pub deactivated_at: Option<String>,
}

/// A page of users in creation order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPage {
    /// Up to `limit` users.
    pub items: Vec<UserInfo>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Query of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserQuery {
    /// 1–200, default 50.
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub after: Option<u64>,
}

impl UserQuery {
    /// From the query parameters `limit` (1–200, default 50) and `cursor` (a `next_cursor`).
    pub fn new(limit: Option<i64>, cursor: Option<i64>) -> Result<Self> {
        let bad = |name: &str, v: i64, why: &str| {
            Error::Validation(vec![crate::error::FieldError::value_error(
                vec![
                    crate::error::LocPart::Field("query".into()),
                    crate::error::LocPart::Field(name.into()),
                ],
                Value::from(v),
                why,
            )])
        };
        let limit = match limit {
            None => 50,
            Some(n) if (1..=200).contains(&n) => n as usize,
            Some(n) => return Err(bad("limit", n, "limit must be from 1 to 200")),
        };
        let after = match cursor {
            None => None,
            Some(n) if n >= 0 => Some(n as u64),
            Some(n) => return Err(bad("cursor", n, "not a cursor")),
        };
        Ok(UserQuery { limit, after })
    }
}

fn info(r: &impl Reader, tenant: &str, user_id: &str, u: UserRec) -> Result<UserInfo> {
    let off = r.get(&USER_DEACTIVATED, &user_key(tenant, user_id))?;
    Ok(UserInfo {
        user_id: user_id.to_owned(),
        tenant_id: tenant.to_owned(),
        email: u.email,
        role: u.role,
        created_at: u.created_at.to_rfc3339(),
        deactivated: off.is_some(),
        deactivated_at: off.map(Timestamp::to_rfc3339),
    })
}

/// The tenant's users in creation order, a page at a time (admin).
pub(crate) fn list(r: &impl Reader, caller: &Principal, q: UserQuery) -> Result<UserPage> {
    caller.require_admin_to("list users")?;
    let t = caller.tenant_id();
    let start = q.after.map(|n| {
        USERS_BY_CREATION
            .prefix()
            .tenant(t)
            .u64(n.saturating_add(1))
    });
    let mut ids: Vec<(u64, String)> = Vec::new();
    r.scan_range(
        &USERS_BY_CREATION,
        &USERS_BY_CREATION.prefix().tenant(t),
        start.as_ref(),
        None,
        Order::Asc,
        &mut |k, id: String| {
            let Some(k) = UserSeqKey::decode(k) else {
                return Ok(Flow::Continue);
            };
            ids.push((k.seq, id));
            Ok(if ids.len() > q.limit {
                Flow::Stop
            } else {
                Flow::Continue
            })
        },
    )?;
    let more = ids.len() > q.limit;
    ids.truncate(q.limit);
    let next_cursor = more
        .then(|| ids.last().map(|(n, _)| n.to_string()))
        .flatten();
    let mut items = Vec::with_capacity(ids.len());
    for (_, id) in ids {
        if let Some(u) = r.get(&USERS, &user_key(t, &id))? {
            items.push(info(r, t, &id, u)?);
        }
    }
    Ok(UserPage { items, next_cursor })
}

/// One user of the tenant (admin, or the user themself; 404 for another tenant's).
pub(crate) fn get(r: &impl Reader, caller: &Principal, user_id: &str) -> Result<UserInfo> {
    if user_id != caller.user_id() {
        caller.require_admin_to("read other users")?;
    }
    let t = caller.tenant_id();
    let u = r
        .get(&USERS, &user_key(t, user_id))?
        .ok_or_else(|| Error::NotFound("User not found".into()))?;
    info(r, t, user_id, u)
}

/// Input of [`update`]: the fields to change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    /// New role.
    pub role: Option<Role>,
    /// `true` deactivates (and revokes the user's keys), `false` reactivates.
    pub deactivated: Option<bool>,
}

impl UserPatch {
    /// Validates a request body (`role`, `deactivated`; at least one).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let role = f.choice(
            "role",
            Presence::Optional,
            &["admin", "member"],
            "^(admin|member)$",
        );
        let deactivated = f.boolean("deactivated", Presence::Optional);
        f.finish()?;
        let role = got(role)?.map(|r| {
            if r == "admin" {
                Role::Admin
            } else {
                Role::Member
            }
        });
        let deactivated = got(deactivated)?;
        if role.is_none() && deactivated.is_none() {
            return Err(Error::BadRequest(
                "Give role or deactivated (or both)".into(),
            ));
        }
        Ok(UserPatch { role, deactivated })
    }
}

/// Changes a user's role or deactivation (admin, not through a scoped key). Order: admin
/// (403) → lookup (404) → the last active admin rule (409) → write. Deactivating revokes the
/// user's keys in the same transaction; reactivating does not bring them back.
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    user_id: &str,
    patch: UserPatch,
) -> Result<UserInfo> {
    keys::require_key_admin(caller, "manage users")?;
    let t = caller.tenant_id();
    let k = user_key(t, user_id);
    let mut u = tx
        .get(&USERS, &k)?
        .ok_or_else(|| Error::NotFound("User not found".into()))?;
    let was_active_admin = u.role == Role::Admin && !is_deactivated(tx, t, user_id)?;
    let stays_admin = patch.role.unwrap_or(u.role) == Role::Admin;
    let stays_active = !patch.deactivated.unwrap_or(false)
        && (patch.deactivated == Some(false) || !is_deactivated(tx, t, user_id)?);
    if was_active_admin && !(stays_admin && stays_active) && active_admins(tx, t)? <= 1 {
        return Err(Error::Conflict(
            "The last active admin of a tenant cannot be demoted or deactivated".into(),
        ));
    }
    if let Some(role) = patch.role
        && role != u.role
    {
        u.role = role;
        tx.put(&USERS, &k, &u)?;
    }
    match patch.deactivated {
        Some(true) if !is_deactivated(tx, t, user_id)? => {
            tx.put(&USER_DEACTIVATED, &k, &ctx.now)?;
            keys::revoke_all_of(tx, ctx, t, user_id)?;
        }
        Some(false) => {
            tx.delete(&USER_DEACTIVATED, &k)?;
        }
        _ => {}
    }
    tx.forget_admissions();
    let shown = info(tx, t, user_id, u)?;
    events::emit(tx, ctx, caller, catalog::USER_UPDATED, user_id, &shown)?;
    crate::audit::record(tx, ctx, caller, "users.update", ("user", user_id))?;
    Ok(shown)
}

/// The tenant's active admins (a scan of its users: bounded by the tenant's user count).
fn active_admins(r: &impl Reader, tenant: &str) -> Result<usize> {
    let mut admins = Vec::new();
    r.scan(
        &USERS,
        &USERS.prefix().tenant(tenant),
        Order::Asc,
        |k, u: UserRec| {
            if u.role == Role::Admin
                && let Some(k) = UserKey::decode(k)
            {
                admins.push(k.user_id.into_owned());
            }
            Ok(Flow::Continue)
        },
    )?;
    let mut n = 0;
    for a in admins {
        n += usize::from(!is_deactivated(r, tenant, &a)?);
    }
    Ok(n)
}

impl Bespin {
    /// The tenant's users, a page at a time (`list`).
    pub fn list_users(&self, caller: &Principal, q: UserQuery) -> Result<UserPage> {
        self.read(|r, _| list(r, caller, q))
    }

    /// One user (`get`).
    pub fn get_user(&self, caller: &Principal, user_id: &str) -> Result<UserInfo> {
        self.read(|r, _| get(r, caller, user_id))
    }

    /// Changes a user's role or deactivation ([`update`]).
    pub fn update_user(
        &self,
        caller: &Principal,
        user_id: &str,
        patch: UserPatch,
    ) -> Result<UserInfo> {
        self.write_as(caller, |tx, ctx| update(tx, ctx, caller, user_id, patch))
    }
}
