//! API keys over their lifetime: user-bound scoped keys, their revocation and the rotation of
//! the tenant key.
//!
//! A tenant has its one tenant key (the contract's `X-API-Key`, which lets the caller act as
//! any user named by `X-User-ID`) and any number of **user-bound keys**, made by an admin for
//! one user, optionally scoped (read-only, or a list of plan capabilities) and optionally
//! expiring. Only a key's SHA-256 digest is stored; the clear key is in the answer that made it
//! and nowhere else. A global index from digest to `(tenant, key)` lets a bearer key be found
//! without a tenant header.
//!
//! **Revocation takes effect at its commit.** Authentication reads a snapshot and the write it
//! allows commits later, so every write operation of a caller authenticated by a bound key
//! re-checks the key in its own transaction (`admit`, run by the `Op` constructors that take
//! a caller), memoised per batch: one read per key per batch. A revocation, a deactivation and
//! a role change forget the batch's memo, so the operations after them in the same batch look
//! again.
//!
//! **Last used** is kept at day precision and written only when the day changes: in the first
//! write of the day through `admit`, or for a caller that only reads, by [`touch`], which the
//! server submits when the principal says the stored day is stale. Never a write per request.
//!
//! **Rotation** (`tenant:rotate`): the tenant record takes the new key's digest; the old digest
//! is kept in `TENANT_KEY_GRACE` until the grace (0 to 7 days) ends, then stops matching.

use crate::auth::Principal;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Flow, Order, Reader, Record, Table, WriteTx, key};
use crate::time::{Date, Timestamp};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, ids};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

use super::{TENANTS, tenant_key, user_key};

/// What a bound key may do beyond its user's role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scopes {
    /// Everything its user may do.
    All,
    /// Reads only: every write is refused (403).
    ReadOnly,
    /// Only operations that need one of these plan capabilities, or none, and no key or user
    /// administration.
    Capabilities(Vec<String>),
}

impl Scopes {
    /// The scopes as the API shows them: `["*"]`, `["read_only"]` or the capability list.
    pub fn shown(&self) -> Vec<String> {
        match self {
            Scopes::All => vec!["*".to_owned()],
            Scopes::ReadOnly => vec!["read_only".to_owned()],
            Scopes::Capabilities(c) => c.clone(),
        }
    }

    /// Whether the scopes allow exercising plan capability `cap`.
    pub fn allows_capability(&self, cap: &str) -> bool {
        match self {
            Scopes::All | Scopes::ReadOnly => true,
            Scopes::Capabilities(c) => c.iter().any(|x| x == cap),
        }
    }
}

/// A stored user-bound key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiKeyRec {
    pub digest: [u8; 32],
    pub user_id: String,
    pub name: String,
    pub scopes: Scopes,
    pub last4: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used: Option<Date>,
    pub revoked_at: Option<Timestamp>,
}
impl Record for ApiKeyRec {}

/// Where a digest's key lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyOwner {
    pub tenant_id: String,
    pub key_id: String,
}
impl Record for KeyOwner {}

/// The tenant key before its last rotation, and when it stops working.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GraceRec {
    pub digest: [u8; 32],
    pub until: Timestamp,
}
impl Record for GraceRec {}

key! {
    /// (tenant, key).
    pub(crate) struct ApiKeyKey<'a> { tenant_id: tenant, key_id: str }
    /// Global: (hex digest of a bound key).
    pub(crate) struct DigestKey<'a> { digest: str }
}

/// (tenant, key) → a user-bound key (revoked ones stay, with `revoked_at`, for the record).
/// A live key's global digest entry goes with it.
pub(crate) const API_KEYS: Table<ApiKeyKey<'static>, ApiKeyRec> =
    Table::new("api_keys").with_companions(forget_digest);
/// Global: digest → (tenant, key) of every live bound key (a bearer key carries no tenant).
pub(crate) const API_KEY_DIGESTS: Table<DigestKey<'static>, KeyOwner> =
    Table::new("api_key_digests");

