//! Responses before the shared headers are added.

use crate::AppState;
use crate::error::ApiError;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;

/// A write a reply waits for: run on the database's writer thread; its error, if any, is the
/// answer instead of the reply.
pub struct AfterWrite(pub(crate) Box<WriteFn>);

/// The write of an [`AfterWrite`].
pub(crate) type WriteFn = dyn FnOnce(&AppState) -> Result<(), ApiError> + Send;

impl std::fmt::Debug for AfterWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterWrite")
    }
}

/// A response body with its status, content type and extra headers.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body bytes.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// A write that must succeed before this reply is sent (see [`Reply::after_write`]).
    pub after: Option<AfterWrite>,
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
            after: None,
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

    /// This reply, sent only once `write` has run on the writer thread and succeeded (and its
    /// commit is durable, unless the server defers metered reads: [`crate::config::ReadMetering`]);
    /// if `write` fails, its error is the answer. For reads that a write must accompany (the
    /// metered search): the read runs on the runtime's worker, only the write queues for the
    /// writer.
    pub fn after_write(
        mut self,
        write: impl FnOnce(&AppState) -> Result<(), ApiError> + Send + 'static,
    ) -> Reply {
        self.after = Some(AfterWrite(Box::new(write)));
        self
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
