//! Responses before the shared headers are added.

use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;

/// A response body with its status, content type and extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body bytes.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// Compact JSON with `status`.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::raw(status, "application/json", body),
            Err(e) => {
                tracing::error!("response not serialisable: {e}");
                Reply::internal()
            }
        }
    }

    /// 200 with a JSON body.
    pub fn ok<T: Serialize + ?Sized>(value: &T) -> Reply {
        Reply::json(StatusCode::OK, value)
    }

    /// 201 with a JSON body.
    pub fn created<T: Serialize + ?Sized>(value: &T) -> Reply {
        Reply::json(StatusCode::CREATED, value)
    }

    /// Any bytes.
    pub fn raw(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// An HTML page.
    pub fn html(body: impl Into<Bytes>) -> Reply {
        Reply::raw(StatusCode::OK, "text/html; charset=utf-8", body)
    }

    /// `{"detail": <detail>}` with `status`.
    pub fn detail(status: StatusCode, detail: impl Serialize) -> Reply {
        Reply::json(status, &serde_json::json!({ "detail": detail }))
    }

    /// The plain-text 500.
    pub fn internal() -> Reply {
        Reply::raw(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "Internal Server Error",
        )
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
