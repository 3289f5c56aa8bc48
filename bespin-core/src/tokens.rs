//! Sealed tokens: a payload the server hands a client and takes back later, with a MAC
//! (HMAC-SHA256) under a secret of the database, so any server sharing the database can check
//! it and no server keeps a row or a memory of it. MCP session ids are such tokens
//! (`bespin-http/src/mcp/session.rs`): a session survives restarts and spans servers without
//! sticky routing, because the session *is* the token.
//!
//! A token is `base64url(payload) "." base64url(tag)`: visible ASCII only, as header values
//! need. The payload is readable by whoever holds the token (it is not encrypted): put nothing
//! in it that its holder may not see.

use crate::{Bespin, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Seals and opens tokens for one purpose, under the database's secret of that purpose (made
/// the first time it is asked for, kept for ever). Cheap to clone.
#[derive(Clone)]
pub struct TokenSealer {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSealer")
    }
}

/// The longest token [`TokenSealer::open`] reads (a header value can be longer; a token never
/// needs to be).
pub const MAX_TOKEN_LEN: usize = 4096;

impl TokenSealer {
    fn mac(&self) -> Hmac<Sha256> {
        // An HMAC takes a key of any length: this cannot fail.
        match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        }
    }

    /// The token carrying `payload`.
    pub fn seal(&self, payload: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The payload of a token this database sealed, or `None` for anything else (malformed,
    /// too long, forged, or sealed under another database's secret). The tag is compared in
    /// constant time.
    pub fn open(&self, token: &str) -> Option<Vec<u8>> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (body, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).ok()?;
        Some(payload)
    }
}

impl Bespin {
    /// The sealer of tokens for `purpose` (its secret is `token:<purpose>` in the database's
    /// secret store; asking for it the first time writes it, in a transaction of its own, so
    /// call this once at start-up, not per request).
    pub fn token_sealer(&self, purpose: &str) -> Result<TokenSealer> {
        let secret = self.inner.store.secret(&format!("token:{purpose}"))?;
        Ok(TokenSealer { key: secret.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_under_their_own_database_and_purpose() {
        let db = Bespin::open_in_memory().expect("db");
        let s = db.token_sealer("mcp-session").expect("sealer");
        let t = s.seal(b"{\"t\":\"tenant\"}");
        assert!(t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(s.open(&t).as_deref(), Some(&b"{\"t\":\"tenant\"}"[..]));
        // The same purpose asked again is the same secret (a restart, another server).
        assert!(
            db.token_sealer("mcp-session")
                .expect("again")
                .open(&t)
                .is_some()
        );
        // Another purpose, another database, a changed payload or tag: refused.
        assert!(db.token_sealer("other").expect("other").open(&t).is_none());
        let other_db = Bespin::open_in_memory().expect("db2");
        assert!(
            other_db
                .token_sealer("mcp-session")
                .expect("s")
                .open(&t)
                .is_none()
        );
        let (body, tag) = t.split_once('.').expect("dot");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(b"{\"t\":\"other\"}"));
        assert!(s.open(&forged).is_none());
        assert!(s.open(&format!("{body}.AAAA")).is_none());
        assert!(s.open("no-dot").is_none());
        assert!(s.open(&"a".repeat(MAX_TOKEN_LEN + 1)).is_none());
    }
}
