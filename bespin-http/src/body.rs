//! The response body: the whole reply at once (every route but one), or a stream of chunks
//! fed through a bounded channel (the event stream, `GET /v1/events/stream`). An enum, not a
//! boxed trait object, so the common reply costs what `Full` did.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc::Receiver;

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// The whole body.
    Full(Full<Bytes>),
    /// Chunks as they come; the body ends when the sender is dropped.
    Stream(Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(f) => Pin::new(f).poll_frame(cx),
            Body::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(f) => f.is_end_stream(),
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(f) => f.size_hint(),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}
