//! What handlers read from a request: the JSON body, credentials, the idempotency key, query
//! and path parameters, the platform-admin key.

use crate::AppState;
use crate::error::ApiError;
use bespin_core::{Credentials, Error, FieldError, LocPart, Principal};
use bytes::Bytes;
use hyper::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A request as handlers see it.
#[derive(Debug)]
pub struct Req {
    /// The address the connection comes from (see [`crate::client::key`] for the client).
    pub peer: std::net::SocketAddr,
    /// Request headers.
    pub headers: HeaderMap,
    /// The raw query string.
    pub query: String,
    /// Path parameters by name (percent-decoded).
    pub params: HashMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// The outcome of authenticating the tenant credentials, when the pipeline already did (it
    /// does so once per request, for the tenant's rate limit, and before handing a request to
    /// the background lane). A failure is reported by the handler, in the contract's order.
    pub auth: Option<Result<Principal, Error>>,
    /// The route needs tenant credentials and they failed: the handler will answer their
    /// error once the body is known to be JSON (a syntax error comes first in the contract's
    /// order), so [`Req::json`] only checks the syntax and builds nothing.
    pub body_unused: bool,
}

impl Req {
    /// A header's value, trimmed; blank counts as absent. Bytes that are not UTF-8 are
    /// replaced, so such a value is compared (and refused) like any other.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// A path parameter.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body parsed as JSON (whatever the content type). An empty body is `null`, which the
    /// core's validation reports as the missing body (after authentication, as the contract
    /// orders it); malformed JSON is 422 `json_invalid` at `["body", <character offset>]` at once.
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        if self.body_unused {
            return self.parse::<serde::de::IgnoredAny>().map(|_| Value::Null);
        }
        self.parse()
    }

    /// The body parsed as `T`; errors as [`Req::json`]'s.
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let text = std::str::from_utf8(&self.body).map_err(|e| {
            json_invalid(
                String::from_utf8_lossy(&self.body[..e.valid_up_to()])
                    .chars()
                    .count(),
                "invalid UTF-8",
            )
        })?;
        serde_json::from_str(text).map_err(|e| {
            let mut at = char_offset(text, e.line(), e.column());
            let message = e.to_string();
            if message.starts_with("expected ident") || message.starts_with("expected value") {
                // serde_json points past the bad token's first letters; point at its start.
                let chars: Vec<char> = text.chars().collect();
                while at > 0 && chars.get(at - 1).is_some_and(|c| c.is_alphanumeric()) {
                    at -= 1;
                }
            }
            json_invalid(at, &message)
        })
    }

    /// The tenant credentials.
    pub fn credentials(&self) -> Credentials {
        credentials(&self.headers)
    }

    /// Authenticates the tenant credentials (400/401/403 on failure).
    pub fn principal(&self, state: &AppState) -> Result<Principal, ApiError> {
        match &self.auth {
            Some(outcome) => outcome.clone(),
            None => state.bespin.authenticate(&self.credentials()),
        }
        .map_err(ApiError::body)
    }

    /// The caller, when authentication succeeded already.
    pub fn caller(&self) -> Option<&Principal> {
        self.auth.as_ref().and_then(|a| a.as_ref().ok())
    }

    /// The `Idempotency-Key` header (400 when absent or blank).
    pub fn idempotency_key(&self) -> Result<String, ApiError> {
        self.header("idempotency-key")
            .ok_or_else(|| ApiError::body(Error::MissingHeader("Idempotency-Key")))
    }

    /// The query parameters (last value wins).
    pub fn query_map(&self) -> HashMap<String, String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.query)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// The query parameters as a JSON object of strings (last value wins), the shape the
    /// core's query validators read.
    pub fn query_json(&self) -> Value {
        Value::Object(
            self.query_map()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    }

    /// Checks the platform-admin key; any failure is the same 404 as an unknown path.
    pub fn require_platform_admin(&self, state: &AppState) -> Result<(), ApiError> {
        if platform_admin_ok(&state.config, &self.headers) {
            Ok(())
        } else {
            Err(ApiError::body(Error::NotFound("Not Found".into())))
        }
    }
}

/// The tenant credentials of `headers` (values as [`Req::header`] reads them).
pub(crate) fn credentials(headers: &HeaderMap) -> Credentials {
    let h = |n: &str| {
        headers
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
    };
    let (t, u, k) = (h("x-tenant-id"), h("x-user-id"), h("x-api-key"));
    Credentials::new(t.as_deref(), u.as_deref(), k.as_deref())
        .with_authorization(h("authorization").as_deref())
}

/// Whether `headers` carry the platform-admin key (compared as digests, in constant time; no
/// key configured means nobody is an admin).
pub(crate) fn platform_admin_ok(config: &crate::Config, headers: &HeaderMap) -> bool {
    let given = headers
        .get("x-platform-admin-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|s| !s.is_empty());
    match (config.admin_key(), given) {
        (Some(e), Some(g)) => bespin_core::ids::secrets_match(&e, &g),
        _ => false,
    }
}

/// Integer query parameters (see [`bespin_core::validate::query_ints`]); errors are 422s at
/// `["query", name]`.
pub fn query_ints(
    q: &HashMap<String, String>,
    names: &[&str],
) -> Result<Vec<Option<i64>>, ApiError> {
    bespin_core::validate::query_ints(|n| q.get(n).map(String::as_str), names)
        .map_err(ApiError::query)
}

fn json_invalid(offset: usize, message: &str) -> ApiError {
    ApiError::body(Error::field(
        FieldError::new(
            "json_invalid",
            vec![LocPart::Index(offset)],
            "JSON decode error",
            json!({}),
        )
        .with_ctx(json!({ "error": message })),
    ))
}

/// The 0-based character offset of serde_json's 1-based (line, byte column) position.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = column.saturating_sub(1).min(l.len());
            let mut end = col;
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            return offset + l[..end].chars().count();
        }
        offset += l.chars().count();
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::char_offset;

    #[test]
    fn offsets_count_characters() {
        assert_eq!(char_offset("notjson", 1, 1), 0);
        assert_eq!(char_offset("{\"a\":}", 1, 6), 5);
        assert_eq!(char_offset("{\n\"é\":}", 2, 6), 6);
    }
}
