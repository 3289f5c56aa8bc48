//! Order-preserving byte keys: how each kind of key part is written and read back.
//!
//! Strings are written with `0x00` escaped as `0x00 0xFF` and terminated by `0x00 0x01`, so a
//! string part never runs into the next one and keys sort part by part. Integers are big-endian
//! (signed ones with the sign bit flipped), so numeric order is byte order. Dates are their
//! `YYYY-MM-DD` text. Every tenant-scoped key starts with the tenant id part, which makes a
//! tenant's rows one prefix range.
//!
//! Domain code never writes these bytes itself: it declares a key type per table with
//! [`key!`](crate::store::key) and builds keys and [`Prefix`]es of it; the modules of [`parts`]
//! are what the declarations expand to.

use super::table::{KeyDef, Kind};
use crate::time::{Date, Timestamp};
use std::borrow::Cow;
use std::marker::PhantomData;

/// An id key part: the record number of a sealed id ([`super::Sealer`]), or the id itself for
/// ids that are not sealed (made before ids were sealed, or not record ids at all).
///
/// Written as `0x00 0x02` and the number big-endian, or as a string part. No string part starts
/// with `0x00 0x02` (a string's `0x00` is always followed by `0xFF` or `0x01`), so numbered and
/// named ids never collide; numbered ones sort first, in creation order, so new records append.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Id<'a> {
    /// A sealed id, by its record number.
    Sealed(u64),
    /// An id that is not sealed, as it is.
    Named(Cow<'a, str>),
}

impl<'a> Id<'a> {
    /// The key part of `id`: its record number when `sealer` sealed it, else `id` itself.
    pub(crate) fn of(sealer: &super::Sealer, id: &'a str) -> Id<'a> {
        match sealer.unseal(id) {
            Some(n) => Id::Sealed(n),
            None => Id::Named(Cow::Borrowed(id)),
        }
    }

    /// The id this part stands for (a sealed one is sealed again).
    pub(crate) fn to_id(&self, sealer: &super::Sealer) -> Cow<'a, str> {
        match self {
            Id::Sealed(n) => Cow::Owned(sealer.seal(*n)),
            Id::Named(s) => s.clone(),
        }
    }
}

/// The encoding of each kind of key part: the field type a key declaration gets (`T`), the
/// argument its constructor takes (`Param`), and how the part is written and read back.
/// [`key!`](crate::store::key) expands a part declared `name: kind` through `parts::kind`.
pub(crate) mod parts {
    use super::*;

    /// Writes a string part.
    pub(crate) fn put_str(s: &str, out: &mut Vec<u8>) {
        let bytes = s.as_bytes();
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

    /// Reads back a string part starting at `at` without copying it when it holds no escaped
    /// NUL (ids, names, words); returns it and the position after it.
    pub(crate) fn get_str(bytes: &[u8], at: usize) -> Option<(Cow<'_, str>, usize)> {
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

    /// Reads back a big-endian `u64` starting at `at`.
    pub(crate) fn get_u64(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
        let end = at.checked_add(8)?;
        let b = bytes.get(at..end)?;
        Some((u64::from_be_bytes(b.try_into().ok()?), end))
    }

    fn put_i64(v: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    }

    fn get_i64(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
        get_u64(bytes, at).map(|(n, next)| ((n ^ (1 << 63)) as i64, next))
    }

    /// Writes a date part: its text.
    pub(crate) fn put_date(d: Date, out: &mut Vec<u8>) {
        match d.iso() {
            // Digits and dashes: always UTF-8.
            Some(b) => put_str(std::str::from_utf8(&b).unwrap_or_default(), out),
            None => put_str(&d.to_string(), out),
        }
    }

    fn parse_date(s: &str) -> Option<Date> {
        // Years past 9999 are written with a sign (`+12000-01-02`), which only chrono reads.
        Date::parse(s).or_else(|| s.parse().ok().map(Date))
    }

    /// A part of the tenant that owns the row: a string, first in every tenant-scoped key.
    pub(crate) mod tenant {
        use super::*;
        pub(crate) const KIND: Kind = Kind::Tenant;
        pub(crate) type T<'a> = Cow<'a, str>;
        pub(crate) type Param<'a> = &'a str;
        pub(crate) fn from(p: &str) -> Cow<'_, str> {
            Cow::Borrowed(p)
        }
        /// Writes the tenant part: `0x00 0x03` and the 16 bytes of a tenant id in canonical
        /// UUID form (every id Bespin makes), any other id as a string part.
        pub(crate) fn put(v: &str, out: &mut Vec<u8>) {
            match uuid_bytes(v) {
                Some(b) => {
                    out.extend_from_slice(&UUID_TAG);
                    out.extend_from_slice(&b);
                }
                None => put_str(v, out),
            }
        }
        /// Reads back a tenant part (a UUID one as its canonical text).
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(Cow<'_, str>, usize)> {
            if b.get(at..at + 2) == Some(&UUID_TAG[..]) {
                let end = at.checked_add(18)?;
                let raw: [u8; 16] = b.get(at + 2..end)?.try_into().ok()?;
                let mut text = [0u8; 36];
                uuid::Uuid::from_bytes(raw)
                    .hyphenated()
                    .encode_lower(&mut text);
                let s = std::str::from_utf8(&text).ok()?.to_owned();
                return Some((Cow::Owned(s), end));
            }
            get_str(b, at)
        }
        pub(crate) fn own(v: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(v.into_owned())
        }
    }

    /// The first two bytes of a tenant (or [`ext_id`]) part written as a UUID's 16 bytes: no
    /// string part starts so (a string's `0x00` is followed by `0x01` or `0xFF`).
    pub(crate) const UUID_TAG: [u8; 2] = [0, 3];

    /// The 16 bytes of `s` when it is a UUID in canonical form (lower-case, hyphenated), the
    /// only text that has them: so each id has one key part, and byte order is text order.
    pub(crate) fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
        // 36 characters are the hyphenated form only (the crate takes the others by length);
        // upper-case hex would give a second text the same bytes.
        if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        uuid::Uuid::try_parse(s).ok().map(|u| u.into_bytes())
    }

