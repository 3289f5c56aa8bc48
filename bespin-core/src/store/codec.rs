//! Record encoding: one version byte, then the record in postcard.
//!
//! The version byte lets a record type evolve: a decoder sees which layout a stored value has
//! and can migrate it. Today every record is at version 1; an unknown version is reported as a
//! storage error rather than misread. A record may replace postcard with a layout of its own
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
}

/// Encodes `value` with its version byte.
pub(crate) fn encode<R: Record>(value: &R) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Encodes `value` with its version byte, appending to `out` (lets bulk writers reuse a buffer).
pub(crate) fn encode_into<R: Record>(value: &R, out: &mut Vec<u8>) -> Result<()> {
    out.push(R::VERSION);
    value.encode_body(out)
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<R: Record>(bytes: &[u8]) -> Result<R> {
    R::decode_body(body::<R>(bytes)?)
}

/// The encoded record after its version byte, once the version is checked: for records read
/// in place rather than decoded whole.
pub(crate) fn body<R: Record>(bytes: &[u8]) -> Result<&[u8]> {
    match bytes.split_first() {
        Some((&v, rest)) if v == R::VERSION => Ok(rest),
        Some((&v, _)) => Err(Error::Storage(format!(
            "record version {v} is not readable by this build (expects {})",
            R::VERSION
        ))),
        None => Err(Error::Storage("empty record".into())),
    }
}

impl Record for u64 {}
impl Record for u8 {}
impl Record for i64 {}
impl Record for () {}
impl Record for String {}
impl Record for crate::time::Timestamp {}
