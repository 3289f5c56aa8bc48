//! Authentication and roles.
//!
//! `authenticate` turns the three tenant credentials into a [`Principal`], checking in the
//! contract's order: presence of each credential (400), tenant and key (401, one answer for
//! both), user existence in any tenant (403 `User not found`), user's tenant (403). A
//! `Principal` can only be made here, so holding one proves the checks passed.
//!
//! Besides the contract's tenant key, a request may present a **user-bound key**
//! ([`crate::tenancy::keys`]): in `X-API-Key` with `X-Tenant-ID` (then `X-User-ID` may be
//! omitted, and if sent must name the key's user, else 403), or as `Authorization: Bearer`
//! (no other header needed; an `X-Tenant-ID` sent too must be the key's tenant, else 401). A
//! revoked, expired or unknown key, and a deactivated user, get the one 401 of a wrong key.
//! A principal is checked against a snapshot; the writes of one authenticated by a bound key
//! check the key again in their own transaction (`crate::tenancy::keys::admit`).

use crate::error::{Error, Result};
use crate::store::Reader;
use crate::tenancy::keys::{self, KeyAuth, Matched, Scopes};
use crate::tenancy::{
    TENANTS, USER_TENANT, USERS, UserRec, UserTenantKey, tenant_key, user_key, users,
};
use crate::time::Timestamp;
use crate::{Bespin, RequestSnapshot, ids};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

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
    /// The key of `Authorization: Bearer <key>` (user-bound keys only).
    pub bearer: Option<String>,
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
            bearer: None,
        }
    }

    /// These credentials with the key of an `Authorization` header value (`Bearer <key>`,
    /// the scheme in any case); other schemes are ignored.
    pub fn with_authorization(mut self, authorization: Option<&str>) -> Self {
        self.bearer = authorization.and_then(|v| {
            let v = v.trim();
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| present(Some(rest)))
                .flatten()
        });
        self
    }

    /// Whether these credentials are worth checking: a bearer key, or a tenant and a key (a
    /// bound key needs no user header).
    pub fn complete(&self) -> bool {
        self.bearer.is_some() || (self.tenant_id.is_some() && self.api_key.is_some())
    }
}

/// An authenticated caller: a user of a tenant, with a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    tenant_id: String,
    user_id: String,
    role: Role,
    email: String,
    key: Option<Arc<KeyAuth>>,
}

impl Principal {
    /// The user-bound key that authenticated the caller (`None`: the tenant key).
    pub fn key(&self) -> Option<&KeyAuth> {
        self.key.as_deref()
    }

    /// Whether a touch of the key's "last used" day is due ([`crate::tenancy::keys::touch`]).
    pub fn key_touch_due(&self) -> bool {
        self.key().is_some_and(|k| k.stale_day)
    }

