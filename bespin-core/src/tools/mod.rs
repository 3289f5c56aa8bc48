//! The tool gateway (10 §10.6–§10.7): a typed registry of tools and `POST /v1/tools/invoke`.
//!
//! A tool is a [`Tool`]: a name, a JSON-Schema description of its input and a function over a
//! read view of the invoking transaction. Adding a tool is one module plus one line in
//! [`REGISTRY`]. [`Bespin::tools`] lists the registry for `GET /v1/tools`.
//!
//! [`invoke`] follows 10 §10.6 in one write transaction: role → entitlement `tools` →
//! idempotency lookup (a replay returns the stored body and costs nothing; another body under
//! the same key is a 409) → credit quota `tool_invocation` × 1 → daily limit
//! `tool_invocation` → tool lookup → run → audit `tools.invoke` → usage event (same request id
//! as the response) → idempotency record. As the contract's processing table (10 §10.6) and
//! quota order (20 §7.1) list it, an unknown tool is looked up after the quota checks: a tenant
//! out of quota gets 429 even for a tool that does not exist; an unknown tool still costs
//! nothing, since a failed request writes nothing.

pub mod echo;
pub mod kpi_summary;

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::idempotency::{self, Idempotency, Stored};
use crate::limits::Activity;
use crate::metering::Meter;
use crate::store::{Reader, WriteTx};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, Op, audit, ids};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvokeRequest {
    /// 1–100 characters.
    pub tool_name: String,
    /// The tool's input (an object; `{}` when omitted).
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = Object))]
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

/// The `data` of a `tool.invoked` event, rendered straight from borrowed fields (no JSON tree).
/// The fields are in the order a `serde_json` object sorts its keys, which is how this data
/// was first rendered: the event's JSON stays byte for byte the same.
#[derive(Serialize)]
struct InvokedData<'a> {
    request_id: &'a str,
    tool_name: &'a str,
}

/// Invokes a tool for `caller` under the client's `idempotency_key` (see the module docs for
/// the order of checks). Errors: `MissingHeader` for a blank key, `Forbidden` (`… to invoke
/// tools`), the entitlement errors, `IdempotencyConflict`, `QuotaExceeded`,
/// `DailyQuotaExceeded`, `UnknownEventType`, `PlanMissing`, `NotFound` (`Tool '<name>' not
/// found`). A failure writes nothing.
pub fn invoke(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    idempotency_key: &str,
    req: InvokeRequest,
) -> Result<Stored<Invocation>> {
    idempotency::check_key(idempotency_key)?;
    caller.require(Permission::InvokeTools, "invoke tools")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "tools")?;
    let scope = Idempotency::new(INVOKE_ENDPOINT, idempotency_key, &req.normalized());
    if let Some(stored) = idempotency::lookup(tx, ctx, tenant, &scope)? {
        return Ok(stored);
    }
    let permit = Meter::one("tool_invocation", &req.tool_name)
        .with_daily(Activity::ToolInvocation)
        .check(tx, ctx, tenant)?;
    let tool = find(&req.tool_name)
        .ok_or_else(|| Error::NotFound(format!("Tool '{}' not found", req.tool_name)))?;
    let request_id = ids::new_id();
    let result = tool.run(
        &ToolEnv {
            reader: &*tx,
            ctx,
            caller,
        },
        &req.payload,
    )?;
    let entry = audit::Entry::new(caller.user_id(), "tools.invoke", &request_id)
        .tool(Some(tool.name()))
        .capability("tools")
        .units(1)
        .idempotency_key(Some(idempotency_key));
    audit::append(tx, ctx, tenant, entry)?;
    permit.record(tx, ctx, caller, &request_id)?;
    let data = InvokedData {
        request_id: &request_id,
        tool_name: tool.name(),
    };
    events::emit(tx, ctx, caller, catalog::TOOL_INVOKED, tool.name(), &data)?;
    let response = Invocation { request_id, result };
    idempotency::store(tx, ctx, tenant, &scope, response)
}

/// [`invoke`] as an operation for the writer (`Op::on_with(caller, key, req, invoke)`) that
/// names its idempotency record, so that the writer reads the records of a batch's invocations
/// at once (on PostgreSQL one round trip for all of them instead of one each).
pub fn invoke_op(
    caller: Principal,
    idempotency_key: String,
    req: InvokeRequest,
) -> Op<Stored<Invocation>> {
    let ahead = idempotency::Ahead::new(caller.tenant_id(), INVOKE_ENDPOINT, &idempotency_key);
    Op::on_with(caller, idempotency_key, req, invoke).reading_ahead(ahead)
}

