//! The one error type of Bespin.
//!
//! Every fallible operation returns [`Error`]. Each variant has a stable snake_case
//! [`code`](Error::code) and a [`kind`](Error::kind); the HTTP crate maps the kind to a status
//! code and the Python crate maps it to an exception class, each in one place. The
//! [`detail`](Error::detail) is the JSON value the HTTP contract puts under `"detail"` (a string,
//! an object, or a list of validation errors).

use serde::Serialize;
use serde_json::{Value, json};
use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. Surfaces map kinds, not variants, to statuses and
/// exception classes, so adding a variant never needs a change there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A request value failed validation (HTTP 422).
    Validation,
    /// A malformed request that is not a field error (HTTP 400).
    BadRequest,
    /// Credentials were presented but do not match (HTTP 401).
    Unauthorized,
    /// The caller is known but may not do this (HTTP 403).
    Forbidden,
    /// The caller's plan does not entitle it to this (HTTP 403, structured detail).
    CapabilityDenied,
    /// The record does not exist in the caller's tenant (HTTP 404).
    NotFound,
    /// The request conflicts with the stored state (HTTP 409).
    Conflict,
    /// A credit, cap or daily allowance would be exceeded (HTTP 429, structured detail).
    QuotaExceeded,
    /// A bug or a storage failure (HTTP 500). Never caused by input.
    Internal,
    /// The server is too busy to take the request now; retrying later may succeed (HTTP 503).
    Unavailable,
    /// What the request points at is gone for good (HTTP 410): an event cursor older than the
    /// retention.
    Gone,
}

/// One path element of a validation error location: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocPart {
    /// An object member.
    Field(String),
    /// A list position (0-based).
    Index(usize),
}

impl From<&str> for LocPart {
    fn from(s: &str) -> Self {
        LocPart::Field(s.to_owned())
    }
}

impl From<usize> for LocPart {
    fn from(i: usize) -> Self {
        LocPart::Index(i)
    }
}

/// One failing field, in the shape of the contract's 422 items
/// (`{"type","loc","msg","input","ctx"?}`).
///
/// `loc` is relative to the validated value; the surface prefixes it with where the value came
/// from (`"body"`, `"query"`, `"path"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// The error type name (`missing`, `string_too_long`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where the failing value sits.
    pub loc: Vec<LocPart>,
    /// Human-readable message.
    pub msg: String,
    /// The offending value (for a missing field: the enclosing object).
    pub input: Value,
    /// Constraint parameters, for the types that have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl FieldError {
    /// A field error at `loc`.
    pub fn new(
        kind: &'static str,
        loc: Vec<LocPart>,
        msg: impl Into<String>,
        input: Value,
    ) -> Self {
        FieldError {
            kind,
            loc,
            msg: msg.into(),
            input,
            ctx: None,
        }
    }

    /// A `value_error` (a rule beyond type and length) at `loc`, saying `reason`.
    pub fn value_error(loc: Vec<LocPart>, input: Value, reason: &str) -> Self {
        FieldError::new("value_error", loc, format!("Value error, {reason}"), input)
            .with_ctx(json!({ "error": reason }))
    }

    /// The same error with constraint parameters attached.
    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// The same error with `prefix` put in front of its location (e.g. `"body"`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.loc.insert(0, LocPart::Field(prefix.to_owned()));
        self
    }
}

/// The structured body of a credit or cap refusal (contract `quota_exceeded`, billing layer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaExceeded {
    /// Always `"quota_exceeded"`.
    pub error: &'static str,
    /// The current billing period, `YYYY-MM-01`.
    pub period_start: String,
    /// The metered event that was refused.
    pub event_key: String,
    /// The plan's included credits.
    pub limit_credits: i64,
    /// Credits already used in the period.
    pub used_credits: f64,
    /// Credits this request asked for.
    pub requested_credits: f64,
    /// The plan's monthly cap for the event, when the cap is what refused.
    pub cap_raw_units: Option<f64>,
    /// Raw units already used in the period, when the cap is what refused.
    pub used_raw_units: Option<f64>,
    /// Raw units this request asked for (a whole number for the built-in events; an ingested
    /// event's `data.value` may have decimals).
    pub requested_raw_units: serde_json::Number,
}

