//! Webhooks (issue 20): tenant admins register endpoints; every event an endpoint subscribes
//! to is put in a durable outbox in the event's own transaction, and the server's delivery
//! worker sends it following the Standard Webhooks specification (the HTTP side, signing and
//! the network checks, live in `bespin-http`; this module keeps the state).
//!
//! - [`endpoints`](self): the endpoints (URL, event types, description, enabled) and their
//!   signing secrets `whsec_…` — shown once, at creation and rotation; a rotated secret stays
//!   valid (both are used to sign) for 24 h. Secrets are stored as they are (they must sign),
//!   in a table the console never shows and that backups copy like any other row.
//! - [`delivery`]: the outbox (one row per event and endpoint, keyed by due time), the lease
//!   a worker takes on due rows, the outcome of each attempt, retries with backoff, endpoints
//!   disabled after 5 days of failures, the attempts list and the manual retry.
//!
//! Delivery is at least once: a row leaves the outbox only when an attempt's outcome is
//! recorded, and a leased row whose worker died becomes due again when its lease ends.
//! Receivers dedupe on `webhook-id` (the event id). Per-endpoint ordering is not promised.

pub mod delivery;
mod endpoints;

pub use endpoints::*;

use crate::store::TableInfo;

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[
    &endpoints::ENDPOINTS,
    &delivery::OUTBOX,
    &delivery::ATTEMPTS,
];

pub(crate) use delivery::enqueue;
pub(crate) use endpoints::check;
