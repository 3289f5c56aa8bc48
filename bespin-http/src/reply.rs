//! Responses before the shared headers are added.

use crate::AppState;
use crate::error::ApiError;
use bespin_core::idempotency::Stored;
use bespin_core::{Bespin, Op};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

/// A write a reply waits for: a core operation ([`Op`]) handed to the database's writer
/// thread, which runs nothing of the server (the handler parsed and authenticated the request
/// already, and the reply is rendered after, on the worker). Its error, or its commit's, is the
/// answer instead of the reply.
pub struct AfterWrite {
    pub(crate) submit: Box<SubmitFn>,
}

/// How an [`AfterWrite`] hands its operation over (called by the pipeline on the runtime's
/// worker, with whether the metering of reads may skip waiting for the commit): the future of
/// the reply it makes, or `None` when the reply it is attached to stands.
pub(crate) type SubmitFn = dyn FnOnce(&Bespin, bool) -> WriteFuture + Send;

/// What an [`AfterWrite`] waits for.
pub(crate) type WriteFuture =
    Pin<Box<dyn Future<Output = bespin_core::Result<Option<Reply>>> + Send>>;

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
    /// A streamed body instead of `body`: chunks as the sender sends them, ended when it is
    /// dropped (see [`Reply::streaming`]).
    pub stream: Option<tokio::sync::mpsc::Receiver<Bytes>>,
    /// A refusal answered inside a successful response (an MCP tool error: 403 or 429 of
    /// the caller), which the pipeline audits, filling in the request id, before it sends
    /// the reply, as it audits a refused request.
    pub audit_refusal: Option<Box<bespin_core::audit::refused::Refusal>>,
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

    /// 201 with a record's JSON as the writer rendered it for its event (no second rendering).
    pub fn created_rendered<T>(r: &bespin_core::events::Rendered<T>) -> Reply {
        Reply::raw(StatusCode::CREATED, "application/json", r.json().to_vec())
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
            stream: None,
            audit_refusal: None,
        }
    }

    /// 200 with a body streamed from `rx` (the event stream).
    pub fn streaming(content_type: &'static str, rx: tokio::sync::mpsc::Receiver<Bytes>) -> Reply {
        let mut r = Reply::raw(StatusCode::OK, content_type, Bytes::new());
        r.stream = Some(rx);
        r
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

    /// The reply to a write request: `op`, a core operation, is submitted to the database's
    /// writer thread (all of the request that runs there: parsing and authentication are
    /// done), and once the commit holding its writes is durable, `render` makes the reply from
    /// its value on the runtime's worker. An error of `op` or of the commit is the answer
    /// instead (validation items located in the body).
    pub fn write<T: Send + 'static>(op: Op<T>, render: fn(&T) -> Reply) -> Reply {
        Reply::waiting_for(move |db, _| {
            let done = db.submit(op);
            Box::pin(async move { done.await.map(|v| Some(render(&v))) })
        })
    }

    /// Like [`Reply::write`], for a surface that answers the operation's error itself instead
    /// of with the REST mapping (MCP turns a refused tool call into a tool error): once the
    /// commit is durable, `settle` makes the reply, on the runtime's worker, from the
    /// operation's value or its error (or the commit's).
    pub fn write_settled<T: Send + 'static>(
        op: Op<T>,
        settle: impl FnOnce(bespin_core::Result<T>) -> Reply + Send + 'static,
    ) -> Reply {
        Reply::waiting_for(move |db, _| {
            let done = db.submit(op);
            Box::pin(async move { Ok(Some(settle(done.await))) })
        })
    }

    /// A placeholder reply that is made by `submit` (see [`AfterWrite`]).
    fn waiting_for(submit: impl FnOnce(&Bespin, bool) -> WriteFuture + Send + 'static) -> Reply {
        let mut placeholder = Reply::raw(StatusCode::OK, "application/json", Bytes::new());
        placeholder.after = Some(AfterWrite {
            submit: Box::new(submit),
        });
        placeholder
    }

    /// This reply, sent only once `op` has run on the writer thread and succeeded (and its
    /// commit is durable, unless the server defers metered reads:
    /// [`crate::config::ReadMetering`]); if `op` fails, its error is the answer. For reads that
    /// a write must accompany (the metered search): the read runs off the writer, only the
    /// write — a core operation — queues for it.
    pub fn after_write(self, op: Op<()>) -> Reply {
        self.after_write_or(op, |e| ApiError::body(e).into_reply())
    }

    /// [`Reply::after_write`] for a surface that answers the operation's failure itself:
    /// `refused` makes the answer from its error (MCP answers a tool error).
    pub fn after_write_or(
        mut self,
        op: Op<()>,
        refused: impl FnOnce(bespin_core::Error) -> Reply + Send + 'static,
    ) -> Reply {
        self.after = Some(AfterWrite {
            submit: Box::new(move |db: &Bespin, deferred: bool| {
                let done = if deferred {
                    db.submit_deferred(op)
                } else {
                    db.submit(op)
                };
                Box::pin(async move {
                    Ok(match done.await {
                        Ok(()) => None,
                        Err(e) => Some(refused(e)),
                    })
                })
            }),
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
