//! A test harness: the real server on a free local port, and a tiny HTTP/1.1 client that can
//! send anything (malformed bodies, odd headers). Used by this crate's tests and the
//! workspace's integration tests.

use crate::{AppState, Config};
use bespin_core::Bespin;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// A running server; stops when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The database it serves (for direct inspection).
    pub bespin: Bespin,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A response as the test client saw it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status code.
    pub status: u16,
    /// Headers, lower-cased names (repeated headers joined with `, `).
    pub headers: HashMap<String, String>,
    /// Body text.
    pub body: String,
}

impl TestResponse {
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

impl TestServer {
    /// Starts a server with a fresh test database opened with `config`'s options (its listen
    /// address and database path are ignored): in memory, or a schema of its own of the
    /// PostgreSQL database in `BESPIN_TEST_DB` ([`Bespin::open_for_test`]).
    pub fn start(config: Config) -> TestServer {
        let clock = std::sync::Arc::new(bespin_core::time::SystemClock);
        Self::start_with(
            Bespin::open_for_test(clock, config.core_options()).expect("test database"),
            config,
        )
    }

    /// Starts a server over `bespin`.
    pub fn start_with(bespin: Bespin, config: Config) -> TestServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let db = bespin.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let state = AppState::new(db, config);
                let _ = crate::serve(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let addr = addr_rx.recv().expect("server address");
        TestServer {
            addr,
            bespin,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Sends a raw request (`head` is everything before the body, without the final blank
    /// line and without `Content-Length`) and reads the response.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> TestResponse {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).expect("write head");
        s.write_all(body).expect("write body");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read");
        parse_response(&buf)
    }

    /// Sends a request with an optional JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> TestResponse {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.raw(method, path, &h, &bytes)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one request to `addr` on a fresh connection (`Connection: close`) and reads the
/// answer; an error when the server cannot be reached or closes without answering.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> std::io::Result<TestResponse> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(&bytes)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed without an answer",
        ));
    }
    Ok(parse_response(&buf))
}

/// Parses a raw HTTP/1.1 response (content-length or chunked body).
pub fn parse_response(buf: &[u8]) -> TestResponse {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut body = buf.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut headers: HashMap<String, String> = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().to_owned();
            headers
                .entry(k)
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
    }
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = dechunk(&body);
    }
    TestResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(b.get(start..start + size).unwrap_or_default());
        b = b.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// A tenant created through the API by a test.
#[derive(Debug, Clone)]
pub struct TestTenant {
    /// The tenant id.
    pub id: String,
    /// Its API key.
    pub key: String,
    /// Its bootstrap admin's user id.
    pub admin: String,
}

impl TestTenant {
    /// The three tenant headers, acting as `user`.
    pub fn headers<'a>(&'a self, user: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("X-Tenant-ID", &self.id),
            ("X-User-ID", user),
            ("X-API-Key", &self.key),
        ]
    }

    /// The three tenant headers, acting as the bootstrap admin.
    pub fn admin_headers(&self) -> Vec<(&str, &str)> {
        self.headers(&self.admin)
    }
}

