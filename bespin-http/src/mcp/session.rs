//! Sessions of the handshake revisions (2025-06-18, 2025-11-25) without session state: the
//! `Mcp-Session-Id` is a sealed token ([`bespin_core::tokens`]) carrying the tenant and user it
//! was opened by, the negotiated revision, the client's declared capabilities (when small) and
//! its expiry, under a MAC keyed by a secret kept in the database. Any server sharing the
//! database accepts it, before or after a restart, with no sticky routing and no row or memory
//! per session. The price: a session cannot be ended early (`DELETE /mcp` is 405, which the
//! specification allows); it ends at its expiry, when the client opens another.

use super::Rev;
use bespin_core::tokens::TokenSealer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a session lasts (then 404, and the client initializes again, as the
/// specification has it).
pub const SESSION_SECS: i64 = 24 * 3600;

/// Client capabilities larger than this (as JSON) are not carried in the token (they are
/// declared, never needed by this server, and would make every request's header large).
const MAX_CAPABILITIES: usize = 1024;

/// What a session id carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Tenant id.
    pub t: String,
    /// User id.
    pub u: String,
    /// The negotiated revision.
    pub v: String,
    /// The client's declared capabilities, when small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<Value>,
    /// Expiry, Unix seconds.
    pub e: i64,
}

/// Opens a session for `caller` (tenant id, user id) under `rev`: its id.
pub fn open(
    sealer: &TokenSealer,
    caller: (&str, &str),
    rev: Rev,
    capabilities: Option<&Value>,
    now_secs: i64,
) -> String {
    let c = capabilities
        .filter(|c| c.to_string().len() <= MAX_CAPABILITIES)
        .cloned();
    let s = Session {
        t: caller.0.to_owned(),
        u: caller.1.to_owned(),
        v: rev.as_str().to_owned(),
        c,
        e: now_secs + SESSION_SECS,
    };
    // A struct of strings and a JSON value always serialises.
    let payload = serde_json::to_vec(&s).unwrap_or_default();
    sealer.seal(&payload)
}

/// The revision of the session `id` if it is one this database sealed, for this caller (the
/// same tenant and user), and not expired; `None` otherwise — all answered alike (404), so a
/// session of another tenant is indistinguishable from one that never existed.
pub fn resume(sealer: &TokenSealer, id: &str, caller: (&str, &str), now_secs: i64) -> Option<Rev> {
    let payload = sealer.open(id)?;
    let s: Session = serde_json::from_slice(&payload).ok()?;
    if (s.t.as_str(), s.u.as_str()) != caller || s.e <= now_secs {
        return None;
    }
    Rev::handshake(&s.v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_its_callers_until_it_expires() {
        let db = bespin_core::Bespin::open_in_memory().unwrap();
        let sealer = db.token_sealer("mcp-session").unwrap();
        let (a, b, a2) = (("ta", "ua"), ("tb", "ua"), ("ta", "ub"));
        let caps = serde_json::json!({"roots": {}});
        let id = open(&sealer, a, Rev::V2025_06_18, Some(&caps), 1_000);
        assert_eq!(resume(&sealer, &id, a, 1_000), Some(Rev::V2025_06_18));
        let last = 1_000 + SESSION_SECS - 1;
        assert_eq!(resume(&sealer, &id, a, last), Some(Rev::V2025_06_18));
        assert_eq!(resume(&sealer, &id, a, last + 1), None, "expired");
        assert_eq!(resume(&sealer, &id, b, 1_000), None, "another tenant's");
        assert_eq!(resume(&sealer, &id, a2, 1_000), None, "another user's");
        let other = db.token_sealer("other").unwrap();
        assert_eq!(
            resume(&other, &id, a, 1_000),
            None,
            "another purpose's secret"
        );
        // Large client capabilities are left out of the id, which stays small.
        let big = serde_json::json!({"x": "y".repeat(5_000)});
        assert!(open(&sealer, a, Rev::V2025_11_25, Some(&big), 1_000).len() < 300);
    }
}
