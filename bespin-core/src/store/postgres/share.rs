//! Reads that start together share one snapshot (issue 19).
//!
//! Every read must see every commit acknowledged before it started, by any process; on
//! PostgreSQL that takes a snapshot taken after the read started — one round trip (the start
//! of a `REPEATABLE READ` transaction and its read of the commit count). Most reads then need
//! nothing more from the server: the row cache answers them at that count. So a read does not
//! take a snapshot of its own; it joins a **generation**: one read transaction, opened by one
//! round trip that started after every read of the generation did, and shared by them all.
//! While a generation's round trip is in flight, the reads arriving wait for the next one
//! (begun as soon as the one in flight returns), so each round trip serves every read that
//! arrived during the one before: under load one round trip a generation, not one a read.
//!
//! A read that misses the cache queries the generation's connection, inside its transaction —
//! so everything a read sees, from the cache or the server, is the state of one commit count.
//! Reads of one generation that miss at the same moment take turns on its connection.
//!
//! The newest generation is kept for reads to come only until a newer one starts; the sweeper
//! forgets it once it is [`IDLE_READ`] old, so an idle process holds no snapshot open for long.
//! Its connection goes back to the pool when its last read ends, its transaction left open
//! for the pool's next read to end (as any read connection's).
//!
//! Within five seconds of seeing another process's commit (`RowCache::others_lately`) reads take
//! snapshots of their own, as the URL's `share=off` makes them always: such commits empty the
//! row cache, the reads of a generation would mostly miss it and take turns on its one
//! connection, and reads on connections of their own run side by side in PostgreSQL.

use super::{Conn, IDLE_READ, PgSnapshot, Shared, lock};
use crate::error::{Error, Result};
use crate::store::backend::SnapshotLater;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

/// One read transaction shared by the reads that joined it.
pub(super) struct Generation {
    /// Its connection, inside the transaction; `None` once a statement failed on it (the
    /// transaction is aborted: the reads still holding the generation fail too).
    conn: Mutex<Option<Conn>>,
    /// The commit count its snapshot sees.
    pub(super) epoch: i64,
    born: Instant,
    /// Where the connection goes back (a weak handle: the newest generation is kept in
    /// [`Shared`] itself).
    shared: Weak<Shared>,
}

impl Generation {
    /// Runs `f` on the generation's connection (waiting for another read of the generation
    /// using it). A failure ends the generation's use of the connection: its transaction is
    /// aborted, or the connection broke.
    pub(super) fn with<T>(
        &self,
        shared: &Shared,
        f: impl FnOnce(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        let mut slot = lock(&self.conn);
        let Some(c) = slot.as_mut() else {
            return Err(Error::Unavailable(
                "PostgreSQL: the read's shared snapshot failed".into(),
            ));
        };
        let out = f(c);
        if let Err(e) = &out {
            drop(slot.take());
            shared.reader_failed(e);
        }
        out
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        let Some(c) = lock(&self.conn).take() else {
            return;
        };
        match self.shared.upgrade() {
            Some(shared) => shared.give_reader(c),
            // The database is being closed: `Shared`'s drop moved this generation to the
            // thread that closes connections.
            None => drop(c),
        }
    }
}

/// The generations of one database: the newest, and the round trip in flight.
#[derive(Default)]
pub(super) struct Generations {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Round trips started so far; each generation is numbered by its round trip.
    started: u64,
    /// Whether a round trip is in flight (the reads arriving now wait for the next).
    running: bool,
    /// The newest generation and its number.
    newest: Option<(u64, Arc<Generation>)>,
    /// The newest round trip that failed: its number, whether the server was unavailable,
    /// what it said.
    failed: Option<(u64, bool, String)>,
}

impl Generations {
    /// Forgets the newest generation if it is older than [`IDLE_READ`] and nothing is in
    /// flight, and hands it back (dropped by the caller, outside the lock).
    pub(super) fn forget_stale(&self) -> Option<Arc<Generation>> {
        let mut st = lock(&self.state);
        let stale = st
            .newest
            .as_ref()
            .is_some_and(|(_, g)| g.born.elapsed() >= IDLE_READ);
        if stale {
            st.newest.take().map(|(_, g)| g)
        } else {
            None
        }
    }

