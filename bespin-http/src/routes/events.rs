//! The event log: `GET /v1/events` (pages) and `GET /v1/events/stream` (Server-Sent Events).
//!
//! The stream is a task per connection that reads the caller's events through a core
//! [`Subscription`] (a page of the log at a time, from the shared snapshot on this runtime
//! worker) and sends SSE frames into a bounded channel that the response body drains. When the
//! caller is up to date it awaits the subscription's wake-up, a heartbeat
//! (`Config::stream_heartbeat`, 15 s), the client's disconnect or the server's shutdown. A
//! client that leaves the channel full for `Config::stream_slow_consumer` (10 s) is
//! disconnected (it resumes from its last id); the writer never waits on a subscriber.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::events::{self, EventPage, EventQuery, SharedEvent, Subscription};
use bespin_core::{Bespin, Error, Op};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The stream's path (its cache headers differ: see `headers::apply`).
pub(crate) const EVENT_STREAM: &str = "/v1/events/stream";

/// Chunks (each the events of one read, at most a page) one connection may have waiting.
const BUFFER_FRAMES: usize = 64;

const QUERY: &[(&str, &str)] = &[
    (
        "after",
        "an event id (evt_…): only later events; absent: from the oldest kept (pages) or from now (stream)",
    ),
    (
        "types",
        "comma-separated event types of the catalogue (components.schemas.EventType); absent: every type the caller may see",
    ),
    ("limit", "1..500, default 100 (pages)"),
    (
        "last_event_id",
        "stream: resume after this id (as the Last-Event-ID header)",
    ),
];

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("events", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/events" => list as list_events, d("The tenant's events the caller may see, oldest first, after a cursor (410 for a cursor older than the retention)")
            .query(QUERY).ok(200, schema::<EventPage>)),
        route!(GET "/v1/events/stream" => stream as stream_events, d("The same events live, as Server-Sent Events (text/event-stream): id, event and data per event; resumes after Last-Event-ID; a heartbeat comment every 15 s; a stale cursor gets a first `event: reset` and the header Last-Event-ID: earliest")
            .query(QUERY)),
    ]
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = EventQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.events(&caller, &q)?))
}

