//! Tenants and users; their keys over their lifetime ([`keys`]) and users' role and
//! deactivation ([`users`]).
//!
//! Creating a tenant creates, in one transaction, the tenant (with the digest of its one-time
//! API key), its bootstrap admin, its default daily limits and a `starter` subscription.
//! Users belong to exactly one tenant; a global index from user id to tenant lets
//! authentication tell "no such user" from "user of another tenant".

use crate::auth::{Principal, Role};
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, billing, ids, limits};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

pub mod erasure;
pub mod export;
pub mod keys;
pub mod users;

/// A stored tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TenantRec {
    pub name: String,
    pub region: String,
    pub api_key_digest: [u8; 32],
    pub created_at: Timestamp,
}
impl Record for TenantRec {}

/// A stored user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRec {
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
}
impl Record for UserRec {}

key! {
    /// (tenant).
    pub(crate) struct TenantKey<'a> { tenant_id: tenant }
    /// (tenant, user).
    pub(crate) struct UserKey<'a> { tenant_id: tenant, user_id: ext_id }
    /// Global: (user).
    pub(crate) struct UserTenantKey<'a> { user_id: ext_id }
    /// (tenant, creation sequence).
    pub(crate) struct UserSeqKey<'a> { tenant_id: tenant, seq: u64 }
}

/// (tenant) → tenant.
pub(crate) const TENANTS: Table<TenantKey<'static>, TenantRec> = Table::new("tenants");
/// (tenant, user) → user; its global (user) → tenant entry goes with it.
pub(crate) const USERS: Table<UserKey<'static>, UserRec> =
    Table::new("users").with_companions(forget_user_tenant);
/// Global: (user) → tenant id. Lets authentication tell a missing user from another tenant's.
pub(crate) const USER_TENANT: Table<UserTenantKey<'static>, String> = Table::new("user_tenant");
/// (tenant, creation sequence) → user id: users in creation order.
pub(crate) const USERS_BY_CREATION: Table<UserSeqKey<'static>, String> =
    Table::new("users_by_creation");

/// Deletes the global user → tenant entry of the user row keyed `k` (a tenant's erasure).
fn forget_user_tenant(tx: &mut WriteTx, k: &[u8], _: &[u8]) -> Result<()> {
    match UserKey::decode(k) {
        Some(u) => tx
            .delete(&USER_TENANT, &UserTenantKey::new(&u.user_id))
            .map(drop),
        None => Ok(()),
    }
}

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[
    &TENANTS,
    &USERS,
    &USER_TENANT,
    &USERS_BY_CREATION,
    &keys::API_KEYS,
    &keys::API_KEY_DIGESTS,
    &keys::TENANT_KEY_GRACE,
    &users::USER_DEACTIVATED,
    &erasure::TOMBSTONES,
];

/// Input of [`Bespin::create_tenant`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTenant {
    /// Display name, 1–255 characters.
    pub name: String,
    /// Free-text region, 1–50 characters.
    pub region: String,
    /// The bootstrap admin's e-mail (normalised).
    pub admin_email: String,
}

impl NewTenant {
    /// Validates a request body (`name`, `region`, `admin_email`).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let name = f.req_string("name", Len::between(1, 255));
        let region = f.req_string("region", Len::between(1, 50));
        let admin_email = f.email("admin_email");
        f.finish()?;
        Ok(NewTenant {
            name: got(name)?,
            region: got(region)?,
            admin_email: got(admin_email)?,
        })
    }
}

/// Input of [`Bespin::create_user`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    /// Must equal the caller's tenant (the contract keeps this redundant field).
    pub tenant_id: String,
    /// The user's e-mail (normalised).
    pub email: String,
    /// `admin` or `member`.
    pub role: Role,
}

impl NewUser {
    /// Validates a request body (`tenant_id` of 36 characters, `email`, `role`).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let tenant_id = f.req_string("tenant_id", Len::between(36, 36));
        let email = f.email("email");
        let role = f.choice(
            "role",
            Presence::Required,
            &["admin", "member"],
            "^(admin|member)$",
        );
        f.finish()?;
        let role = if got(role.flatten())? == "admin" {
            Role::Admin
        } else {
            Role::Member
        };
        Ok(NewUser {
            tenant_id: got(tenant_id)?,
            email: got(email)?,
            role,
        })
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The user id.
    pub user_id: String,
    /// The user's tenant.
    pub tenant_id: String,
    /// Normalised e-mail.
    pub email: String,
    /// `admin` or `member`.
    pub role: Role,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
}

