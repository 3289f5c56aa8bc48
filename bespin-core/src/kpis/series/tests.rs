//! The series' tests: chunking, reads at and around chunk edges, ingest, the upgrade of
//! point rows and the checker's view of chunks.

use super::*;
use crate::kpis::{IngestResult, PointsBulk};
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
    let series = Series::new(who.tenant_id(), id);
    db.read(|r, _| {
        let mut out = Vec::new();
        r.scan(&KPI_CHUNKS, &series.prefix, Order::Asc, |k, c: ChunkRec| {
            assert_eq!(first_of(k)?, c.points[0].ts, "key = first instant");
            out.push(c.points.iter().map(|p| (p.ts.0 - BASE) / DAY).collect());
            Ok(Flow::Continue)
        })?;
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
                let k = PointKey::new(who.tenant_id(), id, at(d));
                let p = crate::kpis::PointRec {
                    value: -(d as f64),
                    created_at: Timestamp(d),
                };
                tx.put(&LEGACY_POINTS, &k, &p)?;
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
        .read(|r, _| r.get(&KPI_CHUNKS, &ChunkKey::new(admin.tenant_id(), &a, at(N))))
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

#[test]
#[allow(clippy::unwrap_used)]
fn broken_kpi_chunks_and_leftover_point_rows_are_caught() {
    use crate::check::testing::{caught, populated};
    use crate::store::WriteTx;
    let (db, a, _) = populated();
    let t = a.tenant_id().to_owned();
    let pts = |n: i64| -> Vec<(String, f64)> {
        (0..n)
            .map(|d| (Timestamp(d * 1_000_000).to_rfc3339(), d as f64))
            .collect()
    };
    let kpi = |name: &str, n: i64| {
        let p = pts(n);
        let p: Vec<(&str, f64)> = p.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        crate::testutil::kpi(&db, &a, name, &p)
    };
    // Each KPI gets one kind of damage.
    let ids: Vec<String> = ["dup", "order", "big", "key", "overlap", "empty"]
        .iter()
        .map(|n| kpi(n, 2 * CHUNK_POINTS as i64))
        .collect();
    assert!(db.check().unwrap().is_ok());
    let chunk_of = |tx: &WriteTx, id: &str, i: usize| -> (ChunkKey<'static>, ChunkRec) {
        let mut all = Vec::new();
        let series = Series::new(&t, id);
        tx.scan(&KPI_CHUNKS, &series.prefix, Order::Asc, |k, c: ChunkRec| {
            all.push((ChunkKey::decode(k).unwrap().into_owned(), c));
            Ok(Flow::Continue)
        })
        .unwrap();
        all.swap_remove(i)
    };
    db.tamper(|tx| {
        let (k, mut c) = chunk_of(tx, &ids[0], 1);
        c.points[6].ts = c.points[5].ts;
        tx.put(&KPI_CHUNKS, &k, &c)?;
        let (k, mut c) = chunk_of(tx, &ids[1], 0);
        c.points.swap(6, 7);
        tx.put(&KPI_CHUNKS, &k, &c)?;
        let (k, mut c) = chunk_of(tx, &ids[2], 1);
        let last = c.points[CHUNK_POINTS - 1];
        c.points.push(ChunkPoint {
            ts: Timestamp(last.ts.0 + 1),
            ..last
        });
        tx.put(&KPI_CHUNKS, &k, &c)?;
        let (k, c) = chunk_of(tx, &ids[3], 1);
        tx.delete(&KPI_CHUNKS, &k)?;
        let moved = ChunkKey::new(&t, &ids[3], Timestamp(c.points[0].ts.0 - 1));
        tx.put(&KPI_CHUNKS, &moved, &c)?;
        let (k, mut c) = chunk_of(tx, &ids[4], 0);
        c.points[CHUNK_POINTS - 1].ts = Timestamp(c.points[CHUNK_POINTS - 1].ts.0 + 1_000_000);
        tx.put(&KPI_CHUNKS, &k, &c)?;
        let (k, _) = chunk_of(tx, &ids[5], 1);
        tx.put(&KPI_CHUNKS, &k, &ChunkRec::default())?;
        let (_, c) = chunk_of(tx, &ids[5], 0);
        tx.put(&KPI_CHUNKS, &ChunkKey::new(&t, "ghost", c.points[0].ts), &c)?;
        tx.put(
            &LEGACY_POINTS,
            &PointKey::new(&t, &ids[5], Timestamp(0)),
            &crate::kpis::PointRec {
                value: 1.0,
                created_at: Timestamp(0),
            },
        )
    });
    caught(&db, "kpi_chunks", "duplicate instant");
    caught(&db, "kpi_chunks", "not in instant order");
    caught(
        &db,
        "kpi_chunks",
        &format!("holds {} points", CHUNK_POINTS + 1),
    );
    caught(&db, "kpi_chunks", "holds 0 points");
    caught(&db, "kpi_chunks", "key is not its first point's instant");
    caught(&db, "kpi_chunks", "overlaps the previous chunk");
    caught(&db, "kpi_chunks", "chunk of a missing KPI");
    caught(&db, "kpi_points", "layout before chunks");
    let r = db.check().unwrap();
    let mine = |id: &str| r.violations.iter().filter(|v| v.key.contains(id)).count();
    assert!(ids.iter().all(|id| mine(id) >= 1), "{r}");
}
