//! Python values to JSON and back, in one place.
//!
//! **In:** keyword arguments become one JSON object handed to the core's `from_json`, so Python
//! gets exactly the HTTP API's validation. `None`, `bool`, `int`, `float`, `str`, `list`/`tuple`
//! and `dict` with `str` keys map to JSON; a `date` becomes `"YYYY-MM-DD"` and a timezone-aware
//! `datetime` RFC 3339 in UTC. Anything else (and a naive `datetime`) is a `TypeError` naming the
//! argument; a non-finite float or an int beyond 64 bits is a `bespin.ValidationError`.
//!
//! **Out:** results are the core's `Serialize` structs, turned into plain dicts and lists with
//! the HTTP contract's field names. One generic rule types the instants and dates: a string member
//! whose name ends in `_at` (or is a KPI point's `ts`) and parses as RFC 3339 becomes an aware
//! `datetime` (UTC); a member
//! named `date`, `*_date`, `period_start` or `period_end` holding `YYYY-MM-DD` becomes a `date`.
//! Free-form content (`payload`, `cards`, a tool's or an execution's `result`, evidence
//! `source_ref`, timeline `metadata`, `input_schema`) and error details stay plain JSON data.

use crate::errors;
use bespin_core::LocPart;
use bespin_core::time::Date;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde::Serialize;
use serde_json::{Map, Number, Value};

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn datetime_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATETIME.import(py, "datetime", "datetime")
}

fn date_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DATE.import(py, "datetime", "date")
}

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    let tz = UTC.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("datetime")?
            .getattr("timezone")?
            .getattr("utc")?
            .unbind())
    })?;
    Ok(tz.bind(py))
}

