//! Identifiers and secrets.
//!
//! Ids are random UUID v4 in lower-case hyphenated form. API keys are `bsk_` followed by 43
//! URL-safe base64 characters (32 random bytes), so secret scanners can recognise a leaked key
//! (spec README decision 6). Only the SHA-256 digest of a key is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The recognisable prefix of every Bespin API key.
pub const API_KEY_PREFIX: &str = "bsk_";

/// A new random UUID v4 as text.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new API key: `bsk_` + 43 URL-safe base64 characters of 32 random bytes.
pub fn new_api_key() -> crate::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The SHA-256 digest under which a key is stored.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `presented` is the key whose digest is `stored`, compared in constant time.
pub fn key_matches(presented: &str, stored: &[u8; 32]) -> bool {
    key_digest(presented).ct_eq(stored).into()
}

/// Lower-case hex SHA-256 of `bytes` (request fingerprints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_scannable_shape() {
        let k = new_api_key().expect("random");
        assert!(k.starts_with("bsk_"));
        assert_eq!(k.len(), 4 + 43);
        assert!(
            k[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(key_matches(&k, &key_digest(&k)));
        assert!(!key_matches("bsk_other", &key_digest(&k)));
    }

    #[test]
    fn ids_are_uuid_v4() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
