//! A KPI's points over a time range, for a chart (`GET /v1/kpis/{kpi_id}/series`), downsampled
//! on the server to at most `max_points`.
//!
//! Downsampling keeps the shape of the line: the range is cut into `max_points / 4` equal spans
//! of time, and each span keeps its first, lowest, highest and last point (M4: Jugel et al.,
//! VLDB 2014 — a line chart `w` pixels wide drawn from 4 points per pixel column looks exactly
//! like one drawn from all of them). Every point returned is a stored point with its exact
//! instant and value, so a chart's hover shows real data, and a spike or a dip (what an alert is
//! about) is never averaged away. The first and last points of the range are always kept, so
//! the change across it is exact. A range holding at most `max_points` points is returned whole.
//!
//! The range is read once, in time order, in memory bounded by `max_points`: time grows with
//! the points in the range (each was paid for at ingest); see README "Performance".

use super::{Point, PointView, format_point_ts, parse_point_ts, require_kpi, series};
use crate::Bespin;
use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::error::{Error, FieldError, LocPart, Result};
use crate::store::{Flow, Reader};
use crate::time::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// What [`Bespin::kpi_series`] reads: an inclusive time range and a point budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesQuery {
    /// The first instant (inclusive). Default: `to` minus `window_days`, else the series' first
    /// point.
    pub from: Option<Timestamp>,
    /// The last instant (inclusive). Default: the series' latest point.
    pub to: Option<Timestamp>,
    /// With no `from`: the range is the `window_days` × 24 h up to `to`, the window rule's
    /// range (the first point returned is the window's start, as in `kpi_summary` and briefs).
    pub window_days: Option<u64>,
    /// At most this many points come back: [`SeriesQuery::MIN_POINTS`] to
    /// [`SeriesQuery::MAX_POINTS`].
    pub max_points: usize,
}

impl Default for SeriesQuery {
    fn default() -> Self {
        SeriesQuery {
            from: None,
            to: None,
            window_days: None,
            max_points: Self::DEFAULT_POINTS,
        }
    }
}

impl SeriesQuery {
    /// The fewest points a downsampled answer may be asked for (one span of four).
    pub const MIN_POINTS: usize = 4;
    /// The most points one answer carries.
    pub const MAX_POINTS: usize = 5000;
    /// `max_points` when not given: twice the width of a wide chart.
    pub const DEFAULT_POINTS: usize = 1000;

    /// `max_points` clamped into [`Self::MIN_POINTS`, `Self::MAX_POINTS`].
    pub fn clamp_points(n: i64) -> usize {
        usize::try_from(n)
            .unwrap_or(0)
            .clamp(Self::MIN_POINTS, Self::MAX_POINTS)
    }

    /// Validates the query strings: `from` and `to` RFC 3339 date-times or `YYYY-MM-DD` dates
    /// (`datetime_parsing`), `from` not after `to`; `window_days` an integer ≥ 1 and not
    /// together with `from`; `max_points` an integer (clamped). Every fault is reported, at
    /// `[name]` (the surface prefixes `"query"`).
    pub fn from_query<'q>(get: impl Fn(&str) -> Option<&'q str>) -> Result<Self> {
        let ints = crate::validate::query_ints(&get, &["window_days", "max_points"]);
        let mut errors = match &ints {
            Err(Error::Validation(e)) => e.clone(),
            _ => Vec::new(),
        };
        let mut fail = |name: &str, kind: &'static str, msg: &str, input: &str| {
            errors.push(FieldError::new(
                kind,
                vec![LocPart::Field(name.to_owned())],
                msg,
                Value::String(input.to_owned()),
            ));
        };
        let mut instant = |name: &str| {
            let raw = get(name)?;
            let t = parse_point_ts(raw.trim());
            if t.is_none() {
                fail(
                    name,
                    "datetime_parsing",
                    "Input should be an RFC 3339 date-time or a YYYY-MM-DD date",
                    raw,
                );
            }
            t
        };
        let (from, to) = (instant("from"), instant("to"));
        let (days, points) = match ints {
            Ok(v) => (v[0], v[1]),
            Err(_) => (None, None),
        };
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            fail(
                "from",
                "value_error",
                "from must not be after to",
                get("from").unwrap_or_default(),
            );
        }
        let window_days = match days {
            Some(d) if d < 1 => {
                fail(
                    "window_days",
                    "greater_than_equal",
                    "Input should be greater than or equal to 1",
                    get("window_days").unwrap_or_default(),
                );
                None
            }
            Some(_) if get("from").is_some() => {
                fail(
                    "window_days",
                    "value_error",
                    "window_days and from cannot be combined",
                    get("window_days").unwrap_or_default(),
                );
                None
            }
            d => d.and_then(|d| u64::try_from(d).ok()),
        };
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        Ok(SeriesQuery {
            from,
            to,
            window_days,
            max_points: points.map_or(Self::DEFAULT_POINTS, Self::clamp_points),
        })
    }
}