impl TestServer {
    /// Creates a tenant through `POST /v1/tenants` (panics unless 201).
    pub fn create_tenant(&self, name: &str, admin_email: &str) -> TestTenant {
        let body =
            serde_json::json!({"name": name, "region": "eu-west-1", "admin_email": admin_email});
        let r = self.call("POST", "/v1/tenants", &[], Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
        let v = r.json();
        let field = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        TestTenant {
            id: field("/tenant_id"),
            key: field("/api_key"),
            admin: field("/admin/user_id"),
        }
    }

    /// Adds a user with `role` to the tenant through `POST /v1/users`; returns its id.
    pub fn add_user(&self, t: &TestTenant, email: &str, role: &str) -> String {
        let body = serde_json::json!({"tenant_id": t.id, "email": email, "role": role});
        let r = self.call("POST", "/v1/users", &t.admin_headers(), Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
            .pointer("/user_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

impl TestServer {
    /// One MCP request under 2026-07-28 (stateless) as a conforming client sends it: the
    /// `_meta` envelope and the `MCP-Protocol-Version`, `Mcp-Method` and (for `tools/call`,
    /// `prompts/get`, `resources/read`) `Mcp-Name` headers; `headers` are the credentials.
    pub fn mcp(&self, headers: &[(&str, &str)], method: &str, mut params: Value) -> TestResponse {
        if !params.is_object() {
            params = serde_json::json!({});
        }
        params["_meta"] = serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let name = match method {
            "tools/call" | "prompts/get" => params.get("name"),
            "resources/read" => params.get("uri"),
            _ => None,
        }
        .and_then(Value::as_str)
        .map(str::to_owned);
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("MCP-Protocol-Version", "2026-07-28"));
        h.push(("Mcp-Method", method));
        if let Some(n) = &name {
            h.push(("Mcp-Name", n));
        }
        h.push(("Accept", "application/json, text/event-stream"));
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.call("POST", "/mcp", &h, Some(&body))
    }

    /// `tools/call` of `name` with `arguments` under 2026-07-28: the JSON-RPC `result` (the
    /// tool result, `isError` included); panics on a JSON-RPC error.
    pub fn mcp_tool(&self, headers: &[(&str, &str)], name: &str, arguments: Value) -> Value {
        let r = self.mcp(
            headers,
            "tools/call",
            serde_json::json!({"name": name, "arguments": arguments}),
        );
        let v = r.json();
        assert!(v.get("result").is_some(), "{name}: {} {}", r.status, r.body);
        v["result"].clone()
    }
}

/// Runs `n` copies of `f` at once (released together by a barrier) and returns their answers,
/// in order: the races of the reliability tests.
pub fn race<F>(n: usize, f: F) -> Vec<TestResponse>
where
    F: Fn(usize) -> TestResponse + Sync,
{
    let gate = std::sync::Barrier::new(n);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (gate, f) = (&gate, &f);
                sc.spawn(move || {
                    gate.wait();
                    f(i)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("a racer panicked"))
            .collect()
    })
}

/// The value of the first sample of `/metrics` text `metrics` whose line starts with `name`
/// (a metric name, with its labels when they matter); panics naming the text when none does.
pub fn metric_sample(metrics: &str, name: &str) -> String {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{name} in {metrics}"))
        .to_owned()
}

/// A config for tests: rate limit off, a fixed platform-admin key `test-admin-key`.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.rate_limit.enabled = false;
    c.auth_tarpit_after = None;
    c.platform_admin_key = Some("test-admin-key".into());
    c
}

/// An open streaming response (Server-Sent Events) and what it has read so far: the event
/// stream's and MCP's `subscriptions/listen`'s tests read frames as they come.
pub struct Sse {
    s: TcpStream,
    /// Everything read: the response head, then the body as it arrived.
    pub buf: String,
}

impl Sse {
    /// Opens `GET path`.
    pub fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::request(server, "GET", path, headers, None)
    }

    /// Opens `GET path` on the server at `addr` (a `bespin serve` process of a test).
    pub fn open_at(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::request_at(addr, "GET", path, headers, None)
    }

    /// Sends `method path` with `body` (JSON) and keeps the connection to read the answer.
    pub fn request(
        server: &TestServer,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Sse {
        Sse::request_at(server.addr, method, path, headers, body)
    }

    /// [`Sse::request`] to the server at `addr`.
    pub fn request_at(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Sse {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        s.write_all(head.as_bytes()).expect("write");
        Sse {
            s,
            buf: String::new(),
        }
    }

    /// Reads until `needle` has been seen `n` times (panics after 10 s); whether the
    /// connection ended first.
    pub fn until(&mut self, needle: &str, n: usize) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut chunk = [0u8; 8192];
        while self.buf.matches(needle).count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in {}",
                self.buf
            );
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(k) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..k])),
                Err(_) => {}
            }
        }
        false
    }

    /// Reads whatever arrives within `d` (a check that nothing more came).
    pub fn drain_for(&mut self, d: std::time::Duration) {
        let end = std::time::Instant::now() + d;
        let mut chunk = [0u8; 8192];
        while std::time::Instant::now() < end {
            match self.s.read(&mut chunk) {
                Ok(0) => return,
                Ok(k) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..k])),
                Err(_) => {}
            }
        }
    }

    /// The `id:` lines read, in order.
    pub fn ids(&self) -> Vec<String> {
        self.buf
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(str::to_owned)
            .collect()
    }
}
