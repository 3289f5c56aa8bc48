//! JSON Schemas of tool inputs and outputs, made from the same core types (utoipa) as
//! `/openapi.json`, so a tool's schema is its REST operation's: the type's schema is the root,
//! the types it refers to are put under `$defs` and the references pointed there.

use crate::openapi::SchemaFn;
use serde_json::{Map, Value, json};

/// The JSON Schema of the type `f` describes (an OpenAPI [`SchemaFn`]), self-contained.
pub fn of(f: SchemaFn) -> Value {
    let mut deps = Vec::new();
    let root = f(&mut deps);
    let mut defs = Map::new();
    for (name, s) in deps {
        defs.insert(name, serde_json::to_value(s).unwrap_or(Value::Null));
    }
    let mut root = serde_json::to_value(root).unwrap_or(Value::Null);
    // A reference at the root: the schema itself, inlined.
    if let Some(name) = root
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        && let Some(s) = defs.get(name)
    {
        root = s.clone();
    }
    let mut defs = Value::Object(defs);
    repoint(&mut defs);
    repoint(&mut root);
    if let Value::Object(m) = &mut root
        && defs.as_object().is_some_and(|d| !d.is_empty())
    {
        m.insert("$defs".into(), defs);
    }
    root
}

/// `#/components/schemas/X` → `#/$defs/X`, everywhere in `v`; and a `type` that is a list
/// (`["string", "null"]`, how OpenAPI 3.1 writes an optional field) becomes `anyOf` branches of
/// one type each, which clients that map tool schemas onto a single-type dialect accept.
fn repoint(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(types)) = m.get("type").cloned() {
                m.remove("type");
                let branches: Vec<Value> =
                    types.into_iter().map(|t| json!({ "type": t })).collect();
                m.insert("anyOf".into(), Value::Array(branches));
            }
            for (k, x) in m.iter_mut() {
                if k == "$ref"
                    && let Value::String(s) = x
                    && let Some(name) = s.strip_prefix("#/components/schemas/")
                {
                    *s = format!("#/$defs/{name}");
                } else {
                    repoint(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(repoint),
        _ => {}
    }
}

/// An object schema of `properties` (name → schema), `required` naming the required ones.
pub fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"type": "object", "properties": props, "required": required})
}

/// `{"type": "string", "description": d}`.
pub fn string(d: &str) -> Value {
    json!({"type": "string", "description": d})
}

/// The arguments of a read tool: its REST route's query parameters (found by `op_id`, with
/// their documented ranges and defaults, the one description of them), as strings or
/// strings (numbers are taken too) — the route's own validation reads them, as it reads a query
/// string — and
/// `extra` string parameters (a path's id) first; `required` names the required ones.
pub fn query_of(op_id: &str, extra: &[(&str, &str)], required: &[&str]) -> Value {
    let routes = crate::routes::all();
    let documented = routes
        .iter()
        .find(|r| r.doc.op == Some(op_id))
        .map_or(&[][..], |r| r.doc.query);
    let properties: Vec<(&str, Value)> = extra
        .iter()
        .map(|(n, d)| (*n, string(d)))
        .chain(documented.iter().map(|(n, d)| (*n, string(d))))
        .collect();
    object(&properties, required)
}

/// The `idempotency_key` argument of a tool that changes state. Its description tells the
/// model to reuse the key on a retry: a model told the key must be "unique" makes a new one
/// each time, and a retry then runs (and bills) twice.
pub fn idempotency_key() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": bespin_core::idempotency::KEY_MAX_CHARS,
        "description": "Names this one intended change. Pick a key for the change (e.g. \
            'create-task-renewal-call-2026-12-04') and send the SAME key again whenever you \
            retry the same change after an error or timeout: the change then happens, and is \
            billed, only once, and the retry returns the first result. Use a new key only for \
            a different change."
    })
}

/// `schema` (an object schema) with the `idempotency_key` argument added and required.
pub fn with_idempotency_key(mut schema: Value) -> Value {
    if let Value::Object(m) = &mut schema {
        m.entry("type").or_insert(json!("object"));
        if let Value::Object(p) = m.entry("properties").or_insert(json!({})) {
            p.insert("idempotency_key".into(), idempotency_key());
        }
        match m.entry("required").or_insert(json!([])) {
            Value::Array(r) => r.push(json!("idempotency_key")),
            other => *other = json!(["idempotency_key"]),
        }
    }
    schema
}