/// Deletes the global digest entry of the key stored as `v`, if it is live (a revoked key's
/// entry went at its revocation): a tenant's erasure.
fn forget_digest(tx: &mut WriteTx, _: &[u8], v: &[u8]) -> Result<()> {
    let rec: ApiKeyRec = crate::store::codec::decode(v)?;
    if rec.revoked_at.is_none() {
        tx.delete(&API_KEY_DIGESTS, &DigestKey::new(&hex(&rec.digest)))?;
    }
    Ok(())
}
/// (tenant) → the previous tenant key's digest during its grace.
pub(crate) const TENANT_KEY_GRACE: Table<super::TenantKey<'static>, GraceRec> =
    Table::new("tenant_key_grace");

/// The longest grace of a rotated tenant key.
pub const MAX_GRACE_SECONDS: i64 = 7 * 86_400;
/// The most live (unrevoked) bound keys a tenant may hold.
pub const MAX_KEYS_PER_TENANT: usize = 1_000;

pub(crate) fn hex(d: &[u8; 32]) -> String {
    use std::fmt::Write;
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The bound key that authenticated a [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// The key's id.
    pub key_id: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Whether its stored "last used" day is older than today (a touch is due).
    pub stale_day: bool,
}

/// Input of [`create`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKey {
    /// The user the key acts as (a user of the caller's tenant).
    pub user_id: String,
    /// A label, 1–100 characters.
    pub name: String,
    /// `["read_only"]`, a list of plan capabilities, or absent/`["*"]` for everything the user
    /// may do.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub scopes: Scopes,
    /// When the key stops working (RFC 3339, in the future).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires_at: Option<Timestamp>,
}

impl NewApiKey {
    /// Validates a request body (`user_id`, `name`, optional `scopes`, optional `expires_at`).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let user_id = f.req_string("user_id", Len::between(1, 64));
        let name = f.req_string("name", Len::between(1, 100));
        let scopes = parse_scopes(&mut f);
        let expires = f.string("expires_at", Presence::Optional, Len::between(1, 64));
        let expires_at = match expires {
            Some(Some(s)) => match chrono::DateTime::parse_from_rfc3339(&s) {
                Ok(dt) => Some(Some(Timestamp::from_datetime(dt.to_utc()))),
                Err(_) => {
                    f.value_error(
                        "expires_at",
                        "expires_at must be an RFC 3339 instant".into(),
                    );
                    None
                }
            },
            Some(None) => Some(None),
            None => None,
        };
        f.finish()?;
        Ok(NewApiKey {
            user_id: got(user_id)?,
            name: got(name)?,
            scopes: got(scopes)?,
            expires_at: got(expires_at)?,
        })
    }
}

fn parse_scopes(f: &mut Fields) -> Option<Scopes> {
    let items = f.list("scopes", Presence::Optional, 0)?;
    let Some(items) = items else {
        return Some(Scopes::All);
    };
    if items.len() > 32 {
        f.value_error("scopes", "at most 32 scopes".into());
        return None;
    }
    let mut names = Vec::new();
    for it in items {
        match it.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 64 => names.push(s.to_owned()),
            _ => {
                f.value_error("scopes", "scopes are strings of 1 to 64 characters".into());
                return None;
            }
        }
    }
    let caps = crate::billing::catalog::CAPABILITIES;
    match names.as_slice() {
        [one] if one == "*" => Some(Scopes::All),
        [one] if one == "read_only" => Some(Scopes::ReadOnly),
        _ => {
            if let Some(bad) = names.iter().find(|n| !caps.iter().any(|(k, _)| k == n)) {
                let reason = format!(
                    "unknown scope '{bad}': use [\"*\"], [\"read_only\"] or plan capabilities"
                );
                f.value_error("scopes", reason);
                return None;
            }
            names.sort();
            names.dedup();
            Some(Scopes::Capabilities(names))
        }
    }
}

/// A key as the API lists it: never the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// The key's id.
    pub key_id: String,
    /// The user it acts as.
    pub user_id: String,
    /// Its label.
    pub name: String,
    /// `bsk_`.
    pub prefix: String,
    /// The key's last four characters.
    pub last4: String,
    /// `["*"]`, `["read_only"]` or capabilities.
    pub scopes: Vec<String>,
    /// Creation instant.
    pub created_at: String,
    /// Expiry, if any.
    pub expires_at: Option<String>,
    /// The last day (UTC) a request used it.
    pub last_used_on: Option<String>,
    /// Revocation instant, if revoked.
    pub revoked_at: Option<String>,
}

