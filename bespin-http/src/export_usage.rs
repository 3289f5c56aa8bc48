//! `bespin export-usage`: pushes the platform's usage export to an OpenMeter-compatible ingest
//! URL (a CloudEvents batch) or to Lago's batch events API, at least once.
//!
//! It reads pages of `GET /v1/admin/usage/export` from a running server (`--from`, with the
//! platform-admin key: a sidecar needs nothing but the URL and the key, and reads from any
//! server of a shared PostgreSQL database), POSTs each page to `--to`, and only after a 2xx
//! stores the page's cursor in `--state` (a temporary file written, fsynced and renamed over
//! the old one, then the directory fsynced). A crash between the POST and the rename sends
//! that page again: the CloudEvent ids are stable, so the receiver de-duplicates (OpenMeter
//! by id and source, Lago by `transaction_id`). A failure — of the export or of the receiver
//! — is retried with exponential backoff (1 s, doubling, at most 60 s). SIGTERM and Ctrl-C
//! stop it at once, a POST in flight abandoned and its page left for the next run.
//!
//! The HTTP client is the one the webhook worker uses (hyper's HTTP/1.1 connection, rustls
//! for `https://`): one request per connection, which a page of up to 1,000 events amortises.

use crate::webhooks::{exchange_kept, tls_connector};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The receiver's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A CloudEvents batch (`application/cloudevents-batch+json`), as OpenMeter ingests.
    OpenMeter,
    /// Lago's `POST /api/v1/events/batch`: `{"events": [{transaction_id,
    /// external_subscription_id, code, timestamp, properties}]}`.
    Lago,
}

/// What to push where.
#[derive(Debug, Clone)]
pub struct Pusher {
    /// The Bespin server to read the export from (`http://host:port`).
    pub from: String,
    /// Its platform-admin key.
    pub admin_key: String,
    /// The receiver's URL (the full ingest path).
    pub to: String,
    /// The receiver's format.
    pub format: Format,
    /// Sent as `Authorization: Bearer …` to the receiver, if given.
    pub token: Option<String>,
    /// Where the cursor is kept.
    pub state: PathBuf,
    /// Events per page (1–1,000; Lago takes at most 100 per batch).
    pub batch: usize,
    /// How long to wait when the export is caught up.
    pub poll: Duration,
    /// Stop once caught up instead of waiting for more.
    pub once: bool,
    /// A PEM file of certificate authorities trusted beside the public roots, for a receiver
    /// (or a server) behind an internal CA.
    pub ca_file: Option<PathBuf>,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The largest export page read (1,000 events of bounded fields).
const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;

/// One HTTP exchange: status, headers and body (at most `max` bytes).
async fn call(
    tls: &tokio_rustls::TlsConnector,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    max: usize,
) -> Result<(u16, hyper::HeaderMap, Vec<u8>), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: the URL must be https:// or http://")),
    };
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(
            "host",
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(
            "user-agent",
            concat!("bespin-export-usage/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    if https {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(bare)
            .map_err(|e| format!("TLS name: {e}"))?;
        let tls = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange_kept(TokioIo::new(tls), req, max).await
    } else {
        exchange_kept(TokioIo::new(tcp), req, max).await
    }
}

/// The cursor stored in `path` (none when the file does not exist).
pub fn load_cursor(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let v: Value = serde_json::from_str(&s)
                .map_err(|e| format!("{}: not a cursor file: {e}", path.display()))?;
            Ok(v["cursor"].as_str().map(str::to_owned))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Stores `cursor` durably: a temporary file beside `path`, written and fsynced, renamed over
/// it, then the directory fsynced (so the rename itself survives a crash).
pub fn save_cursor(path: &Path, cursor: &str, pushed: u64) -> Result<(), String> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("cursor")
    ));
    let text = json!({"cursor": cursor, "pushed": pushed}).to_string();
    let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The events of an export page in the receiver's format, with its media type.
