//! Core errors as HTTP responses, in one place.

use crate::reply::Reply;
use bespin_core::{Error, ErrorKind};
use hyper::StatusCode;

/// A failed request: a core error plus where its validation items came from.
#[derive(Debug)]
pub struct ApiError {
    /// The core error.
    pub error: Error,
    /// The location prefix of validation items (`body`, `query`, `path`).
    pub source: &'static str,
}

impl ApiError {
    /// A core error whose validation items (if any) concern the request body.
    pub fn body(error: Error) -> Self {
        ApiError {
            error,
            source: "body",
        }
    }

    /// A core error whose validation items concern the query string.
    pub fn query(error: Error) -> Self {
        ApiError {
            error,
            source: "query",
        }
    }

    /// A core error whose validation items concern the path.
    pub fn path(error: Error) -> Self {
        ApiError {
            error,
            source: "path",
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
        }
    }

    /// The response: `{"detail": …}` with the kind's status; internal errors are logged in
    /// full and answered with the generic plain-text 500.
    pub fn into_reply(self) -> Reply {
        let kind = self.error.kind();
        if kind == ErrorKind::Internal {
            tracing::error!(code = self.error.code(), "internal error: {}", self.error);
            return Reply::internal();
        }
        let detail = match self.error {
            Error::Validation(items) => serde_json::json!(
                items
                    .into_iter()
                    .map(|i| i.prefixed(self.source))
                    .collect::<Vec<_>>()
            ),
            other => other.detail(),
        };
        let reply = Reply::detail(Self::status(kind), detail);
        if kind == ErrorKind::Unavailable {
            // Busy now, likely not in a second: clients and proxies back off for that long.
            return reply.with_header("retry-after", "1");
        }
        reply
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::body(error)
    }
}