impl Bespin {
    /// The registered tools with their input schemas (`GET /v1/tools`): any role; requires the
    /// `tools` capability. Errors: the entitlement errors.
    pub fn tools(&self, caller: &Principal) -> Result<Vec<ToolInfo>> {
        self.read(|r, _| {
            require_capability(r, caller, "tools")?;
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
    ) -> Result<Stored<Invocation>> {
        self.write_as(caller, |tx, ctx| {
            invoke(tx, ctx, caller, idempotency_key, req)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DailyLimits;
    use crate::testutil::{db, kpi, tenant, trail};

    fn req(body: Value) -> InvokeRequest {
        InvokeRequest::from_json(&body).expect("valid")
    }

    #[test]
    fn request_validation() {
        for bad in [
            json!({}),
            json!({"tool_name": ""}),
            json!({"tool_name": "x".repeat(101)}),
            json!({"tool_name": "echo", "payload": null}),
            json!({"tool_name": "echo", "payload": [1]}),
        ] {
            assert!(
                matches!(InvokeRequest::from_json(&bad), Err(Error::Validation(_))),
                "{bad}"
            );
        }
        let r = req(json!({"tool_name": "echo", "extra": 5}));
        assert_eq!(r.normalized(), json!({"tool_name": "echo", "payload": {}}));
    }

    #[test]
    fn a_deeply_nested_answer_is_replayed_as_stored() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        // As deep as an HTTP body may carry it (serde_json reads 127 levels; the body is one).
        let mut payload = json!(true);
        for _ in 0..126 {
            payload = json!({ "d": payload });
        }
        let body = json!({"tool_name": "echo", "payload": payload});
        let first = db
            .invoke_tool(&admin, "deep", req(body.clone()))
            .expect("run");
        // The answer nests deeper than serde_json reads by default.
        assert!(serde_json::from_slice::<Value>(first.json()).is_err());
        let replay = db.invoke_tool(&admin, "deep", req(body)).expect("replay");
        assert_eq!(replay.json(), first.json());
        assert_eq!(
            replay
                .into_value()
                .expect("read back without a depth limit")
                .result,
            json!({ "echo": payload })
        );
        let report = db.check().expect("check");
        assert!(report.violations.is_empty(), "{report}");
    }

    #[test]
    fn echo_replay_costs_nothing_and_returns_the_same_body() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let body = json!({"tool_name": "echo", "payload": {"n": 1.0, "s": "é"}});
        let stored = db
            .invoke_tool(&admin, "k1", req(body.clone()))
            .expect("run");
        let first = stored.clone().into_value().expect("invocation");
        assert_eq!(first.result, json!({"echo": {"n": 1.0, "s": "é"}}));
        let after_first = trail(&db, &admin);
        assert_eq!(after_first, (1, 1));
        let audit = db.audit_log(&admin, 1).expect("audit");
        assert_eq!(audit[0].action, "tools.invoke");
        assert_eq!(audit[0].tool_name.as_deref(), Some("echo"));
        assert_eq!(audit[0].request_id, first.request_id);
        assert_eq!(audit[0].capability.as_deref(), Some("tools"));
        assert_eq!(audit[0].units, Some(1));
        assert!(audit[0].idempotency_key.is_some());
        let ledger = db.billing_ledger(&admin, None, 1).expect("ledger");
        assert_eq!(ledger.items[0].request_id, first.request_id);
        assert_eq!(ledger.items[0].tool_name.as_deref(), Some("echo"));
        let daily = |db: &Bespin| db.daily_usage(&admin, None).expect("usage").usage[1].units;
        assert_eq!(daily(&db), 1);
        // Replay, extra top-level fields ignored, key order ignored.
        let replay = db
            .invoke_tool(
                &admin,
                "k1",
                req(json!({"payload": {"s": "é", "n": 1.0}, "tool_name": "echo", "x": 1})),
            )
            .expect("replay");
        assert!(replay.replayed() && !stored.replayed());
        assert_eq!(replay.json(), stored.json(), "byte for byte");
        assert_eq!(replay.into_value().expect("invocation"), first);
        assert_eq!(trail(&db, &admin), after_first);
        assert_eq!(daily(&db), 1);
        // A replay still needs the role.
        let e = db
            .invoke_tool(&member, "k1", req(body))
            .expect_err("member");
        assert_eq!(
            e.to_string(),
            "Role 'member' is not authorized to invoke tools"
        );
        // Same key, other body (1 vs 1.0): conflict, even for an unknown tool.
        for other in [
            json!({"tool_name": "echo", "payload": {"n": 1, "s": "é"}}),
            json!({"tool_name": "nope"}),
        ] {
            let e = db.invoke_tool(&admin, "k1", req(other)).expect_err("409");
            assert_eq!(
                e.to_string(),
                "Idempotency key 'k1' was already used with a different request body"
            );
        }
        assert_eq!(trail(&db, &admin), after_first);
        let e = db
            .invoke_tool(&admin, " ", req(json!({"tool_name": "echo"})))
            .expect_err("400");
        assert_eq!(e, Error::MissingHeader("Idempotency-Key"));
    }

    #[test]
    fn unknown_tool_is_404_after_quota_and_replays_survive_exhaustion() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let before = trail(&db, &admin);
        let e = db
            .invoke_tool(&admin, "b", req(json!({"tool_name": "Echo"})))
            .expect_err("404");
        assert_eq!(e.to_string(), "Tool 'Echo' not found");
        assert_eq!(trail(&db, &admin), before, "an unknown tool costs nothing");
        db.invoke_tool(&admin, "a", req(json!({"tool_name": "echo"})))
            .expect("run");
        let limits = DailyLimits {
            tool_invocation_daily_limit: 1,
            ..DailyLimits::default()
        };
        db.set_limits(&admin, limits).expect("limits");
        let before = trail(&db, &admin);
        // 10 §10.6: the quota checks come before the tool lookup.
        let e = db
            .invoke_tool(&admin, "b", req(json!({"tool_name": "Echo"})))
            .expect_err("429");
        assert!(matches!(e, Error::DailyQuotaExceeded(_)), "{e:?}");
        // The failed key stored nothing, so it is free for another body later.
        db.invoke_tool(&admin, "a", req(json!({"tool_name": "echo"})))
            .expect("replay while exhausted");
        assert_eq!(trail(&db, &admin), before);
    }

    #[test]
    fn kpi_summary_results_and_tool_level_errors() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let (other, _) = tenant(&db);
        let id = kpi(
            &db,
            &admin,
            "MRR",
            &[("2026-01-01", 1000.0), ("2026-01-08T00:00:00Z", 1250.0)],
        );
        let theirs = kpi(&db, &other, "Theirs", &[("2026-01-01", 1.0)]);
        let empty = kpi(&db, &admin, "Empty", &[]);
        let mut n = 0;
        let mut run = |payload: Value| {
            n += 1;
            db.invoke_tool(
                &admin,
                &format!("key-{n}"),
                req(json!({"tool_name": "kpi_summary", "payload": payload})),
            )
            .and_then(Stored::into_value)
            .expect("200")
            .result
        };
        assert_eq!(
            run(json!({"kpi_id": id})),
            json!({"kpi_id": id, "latest": {"ts": "2026-01-08T00:00:00Z", "value": 1250.0},
                   "start": {"ts": "2026-01-01T00:00:00Z", "value": 1000.0},
                   "delta_abs": 250.0, "delta_pct": 25.0})
        );
        assert_eq!(
            run(json!({"kpi_id": id, "window_days": true}))["delta_pct"],
            json!(0.0)
        );
        let missing = json!({"error": "Missing required field: kpi_id"});
        for p in [
            json!({}),
            json!({"kpi_id": null}),
            json!({"kpi_id": ""}),
            json!({"kpi_id": 0}),
            json!({"kpi_id": false}),
            json!({"kpi_id": []}),
            json!({"kpi_id": {}}),
        ] {
            assert_eq!(run(p), missing);
        }
        let bad_days = json!({"error": "window_days must be a positive integer"});
        for d in [
            json!(0),
            json!(-1),
            json!(1.0),
            json!("7"),
            json!(null),
            json!(false),
        ] {
            assert_eq!(run(json!({"kpi_id": id, "window_days": d})), bad_days);
        }
        assert_eq!(
            run(json!({"kpi_id": id, "window_days": 99_999_999_999_u64})),
            json!({"error": "window_days must be at most 3652059"})
        );
        assert_eq!(
            run(json!({"kpi_id": [1]})),
            json!({"error": "kpi_id must be a string"})
        );
        assert_eq!(
            run(json!({"kpi_id": true})),
            json!({"error": "KPI 'True' not found"})
        );
        assert_eq!(
            run(json!({"kpi_id": 1.5})),
            json!({"error": "KPI '1.5' not found"})
        );
        assert_eq!(
            run(json!({"kpi_id": theirs})),
            json!({"error": format!("KPI '{theirs}' not found")})
        );
        assert_eq!(
            run(json!({"kpi_id": empty})),
            json!({"error": format!("No data points found for KPI '{empty}'")})
        );
        // Tool-level errors are still audited and metered.
        assert_eq!(trail(&db, &admin).0, n);
    }

    #[test]
    fn registry_lists_tools_with_schemas() {
        let (db, _) = db();
        let (_, member) = tenant(&db);
        let tools = db.tools(&member).expect("any role");
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["echo", "kpi_summary"]);
        assert_eq!(tools[1].input_schema["required"], json!(["kpi_id"]));
        assert!(find("kpi_summary").is_some() && find("KPI_SUMMARY").is_none());
    }
}
