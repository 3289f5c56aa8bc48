//! Each request's id and its log line.
//!
//! A request keeps the `X-Request-ID` its client sent when that is a plausible id (1 to 128
//! characters of letters, digits and `-_.:`; anything else could forge or break log lines) and
//! gets a fresh UUID otherwise ([`bespin_core::ids::new_request_id`], no system call). The id
//! goes back in the `X-Request-ID` response header and into the request's log line with the
//! method, path, matched route, status, duration and — once the request authenticated — the
//! tenant id. With `BESPIN_LOG_FORMAT=json` the line is one JSON object whose members are those
//! fields.

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use std::time::Duration;

/// The longest client request id kept.
pub const MAX_REQUEST_ID: usize = 128;

/// What a request's log line says besides its status.
#[derive(Debug)]
pub(crate) struct RequestLog {
    /// The request's id (the client's, when valid, or a new UUID), ready to be a header.
    request_id: HeaderValue,
    /// The authenticated tenant, once known (kept only when request lines are logged).
    tenant_id: Option<String>,
}

/// Whether `id` may be used as a request id.
pub fn valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl RequestLog {
    /// Starts the log of a request with `headers`.
    pub(crate) fn start(headers: &HeaderMap) -> RequestLog {
        // The client's value is shared, not copied.
        let request_id = match headers.get("x-request-id") {
            Some(v) if v.to_str().is_ok_and(valid_request_id) => v.clone(),
            _ => HeaderValue::from_bytes(&bespin_core::ids::new_request_id())
                .unwrap_or_else(|_| HeaderValue::from_static("-")),
        };
        RequestLog {
            request_id,
            tenant_id: None,
        }
    }

    /// Notes the authenticated tenant for the log line (nothing is kept when request lines are
    /// not logged).
    pub(crate) fn tenant(&mut self, tenant_id: Option<&str>) {
        if tracing::enabled!(tracing::Level::INFO) {
            self.tenant_id = tenant_id.map(str::to_owned);
        }
    }

    /// The request's id.
    pub(crate) fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }

    /// Adds `X-Request-ID` to the response headers.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(
            HeaderName::from_static("x-request-id"),
            self.request_id.clone(),
        );
    }

    /// Writes the request's log line.
    pub(crate) fn finish(
        &self,
        method: &hyper::Method,
        path: &str,
        route: Option<&'static str>,
        status: u16,
        took: Duration,
    ) {
        tracing::info!(
            method = %method,
            path = %path,
            route = route.unwrap_or("-"),
            status,
            ms = took.as_secs_f64() * 1000.0,
            request_id = self.request_id.to_str().unwrap_or("-"),
            tenant_id = self.tenant_id.as_deref(),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::valid_request_id;

    #[test]
    fn request_ids_are_short_and_plain() {
        for ok in [
            "a",
            "7f9c2ba4-e88f-4b2a-9b3a-000000000001",
            "trace:span.1_2",
            &"x".repeat(128),
        ] {
            assert!(valid_request_id(ok), "{ok}");
        }
        for bad in ["", " ", "a b", "a\"b", "line\nbreak", "é", &"x".repeat(129)] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }
}
