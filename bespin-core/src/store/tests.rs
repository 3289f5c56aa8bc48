//! The store's own tests: the backend contract of `backend.rs` (run against every backend),
//! the undo log, sequences, secrets and the logical copy. They run on redb, or on PostgreSQL
//! when `BESPIN_TEST_DB` names one (each test in a schema of its own).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::time::{Date, Timestamp};
use std::collections::BTreeMap;

key! {
    /// (tenant, name, instant, id): a key of every kind that sorts.
    pub(crate) struct TestKey<'a> { tenant_id: tenant, name: str, at: ts, item: id }
    /// (tenant, day, undated, n).
    pub(crate) struct DayKey<'a> { tenant_id: tenant, day: maybe_date, n: i64 }
}

pub(super) const ROWS: Table<TestKey<'static>, String> = Table::new("test_rows");
pub(super) const DAYS: Table<DayKey<'static>, u64> = Table::new("test_days");
/// A configuration table: a write batch memoises its reads.
pub(super) const CONF: Table<TestKey<'static>, String> = Table::new("test_conf").memo();
pub(super) const TEST_TABLES: &[&dyn TableInfo] = &[&SEQUENCES, &SECRETS, &ROWS, &DAYS, &CONF];

/// A fresh store on the backend under test.
pub(super) fn store() -> Store {
    match crate::test_database_url() {
        Some(url) => Store::open_url(&url, TEST_TABLES).unwrap(),
        None => Store::in_memory(TEST_TABLES).unwrap(),
    }
}

/// Where a database can be opened again: a redb file in a temporary directory (kept alive by
/// the first value), or a PostgreSQL schema of its own.
pub(super) fn place() -> (Option<tempfile::TempDir>, String) {
    match crate::test_database_url() {
        Some(url) => (None, url),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.redb").display().to_string();
            (Some(dir), path)
        }
    }
}

pub(super) fn open_at(place: &str) -> Store {
    if is_url(place) {
        Store::open_url(place, TEST_TABLES).unwrap()
    } else {
        Store::open(Path::new(place), 1 << 20, TEST_TABLES).unwrap()
    }
}

pub(super) fn key<'a>(tenant: &'a str, name: &'a str, at: i64, n: u64) -> TestKey<'a> {
    TestKey::new(tenant, name, Timestamp(at), Id::Sealed(n))
}

pub(super) fn put(b: &mut Batch, k: &TestKey<'_>, v: &str) {
    b.run(|tx| tx.put(&ROWS, k, &v.to_owned()))
        .unwrap()
        .unwrap();
}

fn next(b: &mut Batch, name: &str) -> u64 {
    b.run(|tx| tx.next_seq(name)).unwrap().unwrap()
}

#[test]
fn keys_encode_once_and_read_back_through_their_declaration() {
    let k = TestKey::new("t\0x", "name", Timestamp(-7), Id::Named("legacy".into()));
    let bytes = k.encode();
    assert_eq!(TestKey::decode(&bytes), Some(k.clone()));
    // Not a key of this layout: too short, or with bytes left over.
    assert_eq!(TestKey::decode(&bytes[..bytes.len() - 1]), None);
    assert_eq!(TestKey::decode(&[bytes.as_slice(), &[1]].concat()), None);
    let d = DayKey::new("t", Date::parse("2026-02-01"), -1);
    assert_eq!(DayKey::decode(&d.encode()), Some(d));
    let names: Vec<&str> = <TestKey<'static> as KeyDef>::PARTS
        .iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["tenant_id", "name", "at", "item"]);
    assert!(ROWS.tenant_scoped() && !SEQUENCES.tenant_scoped());
    // A prefix is the encoding of the key's first parts.
    let p = ROWS.prefix().tenant("t\0x").str("name").ts(Timestamp(-7));
    assert!(bytes.starts_with(p.as_bytes()));
}