fn stream(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let mut query = r.query_json();
    // `last_event_id` (query) or `Last-Event-ID` (header) resumes like `after`.
    let resume = r.header("last-event-id").or_else(|| {
        query
            .get("last_event_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    if let Some(o) = query.as_object_mut() {
        o.remove("last_event_id");
        if let Some(id) = &resume {
            o.insert("after".into(), id.clone().into());
        }
    }
    let mut q = EventQuery::from_json(&query).map_err(ApiError::query)?;
    if q.after.is_none() {
        // A new stream starts at the newest event: it shows what happens from now on.
        q.after = Some(s.bespin.newest_event_seq()?);
    }
    let (sub, reset) = match s.bespin.subscribe(&caller, q.clone()) {
        Err(Error::CursorExpired) => {
            let q = EventQuery { after: None, ..q };
            (s.bespin.subscribe(&caller, q)?, true)
        }
        other => (other?, false),
    };
    let hello: &'static [u8] = if reset {
        b"event: reset\ndata: {}\n\n"
    } else {
        b": stream open\n\n"
    };
    let format = StreamFormat {
        hello: Bytes::from_static(hello),
        render: Box::new(|page, out| page.iter().for_each(|e| frame(e, out))),
        farewell: None,
    };
    let reply = follow(s, sub, format);
    Ok(if reset {
        reply.with_header("last-event-id", "earliest")
    } else {
        reply
    })
}

/// Appends the SSE frame of `e` to `out`.
fn frame(e: &SharedEvent, out: &mut Vec<u8>) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(e.id.as_bytes());
    out.extend_from_slice(b"\nevent: ");
    out.extend_from_slice(e.event_type.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // The event's JSON (made once for every stream of the tenant) has no raw newline: serde
    // escapes them in strings, so it is one line.
    out.extend_from_slice(e.json().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Sends `chunk`, waiting at most `patience` (`Config::stream_slow_consumer`) for room;
/// `false` when the connection is gone or too slow.
pub(crate) async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes, patience: Duration) -> bool {
    matches!(
        tokio::time::timeout(patience, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}

/// Appends the frames of one page of events (possibly none) to a buffer.
pub(crate) type Render = Box<dyn FnMut(&[Arc<SharedEvent>], &mut Vec<u8>) + Send>;

/// How one live stream writes: its first bytes (sent at once, so clients and proxies see the
/// stream open), the frames of each page the caller may see, and its last bytes when the server
/// stops (none: the connection just ends and the client resumes).
pub(crate) struct StreamFormat {
    /// The first bytes.
    pub hello: Bytes,
    /// The frames of each page.
    pub render: Render,
    /// The last bytes, at a server stop.
    pub farewell: Option<Bytes>,
}

/// A `text/event-stream` reply fed by a task that follows `sub` and writes it in `format`:
/// the event stream's and MCP's `subscriptions/listen`'s one mechanism.
pub(crate) fn follow(s: &AppState, sub: Subscription, format: StreamFormat) -> Reply {
    let (tx, rx) = mpsc::channel(BUFFER_FRAMES);
    let stop = s.stop_streams.subscribe();
    let pace = Pace {
        heartbeat: s.config.stream_heartbeat,
        patience: s.config.stream_slow_consumer,
    };
    tokio::spawn(pump(sub, tx, stop, format, pace, s.bespin.reads_block()));
    Reply::streaming("text/event-stream", rx)
}

/// A stream's timing: its heartbeat period and how long it waits on a full buffer.
#[derive(Clone, Copy)]
struct Pace {
    heartbeat: Duration,
    patience: Duration,
}

/// Feeds one stream until the client leaves, is too slow, or the server stops.
async fn pump(
    mut sub: Subscription,
    tx: mpsc::Sender<Bytes>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut format: StreamFormat,
    pace: Pace,
    blocking: bool,
) {
    if !send(&tx, format.hello.clone(), pace.patience).await {
        return;
    }
    let farewell = |tx: mpsc::Sender<Bytes>, bytes: Option<Bytes>| async move {
        if let Some(b) = bytes {
            send(&tx, b, pace.patience).await;
        }
    };
    loop {
        if *stop.borrow() {
            return farewell(tx, format.farewell).await;
        }
        // The read goes where a read may block (the blocking pool on PostgreSQL) and the
        // subscription comes back with its page.
        let read = crate::core_read(blocking, move || {
            let page = sub.fetch_shared();
            (sub, page)
        });
        let Ok((back, page)) = read.await else {
            return;
        };
        sub = back;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                // A purge overtook a consumer 30 days behind, or the database failed: end the
                // stream; the client resumes (and gets a reset if its cursor is stale).
                tracing::debug!("event stream ended: {e}");
                return;
            }
        };
        if !page.is_empty() || sub.has_more() {
            // One chunk for what one read found (a group commit's events together): one send
            // and one socket write per wake-up, not per event.
            let mut chunk = Vec::with_capacity(page.len() * 512);
            (format.render)(&page, &mut chunk);
            if !chunk.is_empty() && !send(&tx, Bytes::from(chunk), pace.patience).await {
                return;
            }
            continue;
        }
        tokio::select! {
            () = sub.changed() => {
                let wait = sub.coalesce();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            () = tokio::time::sleep(pace.heartbeat) => {
                if !send(&tx, Bytes::from_static(b": heartbeat\n\n"), pace.patience).await {
                    return;
                }
            }
            () = tx.closed() => return,
            _ = stop.changed() => return farewell(tx, format.farewell).await,
        }
    }
}

/// The server's upkeep of the log: every `poll_every` (`BESPIN_EVENT_POLL_SECS`, 1 s), a
/// wake-up of local subscribers for commits of other servers sharing the database that the
/// store did not hear of ([`Bespin::poll_events`]: one read, none while the store hears them
/// through PostgreSQL's `LISTEN`); every `purge_every`
/// (the upkeep interval, `BESPIN_UPKEEP_INTERVAL_SECS`), when a read finds events past the
/// retention, the purge in batches of 10,000 events (a core operation on the writer) until a
/// batch comes back short.
pub(crate) async fn maintain(
    db: Bespin,
    stop: tokio::sync::watch::Receiver<bool>,
    purge_every: Duration,
    poll_every: Duration,
) {
    let mut tick = tokio::time::interval(poll_every.max(Duration::from_millis(10)));
    let mut purge_tick = tokio::time::interval(purge_every.max(Duration::from_millis(10)));
    // The first tick of an interval is at once: the first purge waits a whole period, as the
    // other upkeep does not run at start either.
    purge_tick.tick().await;
    let blocking = db.reads_block();
    loop {
        let purge = tokio::select! {
            _ = tick.tick() => false,
            _ = purge_tick.tick() => true,
        };
        if *stop.borrow() {
            return;
        }
        if !purge {
            let polled = {
                let db = db.clone();
                crate::core_read(blocking, move || db.poll_events()).await
            };
            if let Ok(Err(e)) = polled {
                tracing::warn!("event poll failed: {e}");
            }
            continue;
        }
        // Only when a read finds something to purge: an idle server never takes the writer
        // for it.
        let expired = {
            let db = db.clone();
            crate::core_read(blocking, move || db.events_expired().unwrap_or(false)).await
        };
        if !matches!(expired, Ok(true)) {
            continue;
        }
        loop {
            match db.submit(Op::admin(10_000, events::purge)).await {
                Ok(10_000) => continue,
                Ok(0) => break,
                Ok(k) => {
                    tracing::info!(purged = k, "events past the retention");
                    break;
                }
                Err(e) => {
                    tracing::warn!("event purge failed: {e}");
                    break;
                }
            }
        }
    }
}
