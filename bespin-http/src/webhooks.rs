//! The webhook delivery worker (issue 20), Standard Webhooks on the wire.
//!
//! One task claims due deliveries from the core's outbox (a core operation that leases them:
//! safe with several servers over one database) and sends each in a task of its own, at most
//! [`TOTAL`] at once and [`PER_ENDPOINT`] per endpoint. A delivery is a `POST` of the event's
//! JSON with `webhook-id` (the event id: receivers dedupe on it), `webhook-timestamp` and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per valid
//! secret, space-separated — two during the 24 h after a rotation). Its outcome goes back to
//! the core (another operation), which schedules retries.
//!
//! Safety: only `https://` unless the host is allow-listed (`BESPIN_WEBHOOK_ALLOW`); the host
//! is resolved here and every address checked — private, loopback, link-local, unspecified,
//! multicast and other special addresses are refused unless allow-listed — and the socket is
//! connected to a checked address (no second resolution to race). Redirects are never
//! followed (a 3xx is a failed attempt); the whole attempt, connection included, has 15 s.

use crate::AppState;
use base64::Engine;
use bespin_core::Op;
use bespin_core::webhooks::delivery::{self, Claim, Due, Outcome};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// Deliveries in flight at once, all endpoints.
pub const TOTAL: usize = 256;
/// Deliveries in flight at once to one endpoint.
pub const PER_ENDPOINT: usize = 16;
/// The time an attempt has, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How long the worker sleeps when nothing was due.
const IDLE: Duration = Duration::from_millis(100);

/// The allow-list setting: comma-separated entries, blanks dropped.
pub fn parse_allow(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `host` (a name or an address) is allow-listed.
pub(crate) fn allowed_host(allow: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip_allowed(allow, ip),
        Err(_) => allow.iter().any(|a| a.eq_ignore_ascii_case(host)),
    }
}

/// Whether `ip` is allow-listed (an address or a CIDR block of the list).
fn ip_allowed(allow: &[String], ip: IpAddr) -> bool {
    allow.iter().any(|a| {
        let (net, bits) = match a.split_once('/') {
            Some((n, b)) => (n, b.parse::<u32>().ok()),
            None => (a.as_str(), None),
        };
        let Ok(net) = net.parse::<IpAddr>() else {
            return false;
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let bits = bits.unwrap_or(32).min(32);
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let bits = bits.unwrap_or(128).min(128);
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    })
}

/// Whether `ip` is one a webhook may not reach unless allow-listed: loopback, private,
/// link-local, unspecified, multicast, broadcast, shared (100.64/10), documentation and
/// benchmarking ranges, IPv6 unique-local and link-local, and IPv4 mapped into IPv6 of these.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let s = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The `webhook-signature` value for `body` of event `id` at `ts` under `secrets`.
pub fn signature(secrets: &[String], id: &str, ts: i64, body: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let content = format!("{id}.{ts}.{body}");
    secrets
        .iter()
        .filter_map(|s| b64.decode(s.strip_prefix("whsec_").unwrap_or(s)).ok())
        .filter_map(|key| Hmac::<sha2::Sha256>::new_from_slice(&key).ok())
        .map(|mut mac| {
            mac.update(content.as_bytes());
            format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TLS client of the web's public roots (webpki-roots) and the certificate authorities of
/// `ca_file` (`BESPIN_WEBHOOK_CA_FILE`), over `ring`: what the server's outgoing HTTPS
/// requests use (webhook deliveries, `bespin export-usage`).
pub(crate) fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, String> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in extra_roots(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file of certificate authorities (`BESPIN_WEBHOOK_CA_FILE`,
/// `bespin export-usage --ca-file`): at least one, or an error naming the file.
pub fn extra_roots(
    path: &std::path::Path,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};
    let named = |e: &dyn std::fmt::Display| format!("CA file {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| named(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(&e))?;
    if certs.is_empty() {
        return Err(named(&"no certificate in it"));
    }
    Ok(certs)
}

/// The worker's shared state.
pub(crate) struct Worker {
    allow: Vec<String>,
    total: Arc<Semaphore>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    tls: tokio_rustls::TlsConnector,
}

impl Worker {
    fn new(allow: Vec<String>, ca_file: Option<&std::path::Path>) -> Result<Worker, String> {
        Ok(Worker {
            allow,
            total: Arc::new(Semaphore::new(TOTAL)),
            endpoints: Mutex::new(HashMap::new()),
            tls: tls_connector(ca_file).map_err(|e| format!("webhook {e}"))?,
        })
    }

    fn endpoint_slots(&self, id: &str) -> Arc<Semaphore> {
        let mut m = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            // Endpoints with nothing in flight hold nothing: forget them.
            m.retain(|_, s| s.available_permits() < PER_ENDPOINT);
        }
        Arc::clone(
            m.entry(id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_ENDPOINT))),
        )
    }
}

/// Runs the worker until `stop`.
pub(crate) async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let config = &state.config;
    let worker = match Worker::new(
        config.webhook_allow.clone(),
        config.webhook_ca_file.as_deref(),
    ) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            tracing::error!("webhooks are not delivered: {e}");
            return;
        }
    };
    let db = state.bespin.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let free = worker.total.available_permits();
        // A read first: an idle server never takes the writer to claim nothing.
        let due = free > 0 && {
            let db = db.clone();
            let read = crate::core_read(db.reads_block(), move || db.webhooks_due());
            matches!(read.await, Ok(Ok(true)))
        };
        let claimed = if !due {
            Vec::new()
        } else {
            let c = Claim {
                max: free.min(256),
                lease_micros: i64::try_from(state.config.webhook_lease.as_micros())
                    .unwrap_or(i64::MAX),
            };
            match db.submit(Op::admin(c, delivery::claim)).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("webhook claim failed: {e}");
                    Vec::new()
                }
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(IDLE) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        for due in claimed {
            let Ok(total) = Arc::clone(&worker.total).acquire_owned().await else {
                return;
            };
            let w = Arc::clone(&worker);
            let db = db.clone();
            tokio::spawn(async move {
                let one = w.endpoint_slots(&due.endpoint_id).acquire_owned().await;
                let outcome = send(&w, due).await;
                drop((one, total));
                if let Err(e) = db.submit(Op::admin(outcome, delivery::record)).await {
                    tracing::warn!("webhook outcome not recorded: {e}");
                }
            });
        }
    }
}

