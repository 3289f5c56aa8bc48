//! A chunk of a series as stored: [`ChunkRec`], its compact encoding, and [`View`], which
//! reads a stored chunk in place.

use super::super::Point;
use crate::compact::{self, put_varint, unzigzag, zigzag};
use crate::error::{Error, Result};
use crate::store::codec::Record;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The most points a chunk holds. A chunk of 128 minute-spaced points encodes to ≈ 1.7 KB,
/// so two share a 4 KiB page. Chosen by callgrind (`profile_ops ingest|append|latest`,
/// 2026-11-30): bulk ingest costs 404 / 355 / 330 instructions a point with chunks of
/// 64 / 128 / 256 (7,600 with a row per point) — the B-tree work is already spread thin at
/// 128 — while a single-point append, which re-encodes the last chunk, costs +1% / +3% / +7%
/// over a row per point, and readers walk up to a chunk's length.
pub(crate) const CHUNK_POINTS: usize = 128;

/// A stored point: its instant, value and the time it was ingested.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChunkPoint {
    /// The instant.
    pub ts: Timestamp,
    /// The value.
    pub value: f64,
    /// When the point was ingested.
    pub created_at: Timestamp,
}

/// A row of [`KPI_CHUNKS`]: consecutive points of one series, in instant order.
///
/// Stored (after the version byte) in a layout of its own, not postcard, so that it is compact
/// and readers find a point without decoding the chunk. Every column runs newest first,
/// because readers look from the newest end: `latest` reads the first entry, and a window
/// start (the oldest point at or after an instant) is usually a few points back.
///
/// ```text
/// n                 varint: the number of points
/// value × n         f64, little-endian
/// instant × n       zigzag varint: the newest absolute, then each older one as its
///                   difference from the one listed before it
/// created_at × n    zigzag varint: likewise
/// ```
///
/// Minute-spaced points of one ingest take 13 bytes each (8 + 4 + 1). Differences wrap, so any
/// sequence round-trips; order and uniqueness are invariants checked by `bespin check`, not
/// assumed by the decoder. The serde derives only satisfy [`Record`]'s bounds; the stored
/// layout is the one above.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct ChunkRec {
    /// The points, oldest first.
    pub points: Vec<ChunkPoint>,
}

impl Record for ChunkRec {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        out.reserve(10 + self.points.len() * 14);
        put_varint(out, self.points.len() as u64);
        for p in self.points.iter().rev() {
            out.extend_from_slice(&p.value.to_le_bytes());
        }
        put_deltas(out, self.points.iter().rev().map(|p| p.ts.0));
        put_deltas(out, self.points.iter().rev().map(|p| p.created_at.0));
        Ok(())
    }

    fn decode_body(body: &[u8]) -> Result<Self> {
        let view = View::parse(body)?;
        let mut points = Vec::with_capacity(view.len);
        let mut it = view.instants();
        for (i, ts) in (&mut it).enumerate() {
            let p = view.point(i, ts?)?;
            points.push(ChunkPoint {
                ts: p.ts,
                value: p.value,
                created_at: Timestamp(0),
            });
        }
        // The created_at column follows the instants.
        let mut rest = it.bytes;
        let mut prev = 0i64;
        for p in &mut points {
            prev = prev.wrapping_add(unzigzag(read_varint(&mut rest)?));
            p.created_at = Timestamp(prev);
        }
        if !rest.is_empty() {
            return Err(malformed());
        }
        points.reverse();
        Ok(ChunkRec { points })
    }
}

fn malformed() -> Error {
    Error::Storage("malformed KPI chunk".into())
}

/// Each value as the zigzag varint of its (wrapping) difference to the previous one.
fn put_deltas(out: &mut Vec<u8>, values: impl Iterator<Item = i64>) {
    let mut prev = 0i64;
    for v in values {
        put_varint(out, zigzag(v.wrapping_sub(prev)));
        prev = v;
    }
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64> {
    compact::read_varint(bytes).ok_or_else(malformed)
}

/// A chunk read in place (values and instants, not `created_at`), without allocating.
pub(super) struct View<'a> {
    pub(super) len: usize,
    pub(super) values: &'a [u8],
    pub(super) instants: &'a [u8],
}

impl<'a> View<'a> {
    pub(super) fn parse(body: &'a [u8]) -> Result<View<'a>> {
        let mut rest = body;
        let len = usize::try_from(read_varint(&mut rest)?).map_err(|_| malformed())?;
        let bytes = len
            .checked_mul(8)
            .filter(|b| *b <= rest.len())
            .ok_or_else(malformed)?;
        let (values, instants) = rest.split_at(bytes);
        Ok(View {
            len,
            values,
            instants,
        })
    }

    /// The instants, newest first; the `i`-th goes with [`View::value`]`(i)`.
    pub(super) fn instants(&self) -> Instants<'a> {
        Instants {
            left: self.len,
            bytes: self.instants,
            prev: 0,
        }
    }

    /// The value of the `i`-th point, newest first.
    pub(super) fn value(&self, i: usize) -> Option<f64> {
        let at = i.checked_mul(8)?;
        let bytes = self.values.get(at..at.checked_add(8)?)?;
        Some(f64::from_le_bytes(<[u8; 8]>::try_from(bytes).ok()?))
    }

    /// The `i`-th point, newest first, whose instant is `ts`.
    pub(super) fn point(&self, i: usize, ts: Timestamp) -> Result<Point> {
        let value = self.value(i).ok_or_else(malformed)?;
        Ok(Point { ts, value })
    }
}

/// The instants of a [`View`], newest first; once exhausted, `bytes` is what follows the
/// instant column.
pub(super) struct Instants<'a> {
    left: usize,
    bytes: &'a [u8],
    prev: i64,
}

impl Iterator for Instants<'_> {
    type Item = Result<Timestamp>;

    fn next(&mut self) -> Option<Result<Timestamp>> {
        self.left = self.left.checked_sub(1)?;
        Some(read_varint(&mut self.bytes).map(|d| {
            self.prev = self.prev.wrapping_add(unzigzag(d));
            Timestamp(self.prev)
        }))
    }
}