/// `GET /v1/kpis/{kpi_id}/series`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Series {
    /// The KPI.
    pub kpi_id: String,
    /// The range's first instant; null when the series has no point to anchor a default.
    pub from: Option<String>,
    /// The range's last instant; null likewise.
    pub to: Option<String>,
    /// How many stored points the range holds.
    pub points_in_range: u64,
    /// Whether `points` is a selection of them (first, lowest, highest and last of each of
    /// `max_points / 4` equal spans of time) rather than all of them.
    pub downsampled: bool,
    /// Stored points, oldest first, at most `max_points`.
    pub points: Vec<PointView>,
}

/// The first, lowest, highest and last point of one span of time.
#[derive(Clone, Copy)]
struct Span {
    first: Point,
    min: Point,
    max: Point,
    last: Point,
}

impl Span {
    fn new(p: Point) -> Self {
        Span {
            first: p,
            min: p,
            max: p,
            last: p,
        }
    }

    fn add(&mut self, p: Point) {
        if p.value < self.min.value {
            self.min = p;
        }
        if p.value > self.max.value {
            self.max = p;
        }
        self.last = p;
    }

    /// Its distinct points in time order (one to four).
    fn emit(self, out: &mut Vec<Point>) {
        let mut four = [self.first, self.min, self.max, self.last];
        four.sort_by_key(|p| p.ts);
        for p in four {
            if out.last().is_none_or(|l| l.ts != p.ts) {
                out.push(p);
            }
        }
    }
}

/// Streams the points of a range, in time order, into at most `max` points: all of them while
/// they fit, else M4 over `max / 4` equal spans of `from..=to`.
pub(crate) struct Downsampler {
    from: i64,
    width: i128,
    spans: i128,
    max: usize,
    seen: u64,
    raw: Vec<Point>,
    current: Option<(i128, Span)>,
    out: Vec<Point>,
    sampling: bool,
}

impl Downsampler {
    /// For points with instants in `from..=to`; `max` is at least [`SeriesQuery::MIN_POINTS`].
    pub(crate) fn new(from: Timestamp, to: Timestamp, max: usize) -> Self {
        let max = max.max(SeriesQuery::MIN_POINTS);
        Downsampler {
            from: from.0,
            width: (i128::from(to.0) - i128::from(from.0) + 1).max(1),
            spans: i128::try_from(max / 4).unwrap_or(1),
            max,
            seen: 0,
            raw: Vec::with_capacity(max.min(1024)),
            current: None,
            out: Vec::new(),
            sampling: false,
        }
    }

    /// Takes the next point (instants strictly increasing).
    pub(crate) fn push(&mut self, p: Point) {
        self.seen += 1;
        if self.sampling {
            self.sample(p);
            return;
        }
        self.raw.push(p);
        if self.raw.len() > self.max {
            self.sampling = true;
            for p in std::mem::take(&mut self.raw) {
                self.sample(p);
            }
        }
    }

    fn sample(&mut self, p: Point) {
        let span = (i128::from(p.ts.0) - i128::from(self.from)) * self.spans / self.width;
        match &mut self.current {
            Some((s, acc)) if *s == span => acc.add(p),
            _ => {
                if let Some((_, done)) = self.current.replace((span, Span::new(p))) {
                    done.emit(&mut self.out);
                }
            }
        }
    }

    /// (points seen, whether downsampled, the points to draw).
    pub(crate) fn finish(mut self) -> (u64, bool, Vec<Point>) {
        if !self.sampling {
            return (self.seen, false, self.raw);
        }
        if let Some((_, done)) = self.current.take() {
            done.emit(&mut self.out);
        }
        (self.seen, true, self.out)
    }
}

