//! Webhook endpoints: create, list, get, update, delete, rotate the secret (tenant admins).

use crate::auth::Principal;
use crate::check::Checker;
use crate::error::{Error, FieldError, LocPart, Result};
use crate::events::{self, catalog};
use crate::store::{Flow, Id, Order, Reader, Record, Table, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a rotated secret keeps signing deliveries (24 h).
pub const OLD_SECRET_GRACE_MICROS: i64 = Timestamp::DAY_MICROS;
/// The most endpoints one tenant may have.
pub const MAX_ENDPOINTS: usize = 20;
/// The longest URL accepted.
pub const MAX_URL: usize = 2048;

/// A stored endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EndpointRec {
    pub endpoint_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// The admin who created it (webhook usage is metered for them).
    pub created_by: String,
    pub secret: String,
    pub old_secret: Option<String>,
    pub old_secret_until: Option<Timestamp>,
    /// Since when every attempt failed (reset by a success).
    pub failing_since: Option<Timestamp>,
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for EndpointRec {}

key! {
    /// (tenant, endpoint).
    pub(crate) struct EndpointKey<'a> { tenant_id: tenant, endpoint_id: id }
}

/// (tenant, endpoint) → endpoint. Holds signing secrets: never shown by the console.
pub(crate) const ENDPOINTS: Table<EndpointKey<'static>, EndpointRec> =
    Table::new("webhook_endpoints").secret().memo();

pub(crate) fn endpoint_key<'a>(r: &impl Reader, tenant: &'a str, id: &'a str) -> EndpointKey<'a> {
    EndpointKey::new(tenant, Id::of(r.sealer(), id))
}

/// An endpoint as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    /// The endpoint id.
    pub endpoint_id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// The event types delivered (empty: every type).
    pub event_types: Vec<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why the server disabled it, if it did (5 days of failures).
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed, if they do.
    pub failing_since: Option<String>,
    /// Creation instant.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// The answer to a creation or a rotation: the endpoint and its new secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` and the base64 of 24 random bytes: the Standard Webhooks signing secret.
    pub secret: String,
}

/// A page of endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointList {
    /// The tenant's endpoints, oldest first.
    pub items: Vec<Endpoint>,
}

pub(crate) fn view(e: &EndpointRec) -> Endpoint {
    Endpoint {
        endpoint_id: e.endpoint_id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e.event_types.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since.map(Timestamp::to_rfc3339),
        created_at: e.created_at.to_rfc3339(),
        updated_at: e.updated_at.to_rfc3339(),
    }
}

/// A new signing secret.
fn new_secret() -> Result<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("random: {e}")))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    ))
}

fn url_field(f: &mut Fields<'_>, presence: Presence) -> Option<Option<String>> {
    let url = f.string("url", presence, Len::between(1, MAX_URL))?;
    if let Some(u) = &url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        f.value_error("url", "the URL must start with https:// or http://".into());
        return None;
    }
    Some(url)
}

fn types_field(f: &mut Fields<'_>) -> Option<Option<Vec<String>>> {
    let items = f.list("event_types", Presence::Optional, 0)?;
    let Some(items) = items else {
        return Some(None);
    };
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        match v.as_str().and_then(catalog::find) {
            Some(t) if !out.iter().any(|n| n == t.name) => out.push(t.name.to_owned()),
            Some(_) => {}
            None => {
                f.extend(vec![FieldError::value_error(
                    vec![LocPart::from("event_types"), LocPart::from(i)],
                    v.clone(),
                    "unknown event type (see the catalogue in /openapi.json)",
                )]);
                return None;
            }
        }
    }
    Some(Some(out))
}

/// Input of a creation.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEndpoint {
    /// `https://…` (plain `http://` and private addresses only for hosts allow-listed by the
    /// server, `BESPIN_WEBHOOK_ALLOW`).
    pub url: String,
    /// Catalogue types to deliver (absent or empty: every type).
    pub event_types: Vec<String>,
    /// At most 255 characters.
    pub description: Option<String>,
    /// Default true.
    pub enabled: bool,
}

