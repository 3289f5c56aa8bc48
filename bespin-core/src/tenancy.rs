//! Tenants and users.
//!
//! Creating a tenant creates, in one transaction, the tenant (with the digest of its one-time
//! API key), its bootstrap admin, its default daily limits and a `starter` subscription.
//! Users belong to exactly one tenant; a global index from user id to tenant lets
//! authentication tell "no such user" from "user of another tenant".

use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::{Key, Order, Reader, Record, WriteTx, tables};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, billing, ids, limits};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

pub(crate) fn tenant_key(tenant_id: &str) -> Key {
    Key::new().str(tenant_id)
}

pub(crate) fn user_key(tenant_id: &str, user_id: &str) -> Key {
    Key::new().str(tenant_id).str(user_id)
}

/// Creates a tenant with its admin, default limits and `starter` subscription.
pub fn create_tenant(tx: &mut WriteTx, ctx: &Ctx, req: NewTenant) -> Result<TenantCreated> {
    let tenant_id = ids::new_id();
    let api_key = ids::new_api_key()?;
    let tenant = TenantRec {
        name: req.name,
        region: req.region,
        api_key_digest: ids::key_digest(&api_key),
        created_at: ctx.now,
    };
    tx.put(&tables::TENANTS, &tenant_key(&tenant_id), &tenant)?;
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
    tx.put(&tables::USERS, &user_key(tenant_id, &user_id), &rec)?;
    tx.put(
        &tables::USER_TENANT,
        &Key::new().str(&user_id),
        &tenant_id.to_owned(),
    )?;
    let seq = tx.next_seq("users")?;
    tx.put(
        &tables::USERS_BY_CREATION,
        &Key::new().str(tenant_id).u64(seq),
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
    insert_user(tx, ctx, caller.tenant_id(), req.email, req.role)
}

/// The tenant's user ids in creation order.
pub(crate) fn users_in_creation_order(r: &impl Reader, tenant_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    r.scan(
        &tables::USERS_BY_CREATION,
        &tenant_key(tenant_id),
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
    r.contains(&tables::USERS, &user_key(tenant_id, user_id))
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
        self.write(|tx, ctx| create_user(tx, ctx, caller, req))
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