    /// The newest generation, taken out (when the database closes).
    pub(super) fn take(&self) -> Option<Arc<Generation>> {
        lock(&self.state).newest.take().map(|(_, g)| g)
    }
}

impl Shared {
    /// A generation whose snapshot was taken after this call began: the first round trip to
    /// start after it (a round trip in flight may have started before). When none is in
    /// flight, this read makes the round trip itself, and the reads arriving meanwhile wait
    /// for the one after it.
    pub(super) fn join(self: &Arc<Self>) -> Result<Arc<Generation>> {
        let gens = &self.generations;
        let mut st = lock(&gens.state);
        let needed = st.started + 1;
        loop {
            if let Some((n, g)) = &st.newest
                && *n >= needed
            {
                return Ok(Arc::clone(g));
            }
            if let Some((n, unavailable, what)) = &st.failed
                && *n >= needed
            {
                let what = what.clone();
                return Err(if *unavailable {
                    Error::Unavailable(what)
                } else {
                    Error::Storage(what)
                });
            }
            if st.running {
                st = gens.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.running = true;
            st.started += 1;
            let n = st.started;
            // A newest generation no read holds any more lends its connection to the next:
            // no connection taken from the pool, none to hand back.
            let idle = match &st.newest {
                Some((_, g)) if Arc::strong_count(g) == 1 => st.newest.take(),
                _ => None,
            };
            drop(st);
            let lent = idle.and_then(|(_, g)| lock(&Arc::into_inner(g)?.conn).take());
            let opened = self.open_generation(lent);
            st = lock(&gens.state);
            st.running = false;
            let replaced = match opened {
                Ok(g) => st.newest.replace((n, Arc::new(g))),
                Err(e) => {
                    let unavailable = matches!(e, Error::Unavailable(_));
                    st.failed = Some((n, unavailable, e.to_string()));
                    None
                }
            };
            gens.done.notify_all();
            if replaced.is_some() {
                // Its connection goes back to the pool (a lock of its own) once unlocked.
                drop(st);
                drop(replaced);
                st = lock(&gens.state);
            }
        }
    }

    /// The round trip of a generation: its read begun on `lent`, or a pooled connection.
    fn open_generation(self: &Arc<Self>, lent: Option<Conn>) -> Result<Generation> {
        let (c, epoch) = self.open_read(lent)?;
        Ok(Generation {
            conn: Mutex::new(Some(c)),
            epoch,
            born: Instant::now(),
            shared: Arc::downgrade(self),
        })
    }
}

/// Snapshots asked for without waiting ([`crate::Bespin::request_snapshot_later`]), and the
/// thread that makes them: it joins a generation for everything asked before it began to
/// (so each snapshot was taken after its asking), hands each its share, and goes on with what
/// was asked meanwhile. The generations are the ones blocking reads join: a server's
/// requests asked for this way and its streams' reads on the blocking pool share round trips.
#[derive(Default)]
pub(super) struct Later {
    state: Mutex<LaterState>,
    asked: Condvar,
}

#[derive(Default)]
struct LaterState {
    waiting: Vec<SnapshotLater>,
    /// The database is closing: nothing more is served.
    closed: bool,
}

impl Later {
    /// Asks for a snapshot for `done`; `done` back when the database is closing.
    pub(super) fn ask(&self, done: SnapshotLater) -> Option<SnapshotLater> {
        let mut st = lock(&self.state);
        if st.closed {
            return Some(done);
        }
        st.waiting.push(done);
        drop(st);
        self.asked.notify_one();
        None
    }

    /// Closes: what is still asked, for the caller to fail.
    pub(super) fn close(&self) -> Vec<SnapshotLater> {
        let mut st = lock(&self.state);
        st.closed = true;
        let left = std::mem::take(&mut st.waiting);
        drop(st);
        self.asked.notify_all();
        left
    }

