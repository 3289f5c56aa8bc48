//! How a KPI's series is stored: its points in chunks of at most [`CHUNK_POINTS`], each chunk
//! one row of [`tables::KPI_CHUNKS`] keyed (tenant, kpi, instant of its first point).
//!
//! Invariants (verified by `bespin check`): a chunk holds 1 to [`CHUNK_POINTS`] points in
//! strictly increasing instant order, its key's instant is its first point's, and a chunk's
//! last point comes before the next chunk's first, so every instant is stored at most once and
//! the chunks of a series, in key order, list its points in time order.
//!
//! So the point at or before an instant is in the last chunk that starts at or before it (one
//! reverse seek), and a bulk ingest touches one B-tree row per [`CHUNK_POINTS`] points instead
//! of one per point — what made row-per-point ingest slow (keys of ≈ 85 bytes, one B-tree
//! insert each).
//!
//! Writing is two steps, so that a refused quota writes nothing: [`plan`] reads the chunks the
//! new points fall into and merges them in memory (counting what is new), then
//! [`Plan::apply`] writes the merged chunks back.

use super::{NewPoint, Point};
use crate::error::{Error, Result};
use crate::store::codec::{self, Record};
use crate::store::{Flow, Key, Order, Reader, WriteTx, read_ts, tables};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

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

/// A row of [`tables::KPI_CHUNKS`]: consecutive points of one series, in instant order.
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

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
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
    let mut v = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = bytes.get(i + 1..).unwrap_or_default();
            return Ok(v);
        }
    }
    Err(malformed())
}

/// A chunk read in place (values and instants, not `created_at`), without allocating.
struct View<'a> {
    len: usize,
    values: &'a [u8],
    instants: &'a [u8],
}

impl<'a> View<'a> {
    fn parse(body: &'a [u8]) -> Result<View<'a>> {
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
    fn instants(&self) -> Instants<'a> {
        Instants {
            left: self.len,
            bytes: self.instants,
            prev: 0,
        }
    }

    /// The value of the `i`-th point, newest first.
    fn value(&self, i: usize) -> Option<f64> {
        let at = i.checked_mul(8)?;
        let bytes = self.values.get(at..at.checked_add(8)?)?;
        Some(f64::from_le_bytes(<[u8; 8]>::try_from(bytes).ok()?))
    }

    /// The `i`-th point, newest first, whose instant is `ts`.
    fn point(&self, i: usize, ts: Timestamp) -> Result<Point> {
        let value = self.value(i).ok_or_else(malformed)?;
        Ok(Point { ts, value })
    }
}

/// The instants of a [`View`], newest first; once exhausted, `bytes` is what follows the
/// instant column.
struct Instants<'a> {
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

/// The key of the chunk of the series `prefix` (tenant, kpi) that starts at `first`.
pub(crate) fn chunk_key(prefix: &Key, first: Timestamp) -> Key {
    prefix.clone().ts(first)
}

/// The instant at the end of a chunk key (its last eight bytes).
pub(crate) fn first_of(key: &[u8]) -> Result<Timestamp> {
    key.len()
        .checked_sub(8)
        .and_then(|at| read_ts(key, at))
        .ok_or_else(|| Error::Storage("malformed KPI chunk key".into()))
}

/// Visits the chunks of the series `prefix` with keys within (`lo`, `hi`) in `order`, read in
/// place. An unbounded side is the series' own end.
fn scan_chunks(
    r: &impl Reader,
    prefix: &Key,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    order: Order,
    visit: &mut dyn FnMut(&[u8], View<'_>) -> Result<Flow>,
) -> Result<()> {
    r.scan_prefix_raw(
        tables::KPI_CHUNKS.name(),
        prefix.as_bytes(),
        lo,
        hi,
        order,
        &mut |k, v| visit(k, View::parse(codec::body::<ChunkRec>(v)?)?),
    )
}

/// The newest point of the series `prefix` at or before `cutoff` (inclusive; `None` = no
/// cut-off): a reverse seek to the last chunk starting at or before the cut-off, then its
/// points from the newest back.
pub(crate) fn latest_at(
    r: &impl Reader,
    prefix: &Key,
    cutoff: Option<Timestamp>,
) -> Result<Option<Point>> {
    // Exclusive upper key: the instant just after the cut-off (none after the last instant).
    let to = cutoff
        .and_then(|c| c.0.checked_add(1))
        .map(|n| chunk_key(prefix, Timestamp(n)));
    let hi = to
        .as_ref()
        .map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_bytes()));
    let mut found = None;
    scan_chunks(r, prefix, Bound::Unbounded, hi, Order::Desc, &mut |_, v| {
        for (i, ts) in v.instants().enumerate() {
            let ts = ts?;
            if cutoff.is_none_or(|c| ts <= c) {
                found = Some(v.point(i, ts)?);
                return Ok(Flow::Stop);
            }
        }
        // A chunk starting at or before the cut-off has a point there; read on only if not.
        Ok(Flow::Continue)
    })?;
    Ok(found)
}

