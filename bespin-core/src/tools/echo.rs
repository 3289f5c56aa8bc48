//! The `echo` tool: returns its payload unchanged (10 §10.7).

use super::{Tool, ToolEnv};
use crate::error::Result;
use serde_json::{Map, Value, json};

/// `{"echo": <payload exactly as received>}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Tool for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn description(&self) -> &'static str {
        "Returns the payload unchanged, as {\"echo\": payload}."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "additionalProperties": true})
    }

    fn run(&self, _env: &ToolEnv<'_>, payload: &Map<String, Value>) -> Result<Value> {
        Ok(json!({"echo": payload}))
    }
}