/// The bootstrap admin in a [`TenantCreated`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminSummary {
    /// The admin's user id.
    pub user_id: String,
    /// Normalised e-mail.
    pub email: String,
    /// Always `admin`.
    pub role: Role,
}

/// The answer to tenant creation. `api_key` is shown here and never again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantCreated {
    /// The new tenant id.
    pub tenant_id: String,
    /// As sent.
    pub name: String,
    /// As sent.
    pub region: String,
    /// The tenant's API key (`bsk_…`); only its digest is stored.
    pub api_key: String,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// The bootstrap admin.
    pub admin: AdminSummary,
}

/// The caller as `GET /v1/me` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The caller.
    pub user_id: String,
    /// The caller's tenant.
    pub tenant_id: String,
    /// The caller's e-mail.
    pub email: String,
    /// The caller's role.
    pub role: Role,
}

pub(crate) fn tenant_key(tenant_id: &str) -> TenantKey<'_> {
    TenantKey::new(tenant_id)
}

pub(crate) fn user_key<'a>(tenant_id: &'a str, user_id: &'a str) -> UserKey<'a> {
    UserKey::new(tenant_id, user_id)
}

/// Creates a tenant with its admin, default limits and `starter` subscription.
pub fn create_tenant(tx: &mut WriteTx, ctx: &Ctx, req: NewTenant) -> Result<TenantCreated> {
    let mut tenant_id = ids::new_id();
    // An erased tenant's id is never made again (a random id repeats next to never; a
    // tombstone makes it never).
    while erasure::is_erased(tx, &tenant_id)? || tx.contains(&TENANTS, &tenant_key(&tenant_id))? {
        tenant_id = ids::new_id();
    }
    let api_key = ids::new_api_key()?;
    let tenant = TenantRec {
        name: req.name,
        region: req.region,
        api_key_digest: ids::key_digest(&api_key),
        created_at: ctx.now,
    };
    tx.put(&TENANTS, &tenant_key(&tenant_id), &tenant)?;
    let admin = insert_user(tx, ctx, &tenant_id, req.admin_email, Role::Admin)?;
    limits::create_defaults(tx, ctx, &tenant_id)?;
    billing::subscriptions::create_default(tx, ctx, &tenant_id)?;
    Ok(TenantCreated {
        tenant_id,
        name: tenant.name,
        region: tenant.region,
        api_key,
        created_at: ctx.now.to_rfc3339(),
        admin: AdminSummary {
            user_id: admin.user_id,
            email: admin.email,
            role: Role::Admin,
        },
    })
}

fn insert_user(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    email: String,
    role: Role,
) -> Result<User> {
    let user_id = ids::new_id();
    let rec = UserRec {
        email,
        role,
        created_at: ctx.now,
    };
    tx.put(&USERS, &user_key(tenant_id, &user_id), &rec)?;
    let owner = tenant_id.to_owned();
    tx.put(&USER_TENANT, &UserTenantKey::new(&user_id), &owner)?;
    let seq = tx.next_seq("users")?;
    tx.put(
        &USERS_BY_CREATION,
        &UserSeqKey::new(tenant_id, seq),
        &user_id,
    )?;
    Ok(User {
        user_id,
        tenant_id: tenant_id.to_owned(),
        email: rec.email,
        role,
        created_at: ctx.now.to_rfc3339(),
    })
}

/// Creates a user in the caller's tenant (admin only; `tenant_id` must be the caller's).
pub fn create_user(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, req: NewUser) -> Result<User> {
    caller.require_admin_to("create users")?;
    if req.tenant_id != caller.tenant_id() {
        return Err(Error::Forbidden(
            "Cannot create users for a different tenant".into(),
        ));
    }
    let user = insert_user(tx, ctx, caller.tenant_id(), req.email, req.role)?;
    events::emit(tx, ctx, caller, catalog::USER_CREATED, &user.user_id, &user)?;
    Ok(user)
}

