//! The `kpi_summary` tool: the change of one KPI over a window ending at its latest point
//! (10 §10.7, with the window rule of spec README decision 4).
//!
//! Problems with the input are answered inside `result` as `{"error": "…"}` (the contract's
//! behaviour), in this order: missing `kpi_id`, bad `window_days`, unknown KPI, no points.
//! Inputs that made the reference fail with 500 are tool-level errors here as well: a `kpi_id`
//! that is an array or object gives `{"error":"kpi_id must be a string"}`, and a `window_days`
//! above [`MAX_WINDOW_DAYS`] gives `{"error":"window_days must be at most 3652059"}`.

use super::{Tool, ToolEnv};
use crate::error::Result;
use crate::kpis;
use serde_json::{Map, Value, json};

/// The largest accepted `window_days`: the number of days from 0001-01-01 to 9999-12-31,
/// longer than any stored history can be.
pub const MAX_WINDOW_DAYS: u64 = 3_652_059;

/// The default window, in days.
pub const DEFAULT_WINDOW_DAYS: u64 = 7;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct KpiSummary;

fn error(msg: impl Into<String>) -> Value {
    json!({"error": msg.into()})
}

/// Whether a JSON value counts as "given" (Python truthiness of the reference).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `window_days`: absent → 7; `true` → 1; an integer ≥ 1; else `Err(message)`.
fn window_days(v: Option<&Value>) -> std::result::Result<u64, String> {
    const BAD: &str = "window_days must be a positive integer";
    let n = match v {
        None => return Ok(DEFAULT_WINDOW_DAYS),
        Some(Value::Bool(true)) => 1,
        Some(Value::Number(n)) if !n.is_f64() => match n.as_u64() {
            Some(n) if n >= 1 => n,
            _ => return Err(BAD.into()),
        },
        Some(_) => return Err(BAD.into()),
    };
    if n > MAX_WINDOW_DAYS {
        return Err(format!("window_days must be at most {MAX_WINDOW_DAYS}"));
    }
    Ok(n)
}

/// The text form of a scalar id in error messages (`True` for the boolean, as the contract).
fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

impl Tool for KpiSummary {
    fn name(&self) -> &'static str {
        "kpi_summary"
    }

    fn description(&self) -> &'static str {
        "Change of one KPI over a window of window_days days ending at its latest point."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "kpi_id": {"type": "string", "minLength": 1, "description": "The KPI to summarise."},
                "window_days": {
                    "type": "integer", "minimum": 1, "maximum": MAX_WINDOW_DAYS, "default": DEFAULT_WINDOW_DAYS,
                    "description": "Window length in days; the start is the oldest point at or after latest - window_days x 24 h."
                }
            },
            "required": ["kpi_id"]
        })
    }

    fn run(&self, env: &ToolEnv<'_>, payload: &Map<String, Value>) -> Result<Value> {
        let Some(raw_id) = payload.get("kpi_id").filter(|v| truthy(v)) else {
            return Ok(error("Missing required field: kpi_id"));
        };
        let days = match window_days(payload.get("window_days")) {
            Ok(d) => d,
            Err(msg) => return Ok(error(msg)),
        };
        let kpi_id = match raw_id {
            Value::String(s) => s.as_str(),
            Value::Array(_) | Value::Object(_) => return Ok(error("kpi_id must be a string")),
            other => return Ok(error(format!("KPI '{}' not found", id_text(other)))),
        };
        let r = env.reader();
        let tenant = env.caller.tenant_id();
        if !kpis::kpi_exists(&r, tenant, kpi_id)? {
            return Ok(error(format!("KPI '{kpi_id}' not found")));
        }
        let Some(w) = kpis::window(&r, tenant, kpi_id, None, days)? else {
            return Ok(error(format!("No data points found for KPI '{kpi_id}'")));
        };
        Ok(json!({
            "kpi_id": kpi_id,
            "latest": w.latest.view(),
            "start": w.start.view(),
            "delta_abs": w.delta_abs,
            "delta_pct": w.delta_pct,
        }))
    }
}