pub fn payload(format: Format, events: &[Value]) -> (Vec<u8>, &'static str) {
    match format {
        Format::OpenMeter => (
            Value::Array(events.to_vec()).to_string().into_bytes(),
            "application/cloudevents-batch+json",
        ),
        Format::Lago => {
            let events: Vec<Value> = events
                .iter()
                .map(|e| {
                    let seconds = e["time"]
                        .as_str()
                        .and_then(bespin_core::kpis::parse_point_ts)
                        .map_or(0.0, |t| t.0 as f64 / 1e6);
                    json!({
                        "transaction_id": e["id"],
                        "external_subscription_id": e["data"]["tenant_id"],
                        "code": e["type"],
                        "timestamp": seconds,
                        "properties": e["data"],
                    })
                })
                .collect();
            (
                json!({ "events": events }).to_string().into_bytes(),
                "application/json",
            )
        }
    }
}

impl Pusher {
    /// Pushes until `stop` resolves (or, with `once`, until caught up); returns how many
    /// events were acknowledged by the receiver. Errors: a state file that cannot be read or
    /// written (nothing else stops it: failures are retried).
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> Result<u64, String> {
        tokio::pin!(stop);
        let tls = tls_connector(self.ca_file.as_deref())?;
        let mut cursor = load_cursor(&self.state)?;
        let mut pushed = 0u64;
        let mut backoff = Duration::from_secs(1);
        loop {
            let step = self.step(&tls, cursor.as_deref());
            let outcome = tokio::select! {
                r = step => r,
                () = &mut stop => return Ok(pushed),
            };
            let wait = match outcome {
                Ok(Some((next, n))) => {
                    save_cursor(&self.state, &next, pushed + n)?;
                    pushed += n;
                    tracing::info!(events = n, cursor = %next, "usage pushed");
                    cursor = Some(next);
                    backoff = Duration::from_secs(1);
                    continue;
                }
                Ok(None) if self.once => return Ok(pushed),
                Ok(None) => self.poll,
                Err(e) => {
                    tracing::warn!("usage export: {e}; retrying in {backoff:?}");
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    w
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut stop => return Ok(pushed),
            }
        }
    }

    /// Reads the page after `cursor` and pushes it: the new cursor and the number of events,
    /// or `None` when there is nothing new.
    async fn step(
        &self,
        tls: &tokio_rustls::TlsConnector,
        cursor: Option<&str>,
    ) -> Result<Option<(String, u64)>, String> {
        let mut url = format!(
            "{}/v1/admin/usage/export?limit={}",
            self.from.trim_end_matches('/'),
            self.batch
        );
        if let Some(c) = cursor {
            url.push_str("&after=");
            url.push_str(c);
        }
        let key = [("x-platform-admin-key", self.admin_key.clone())];
        let (code, headers, body) =
            call(tls, "GET", &url, &key, Vec::new(), MAX_PAGE_BYTES).await?;
        if code != 200 {
            return Err(format!(
                "GET {url}: {code} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        let events: Vec<Value> =
            serde_json::from_slice(&body).map_err(|e| format!("export page: {e}"))?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let next = headers
            .get("bespin-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| last["id"].as_str().map(str::to_owned))
            .ok_or("export page without a cursor")?;
        let (payload, media) = payload(self.format, &events);
        let mut h = vec![("content-type", media.to_owned())];
        if let Some(t) = &self.token {
            h.push(("authorization", format!("Bearer {t}")));
        }
        let (code, _, answer) = call(tls, "POST", &self.to, &h, payload, 4096).await?;
        if !(200..300).contains(&code) {
            return Err(format!(
                "POST {}: {code} {}",
                self.to,
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            ));
        }
        Ok(Some((next, events.len() as u64)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cursor_survives_a_rewrite_and_lago_gets_its_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursor.json");
        assert_eq!(load_cursor(&path).unwrap(), None);
        save_cursor(&path, "use_a", 1).unwrap();
        save_cursor(&path, "use_b", 2).unwrap();
        assert_eq!(load_cursor(&path).unwrap().as_deref(), Some("use_b"));
        let e = json!({"id": "use_b", "type": "llm_tokens", "time": "2026-01-02T00:00:01Z",
                       "data": {"tenant_id": "t1", "value": 3}});
        let (body, media) = payload(Format::Lago, &[e]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(media, "application/json");
        assert_eq!(
            v["events"][0],
            json!({"transaction_id": "use_b", "external_subscription_id": "t1",
                   "code": "llm_tokens", "timestamp": 1767312001.0,
                   "properties": {"tenant_id": "t1", "value": 3}})
        );
    }
}