    /// Whether the caller may only read (a read-only key).
    pub fn read_only(&self) -> bool {
        self.key().is_some_and(|k| k.scopes == Scopes::ReadOnly)
    }

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

/// Checks `creds` against the stored tenants, keys and users at `now` (see the module docs
/// for the order).
pub(crate) fn authenticate(
    r: &impl Reader,
    creds: &Credentials,
    now: Timestamp,
) -> Result<Principal> {
    if let Some(bearer) = creds.bearer.as_deref() {
        let Some((tenant_id, key_id, rec)) = keys::bound(r, bearer, now)? else {
            return Err(Error::InvalidCredentials);
        };
        if creds.tenant_id.as_deref().is_some_and(|t| t != tenant_id)
            || !r.contains(&TENANTS, &tenant_key(&tenant_id))?
        {
            return Err(Error::InvalidCredentials);
        }
        return bound_principal(r, creds, tenant_id, key_id, rec, now);
    }
    let tenant_id = creds
        .tenant_id
        .as_deref()
        .ok_or(Error::MissingHeader("X-Tenant-ID"))?;
    let api_key = match (creds.user_id.as_deref(), creds.api_key.as_deref()) {
        (_, Some(k)) => k,
        (None, None) => return Err(Error::MissingHeader("X-User-ID")),
        (Some(_), None) => return Err(Error::MissingHeader("X-API-Key")),
    };
    let tenant = r.get(&TENANTS, &tenant_key(tenant_id))?;
    let matched = match &tenant {
        Some(t) => keys::match_key(r, tenant_id, &t.api_key_digest, api_key, now)?,
        // Hash anyway so an unknown tenant costs the same as a wrong key.
        None => {
            let _ = ids::key_matches(api_key, &[0u8; 32]);
            Matched::None
        }
    };
    let user_id = match (&matched, creds.user_id.as_deref()) {
        (Matched::Bound(id, rec), _) => {
            let (id, rec) = (id.clone(), rec.clone());
            return bound_principal(r, creds, tenant_id.to_owned(), id, rec, now);
        }
        // The contract's order: a missing user header is named before a wrong key.
        (_, None) => return Err(Error::MissingHeader("X-User-ID")),
        (Matched::None, Some(_)) => return Err(Error::InvalidCredentials),
        (Matched::Tenant, Some(u)) => u,
    };
    let user: Option<UserRec> = r.get(&USERS, &user_key(tenant_id, user_id))?;
    let Some(user) = user else {
        let elsewhere = r.contains(&USER_TENANT, &UserTenantKey::new(user_id))?;
        return Err(if elsewhere {
            Error::UserNotInTenant
        } else {
            Error::UserNotFound
        });
    };
    if users::is_deactivated(r, tenant_id, user_id)? {
        return Err(Error::InvalidCredentials);
    }
    Ok(Principal {
        tenant_id: tenant_id.to_owned(),
        user_id: user_id.to_owned(),
        role: user.role,
        email: user.email,
        key: None,
    })
}

/// The principal of a live bound key: its user, who must be the `X-User-ID` sent (if any,
/// else 403) and active (else 401).
fn bound_principal(
    r: &impl Reader,
    creds: &Credentials,
    tenant_id: String,
    key_id: String,
    rec: keys::ApiKeyRec,
    now: Timestamp,
) -> Result<Principal> {
    if creds.user_id.as_deref().is_some_and(|u| u != rec.user_id) {
        return Err(Error::Forbidden(
            "X-User-ID does not name the user this API key is bound to".into(),
        ));
    }
    let user: Option<UserRec> = r.get(&USERS, &user_key(&tenant_id, &rec.user_id))?;
    let Some(user) = user else {
        return Err(Error::InvalidCredentials);
    };
    if users::is_deactivated(r, &tenant_id, &rec.user_id)? {
        return Err(Error::InvalidCredentials);
    }
    Ok(Principal {
        tenant_id,
        user_id: rec.user_id,
        role: user.role,
        email: user.email,
        key: Some(Arc::new(KeyAuth {
            key_id,
            scopes: rec.scopes,
            stale_day: rec.last_used != Some(now.date()),
        })),
    })
}

impl Bespin {
    /// Authenticates tenant credentials into a [`Principal`]. Errors, in order:
    /// `MissingHeader` (400), `InvalidCredentials` (401), `UserNotFound` / `UserNotInTenant` (403).
    pub fn authenticate(&self, creds: &Credentials) -> Result<Principal> {
        self.read(|r, ctx| authenticate(r, creds, ctx.now))
    }

    /// [`Bespin::authenticate`], and the request rate limit of the caller's plan (requests per
    /// minute; `None` when the plan has none), read from one snapshot: what a server needs on
    /// every request. Errors as [`Bespin::authenticate`].
    pub fn authenticate_with_rate_limit(
        &self,
        creds: &Credentials,
    ) -> Result<(Principal, Option<u32>)> {
        self.authenticate_keeping(creds)
            .map(|(who, limit, _)| (who, limit))
    }

    /// [`Bespin::authenticate_with_rate_limit`], keeping the snapshot it read for the
    /// request's first read ([`RequestSnapshot::scope`]): on PostgreSQL a read request then
    /// takes one snapshot, not two (one round trip less). What a server does for a request
    /// that reads; one that writes, or waits for a body before it reads, drops the snapshot
    /// at once (it holds a pooled connection). Empty on redb, whose readers share a snapshot
    /// already. Errors as [`Bespin::authenticate`] (and nothing is kept).
    pub fn authenticate_keeping(
        &self,
        creds: &Credentials,
    ) -> Result<(Principal, Option<u32>, RequestSnapshot)> {
        let tx = self.snapshot()?;
        let now = self.ctx().now;
        let who = authenticate(&*tx, creds, now)?;
        let limit = crate::billing::catalog::tenant_rate_limit(&*tx, who.tenant_id())?;
        let kept = if self.reads_block() {
            RequestSnapshot::of(&self.inner, tx)
        } else {
            RequestSnapshot::default()
        };
        Ok((who, limit, kept))
    }
}
