//! Authentication and roles.
//!
//! [`authenticate`] turns the three tenant credentials into a [`Principal`], checking in the
//! contract's order: presence of each credential (400), tenant and key (401, one answer for
//! both), user existence in any tenant (403 `User not found`), user's tenant (403). A
//! `Principal` can only be made here, so holding one proves the checks passed. Tenants and users
//! are never deleted and keys never rotate, so a principal stays valid for the process's life.

use crate::error::{Error, Result};
use crate::store::Reader;
use crate::tenancy::{TENANTS, USER_TENANT, USERS, UserRec, UserTenantKey, tenant_key, user_key};
use crate::{Bespin, ids};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control of the tenant.
    Admin,
    /// Reads, chat and own records.
    Member,
}

impl Role {
    /// The role as stored and shown (`admin`, `member`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permissions of the role table (10 §4.3, 20 §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `POST /v1/tools/invoke`.
    InvokeTools,
    /// Create KPI definitions and ingest points.
    KpiWrite,
    /// Read KPIs.
    KpiRead,
    /// Materialize briefs.
    MaterializeBriefs,
    /// Read briefs.
    ReadBriefs,
    /// Run jobs.
    RunJobs,
    /// Use conversations and the cofounder chat.
    UseChat,
}

impl Role {
    /// Whether the role holds `p`.
    pub fn can(self, p: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Member => matches!(
                p,
                Permission::KpiRead | Permission::ReadBriefs | Permission::UseChat
            ),
        }
    }
}

/// The tenant credentials of a request. Blank values count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `X-Tenant-ID`.
    pub tenant_id: Option<String>,
    /// `X-User-ID`.
    pub user_id: Option<String>,
    /// `X-API-Key`.
    pub api_key: Option<String>,
}

fn present(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Credentials {
    /// Credentials from the three values; blank or white-space-only values count as absent.
    pub fn new(tenant_id: Option<&str>, user_id: Option<&str>, api_key: Option<&str>) -> Self {
        Credentials {
            tenant_id: present(tenant_id),
            user_id: present(user_id),
            api_key: present(api_key),
        }
    }
}

/// An authenticated caller: a user of a tenant, with a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    tenant_id: String,
    user_id: String,
    role: Role,
    email: String,
}

impl Principal {
    /// The caller's tenant.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The caller.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The caller's e-mail.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Requires permission `p`; refuses with `Role '<role>' is not authorized to <phrase>`.
    pub fn require(&self, p: Permission, phrase: &str) -> Result<()> {
        if self.role.can(p) {
            Ok(())
        } else {
            Err(Error::role_refused(self.role.as_str(), phrase))
        }
    }

    /// Requires the admin role, refusing with an endpoint-specific phrase.
    pub fn require_admin_to(&self, phrase: &str) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::role_refused(self.role.as_str(), phrase))
        }
    }

    /// Requires the admin role, refusing with the generic
    /// `Role '<role>' is not authorized for this action`.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::admin_only(self.role.as_str()))
        }
    }
}

/// Checks `creds` against the stored tenants and users (see the module docs for the order).
pub(crate) fn authenticate(r: &impl Reader, creds: &Credentials) -> Result<Principal> {
    let tenant_id = creds
        .tenant_id
        .as_deref()
        .ok_or(Error::MissingHeader("X-Tenant-ID"))?;
    let user_id = creds
        .user_id
        .as_deref()
        .ok_or(Error::MissingHeader("X-User-ID"))?;
    let api_key = creds
        .api_key
        .as_deref()
        .ok_or(Error::MissingHeader("X-API-Key"))?;
    let tenant = r.get(&TENANTS, &tenant_key(tenant_id))?;
    let key_ok = match &tenant {
        Some(t) => ids::key_matches(api_key, &t.api_key_digest),
        // Hash anyway so an unknown tenant costs the same as a wrong key.
        None => {
            let _ = ids::key_matches(api_key, &[0u8; 32]);
            false
        }
    };
    if !key_ok {
        return Err(Error::InvalidCredentials);
    }
    let user: Option<UserRec> = r.get(&USERS, &user_key(tenant_id, user_id))?;
    let Some(user) = user else {
        let elsewhere = r.contains(&USER_TENANT, &UserTenantKey::new(user_id))?;
        return Err(if elsewhere {
            Error::UserNotInTenant
        } else {
            Error::UserNotFound
        });
    };
    Ok(Principal {
        tenant_id: tenant_id.to_owned(),
        user_id: user_id.to_owned(),
        role: user.role,
        email: user.email,
    })
}

impl Bespin {
    /// Authenticates tenant credentials into a [`Principal`]. Errors, in order:
    /// `MissingHeader` (400), `InvalidCredentials` (401), `UserNotFound` / `UserNotInTenant` (403).
    pub fn authenticate(&self, creds: &Credentials) -> Result<Principal> {
        self.read(|r, _| authenticate(r, creds))
    }

    /// [`Bespin::authenticate`], and the request rate limit of the caller's plan (requests per
    /// minute; `None` when the plan has none), read from one snapshot: what a server needs on
    /// every request. Errors as [`Bespin::authenticate`].
    pub fn authenticate_with_rate_limit(
        &self,
        creds: &Credentials,
    ) -> Result<(Principal, Option<u32>)> {
        self.read(|r, _| {
            let who = authenticate(r, creds)?;
            let limit = crate::billing::catalog::tenant_rate_limit(r, who.tenant_id())?;
            Ok((who, limit))
        })
    }
}