/// The answer to key creation or rotation: the clear key, shown here and never again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyCreated {
    /// The key as listed.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The clear key (`bsk_…`); only its digest is stored.
    pub api_key: String,
}

/// Input of [`rotate_tenant_key`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rotation {
    /// How long the old key keeps working, 0 to 604800 seconds (7 days); default 0.
    pub grace_seconds: i64,
}

impl Rotation {
    /// Validates a request body (`grace_seconds`, optional).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let g = f.int(
            "grace_seconds",
            Presence::Optional,
            crate::validate::Bounds::range(0, MAX_GRACE_SECONDS),
        );
        f.finish()?;
        Ok(Rotation {
            grace_seconds: got(g)?.unwrap_or(0),
        })
    }
}

/// The answer to a rotation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantKeyRotated {
    /// The new tenant key, shown once.
    pub api_key: String,
    /// Until when the previous key keeps working (RFC 3339; now when the grace is 0).
    pub previous_valid_until: String,
}

fn view(key_id: &str, r: &ApiKeyRec) -> ApiKey {
    ApiKey {
        key_id: key_id.to_owned(),
        user_id: r.user_id.clone(),
        name: r.name.clone(),
        prefix: ids::API_KEY_PREFIX.to_owned(),
        last4: r.last4.clone(),
        scopes: r.scopes.shown(),
        created_at: r.created_at.to_rfc3339(),
        expires_at: r.expires_at.map(Timestamp::to_rfc3339),
        last_used_on: r.last_used.map(|d| d.to_string()),
        revoked_at: r.revoked_at.map(Timestamp::to_rfc3339),
    }
}

/// Key and user administration needs an admin authenticated by the tenant key or by an
/// unscoped bound key: a scoped key cannot make itself a wider one.
pub(crate) fn require_key_admin(caller: &Principal, phrase: &str) -> Result<()> {
    caller.require_admin_to(phrase)?;
    match caller.key() {
        Some(k) if k.scopes != Scopes::All => Err(Error::Forbidden(
            "A scoped API key cannot manage keys or users".into(),
        )),
        _ => Ok(()),
    }
}

/// Makes a key bound to `req.user_id` (admin). Order: admin (403) → validation of the user
/// (404 when not of the tenant, 422 for a deactivated one) → expiry in the future (422) →
/// the tenant's key count (409) → write.
pub fn create(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewApiKey,
) -> Result<ApiKeyCreated> {
    require_key_admin(caller, "manage API keys")?;
    let t = caller.tenant_id();
    if !tx.contains(&super::USERS, &user_key(t, &req.user_id))? {
        return Err(Error::NotFound("User not found".into()));
    }
    if super::users::is_deactivated(tx, t, &req.user_id)? {
        return Err(Error::BadRequest("User is deactivated".into()));
    }
    if req.expires_at.is_some_and(|e| e <= ctx.now) {
        return Err(Error::BadRequest("expires_at must be in the future".into()));
    }
    if live_count(tx, t)? >= MAX_KEYS_PER_TENANT {
        return Err(Error::Conflict(format!(
            "A tenant holds at most {MAX_KEYS_PER_TENANT} live API keys; revoke one first"
        )));
    }
    let api_key = ids::new_api_key()?;
    let key_id = format!("key_{}", ids::new_id());
    let rec = ApiKeyRec {
        digest: ids::key_digest(&api_key),
        user_id: req.user_id,
        name: req.name,
        scopes: req.scopes,
        last4: api_key[api_key.len() - 4..].to_owned(),
        created_at: ctx.now,
        expires_at: req.expires_at,
        last_used: None,
        revoked_at: None,
    };
    tx.put(&API_KEYS, &ApiKeyKey::new(t, &key_id), &rec)?;
    let owner = KeyOwner {
        tenant_id: t.to_owned(),
        key_id: key_id.clone(),
    };
    tx.put(&API_KEY_DIGESTS, &DigestKey::new(&hex(&rec.digest)), &owner)?;
    let key = view(&key_id, &rec);
    events::emit(tx, ctx, caller, catalog::API_KEY_CREATED, &key_id, &key)?;
    crate::audit::record(tx, ctx, caller, "api_keys.create", ("api_key", &key_id))?;
    Ok(ApiKeyCreated { key, api_key })
}

