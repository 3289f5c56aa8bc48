//! Order-preserving byte keys built from typed parts.
//!
//! Strings are written with `0x00` escaped as `0x00 0xFF` and terminated by `0x00 0x01`, so a
//! string part never runs into the next one and keys sort part by part. Integers are big-endian
//! (signed ones with the sign bit flipped), so numeric order is byte order. Every tenant-scoped
//! key starts with the tenant id part, which makes a tenant's rows one prefix range.

use crate::time::{Date, Timestamp};
use std::borrow::Cow;

/// A key under construction, or a finished key / prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Key(Vec<u8>);

/// Something that can be a key part.
pub(crate) trait KeyPart {
    /// Appends the encoded part.
    fn write_to(&self, out: &mut Vec<u8>);
}

impl Key {
    /// An empty key.
    pub(crate) fn new() -> Self {
        Key(Vec::with_capacity(96))
    }

    /// Appends any key part.
    pub(crate) fn part(mut self, p: impl KeyPart) -> Self {
        p.write_to(&mut self.0);
        self
    }

    /// Appends a string part.
    pub(crate) fn str(self, s: &str) -> Self {
        self.part(s)
    }

    /// Appends an unsigned integer part.
    pub(crate) fn u64(self, v: u64) -> Self {
        self.part(v)
    }

    /// Appends an id part: the record number of a sealed id ([`RecordNo`]), or the id itself
    /// for ids that are not sealed (see [`crate::ids::Sealer`]).
    pub(crate) fn id(self, sealer: &crate::ids::Sealer, id: &str) -> Self {
        match sealer.unseal(id) {
            Some(n) => self.part(RecordNo(n)),
            None => self.str(id),
        }
    }

    /// Appends an instant part (orders by time).
    pub(crate) fn ts(self, t: Timestamp) -> Self {
        self.part(t)
    }

    /// A key from bytes read back from a table.
    pub(crate) fn from_raw(bytes: &[u8]) -> Self {
        Key(bytes.to_vec())
    }

    /// The encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl KeyPart for &str {
    fn write_to(&self, out: &mut Vec<u8>) {
        let bytes = self.as_bytes();
        if bytes.contains(&0) {
            for &b in bytes {
                if b == 0 {
                    out.extend_from_slice(&[0, 0xFF]);
                } else {
                    out.push(b);
                }
            }
        } else {
            // The usual case (ids, names): no byte to escape.
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&[0, 1]);
    }
}

impl KeyPart for &String {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.as_str().write_to(out)
    }
}

impl KeyPart for u64 {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl KeyPart for i64 {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*self as u64) ^ (1 << 63)).to_be_bytes());
    }
}

impl KeyPart for Timestamp {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.0.write_to(out)
    }
}

impl KeyPart for Date {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self.iso() {
            // Digits and dashes: always UTF-8.
            Some(b) => std::str::from_utf8(&b).unwrap_or_default().write_to(out),
            None => self.to_string().as_str().write_to(out),
        }
    }
}

/// A record number standing for a sealed id ([`crate::ids::Sealer`]) in an id part: `0x00 0x02`
/// and the number big-endian. No string part starts with `0x00 0x02` (a string's `0x00` is
/// always followed by `0xFF` or `0x01`), so numbered and named (older, random) ids never
/// collide; numbered ones sort first, in creation order, so new records append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordNo(pub u64);

impl KeyPart for RecordNo {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0, 2]);
        out.extend_from_slice(&self.0.to_be_bytes());
    }
}

/// Reads back an id part (a [`RecordNo`], given back as its sealed id, or a string) starting
/// at `at`; returns the id and the position after it.
pub(crate) fn read_id(
    sealer: &crate::ids::Sealer,
    bytes: &[u8],
    at: usize,
) -> Option<(String, usize)> {
    if bytes.get(at..at + 2) == Some(&[0, 2]) {
        let n = <[u8; 8]>::try_from(bytes.get(at + 2..at + 10)?).ok()?;
        return Some((sealer.seal(u64::from_be_bytes(n)), at + 10));
    }
    read_str(bytes, at)
}

/// Reads back a string part starting at `at` without copying it when it holds no escaped NUL
/// (ids, names, words); returns it and the position after it.
pub(crate) fn read_str_ref(bytes: &[u8], at: usize) -> Option<(Cow<'_, str>, usize)> {
    let rest = bytes.get(at..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    if rest.get(end + 1)? == &1 {
        let s = std::str::from_utf8(&rest[..end]).ok()?;
        return Some((Cow::Borrowed(s), at + end + 2));
    }
    // An escaped NUL: unescape up to the terminator.
    let mut out = Vec::new();
    let mut at = at;
    while at < bytes.len() {
        match bytes.get(at)? {
            0 => match bytes.get(at + 1)? {
                1 => return String::from_utf8(out).ok().map(|s| (Cow::Owned(s), at + 2)),
                0xFF => {
                    out.push(0);
                    at += 2;
                }
                _ => return None,
            },
            &b => {
                out.push(b);
                at += 1;
            }
        }
    }
    None
}

/// Reads back a `u64` part starting at `at`.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Reads back an instant part starting at `at`.
pub(crate) fn read_ts(bytes: &[u8], at: usize) -> Option<Timestamp> {
    read_u64(bytes, at).map(|n| Timestamp((n ^ (1 << 63)) as i64))
}

/// Reads back a string part starting at `at`; returns it and the position after it.
pub(crate) fn read_str(bytes: &[u8], at: usize) -> Option<(String, usize)> {
    read_str_ref(bytes, at).map(|(s, next)| (s.into_owned(), next))
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when there is none (the prefix is all `0xFF`).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last != 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_parts_do_not_run_together() {
        let a = Key::new().str("ab").str("c");
        let b = Key::new().str("a").str("bc");
        assert_ne!(a, b);
        assert!(!a.as_bytes().starts_with(Key::new().str("a").as_bytes()));
    }

    #[test]
    fn dates_are_their_text() {
        let d = Date::parse("2026-02-28").expect("date");
        assert_eq!(Key::new().part(d), Key::new().str("2026-02-28"));
        let far = Date(chrono::NaiveDate::from_ymd_opt(12_000, 1, 2).expect("date"));
        assert_eq!(Key::new().part(far), Key::new().str("+12000-01-02"));
    }

    #[test]
    fn strings_with_nul_round_trip_and_sort() {
        let k = Key::new().str("a\0b").str("z");
        let (s, next) = read_str(k.as_bytes(), 0).expect("part");
        assert_eq!(s, "a\0b");
        assert_eq!(read_str(k.as_bytes(), next).expect("part").0, "z");
        assert!(Key::new().str("a") < Key::new().str("a\0"));
        assert!(Key::new().str("a\0") < Key::new().str("a\u{1}"));
    }

    #[test]
    fn signed_integers_sort_numerically() {
        let keys: Vec<Key> = [-5i64, -1, 0, 1, 7]
            .iter()
            .map(|&v| Key::new().part(v))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn string_parts_read_back_borrowed_or_unescaped() {
        let k = Key::new().str("plain").str("nul\0inside").u64(7);
        let (a, at) = read_str_ref(k.as_bytes(), 0).unwrap();
        assert!(matches!(a, std::borrow::Cow::Borrowed("plain")));
        let (b, at) = read_str_ref(k.as_bytes(), at).unwrap();
        assert_eq!(b, "nul\0inside");
        assert_eq!(&k.as_bytes()[at..], &7u64.to_be_bytes());
        assert!(read_str_ref(b"no terminator", 0).is_none());
    }

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(&[0xFF]), None);
    }
}
