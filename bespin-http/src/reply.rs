//! Responses before the shared headers are added.

use crate::AppState;
use crate::error::ApiError;
use bespin_core::Bespin;
use bespin_core::idempotency::Stored;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;

/// A write a reply waits for: run on the database's writer thread, which runs nothing else of
/// the request (the handler parsed and authenticated it already). Its error, or its commit's,
/// is the answer instead of the reply.
pub struct AfterWrite {
    pub(crate) run: Box<WriteFn>,
    /// The write accompanies a read (metering): it is answered as
    /// [`crate::config::ReadMetering`] says, not necessarily once durable.
    pub(crate) metered_read: bool,
}

/// The write of an [`AfterWrite`].
pub(crate) type WriteFn = dyn FnOnce(&Bespin) -> bespin_core::Result<Made> + Send;

/// What a write makes of the reply it is attached to.
pub(crate) enum Made {
    /// The reply stands as it is (a metered read: the reply was made before the write).
    Attached,
    /// The reply is rendered from the write's value, off the writer thread, once the write is
    /// durable.
    Render(Box<dyn FnOnce() -> Reply + Send>),
}

impl std::fmt::Debug for AfterWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterWrite")
    }
}

/// Work a handler hands to the background lane: it runs there in `turn`'s turn and makes the
/// reply (which may still carry a write).
pub struct Later {
    pub(crate) turn: String,
    pub(crate) run: Box<LaterFn>,
}

/// The work of a [`Later`].
pub(crate) type LaterFn = dyn FnOnce(&AppState) -> Result<Reply, ApiError> + Send;

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Later")
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
    /// Work to go on with in the background lane instead (see [`Reply::in_lane`]).
    pub later: Option<Later>,
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
            later: None,
        }
    }

    /// 200 with the JSON an idempotent operation stored, as stored: a replay answers the same
    /// bytes as the first run, never parsed again.
    pub fn stored<T: serde::de::DeserializeOwned>(stored: &Stored<T>) -> Reply {
        Reply::raw(
            StatusCode::OK,
            "application/json",
            Bytes::copy_from_slice(stored.json()),
        )
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

    /// The reply to a write request: `op` runs on the database's writer thread (all of it
    /// that runs there: parsing and authentication are done), and once the commit holding its
    /// writes is durable, `render` makes the reply from its value, off the writer. An error of
    /// `op` or of the commit is the answer instead (validation items located in the body).
    pub fn write<T: Send + 'static>(
        op: impl FnOnce(&Bespin) -> bespin_core::Result<T> + Send + 'static,
        render: fn(&T) -> Reply,
    ) -> Reply {
        let run = move |db: &Bespin| {
            let value = op(db)?;
            Ok(Made::Render(Box::new(move || render(&value))))
        };
        let mut placeholder = Reply::raw(StatusCode::OK, "application/json", Bytes::new());
        placeholder.after = Some(AfterWrite {
            run: Box::new(run),
            metered_read: false,
        });
        placeholder
    }

    /// This reply, sent only once `write` has run on the writer thread and succeeded (and its
    /// commit is durable, unless the server defers metered reads: [`crate::config::ReadMetering`]);
    /// if `write` fails, its error is the answer. For reads that a write must accompany (the
    /// metered search): the read runs off the writer, only the write queues for it.
    pub fn after_write(
        mut self,
        write: impl FnOnce(&Bespin) -> bespin_core::Result<()> + Send + 'static,
    ) -> Reply {
        self.after = Some(AfterWrite {
            run: Box::new(move |db: &Bespin| write(db).map(|()| Made::Attached)),
            metered_read: true,
        });
        self
    }

    /// The reply is made by `work` in the background lane ([`crate::lane`]), in `turn`'s turn
    /// (the tenant's id): for a handler that found, after cheap checks, that its request is
    /// expensive (a search past its first budget).
    pub fn in_lane(
        turn: String,
        work: impl FnOnce(&AppState) -> Result<Reply, ApiError> + Send + 'static,
    ) -> Reply {
        let mut placeholder = Reply::raw(StatusCode::OK, "application/json", Bytes::new());
        placeholder.later = Some(Later {
            turn,
            run: Box::new(work),
        });
        placeholder
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
