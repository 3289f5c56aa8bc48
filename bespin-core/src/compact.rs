//! The compact integer encodings of the chunk records (KPI points, reported usage events):
//! zigzag for signed values, LEB128 varints. Readers return `None` on truncated or overlong
//! input; each record maps that to its own "malformed" error.

/// A signed value as an unsigned one whose small magnitudes stay small.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as a varint (7 bits a byte, least significant first).
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    // A loop of its own rather than through `put_varint128`: KPI ingest writes one per point.
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// [`put_varint`] of a 128-bit value.
#[inline]
pub(crate) fn put_varint128(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint of at most 10 bytes (a `u64`) from the front of `bytes`, advancing it.
#[inline]
pub(crate) fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = bytes.get(i + 1..).unwrap_or_default();
            return Some(v);
        }
    }
    None
}

/// Reads a varint of at most 19 bytes (a `u128`) from the front of `bytes`, advancing it.
#[inline]
pub(crate) fn read_varint128(bytes: &mut &[u8]) -> Option<u128> {
    let mut v = 0u128;
    for (i, &b) in bytes.iter().take(19).enumerate() {
        v |= u128::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = bytes.get(i + 1..).unwrap_or_default();
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_refused() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            let mut rest = out.as_slice();
            assert_eq!(read_varint(&mut rest).map(unzigzag), Some(v));
            assert!(rest.is_empty());
            let mut rest = out.as_slice();
            assert_eq!(read_varint128(&mut rest), Some(u128::from(zigzag(v))));
        }
        let mut big = Vec::new();
        put_varint128(&mut big, u128::MAX);
        assert_eq!(read_varint128(&mut big.as_slice()), Some(u128::MAX));
        assert_eq!(read_varint(&mut [0x80u8, 0x80].as_slice()), None);
    }
}