/// The oldest point of the series `prefix` at or after `from`: in the last chunk starting at
/// or before `from` (walking back from its newest point), else the first point of the next
/// chunk (its key's instant, and its oldest value).
pub(crate) fn first_from(r: &impl Reader, prefix: &Key, from: Timestamp) -> Result<Option<Point>> {
    let at = chunk_key(prefix, from);
    let mut found = None;
    scan_chunks(
        r,
        prefix,
        Bound::Unbounded,
        Bound::Included(at.as_bytes()),
        Order::Desc,
        &mut |_, v| {
            // The last instant at or after `from`, walking back from the newest.
            let mut oldest = None;
            for (i, ts) in v.instants().enumerate() {
                let ts = ts?;
                if ts < from {
                    break;
                }
                oldest = Some((i, ts));
            }
            if let Some((i, ts)) = oldest {
                found = Some(v.point(i, ts)?);
            }
            Ok(Flow::Stop)
        },
    )?;
    if found.is_none() {
        scan_chunks(
            r,
            prefix,
            Bound::Excluded(at.as_bytes()),
            Bound::Unbounded,
            Order::Asc,
            &mut |k, v| {
                found = match v.len.checked_sub(1).and_then(|i| v.value(i)) {
                    Some(value) => Some(Point {
                        ts: first_of(k)?,
                        value,
                    }),
                    None => None,
                };
                Ok(if found.is_some() {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            },
        )?;
    }
    Ok(found)
}

/// Visits the points of the series `prefix` with instants in `from..=to`, oldest first: from
/// the last chunk starting at or before `from` (one reverse seek) through the chunks starting
/// at or before `to`.
pub(crate) fn visit_range(
    r: &impl Reader,
    prefix: &Key,
    from: Timestamp,
    to: Timestamp,
    visit: &mut dyn FnMut(Point) -> Flow,
) -> Result<()> {
    let (lo, hi) = (chunk_key(prefix, from), chunk_key(prefix, to));
    let mut first = None;
    scan_chunks(
        r,
        prefix,
        Bound::Unbounded,
        Bound::Included(lo.as_bytes()),
        Order::Desc,
        &mut |k, _| {
            first = Some(k.to_vec());
            Ok(Flow::Stop)
        },
    )?;
    let lo = first.as_deref().unwrap_or(lo.as_bytes());
    let mut chunk = Vec::with_capacity(CHUNK_POINTS);
    scan_chunks(
        r,
        prefix,
        Bound::Included(lo),
        Bound::Included(hi.as_bytes()),
        Order::Asc,
        &mut |_, v| {
            // A chunk lists its points newest first; collect it to hand them out oldest first.
            chunk.clear();
            for (i, ts) in v.instants().enumerate() {
                chunk.push(v.point(i, ts?)?);
            }
            for p in chunk.iter().rev().filter(|p| p.ts >= from && p.ts <= to) {
                if let Flow::Stop = visit(*p) {
                    return Ok(Flow::Stop);
                }
            }
            Ok(Flow::Continue)
        },
    )
}

/// The number of points stored in every series (reads each chunk's count only).
pub(crate) fn count_points(r: &impl Reader) -> Result<u64> {
    let mut n = 0u64;
    r.scan_raw(
        tables::KPI_CHUNKS.name(),
        Bound::Unbounded,
        Bound::Unbounded,
        Order::Asc,
        &mut |_, v| {
            n += View::parse(codec::body::<ChunkRec>(v)?)?.len as u64;
            Ok(Flow::Continue)
        },
    )?;
    Ok(n)
}

/// The chunks an ingest rewrites, merged in memory; see [`plan`].
pub(crate) struct Plan {
    /// The points of every run, one run after another.
    points: Vec<ChunkPoint>,
    runs: Vec<Run>,
    /// Points new to the series.
    pub inserted: u64,
}

/// Consecutive points of a series that replace (at most) one stored chunk.
struct Run {
    /// First instant of the stored chunk they replace, if any.
    old: Option<Timestamp>,
    /// `Plan::points[start..end]`.
    start: usize,
    end: usize,
    /// At the end of the series: fill chunks from the front, so appends leave full chunks.
    /// Elsewhere the points are split evenly, so inserting into a full chunk leaves two
    /// half-full ones rather than a full one and one of a single point.
    append: bool,
}

/// Where a point goes: the last chunk starting at or before it (else the first chunk), and
/// the first instant of the chunk after that one.
struct Located {
    chunk: Option<(Timestamp, ChunkRec)>,
    next: Option<Timestamp>,
}

fn locate(r: &impl Reader, prefix: &Key, t: Timestamp) -> Result<Located> {
    let (p, table) = (prefix.as_bytes(), tables::KPI_CHUNKS.name());
    let at = chunk_key(prefix, t);
    let mut chunk: Option<(Vec<u8>, ChunkRec)> = None;
    r.scan_prefix_raw(
        table,
        p,
        Bound::Unbounded,
        Bound::Included(at.as_bytes()),
        Order::Desc,
        &mut |k, v| {
            chunk = Some((k.to_vec(), codec::decode(v)?));
            Ok(Flow::Stop)
        },
    )?;
    let after = chunk.as_ref().map(|(k, _)| k.clone());
    let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut next = None;
    r.scan_prefix_raw(table, p, lo, Bound::Unbounded, Order::Asc, &mut |k, v| {
        if chunk.is_none() {
            // Before every chunk: the run goes into the first one.
            chunk = Some((k.to_vec(), codec::decode(v)?));
            return Ok(Flow::Continue);
        }
        next = Some(first_of(k)?);
        Ok(Flow::Stop)
    })?;
    Ok(Located {
        chunk: match chunk {
            Some((k, c)) => Some((first_of(&k)?, c)),
            None => None,
        },
        next,
    })
}

/// Merges `new` (sorted, unique instants) into `old` (sorted) onto `out`; a stored instant
/// keeps its stored point. Returns how many points of `new` went in.
fn merge(old: &[ChunkPoint], new: &[NewPoint], now: Timestamp, out: &mut Vec<ChunkPoint>) -> u64 {
    let point = |p: &NewPoint| ChunkPoint {
        ts: p.ts,
        value: p.value,
        created_at: now,
    };
    let (mut i, mut j, mut added) = (0, 0, 0u64);
    while let (Some(o), Some(n)) = (old.get(i), new.get(j)) {
        if o.ts < n.ts {
            out.push(*o);
            i += 1;
        } else if n.ts < o.ts {
            out.push(point(n));
            j += 1;
            added += 1;
        } else {
            out.push(*o);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(old.get(i..).unwrap_or_default());
    let rest = new.get(j..).unwrap_or_default();
    out.extend(rest.iter().map(point));
    added + rest.len() as u64
}

/// Reads the chunks the points fall into and merges the points in, without writing: within
/// the request the first point for an instant wins, and an instant already stored keeps its
/// stored point. New points get `created_at = now`. [`Plan::inserted`] counts the points that
/// are new.
pub(crate) fn plan(
    r: &impl Reader,
    prefix: &Key,
    mut new: Vec<NewPoint>,
    now: Timestamp,
) -> Result<Plan> {
    // A stable sort keeps request order among equal instants; dedup keeps the first of each.
    new.sort_by_key(|p| p.ts);
    new.dedup_by_key(|p| p.ts);
    let mut plan = Plan {
        points: Vec::with_capacity(new.len() + CHUNK_POINTS),
        runs: Vec::new(),
        inserted: 0,
    };
    let mut rest = new.as_slice();
    while let Some(first) = rest.first() {
        let Located { chunk, next } = locate(r, prefix, first.ts)?;
        // The run: every point before the next chunk (the rest of the request if none).
        let n = next.map_or(rest.len(), |next| rest.partition_point(|p| p.ts < next));
        let (run, tail) = rest.split_at(n.max(1));
        rest = tail;
        let append = next.is_none()
            && chunk
                .as_ref()
                .is_none_or(|(_, c)| c.points.last().is_none_or(|l| l.ts < first.ts));
        // A full last chunk stays as it is; the appended points start a new one.
        let chunk = chunk.filter(|(_, c)| !(append && c.points.len() >= CHUNK_POINTS));
        let (old, stored) = match &chunk {
            Some((first, c)) => (Some(*first), c.points.as_slice()),
            None => (None, &[][..]),
        };
        let start = plan.points.len();
        let added = merge(stored, run, now, &mut plan.points);
        if added == 0 {
            plan.points.truncate(start);
            continue;
        }
        plan.inserted += added;
        plan.runs.push(Run {
            old,
            start,
            end: plan.points.len(),
            append,
        });
    }
    Ok(plan)
}

impl Plan {
    /// Writes the merged chunks: each run as chunks of at most [`CHUNK_POINTS`], each keyed by
    /// its first instant; the stored chunk a run replaces is deleted when no new chunk takes
    /// its key.
    pub(crate) fn apply(&self, tx: &mut WriteTx, prefix: &Key) -> Result<()> {
        let mut rec = ChunkRec {
            points: Vec::with_capacity(CHUNK_POINTS),
        };
        for run in &self.runs {
            let points = self.points.get(run.start..run.end).unwrap_or_default();
            let mut old_kept = false;
            for piece in pieces(points, run.append) {
                let Some(first) = piece.first() else { continue };
                old_kept |= run.old == Some(first.ts);
                rec.points.clear();
                rec.points.extend_from_slice(piece);
                tx.put(&tables::KPI_CHUNKS, &chunk_key(prefix, first.ts), &rec)?;
            }
            if let Some(old) = run.old.filter(|_| !old_kept) {
                tx.delete(&tables::KPI_CHUNKS, &chunk_key(prefix, old))?;
            }
        }
        Ok(())
    }
}

/// Splits sorted points into chunks of at most [`CHUNK_POINTS`]: full ones from the front
/// when appending, else as few as possible of near-equal size.
fn pieces(points: &[ChunkPoint], append: bool) -> std::slice::Chunks<'_, ChunkPoint> {
    let size = if append {
        CHUNK_POINTS
    } else {
        let n = points.len().div_ceil(CHUNK_POINTS).max(1);
        points.len().div_ceil(n).max(1)
    };
    points.chunks(size)
}

/// Layout 4: moves the points of the row-per-point table of layouts 1 to 3 —
/// [`tables::KPI_POINTS`], (tenant, kpi, instant) → [`super::PointRec`] — into chunks, then
/// empties that table. Reads in bounded batches, so memory does not grow with the table.
pub(crate) fn chunk_legacy_points(tx: &mut WriteTx) -> Result<()> {
    chunk_legacy_points_by(tx, 64 * 1024)
}

/// [`chunk_legacy_points`], reading `batch` rows at a time.
fn chunk_legacy_points_by(tx: &mut WriteTx, batch: usize) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    let mut series: Option<Key> = None;
    let mut rec = ChunkRec {
        points: Vec::with_capacity(CHUNK_POINTS),
    };
    let mut rows: Vec<(Vec<u8>, super::PointRec)> = Vec::new();
    loop {
        rows.clear();
        let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        tx.scan_raw(
            tables::KPI_POINTS.name(),
            lo,
            Bound::Unbounded,
            Order::Asc,
            &mut |k, v| {
                rows.push((k.to_vec(), codec::decode(v)?));
                Ok(if rows.len() >= batch {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            },
        )?;
        let Some((last, _)) = rows.last() else { break };
        after = Some(last.clone());
        for (k, p) in &rows {
            let ts = first_of(k)?;
            let prefix = k.get(..k.len() - 8).unwrap_or_default();
            if series.as_ref().is_none_or(|s| s.as_bytes() != prefix) {
                flush(tx, series.as_ref(), &mut rec)?;
                series = Some(Key::from_raw(prefix));
            }
            // Keys are unique and in order, so each series arrives sorted without duplicates.
            rec.points.push(ChunkPoint {
                ts,
                value: p.value,
                created_at: p.created_at,
            });
            if rec.points.len() == CHUNK_POINTS {
                flush(tx, series.as_ref(), &mut rec)?;
            }
        }
    }
    flush(tx, series.as_ref(), &mut rec)?;
    tx.clear_unlogged(&tables::KPI_POINTS)?;
    Ok(())
}

/// Writes the points gathered in `rec` as one chunk of `series`, and empties `rec`.
fn flush(tx: &mut WriteTx, series: Option<&Key>, rec: &mut ChunkRec) -> Result<()> {
    if let (Some(prefix), Some(first)) = (series, rec.points.first()) {
        tx.put(&tables::KPI_CHUNKS, &chunk_key(prefix, first.ts), rec)?;
    }
    rec.points.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpis::{IngestResult, PointsBulk, kpi_key};
    use crate::testutil::{db, kpi, tenant, trail};
    use crate::{Bespin, Error, Principal};

    const N: i64 = CHUNK_POINTS as i64;
    const BASE: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
    const DAY: i64 = Timestamp::DAY_MICROS;

    /// A database with one tenant's admin and a KPI without points.
    fn empty_series() -> (Bespin, Principal, String) {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let id = kpi(&db, &admin, "k", &[]);
        (db, admin, id)
    }

    /// The instant `d` days after 2026-01-01 (negative: before).
    fn at(d: i64) -> Timestamp {
        Timestamp(BASE + d * DAY)
    }

    fn ingest(db: &Bespin, who: &Principal, id: &str, points: &[(i64, f64)]) -> (u64, u64) {
        let points = points
            .iter()
            .map(|&(d, value)| NewPoint { ts: at(d), value })
            .collect();
        let IngestResult { inserted, ignored } = db
            .ingest_points(who, id, PointsBulk { points })
            .expect("ingest");
        (inserted, ignored)
    }

    fn days(range: impl Iterator<Item = i64>) -> Vec<(i64, f64)> {
        range.map(|d| (d, d as f64)).collect()
    }

    /// The KPI's chunks as lists of day numbers, in key order (each key checked against its
    /// chunk's first point).
    fn chunks(db: &Bespin, who: &Principal, id: &str) -> Vec<Vec<i64>> {
        let prefix = kpi_key(who.tenant_id(), id);
        db.read(|r, _| {
            let mut out = Vec::new();
            r.scan(
                &tables::KPI_CHUNKS,
                &prefix,
                Order::Asc,
                |k, c: ChunkRec| {
                    assert_eq!(first_of(k)?, c.points[0].ts, "key = first instant");
                    out.push(c.points.iter().map(|p| (p.ts.0 - BASE) / DAY).collect());
                    Ok(Flow::Continue)
                },
            )?;
            Ok(out)
        })
        .expect("chunks")
    }

    fn sizes(c: &[Vec<i64>]) -> Vec<usize> {
        c.iter().map(Vec::len).collect()
    }

    fn healthy(db: &Bespin) {
        let report = db.check().expect("check");
        assert!(report.is_ok(), "{report}");
    }

    fn latest(db: &Bespin, who: &Principal, id: &str, cutoff: Option<i64>) -> Option<(i64, f64)> {
        db.read(|r, _| super::super::latest_at(r, who.tenant_id(), id, cutoff.map(at)))
            .expect("latest")
            .map(|p| ((p.ts.0 - BASE) / DAY, p.value))
    }

    /// (latest day, start day, start value) of the window rule.
    fn window(
        db: &Bespin,
        who: &Principal,
        id: &str,
        cutoff: Option<i64>,
        span: u64,
    ) -> Option<(i64, i64, f64)> {
        db.kpi_window(who, id, cutoff.map(at), span)
            .expect("window")
            .map(|w| {
                (
                    (w.latest.ts.0 - BASE) / DAY,
                    (w.start.ts.0 - BASE) / DAY,
                    w.start.value,
                )
            })
    }

    #[test]
    fn a_chunk_fills_to_exactly_n_and_the_next_point_starts_another() {
        let (db, admin, id) = empty_series();
        assert_eq!(ingest(&db, &admin, &id, &days(0..N)), (N as u64, 0));
        assert_eq!(sizes(&chunks(&db, &admin, &id)), [CHUNK_POINTS]);
        assert_eq!(ingest(&db, &admin, &id, &days(N..N + 1)), (1, 0));
        assert_eq!(
            chunks(&db, &admin, &id),
            [days(0..N).iter().map(|p| p.0).collect(), vec![N]]
        );
        // N + 1 points in one request: one full chunk and one of a single point.
        let other = kpi(&db, &admin, "k2", &[]);
        assert_eq!(
            ingest(&db, &admin, &other, &days(0..N + 1)),
            (N as u64 + 1, 0)
        );
        assert_eq!(sizes(&chunks(&db, &admin, &other)), [CHUNK_POINTS, 1]);
        healthy(&db);
    }

    #[test]
    fn single_point_appends_fill_the_last_chunk() {
        let (db, admin, id) = empty_series();
        let (_, events) = trail(&db, &admin);
        for d in 0..2 * N + 5 {
            assert_eq!(ingest(&db, &admin, &id, &[(d, d as f64)]), (1, 0));
            assert_eq!(latest(&db, &admin, &id, None), Some((d, d as f64)));
        }
        assert_eq!(
            sizes(&chunks(&db, &admin, &id)),
            [CHUNK_POINTS, CHUNK_POINTS, 5]
        );
        assert_eq!(
            trail(&db, &admin).1,
            events + 2 * CHUNK_POINTS + 5,
            "one usage event each"
        );
        healthy(&db);
    }

    #[test]
    fn out_of_order_points_are_stored_in_order() {
        let (db, admin, id) = empty_series();
        // 0..300 in a scrambled order (7 is coprime with 300), then more between and around.
        let scrambled: Vec<(i64, f64)> = (0..300)
            .map(|i| (i * 7 % 300, (i * 7 % 300) as f64))
            .collect();
        assert_eq!(ingest(&db, &admin, &id, &scrambled), (300, 0));
        assert_eq!(
            sizes(&chunks(&db, &admin, &id)),
            [CHUNK_POINTS, CHUNK_POINTS, 300 - 2 * CHUNK_POINTS]
        );
        let more: Vec<(i64, f64)> = [310, 305, -5, 150, 299, 400]
            .iter()
            .map(|&d| (d, d as f64))
            .collect();
        assert_eq!(ingest(&db, &admin, &id, &more), (4, 2));
        let all: Vec<i64> = chunks(&db, &admin, &id).concat();
        let mut want: Vec<i64> = (0..300).chain([310, 305, -5, 400]).collect();
        want.sort();
        assert_eq!(all, want);
        assert_eq!(latest(&db, &admin, &id, None), Some((400, 400.0)));
        assert_eq!(latest(&db, &admin, &id, Some(304)), Some((299, 299.0)));
        healthy(&db);
    }

    #[test]
    fn points_before_the_first_chunk_rekey_it() {
        let (db, admin, id) = empty_series();
        ingest(&db, &admin, &id, &days(100..150));
        assert_eq!(ingest(&db, &admin, &id, &days(90..95)), (5, 0));
        let c = chunks(&db, &admin, &id);
        assert_eq!(
            c.len(),
            1,
            "merged into the first chunk, under its new first instant"
        );
        assert_eq!(c[0][0], 90);
        // Enough before it to overflow: split evenly, the old key gone.
        assert_eq!(ingest(&db, &admin, &id, &days(-200..-100)), (100, 0));
        let c = chunks(&db, &admin, &id);
        assert_eq!(sizes(&c), [78, 77]);
        assert_eq!(
            c.concat(),
            (-200..-100)
                .chain(90..95)
                .chain(100..150)
                .collect::<Vec<_>>()
        );
        assert_eq!(latest(&db, &admin, &id, Some(-150)), Some((-150, -150.0)));
        assert_eq!(latest(&db, &admin, &id, Some(-201)), None);
        healthy(&db);
    }

    #[test]
    fn points_inside_a_full_chunk_split_it_evenly() {
        let (db, admin, id) = empty_series();
        let even: Vec<(i64, f64)> = (0..N).map(|i| (2 * i, 1.0)).collect();
        ingest(&db, &admin, &id, &even);
        ingest(&db, &admin, &id, &days(2 * N..2 * N + 3));
        assert_eq!(sizes(&chunks(&db, &admin, &id)), [CHUNK_POINTS, 3]);
        assert_eq!(ingest(&db, &admin, &id, &[(51, 0.5)]), (1, 0));
        assert_eq!(
            sizes(&chunks(&db, &admin, &id)),
            [CHUNK_POINTS / 2 + 1, CHUNK_POINTS / 2, 3]
        );
        // Gaps inside the halves fill them without a split; the last chunk is untouched.
        let odd: Vec<(i64, f64)> = (0..30).map(|i| (2 * i + 1, 0.5)).collect();
        assert_eq!(ingest(&db, &admin, &id, &odd), (29, 1));
        assert_eq!(
            sizes(&chunks(&db, &admin, &id)),
            [CHUNK_POINTS / 2 + 1 + 29, CHUNK_POINTS / 2, 3]
        );
        assert_eq!(latest(&db, &admin, &id, Some(51)), Some((51, 0.5)));
        assert_eq!(latest(&db, &admin, &id, Some(52)), Some((52, 1.0)));
        healthy(&db);
    }

    #[test]
    fn duplicates_in_a_request_and_against_stored_points_are_ignored() {
        let (db, admin, id) = empty_series();
        ingest(&db, &admin, &id, &days(0..200));
        let req = [
            (5, 999.0),
            (300, 1.0),
            (300, 2.0),
            (150, 7.0),
            (-1, 3.0),
            (-1, 4.0),
            (300, 5.0),
        ];
        assert_eq!(ingest(&db, &admin, &id, &req), (2, 5));
        assert_eq!(
            latest(&db, &admin, &id, None),
            Some((300, 1.0)),
            "first in the request wins"
        );
        assert_eq!(latest(&db, &admin, &id, Some(-1)), Some((-1, 3.0)));
        assert_eq!(
            latest(&db, &admin, &id, Some(5)),
            Some((5, 5.0)),
            "stored value kept"
        );
        assert_eq!(latest(&db, &admin, &id, Some(150)), Some((150, 150.0)));
        assert_eq!(ingest(&db, &admin, &id, &req), (0, 7));
        assert_eq!(chunks(&db, &admin, &id).concat().len(), 202);
        healthy(&db);
    }

    #[test]
    fn latest_and_window_at_chunk_boundaries() {
        let (db, admin, id) = empty_series();
        // Three chunks with gaps: days 0..N, 1000..1000+N, 2000..2010.
        ingest(&db, &admin, &id, &days(0..N));
        ingest(&db, &admin, &id, &days(1000..1000 + N));
        ingest(&db, &admin, &id, &days(2000..2010));
        assert_eq!(
            sizes(&chunks(&db, &admin, &id)),
            [CHUNK_POINTS, CHUNK_POINTS, 10]
        );
        let l = |c| latest(&db, &admin, &id, c).map(|p| p.0);
        assert_eq!(l(None), Some(2009));
        assert_eq!(l(Some(10_000)), Some(2009));
        assert_eq!(l(Some(2000)), Some(2000), "a chunk's first instant");
        assert_eq!(
            l(Some(1999)),
            Some(1000 + N - 1),
            "the gap: the previous chunk's last"
        );
        assert_eq!(l(Some(1000 + N - 1)), Some(1000 + N - 1));
        assert_eq!(l(Some(1000)), Some(1000));
        assert_eq!(l(Some(999)), Some(N - 1));
        assert_eq!(l(Some(0)), Some(0));
        assert_eq!(l(Some(-1)), None);
        let w = |c, span| window(&db, &admin, &id, c, span);
        // Without a cut-off: latest is day 2009.
        assert_eq!(
            w(None, 9),
            Some((2009, 2000, 2000.0)),
            "the start at a chunk's first"
        );
        assert_eq!(
            w(None, 10),
            Some((2009, 2000, 2000.0)),
            "from in the gap: the next chunk's first"
        );
        assert_eq!(
            w(None, 2009 - (1000 + N - 1) as u64),
            Some((2009, 1000 + N - 1, (1000 + N - 1) as f64)),
            "a chunk's last"
        );
        assert_eq!(w(None, 1009), Some((2009, 1000, 1000.0)));
        assert_eq!(w(None, 5000), Some((2009, 0, 0.0)), "before every chunk");
        assert_eq!(w(None, 0), Some((2009, 2009, 2009.0)));
        // With a cut-off inside the gap and at chunk edges.
        assert_eq!(
            w(Some(1500), 0),
            Some((1000 + N - 1, 1000 + N - 1, (1000 + N - 1) as f64))
        );
        assert_eq!(
            w(Some(1500), N as u64 - 1),
            Some((1000 + N - 1, 1000, 1000.0))
        );
        assert_eq!(
            w(Some(1500), N as u64),
            Some((1000 + N - 1, 1000, 1000.0)),
            "from in the gap before"
        );
        assert_eq!(
            w(Some(1000), 1000 - N as u64 + 1),
            Some((1000, N - 1, (N - 1) as f64))
        );
        assert_eq!(w(Some(1000), u64::MAX), Some((1000, 0, 0.0)), "saturates");
        assert_eq!(w(Some(-1), 7), None);
    }

    #[test]
    fn a_refused_quota_writes_nothing() {
        let (db, admin, id) = empty_series();
        let cap = vec![(
            "kpi_points_ingested".to_owned(),
            "monthly".to_owned(),
            crate::money::Amount::from_int(150),
        )];
        db.admin_set_plan_caps("starter", cap).expect("cap");
        ingest(&db, &admin, &id, &days(0..100));
        let before = (chunks(&db, &admin, &id), trail(&db, &admin));
        // 60 new points (10 stored ones are not charged) would pass the cap of 150.
        let points = days(90..160)
            .into_iter()
            .map(|(d, _)| NewPoint {
                ts: at(d),
                value: -1.0,
            })
            .collect();
        let e = db
            .ingest_points(&admin, &id, PointsBulk { points })
            .expect_err("over the cap");
        assert!(matches!(e, Error::QuotaExceeded(_)), "{e:?}");
        assert_eq!((chunks(&db, &admin, &id), trail(&db, &admin)), before);
        assert_eq!(latest(&db, &admin, &id, None), Some((99, 99.0)));
        // Within the cap when only the new points count: 50 new, 20 stored.
        assert_eq!(ingest(&db, &admin, &id, &days(80..150)), (50, 20));
        healthy(&db);
    }

    fn p(ts: i64, value: f64, created: i64) -> ChunkPoint {
        ChunkPoint {
            ts: Timestamp(ts),
            value,
            created_at: Timestamp(created),
        }
    }

    #[test]
    fn legacy_point_rows_become_full_chunks_across_read_batches() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let (other, _) = tenant(&db);
        let a = kpi(&db, &admin, "a", &[]);
        let b = kpi(&db, &admin, "b", &[]);
        let c = kpi(&db, &other, "c", &[]);
        let rows = [(&admin, &a, 2 * N + 3), (&admin, &b, 1), (&other, &c, N)];
        db.tamper(|tx| {
            for (who, id, n) in rows {
                for d in 0..n {
                    let k = kpi_key(who.tenant_id(), id).ts(at(d));
                    let p = crate::kpis::PointRec {
                        value: -(d as f64),
                        created_at: Timestamp(d),
                    };
                    tx.put(&tables::KPI_POINTS, &k, &p)?;
                }
            }
            // Batches of 7 rows: series and chunks straddle the batch boundaries.
            chunk_legacy_points_by(tx, 7)
        });
        healthy(&db);
        assert_eq!(
            sizes(&chunks(&db, &admin, &a)),
            [CHUNK_POINTS, CHUNK_POINTS, 3]
        );
        assert_eq!(
            chunks(&db, &admin, &a).concat(),
            (0..2 * N + 3).collect::<Vec<_>>()
        );
        assert_eq!(chunks(&db, &admin, &b), [vec![0]]);
        assert_eq!(sizes(&chunks(&db, &other, &c)), [CHUNK_POINTS]);
        assert_eq!(
            latest(&db, &other, &c, None),
            Some((N - 1, -((N - 1) as f64)))
        );
        let created = db
            .read(|r, _| {
                r.get(
                    &tables::KPI_CHUNKS,
                    &chunk_key(&kpi_key(admin.tenant_id(), &a), at(N)),
                )
            })
            .expect("read")
            .expect("second chunk");
        assert_eq!(
            created.points[3].created_at,
            Timestamp(N + 3),
            "created_at kept"
        );
        assert_eq!(db.check().expect("check").rows_in("kpi_points"), 0);
    }

    #[test]
    fn chunks_round_trip_compactly_whatever_they_hold() {
        let minute = 60_000_000;
        let base = 1_767_225_600_000_000;
        let rec = ChunkRec {
            points: (0..CHUNK_POINTS as i64)
                .map(|i| p(base + i * minute, i as f64 * 1.5, base))
                .collect(),
        };
        let bytes = codec::encode(&rec).expect("encode");
        assert_eq!(codec::decode::<ChunkRec>(&bytes).expect("decode"), rec);
        // Version byte, count (2 bytes), then 8 + 4 + 1 bytes a point, but the newest point's
        // instant and created_at are absolute (8 bytes each).
        let n = CHUNK_POINTS;
        assert_eq!(
            bytes.len(),
            1 + 2 + n * 8 + (8 + (n - 1) * 4) + (8 + (n - 1))
        );
        // Out of order, duplicates, extremes and negative values still round-trip: the
        // checker, not the decoder, judges them.
        let odd = ChunkRec {
            points: vec![
                p(i64::MAX, -0.0, i64::MIN),
                p(i64::MIN, f64::MAX, 0),
                p(5, 1.0, -7),
                p(5, f64::MIN_POSITIVE, i64::MAX),
            ],
        };
        let bytes = codec::encode(&odd).expect("encode");
        let back = codec::decode::<ChunkRec>(&bytes).expect("decode");
        assert_eq!(back, odd);
        assert!(back.points[0].value.is_sign_negative());
        let empty = codec::encode(&ChunkRec::default()).expect("encode");
        assert!(
            codec::decode::<ChunkRec>(&empty)
                .expect("decode")
                .points
                .is_empty()
        );
    }

    #[test]
    fn truncated_or_padded_chunks_do_not_decode() {
        let rec = ChunkRec {
            points: vec![p(1, 1.0, 1), p(2, 2.0, 1)],
        };
        let bytes = codec::encode(&rec).expect("encode");
        for cut in 1..bytes.len() {
            assert!(
                codec::decode::<ChunkRec>(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(codec::decode::<ChunkRec>(&padded).is_err());
        // A count larger than the bytes can hold is refused before allocating.
        assert!(codec::decode::<ChunkRec>(&[1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
        let mut wrong = bytes;
        wrong[0] = 9;
        assert!(codec::decode::<ChunkRec>(&wrong).is_err(), "version byte");
    }

    #[test]
    fn appends_fill_chunks_and_inserts_split_evenly() {
        let pts: Vec<ChunkPoint> = (0..(2 * CHUNK_POINTS + 3) as i64)
            .map(|i| p(i, 0.0, 0))
            .collect();
        let sizes = |s: &[ChunkPoint], append| -> Vec<usize> {
            pieces(s, append).map(<[ChunkPoint]>::len).collect()
        };
        let n = CHUNK_POINTS;
        assert_eq!(sizes(&pts, true), [n, n, 3]);
        assert_eq!(sizes(&pts[..n + 1], false), [n / 2 + 1, n / 2]);
        assert_eq!(sizes(&pts[..n], false), [n]);
        assert_eq!(sizes(&pts[..1], false), [1]);
        assert!(sizes(&pts, false).iter().all(|s| *s <= n));
        assert_eq!(sizes(&pts, false).len(), 3);
    }
}
