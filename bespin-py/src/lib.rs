//! Python bindings of bespin-core: the `bespin._bespin` extension module.
//!
//! One file per core area; each adds `#[pymethods]` to the shared classes of `handle` and has
//! a `register` called here. Conversions live in `convert`, the exception mapping in
//! `errors`.

mod audit;
mod billing;
mod briefs;
mod chat;
mod conversations;
mod convert;
mod coreos;
mod errors;
mod events;
mod handle;
mod jobs;
mod kpis;
mod lifecycle;
mod limits;
mod metering;
mod notifications;
mod tenancy;
mod tools;

use pyo3::prelude::*;

#[pymodule]
fn _bespin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    handle::register(m)?;
    tenancy::register(m)?;
    lifecycle::register(m)?;
    limits::register(m)?;
    billing::register(m)?;
    metering::register(m)?;
    notifications::register(m)?;
    conversations::register(m)?;
    tools::register(m)?;
    kpis::register(m)?;
    briefs::register(m)?;
    jobs::register(m)?;
    chat::register(m)?;
    coreos::register(m)?;
    events::register(m)?;
    audit::register(m)?;
    Ok(())
}