    /// What was asked so far, once there is any; `None` once closed.
    fn next(&self) -> Option<Vec<SnapshotLater>> {
        let mut st = lock(&self.state);
        loop {
            if st.closed {
                return None;
            }
            if !st.waiting.is_empty() {
                return Some(std::mem::take(&mut st.waiting));
            }
            st = self.asked.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Starts the thread that serves [`Later::ask`] while `shared` is open (it holds it only
    /// while serving, so the database's last handle closes it).
    pub(super) fn start(shared: &Arc<Shared>) -> Result<()> {
        let weak = Arc::downgrade(shared);
        let later = Arc::clone(&shared.later);
        std::thread::Builder::new()
            .name("bespin-pg-later".into())
            .spawn(move || {
                while let Some(asked) = later.next() {
                    let Some(shared) = weak.upgrade() else {
                        for done in asked {
                            done(Err(Error::Unavailable("the database is closing".into())));
                        }
                        return;
                    };
                    // A generation whose round trip began after every one of `asked` did. A
                    // panic fails these requests, not the ones asked after them.
                    let joined =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.join()))
                            .unwrap_or_else(|_| {
                                Err(Error::Internal("a shared snapshot's start panicked".into()))
                            });
                    for done in asked {
                        done(match &joined {
                            Ok(g) => Ok(Box::new(PgSnapshot::joined(&shared, Arc::clone(g)))),
                            Err(e) => Err(e.clone()),
                        });
                    }
                }
            })
            .map(drop)
            .map_err(|e| Error::Internal(format!("cannot start the PostgreSQL reads' thread: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::store::reader::Reader;
    use crate::store::tests::{ROWS, TEST_TABLES, key, open_at, place, put, session_of};
    use crate::store::{Store, is_url};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Reads that start while a generation's round trip is in flight share the next one: eight
    /// reads started while PostgreSQL holds the first one's statement (the commit count's
    /// table locked by another session) cost at most four round trips between them (the
    /// held one, the one they share, and the connections they may open), where reads of
    /// their own cost eight at least.
    #[test]
    fn reads_starting_together_share_one_round_trip() {
        let Some(url) = crate::test_database_url() else {
            return;
        };
        let s = Store::open_url(&url, TEST_TABLES).unwrap();
        let trips = eight_reads_started_together(&s, &url);
        assert!(
            trips <= 4,
            "{trips} round trips for eight reads started together"
        );
    }

    /// Right after another process's commit, the same eight reads take snapshots of their
    /// own (eight round trips at least): its commits empty the row cache, and misses of one
    /// shared snapshot would take turns on one connection.
    #[test]
    fn reads_take_snapshots_of_their_own_while_another_process_commits() {
        let Some(url) = crate::test_database_url() else {
            return;
        };
        let s = Store::open_url(&url, TEST_TABLES).unwrap();
        let other = Store::open_url(&url, TEST_TABLES).unwrap();
        // This process knows a count (its own commit's); then the other commits.
        let mut b = s.begin(true).unwrap();
        put(&mut b, &key("t", "b", 1, 2), "this");
        b.commit().unwrap();
        let mut b = other.begin(true).unwrap();
        put(&mut b, &key("t", "b", 1, 1), "other");
        b.commit().unwrap();
        let trips = eight_reads_started_together(&s, &url);
        assert!(
            trips >= 8,
            "{trips} round trips for eight reads started together"
        );
    }

    /// Round trips of eight reads of a cached row started while PostgreSQL holds the first
    /// one's statement (another session holds the commit count's table locked).
    fn eight_reads_started_together(s: &Store, url: &str) -> u64 {
        let mut b = s.begin(true).unwrap();
        put(&mut b, &key("t", "a", 1, 1), "one");
        b.commit().unwrap();
        let k = key("t", "a", 1, 1);
        // The row in the cache, and two connections in the pool.
        for _ in 0..2 {
            let (r1, r2) = (s.read().unwrap(), s.read().unwrap());
            assert!(r1.contains(&ROWS, &k).unwrap() && r2.contains(&ROWS, &k).unwrap());
        }
        let (schema, mut blocker) = session_of(url);
        blocker
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE \"{schema}\".bespin_meta IN ACCESS EXCLUSIVE MODE"
            ))
            .unwrap();
        let before = s.round_trips().unwrap();
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| s.read().unwrap().get(&ROWS, &k).unwrap()))
                .collect();
            // Every reader waits: the first on the lock, the others for the round trip after.
            std::thread::sleep(Duration::from_millis(300));
            blocker.batch_execute("COMMIT").unwrap();
            for r in readers {
                assert_eq!(r.join().unwrap().as_deref(), Some("one"));
            }
        });
        s.round_trips().unwrap() - before
    }

    /// However reads share snapshots, each read sees every commit acknowledged before it
    /// started — of its own process or another — while other reads keep starting (so a
    /// round trip is nearly always in flight when it starts, and one that started before the
    /// commit must not serve it). On both backends.
    #[test]
    fn a_read_sees_every_commit_made_before_it_while_reads_keep_starting() {
        let (_dir, at) = place();
        let s = open_at(&at);
        // Another process (PostgreSQL; a redb file has one).
        let second = is_url(&at).then(|| open_at(&at));
        let readers = [Some(&s), second.as_ref()];
        let k = key("t", "n", 1, 1);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for r in readers.iter().flatten() {
                for _ in 0..2 {
                    scope.spawn(|| {
                        while !stop.load(Ordering::Relaxed) {
                            r.read().unwrap().get(&ROWS, &k).unwrap();
                        }
                    });
                }
            }
            // The readers stop however this thread ends (a failed assertion included).
            struct Stop<'a>(&'a AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _stop = Stop(&stop);
            for n in 1..=150u32 {
                let mut b = s.begin(true).unwrap();
                put(&mut b, &k, &n.to_string());
                b.commit().unwrap();
                for r in readers.iter().flatten() {
                    let seen = r.read().unwrap().get(&ROWS, &k).unwrap();
                    assert_eq!(seen, Some(n.to_string()), "a read after commit {n}");
                }
            }
        });
    }
}
