//! Sealed ids: record positions encrypted into ids that look like random UUID v4.

use sha2::{Digest, Sha256};

/// Turns positions (a sequence number, or an instant and a sequence number) into ids that look
/// like random UUID v4, and back.
///
/// Why: records are stored under their position, so the records a batch creates append at the
/// end of their table instead of each dirtying a random page (which is what a random id as the
/// key costs: a 4 KiB page written per record per commit). The public id must still be a random
/// UUID v4 (40 §0.5), so the position is encrypted with a 122-bit block cipher — a four-round
/// Feistel network keyed with a secret kept in the database file — and written into the 122
/// free bits of a version-4 UUID. Without the secret the ids are indistinguishable from random
/// ones (they reveal neither creation order nor counts); with it, an id decodes back to the
/// record's key without an index. The round function is SipHash-2-4, a keyed PRF built for
/// short inputs: a seal costs well under a microsecond (SHA-256 rounds cost several).
///
/// A sealed record id is 64 bits of sequence and 58 zero bits: a random (legacy) id passes
/// that check with probability 2⁻⁵⁸, so [`Sealer::unseal`] tells the two kinds apart.
pub(crate) struct Sealer {
    /// The SipHash key, derived from the database's secret.
    key: [u8; 16],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// What a sealed id encodes, kept apart so the same numbers give different ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// A record: 64 bits of sequence, 58 bits that must be zero.
    Record = 0,
    /// A timeline event: its instant (64 bits) and sequence (58 bits).
    Event = 1,
}

const HALF: u32 = 61;
const HALF_MASK: u64 = (1 << HALF) - 1;

impl Sealer {
    /// A sealer for `secret` (32 random bytes kept with the database).
    pub(crate) fn new(secret: &[u8; 32]) -> Sealer {
        // A key of its own, so the secret could serve another purpose without reusing it.
        let d = Sha256::new_with_prefix(b"bespin-seal-v1")
            .chain_update(secret)
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&d[..16]);
        Sealer { key }
    }

    fn round(&self, domain: Domain, i: u8, x: u64) -> u64 {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher24::new_with_key(&self.key);
        h.write(&[domain as u8, i]);
        h.write(&x.to_le_bytes());
        h.finish() & HALF_MASK
    }

    /// Encrypts a 122-bit value (as two 61-bit halves).
    fn encrypt(&self, domain: Domain, (mut l, mut r): (u64, u64)) -> u128 {
        for i in 0..4 {
            (l, r) = (r, l ^ self.round(domain, i, r));
        }
        (u128::from(l) << HALF) | u128::from(r)
    }

    /// Decrypts what [`Sealer::encrypt`] made.
    fn decrypt(&self, domain: Domain, c: u128) -> (u64, u64) {
        let (mut l, mut r) = ((c >> HALF) as u64 & HALF_MASK, c as u64 & HALF_MASK);
        for i in (0..4).rev() {
            (l, r) = (r ^ self.round(domain, i, l), l);
        }
        (l, r)
    }

    /// The id of record number `seq`.
    pub(crate) fn seal(&self, seq: u64) -> String {
        uuid_of(self.encrypt(Domain::Record, (seq >> HALF, seq & HALF_MASK)))
    }

    /// The record number `id` was sealed from, or `None` when `id` is not a sealed record id
    /// (a random id, another domain's id, or not a canonical lower-case UUID v4).
    pub(crate) fn unseal(&self, id: &str) -> Option<u64> {
        let (hi, lo) = self.decrypt(Domain::Record, bits_of(id)?);
        (hi >> (64 - HALF) == 0).then_some((hi << HALF) | lo)
    }

    /// The id of the timeline event at (`at`, `seq`); `seq` must be below 2⁵⁸.
    pub(crate) fn seal_event(&self, at: i64, seq: u64) -> String {
        let v = (u128::from(at as u64) << 58) | u128::from(seq & ((1 << 58) - 1));
        let halves = ((v >> HALF) as u64 & HALF_MASK, v as u64 & HALF_MASK);
        uuid_of(self.encrypt(Domain::Event, halves))
    }

    /// The (instant, sequence) an event id was sealed from, for any canonical UUID v4 (the
    /// caller checks that an event with that id is stored there).
    pub(crate) fn unseal_event(&self, id: &str) -> Option<(i64, u64)> {
        let (l, r) = self.decrypt(Domain::Event, bits_of(id)?);
        let v = (u128::from(l) << HALF) | u128::from(r);
        Some(((v >> 58) as u64 as i64, (v as u64) & ((1 << 58) - 1)))
    }
}

/// Writes 122 bits into the free bits of a version-4, RFC 4122 variant UUID.
fn uuid_of(c: u128) -> String {
    let v = ((c >> 74) << 80)
        | (0x4 << 76)
        | (((c >> 62) & 0xFFF) << 64)
        | (0b10 << 62)
        | (c & ((1 << 62) - 1));
    uuid::Uuid::from_u128(v).hyphenated().to_string()
}

/// The 122 free bits of `id` if it is a canonical (lower-case, hyphenated) UUID v4.
fn bits_of(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    let shape = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        });
    if !shape {
        return None;
    }
    let v = uuid::Uuid::try_parse(id).ok()?.as_u128();
    if (v >> 76) & 0xF != 4 || (v >> 62) & 0b11 != 0b10 {
        return None;
    }
    Some(((v >> 80) << 74) | (((v >> 64) & 0xFFF) << 62) | (v & ((1 << 62) - 1)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    #[test]
    fn sealed_ids_are_uuid_v4_and_unseal_to_their_position() {
        let s = Sealer::new(&[7; 32]);
        let mut seen = std::collections::HashSet::new();
        for seq in (0..2000).chain([u64::MAX, u64::MAX - 1, 1 << 61, (1 << 61) - 1]) {
            let id = s.seal(seq);
            assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
            assert_eq!(id, id.to_lowercase());
            assert_eq!(s.unseal(&id), Some(seq), "{id}");
            assert!(seen.insert(id));
        }
        for (at, seq) in [(0, 0), (1_700_000_000_000_000, 42), (-5, (1 << 58) - 1)] {
            let id = s.seal_event(at, seq);
            assert_eq!(s.unseal_event(&id), Some((at, seq)));
            // Another domain, another id.
            assert_ne!(s.unseal(&id), Some(seq));
        }
        // Another secret, other ids.
        assert_ne!(Sealer::new(&[8; 32]).seal(1), s.seal(1));
    }

    #[test]
    fn random_and_malformed_ids_do_not_unseal() {
        let s = Sealer::new(&[1; 32]);
        for _ in 0..2000 {
            assert_eq!(s.unseal(&new_id()), None);
        }
        let id = s.seal(5);
        for bad in [
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            String::new(),
            "not an id".into(),
            // Version 1, variant bits kept.
            format!("{}1{}", &id[..14], &id[15..]),
        ] {
            assert_eq!(s.unseal(&bad), None, "{bad}");
        }
    }
}
