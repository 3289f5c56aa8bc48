//! Record encoding: one version byte, then the record in postcard.
//!
//! The version byte lets a record type evolve: a decoder sees which layout a stored value has
//! and can migrate it: a type that bumps [`Record::VERSION`] reads its older layouts in
//! [`Record::decode_older`] (the metered event types and usage events are at version 2); an
//! unknown version is reported as a storage error rather than misread. A record may replace postcard with a layout of its own
//! (the KPI series chunks do, for size and to be read in place); the version byte stays.

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value stored in a table.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// The layout version written in front of the encoded value.
    const VERSION: u8 = 1;

    /// Appends the encoded record (what follows the version byte): postcard, unless the record
    /// has a layout of its own.
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        postcard::to_io(self, out).map_err(|e| Error::Storage(format!("encode: {e}")))?;
        Ok(())
    }

    /// Decodes what [`Record::encode_body`] wrote.
    fn decode_body(body: &[u8]) -> Result<Self> {
        postcard::from_bytes(body).map_err(|e| Error::Storage(format!("decode: {e}")))
    }

    /// Decodes a record stored with an older `version` (below [`Record::VERSION`]): a record
    /// type that bumped its version reads the layouts it had before here. By default no older
    /// layout is readable.
    fn decode_older(version: u8, body: &[u8]) -> Result<Self> {
        let _ = body;
        Err(unreadable(version, Self::VERSION))
    }
}

fn unreadable(version: u8, expects: u8) -> Error {
    Error::Storage(format!(
        "record version {version} is not readable by this build (expects {expects})"
    ))
}

/// Encodes `value` with its version byte. The bytes are made in the thread's buffer (see
/// [`with_encoded`]) and copied out once, at their size, rather than into a small buffer
/// that grows field by field.
pub(crate) fn encode<R: Record>(value: &R) -> Result<Vec<u8>> {
    with_encoded(value, |bytes| Ok(bytes.to_vec()))
}

/// Encodes `value` with its version byte, appending to `out` (lets bulk writers reuse a buffer).
pub(crate) fn encode_into<R: Record>(value: &R, out: &mut Vec<u8>) -> Result<()> {
    out.push(R::VERSION);
    value.encode_body(out)
}

/// Calls `f` with the bytes [`encode`] makes of `value`, written into a buffer of the thread's
/// that is reused from record to record: a row written costs no allocation for its value, nor
/// the reallocations of a small buffer growing field by field (a few of which every record of
/// more than a few dozen bytes took).
pub(crate) fn with_encoded<R: Record, T>(
    value: &R,
    f: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    with_buffer(|buf| {
        encode_into(value, buf)?;
        f(buf)
    })
}

/// Calls `f` with the bytes [`encode_as`] makes of `value`, in the thread's reused buffer (see
/// [`with_encoded`]).
pub(crate) fn with_encoded_as<V: Record, B: EncodesAs<V>, T>(
    value: &B,
    f: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    with_buffer(|buf| {
        buf.reserve(value.size_hint());
        encode_as_into::<V, B>(value, buf)?;
        f(buf)
    })
}

/// The capacity past which the thread's encoding buffer is not kept (a large record, such as
/// a KPI chunk, is not held in memory after its write).
const KEPT_BUFFER: usize = 16 * 1024;

/// Calls `f` with the thread's encoding buffer for values ([`with_thread_buffer`]).
fn with_buffer<T>(f: impl FnOnce(&mut Vec<u8>) -> Result<T>) -> Result<T> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    with_thread_buffer(&BUF, f)
}

/// Calls `f` with the thread's buffer `buf`, emptied, so that encoding one record or key after
/// another costs no allocation; with a buffer of its own when `buf` is in use (an encoding made
/// inside another's `f`: a write made from a write's closure, a key encoded in a scan's
/// visitor). A buffer grown past [`KEPT_BUFFER`] is not kept. The one mechanism of the value
/// buffer here and the key buffer of [`super::reader::with_key`] (each its own `buf`, since a
/// write holds a key and a value at once).
pub(crate) fn with_thread_buffer<T>(
    buf: &'static std::thread::LocalKey<std::cell::RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> T,
) -> T {
    buf.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let out = f(&mut buf);
            if buf.capacity() > KEPT_BUFFER {
                *buf = Vec::with_capacity(1024);
            }
            out
        }
        Err(_) => f(&mut Vec::with_capacity(256)),
    })
}