fn live_count(r: &impl Reader, tenant: &str) -> Result<usize> {
    let mut n = 0;
    r.scan(
        &API_KEYS,
        &API_KEYS.prefix().tenant(tenant),
        Order::Asc,
        |_, k: ApiKeyRec| {
            n += usize::from(k.revoked_at.is_none());
            Ok(Flow::Continue)
        },
    )?;
    Ok(n)
}

/// Revokes a key (admin, or the key's own user): from this operation's commit on, nothing
/// authenticated by it is accepted. Revoking a revoked key answers it again. Errors: 404 for
/// a key not of the tenant.
pub fn revoke(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, key_id: &str) -> Result<ApiKey> {
    let t = caller.tenant_id();
    let k = ApiKeyKey::new(t, key_id);
    let mut rec = tx
        .get(&API_KEYS, &k)?
        .ok_or_else(|| Error::NotFound("API key not found".into()))?;
    if rec.user_id != caller.user_id() {
        require_key_admin(caller, "revoke other users' API keys")?;
    }
    if rec.revoked_at.is_none() {
        rec.revoked_at = Some(ctx.now);
        tx.put(&API_KEYS, &k, &rec)?;
        tx.delete(&API_KEY_DIGESTS, &DigestKey::new(&hex(&rec.digest)))?;
        tx.forget_admissions();
        let key = view(key_id, &rec);
        events::emit(tx, ctx, caller, catalog::API_KEY_REVOKED, key_id, &key)?;
        crate::audit::record(tx, ctx, caller, "api_keys.revoke", ("api_key", key_id))?;
        return Ok(key);
    }
    Ok(view(key_id, &rec))
}

/// Revokes every live key of `user_id` (a deactivation): returns how many.
pub(crate) fn revoke_all_of(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant: &str,
    user_id: &str,
) -> Result<usize> {
    let mut live = Vec::new();
    tx.scan(
        &API_KEYS,
        &API_KEYS.prefix().tenant(tenant),
        Order::Asc,
        |k, rec: ApiKeyRec| {
            if rec.user_id == user_id
                && rec.revoked_at.is_none()
                && let Some(k) = ApiKeyKey::decode(k)
            {
                live.push((k.key_id.into_owned(), rec));
            }
            Ok(Flow::Continue)
        },
    )?;
    for (id, mut rec) in live.clone() {
        rec.revoked_at = Some(ctx.now);
        tx.put(&API_KEYS, &ApiKeyKey::new(tenant, &id), &rec)?;
        tx.delete(&API_KEY_DIGESTS, &DigestKey::new(&hex(&rec.digest)))?;
    }
    tx.forget_admissions();
    Ok(live.len())
}

/// The tenant's keys, newest first within a page (admin: all; a member: their own).
pub(crate) fn list(r: &impl Reader, caller: &Principal) -> Result<Vec<ApiKey>> {
    let mine_only = !caller.is_admin();
    let mut out = Vec::new();
    r.scan(
        &API_KEYS,
        &API_KEYS.prefix().tenant(caller.tenant_id()),
        Order::Asc,
        |k, rec: ApiKeyRec| {
            if (!mine_only || rec.user_id == caller.user_id())
                && let Some(k) = ApiKeyKey::decode(k)
            {
                out.push(view(&k.key_id, &rec));
            }
            Ok(Flow::Continue)
        },
    )?;
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(a.key_id.cmp(&b.key_id))
    });
    Ok(out)
}

