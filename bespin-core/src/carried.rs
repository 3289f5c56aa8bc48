//! One snapshot per request: the snapshot a request was authenticated on, carried over to the
//! request's first read.
//!
//! On PostgreSQL every read takes a snapshot of its own (a pooled connection and a round trip:
//! other servers commit too, so no snapshot can be shared until "the next commit"), and a
//! request reads twice: its authentication, then its handler's read. A [`RequestSnapshot`]
//! lets the second take over the first's snapshot (and connection), so a read request costs
//! one snapshot. The rules that keep it safe:
//!
//! - **At most once, at the start.** [`RequestSnapshot::scope`] puts the snapshot where the
//!   first read of the database on this thread, inside the scope, takes it
//!   ([`Bespin::read`](crate::Bespin) and the reads that keep their snapshot); every later
//!   read takes a fresh one as before, and the scope's end drops it if no read took it. So
//!   what a request reads first is the state when it was authenticated — a write acknowledged
//!   before the request started is in it — and nothing outlives the scope: a principal kept by
//!   a stream, an operation queued for the writer or an embedder holds no snapshot.
//! - **Never across a write.** A write started on the thread inside the scope
//!   ([`Bespin::write`](crate::Bespin) and the submission of an operation) drops the snapshot
//!   first, so a request never holds a read connection while it waits for the writer, and
//!   reads after its own write see it.
//! - **Only this database's.** The snapshot is taken only by reads of the database it was
//!   read from.
//!
//! Kept only where reads do not share a snapshot already (PostgreSQL): on redb one snapshot
//! serves every reader until the next commit, and a [`RequestSnapshot`] is always empty.
//! A thread-local, rather than a field of the [`Principal`](crate::Principal): a principal is
//! cloned into what outlives the request (operations, streams), a scope ends with it.

use crate::store::ReadTx;
use std::cell::RefCell;
use std::sync::{Arc, Weak};

/// A snapshot, and the database it was read from (a `Weak` of the database's shared state:
/// while it exists, no other database can have that address).
type Kept = (Weak<crate::Inner>, Arc<ReadTx>);

thread_local! {
    /// The snapshot the first read in the current [`RequestSnapshot::scope`] takes.
    static CARRIED: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// The snapshot a request was authenticated on
/// ([`Bespin::authenticate_keeping`](crate::Bespin::authenticate_keeping)), for the request's
/// first read to take over (see [`RequestSnapshot::scope`]). Empty on redb, where readers
/// share one snapshot already. Dropping it releases the snapshot (on PostgreSQL, hands its
/// connection back to the pool).
#[derive(Default)]
pub struct RequestSnapshot {
    kept: Option<Kept>,
}

impl std::fmt::Debug for RequestSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSnapshot")
            .field("kept", &self.kept.is_some())
            .finish()
    }
}

impl RequestSnapshot {
    /// `snapshot` of the database `inner`, to be carried.
    pub(crate) fn of(inner: &Arc<crate::Inner>, snapshot: Arc<ReadTx>) -> RequestSnapshot {
        RequestSnapshot {
            kept: Some((Arc::downgrade(inner), snapshot)),
        }
    }

    /// Whether a snapshot is kept (never on redb).
    pub fn is_kept(&self) -> bool {
        self.kept.is_some()
    }

    /// The same snapshot again, for a second try of the request's reads: one inside
    /// [`crate::without_waiting`] that was refused reads again on the snapshot it started
    /// on, where it may wait, instead of asking for a newer one.
    pub fn again(&self) -> RequestSnapshot {
        RequestSnapshot {
            kept: self.kept.clone(),
        }
    }

    /// Runs `f` (the request's handler) on this thread with the snapshot where the first
    /// read of its database in `f` takes it; drops it when `f` returns (or panics) if no
    /// read took it, and when `f` starts a write. Reads on other threads never see it.
    /// Scopes nest: an inner one restores the outer one's snapshot when it ends.
    pub fn scope<T>(self, f: impl FnOnce() -> T) -> T {
        let Some(kept) = self.kept else {
            return f();
        };
        /// Puts the outer scope's snapshot back, and drops this one's if still there.
        struct Restore(Option<Kept>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let ours = CARRIED.with(|c| c.replace(self.0.take()));
                // Dropped outside the cell: a PostgreSQL snapshot hands its connection back.
                drop(ours);
            }
        }
        let _restore = Restore(CARRIED.with(|c| c.replace(Some(kept))));
        f()
    }
}

