//! The tool gateway (10 §10.6–§10.7): a typed registry of tools and `POST /v1/tools/invoke`.
//!
//! A tool is a [`Tool`]: a name, a JSON-Schema description of its input and a function over a
//! read view of the invoking transaction. Adding a tool is one module plus one line in
//! [`REGISTRY`]. [`Bespin::tools`] lists the registry for `GET /v1/tools`.
//!
//! [`invoke`] follows 10 §10.6 in one write transaction: role → entitlement `tools` →
//! idempotency lookup (a replay returns the stored body and costs nothing; another body under
//! the same key is a 409) → tool lookup → credit quota `tool_invocation` × 1 → daily limit
//! `tool_invocation` → run → audit `tools.invoke` → usage event (same request id as the
//! response) → idempotency record.
//!
//! Deliberate difference from the reference (10 §12 Note 6): an unknown tool is detected
//! **before** the quota checks, so it is always a 404 (never a 429) and costs nothing.

pub mod echo;
pub mod kpi_summary;

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::idempotency::{self, Idempotency};
use crate::limits::Activity;
use crate::metering::Meter;
use crate::store::{Flow, Order, Reader, WriteTx};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, audit, ids};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::ops::Bound;

/// The endpoint string idempotency records of tool invocations are scoped by.
pub const INVOKE_ENDPOINT: &str = "/v1/tools/invoke";

/// What a tool sees when it runs: a read view of the invoking transaction (it sees exactly
/// what the invocation's checks saw), the operation context and the caller.
pub struct ToolEnv<'a> {
    reader: &'a dyn Reader,
    /// The operation's instant and settings.
    pub ctx: &'a Ctx,
    /// The invoking user (its tenant scopes every read).
    pub caller: &'a Principal,
}

impl<'a> ToolEnv<'a> {
    /// Read access to the store, for the crate's read helpers (`&env.reader()` is a `Reader`).
    pub(crate) fn reader(&self) -> &'a dyn Reader {
        self.reader
    }
}

impl Reader for &dyn Reader {
    fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get_raw(table, key)
    }

    fn scan_raw(
        &self,
        table: &'static str,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        order: Order,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Result<Flow>,
    ) -> Result<()> {
        (**self).scan_raw(table, lo, hi, order, visit)
    }
}

/// A registered tool.
///
/// `run` must only read; it reports problems with its input inside the returned value (as
/// `{"error": "…"}`), and returns `Err` only for storage failures or broken invariants.
pub trait Tool: Sync {
    /// The exact, case-sensitive name clients invoke it by.
    fn name(&self) -> &'static str;
    /// One sentence on what it does.
    fn description(&self) -> &'static str;
    /// JSON Schema (draft 2020-12) of the `payload` object it takes.
    fn input_schema(&self) -> Value;
    /// Runs the tool on `payload` for `env.caller`.
    fn run(&self, env: &ToolEnv<'_>, payload: &Map<String, Value>) -> Result<Value>;
}

/// Every tool, in listing order.
pub static REGISTRY: &[&dyn Tool] = &[&echo::Echo, &kpi_summary::KpiSummary];

/// The tool named exactly `name`.
pub fn find(name: &str) -> Option<&'static dyn Tool> {
    REGISTRY.iter().copied().find(|t| t.name() == name)
}

/// A tool as `GET /v1/tools` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolInfo {
    /// The name to invoke it by.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its `payload`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input_schema: Value,
}

/// Input of [`Bespin::invoke_tool`].
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeRequest {
    /// 1–100 characters.
    pub tool_name: String,
    /// The tool's input (an object; `{}` when omitted).
    pub payload: Map<String, Value>,
}

impl InvokeRequest {
    /// Validates a request body: `tool_name` a string of 1–100 characters, `payload` an
    /// optional object (`null`, arrays and scalars are `dict_type`). Unknown members are
    /// ignored.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let tool_name = f.req_string("tool_name", Len::between(1, 100));
        let payload = f.object("payload", Presence::Optional);
        f.finish()?;
        Ok(InvokeRequest {
            tool_name: got(tool_name)?,
            payload: got(payload)?.unwrap_or_default(),
        })
    }

    /// The normalised body the idempotency fingerprint covers: `{"tool_name","payload"}`.
    pub fn normalized(&self) -> Value {
        json!({"tool_name": self.tool_name, "payload": self.payload})
    }
}

/// The answer to a tool invocation (also what a replay returns, byte for byte).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invocation {
    /// Fresh UUID of this execution; also on its audit row and usage event.
    pub request_id: String,
    /// The tool's output (a tool-level problem is `{"error": "…"}` here).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Value,
}

/// Invokes a tool for `caller` under the client's `idempotency_key` (see the module docs for
/// the order of checks). Errors: `MissingHeader` for a blank key, `Forbidden` (`… to invoke
/// tools`), the entitlement errors, `IdempotencyConflict`, `NotFound` (`Tool '<name>' not
/// found`), `QuotaExceeded`, `DailyQuotaExceeded`, `UnknownEventType`, `PlanMissing`. A
/// failure writes nothing.
pub fn invoke(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    idempotency_key: &str,
    req: InvokeRequest,
) -> Result<Invocation> {
    if idempotency_key.trim().is_empty() {
        return Err(Error::MissingHeader("Idempotency-Key"));
    }
    caller.require(Permission::InvokeTools, "invoke tools")?;
    let tenant = caller.tenant_id();
    require_capability(tx, tenant, "tools")?;
    let scope = Idempotency::new(INVOKE_ENDPOINT, idempotency_key, &req.normalized());
    if let Some(stored) = idempotency::lookup::<Invocation>(tx, ctx, tenant, &scope)? {
        return Ok(stored);
    }
    let tool = find(&req.tool_name)
        .ok_or_else(|| Error::NotFound(format!("Tool '{}' not found", req.tool_name)))?;
    let permit = Meter::one("tool_invocation", tool.name())
        .with_daily(Activity::ToolInvocation)
        .check(tx, ctx, tenant)?;
    let request_id = ids::new_id();
    let result = tool.run(
        &ToolEnv {
            reader: &*tx,
            ctx,
            caller,
        },
        &req.payload,
    )?;
    audit::record(
        tx,
        ctx,
        caller,
        "tools.invoke",
        Some(tool.name()),
        &request_id,
    )?;
    permit.record(tx, ctx, caller, &request_id)?;
    let response = Invocation { request_id, result };
    idempotency::store(tx, ctx, tenant, &scope, &response)?;
    Ok(response)
}

impl Bespin {
    /// The registered tools with their input schemas (`GET /v1/tools`): any role; requires the
    /// `tools` capability. Errors: the entitlement errors.
    pub fn tools(&self, caller: &Principal) -> Result<Vec<ToolInfo>> {
        self.read(|r, _| {
            require_capability(r, caller.tenant_id(), "tools")?;
            Ok(REGISTRY
                .iter()
                .map(|t| ToolInfo {
                    name: t.name().to_owned(),
                    description: t.description().to_owned(),
                    input_schema: t.input_schema(),
                })
                .collect())
        })
    }

    /// Invokes a tool idempotently, in one transaction (see [`invoke`]).
    pub fn invoke_tool(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        req: InvokeRequest,
    ) -> Result<Invocation> {
        self.write(|tx, ctx| invoke(tx, ctx, caller, idempotency_key, req))
    }
}