/// Rotates the tenant key (admin through the tenant key or an unscoped key): a new key from
/// this commit on; the old one for `grace_seconds` more (0: it stops now). A second rotation
/// within a grace ends the first grace (only the latest previous key is kept).
pub fn rotate_tenant_key(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: Rotation,
) -> Result<TenantKeyRotated> {
    require_key_admin(caller, "rotate the tenant key")?;
    let t = caller.tenant_id();
    let mut tenant = tx
        .get(&TENANTS, &tenant_key(t))?
        .ok_or_else(|| Error::NotFound("Tenant not found".into()))?;
    let api_key = ids::new_api_key()?;
    let until = Timestamp(ctx.now.0 + req.grace_seconds * 1_000_000);
    if req.grace_seconds > 0 {
        let grace = GraceRec {
            digest: tenant.api_key_digest,
            until,
        };
        tx.put(&TENANT_KEY_GRACE, &tenant_key(t), &grace)?;
    } else {
        tx.delete(&TENANT_KEY_GRACE, &tenant_key(t))?;
    }
    tenant.api_key_digest = ids::key_digest(&api_key);
    tx.put(&TENANTS, &tenant_key(t), &tenant)?;
    let shown = serde_json::json!({"previous_valid_until": until.to_rfc3339()});
    events::emit(tx, ctx, caller, catalog::TENANT_KEY_ROTATED, t, &shown)?;
    crate::audit::record(tx, ctx, caller, "api_keys.rotate_tenant_key", ("tenant", t))?;
    Ok(TenantKeyRotated {
        api_key,
        previous_valid_until: until.to_rfc3339(),
    })
}

/// How a presented key matched, at authentication.
pub(crate) enum Matched {
    /// The tenant key (current, or the previous one within its grace).
    Tenant,
    /// A live bound key of the tenant.
    Bound(String, ApiKeyRec),
    /// Nothing.
    None,
}

/// Matches `api_key` against `tenant`'s keys at `now`: the tenant key, its previous one
/// within grace, then the bound keys. A revoked, expired or unknown key is `None`.
pub(crate) fn match_key(
    r: &impl Reader,
    tenant_id: &str,
    tenant_digest: &[u8; 32],
    api_key: &str,
    now: Timestamp,
) -> Result<Matched> {
    if ids::key_matches(api_key, tenant_digest) {
        return Ok(Matched::Tenant);
    }
    if let Some(g) = r.get(&TENANT_KEY_GRACE, &tenant_key(tenant_id))?
        && now < g.until
        && ids::key_matches(api_key, &g.digest)
    {
        return Ok(Matched::Tenant);
    }
    match bound(r, api_key, now)? {
        Some((owner, id, rec)) if owner == tenant_id => Ok(Matched::Bound(id, rec)),
        _ => Ok(Matched::None),
    }
}

/// The live bound key `api_key` at `now`: (tenant, key id, record).
pub(crate) fn bound(
    r: &impl Reader,
    api_key: &str,
    now: Timestamp,
) -> Result<Option<(String, String, ApiKeyRec)>> {
    let digest = ids::key_digest(api_key);
    let Some(owner) = r.get(&API_KEY_DIGESTS, &DigestKey::new(&hex(&digest)))? else {
        return Ok(None);
    };
    let rec = r.get(&API_KEYS, &ApiKeyKey::new(&owner.tenant_id, &owner.key_id))?;
    Ok(rec
        .filter(|k| live(k, now) && ids::key_matches(api_key, &k.digest))
        .map(|k| (owner.tenant_id, owner.key_id, k)))
}

fn live(k: &ApiKeyRec, now: Timestamp) -> bool {
    k.revoked_at.is_none() && k.expires_at.is_none_or(|e| now < e)
}

/// What an operation does with the caller's credential, for [`admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Changes the tenant's data.
    Write,
    /// Accompanies a read (metering, the key's day of last use).
    Read,
}

/// The check every write of a caller runs in its own transaction before anything else (the
/// `Op` constructors call it): a caller authenticated by a bound key must still hold a live
/// key (not revoked, not expired, its user active) at this point of the batch, else 401; a
/// read-only key may write nothing (403). The outcome is memoised per key for the batch; the
/// key's day of last use is written here when it changed.
pub(crate) fn admit(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, access: Access) -> Result<()> {
    let Some(k) = caller.key() else {
        return Ok(());
    };
    if access == Access::Write && k.scopes == Scopes::ReadOnly {
        return Err(Error::Forbidden("This API key is read-only".into()));
    }
    let t = caller.tenant_id();
    let ok = match tx.admission(&k.key_id) {
        Some(ok) => ok,
        None => {
            let ok = check_live(tx, ctx, t, caller.user_id(), &k.key_id)?;
            tx.remember_admission(&k.key_id, ok);
            ok
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidCredentials)
    }
}

