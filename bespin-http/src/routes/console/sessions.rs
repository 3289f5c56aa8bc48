//! Console access: the key presented once, the sessions it opens, and the throttle on wrong
//! keys (see the [console](super) module for the rules).

use crate::AppState;
use crate::config::RateLimit;
use crate::error::{ApiError, Refusal};
use crate::extract::Req;
use crate::ratelimit::RateLimiter;
use crate::reply::Reply;
use bespin_core::ids;
use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a console session lasts.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(3600);
pub(super) const COOKIE: &str = "console_session";
/// Wrong console keys a client may present within [`FAILED_KEYS_WINDOW_SECS`].
pub const FAILED_KEYS_ALLOWED: usize = 10;
/// The window over which wrong console keys are counted, per client.
pub const FAILED_KEYS_WINDOW_SECS: u64 = 900;

/// Live console sessions: the digest of each token → its expiry.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<[u8; 32], Instant>>);

impl Sessions {
    fn create(&self) -> Option<String> {
        let token = ids::new_secret(ids::CONSOLE_TOKEN_PREFIX).ok()?;
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, exp| *exp > now);
        m.insert(ids::key_digest(&token), now + SESSION_TTL);
        Some(token)
    }

    fn valid(&self, presented: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ids::key_digest(presented))
            .is_some_and(|exp| *exp > Instant::now())
    }
}

/// The counter of wrong console keys per client.
pub(crate) fn failed_keys() -> RateLimiter {
    RateLimiter::new(RateLimit {
        enabled: true,
        limit: FAILED_KEYS_ALLOWED,
        window_secs: FAILED_KEYS_WINDOW_SECS,
    })
}

/// The session cookie a request presents.
pub(super) fn cookie(r: &Req) -> Option<String> {
    let raw = r.header("cookie")?;
    raw.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_string())
    })
}

/// What the credentials of a console request allow.
pub(super) enum Access {
    /// A valid session: the page may be shown.
    Granted,
    /// The right key: the answer opens a session (a redirect setting its cookie).
    Opened(Reply),
    /// Nothing valid (404, exactly like an unknown route).
    Denied,
}

/// Checks the session cookie first (50 §1.2: it grants access whatever `key` says), then
/// `key`; wrong keys are counted per client, and a client past its allowance is refused (429
/// with `Retry-After`) before its key is compared.
pub(super) fn access(
    s: &AppState,
    r: &Req,
    path: &str,
    q: &HashMap<String, String>,
) -> Result<Access, ApiError> {
    if cookie(r).is_some_and(|t| s.console_sessions.valid(&t)) {
        return Ok(Access::Granted);
    }
    let Some(key) = q.get("key").filter(|k| !k.is_empty()) else {
        return Ok(Access::Denied);
    };
    let client = crate::client::key(&s.config, r.peer, &r.headers);
    let now = Instant::now();
    if let Err(wait) = s.console_failed_keys.peek(&client, now) {
        return Err(ApiError::refused(Refusal::Status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong console keys; try again later",
        ))
        .with_header("retry-after", wait.to_string()));
    }
    let expected = &s.config.dev_console_key;
    if expected.is_empty() || !ids::secrets_match(expected, key) {
        // Counted only when wrong: the limit is on guesses, not on visits.
        let _ = s.console_failed_keys.check(&client, now);
        return Ok(Access::Denied);
    }
    let Some(token) = s.console_sessions.create() else {
        return Ok(Access::Opened(Reply::internal()));
    };
    // Drop the key from the address bar and history: same page, other parameters kept.
    let others: Vec<(&String, &String)> = q.iter().filter(|(k, _)| *k != "key").collect();
    let mut location = path.trim_end_matches('/').to_string();
    if !others.is_empty() {
        location.push('?');
        location.push_str(&serde_urlencoded::to_string(&others).unwrap_or_default());
    }
    Ok(Access::Opened(
        Reply::raw(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "")
            .with_header("location", location)
            .with_header(
                "set-cookie",
                format!(
                    "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}",
                    SESSION_TTL.as_secs()
                ),
            ),
    ))
}
