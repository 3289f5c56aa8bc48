//! The row cache's tests (PostgreSQL's `store/postgres/cache.rs`, run on both backends: on
//! redb the same reads must see the same values): scans kept per commit count, older
//! snapshots, a batch's scans, the budget. Split from `tests.rs` for its length.
#![allow(clippy::unwrap_used)]

use super::tests::*;
use super::*;

/// A test table of `String` values.
type Strings = Table<TestKey<'static>, String>;

/// Commits the row `n` of tenant "t" in `t` with value `v`, in a batch of its own on `on`.
fn commit_row(on: &Store, t: &Strings, n: u64, v: &str) {
    let mut b = on.begin(true).unwrap();
    b.run(|tx| tx.put(t, &key("t", "c", 1, n), &v.to_owned()))
        .unwrap()
        .unwrap();
    b.commit().unwrap();
}

/// The values of tenant "t" in `t` scanned on `r`, and the round trips `s` made meanwhile
/// (`None` on redb).
fn scanned(s: &Store, r: &ReadTx, t: &Strings) -> (Vec<String>, Option<u64>) {
    let before = s.round_trips();
    let mut seen = Vec::new();
    r.scan(t, &t.prefix().tenant("t"), Order::Asc, |_, v: String| {
        seen.push(v);
        Ok(Flow::Continue)
    })
    .unwrap();
    (seen, s.round_trips().zip(before).map(|(a, b)| a - b))
}

/// [`scanned`] on a fresh snapshot of `s`, its start counted.
fn scanned_fresh(s: &Store, t: &Strings) -> (Vec<String>, Option<u64>) {
    let before = s.round_trips();
    let (seen, _) = scanned(s, &s.read().unwrap(), t);
    (seen, s.round_trips().zip(before).map(|(a, b)| a - b))
}

/// On PostgreSQL the pages a snapshot's scan fetched are kept for the commit count (as rows
/// are), so the next snapshot's scan costs no round trip; a commit that writes the table
/// (this process's or another's) makes the next scan read it again, and a snapshot taken
/// before a commit never reads the pages of after it. On redb the same reads see the same
/// values. For a configuration table and a data table alike.
#[test]
fn a_table_is_scanned_once_per_commit_and_every_commit_is_seen() {
    scanned_once_per_commit(CONF, ROWS);
    scanned_once_per_commit(ROWS, CONF);
}

