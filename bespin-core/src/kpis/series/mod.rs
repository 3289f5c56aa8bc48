//! How a KPI's series is stored: its points in chunks of at most [`CHUNK_POINTS`], each chunk
//! one row of [`KPI_CHUNKS`] keyed (tenant, kpi, instant of its first point).
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

mod chunk;

use chunk::View;
pub(crate) use chunk::{CHUNK_POINTS, ChunkPoint, ChunkRec};

use super::{NewPoint, Point};
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::store::codec;
use crate::store::{
    Flow, Order, Prefix, Reader, Show, Shown, Table, TableInfo, WriteTx, key, parts,
};
use crate::time::Timestamp;
use std::collections::HashSet;
use std::ops::Bound;

key! {
    /// (tenant, kpi, instant of the chunk's first point).
    pub(crate) struct ChunkKey<'a> { tenant_id: tenant, kpi_id: ext_id, first: ts }
    /// (tenant, kpi, instant): a point of layouts 1 to 3.
    pub(crate) struct PointKey<'a> { tenant_id: tenant, kpi_id: str, ts: ts }
}

/// (tenant, kpi, instant of the chunk's first point) → up to [`CHUNK_POINTS`] consecutive
/// points of the KPI's series, sorted by instant, no instant twice. Chunks of one series do
/// not overlap, so the series is one time-ordered range of rows, and the chunk holding an
/// instant is the last one whose key is at or before it. The console shows a row per point.
pub(crate) const KPI_CHUNKS: Table<ChunkKey<'static>, ChunkRec> = Table::new("kpi_chunks")
    .shown_as(Show {
        key_parts: 2,
        rows: point_rows,
    });
/// Legacy: (tenant, kpi, instant) → point, one row per point. Written by databases before
/// layout 4; moved into [`KPI_CHUNKS`] and emptied when such a database is opened.
pub(crate) const LEGACY_POINTS: Table<PointKey<'static>, super::PointRec> =
    Table::new("kpi_points");

/// The tables of the series.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&KPI_CHUNKS, &LEGACY_POINTS];

/// The series of one KPI: the chunks under (tenant, kpi).
pub(crate) struct Series<'a> {
    tenant: &'a str,
    kpi: &'a str,
    prefix: Prefix<ChunkKey<'static>>,
}

impl<'a> Series<'a> {
    /// The series of `kpi` in `tenant`.
    pub(crate) fn new(tenant: &'a str, kpi: &'a str) -> Self {
        Series {
            tenant,
            kpi,
            prefix: KPI_CHUNKS.prefix().tenant(tenant).ext_id(kpi),
        }
    }

    /// The key of the chunk that starts at `first`.
    fn key(&self, first: Timestamp) -> ChunkKey<'a> {
        ChunkKey::new(self.tenant, self.kpi, first)
    }

    /// The key of the chunk that starts at `first`, as a scan bound.
    fn bound(&self, first: Timestamp) -> Prefix<ChunkKey<'static>> {
        self.prefix.clone().ts(first)
    }
}

/// The instant at the end of a chunk key (its last part, read without the parts before it).
pub(crate) fn first_of(key: &[u8]) -> Result<Timestamp> {
    key.len()
        .checked_sub(8)
        .and_then(|at| parts::ts::get(key, at))
        .map(|(t, _)| t)
        .ok_or_else(|| Error::Storage("malformed KPI chunk key".into()))
}