    /// A string part (names, keys, words, ids that are not sealed).
    pub(crate) mod str {
        use super::*;
        pub(crate) const KIND: Kind = Kind::Str;
        pub(crate) type T<'a> = Cow<'a, str>;
        pub(crate) type Param<'a> = &'a str;
        pub(crate) use super::tenant::{from, own};
        pub(crate) fn put(v: &str, out: &mut Vec<u8>) {
            put_str(v, out)
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(Cow<'_, str>, usize)> {
            get_str(b, at)
        }
    }

    /// An id part that is a UUID most of the time: an id Bespin made (a record's, an event's,
    /// a tenant's in a global key) or one a client chose (a CloudEvent's `id`, an idempotency
    /// key). Written as the tenant part is: a canonical UUID as `0x00 0x03` and its 16 bytes,
    /// any other id as its text. UUIDs sort among themselves as their text does (so lists keep
    /// their order) and before every other id but the empty one.
    pub(crate) mod ext_id {
        use super::*;
        pub(crate) const KIND: Kind = Kind::ExtId;
        pub(crate) type T<'a> = Cow<'a, str>;
        pub(crate) type Param<'a> = &'a str;
        pub(crate) use super::tenant::{from, get, own, put};
    }

    /// A record id part ([`Id`]: sealed or not).
    pub(crate) mod id {
        use super::*;
        pub(crate) const KIND: Kind = Kind::Id;
        pub(crate) type T<'a> = Id<'a>;
        pub(crate) type Param<'a> = Id<'a>;
        pub(crate) fn from(p: Id<'_>) -> Id<'_> {
            p
        }
        pub(crate) fn put(v: &Id<'_>, out: &mut Vec<u8>) {
            match v {
                Id::Sealed(n) => {
                    out.extend_from_slice(&[0, 2]);
                    out.extend_from_slice(&n.to_be_bytes());
                }
                Id::Named(s) => put_str(s, out),
            }
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(Id<'_>, usize)> {
            if b.get(at..at + 2) == Some(&[0, 2]) {
                return get_u64(b, at + 2).map(|(n, next)| (Id::Sealed(n), next));
            }
            get_str(b, at).map(|(s, next)| (Id::Named(s), next))
        }
        pub(crate) fn own(v: Id<'_>) -> Id<'static> {
            match v {
                Id::Sealed(n) => Id::Sealed(n),
                Id::Named(s) => Id::Named(Cow::Owned(s.into_owned())),
            }
        }
    }

    /// An unsigned integer part (sequence numbers, flags).
    pub(crate) mod u64 {
        use super::*;
        pub(crate) const KIND: Kind = Kind::U64;
        pub(crate) type T<'a> = u64;
        pub(crate) type Param<'a> = u64;
        pub(crate) fn from(p: u64) -> u64 {
            p
        }
        pub(crate) fn put(v: &u64, out: &mut Vec<u8>) {
            out.extend_from_slice(&v.to_be_bytes());
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(u64, usize)> {
            get_u64(b, at)
        }
        pub(crate) fn own(v: u64) -> u64 {
            v
        }
    }

    /// A signed integer part.
    pub(crate) mod i64 {
        use super::*;
        pub(crate) const KIND: Kind = Kind::I64;
        pub(crate) type T<'a> = i64;
        pub(crate) type Param<'a> = i64;
        pub(crate) fn from(p: i64) -> i64 {
            p
        }
        pub(crate) fn put(v: &i64, out: &mut Vec<u8>) {
            put_i64(*v, out)
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(i64, usize)> {
            get_i64(b, at)
        }
        pub(crate) fn own(v: i64) -> i64 {
            v
        }
    }

    /// An instant part (orders by time).
    pub(crate) mod ts {
        use super::*;
        pub(crate) const KIND: Kind = Kind::Ts;
        pub(crate) type T<'a> = Timestamp;
        pub(crate) type Param<'a> = Timestamp;
        pub(crate) fn from(p: Timestamp) -> Timestamp {
            p
        }
        pub(crate) fn put(v: &Timestamp, out: &mut Vec<u8>) {
            put_i64(v.0, out)
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(Timestamp, usize)> {
            get_i64(b, at).map(|(n, next)| (Timestamp(n), next))
        }
        pub(crate) fn own(v: Timestamp) -> Timestamp {
            v
        }
    }

    /// A calendar date part (its `YYYY-MM-DD` text: dates sort chronologically).
    pub(crate) mod date {
        use super::*;
        pub(crate) const KIND: Kind = Kind::Date;
        pub(crate) type T<'a> = Date;
        pub(crate) type Param<'a> = Date;
        pub(crate) fn from(p: Date) -> Date {
            p
        }
        pub(crate) fn put(v: &Date, out: &mut Vec<u8>) {
            put_date(*v, out)
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(Date, usize)> {
            let (s, next) = get_str(b, at)?;
            Some((parse_date(&s)?, next))
        }
        pub(crate) fn own(v: Date) -> Date {
            v
        }
    }

    /// A date part that may be absent: the date's text, or the empty string (which sorts
    /// before every date).
    pub(crate) mod maybe_date {
        use super::*;
        pub(crate) const KIND: Kind = Kind::MaybeDate;
        pub(crate) type T<'a> = Option<Date>;
        pub(crate) type Param<'a> = Option<Date>;
        pub(crate) fn from(p: Option<Date>) -> Option<Date> {
            p
        }
        pub(crate) fn put(v: &Option<Date>, out: &mut Vec<u8>) {
            match v {
                Some(d) => put_date(*d, out),
                None => put_str("", out),
            }
        }
        pub(crate) fn get(b: &[u8], at: usize) -> Option<(Option<Date>, usize)> {
            let (s, next) = get_str(b, at)?;
            if s.is_empty() {
                return Some((None, next));
            }
            Some((Some(parse_date(&s)?), next))
        }
        pub(crate) fn own(v: Option<Date>) -> Option<Date> {
            v
        }
    }
}

/// A key part read back by its kind ([`read_parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartValue<'a> {
    /// A tenant or string part.
    Str(Cow<'a, str>),
    /// An id part.
    Id(Id<'a>),
    /// An unsigned integer part.
    U64(u64),
    /// A signed integer part.
    I64(i64),
    /// An instant part.
    Ts(Timestamp),
    /// A date part (`None`: the empty date of a `maybe_date` part).
    Date(Option<Date>),
}

/// Reads the key part of kind `kind` starting at `at`: its value and the position after it.
pub(crate) fn read_part(kind: Kind, bytes: &[u8], at: usize) -> Option<(PartValue<'_>, usize)> {
    Some(match kind {
        Kind::Tenant | Kind::ExtId => {
            parts::tenant::get(bytes, at).map(|(s, n)| (PartValue::Str(s), n))?
        }
        Kind::Str => parts::get_str(bytes, at).map(|(s, n)| (PartValue::Str(s), n))?,
        Kind::Id => parts::id::get(bytes, at).map(|(s, n)| (PartValue::Id(s), n))?,
        Kind::U64 => parts::get_u64(bytes, at).map(|(v, n)| (PartValue::U64(v), n))?,
        Kind::I64 => parts::i64::get(bytes, at).map(|(v, n)| (PartValue::I64(v), n))?,
        Kind::Ts => parts::ts::get(bytes, at).map(|(v, n)| (PartValue::Ts(v), n))?,
        Kind::Date => parts::date::get(bytes, at).map(|(v, n)| (PartValue::Date(Some(v)), n))?,
        Kind::MaybeDate => {
            parts::maybe_date::get(bytes, at).map(|(v, n)| (PartValue::Date(v), n))?
        }
    })
}

/// Reads a stored key part by part along `layout` (a table's [`KeyDef::PARTS`]): `None`
/// unless `bytes` is exactly one key of that layout.
pub(crate) fn read_parts<'a>(
    layout: &[super::Part],
    bytes: &'a [u8],
) -> Option<Vec<PartValue<'a>>> {
    let mut out = Vec::with_capacity(layout.len());
    let mut at = 0;
    for p in layout {
        let (v, next) = read_part(p.kind, bytes, at)?;
        out.push(v);
        at = next;
    }
    (at == bytes.len()).then_some(out)
}

/// The stored key `bytes` of `layout` with each [`parts::ext_id`] part that holds a canonical
/// UUID as text (the form before layout 13, or before 12 for the CloudEvent id) written as
/// its bytes instead; `None` when there is none (or `bytes` is not a key of `layout`). The
/// new key sorts before the old one: its first changed part starts `0x00 0x03`, the text a
/// hex digit.
pub(crate) fn ext_ids_as_bytes(layout: &[super::Part], bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut at, mut changed) = (0, false);
    for p in layout {
        let (v, next) = read_part(p.kind, bytes, at)?;
        match v {
            PartValue::Str(s)
                if p.kind == Kind::ExtId
                    && !bytes[at..].starts_with(&parts::UUID_TAG)
                    && parts::uuid_bytes(&s).is_some() =>
            {
                parts::ext_id::put(&s, &mut out);
                changed = true;
            }
            _ => out.extend_from_slice(bytes.get(at..next)?),
        }
        at = next;
    }
    (changed && at == bytes.len()).then_some(out)
}

/// The first parts of a key of `K`, for prefix and range scans: built part by part in layout
/// order from a table ([`super::Table::prefix`]), so a scan of a table cannot be given another
/// table's key. Each part's kind is held to the layout (debug builds assert it).
pub(crate) struct Prefix<K> {
    bytes: Vec<u8>,
    parts: usize,
    _key: PhantomData<fn() -> K>,
}

impl<K> Clone for Prefix<K> {
    fn clone(&self) -> Self {
        Prefix {
            bytes: self.bytes.clone(),
            parts: self.parts,
            _key: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Prefix<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prefix({:?})", self.bytes)
    }
}

impl<K: KeyDef> Prefix<K> {
    /// The empty prefix: every row of the table.
    pub(crate) fn all() -> Self {
        Prefix {
            bytes: Vec::with_capacity(96),
            parts: 0,
            _key: PhantomData,
        }
    }

    fn next(mut self, kinds: &[Kind], put: impl FnOnce(&mut Vec<u8>)) -> Self {
        debug_assert!(
            K::PARTS
                .get(self.parts)
                .is_some_and(|p| kinds.contains(&p.kind)),
            "part {} of {:?} is not {kinds:?}",
            self.parts,
            K::PARTS
        );
        put(&mut self.bytes);
        self.parts += 1;
        self
    }

    /// Appends the tenant part.
    pub(crate) fn tenant(self, t: &str) -> Self {
        self.next(&[Kind::Tenant], |b| parts::tenant::put(t, b))
    }

    /// Appends an [`parts::ext_id`] part.
    pub(crate) fn ext_id(self, s: &str) -> Self {
        self.next(&[Kind::ExtId], |b| parts::ext_id::put(s, b))
    }

    /// Appends a string part.
    pub(crate) fn str(self, s: &str) -> Self {
        self.next(&[Kind::Str], |b| parts::put_str(s, b))
    }

    /// Appends an unsigned integer part.
    pub(crate) fn u64(self, v: u64) -> Self {
        self.next(&[Kind::U64], |b| b.extend_from_slice(&v.to_be_bytes()))
    }

    /// Appends an instant part.
    pub(crate) fn ts(self, t: Timestamp) -> Self {
        self.next(&[Kind::Ts], |b| parts::ts::put(&t, b))
    }

    /// Appends a date part (also where the layout allows no date).
    pub(crate) fn date(self, d: Date) -> Self {
        self.next(&[Kind::Date, Kind::MaybeDate], |b| parts::put_date(d, b))
    }

    /// Appends the start of a string part: the prefix then matches every string that starts
    /// with `s` (a search for a word's prefix). Nothing can follow it.
    pub(crate) fn starting(self, s: &str) -> Self {
        let mut p = self.next(&[Kind::Str], |b| {
            let at = b.len();
            parts::put_str(s, b);
            // Without the terminator, so longer strings match too.
            b.truncate(b.len() - 2);
            debug_assert!(b.len() >= at);
        });
        // No further part may be appended (a debug build would fail on the next one).
        p.parts = usize::MAX / 2;
        p
    }

    /// A whole key as a prefix: the rows under it (those of the key itself, and of longer keys
    /// starting with it).
    pub(crate) fn of(key: &K::Of<'_>) -> Self {
        let mut bytes = Vec::with_capacity(96);
        K::encode(key, &mut bytes);
        Prefix {
            bytes,
            parts: K::PARTS.len(),
            _key: PhantomData,
        }
    }

    /// The encoded prefix.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
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
    #![allow(clippy::unwrap_used)]
    use super::parts::*;
    use super::*;

    fn strs(parts: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            put_str(p, &mut out);
        }
        out
    }

    #[test]
    fn string_parts_do_not_run_together() {
        let a = strs(&["ab", "c"]);
        let b = strs(&["a", "bc"]);
        assert_ne!(a, b);
        assert!(!a.starts_with(&strs(&["a"])));
    }

    #[test]
    fn a_canonical_uuid_tenant_is_its_16_bytes_and_any_other_id_its_text() {
        let ids = [
            "00000000-0000-4000-8000-000000000000",
            "0f9e8d7c-6b5a-4948-8776-655443322110",
            "9fffffff-ffff-4fff-bfff-ffffffffffff",
            "a0000000-0000-4000-8000-000000000000",
            "ffffffff-ffff-4fff-bfff-ffffffffffff",
        ];
        let mut keys = Vec::new();
        for id in ids {
            let mut k = Vec::new();
            tenant::put(id, &mut k);
            assert_eq!(k.len(), 18, "{id}");
            assert_eq!(k[..2], UUID_TAG);
            assert_eq!(tenant::get(&k, 0), Some((Cow::Owned(id.to_owned()), 18)));
            keys.push(k);
        }
        // Byte order is the ids' text order: a scan over tenants keeps its order.
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        // Anything else is its text, which no 16-byte part can be taken for.
        for other in [
            "0F9E8D7C-6B5A-4948-8776-655443322110",
            "{0f9e8d7c-6b5a-4948-8776-655443322110}",
            "0f9e8d7c6b5a49488776655443322110",
            "0f9e8d7c-6b5a-4948-8776-65544332211",
            "0f9e8d7c-6b5a-4948-8776-6554433221100",
            "0f9e8d7c_6b5a-4948-8776-655443322110",
            "0f9e8d7c-6b5a-4948-8776-65544332211g",
            "acme",
            "",
        ] {
            let mut k = Vec::new();
            tenant::put(other, &mut k);
            assert_eq!(k, strs(&[other]), "{other}");
            assert_eq!(tenant::get(&k, 0), Some((Cow::Borrowed(other), k.len())));
        }
        // A tenant's rows are one prefix range: its part never prefixes another tenant's.
        let mut a = Vec::new();
        tenant::put(ids[1], &mut a);
        let mut b = Vec::new();
        tenant::put("acme", &mut b);
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
    }

    #[test]
    fn uuid_id_parts_are_16_bytes_in_text_order_and_the_upgrade_rule_finds_them() {
        use crate::idempotency::IdemAgeKey;
        use crate::store::KeyDef;
        let ids = [
            "00000000-0000-4000-8000-000000000000",
            "0f9e8d7c-6b5a-4948-8776-655443322110",
            "a0000000-0000-4000-8000-000000000000",
            "ffffffff-ffff-4fff-bfff-ffffffffffff",
        ];
        // Two id parts after an instant: the tenant's and a client's key.
        let key = |t: &str, k: &str| IdemAgeKey::new(Timestamp(5), t, "/v1/x", k).encode();
        let mut keys = Vec::new();
        for t in ids {
            for k in ids.iter().copied().chain(["key-1"]) {
                let bytes = key(t, k);
                let back = IdemAgeKey::decode(&bytes).unwrap();
                assert_eq!(
                    (back.tenant_id.as_ref(), back.idempotency_key.as_ref()),
                    (t, k)
                );
                let k_len = if k == "key-1" { 5 + 2 } else { 18 };
                assert_eq!(bytes.len(), 8 + 18 + (5 + 2) + k_len, "{t} {k}");
                // The prefix of a scan writes the part as the key does.
                let p = Prefix::<IdemAgeKey<'static>>::all()
                    .ts(Timestamp(5))
                    .ext_id(t);
                assert!(bytes.starts_with(p.as_bytes()));
                // The upgrade's rule: from the text form (layouts before 13) to this one.
                let mut old = Vec::new();
                ts::put(&Timestamp(5), &mut old);
                put_str(t, &mut old);
                put_str("/v1/x", &mut old);
                put_str(k, &mut old);
                let layout = <IdemAgeKey<'static> as KeyDef>::PARTS;
                assert_eq!(ext_ids_as_bytes(layout, &old), Some(bytes.clone()));
                assert!(bytes < old, "a moved key sorts before the one it replaces");
                assert_eq!(ext_ids_as_bytes(layout, &bytes), None, "nothing to move");
                keys.push(bytes);
            }
        }
        // UUIDs sort as their text does (the non-UUID key after them): list orders keep.
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            ext_ids_as_bytes(<IdemAgeKey<'static> as KeyDef>::PARTS, b"junk"),
            None
        );
    }

    #[test]
    fn only_the_first_part_of_a_key_is_a_tenant_part() {
        // The layout-12 upgrade rewrites the first part of tenant-scoped keys only.
        for t in crate::schema::tables() {
            assert!(
                t.layout().iter().skip(1).all(|p| p.kind != Kind::Tenant),
                "{}",
                t.name()
            );
        }
    }

    #[test]
    fn dates_are_their_text() {
        let d = Date::parse("2026-02-28").expect("date");
        let mut k = Vec::new();
        put_date(d, &mut k);
        assert_eq!(k, strs(&["2026-02-28"]));
        let far = Date(chrono::NaiveDate::from_ymd_opt(12_000, 1, 2).expect("date"));
        let mut k = Vec::new();
        put_date(far, &mut k);
        assert_eq!(k, strs(&["+12000-01-02"]));
        assert_eq!(date::get(&k, 0), Some((far, k.len())));
    }

    #[test]
    fn strings_with_nul_round_trip_and_sort() {
        let k = strs(&["a\0b", "z"]);
        let (s, next) = get_str(&k, 0).expect("part");
        assert_eq!(s, "a\0b");
        assert_eq!(get_str(&k, next).expect("part").0, "z");
        assert!(strs(&["a"]) < strs(&["a\0"]));
        assert!(strs(&["a\0"]) < strs(&["a\u{1}"]));
    }

    #[test]
    fn signed_integers_sort_numerically() {
        let keys: Vec<Vec<u8>> = [-5i64, -1, 0, 1, 7]
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                i64::put(v, &mut out);
                out
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(i64::get(&keys[0], 0), Some((-5, 8)));
    }

    #[test]
    fn string_parts_read_back_borrowed_or_unescaped() {
        let mut k = strs(&["plain", "nul\0inside"]);
        k.extend_from_slice(&7u64.to_be_bytes());
        let (a, at) = get_str(&k, 0).unwrap();
        assert!(matches!(a, Cow::Borrowed("plain")));
        let (b, at) = get_str(&k, at).unwrap();
        assert_eq!(b, "nul\0inside");
        assert_eq!(&k[at..], &7u64.to_be_bytes());
        assert!(get_str(b"no terminator", 0).is_none());
    }

    #[test]
    fn numbered_and_named_ids_never_collide() {
        let mut sealed = Vec::new();
        id::put(&Id::Sealed(7), &mut sealed);
        let mut named = Vec::new();
        id::put(&Id::Named("7".into()), &mut named);
        assert_ne!(sealed, named);
        assert!(sealed < named, "numbered ids sort first");
        assert_eq!(id::get(&sealed, 0), Some((Id::Sealed(7), 10)));
        assert_eq!(id::get(&named, 0), Some((Id::Named("7".into()), 3)));
    }

    #[test]
    fn an_empty_date_sorts_before_every_date() {
        let mut none = Vec::new();
        maybe_date::put(&None, &mut none);
        let mut some = Vec::new();
        maybe_date::put(&Date::parse("0001-01-01"), &mut some);
        assert!(none < some);
        assert_eq!(maybe_date::get(&none, 0), Some((None, 2)));
    }

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(&[0xFF]), None);
    }
}