/// The snapshot carried for the database `inner` in the current scope, taken (so only the
/// first read gets it).
pub(crate) fn take(inner: &Arc<crate::Inner>) -> Option<Arc<ReadTx>> {
    CARRIED.with(|c| {
        let mut c = c.borrow_mut();
        let ours = c
            .as_ref()
            .is_some_and(|(db, _)| std::ptr::eq(db.as_ptr(), Arc::as_ptr(inner)));
        if ours {
            c.take().map(|(_, snapshot)| snapshot)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::kpis::{NewPoint, PointsBulk, parse_point_ts};
    use crate::testutil::{self, kpi};
    use crate::{Bespin, Credentials, Principal};

    /// A database (redb, or PostgreSQL under `BESPIN_TEST_DB`), its tenant's credentials and
    /// admin, and a KPI with one point of value 1.
    fn setup() -> (Bespin, Credentials, Principal, String) {
        let (db, _) = testutil::db();
        let creds = testutil::admin_credentials(&db);
        let admin = db.authenticate(&creds).expect("admin");
        let k = kpi(&db, &admin, "mrr", &[("2026-01-01T00:00:00Z", 1.0)]);
        (db, creds, admin, k)
    }

    fn add_point(db: &Bespin, admin: &Principal, k: &str, ts: &str, value: f64) {
        let points = vec![NewPoint {
            ts: parse_point_ts(ts).expect("ts"),
            value,
        }];
        db.ingest_points(admin, k, PointsBulk { points })
            .expect("ingest");
    }

    fn latest(db: &Bespin, who: &Principal, k: &str) -> f64 {
        db.latest_point(who, k).expect("latest").value
    }

    /// [`latest`], `None` for an error (a read refused inside `without_waiting`).
    fn try_latest(db: &Bespin, who: &Principal, k: &str) -> Option<f64> {
        db.latest_point(who, k).ok().map(|p| p.value)
    }

    #[test]
    fn only_the_first_read_of_the_scope_takes_the_snapshot_authentication_read() {
        let (db, creds, admin, k) = setup();
        let (other, _, other_admin, other_k) = setup();
        let (who, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        // Only PostgreSQL keeps one: redb's readers share a snapshot already.
        assert_eq!(kept.is_kept(), db.reads_block());
        // Committed after the authentication, before the request's reads.
        add_point(&db, &admin, &k, "2026-01-02T00:00:00Z", 2.0);
        let (first, second, elsewhere) = kept.scope(|| {
            // Another database's read does not take it.
            let elsewhere = latest(&other, &other_admin, &other_k);
            (latest(&db, &who, &k), latest(&db, &who, &k), elsewhere)
        });
        assert_eq!(elsewhere, 1.0);
        // The first read is on the snapshot of the request's start (PostgreSQL); every later
        // one takes a fresh snapshot, so it sees the commit.
        assert_eq!(first, if db.reads_block() { 1.0 } else { 2.0 });
        assert_eq!(second, 2.0);
        assert_eq!(
            db.reads_held().unwrap_or(0),
            0,
            "the scope left no read open"
        );
    }

    #[test]
    fn a_write_drops_the_snapshot_first() {
        let (db, creds, admin, k) = setup();
        let (who, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        let read_back = kept.scope(|| {
            // The write waits for the writer holding no read connection...
            add_point(&db, &admin, &k, "2026-01-02T00:00:00Z", 2.0);
            assert_eq!(
                db.reads_held().unwrap_or(0),
                0,
                "a read held across a write"
            );
            // ... and what the request reads after it sees it.
            latest(&db, &who, &k)
        });
        assert_eq!(read_back, 2.0);
        // So does a submitted operation (the server's writes), before it is awaited.
        let (_, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        kept.scope(|| {
            let pending = db.submit(crate::Op::noop());
            assert_eq!(
                db.reads_held().unwrap_or(0),
                0,
                "a read held across a write"
            );
            pending.wait().expect("noop");
        });
    }

    #[test]
    fn a_snapshot_no_read_took_is_released_with_its_scope() {
        let (db, creds, _, _) = setup();
        let (_, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        assert_eq!(db.reads_held(), db.reads_block().then_some(1));
        kept.scope(|| ());
        assert_eq!(db.reads_held().unwrap_or(0), 0);
        // Also when the scope's work panics.
        let (_, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kept.scope(|| panic!("a handler panicked"))
        }));
        assert!(caught.is_err());
        assert_eq!(db.reads_held().unwrap_or(0), 0);
        // And a read outside any scope takes a snapshot of its own, as always.
        let (who, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        drop(kept);
        assert_eq!(db.reads_held().unwrap_or(0), 0);
        assert!(db.health().is_ok() && who.is_admin());
    }

    /// The snapshot `db.request_snapshot_later` hands over, waited for here.
    fn snapshot_later(db: &Bespin) -> crate::RequestSnapshot {
        let (tx, rx) = std::sync::mpsc::channel();
        db.request_snapshot_later(move |s| tx.send(s).expect("send"));
        rx.recv()
            .expect("a snapshot handed over")
            .expect("a snapshot")
    }

    /// A snapshot asked for without waiting sees every commit acknowledged before the asking;
    /// reads of rows the row cache holds run on it without waiting (PostgreSQL) — a server's
    /// read requests then need no thread that waits — and a read that would wait is refused
    /// (its scope answers `None`) and reads on the same snapshot again where it may wait.
    #[test]
    fn a_snapshot_asked_for_later_is_as_fresh_as_its_asking_and_reads_cached_rows_without_waiting()
    {
        let (db, creds, admin, k) = setup();
        let (who, _, kept) = db.authenticate_keeping(&creds).expect("auth");
        kept.scope(|| latest(&db, &who, &k));
        for (value, ts) in [(2.0, "2026-01-02T00:00:00Z"), (3.0, "2026-01-03T00:00:00Z")] {
            add_point(&db, &admin, &k, ts, value);
            let snapshot = snapshot_later(&db);
            let again = snapshot.again();
            let tried = crate::without_waiting(|| snapshot.scope(|| try_latest(&db, &who, &k)));
            // Never the value before the commit: the row read from the cache at the
            // snapshot's count, or refused (the commit emptied the row from the cache).
            assert!(tried.is_none() || tried == Some(Some(value)), "{tried:?}");
            assert_eq!(again.scope(|| latest(&db, &who, &k)), value);
        }
        // Once the row is cached at the newest count, the read runs without waiting on every
        // backend (redb's reads never wait).
        let snapshot = snapshot_later(&db);
        assert_eq!(
            crate::without_waiting(|| snapshot.scope(|| try_latest(&db, &who, &k))),
            Some(Some(3.0))
        );
        // A read with no snapshot handed over would wait for one on PostgreSQL.
        let alone = crate::without_waiting(|| try_latest(&db, &who, &k)).flatten();
        assert_eq!(alone, (!db.reads_block()).then_some(3.0));
        assert_eq!(db.reads_held().unwrap_or(0), 0, "a read left open");
    }

    /// Inside `without_waiting` a write, and an operation queued for the writer, refuse
    /// before they change anything: the try that counts writes, once.
    #[test]
    fn nothing_is_written_or_queued_without_waiting() {
        let (db, _, admin, k) = setup();
        let points = vec![NewPoint {
            ts: parse_point_ts("2026-01-02T00:00:00Z").expect("ts"),
            value: 2.0,
        }];
        let wrote =
            crate::without_waiting(|| db.ingest_points(&admin, &k, PointsBulk { points }).is_ok());
        assert_eq!(wrote, None);
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&ran);
        let queued = crate::without_waiting(|| {
            db.submit(crate::Op::new(move |_, _| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }))
        });
        assert!(queued.is_none());
        // The writer runs what was queued in order: past this, the refused op would have run.
        db.submit(crate::Op::noop())
            .wait()
            .expect("the writer idle");
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "an op queued"
        );
        assert_eq!(latest(&db, &admin, &k), 1.0, "nothing was written");
    }

    /// Round trips of `f` (PostgreSQL only).
    fn trips(db: &Bespin, f: impl FnOnce()) -> u64 {
        let before = db.round_trips().expect("PostgreSQL");
        f();
        db.round_trips().expect("PostgreSQL") - before
    }

    #[test]
    fn a_read_request_takes_one_snapshot_on_postgresql() {
        let (db, creds, admin, k) = setup();
        if db.round_trips().is_none() {
            return; // redb: no round trips, one shared snapshot already
        }
        let tasks = crate::coreos::tasks::TaskQuery::default();
        let q = crate::coreos::search::SearchQuery::from_json(&serde_json::json!({"q": "x"}))
            .expect("query");
        type ReadOf<'a> = &'a dyn Fn(&Principal);
        let reads: [(&str, ReadOf); 3] = [
            ("latest", &|who| {
                latest(&db, who, &k);
            }),
            ("task list", &|who| {
                drop(db.list_tasks(who, &tasks).expect("list"))
            }),
            ("search", &|who| {
                drop(db.search_within(who, &q, 100).expect("search"))
            }),
        ];
        for (name, read) in reads {
            // Warm: statements prepared, rows cached, as on a server that has run a while.
            let (who, _, kept) = db.authenticate_keeping(&creds).expect("auth");
            kept.scope(|| read(&who));
            let auth = trips(&db, || drop(db.authenticate_keeping(&creds).expect("auth")));
            let alone = trips(&db, || read(&admin));
            let request = trips(&db, || {
                let (who, _, kept) = db.authenticate_keeping(&creds).expect("auth");
                kept.scope(|| read(&who))
            });
            // The read's own snapshot (its start, one round trip) is saved.
            assert_eq!(
                request,
                auth + alone - 1,
                "{name}: one snapshot per request"
            );
        }
    }
}
