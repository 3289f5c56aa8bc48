//! CORS (10 §8.2, with `PATCH` allowed: spec README decision 12).

use crate::config::Config;
use crate::reply::Reply;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode};

/// The methods a browser may use.
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

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
    if !config.cors_origins.iter().any(|o| o == origin) {
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
    let allowed = origin
        .to_str()
        .map(|o| config.cors_origins.iter().any(|a| a == o))
        .unwrap_or(false);
    if allowed {
        headers.insert(
            HeaderName::from_static("access-control-allow-origin"),
            origin.clone(),
        );
        headers.insert(
            HeaderName::from_static("access-control-allow-credentials"),
            HeaderValue::from_static("true"),
        );
    }
}
