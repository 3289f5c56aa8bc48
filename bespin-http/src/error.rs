//! Core errors as HTTP responses, in one place.

use crate::reply::Reply;
use bespin_core::audit::Refusal as AuditRefusal;
use bespin_core::{Error, ErrorKind};
use hyper::StatusCode;

/// A failed request: a core error (with where its validation items came from) or a refusal
/// of the server itself, and the headers its answer carries. Every error answer of the server
/// is made from one of these, by [`ApiError::into_reply`].
#[derive(Debug)]
pub struct ApiError {
    problem: Problem,
    /// The location prefix of validation items (`body`, `query`, `path`).
    source: &'static str,
    /// Headers the answer carries (`Allow`, `Retry-After`, `Connection`, rate-limit headers).
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug)]
enum Problem {
    Core(Error),
    Refused(Refusal),
}

/// The server's own refusals, made before any core operation (the request pipeline's, and
/// the console's throttle).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The path exists, not with this method (405; give `Allow` with
    /// [`ApiError::with_header`]).
    MethodNotAllowed,
    /// The body is larger than the route's limit (413).
    BodyTooLarge,
    /// The body did not arrive within the body timeout (408).
    BodyTimeout,
    /// The body could not be read (400).
    BodyUnreadable,
    /// A request rate limit (tenant creation per client, or the plan's rate for a tenant):
    /// 429 with the contract's `{"detail": …, "error": "rate_limit_exceeded"}`.
    RateLimited(String),
    /// A refusal with its status and `{"detail": …}` message (429 for a tenant's large writes
    /// ahead of their pace, or for a client whose keys keep failing).
    Status(StatusCode, &'static str),
}

impl ApiError {
    /// A core error whose validation items (if any) concern the request body.
    pub fn body(error: Error) -> Self {
        ApiError::core(error, "body")
    }

    /// A core error whose validation items concern the query string.
    pub fn query(error: Error) -> Self {
        ApiError::core(error, "query")
    }

    /// A core error whose validation items concern the path.
    pub fn path(error: Error) -> Self {
        ApiError::core(error, "path")
    }

    /// A core error whose validation items concern an MCP tool's or prompt's arguments.
    pub fn arguments(error: Error) -> Self {
        ApiError::core(error, "arguments")
    }

    fn core(error: Error, source: &'static str) -> Self {
        ApiError {
            problem: Problem::Core(error),
            source,
            headers: Vec::new(),
        }
    }

    /// A refusal of the server itself.
    pub fn refused(refusal: Refusal) -> Self {
        ApiError {
            problem: Problem::Refused(refusal),
            source: "body",
            headers: Vec::new(),
        }
    }

    /// The core error, if this is one.
    pub fn core_error(&self) -> Option<&Error> {
        match &self.problem {
            Problem::Core(e) => Some(e),
            Problem::Refused(_) => None,
        }
    }

    /// The same error, answered with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The same error, answered with `headers` too.
    pub fn with_headers(
        mut self,
        headers: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Self {
        self.headers.extend(headers);
        self
    }

    /// The audit log's record of this error, when it is a refusal that is audited (see
    /// [`bespin_core::audit::refused`]): a core 403 of role, capability or subscription, a
    /// core 429 of quota, or the server's 429 of a tenant's rate or pace, refusing `action`
    /// (the route's operation id) of request `request_id`.
    pub fn refusal(&self, action: &str, request_id: &str) -> Option<AuditRefusal> {
        match &self.problem {
            Problem::Core(e) => AuditRefusal::of_error(action, request_id, e),
            Problem::Refused(Refusal::RateLimited(_)) => {
                Some(AuditRefusal::rate_limited(action, request_id))
            }
            Problem::Refused(Refusal::Status(s, _)) if *s == StatusCode::TOO_MANY_REQUESTS => {
                Some(AuditRefusal::rate_limited(action, request_id))
            }
            Problem::Refused(_) => None,
        }
    }

    /// The status code of a core error kind.
    pub fn status(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden | ErrorKind::CapabilityDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Gone => StatusCode::GONE,
        }
    }

    /// The response: for a core error `{"detail": …}` with the kind's status (internal errors
    /// are logged in full and answered with the generic plain-text 500; `Unavailable` carries
    /// `Retry-After`), for a refusal its own status and body; then the error's headers.
    pub fn into_reply(self) -> Reply {
        let mut reply = match self.problem {
            Problem::Core(error) => core_reply(error, self.source),
            Problem::Refused(refusal) => refusal_reply(refusal),
        };
        reply.headers.extend(self.headers);
        reply
    }
}

fn core_reply(error: Error, source: &str) -> Reply {
    let kind = error.kind();
    if kind == ErrorKind::Internal {
        tracing::error!(code = error.code(), "internal error: {error}");
        return Reply::internal();
    }
    let detail = match error {
        Error::Validation(items) => serde_json::json!(
            items
                .into_iter()
                .map(|i| i.prefixed(source))
                .collect::<Vec<_>>()
        ),
        other => other.detail(),
    };
    let reply = Reply::detail(ApiError::status(kind), detail);
    if kind == ErrorKind::Unavailable {
        // Busy now, likely not in a second: clients and proxies back off for that long.
        return reply.with_header("retry-after", "1");
    }
    reply
}

fn refusal_reply(refusal: Refusal) -> Reply {
    match refusal {
        Refusal::MethodNotAllowed => {
            Reply::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
        Refusal::BodyTooLarge => {
            Reply::detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
        }
        Refusal::BodyTimeout => Reply::detail(
            StatusCode::REQUEST_TIMEOUT,
            "Request body not received in time",
        ),
        Refusal::BodyUnreadable => {
            Reply::detail(StatusCode::BAD_REQUEST, "Could not read the request body")
        }
        Refusal::RateLimited(detail) => Reply::json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({ "detail": detail, "error": "rate_limit_exceeded" }),
        ),
        Refusal::Status(status, detail) => Reply::detail(status, detail),
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::body(error)
    }
}
