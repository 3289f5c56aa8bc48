//! Security and cache headers (10 §8.1), added to every response, errors and 429s included.

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

const SECURITY: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-xss-protection", "1; mode=block"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "geolocation=(), microphone=(), camera=()",
    ),
];

/// Adds the security headers, and the no-store cache headers unless the path is a browser page
/// (`/console…`, `/ui…`). The console's pages show the database: they carry
/// `Cache-Control: no-store` of their own, so no browser or proxy keeps a copy.
pub fn apply(path: &str, headers: &mut HeaderMap) {
    for (k, v) in SECURITY {
        headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    if path == crate::routes::EVENT_STREAM {
        // Server-Sent Events: never cached, never buffered by a reverse proxy (nginx reads
        // `X-Accel-Buffering`).
        headers.insert(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("no-cache"),
        );
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
    } else if path.starts_with("/console") {
        headers.insert(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("no-store"),
        );
    } else if !path.starts_with("/ui") {
        headers.insert(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("no-store, no-cache, must-revalidate, private"),
        );
        headers.insert(
            HeaderName::from_static("pragma"),
            HeaderValue::from_static("no-cache"),
        );
    }
}