/// The tenant's user ids in creation order.
pub(crate) fn users_in_creation_order(r: &impl Reader, tenant_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    r.scan(
        &USERS_BY_CREATION,
        &USERS_BY_CREATION.prefix().tenant(tenant_id),
        Order::Asc,
        |_, id: String| {
            out.push(id);
            Ok(crate::store::Flow::Continue)
        },
    )?;
    Ok(out)
}

/// Whether `user_id` is a user of `tenant_id`.
pub(crate) fn user_exists(r: &impl Reader, tenant_id: &str, user_id: &str) -> Result<bool> {
    r.contains(&USERS, &user_key(tenant_id, user_id))
}

/// Checks tenants and users: no tenant's API-key digest is all zeros; every user has its
/// user → tenant entry and is listed once in creation order, and neither index points at a
/// missing user. Records every tenant with the checker and returns their key digests.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<HashSet<[u8; 32]>> {
    let mut digests = HashSet::new();
    for t in c.rows(r, &TENANTS)? {
        if t.value.api_key_digest == [0u8; 32] {
            c.violation(TENANTS.name(), &t.bytes, "API key digest is all zeros");
        }
        digests.insert(t.value.api_key_digest);
        c.add_tenant(t.key.tenant_id.into_owned());
    }
    let users = c.rows(r, &USERS)?;
    let user_tenant: HashMap<String, String> = c
        .rows(r, &USER_TENANT)?
        .into_iter()
        .map(|x| (x.key.user_id.into_owned(), x.value))
        .collect();
    let mut known: HashSet<(&str, &str)> = HashSet::new();
    keys::check(r, c)?;
    for d in c.rows(r, &users::USER_DEACTIVATED)? {
        let (t, id) = (d.key.tenant_id.as_ref(), d.key.user_id.as_ref());
        if !users
            .iter()
            .any(|u| u.key.tenant_id == t && u.key.user_id == id)
        {
            c.violation(
                users::USER_DEACTIVATED.name(),
                &d.bytes,
                "deactivation of a missing user",
            );
        }
    }
    for u in &users {
        let (t, id) = (u.key.tenant_id.as_ref(), u.key.user_id.as_ref());
        match user_tenant.get(id) {
            Some(x) if x == t => c.ok(),
            _ => c.violation(
                USER_TENANT.name(),
                &u.bytes,
                "user has no user → tenant entry",
            ),
        }
        known.insert((t, id));
    }
    for (u, t) in &user_tenant {
        if !known.contains(&(t.as_str(), u.as_str())) {
            c.violation(
                USER_TENANT.name(),
                &UserTenantKey::new(u).encode(),
                format!("points at missing user of tenant {t}"),
            );
        }
    }
    let by_creation = c.rows(r, &USERS_BY_CREATION)?;
    let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
    for x in &by_creation {
        let key = (x.key.tenant_id.as_ref(), x.value.as_str());
        if !known.contains(&key) {
            let d = format!("points at missing user {}", x.value);
            c.violation(USERS_BY_CREATION.name(), &x.bytes, d);
        }
        *seen.entry(key).or_default() += 1;
    }
    for &(t, u) in &known {
        match seen.get(&(t, u)) {
            Some(1) => c.ok(),
            n => c.violation(
                USERS_BY_CREATION.name(),
                &user_key(t, u).encode(),
                format!(
                    "user listed {} times in creation order (want 1)",
                    n.copied().unwrap_or(0)
                ),
            ),
        }
    }
    Ok(digests)
}

impl Bespin {
    /// Creates a tenant, its bootstrap admin, default limits and a `starter` subscription, all
    /// in one transaction. The returned API key is shown once; only its digest is stored.
    pub fn create_tenant(&self, req: NewTenant) -> Result<TenantCreated> {
        self.write(|tx, ctx| create_tenant(tx, ctx, req))
    }

    /// Creates a user in the caller's tenant. Errors: `Forbidden` for non-admins or another
    /// tenant's id.
    pub fn create_user(&self, caller: &Principal, req: NewUser) -> Result<User> {
        self.write_as(caller, |tx, ctx| create_user(tx, ctx, caller, req))
    }

    /// The caller's own identity.
    pub fn me(&self, caller: &Principal) -> Me {
        Me {
            user_id: caller.user_id().to_owned(),
            tenant_id: caller.tenant_id().to_owned(),
            email: caller.email().to_owned(),
            role: caller.role(),
        }
    }
}

#[cfg(test)]
mod tests;