/// Visits the chunks of the series `prefix` with keys within (`lo`, `hi`) in `order`, read in
/// place. An unbounded side is the series' own end.
fn scan_chunks(
    r: &impl Reader,
    series: &Series<'_>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    order: Order,
    visit: &mut dyn FnMut(&[u8], View<'_>) -> Result<Flow>,
) -> Result<()> {
    r.scan_stored(&KPI_CHUNKS, &series.prefix, lo, hi, order, &mut |k, v| {
        visit(k, View::parse(codec::body::<ChunkRec>(v)?)?)
    })
}

/// The newest point of the series `prefix` at or before `cutoff` (inclusive; `None` = no
/// cut-off): a reverse seek to the last chunk starting at or before the cut-off, then its
/// points from the newest back.
pub(crate) fn latest_at(
    r: &impl Reader,
    series: &Series<'_>,
    cutoff: Option<Timestamp>,
) -> Result<Option<Point>> {
    // Exclusive upper key: the instant just after the cut-off (none after the last instant).
    let to = cutoff
        .and_then(|c| c.0.checked_add(1))
        .map(|n| series.bound(Timestamp(n)));
    let hi = to
        .as_ref()
        .map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_bytes()));
    let mut found = None;
    scan_chunks(r, series, Bound::Unbounded, hi, Order::Desc, &mut |_, v| {
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
pub(crate) fn first_from(
    r: &impl Reader,
    series: &Series<'_>,
    from: Timestamp,
) -> Result<Option<Point>> {
    let at = series.bound(from);
    let mut found = None;
    scan_chunks(
        r,
        series,
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
            series,
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
    series: &Series<'_>,
    from: Timestamp,
    to: Timestamp,
    visit: &mut dyn FnMut(Point) -> Flow,
) -> Result<()> {
    let (lo, hi) = (series.bound(from), series.bound(to));
    let mut first = None;
    scan_chunks(
        r,
        series,
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
        series,
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
    r.scan_stored(
        &KPI_CHUNKS,
        &KPI_CHUNKS.prefix(),
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

fn locate(r: &impl Reader, series: &Series<'_>, t: Timestamp) -> Result<Located> {
    let (p, table) = (&series.prefix, &KPI_CHUNKS);
    let at = series.bound(t);
    let mut chunk: Option<(Vec<u8>, ChunkRec)> = None;
    r.scan_stored(
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
    r.scan_stored(table, p, lo, Bound::Unbounded, Order::Asc, &mut |k, v| {
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
    series: &Series<'_>,
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
        let Located { chunk, next } = locate(r, series, first.ts)?;
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
    pub(crate) fn apply(&self, tx: &mut WriteTx, series: &Series<'_>) -> Result<()> {
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
                tx.put(&KPI_CHUNKS, &series.key(first.ts), &rec)?;
            }
            if let Some(old) = run.old.filter(|_| !old_kept) {
                tx.delete(&KPI_CHUNKS, &series.key(old))?;
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
/// [`LEGACY_POINTS`], (tenant, kpi, instant) → [`super::PointRec`] — into chunks, then
/// empties that table. Reads in bounded batches, so memory does not grow with the table.
pub(crate) fn chunk_legacy_points(tx: &mut WriteTx) -> Result<()> {
    chunk_legacy_points_by(tx, 64 * 1024)
}

/// [`chunk_legacy_points`], reading `batch` rows at a time.
fn chunk_legacy_points_by(tx: &mut WriteTx, batch: usize) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    // The series being gathered: (tenant, kpi).
    let mut series: Option<(String, String)> = None;
    let mut rec = ChunkRec {
        points: Vec::with_capacity(CHUNK_POINTS),
    };
    let mut rows: Vec<(Vec<u8>, super::PointRec)> = Vec::new();
    loop {
        rows.clear();
        let lo = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        tx.scan_stored(
            &LEGACY_POINTS,
            &LEGACY_POINTS.prefix(),
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
            let k = PointKey::decode(k)
                .ok_or_else(|| Error::Storage("malformed KPI point key".into()))?;
            let same = series
                .as_ref()
                .is_some_and(|(t, id)| *t == k.tenant_id && *id == k.kpi_id);
            if !same {
                flush(tx, series.as_ref(), &mut rec)?;
                series = Some((k.tenant_id.into_owned(), k.kpi_id.into_owned()));
            }
            // Keys are unique and in order, so each series arrives sorted without duplicates.
            rec.points.push(ChunkPoint {
                ts: k.ts,
                value: p.value,
                created_at: p.created_at,
            });
            if rec.points.len() == CHUNK_POINTS {
                flush(tx, series.as_ref(), &mut rec)?;
            }
        }
    }
    flush(tx, series.as_ref(), &mut rec)?;
    tx.clear_unlogged(&LEGACY_POINTS)?;
    Ok(())
}

/// Writes the points gathered in `rec` as one chunk of `series` (tenant, kpi), and empties
/// `rec`.
fn flush(tx: &mut WriteTx, series: Option<&(String, String)>, rec: &mut ChunkRec) -> Result<()> {
    if let (Some((tenant, kpi)), Some(first)) = (series, rec.points.first()) {
        tx.put(&KPI_CHUNKS, &ChunkKey::new(tenant, kpi, first.ts), rec)?;
    }
    rec.points.clear();
    Ok(())
}

/// The console's rows of a chunk: one per point, with the columns points had when they were
/// stored one per row (the instant, then the point's fields as a [`super::PointRec`]).
fn point_rows(value: &[u8]) -> Result<Shown> {
    let chunk: ChunkRec = codec::decode(value)?;
    chunk
        .points
        .iter()
        .map(|p| {
            let rec = super::PointRec {
                value: p.value,
                created_at: p.created_at,
            };
            let fields =
                serde_json::to_value(rec).map_err(|e| Error::Storage(format!("show: {e}")))?;
            Ok((
                vec![("ts", serde_json::Value::String(p.ts.to_string()))],
                fields,
            ))
        })
        .collect()
}

/// Checks every chunk: of an existing KPI (`kpis`), 1 to [`CHUNK_POINTS`] points in strictly
/// increasing instant order, keyed by its first instant, and after the end of the previous
/// chunk of its series; and that the row-per-point table of older layouts is empty.
pub(crate) fn check(
    r: &impl Reader,
    c: &mut Checker,
    kpis: &HashSet<super::KpiKey<'static>>,
) -> Result<()> {
    let table = KPI_CHUNKS.name();
    // The series and last instant of the previous chunk (rows come in key order).
    let mut prev: Option<(super::KpiKey<'static>, Timestamp)> = None;
    for x in c.rows(r, &KPI_CHUNKS)? {
        let (k, ch) = (&x.bytes, &x.value);
        let series = super::KpiKey::new(&x.key.tenant_id, &x.key.kpi_id).into_owned();
        if kpis.contains(&series) {
            c.ok();
        } else {
            c.violation(table, k, "chunk of a missing KPI");
        }
        let n = ch.points.len();
        if (1..=CHUNK_POINTS).contains(&n) {
            c.ok();
        } else {
            let d = format!("chunk holds {n} points (want 1 to {CHUNK_POINTS})");
            c.violation(table, k, d);
        }
        let pairs = || ch.points.windows(2).map(|w| (w[0].ts, w[1].ts));
        if pairs().any(|(a, b)| a == b) {
            c.violation(table, k, "chunk holds a duplicate instant");
        } else if pairs().any(|(a, b)| a > b) {
            c.violation(table, k, "chunk points are not in instant order");
        } else {
            c.ok();
        }
        match ch.points.first() {
            Some(f) if f.ts == x.key.first => c.ok(),
            _ => c.violation(table, k, "chunk key is not its first point's instant"),
        }
        if let (Some((s, last)), Some(first)) = (&prev, ch.points.first())
            && *s == series
        {
            if first.ts > *last {
                c.ok();
            } else {
                c.violation(table, k, "chunk overlaps the previous chunk of its series");
            }
        }
        prev = ch.points.last().map(|l| (series, l.ts));
    }
    // The upgrade to layout 4 moves the rows of the per-point table into chunks.
    let legacy = crate::check::raw(r, LEGACY_POINTS.name())?;
    for k in legacy.keys() {
        c.violation(
            LEGACY_POINTS.name(),
            k,
            "point row of a layout before chunks (the upgrade empties this table)",
        );
    }
    if legacy.is_empty() {
        c.ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