/// The series answer for one KPI of the tenant (which must exist), or `None` when its range
/// holds more than `max_read` points (having read `max_read + 1` of them).
pub(crate) fn series(
    r: &impl Reader,
    tenant: &str,
    kpi_id: &str,
    q: SeriesQuery,
    max_read: u64,
) -> Result<Option<Series>> {
    let prefix = series::Series::new(tenant, kpi_id);
    let to = match q.to {
        Some(t) => Some(t),
        None => series::latest_at(r, &prefix, None)?.map(|p| p.ts),
    };
    let from = match (q.from, q.window_days, to) {
        (Some(f), _, _) => Some(f),
        (None, Some(days), Some(to)) => {
            let span = i64::try_from(days)
                .unwrap_or(i64::MAX)
                .saturating_mul(Timestamp::DAY_MICROS);
            Some(Timestamp(to.0.saturating_sub(span)))
        }
        _ => series::first_from(r, &prefix, Timestamp(i64::MIN))?.map(|p| p.ts),
    };
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(Some(Series {
            kpi_id: kpi_id.to_owned(),
            from: None,
            to: None,
            points_in_range: 0,
            downsampled: false,
            points: Vec::new(),
        }));
    };
    let mut d = Downsampler::new(from, to, q.max_points);
    let mut over = false;
    if from <= to {
        series::visit_range(r, &prefix, from, to, &mut |p| {
            over = d.seen >= max_read;
            if over {
                return Flow::Stop;
            }
            d.push(p);
            Flow::Continue
        })?;
    }
    if over {
        return Ok(None);
    }
    let (seen, downsampled, points) = d.finish();
    Ok(Some(Series {
        kpi_id: kpi_id.to_owned(),
        from: Some(format_point_ts(from)),
        to: Some(format_point_ts(to)),
        points_in_range: seen,
        downsampled,
        points: points.into_iter().map(Point::view).collect(),
    }))
}

/// What [`Bespin::kpi_series_within`] found: the answer, or the rest of the work on the same
/// snapshot.
#[derive(Debug)]
pub enum SeriesRead {
    /// The range held at most the points allowed: the answer.
    Done(Series),
    /// The range holds more: [`DeferredSeries::run`] reads it whole.
    Deferred(DeferredSeries),
}

/// A series read past its first budget, on the snapshot the checks ran on: it reads nothing
/// else, so it can run where waiting costs others nothing (the server's background lane).
pub struct DeferredSeries {
    snapshot: std::sync::Arc<crate::store::ReadTx>,
    tenant: String,
    kpi_id: String,
    q: SeriesQuery,
}

impl DeferredSeries {
    /// Reads the whole range (as [`Bespin::kpi_series`]).
    pub fn run(self) -> Result<Series> {
        series(
            &*self.snapshot,
            &self.tenant,
            &self.kpi_id,
            self.q,
            u64::MAX,
        )?
        .ok_or_else(|| Error::Internal("an unbounded series read stopped".into()))
    }
}

impl std::fmt::Debug for DeferredSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredSeries")
            .field("kpi_id", &self.kpi_id)
            .field("q", &self.q)
            .finish()
    }
}

impl Bespin {
    /// The points of a KPI of the caller's tenant over a range, at most `q.max_points` of them
    /// (see the module doc). Checks: role `KpiRead` (`… to read KPIs`), entitlement `kpi_read`,
    /// the KPI exists (404 `KPI '<id>' not found`). An empty range is not an error.
    pub fn kpi_series(&self, caller: &Principal, kpi_id: &str, q: SeriesQuery) -> Result<Series> {
        match self.kpi_series_within(caller, kpi_id, q, u64::MAX)? {
            SeriesRead::Done(s) => Ok(s),
            SeriesRead::Deferred(rest) => rest.run(),
        }
    }

