//! The exception hierarchy and the one mapping from core error kinds to it.
//!
//! ```text
//! BespinError(Exception)            Internal kinds, closed handles, unknown kinds
//! ├── ValidationError(ValueError)   detail: the list of 422 items ({"type","loc","msg","input"})
//! ├── BadRequest(ValueError)
//! ├── Unauthorized
//! ├── Forbidden
//! │   └── CapabilityDenied          detail: {"error","message","capability_key","plan_id"} …
//! ├── NotFound
//! ├── Conflict
//! ├── CursorExpired                 an event cursor older than the retention (HTTP 410)
//! └── QuotaExceeded                 detail: the structured quota_exceeded object
//! ```
//!
//! Every instance carries `.code` (the core's stable snake_case code) and `.detail` (the HTTP
//! contract's `detail` value, as plain Python data). The classes are made at module load with
//! `type(...)` because two of them also derive from the built-in `ValueError`.

use bespin_core::{Error, ErrorKind, FieldError, LocPart};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use serde_json::Value;

/// (class name, parent in this table, extra built-in base, docstring). The base comes first.
const HIERARCHY: &[(&str, Option<&str>, Option<&str>, &str)] = &[
    (
        "BespinError",
        None,
        None,
        "Base of every Bespin error. `.code` is the core's snake_case error code, `.detail` the \
         HTTP contract's detail (a str, a dict or a list of validation items).",
    ),
    (
        "ValidationError",
        Some("BespinError"),
        Some("ValueError"),
        "An argument failed validation; nothing was written. `.detail` lists every failing \
         field as {'type', 'loc', 'msg', 'input'} (the HTTP 422 items, loc without 'body').",
    ),
    (
        "BadRequest",
        Some("BespinError"),
        Some("ValueError"),
        "A malformed request that is not a field error (HTTP 400), e.g. an unknown event type.",
    ),
    (
        "Unauthorized",
        Some("BespinError"),
        None,
        "The tenant does not exist or the API key does not match it (HTTP 401).",
    ),
    (
        "Forbidden",
        Some("BespinError"),
        None,
        "The caller is known but may not do this (HTTP 403).",
    ),
    (
        "CapabilityDenied",
        Some("Forbidden"),
        None,
        "The tenant's plan or subscription does not entitle it to this (HTTP 403); `.detail` \
         is the structured refusal.",
    ),
    (
        "NotFound",
        Some("BespinError"),
        None,
        "The record does not exist in the caller's tenant (HTTP 404).",
    ),
    (
        "Conflict",
        Some("BespinError"),
        None,
        "The request conflicts with the stored state (HTTP 409).",
    ),
    (
        "CursorExpired",
        Some("BespinError"),
        None,
        "An event cursor is older than the retention (HTTP 410): refetch state and follow \
         from the oldest kept event (`after=None`).",
    ),
    (
        "QuotaExceeded",
        Some("BespinError"),
        None,
        "A credit allowance, cap or daily limit would be exceeded (HTTP 429); `.detail` is the \
         structured quota_exceeded dict.",
    ),
];

/// The one mapping from core error kinds to Python classes. `ErrorKind::Internal` (and any kind
/// added later) falls back to the base class.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Validation => "ValidationError",
        ErrorKind::BadRequest => "BadRequest",
        ErrorKind::Unauthorized => "Unauthorized",
        ErrorKind::Forbidden => "Forbidden",
        ErrorKind::CapabilityDenied => "CapabilityDenied",
        ErrorKind::NotFound => "NotFound",
        ErrorKind::Conflict => "Conflict",
        ErrorKind::Gone => "CursorExpired",
        ErrorKind::QuotaExceeded => "QuotaExceeded",
        ErrorKind::Internal | ErrorKind::Unavailable => "BespinError",
    }
}

/// The classes in `HIERARCHY` order, made once per process.
static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn make_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(HIERARCHY.len());
    for (name, parent, extra, doc) in HIERARCHY {
        let mut bases: Vec<Bound<'_, PyAny>> = Vec::new();
        match parent {
            Some(p) => {
                let i = HIERARCHY
                    .iter()
                    .position(|(n, ..)| n == p)
                    .ok_or_else(|| PyRuntimeError::new_err("broken exception table"))?;
                bases.push(made[i].bind(py).clone().into_any());
            }
            None => bases.push(builtins.getattr("Exception")?),
        }
        if let Some(e) = extra {
            bases.push(builtins.getattr(*e)?);
        }
        let ns = PyDict::new(py);
        ns.set_item("__module__", "bespin")?;
        ns.set_item("__doc__", *doc)?;
        if parent.is_none() {
            ns.set_item("code", "bespin_error")?;
            ns.set_item("detail", py.None())?;
        }
        let cls = type_.call1((*name, PyTuple::new(py, bases)?, ns))?;
        made.push(cls.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let classes = CLASSES.get_or_try_init(py, || make_classes(py))?;
    let i = HIERARCHY.iter().position(|(n, ..)| *n == name).unwrap_or(0);
    Ok(classes[i].bind(py).clone())
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (name, ..) in HIERARCHY {
        m.add(*name, class(py, name)?)?;
    }
    Ok(())
}

/// An exception of class `name` with `.code` and `.detail` set.
fn raise(py: Python<'_>, name: &str, message: &str, code: &str, detail: &Value) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = class(py, name)?.call1((message,))?;
        exc.setattr("code", code)?;
        exc.setattr("detail", crate::convert::json_to_py(py, detail)?)?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// Turns a core error into the matching Python exception.
pub fn to_py(py: Python<'_>, err: &Error) -> PyErr {
    raise(
        py,
        class_name(err.kind()),
        &err.to_string(),
        err.code(),
        &err.detail(),
    )
}

/// The error of a call on a closed handle (`bespin.BespinError`, code `closed`).
pub fn closed(py: Python<'_>) -> PyErr {
    let msg = "the Bespin database is closed";
    raise(py, "BespinError", msg, "closed", &Value::String(msg.into()))
}

/// A `bespin.ValidationError` for one argument that the binding itself checks (the same item
/// shape as the core's).
pub fn invalid(py: Python<'_>, item: FieldError) -> PyErr {
    to_py(py, &Error::field(item))
}

/// A one-item validation error at argument `name`.
pub fn invalid_arg(
    py: Python<'_>,
    loc: Vec<LocPart>,
    kind: &'static str,
    msg: &str,
    input: Value,
) -> PyErr {
    invalid(py, FieldError::new(kind, loc, msg, input))
}