/// Whether the key is live for `user` now; writes its day of last use when that changed.
fn check_live(tx: &mut WriteTx, ctx: &Ctx, t: &str, user: &str, key_id: &str) -> Result<bool> {
    let k = ApiKeyKey::new(t, key_id);
    let Some(mut rec) = tx.get(&API_KEYS, &k)? else {
        return Ok(false);
    };
    if !live(&rec, ctx.now) || rec.user_id != user || super::users::is_deactivated(tx, t, user)? {
        return Ok(false);
    }
    let today = ctx.now.date();
    if rec.last_used != Some(today) {
        rec.last_used = Some(today);
        tx.put(&API_KEYS, &k, &rec)?;
    }
    Ok(true)
}

/// Records that a bound key was used today, when the stored day is older (the server submits
/// it for a caller that only reads; a write does it in its own transaction). At most one write
/// per key per day, however many requests.
pub fn touch(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal) -> Result<()> {
    admit(tx, ctx, caller, Access::Read)
}

/// Checks keys: every live key has exactly its digest entry, every digest entry points at a
/// live key of its tenant with that digest, and a bound key's user exists.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let mut live_digests = HashSet::new();
    for k in c.rows(r, &API_KEYS)? {
        let (t, id) = (k.key.tenant_id.as_ref(), k.key.key_id.as_ref());
        if !r.contains(&super::USERS, &user_key(t, &k.value.user_id))? {
            c.violation(API_KEYS.name(), &k.bytes, "key bound to a missing user");
        }
        let entry = r.get(&API_KEY_DIGESTS, &DigestKey::new(&hex(&k.value.digest)))?;
        let points_here = entry
            .as_ref()
            .is_some_and(|o| o.tenant_id == t && o.key_id == id);
        match (k.value.revoked_at.is_none(), points_here) {
            (true, true) | (false, false) => c.ok(),
            (true, false) => c.violation(API_KEYS.name(), &k.bytes, "live key has no digest entry"),
            (false, true) => c.violation(
                API_KEYS.name(),
                &k.bytes,
                "revoked key still has its digest entry",
            ),
        }
        if k.value.revoked_at.is_none() {
            live_digests.insert(hex(&k.value.digest));
        }
    }
    for d in c.rows(r, &API_KEY_DIGESTS)? {
        if !live_digests.contains(d.key.digest.as_ref()) {
            c.violation(
                API_KEY_DIGESTS.name(),
                &d.bytes,
                "digest entry of no live key",
            );
        }
    }
    Ok(())
}

impl Principal {
    /// Whether the caller may act with a role-changing or key-making power (not a scoped key).
    pub fn is_unscoped(&self) -> bool {
        self.key().is_none_or(|k| k.scopes == Scopes::All)
    }
}

impl Bespin {
    /// Makes a key bound to a user ([`create`]); the clear key is in the answer only.
    pub fn create_api_key(&self, caller: &Principal, req: NewApiKey) -> Result<ApiKeyCreated> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// The tenant's bound keys (admin: all; member: their own), never a secret.
    pub fn list_api_keys(&self, caller: &Principal) -> Result<Vec<ApiKey>> {
        self.read(|r, _| list(r, caller))
    }

    /// Revokes a key ([`revoke`]).
    pub fn revoke_api_key(&self, caller: &Principal, key_id: &str) -> Result<ApiKey> {
        self.write_as(caller, |tx, ctx| revoke(tx, ctx, caller, key_id))
    }

    /// Rotates the tenant key ([`rotate_tenant_key`]).
    pub fn rotate_tenant_key(&self, caller: &Principal, req: Rotation) -> Result<TenantKeyRotated> {
        self.write_as(caller, |tx, ctx| rotate_tenant_key(tx, ctx, caller, req))
    }
}