    /// [`Bespin::kpi_series`] if the range holds at most `max_read` points (having read no
    /// more than that); else the read to finish on the same snapshot, after the same checks.
    /// For a caller that answers cheap reads at once and sends the others where they cost
    /// less (the server's background lane).
    pub fn kpi_series_within(
        &self,
        caller: &Principal,
        kpi_id: &str,
        q: SeriesQuery,
        max_read: u64,
    ) -> Result<SeriesRead> {
        caller.require(Permission::KpiRead, "read KPIs")?;
        let snapshot = self.snapshot()?;
        let tenant = caller.tenant_id();
        require_capability(&*snapshot, caller, "kpi_read")?;
        require_kpi(&*snapshot, tenant, kpi_id)?;
        Ok(match series(&*snapshot, tenant, kpi_id, q, max_read)? {
            Some(s) => SeriesRead::Done(s),
            None => SeriesRead::Deferred(DeferredSeries {
                snapshot,
                tenant: tenant.to_owned(),
                kpi_id: kpi_id.to_owned(),
                q,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpis::{NewPoint, PointsBulk};
    use crate::testutil::{db, kpi, tenant};
    use std::collections::HashMap;

    const BASE: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
    const MIN: i64 = 60_000_000;

    fn q(pairs: &[(&str, &str)]) -> Result<SeriesQuery> {
        let m: HashMap<&str, &str> = pairs.iter().copied().collect();
        SeriesQuery::from_query(|n| m.get(n).copied())
    }

    fn locs(r: Result<SeriesQuery>) -> Vec<(String, &'static str)> {
        match r {
            Err(Error::Validation(v)) => v
                .into_iter()
                .map(|e| (serde_json::to_string(&e.loc).expect("loc"), e.kind))
                .collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    /// A wave with one spike up and one dip down, a point a minute.
    fn wave(n: i64) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                ts: Timestamp(BASE + i * MIN),
                value: match i {
                    i if i == n / 3 => 1e6,
                    i if i == 2 * n / 3 => -1e6,
                    i => ((i as f64) / 500.0).sin() * 100.0,
                },
            })
            .collect()
    }

    fn run(points: &[Point], max: usize) -> (u64, bool, Vec<Point>) {
        let mut d = Downsampler::new(points[0].ts, points[points.len() - 1].ts, max);
        for p in points {
            d.push(*p);
        }
        d.finish()
    }

    #[test]
    fn a_range_that_fits_comes_back_whole() {
        let w = wave(1000);
        assert_eq!(run(&w, 1000), (1000, false, w.clone()));
        let (seen, sampled, out) = run(&w, 999);
        assert_eq!((seen, sampled), (1000, true));
        assert!(out.len() <= 999);
    }

    #[test]
    fn downsampling_keeps_the_shape_in_stored_points() {
        let w = wave(100_000);
        for max in [4, 5, 100, 1000, 5000] {
            let (seen, sampled, out) = run(&w, max);
            assert_eq!((seen, sampled), (100_000, true));
            assert!(
                out.len() <= max && out.len() >= max / 4,
                "{max}: {}",
                out.len()
            );
            // Stored points only, in strictly increasing time.
            let stored: HashMap<i64, f64> = w.iter().map(|p| (p.ts.0, p.value)).collect();
            assert!(out.iter().all(|p| stored.get(&p.ts.0) == Some(&p.value)));
            assert!(out.windows(2).all(|x| x[0].ts < x[1].ts));
            // The ends (the change across the range is exact) and both extremes survive.
            assert_eq!(out[0], w[0]);
            assert_eq!(out[out.len() - 1], w[w.len() - 1]);
            assert!(out.iter().any(|p| p.value == 1e6), "{max}: spike kept");
            assert!(out.iter().any(|p| p.value == -1e6), "{max}: dip kept");
        }
    }

    #[test]
    fn every_span_keeps_its_own_extremes() {
        // Four spans of 250 points; each span's min and max is among the output.
        let w = wave(1000);
        let (_, _, out) = run(&w, 16);
        let width = w[999].ts.0 - w[0].ts.0 + 1;
        for s in 0..4i64 {
            let inside = |p: &&Point| (p.ts.0 - BASE) * 4 / width == s;
            let lo = w
                .iter()
                .filter(inside)
                .map(|p| p.value)
                .fold(f64::MAX, f64::min);
            let hi = w
                .iter()
                .filter(inside)
                .map(|p| p.value)
                .fold(f64::MIN, f64::max);
            assert!(
                out.iter().filter(inside).any(|p| p.value == lo),
                "span {s} min"
            );
            assert!(
                out.iter().filter(inside).any(|p| p.value == hi),
                "span {s} max"
            );
        }
    }

    #[test]
    fn the_query_is_validated_and_the_budget_clamped() {
        assert_eq!(q(&[]).expect("empty"), SeriesQuery::default());
        let ok = q(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-02T00:00:00+01:00"),
            ("max_points", "2"),
        ])
        .expect("ok");
        assert_eq!(ok.from, Some(Timestamp(BASE)));
        assert_eq!(ok.to, Some(Timestamp(BASE + 23 * 60 * MIN)));
        assert_eq!(ok.max_points, SeriesQuery::MIN_POINTS);
        assert_eq!(
            q(&[("max_points", "99999999999")]).expect("big").max_points,
            5000
        );
        assert_eq!(
            q(&[("window_days", "90")]).expect("days").window_days,
            Some(90)
        );
        assert_eq!(
            locs(q(&[
                ("from", "yesterday"),
                ("to", "2026-13-01"),
                ("max_points", "x")
            ])),
            [
                (r#"["max_points"]"#.into(), "int_parsing"),
                (r#"["from"]"#.into(), "datetime_parsing"),
                (r#"["to"]"#.into(), "datetime_parsing"),
            ]
        );
        assert_eq!(
            locs(q(&[("from", "2026-01-02"), ("to", "2026-01-01")])),
            [(r#"["from"]"#.into(), "value_error")]
        );
        assert_eq!(
            locs(q(&[("window_days", "0")])),
            [(r#"["window_days"]"#.into(), "greater_than_equal")]
        );
        assert_eq!(
            locs(q(&[("window_days", "7"), ("from", "2026-01-01")])),
            [(r#"["window_days"]"#.into(), "value_error")]
        );
    }

    #[test]
    fn the_window_range_starts_where_the_window_rule_does() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let pts: Vec<(String, f64)> = (0..200)
            .map(|d| {
                (
                    format_point_ts(Timestamp(BASE + d * Timestamp::DAY_MICROS + d * 7)),
                    d as f64,
                )
            })
            .collect();
        let refs: Vec<(&str, f64)> = pts.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        let id = kpi(&db, &admin, "MRR", &refs);
        for days in [1, 7, 30, 90, 1000] {
            let s = db
                .kpi_series(
                    &member,
                    &id,
                    SeriesQuery {
                        window_days: Some(days),
                        ..SeriesQuery::default()
                    },
                )
                .expect("series");
            let w = db
                .kpi_window(&member, &id, None, days)
                .expect("window")
                .expect("some");
            assert_eq!(s.points[0], w.start.view(), "{days}");
            assert_eq!(s.points.last(), Some(&w.latest.view()));
            assert!(!s.downsampled);
        }
        // The whole series by default; an explicit range is inclusive at both ends.
        let all = db
            .kpi_series(&member, &id, SeriesQuery::default())
            .expect("all");
        assert_eq!((all.points_in_range, all.points.len()), (200, 200));
        assert_eq!(all.from.as_deref(), Some("2026-01-01T00:00:00Z"));
        let some = db
            .kpi_series(
                &member,
                &id,
                SeriesQuery {
                    from: Some(Timestamp(BASE + 10 * Timestamp::DAY_MICROS + 70)),
                    to: Some(Timestamp(BASE + 20 * Timestamp::DAY_MICROS + 140)),
                    ..SeriesQuery::default()
                },
            )
            .expect("range");
        let values: Vec<f64> = some.points.iter().map(|p| p.value).collect();
        assert_eq!(values, (10..=20).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn a_large_series_is_bounded_and_other_tenants_see_nothing() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let (other, _) = tenant(&db);
        let id = kpi(&db, &admin, "big", &[]);
        let points = wave(100_000)
            .into_iter()
            .map(|p| NewPoint {
                ts: p.ts,
                value: p.value,
            })
            .collect();
        db.ingest_points(&admin, &id, PointsBulk { points })
            .expect("ingest");
        let s = db
            .kpi_series(&admin, &id, SeriesQuery::default())
            .expect("series");
        assert_eq!((s.points_in_range, s.downsampled), (100_000, true));
        assert!(s.points.len() <= SeriesQuery::DEFAULT_POINTS);
        assert!(s.points.iter().any(|p| p.value == 1e6));
        // Within a budget: a range that fits is answered, a larger one is finished apart on
        // the snapshot it was started on, with the same answer.
        let q = SeriesQuery::default();
        let fits = db.kpi_series_within(&admin, &id, q, 100_000).expect("fits");
        assert!(matches!(fits, SeriesRead::Done(ref f) if *f == s));
        let rest = match db.kpi_series_within(&admin, &id, q, 1_000).expect("over") {
            SeriesRead::Deferred(rest) => rest,
            SeriesRead::Done(_) => panic!("100,000 points read within a budget of 1,000"),
        };
        let later = wave(100_000).last().expect("points").ts.0 + 60_000_000;
        let one_more = vec![NewPoint {
            ts: Timestamp(later),
            value: 0.0,
        }];
        db.ingest_points(&admin, &id, PointsBulk { points: one_more })
            .expect("one more");
        assert_eq!(rest.run().expect("deferred"), s, "read on its own snapshot");
        assert!(matches!(
            db.kpi_series(&other, &id, SeriesQuery::default()),
            Err(Error::NotFound(_))
        ));
        // A KPI without points: an empty answer, not an error.
        let empty = kpi(&db, &admin, "empty", &[]);
        let s = db
            .kpi_series(&admin, &empty, SeriesQuery::default())
            .expect("empty");
        assert_eq!((s.from, s.points.len()), (None, 0));
    }
}