impl NewEndpoint {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let url = url_field(&mut f, Presence::Required);
        let types = types_field(&mut f);
        let description = f.string("description", Presence::Optional, Len::between(0, 255));
        let enabled = f.boolean("enabled", Presence::Optional);
        f.finish()?;
        Ok(NewEndpoint {
            url: got(url)?.unwrap_or_default(),
            event_types: got(types)?.unwrap_or_default(),
            description: got(description)?,
            enabled: got(enabled)?.unwrap_or(true),
        })
    }
}

/// Input of an update: present keys are applied.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointPatch {
    /// New URL.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable (clears a disabled reason and the failure streak) or disable.
    pub enabled: Option<bool>,
}

impl EndpointPatch {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let url = url_field(&mut f, Presence::Optional);
        let types = types_field(&mut f);
        let description = f.string("description", Presence::Optional, Len::between(0, 255));
        let enabled = f.boolean("enabled", Presence::Optional);
        f.finish()?;
        Ok(EndpointPatch {
            url: got(url)?,
            event_types: got(types)?,
            description: got(description)?,
            enabled: got(enabled)?,
        })
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Webhook endpoint '{id}' not found"))
}

/// The endpoint `id` of the tenant, or 404.
pub(crate) fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<EndpointRec> {
    r.get(&ENDPOINTS, &endpoint_key(r, tenant, id))?
        .ok_or_else(|| not_found(id))
}

/// The tenant's endpoints, oldest first.
pub(crate) fn all(r: &impl Reader, tenant: &str) -> Result<Vec<EndpointRec>> {
    let mut out = Vec::new();
    r.scan(
        &ENDPOINTS,
        &ENDPOINTS.prefix().tenant(tenant),
        Order::Asc,
        |_, e: EndpointRec| {
            out.push(e);
            Ok(Flow::Continue)
        },
    )?;
    Ok(out)
}