/// A borrowed form of the record `V` that encodes to exactly `V`'s bytes: the same fields in
/// the same order, `&str` (or [`StrBytes`]) where `V` has a `String`. It lets a write store a
/// record made of borrowed parts without copying each into an owned field first (the event
/// and timeline rows of every write). Only for records stored as postcard (the default
/// [`Record::encode_body`]); each implementation has a test that its bytes decode as `V`.
pub(crate) trait EncodesAs<V: Record>: Serialize {
    /// A guess of the encoded size, so the buffer is allocated once.
    fn size_hint(&self) -> usize {
        64
    }
}

/// Encodes `value` as the record `V` it stands for, with `V`'s version byte (writes use
/// [`with_encoded_as`]).
#[cfg(test)]
pub(crate) fn encode_as<V: Record, B: EncodesAs<V>>(value: &B) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(value.size_hint());
    encode_as_into::<V, B>(value, &mut out)?;
    Ok(out)
}

/// Appends what [`encode_as`] makes of `value` to `out`.
fn encode_as_into<V: Record, B: EncodesAs<V>>(value: &B, out: &mut Vec<u8>) -> Result<()> {
    out.push(V::VERSION);
    postcard::to_io(value, out).map_err(|e| Error::Storage(format!("encode: {e}")))?;
    Ok(())
}

/// Test-only: asserts that `row` encodes to exactly `rec`'s bytes, within its size hint, and
/// decodes back as `rec` (the test every [`EncodesAs`] implementation has).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn assert_encodes_as<V, B>(row: &B, rec: &V)
where
    V: Record + PartialEq + std::fmt::Debug,
    B: EncodesAs<V>,
{
    let bytes = encode_as::<V, B>(row).unwrap();
    assert_eq!(bytes, encode(rec).unwrap());
    assert!(bytes.len() <= row.size_hint());
    assert_eq!(&decode::<V>(&bytes).unwrap(), rec);
}

/// UTF-8 text held as bytes (what `serde_json::to_writer` makes), encoded as postcard encodes a
/// `str` (its length, then its bytes): the field of an [`EncodesAs`] form that stands for a
/// `String`, without the check or the copy that making a `String` of it would take.
pub(crate) struct StrBytes<'a>(pub &'a [u8]);

impl Serialize for StrBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // postcard writes bytes and a str alike: a varint length, then the bytes.
        s.serialize_bytes(self.0)
    }
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<R: Record>(bytes: &[u8]) -> Result<R> {
    match bytes.split_first() {
        Some((&v, rest)) if v < R::VERSION => R::decode_older(v, rest),
        _ => R::decode_body(body::<R>(bytes)?),
    }
}

/// The encoded record after its version byte, once the version is checked: for records read
/// in place rather than decoded whole.
pub(crate) fn body<R: Record>(bytes: &[u8]) -> Result<&[u8]> {
    match bytes.split_first() {
        Some((&v, rest)) if v == R::VERSION => Ok(rest),
        Some((&v, _)) => Err(unreadable(v, R::VERSION)),
        None => Err(Error::Storage("empty record".into())),
    }
}

impl Record for u64 {}
impl Record for u8 {}
impl Record for i64 {}
impl Record for () {}
impl Record for String {}
impl Record for crate::time::Timestamp {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A record encoded while another's bytes are in the thread's buffer (a write made from
    // within a write's closure) gets a buffer of its own; both come out as `encode` makes
    // them, and a large record does not stay in the thread's buffer.
    #[test]
    fn reused_encoding_buffer_nests_and_is_not_kept_large() {
        let outer = "outer".to_owned();
        let inner = "x".repeat(KEPT_BUFFER * 2);
        let (a, b) = with_encoded(&outer, |a| {
            let b = with_encoded(&inner, |b| Ok(b.to_vec()))?;
            Ok((a.to_vec(), b))
        })
        .unwrap();
        assert_eq!(a, encode(&outer).unwrap());
        assert_eq!(b, encode(&inner).unwrap());
        with_encoded(&inner, |_| Ok(())).unwrap();
        with_buffer(|buf| {
            assert!(buf.is_empty() && buf.capacity() <= KEPT_BUFFER);
            Ok(())
        })
        .unwrap();
    }
}