/// The structured body of a daily-limit refusal (contract `quota_exceeded`, daily layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyQuotaExceeded {
    /// Always `"quota_exceeded"`.
    pub error: &'static str,
    /// The daily activity type that was refused.
    pub activity_type: String,
    /// The tenant's limit for the activity.
    pub limit: i64,
    /// Units already used today (UTC).
    pub current: i64,
    /// Units this request asked for.
    pub requested: i64,
}

/// Every way a Bespin operation can fail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more request values are invalid; nothing was changed.
    #[error("validation failed: {}", summarize(.0))]
    Validation(Vec<FieldError>),
    /// A credential (`X-Tenant-ID`, `X-User-ID`, `X-API-Key`) or the `Idempotency-Key` is absent
    /// or empty. Holds the header name.
    #[error("Missing required header: {0}")]
    MissingHeader(&'static str),
    /// The tenant does not exist or the API key does not match it.
    #[error("Invalid tenant ID or API key")]
    InvalidCredentials,
    /// No user has this id, in any tenant.
    #[error("User not found")]
    UserNotFound,
    /// The user exists but belongs to another tenant.
    #[error("User does not belong to this tenant")]
    UserNotInTenant,
    /// The caller's role may not do this; holds the full message
    /// (`Role 'member' is not authorized to …`).
    #[error("{0}")]
    Forbidden(String),
    /// The tenant has no subscription.
    #[error("Tenant has no active subscription")]
    NoSubscription,
    /// The tenant's subscription is not active.
    #[error("Tenant subscription is suspended")]
    SubscriptionSuspended {
        /// The stored status.
        status: String,
    },
    /// The tenant's plan does not grant the capability.
    #[error("Plan does not include capability: {capability_key}")]
    CapabilityDenied {
        /// The capability that was required.
        capability_key: String,
        /// The tenant's plan.
        plan_id: String,
    },
    /// A monthly credit allowance or per-event cap would be exceeded.
    #[error("quota exceeded for {}", .0.event_key)]
    QuotaExceeded(Box<QuotaExceeded>),
    /// A daily limit would be exceeded.
    #[error("daily quota exceeded for {}", .0.activity_type)]
    DailyQuotaExceeded(DailyQuotaExceeded),
    /// The metered event type is missing or inactive.
    #[error("unknown event type {event_key}")]
    UnknownEventType {
        /// The event that is not in the catalogue.
        event_key: String,
    },
    /// The tenant's subscription names a plan that does not exist (a configuration fault).
    #[error("plan {plan_id} not found")]
    PlanMissing {
        /// The dangling plan id.
        plan_id: String,
    },
    /// A malformed request that is not a field error; holds the message.
    #[error("{0}")]
    BadRequest(String),
    /// The record does not exist in the caller's tenant; holds the message.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the stored state; holds the message.
    #[error("{0}")]
    Conflict(String),
    /// An action cannot be executed from its current status (`POST /v1/actions/{id}/execute`
    /// on an action that is not `approved`, 40 §1.10); its detail is an object.
    #[error(
        "Cannot execute action with status '{current_status}'. Only 'approved' actions can be executed."
    )]
    InvalidStatusTransition {
        /// The action's status.
        current_status: String,
    },
    /// The idempotency key was used before with a different request.
    #[error("Idempotency key '{0}' was already used with a different request body")]
    IdempotencyConflict(String),
    /// The storage layer failed. Never caused by input.
    #[error("storage error: {0}")]
    Storage(String),
    /// The writer's queue is full: the operation was not queued, and nothing was written.
    #[error("Server busy: too many writes waiting; retry shortly")]
    Overloaded,
    /// The database server cannot be reached (PostgreSQL down, restarting or out of
    /// connections); the operation was not acknowledged. Retrying later may succeed: the
    /// store reconnects by itself.
    #[error("Database unavailable; retry shortly")]
    Unavailable(String),
    /// An event cursor names events that retention has purged: the caller must refetch state
    /// and continue from the oldest kept event.
    #[error("The event cursor is older than the retention; refetch state and start again")]
    CursorExpired,
    /// A broken invariant. Never caused by input.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| {
            let loc: Vec<String> = e
                .loc
                .iter()
                .map(|p| match p {
                    LocPart::Field(f) => f.clone(),
                    LocPart::Index(i) => i.to_string(),
                })
                .collect();
            format!("{}: {}", loc.join("."), e.msg)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The stable snake_case code of this error, for logs, clients and bindings.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation_error",
            Error::MissingHeader(_) => "missing_header",
            Error::InvalidCredentials => "invalid_credentials",
            Error::UserNotFound => "user_not_found",
            Error::UserNotInTenant => "user_not_in_tenant",
            Error::Forbidden(_) => "forbidden",
            Error::NoSubscription => "no_subscription",
            Error::SubscriptionSuspended { .. } => "subscription_suspended",
            Error::CapabilityDenied { .. } => "capability_denied",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::DailyQuotaExceeded(_) => "daily_quota_exceeded",
            Error::UnknownEventType { .. } => "unknown_event_type",
            Error::PlanMissing { .. } => "plan_not_found",
            Error::BadRequest(_) => "bad_request",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::InvalidStatusTransition { .. } => "invalid_status_transition",
            Error::IdempotencyConflict(_) => "idempotency_conflict",
            Error::Storage(_) => "storage_error",
            Error::Overloaded => "overloaded",
            Error::Unavailable(_) => "database_unavailable",
            Error::CursorExpired => "cursor_expired",
            Error::Internal(_) => "internal_error",
        }
    }

    /// The kind of failure, which decides the HTTP status and the Python exception class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Validation(_) => ErrorKind::Validation,
            Error::MissingHeader(_) | Error::BadRequest(_) | Error::UnknownEventType { .. } => {
                ErrorKind::BadRequest
            }
            Error::InvalidCredentials => ErrorKind::Unauthorized,
            Error::UserNotFound | Error::UserNotInTenant | Error::Forbidden(_) => {
                ErrorKind::Forbidden
            }
            Error::NoSubscription
            | Error::SubscriptionSuspended { .. }
            | Error::CapabilityDenied { .. } => ErrorKind::CapabilityDenied,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_)
            | Error::InvalidStatusTransition { .. }
            | Error::IdempotencyConflict(_) => ErrorKind::Conflict,
            Error::QuotaExceeded(_) | Error::DailyQuotaExceeded(_) => ErrorKind::QuotaExceeded,
            Error::PlanMissing { .. } | Error::Storage(_) | Error::Internal(_) => {
                ErrorKind::Internal
            }
            Error::Overloaded | Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::CursorExpired => ErrorKind::Gone,
        }
    }

    /// The contract's `detail` value: a string, a structured object, or the list of validation
    /// items (with locations as produced; surfaces prefix them).
    pub fn detail(&self) -> Value {
        match self {
            Error::Validation(items) => json!(items),
            Error::NoSubscription => json!({
                "error": "no_subscription",
                "message": "Tenant has no active subscription",
            }),
            Error::SubscriptionSuspended { status } => json!({
                "error": "subscription_suspended",
                "message": "Tenant subscription is suspended",
                "status": status,
            }),
            Error::CapabilityDenied {
                capability_key,
                plan_id,
            } => json!({
                "error": "capability_denied",
                "message": format!("Plan does not include capability: {capability_key}"),
                "capability_key": capability_key,
                "plan_id": plan_id,
            }),
            Error::QuotaExceeded(q) => json!(q),
            Error::DailyQuotaExceeded(q) => json!(q),
            Error::UnknownEventType { event_key } => json!({
                "error": "unknown_event_type",
                "event_key": event_key,
            }),
            Error::InvalidStatusTransition { current_status } => json!({
                "error": "invalid_status_transition",
                "current_status": current_status,
                "message": self.to_string(),
            }),
            Error::CursorExpired => json!({
                "error": "cursor_expired",
                "message": self.to_string(),
            }),
            Error::PlanMissing { plan_id } => json!({
                "error": "plan_not_found",
                "plan_id": plan_id,
            }),
            other => Value::String(other.to_string()),
        }
    }

    /// A validation failure of a single field.
    pub fn field(err: FieldError) -> Self {
        Error::Validation(vec![err])
    }

    /// Shorthand for a role refusal with the generic admin message.
    pub fn admin_only(role: &str) -> Self {
        Error::Forbidden(format!("Role '{role}' is not authorized for this action"))
    }

    /// Shorthand for a role refusal with an endpoint-specific verb phrase
    /// (`Role '<role>' is not authorized to <phrase>`).
    pub fn role_refused(role: &str, phrase: &str) -> Self {
        Error::Forbidden(format!("Role '{role}' is not authorized to {phrase}"))
    }
}

impl fmt::Display for LocPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocPart::Field(s) => f.write_str(s),
            LocPart::Index(i) => write!(f, "{i}"),
        }
    }
}