/// One attempt: its outcome, whatever happened.
async fn send(w: &Worker, due: Due) -> Outcome {
    let started = Instant::now();
    let result = tokio::time::timeout(TIMEOUT, attempt(w, &due)).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (response_code, response_body, error) = match result {
        Ok(Ok((code, body))) => (Some(code), body, None),
        Ok(Err(e)) => (None, String::new(), Some(e)),
        Err(_) => (None, String::new(), Some("timed out after 15 s".to_owned())),
    };
    Outcome {
        due,
        response_code,
        error,
        latency_ms,
        response_body,
    }
}

/// Connects, signs, posts and reads the first 1 KiB of the answer.
async fn attempt(w: &Worker, due: &Due) -> Result<(u16, String), String> {
    let uri: hyper::Uri = due.url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must be https:// or http://".into()),
    };
    let allowed = allowed_host(&w.allow, &host);
    if !https && !allowed {
        return Err("plain http:// is refused for a host that is not allow-listed".into());
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = addrs
        .iter()
        .copied()
        .find(|a| !forbidden(a.ip()) || allowed || ip_allowed(&w.allow, a.ip()))
        .ok_or_else(|| format!("{host} resolves only to addresses that are refused (private, loopback or link-local)"))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let req = Request::post(path)
        .header(
            "host",
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("Bespin-Webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &due.event_id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            signature(&due.secrets, &due.event_id, ts, &due.body),
        )
        .body(Full::new(Bytes::from(due.body.clone())))
        .map_err(|e| format!("request: {e}"))?;
    if https {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(bare)
            .map_err(|e| format!("TLS name: {e}"))?;
        let tls = w
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(TokioIo::new(tls), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Result<(u16, String), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (code, _, kept) = exchange_kept(io, req, delivery::BODY_KEPT).await?;
    Ok((code, String::from_utf8_lossy(&kept).into_owned()))
}

/// Sends `req` over `io` (HTTP/1.1) and reads the status, the headers and at most `max` bytes
/// of the body.
pub(crate) async fn exchange_kept<T>(
    io: T,
    req: Request<Full<Bytes>>,
    max: usize,
) -> Result<(u16, hyper::HeaderMap, Vec<u8>), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"));
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };
    let code = res.status().as_u16();
    let headers = res.headers().clone();
    let mut body = res.into_body();
    let mut kept = Vec::new();
    while kept.len() < max {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    kept.extend_from_slice(d);
                }
            }
            _ => break,
        }
    }
    kept.truncate(max);
    driver.abort();
    Ok((code, headers, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_refused_unless_allow_listed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(
                forbidden(bad.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{bad}"
            );
        }
        for good in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(
                !forbidden(good.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{good}"
            );
        }
        let allow = parse_allow("127.0.0.1, 10.0.0.0/8,receiver.internal");
        assert!(allowed_host(&allow, "127.0.0.1"));
        assert!(allowed_host(&allow, "10.200.3.4"));
        assert!(!allowed_host(&allow, "11.0.0.1"));
        assert!(allowed_host(&allow, "Receiver.Internal"));
        assert!(!allowed_host(&allow, "127.0.0.2"));
    }

    #[test]
    fn the_signature_is_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