/// Creates an endpoint (tenant admin); the answer holds its secret, shown this once.
pub fn create(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewEndpoint,
) -> Result<EndpointWithSecret> {
    caller.require_admin_to("manage webhooks")?;
    let t = caller.tenant_id();
    if all(tx, t)?.len() >= MAX_ENDPOINTS {
        return Err(Error::Conflict(format!(
            "A tenant may have at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let e = EndpointRec {
        endpoint_id: crate::ids::new_record_id(tx)?,
        url: req.url,
        description: req.description,
        event_types: req.event_types,
        enabled: req.enabled,
        created_by: caller.user_id().to_owned(),
        secret: new_secret()?,
        old_secret: None,
        old_secret_until: None,
        failing_since: None,
        disabled_reason: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.put(&ENDPOINTS, &endpoint_key(tx, t, &e.endpoint_id), &e)?;
    crate::audit::record(
        tx,
        ctx,
        caller,
        "webhooks.create",
        ("webhook_endpoint", &e.endpoint_id),
    )?;
    Ok(EndpointWithSecret {
        endpoint: view(&e),
        secret: e.secret,
    })
}

/// Changes an endpoint (tenant admin).
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    id: &str,
    patch: EndpointPatch,
) -> Result<Endpoint> {
    caller.require_admin_to("manage webhooks")?;
    let t = caller.tenant_id();
    let mut e = load(tx, t, id)?;
    if let Some(u) = patch.url {
        e.url = u;
    }
    if let Some(ts) = patch.event_types {
        e.event_types = ts;
    }
    if let Some(d) = patch.description {
        e.description = Some(d);
    }
    if let Some(on) = patch.enabled {
        if on && !e.enabled {
            e.failing_since = None;
            e.disabled_reason = None;
        }
        e.enabled = on;
    }
    e.updated_at = ctx.now;
    tx.put(&ENDPOINTS, &endpoint_key(tx, t, id), &e)?;
    crate::audit::record(
        tx,
        ctx,
        caller,
        "webhooks.update",
        ("webhook_endpoint", &e.endpoint_id),
    )?;
    Ok(view(&e))
}

/// Deletes an endpoint (tenant admin) and its attempts; its pending deliveries are dropped as
/// they come due. Emits `webhook.endpoint_deleted` (after the endpoint is gone, so it is not
/// sent to the deleted endpoint itself; other endpoints that take it get it).
pub fn delete(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, id: &str) -> Result<Endpoint> {
    caller.require_admin_to("manage webhooks")?;
    let t = caller.tenant_id();
    let e = load(tx, t, id)?;
    tx.delete(&ENDPOINTS, &endpoint_key(tx, t, id))?;
    super::delivery::forget_attempts(tx, t, &e.endpoint_id)?;
    let deleted =
        crate::coreos::deletion::Deleted::new("webhook_endpoint", &e.endpoint_id, ctx.now);
    events::emit(
        tx,
        ctx,
        caller,
        catalog::WEBHOOK_ENDPOINT_DELETED,
        &e.endpoint_id,
        &deleted,
    )?;
    crate::audit::record(
        tx,
        ctx,
        caller,
        "webhooks.delete",
        ("webhook_endpoint", &e.endpoint_id),
    )?;
    Ok(view(&e))
}

/// Gives the endpoint a new secret (tenant admin); the old one keeps signing for 24 h.
pub fn rotate(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    id: &str,
) -> Result<EndpointWithSecret> {
    caller.require_admin_to("manage webhooks")?;
    let t = caller.tenant_id();
    let mut e = load(tx, t, id)?;
    let new = new_secret()?;
    e.old_secret = Some(std::mem::replace(&mut e.secret, new));
    e.old_secret_until = Some(Timestamp(ctx.now.0 + OLD_SECRET_GRACE_MICROS));
    e.updated_at = ctx.now;
    tx.put(&ENDPOINTS, &endpoint_key(tx, t, id), &e)?;
    crate::audit::record(
        tx,
        ctx,
        caller,
        "webhooks.rotate",
        ("webhook_endpoint", &e.endpoint_id),
    )?;
    Ok(EndpointWithSecret {
        endpoint: view(&e),
        secret: e.secret,
    })
}

/// Whether the endpoint takes events of type `t`.
pub(crate) fn wants(e: &EndpointRec, t: &catalog::EventType) -> bool {
    e.enabled && (e.event_types.is_empty() || e.event_types.iter().any(|n| n == t.name))
}

/// Invariants: each endpoint's key names its id, its secret is a `whsec_` secret, and its
/// event types are of the catalogue.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    for x in c.rows(r, &ENDPOINTS)? {
        let e = &x.value;
        if x.key.endpoint_id.to_id(r.sealer()) != e.endpoint_id {
            c.violation(ENDPOINTS.name(), &x.bytes, "key differs from endpoint_id");
        } else if !e.secret.starts_with("whsec_") {
            c.violation(ENDPOINTS.name(), &x.bytes, "secret is not a whsec_ secret");
        } else if e.event_types.iter().any(|n| catalog::find(n).is_none()) {
            c.violation(
                ENDPOINTS.name(),
                &x.bytes,
                "event type not in the catalogue",
            );
        } else {
            c.ok();
        }
    }
    super::delivery::check(r, c)
}

impl Bespin {
    /// The caller's tenant's webhook endpoints (tenant admin).
    pub fn webhook_endpoints(&self, caller: &Principal) -> Result<EndpointList> {
        caller.require_admin_to("manage webhooks")?;
        self.read(|r, _| {
            Ok(EndpointList {
                items: all(r, caller.tenant_id())?.iter().map(view).collect(),
            })
        })
    }

    /// One endpoint (tenant admin).
    pub fn webhook_endpoint(&self, caller: &Principal, id: &str) -> Result<Endpoint> {
        caller.require_admin_to("manage webhooks")?;
        self.read(|r, _| Ok(view(&load(r, caller.tenant_id(), id)?)))
    }
}

/// Emits `webhook.endpoint_disabled` for `e` of `tenant` (the platform disabled it).
pub(crate) fn disabled_event(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant: &str,
    e: &EndpointRec,
) -> Result<()> {
    let actor = events::Actor::Platform(tenant);
    let t = catalog::WEBHOOK_ENDPOINT_DISABLED;
    events::emit(tx, ctx, actor, t, &e.endpoint_id, &view(e)).map(|_| ())
}