fn loc_text(loc: &[LocPart]) -> String {
    loc.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A Python value as JSON; `loc` names where it sits (for messages and validation items).
pub fn py_to_json(v: &Bound<'_, PyAny>, loc: &mut Vec<LocPart>) -> PyResult<Value> {
    let py = v.py();
    if v.is_none() {
        return Ok(Value::Null);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(errors::invalid_arg(
            py,
            loc.clone(),
            "int_too_large",
            "Input should be an integer that fits in 64 bits",
            Value::String(v.str()?.to_string()),
        ));
    }
    if v.is_instance_of::<PyFloat>() {
        let f: f64 = v.extract()?;
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            errors::invalid_arg(
                py,
                loc.clone(),
                "finite_number",
                "Input should be a finite number",
                Value::String(f.to_string()),
            )
        });
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Value::String(v.extract()?));
    }
    if v.is_instance(datetime_type(py)?)? {
        let offset = v.call_method0("utcoffset")?;
        if offset.is_none() {
            return Err(PyTypeError::new_err(format!(
                "'{}' must be a timezone-aware datetime (e.g. tzinfo=datetime.timezone.utc), got \
                 a naive datetime",
                loc_text(loc)
            )));
        }
        let in_utc = v.call_method1("astimezone", (utc(py)?,))?;
        let s: String = in_utc
            .call_method1("strftime", ("%Y-%m-%dT%H:%M:%S.%fZ",))?
            .extract()?;
        return Ok(Value::String(s));
    }
    if v.is_instance(date_type(py)?)? {
        return Ok(Value::String(v.call_method0("isoformat")?.extract()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in v.try_iter()?.enumerate() {
            loc.push(LocPart::Index(i));
            out.push(py_to_json(&item?, loc)?);
            loc.pop();
        }
        return Ok(Value::Array(out));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut out = Map::new();
        for (k, item) in d.iter() {
            let Ok(key) = k.extract::<String>() else {
                return Err(PyTypeError::new_err(format!(
                    "'{}' must be a dict with str keys, got a {} key",
                    loc_text(loc),
                    type_name(&k)
                )));
            };
            loc.push(LocPart::Field(key.clone()));
            out.insert(key, py_to_json(&item, loc)?);
            loc.pop();
        }
        return Ok(Value::Object(out));
    }
    Err(PyTypeError::new_err(format!(
        "'{}' must be None, bool, int, float, str, list, tuple, dict, date or an aware \
         datetime, got {}",
        loc_text(loc),
        type_name(v)
    )))
}

/// Keyword arguments collected into the JSON object a core `from_json` validates.
#[derive(Default)]
pub struct Body {
    map: Map<String, Value>,
}

impl Body {
    /// An empty object.
    pub fn new() -> Self {
        Body::default()
    }

    /// A required argument: always sent (`None` as `null`, which the core reports).
    pub fn req(mut self, name: &str, v: &Bound<'_, PyAny>) -> PyResult<Self> {
        let value = py_to_json(v, &mut vec![LocPart::from(name)])?;
        self.map.insert(name.to_owned(), value);
        Ok(self)
    }

    /// An optional argument: `None` means "not given".
    pub fn opt(self, name: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        match v {
            Some(v) if !v.is_none() => self.req(name, v),
            _ => Ok(self),
        }
    }

    /// A value the binding fills in itself.
    pub fn set(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.map.insert(name.to_owned(), v.into());
        self
    }

    /// The object.
    pub fn json(self) -> Value {
        Value::Object(self.map)
    }
}

/// The changes of a PATCH-like method given as `**changes`: every key present is sent (`None`
/// as `null`, which clears a nullable field; the core refuses it for a required one); a key
/// not in `allowed` is a `TypeError`, as for any unexpected keyword argument.
pub fn changes(
    kwargs: Option<&Bound<'_, PyDict>>,
    allowed: &[&str],
    method: &str,
) -> PyResult<Value> {
    let mut map = Map::new();
    if let Some(kwargs) = kwargs {
        for (k, v) in kwargs.iter() {
            let key: String = k.extract()?;
            if !allowed.contains(&key.as_str()) {
                return Err(PyTypeError::new_err(format!(
                    "{method}() got an unexpected keyword argument '{key}' (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            let value = py_to_json(&v, &mut vec![LocPart::from(key.as_str())])?;
            map.insert(key, value);
        }
    }
    Ok(Value::Object(map))
}

/// Checks the idempotency key of an idempotent call: a blank key is a `ValidationError` at
/// `idempotency_key`, raised before the core is called.
pub fn idempotency_key(py: Python<'_>, key: &str) -> PyResult<()> {
    if key.trim().is_empty() {
        return Err(errors::invalid_arg(
            py,
            vec![LocPart::from("idempotency_key")],
            "string_too_short",
            "An idempotency key must not be blank",
            Value::String(key.to_owned()),
        ));
    }
    Ok(())
}

/// A date argument of a query-like parameter: `None`, a `date` or a `"YYYY-MM-DD"` string.
pub fn date_arg(v: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Date>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let py = v.py();
    if v.is_instance(datetime_type(py)?)? {
        return Err(PyTypeError::new_err(format!(
            "'{name}' must be a datetime.date or a 'YYYY-MM-DD' str, got a datetime"
        )));
    }
    if v.is_instance(date_type(py)?)? {
        let (y, m, d): (i32, u32, u32) = (
            v.getattr("year")?.extract()?,
            v.getattr("month")?.extract()?,
            v.getattr("day")?.extract()?,
        );
        return NaiveDate::from_ymd_opt(y, m, d)
            .map(|d| Some(Date(d)))
            .ok_or_else(|| PyTypeError::new_err(format!("'{name}' is out of range")));
    }
    if let Ok(s) = v.extract::<String>() {
        return bespin_core::limits::parse_date_param(Some(&s), Date(NaiveDate::MIN), &[name])
            .map(Some)
            .map_err(|e| errors::to_py(py, &e));
    }
    Err(PyTypeError::new_err(format!(
        "'{name}' must be a datetime.date or a 'YYYY-MM-DD' str, got {}",
        type_name(v)
    )))
}

/// Serialises a core result to JSON (run it inside the detached section).
pub fn to_json<T: Serialize>(v: &T) -> bespin_core::Result<Value> {
    serde_json::to_value(v)
        .map_err(|e| bespin_core::Error::Internal(format!("result not serialisable: {e}")))
}

/// Plain JSON data as Python objects (no typing of dates), for error details and payloads.
pub fn json_to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    convert(py, v, false)
}

/// A result as Python objects, with instants and dates typed (see the module docs).
pub fn result_to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    convert(py, v, true)
}

/// Members whose content is free-form JSON and stays untyped.
const OPAQUE: &[&str] = &[
    "payload",
    "cards",
    "detail",
    "result",
    "source_ref",
    "metadata",
    "input_schema",
];

fn is_date_key(k: &str) -> bool {
    k == "date" || k.ends_with("_date") || k == "period_start" || k == "period_end"
}

fn typed_member(py: Python<'_>, key: &str, s: &str) -> PyResult<Option<Py<PyAny>>> {
    if (key.ends_with("_at") || matches!(key, "ts" | "from" | "to"))
        && let Ok(t) = DateTime::parse_from_rfc3339(s)
    {
        let t = t.with_timezone(&Utc);
        let dt = datetime_type(py)?.call1((
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 1000,
            utc(py)?,
        ))?;
        return Ok(Some(dt.unbind()));
    }
    if is_date_key(key)
        && let Some(Date(d)) = Date::parse(s)
    {
        let d = date_type(py)?.call1((d.year(), d.month(), d.day()))?;
        return Ok(Some(d.unbind()));
    }
    Ok(None)
}

fn convert(py: Python<'_>, v: &Value, typed: bool) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                n.as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(convert(py, item, typed)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                let typed_here = typed && !OPAQUE.contains(&k.as_str());
                let value = match item {
                    Value::String(s) if typed_here => match typed_member(py, k, s)? {
                        Some(t) => t,
                        None => convert(py, item, typed_here)?,
                    },
                    _ => convert(py, item, typed_here)?,
                };
                dict.set_item(k, value)?;
            }
            dict.into_any().unbind()
        }
    })
}