#[test]
fn scans_visit_a_prefix_in_either_order_and_stop_early() {
    let s = store();
    let mut b = s.begin(true).unwrap();
    for (t, name, at) in [("a", "x", 3), ("a", "x", 1), ("a", "y", 2), ("b", "x", 0)] {
        put(&mut b, &key(t, name, at, 1), &format!("{t}{name}{at}"));
    }
    // The batch reads its own writes before it commits.
    let p = ROWS.prefix().tenant("a");
    b.run(|tx| {
        let all = tx.list(&ROWS, &p, Order::Asc, 0, 10)?;
        assert_eq!(all, ["ax1", "ax3", "ay2"]);
        Ok(())
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    let r = s.read().unwrap();
    let desc = r.list(&ROWS, &p, Order::Desc, 0, 10).unwrap();
    assert_eq!(desc, ["ay2", "ax3", "ax1"]);
    let mut first = Vec::new();
    r.scan(&ROWS, &p, Order::Desc, |_, v| {
        first.push(v);
        Ok(Flow::Stop)
    })
    .unwrap();
    assert_eq!(first, ["ay2"]);
    // A range within the prefix: [from, to).
    let from = ROWS.prefix().tenant("a").str("x").ts(Timestamp(2));
    let to = ROWS.prefix().tenant("a").str("y");
    let mut got = Vec::new();
    r.scan_range(
        &ROWS,
        &p,
        Some(&from),
        Some(&to),
        Order::Asc,
        &mut |_, v| {
            got.push(v);
            Ok(Flow::Continue)
        },
    )
    .unwrap();
    assert_eq!(got, ["ax3"]);
    // A word's start matches every longer string.
    let start = ROWS.prefix().tenant("a").starting("");
    assert_eq!(
        r.list(&ROWS, &start, Order::Asc, 1, 10).unwrap(),
        ["ax3", "ay2"]
    );
    assert_eq!(r.count(ROWS.name()).unwrap(), 4);
}

#[test]
fn a_failed_operation_is_undone_alone() {
    let s = store();
    let mut b = s.begin(true).unwrap();
    put(&mut b, &key("t", "kept", 1, 1), "before");
    let failed: Result<()> = b
        .run(|tx| {
            tx.put(&ROWS, &key("t", "kept", 1, 1), &"changed".to_owned())?;
            tx.put(&ROWS, &key("t", "new", 1, 2), &"new".to_owned())?;
            tx.delete_prefix(&ROWS, &ROWS.prefix().tenant("t"))?;
            Err(Error::Conflict("no".into()))
        })
        .unwrap();
    assert!(failed.is_err());
    let panicked: Result<()> = b
        .run(|tx| {
            tx.delete(&ROWS, &key("t", "kept", 1, 1))?;
            panic!("boom")
        })
        .unwrap();
    assert!(matches!(panicked, Err(Error::Internal(_))));
    b.run(|tx| {
        assert_eq!(
            tx.get(&ROWS, &key("t", "kept", 1, 1))?.as_deref(),
            Some("before")
        );
        assert!(!tx.contains(&ROWS, &key("t", "new", 1, 2))?);
        assert!(!tx.insert_new(&ROWS, &key("t", "kept", 1, 1), &"x".to_owned())?);
        let old = tx.replace(&ROWS, &key("t", "kept", 1, 1), &"after".to_owned())?;
        assert_eq!(old.as_deref(), Some("before"));
        Ok(())
    })
    .unwrap()
    .unwrap();
    // A table cleared without logging cannot be rolled back: the batch must be dropped.
    let r = b.run(|tx| {
        tx.clear_unlogged(&DAYS)?;
        Err::<(), _>(Error::Conflict("no".into()))
    });
    assert!(r.is_err());
}

#[test]
fn sequences_grow_across_batches_failures_and_reopening() {
    let (_dir, path) = place();
    {
        let store = open_at(&path);
        let mut b = store.begin(true).unwrap();
        assert_eq!(
            (next(&mut b, "a"), next(&mut b, "a"), next(&mut b, "b")),
            (1, 2, 1)
        );
        // A failing operation gives nothing back: the next value skips what it took.
        let failed: Result<u64> = b
            .run(|tx| {
                tx.next_seq("a")?;
                Err(Error::Conflict("no".into()))
            })
            .unwrap();
        assert!(failed.is_err());
        assert_eq!(next(&mut b, "a"), 4);
        b.commit().unwrap();
        let mut b = store.begin(true).unwrap();
        assert_eq!(next(&mut b, "a"), 5);
        // A batch dropped without commit stores nothing.
        drop(b);
        let mut b = store.begin(true).unwrap();
        assert_eq!(next(&mut b, "a"), 5);
        b.commit().unwrap();
    }
    let store = open_at(&path);
    let mut b = store.begin(true).unwrap();
    assert_eq!((next(&mut b, "a"), next(&mut b, "b")), (6, 2));
    let stored: Option<u64> = store
        .read()
        .unwrap()
        .get(&SEQUENCES, &NameKey::new("a"))
        .unwrap();
    assert_eq!(stored, Some(5));
}

#[test]
fn secrets_are_made_once_and_kept() {
    let (_dir, path) = place();
    let (ids, other) = {
        let s = open_at(&path);
        (s.secret(ID_SECRET).unwrap().0, s.secret("other").unwrap().0)
    };
    assert_ne!(ids, other);
    let s = open_at(&path);
    assert_eq!(s.secret(ID_SECRET).unwrap().0, ids);
    assert_eq!(s.secret("other").unwrap().0, other);
    let sealed = s.sealer.seal(7);
    assert_eq!(Sealer::new(&ids).unseal(&sealed), Some(7));
}

#[test]
fn a_backup_is_a_whole_copy_of_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let s = store();
    let mut b = s.begin(true).unwrap();
    put(&mut b, &key("t", "a", 1, 1), "one");
    next(&mut b, "records");
    b.commit().unwrap();
    let out = dir.path().join("copy.redb");
    // Rows: the secret, the sequence and the record.
    assert_eq!(s.backup(&out).unwrap(), 3);
    assert!(
        s.backup(&out).is_err(),
        "an existing file is not overwritten"
    );
    let copy = Store::open(&out, 1 << 20, TEST_TABLES).unwrap();
    assert_eq!(
        copy.secret(ID_SECRET).unwrap().0,
        s.secret(ID_SECRET).unwrap().0
    );
    let r = copy.read().unwrap();
    assert_eq!(
        r.get(&ROWS, &key("t", "a", 1, 1)).unwrap().as_deref(),
        Some("one")
    );
    assert_eq!(
        r.get(&SEQUENCES, &NameKey::new("records")).unwrap(),
        Some(1)
    );
    assert!(r.stored_bytes().unwrap() > 0);
}

#[test]
fn a_commit_is_read_back_at_once() {
    let s = store();
    let before = s.read().unwrap();
    // A snapshot holds the state of its first read (PostgreSQL takes it then) for its life.
    assert_eq!(before.get(&ROWS, &key("t", "b", 1, 1)).unwrap(), None);
    let mut b = s.begin(true).unwrap();
    put(&mut b, &key("t", "a", 1, 1), "one");
    b.commit().unwrap();
    // The snapshot taken before still shows the old state; a new read shows the commit.
    assert_eq!(before.get(&ROWS, &key("t", "a", 1, 1)).unwrap(), None);
    let after = s.read().unwrap();
    assert!(after.contains(&ROWS, &key("t", "a", 1, 1)).unwrap());
    // One process's readers share one snapshot when no other process writes (redb).
    assert_eq!(
        Arc::ptr_eq(&after, &s.read().unwrap()),
        s.shares_snapshots,
        "readers share it"
    );
}

/// Every row of `table` of the database at `place`: on PostgreSQL as another process reads it
/// (a store of its own, so nothing comes from the row cache of `s`); on redb, which one
/// process opens at a time and which has no such cache, through `s`.
fn stored_rows(s: &Store, place: &str, table: &'static str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let r = if is_url(place) {
        open_at(place).read().unwrap()
    } else {
        s.read().unwrap()
    };
    crate::check::raw(&*r, table).unwrap()
}

