//! Identifiers and secrets.
//!
//! Ids are UUID v4 in lower-case hyphenated form: random ([`new_id`]), or — for the records
//! created most often — sealed positions (`Sealer`), which look exactly as random to anyone
//! without the database's secret. API keys are `bsk_` followed by 43 URL-safe base64
//! characters (32 random bytes), so secret scanners can recognise a leaked key (spec README
//! decision 6). Only the SHA-256 digest of a key is stored.

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

/// A new id for a request's log line and `X-Request-ID`: a UUID v4 (36 ASCII characters) whose
/// random bits are a keyed hash (SipHash-2-4, 128 bits) of a per-process counter under a key
/// drawn once per process. Ids of one process never repeat before the counter wraps (2^64)
/// except by a 128-bit hash collision, and they cannot be predicted or counted without the key;
/// unlike [`new_id`] they cost no system call and no allocation, so every request can have one.
pub fn new_request_id() -> [u8; 36] {
    use siphasher::sip128::{Hasher128, SipHasher24};
    use std::hash::Hasher;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<[u8; 16]> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 16];
        // Without randomness the ids are still unique in the process, only guessable.
        let _ = getrandom::fill(&mut k);
        k
    });
    let mut h = SipHasher24::new_with_key(key);
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    let mut text = [0u8; 36];
    uuid::Builder::from_random_bytes(h.finish128().as_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text);
    text
}

/// The prefix of developer-console session tokens: never an API key's, so neither can be
/// taken for the other (by people or by secret scanners).
pub const CONSOLE_TOKEN_PREFIX: &str = "bcs_";

/// A new API key: `bsk_` + 43 URL-safe base64 characters of 32 random bytes.
pub fn new_api_key() -> crate::Result<String> {
    new_secret(API_KEY_PREFIX)
}

/// A new random secret: `prefix` + 43 URL-safe base64 characters of 32 random bytes.
pub fn new_secret(prefix: &str) -> crate::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Whether two secrets are equal, compared as SHA-256 digests in constant time, so that the
/// time taken shows neither where they differ nor how long the expected one is.
pub fn secrets_match(expected: &str, presented: &str) -> bool {
    key_matches(presented, &key_digest(expected))
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

pub(crate) use crate::store::Sealer;

/// The id of a new record: the next record number (one sequence for every sealed kind, so no
/// two records share an id), sealed. Records keyed by it (an `id` key part, [`crate::store::Id`])
/// append at the end of their table.
pub(crate) fn new_record_id(tx: &mut crate::store::WriteTx) -> crate::Result<String> {
    use crate::store::Reader;
    #[cfg(test)]
    if RANDOM_IDS.get() {
        return Ok(new_id());
    }
    let n = tx.next_seq("records")?;
    Ok(tx.sealer().seal(n))
}

/// The id of the timeline event at `(at, seq)`, its position sealed, and whether it is
/// sealed (always, but in tests of older layouts: an id that does not name its position must
/// be indexed).
pub(crate) fn new_event_id(sealer: &Sealer, at: i64, seq: u64) -> (String, bool) {
    #[cfg(test)]
    if RANDOM_IDS.get() {
        return (new_id(), false);
    }
    (sealer.seal_event(at, seq), true)
}

#[cfg(test)]
thread_local! {
    /// Tests of databases written before ids were sealed: records and events made on this
    /// thread get random ids, as they did then.
    pub(crate) static RANDOM_IDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<[u8; 36]> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::try_parse_ascii(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id:?}");
            assert_eq!(u.hyphenated().to_string().as_bytes(), id);
        }
    }

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
    fn sha256_is_lower_case_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ids_are_uuid_v4() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