/// [`a_table_is_scanned_once_per_commit_and_every_commit_is_seen`] for table `t`, `other` a
/// table it is not.
fn scanned_once_per_commit(
    t: Table<TestKey<'static>, String>,
    other: Table<TestKey<'static>, String>,
) {
    let (_dir, at) = place();
    let s = open_at(&at);
    // Another process (PostgreSQL; a redb file has one).
    let second = is_url(&at).then(|| open_at(&at));
    let scan_on = |r: &ReadTx| scanned(&s, r, &t).0;
    let scan = |s: &Store| scanned_fresh(s, &t).0;
    // Round trips of a scan on a fresh snapshot (`None` on redb).
    let trips = |s: &Store| scanned_fresh(s, &t);
    let write = commit_row;
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // A scan served by the cache costs the snapshot's start only ("kept"); one that is not,
    // more ("read": the page, and the statement's preparing on a connection new to it). `None`
    // on redb.
    let pg = |what: &'static str| s.round_trips().map(|_| what);
    let (kept, read) = (pg("kept"), pg("read"));
    let of = |(seen, trips): (Vec<String>, Option<u64>)| {
        (seen, trips.map(|n| if n == 1 { "kept" } else { "read" }))
    };
    write(&s, &t, 1, "a");
    assert_eq!(scan(&s), ["a"]);
    // Read again: the snapshot's start only.
    assert_eq!(of(trips(&s)), (strs(&["a"]), kept));
    // A commit of this process to another table keeps the pages...
    write(&s, &other, 1, "x");
    assert_eq!(of(trips(&s)), (strs(&["a"]), kept));
    // ... one to the table brings the page it holds all of forward with the rows it wrote
    // (no round trip); a snapshot of before the commit still reads the old rows, from the
    // database, and keeps none of them.
    let before = s.read().unwrap();
    assert_eq!(scan_on(&before), ["a"]);
    write(&s, &t, 2, "b");
    assert_eq!(scan_on(&before), ["a"]);
    drop(before);
    assert_eq!(of(trips(&s)), (strs(&["a", "b"]), kept));
    // Another process's commit, of any table, empties the cache.
    write(second.as_ref().unwrap_or(&s), &t, 3, "c");
    assert_eq!(of(trips(&s)), (strs(&["a", "b", "c"]), read));
    write(second.as_ref().unwrap_or(&s), &other, 2, "y");
    assert_eq!(of(trips(&s)), (strs(&["a", "b", "c"]), read));
    assert_eq!(of(trips(&s)), (strs(&["a", "b", "c"]), kept));
    // A scan of several pages (32 rows, then 256) in either order, stopped or not, is kept
    // page by page.
    let mut b = s.begin(true).unwrap();
    b.run(|tx| {
        (10..110).try_for_each(|n| tx.put(&t, &key("t", "d", n, n as u64), &format!("d{n}")))
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    let walk = |s: &Store, order: Order, stop_after: usize| {
        let before = s.round_trips();
        let mut seen = Vec::new();
        let prefix = t.prefix().tenant("t").starting("d");
        s.read()
            .unwrap()
            .scan(&t, &prefix, order, |_, v: String| {
                seen.push(v);
                Ok(if seen.len() == stop_after {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })
            .unwrap();
        of((seen, s.round_trips().zip(before).map(|(a, b)| a - b)))
    };
    let all: Vec<String> = (10..110).map(|n| format!("d{n}")).collect();
    assert_eq!(walk(&s, Order::Asc, 0), (all.clone(), read));
    assert_eq!(walk(&s, Order::Asc, 0), (all, kept));
    let newest = vec!["d109".to_owned()];
    assert_eq!(walk(&s, Order::Desc, 1), (newest.clone(), read));
    assert_eq!(walk(&s, Order::Desc, 1), (newest.clone(), kept));
    // Pages cut at their limit (ascending d10..d41, descending d109..d78) and one holding
    // the rest (d42..d109), brought forward by this process's commits: a row past a cut
    // leaves the cut page as it is and goes into the page after it; a row removed within a
    // cut page makes that page unknown (the row after its cut was never read), while the
    // page holding all of its range drops it.
    let commit = |f: &dyn Fn(&mut WriteTx<'_, '_>) -> Result<()>| {
        let mut b = s.begin(true).unwrap();
        b.run(|tx| f(tx)).unwrap().unwrap();
        b.commit().unwrap();
    };
    commit(&|tx| tx.put(&t, &key("t", "d", 50, 5000), &"d50b".to_owned()));
    let with: Vec<String> = (10..110)
        .flat_map(|n| {
            let mut v = vec![format!("d{n}")];
            if n == 50 {
                v.push("d50b".to_owned());
            }
            v
        })
        .collect();
    assert_eq!(walk(&s, Order::Asc, 0), (with.clone(), kept));
    assert_eq!(walk(&s, Order::Desc, 1), (newest, kept));
    commit(&|tx| tx.delete(&t, &key("t", "d", 109, 109)).map(|_| ()));
    let fewer: Vec<String> = with.iter().filter(|v| *v != "d109").cloned().collect();
    assert_eq!(walk(&s, Order::Asc, 0), (fewer, kept));
    assert_eq!(
        walk(&s, Order::Desc, 1),
        (vec!["d108".to_owned()], read),
        "a removal within a cut page is read again"
    );
}

/// On PostgreSQL a snapshot taken before this process's last commit is still served, from
/// the cache, the tables that commit did not write; the ones it wrote it reads from the
/// database, as of its own count. On redb the same reads see the same values.
#[test]
fn an_older_snapshot_reads_the_tables_no_later_commit_wrote_from_the_cache() {
    let s = store();
    let write = |t: &Strings, n: u64, v: &str| commit_row(&s, t, n, v);
    let scan = |r: &ReadTx, t: &Strings| scanned(&s, r, t);
    let pg = |n: u64| s.round_trips().map(|_| n);
    write(&ROWS, 1, "a");
    write(&CONF, 1, "c");
    let old = s.read().unwrap();
    assert_eq!(scan(&old, &ROWS).0, ["a"]);
    assert_eq!(scan(&old, &CONF).0, ["c"]);
    write(&ROWS, 2, "b");
    // CONF is as the old snapshot saw it: from the cache; ROWS changed: from the database.
    assert_eq!(scan(&old, &CONF), (vec!["c".to_owned()], pg(0)));
    assert_eq!(scan(&old, &ROWS), (vec!["a".to_owned()], pg(1)));
    assert_eq!(scan(&old, &ROWS), (vec!["a".to_owned()], pg(1)));
    let new = s.read().unwrap();
    assert_eq!(scan(&new, &ROWS).0, ["a", "b"]);
    assert_eq!(scan(&new, &CONF), (vec!["c".to_owned()], pg(0)));
}

/// A write batch's scan takes the pages kept for its commit count too (on PostgreSQL no
/// round trip once a snapshot or an earlier batch read them), merges its own writes over
/// them, and a commit writing the table — this process's or another's — makes the next batch
/// read it again. On redb the same scans see the same values. For a configuration table and
/// a data table alike.
#[test]
fn a_batch_scans_a_table_from_the_pages_of_its_commit_count() {
    batch_scans_kept_pages(CONF, ROWS);
    batch_scans_kept_pages(ROWS, CONF);
}

/// [`a_batch_scans_a_table_from_the_pages_of_its_commit_count`] for table `t`, `other` a
/// table it is not.
fn batch_scans_kept_pages(
    t: Table<TestKey<'static>, String>,
    other: Table<TestKey<'static>, String>,
) {
    let (_dir, at) = place();
    let s = open_at(&at);
    let second = is_url(&at).then(|| open_at(&at));
    // One batch: scans `t` (after writing `own` to it, if given; not at all for `None` with
    // `scan` false), writes an `other` row, commits; what it saw and its round trips (`None` on
    // redb).
    let run = |s: &Store, n: u64, own: Option<&str>, scan: bool| {
        let before = s.round_trips();
        let mut b = s.begin(true).unwrap();
        let seen = b
            .run(|tx| {
                if let Some(v) = own {
                    tx.put(&t, &key("t", "c", 1, 100 + n), &v.to_owned())?;
                }
                let mut seen = Vec::new();
                if !scan {
                    tx.put(&other, &key("t", "r", 1, n), &"x".to_owned())?;
                    return Ok(seen);
                }
                tx.scan(&t, &t.prefix().tenant("t"), Order::Asc, |_, v: String| {
                    seen.push(v);
                    Ok(Flow::Continue)
                })?;
                tx.put(&other, &key("t", "r", 1, n), &"x".to_owned())?;
                Ok(seen)
            })
            .unwrap()
            .unwrap();
        b.commit().unwrap();
        (seen, s.round_trips().zip(before).map(|(a, b)| a - b))
    };
    let batch = |s: &Store, n: u64, own: Option<&str>| run(s, n, own, true);
    let mut w = s.begin(true).unwrap();
    w.run(|tx| tx.put(&t, &key("t", "c", 1, 1), &"a".to_owned()))
        .unwrap()
        .unwrap();
    w.commit().unwrap();
    assert_eq!(batch(&s, 1, None).0, ["a"]);
    // The next batch finds the page its predecessor read (it wrote `other` only): its scan
    // costs no round trip — as many as a batch that does not scan.
    let (seen, scanning) = batch(&s, 2, None);
    assert_eq!(seen, ["a"]);
    let (_, not_scanning) = run(&s, 3, None, false);
    assert_eq!(scanning, not_scanning);
    // Its own write shows in its scan, and the next batch finds the page brought forward by
    // it: no round trip either.
    assert_eq!(batch(&s, 4, Some("b")).0, ["a", "b"]);
    assert_eq!(
        batch(&s, 5, None),
        (vec!["a".to_owned(), "b".to_owned()], not_scanning)
    );
    // Another process's commit to the table is seen.
    let mut w = second.as_ref().unwrap_or(&s).begin(true).unwrap();
    w.run(|tx| tx.put(&t, &key("t", "c", 1, 2), &"c".to_owned()))
        .unwrap()
        .unwrap();
    w.commit().unwrap();
    assert_eq!(batch(&s, 6, None).0, ["a", "c", "b"]);
}

/// On PostgreSQL the row cache keeps to its byte budget (`cache=` in the URL): past it, it
/// evicts what was not read since its last sweep — a page read again and again stays, the page
/// read last stays — rather than growing, or emptying itself; a page larger than a 64th of
/// the budget is not kept at all.
#[test]
fn the_row_cache_keeps_to_its_budget_and_evicts_what_is_not_read() {
    let Some(url) = crate::test_database_url() else {
        return;
    };
    let budget = 256 << 10;
    let s = Store::open_url(&format!("{url}&cache=256KiB"), TEST_TABLES).unwrap();
    // 200 tenants of two rows of 1 KiB (a page of about 2.3 KiB each: 460 KiB in all), and
    // one of ten (about 11 KiB, past the 4 KiB an entry may take).
    let value = "v".repeat(1024);
    let mut b = s.begin(true).unwrap();
    b.run(|tx| {
        (0..200).try_for_each(|n| {
            let t = format!("t{n}");
            tx.put(&ROWS, &key(&t, "a", 1, 1), &value)?;
            tx.put(&ROWS, &key(&t, "a", 2, 2), &value)
        })?;
        (0..10).try_for_each(|n| tx.put(&ROWS, &key("big", "a", n, 1), &value))
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    assert!(s.cached_bytes().unwrap() <= budget);
    // Round trips of a scan of the tenant's rows on a fresh snapshot: 1 from the cache.
    let scan = |tenant: &str, rows: usize| -> u64 {
        let before = s.round_trips().unwrap();
        let mut n = 0;
        let r = s.read().unwrap();
        r.scan(
            &ROWS,
            &ROWS.prefix().tenant(tenant),
            Order::Asc,
            |_, _: String| {
                n += 1;
                Ok(Flow::Continue)
            },
        )
        .unwrap();
        assert_eq!(n, rows);
        s.round_trips().unwrap() - before
    };
    // The scan's statement prepared, as on a warm server.
    scan("nobody", 0);
    let mut hot_misses = 0;
    for n in 1..200 {
        hot_misses += u64::from(scan("t0", 2) > 1);
        scan(&format!("t{n}"), 2);
        assert!(s.cached_bytes().unwrap() <= budget, "within the budget");
    }
    // The page read before each other one was read from the database at most twice (its first
    // read, and again if a sweep came before its second); the last page read is kept.
    assert!(
        hot_misses <= 2,
        "the page read often stays: {hot_misses} misses"
    );
    assert_eq!(scan("t199", 2), 1);
    // Evicting, not emptying: most of the budget is in use, and some pages read once are gone.
    assert!(s.cached_bytes().unwrap() > budget / 2);
    let missed: u64 = (1..199)
        .map(|n| u64::from(scan(&format!("t{n}"), 2) > 1))
        .sum();
    assert!(missed > 0, "pages read once were evicted");
    // Too large to keep: read from the database each time.
    assert_eq!(scan("big", 10), 2);
    assert_eq!(scan("big", 10), 2);
}

/// A batch that writes nothing (an upkeep tick with nothing to do) leaves the commit count as
/// it is: on PostgreSQL another process's row cache stays, so its next scan costs no round
/// trip (an idle server's ticks used to empty its peers' caches every second); a batch that
/// writes still does. On redb the same reads see the same values.
#[test]
fn a_batch_that_writes_nothing_empties_no_cache() {
    let (_dir, at) = place();
    let s = open_at(&at);
    let second = is_url(&at).then(|| open_at(&at));
    let other = second.as_ref().unwrap_or(&s);
    let write = |on: &Store, n: u64, v: &str| commit_row(on, &ROWS, n, v);
    let scan = || scanned_fresh(&s, &ROWS);
    let pg = |n: u64| s.round_trips().map(|_| n);
    write(&s, 1, "a");
    assert_eq!(scan().0, ["a"]);
    assert_eq!(scan(), (vec!["a".to_owned()], pg(1)));
    let mut idle = other.begin(true).unwrap();
    idle.run(|tx| tx.get(&ROWS, &key("t", "c", 1, 1)).map(|_| ()))
        .unwrap()
        .unwrap();
    idle.commit().unwrap();
    assert_eq!(scan(), (vec!["a".to_owned()], pg(1)), "nothing written");
    write(other, 2, "b");
    let (seen, trips) = scan();
    assert_eq!(seen, ["a", "b"]);
    assert!(trips.is_none_or(|n| n > 1), "a write empties it");
}

/// On PostgreSQL another process's commit empties only what it wrote from this process's row
/// cache, once the two have seen each other's commits: a table it did not write is still read
/// from the cache (the snapshot's start is the scan's one round trip), one it wrote is read
/// again and seen as it wrote it. A commit that
/// did not record its tables (a server of an older build: simulated by taking back the count
/// and the table it recorded) empties the cache whole, so nothing it wrote is served stale.
/// On redb the same reads see the same values.
#[test]
fn another_process_s_commit_empties_only_the_tables_it_wrote() {
    let (_dir, at) = place();
    let s = open_at(&at);
    let second = is_url(&at).then(|| open_at(&at));
    let other = second.as_ref().unwrap_or(&s);
    let write = commit_row;
    let scan = |t: &Strings| scanned_fresh(&s, t);
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let pg = |n: u64| s.round_trips().map(|_| n);
    write(&s, &ROWS, 1, "a");
    write(&s, &CONF, 1, "c");
    // Alone, a process records nothing.
    let recorded = || {
        is_url(&at).then(|| {
            let (schema, mut c) = tests::session_of(&at);
            let q = format!("SELECT count(*) FROM \"{schema}\".bespin_written");
            c.query_one(&q, &[]).unwrap().get::<_, i64>(0)
        })
    };
    assert_eq!(recorded(), is_url(&at).then_some(0));
    // Each process commits once after the other's commit: from then on both record the tables
    // they write (a process that has seen no other records nothing), and this one asks what
    // each next commit wrote with its snapshots' counts.
    write(other, &CONF, 2, "d");
    write(&s, &CONF, 3, "e");
    write(other, &CONF, 4, "f");
    let cdef = ["c", "d", "e", "f"];
    assert_eq!(recorded(), is_url(&at).then_some(1), "CONF, by both");
    assert_eq!(scan(&ROWS).0, ["a"]);
    assert_eq!(scan(&CONF).0, cdef);
    assert_eq!(scan(&ROWS), (strs(&["a"]), pg(1)));
    write(other, &CONF, 5, "g");
    assert_eq!(scan(&ROWS), (strs(&["a"]), pg(1)), "not written: kept");
    let (seen, trips) = scan(&CONF);
    assert_eq!(seen, ["c", "d", "e", "f", "g"]);
    assert!(trips.is_none_or(|n| n > 1), "written: read again");
    assert_eq!(scan(&CONF), (strs(&["c", "d", "e", "f", "g"]), pg(1)));
    // A commit that recorded nothing.
    write(other, &ROWS, 2, "b");
    if is_url(&at) {
        let (schema, mut c) = tests::session_of(&at);
        c.batch_execute(&format!(
            "UPDATE \"{schema}\".bespin_meta SET value = value - 1 WHERE name = 'tracked'; \
             DELETE FROM \"{schema}\".bespin_written WHERE name = 'test_rows'"
        ))
        .unwrap();
    }
    let (seen, trips) = scan(&ROWS);
    assert_eq!(seen, ["a", "b"]);
    assert!(trips.is_none_or(|n| n > 1), "emptied: read again");
    let (seen, trips) = scan(&CONF);
    assert_eq!(seen, ["c", "d", "e", "f", "g"]);
    assert!(trips.is_none_or(|n| n > 1), "emptied whole");
}
