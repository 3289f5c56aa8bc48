//! CORS (contract 10 §8.2, with `PATCH` allowed: spec README decision 12). `CORS_ORIGINS=*`
//! allows any origin (the answer names the request's origin, as credentials require). Answers
//! to allowed origins expose the rate-limit headers, `Retry-After` and `X-Request-ID` to the
//! page's script.

use crate::config::Config;
use crate::reply::Reply;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode};

/// The methods a browser may use.
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// The response headers a page's script may read besides the CORS-safelisted ones.
pub const EXPOSED_HEADERS: &str =
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Request-ID";

/// Whether `origin` may call the API (`*` in `CORS_ORIGINS` allows any).
pub(crate) fn allowed(config: &Config, origin: &str) -> bool {
    config.cors_origins.iter().any(|a| a == "*" || a == origin)
}

/// Answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), or `None`
/// when the request is not one.
pub fn preflight(config: &Config, method: &Method, headers: &HeaderMap) -> Option<Reply> {
    if method != Method::OPTIONS {
        return None;
    }
    let origin = headers.get("origin")?.to_str().ok()?;
    let wanted = headers
        .get("access-control-request-method")?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_uppercase();
    if !allowed(config, origin) {
        return Some(Reply::raw(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Disallowed CORS origin",
        ));
    }
    if !ALLOWED_METHODS.split(", ").any(|m| m == wanted) {
        return Some(Reply::raw(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Disallowed CORS method",
        ));
    }
    let mut reply = Reply::raw(StatusCode::OK, "text/plain; charset=utf-8", "OK")
        .with_header("access-control-allow-methods", ALLOWED_METHODS)
        .with_header("access-control-max-age", "600");
    if let Some(h) = headers
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
    {
        reply = reply.with_header("access-control-allow-headers", h);
    }
    Some(reply)
}

/// Adds `Vary: Origin`, and the allow-origin headers when the origin is allowed.
pub fn apply(config: &Config, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    headers.append(
        HeaderName::from_static("vary"),
        HeaderValue::from_static("Origin"),
    );
    let Some(origin) = origin else {
        return;
    };
    if origin.to_str().is_ok_and(|o| allowed(config, o)) {
        headers.insert(
            HeaderName::from_static("access-control-allow-origin"),
            origin.clone(),
        );
        headers.insert(
            HeaderName::from_static("access-control-allow-credentials"),
            HeaderValue::from_static("true"),
        );
        headers.insert(
            HeaderName::from_static("access-control-expose-headers"),
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}