/// A commit stores its rows byte for byte, however it sends them (on PostgreSQL a batch's
/// rows go as binary `bytea[]` parameters, a batch that emptied a table as SQL text): keys
/// and values holding every byte value, an empty value, a large one, rows replaced, removals
/// and puts of one table in one batch (a row put then removed, one removed then put again),
/// several tables at once. Read back by another store, whose cache knows nothing of them.
#[test]
fn a_commit_stores_every_byte_of_its_rows_and_removals() {
    let (_dir, place) = place();
    let s = open_at(&place);
    let every: Vec<u8> = (0..=255u8).collect();
    let rows = "test_rows";
    let days = "test_days";
    let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut b = s.begin(true).unwrap();
    b.run(|tx| {
        for i in 0..=255u8 {
            tx.raw_insert_for_test(rows, &[b'o', i], b"old")?;
        }
        tx.raw_insert_for_test(days, b"day-old", b"x")
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    for i in 0..=255u8 {
        want.insert(vec![b'o', i], b"old".to_vec());
    }

    let large: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut b = s.begin(true).unwrap();
    b.run(|tx| {
        for i in 0..=255u8 {
            // A new row whose key and value hold the byte `i` among the ones most likely to be
            // taken for something else (quote, backslash, zero, high bit).
            let k = [b'n', i, b'\\', b'\'', 0, 255, i];
            let v = [i, b'\\', b'x', i, b'\'', 0, 0x80, i];
            tx.raw_insert_for_test(rows, &k, &v)?;
            // The old rows: even ones replaced (by every byte, or nothing), odd ones removed.
            if i % 2 == 0 {
                let v: &[u8] = if i % 4 == 0 { &every } else { b"" };
                tx.raw_insert_for_test(rows, &[b'o', i], v)?;
            } else {
                assert!(tx.delete_raw(rows, &[b'o', i])?);
            }
        }
        tx.raw_insert_for_test(rows, &every, &large)?;
        // Put then removed, removed then put back, removed though never there.
        tx.raw_insert_for_test(rows, b"gone", b"soon")?;
        assert!(tx.delete_raw(rows, b"gone")?);
        assert!(!tx.delete_raw(rows, &[b'o', 1])?);
        tx.raw_insert_for_test(rows, &[b'o', 1], b"back")?;
        assert!(!tx.delete_raw(rows, b"never")?);
        tx.raw_insert_for_test(days, b"day-new", &every)?;
        assert!(tx.delete_raw(days, b"day-old")?);
        Ok(())
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    for i in 0..=255u8 {
        want.insert(
            vec![b'n', i, b'\\', b'\'', 0, 255, i],
            vec![i, b'\\', b'x', i, b'\'', 0, 0x80, i],
        );
        match i % 4 {
            0 => want.insert(vec![b'o', i], every.clone()),
            2 => want.insert(vec![b'o', i], Vec::new()),
            _ => want.remove(&vec![b'o', i]),
        };
    }
    want.insert(every.clone(), large);
    want.insert(vec![b'o', 1], b"back".to_vec());
    assert!(
        stored_rows(&s, &place, rows) == want,
        "test_rows as written"
    );
    let days_want = BTreeMap::from([(b"day-new".to_vec(), every.clone())]);
    assert_eq!(stored_rows(&s, &place, days), days_want);

    // A batch that empties a table (a restore's) and writes others.
    let mut b = s.begin(true).unwrap();
    b.run(|tx| {
        tx.clear_unlogged(&DAYS)?;
        tx.raw_insert_for_test(days, &every, b"")?;
        tx.raw_insert_for_test(rows, b"after clear", &every)?;
        assert!(tx.delete_raw(rows, &[b'o', 0])?);
        Ok(())
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    want.insert(b"after clear".to_vec(), every.clone());
    want.remove(&vec![b'o', 0]);
    assert!(
        stored_rows(&s, &place, rows) == want,
        "test_rows after a clear"
    );
    assert_eq!(
        stored_rows(&s, &place, days),
        BTreeMap::from([(every.clone(), Vec::new())])
    );
}

/// Batches of 40 shapes (which of three tables each puts rows in and removes rows from),
/// written three times over, store their rows. On PostgreSQL a batch's flush is one prepared
/// statement per shape, prepared the first time the writer's connection sees the shape, and
/// the connection keeps the 32 it used last: a batch of a kept shape costs its start, the
/// statement and its `COMMIT` (3 round trips), one of a new or forgotten shape one more.
#[test]
fn batches_of_many_shapes_prepare_each_once_and_store_their_rows() {
    let (_dir, place) = place();
    let s = open_at(&place);
    let tables = ["test_rows", "test_days", "test_conf"];
    let mut want: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); 3];
    let mut write = |shape: u8, pass: u8| {
        let before = s.round_trips();
        let mut b = s.begin(true).unwrap();
        b.run(|tx| {
            for (j, table) in tables.iter().enumerate() {
                if shape & (1 << (2 * j)) != 0 {
                    tx.raw_insert_for_test(table, &[b'p', shape], &[shape, pass])?;
                }
                if shape & (2 << (2 * j)) != 0 {
                    // Written, then removed: a removal that reads nothing.
                    tx.raw_insert_for_test(table, &[b'd', shape], b"")?;
                    assert!(tx.delete_raw(table, &[b'd', shape])?);
                }
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
        b.commit().unwrap();
        for (j, rows) in want.iter_mut().enumerate() {
            if shape & (1 << (2 * j)) != 0 {
                rows.insert(vec![b'p', shape], vec![shape, pass]);
            }
        }
        s.round_trips().zip(before).map(|(a, b)| a - b)
    };
    let pg = |n: u64| s.round_trips().map(|_| n);
    for shape in 1..=40 {
        assert_eq!(write(shape, 1), pg(4), "shape {shape}, first seen");
    }
    for shape in 9..=40 {
        assert_eq!(write(shape, 2), pg(3), "shape {shape}, kept");
    }
    for shape in 1..=8 {
        assert_eq!(write(shape, 3), pg(4), "shape {shape}, forgotten");
    }
    for (table, rows) in tables.iter().zip(&want) {
        assert_eq!(&stored_rows(&s, &place, table), rows, "{table}");
    }
}

/// The schema of a test database's `url`, and a plain session of our own on its database.
pub(super) fn session_of(url: &str) -> (String, ::postgres::Client) {
    let schema = url
        .split("schema=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let base = std::env::var("BESPIN_TEST_DB").unwrap();
    let client = ::postgres::Client::connect(&base, ::postgres::NoTls).unwrap();
    (schema.to_owned(), client)
}

/// On PostgreSQL a read connection handed back keeps its finished read open (the next read
/// ends it in the same round trip), and the sweeper ends it after a second, so an idle pool
/// holds no snapshot back from vacuum. Seen from PostgreSQL itself: the connection whose last
/// statement read this schema is "idle in transaction" with a snapshot (an xmin) right after
/// the read, and no longer a few seconds later.
#[test]
fn an_idle_read_connection_lets_its_snapshot_go() {
    let Some(url) = crate::test_database_url() else {
        return;
    };
    let s = Store::open_url(&url, TEST_TABLES).unwrap();
    let (schema, mut observer) = session_of(&url);
    let holding = |observer: &mut ::postgres::Client| -> i64 {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
                 AND backend_xmin IS NOT NULL AND query LIKE '%' || $1 || '%'",
                &[&schema],
            )
            .unwrap()
            .get(0)
    };
    let r = s.read().unwrap();
    assert_eq!(r.get(&ROWS, &key("t", "a", 1, 1)).unwrap(), None);
    drop(r);
    assert_eq!(
        holding(&mut observer),
        1,
        "the finished read stays open at first"
    );
    let mut left = holding(&mut observer);
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = holding(&mut observer);
    }
    assert_eq!(left, 0, "the sweeper ended the idle read");
    // The connection is used again: its next read begins afresh and sees a new commit.
    let mut b = s.begin(true).unwrap();
    put(&mut b, &key("t", "a", 1, 1), "one");
    b.commit().unwrap();
    assert!(
        s.read()
            .unwrap()
            .contains(&ROWS, &key("t", "a", 1, 1))
            .unwrap()
    );
}

/// On PostgreSQL, servers starting together on a new schema race to create it: the schema
/// lock serializes them, so every open succeeds (concurrent `CREATE TABLE IF NOT EXISTS`
/// alone fails with a duplicate catalog row) and all see one database.
#[test]
fn servers_opening_a_new_schema_together_all_succeed() {
    let Some(url) = crate::test_database_url() else {
        return;
    };
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let opened: Vec<Store> = (0..8)
        .map(|_| {
            let (url, start) = (url.clone(), std::sync::Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                Store::open_url(&url, TEST_TABLES)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let mut b = opened[3].begin(true).unwrap();
    put(&mut b, &key("t", "a", 1, 1), "one");
    b.commit().unwrap();
    for s in &opened {
        assert!(
            s.read()
                .unwrap()
                .contains(&ROWS, &key("t", "a", 1, 1))
                .unwrap()
        );
    }
}

/// Runs one operation announcing `topic` in its own batch of `s`; commits it or, with
/// `commit` false, drops it (rolled back).
fn announce(s: &Store, topic: &str, commit: bool) {
    let mut b = s.begin(true).unwrap();
    b.run(|tx| {
        tx.announce(topic);
        tx.announce(topic);
        tx.put(&ROWS, &key(topic, "news", 1, 1), &"x".to_owned())
    })
    .unwrap()
    .unwrap();
    if commit {
        b.commit().unwrap();
    }
}

#[test]
fn other_processes_hear_of_announced_news_exactly_when_it_commits() {
    let (_dir, place) = place();
    if !is_url(&place) {
        // No other process can write a file this one has open: nothing to hear or miss.
        assert!(!open_at(&place).misses_others());
        return;
    }
    let (a, b) = (open_at(&place), open_at(&place));
    assert!(b.misses_others(), "not watching yet: poll");
    let heard: Arc<std::sync::Mutex<Vec<Vec<String>>>> = Arc::default();
    let h = Arc::clone(&heard);
    b.watch_others(Box::new(move |topics| {
        // `None` (after each LISTEN: whatever committed before it) is not news of a commit.
        if let Some(t) = topics {
            h.lock()
                .unwrap()
                .push(t.iter().map(|s| (*s).to_owned()).collect());
        }
    }))
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.misses_others() {
        assert!(std::time::Instant::now() < deadline, "never listening");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // One batch: an operation that fails (its news goes with it) and one that succeeds.
    let mut batch = a.begin(true).unwrap();
    let failed = batch
        .run(|tx| {
            tx.announce("t1");
            Err::<(), _>(Error::Conflict("no".into()))
        })
        .unwrap();
    assert!(failed.is_err());
    batch
        .run(|tx| {
            tx.announce("t2");
            tx.announce("t3");
            Ok(())
        })
        .unwrap()
        .unwrap();
    batch.commit().unwrap();
    announce(&a, "rolled_back", false);
    // A commit without news is not announced; b's own news is not told to b.
    let mut quiet = a.begin(true).unwrap();
    put(&mut quiet, &key("t", "quiet", 1, 1), "x");
    quiet.commit().unwrap();
    announce(&b, "own", true);
    // Notifications arrive in commit order: once the last is in, every earlier one is too.
    announce(&a, "last", true);
    while !heard.lock().unwrap().iter().any(|t| t == &["last"]) {
        assert!(std::time::Instant::now() < deadline, "not heard: {heard:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        *heard.lock().unwrap(),
        vec![
            vec!["t2".to_owned(), "t3".to_owned()],
            vec!["last".to_owned()]
        ]
    );
}
/// The values of `t` under tenant "t", in `order`, as a batch's operation reads them.
fn values(tx: &WriteTx, t: &Table<TestKey<'static>, String>, order: Order) -> Vec<String> {
    let mut out = Vec::new();
    tx.scan(t, &t.prefix().tenant("t"), order, |_, v: String| {
        out.push(v);
        Ok(Flow::Continue)
    })
    .unwrap();
    out
}

#[test]
fn held_rows_are_read_by_every_read_of_the_batch_and_written_once_at_its_commit() {
    let s = store();
    let mut b = s.begin(true).unwrap();
    let (k1, k2, k3) = (
        key("t", "a", 1, 1),
        key("t", "b", 1, 2),
        key("t", "c", 1, 3),
    );
    put(&mut b, &k1, "stored 1");
    put(&mut b, &k3, "stored 3");
    b.run(|tx| {
        tx.put_held(&ROWS, &k1, &"held 1".to_owned())?;
        tx.put_held(&ROWS, &k2, &"held 2".to_owned())?;
        // Gets and scans (both ways) see the held rows, in key order among the stored ones.
        assert_eq!(tx.get(&ROWS, &k1)?.as_deref(), Some("held 1"));
        assert_eq!(
            values(tx, &ROWS, Order::Asc),
            ["held 1", "held 2", "stored 3"]
        );
        assert_eq!(
            values(tx, &ROWS, Order::Desc),
            ["stored 3", "held 2", "held 1"]
        );
        // A scan stopped early stops among held rows too.
        let mut first = Vec::new();
        tx.scan(
            &ROWS,
            &ROWS.prefix().tenant("t"),
            Order::Asc,
            |_, v: String| {
                first.push(v);
                Ok(Flow::Stop)
            },
        )?;
        assert_eq!(first, ["held 1"]);
        Ok(())
    })
    .unwrap()
    .unwrap();
    // A failed operation's held rows and its ordinary writes over held keys are undone.
    let failed: Result<()> = b
        .run(|tx| {
            tx.put_held(&ROWS, &k1, &"held again".to_owned())?;
            tx.put_held(&ROWS, &key("t", "d", 1, 4), &"gone".to_owned())?;
            tx.put(&ROWS, &k2, &"plain over held".to_owned())?;
            assert_eq!(tx.get(&ROWS, &k2)?.as_deref(), Some("plain over held"));
            assert!(tx.delete(&ROWS, &k1)?, "a held row exists for a delete");
            assert_eq!(tx.get(&ROWS, &k1)?, None);
            Err(Error::Conflict("no".into()))
        })
        .unwrap();
    assert!(failed.is_err());
    b.run(|tx| {
        assert_eq!(
            values(tx, &ROWS, Order::Asc),
            ["held 1", "held 2", "stored 3"]
        );
        // An ordinary write of a held key replaces the held value and reports it as the old.
        let old = tx.replace(&ROWS, &k2, &"plain 2".to_owned())?;
        assert_eq!(old.as_deref(), Some("held 2"));
        Ok(())
    })
    .unwrap()
    .unwrap();
    b.commit().unwrap();
    let r = s.read().unwrap();
    let got = |k: &TestKey<'_>| r.get(&ROWS, k).unwrap();
    assert_eq!(got(&k1).as_deref(), Some("held 1"));
    assert_eq!(got(&k2).as_deref(), Some("plain 2"));
    assert_eq!(got(&key("t", "d", 1, 4)), None);
}

#[test]
fn the_memo_of_a_configuration_table_forgets_it_when_the_batch_writes_it_or_undoes_a_write() {
    let s = store();
    let mut b = s.begin(true).unwrap();
    let k = key("t", "plan", 1, 1);
    b.run(|tx| tx.put(&CONF, &k, &"starter".to_owned()))
        .unwrap()
        .unwrap();
    let read = |b: &mut Batch| {
        b.run(|tx| Ok((tx.get(&CONF, &k)?, values(tx, &CONF, Order::Asc))))
            .unwrap()
            .unwrap()
    };
    // Read twice: the second from the memo.
    assert_eq!(
        read(&mut b),
        (Some("starter".into()), vec!["starter".into()])
    );
    assert_eq!(
        read(&mut b),
        (Some("starter".into()), vec!["starter".into()])
    );
    // Another operation of the batch changes it: the next read sees the change.
    b.run(|tx| {
        tx.put(&CONF, &k, &"pro".to_owned())?;
        tx.put(&CONF, &key("t", "plan", 2, 2), &"extra".to_owned())
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        read(&mut b),
        (Some("pro".into()), vec!["pro".into(), "extra".into()])
    );
    // A failed operation's change is read inside it, and gone after its undo.
    let failed: Result<()> = b
        .run(|tx| {
            tx.put(&CONF, &k, &"tiny".to_owned())?;
            assert_eq!(tx.get(&CONF, &k)?.as_deref(), Some("tiny"));
            tx.delete(&CONF, &key("t", "plan", 2, 2))?;
            assert_eq!(values(tx, &CONF, Order::Asc), ["tiny"]);
            Err(Error::Conflict("no".into()))
        })
        .unwrap();
    assert!(failed.is_err());
    assert_eq!(
        read(&mut b),
        (Some("pro".into()), vec!["pro".into(), "extra".into()])
    );
    b.commit().unwrap();
    assert_eq!(
        s.read().unwrap().get(&CONF, &k).unwrap().as_deref(),
        Some("pro")
    );
}

#[test]
fn a_value_is_remembered_for_the_batch_only_when_computed_from_memo_tables_alone() {
    let s = store();
    let mut b = s.begin(true).unwrap();
    let k = key("t", "plan", 1, 1);
    put(&mut b, &k, "one");
    b.run(|tx| tx.put(&CONF, &k, &"one".to_owned()))
        .unwrap()
        .unwrap();
    // What each computation read, as the batch remembers it.
    let both = |b: &mut Batch| {
        b.run(|tx| {
            let conf = remember(&*tx, &["conf"], || tx.get(&CONF, &k))?;
            let rows = remember(&*tx, &["rows"], || tx.get(&ROWS, &k))?;
            Ok((conf, rows))
        })
        .unwrap()
        .unwrap()
    };
    assert_eq!(both(&mut b), (Some("one".into()), Some("one".into())));
    // A write to a table that is not a memo table: the value read from it was not kept.
    put(&mut b, &k, "two");
    assert_eq!(both(&mut b), (Some("one".into()), Some("two".into())));
    // A write to a memo table, then one undone: each is seen.
    b.run(|tx| tx.put(&CONF, &k, &"three".to_owned()))
        .unwrap()
        .unwrap();
    assert_eq!(both(&mut b).0.as_deref(), Some("three"));
    let failed: Result<()> = b
        .run(|tx| {
            tx.put(&CONF, &k, &"four".to_owned())?;
            assert_eq!(
                remember(&*tx, &["conf"], || tx.get(&CONF, &k))?.as_deref(),
                Some("four")
            );
            Err(Error::Conflict("no".into()))
        })
        .unwrap();
    assert!(failed.is_err());
    assert_eq!(both(&mut b).0.as_deref(), Some("three"));
}

#[test]
fn remembered_values_nest_and_keys_of_several_parts_are_told_apart() {
    let s = store();
    let mut b = s.begin(true).unwrap();
    let k = key("t", "plan", 1, 1);
    b.run(|tx| tx.put(&CONF, &k, &"one".to_owned()))
        .unwrap()
        .unwrap();
    let runs = std::cell::Cell::new(0);
    let got = b
        .run(|tx| {
            let mut seen = Vec::new();
            for (outer, inner) in [("a", "x"), ("a", "x"), ("a", "y"), ("b", "x")] {
                // A computation that remembers another value while it runs.
                let v = remember(&*tx, &["outer", outer, inner], || {
                    runs.set(runs.get() + 1);
                    let conf = remember(&*tx, &["inner", inner], || {
                        runs.set(runs.get() + 100);
                        tx.get(&CONF, &k)
                    })?;
                    Ok(format!("{outer}{inner}{}", conf.unwrap_or_default()))
                })?;
                seen.push(v);
            }
            Ok(seen)
        })
        .unwrap()
        .unwrap();
    assert_eq!(got, ["axone", "axone", "ayone", "bxone"]);
    // Three outer values (the second `a, x` was remembered), two inner ones.
    assert_eq!(runs.get(), 3 + 200);
}
