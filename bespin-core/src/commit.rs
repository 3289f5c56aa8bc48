//! Group commit: concurrent operations share one write transaction and one fsync.
//!
//! redb has a single writer, so operations are serialised anyway; what costs is the fsync at
//! each commit, and — on a machine with few cores — handing the writer from thread to thread.
//! Two kinds of caller share one open batch:
//!
//! - **The writer thread** ([`Committer::submit`]). A job (for the server, a whole request
//!   handler) is queued and run on one long-lived thread; every write the job makes joins the
//!   open batch, and the thread keeps taking queued jobs until the queue is empty (or the batch
//!   is full), then commits once and calls each job's finisher with the outcome. Under load a
//!   request costs no thread switch inside the database at all.
//! - **Any other thread** ([`Committer::run`]). The caller takes the shared batch (opening one
//!   if none is open), runs its operation in it, and then either commits the batch itself —
//!   when nobody else is queued to add an operation — or waits until a later caller commits it.
//!
//! Either way a caller is answered only after the batch holding its operation is durable, so an
//! acknowledged write is never lost.
//!
//! Isolation: before an operation runs, the position of the transaction's undo log is taken; if
//! the operation fails (or panics) its own changes are undone, and only its caller sees the
//! error. A failed commit fails every operation of that batch, none of which was acknowledged.

use crate::error::{Error, Result};
use crate::store::{Batch, Store, WriteTx};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Called once the batch holding a job's writes is committed, with the commit's error if it
/// failed (`None` also when the job made no successful write, which needs no commit).
pub type Finisher = Box<dyn FnOnce(Option<&Error>) + Send>;

/// Work for the writer thread: runs there and returns what to do once its writes are durable.
pub type Job = Box<dyn FnOnce() -> Finisher + Send>;

thread_local! {
    /// On a writer thread: the committer it writes for (0 elsewhere).
    static WRITER_OF: Cell<u64> = const { Cell::new(0) };
    /// On a writer thread, while it runs jobs: the batch they write into.
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
}

/// Distinguishes committers (several databases can be open in one process).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The batch a writer thread is filling.
struct Open {
    batch: Option<Batch>,
    /// Successful operations run into it by this thread's jobs.
    pending: usize,
    /// Set when the batch can no longer be trusted (a rollback failed, or it could not begin).
    broken: Option<Error>,
}

struct Shared {
    /// The open batch, if any.
    tx: Option<Batch>,
    /// Successful operations in the open batch.
    pending: usize,
    /// Number of the open batch.
    batch: u64,
    /// Every batch numbered below this one is finished.
    finished_upto: u64,
    /// The recent batches that failed, with their error (failures are rare; kept bounded).
    failed: Vec<(u64, Error)>,
    /// Counters.
    stats: CommitStats,
}

/// The writer thread and the queue that feeds it (each job with the instant it was queued).
struct Writer {
    jobs: SyncSender<(Job, Instant)>,
    thread: std::thread::JoinHandle<()>,
}

/// Batches operations into shared transactions.
pub(crate) struct Committer {
    id: u64,
    shared: Mutex<Shared>,
    done: Condvar,
    /// Threads other than the writer waiting to take the shared batch.
    queued: AtomicUsize,
    /// Jobs queued for the writer thread and not yet taken by it.
    writer_queue: AtomicUsize,
    max_batch: usize,
    durable: bool,
    /// The most jobs waiting for the writer thread.
    queue_bound: usize,
    writer: Mutex<Option<Writer>>,
}

/// Upper bounds of the batch-size histogram buckets (operations per commit).
pub const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Upper bounds of the histogram buckets of the time a job waits in the writer's queue before
/// the writer runs it (and its writes join a batch), in seconds.
pub const QUEUE_WAIT_SECONDS_BUCKETS: [f64; 10] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0,
];
/// Upper bounds of the commit-latency histogram buckets, in seconds.
pub const COMMIT_SECONDS_BUCKETS: [f64; 10] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5,
];

/// Counters for monitoring: commits, operations, and histograms of batch sizes and commit
/// latency (per-bucket counts, not cumulative; the last slot counts values above every bound).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitStats {
    /// Commits performed.
    pub commits: u64,
    /// Operations committed.
    pub operations: u64,
    /// Commits by batch size, per [`BATCH_SIZE_BUCKETS`] (+ overflow).
    pub batch_sizes: [u64; 10],
    /// Commits by latency, per [`COMMIT_SECONDS_BUCKETS`] (+ overflow).
    pub commit_seconds: [u64; 11],
    /// Total time spent committing, in seconds.
    pub commit_seconds_sum: f64,
    /// Jobs waiting in the writer thread's queue now.
    pub queue_depth: u64,
    /// Jobs by the time they waited in the writer's queue, per
    /// [`QUEUE_WAIT_SECONDS_BUCKETS`] (+ overflow).
    pub queue_wait_seconds: [u64; 11],
    /// Total time jobs waited in the writer's queue, in seconds.
    pub queue_wait_seconds_sum: f64,
}

fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

impl Committer {
    pub(crate) fn new(max_batch: usize, durable: bool, queue_bound: usize) -> Self {
        Committer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared: Mutex::new(Shared {
                tx: None,
                pending: 0,
                batch: 0,
                finished_upto: 0,
                failed: Vec::new(),
                stats: CommitStats::default(),
            }),
            done: Condvar::new(),
            queued: AtomicUsize::new(0),
            writer_queue: AtomicUsize::new(0),
            max_batch: max_batch.max(1),
            durable,
            queue_bound: queue_bound.max(1),
            writer: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` in the shared transaction and returns once its batch is committed — or, on
    /// the writer thread, as soon as it ran (the writer answers its job's caller only after
    /// the commit, through the job's finisher).
    pub(crate) fn run<T>(
        &self,
        store: &Store,
        op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        if WRITER_OF.get() == self.id {
            return Self::run_in_open(op);
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if g.tx.is_none() {
            g.tx = Some(store.begin(self.durable)?);
        }
        let outcome = {
            let Some(batch) = g.tx.as_mut() else {
                return Err(Error::Internal("no open batch".into()));
            };
            match batch.run(op) {
                Ok(out) => out,
                Err(e) => {
                    // The rollback failed, so the batch cannot be trusted any more: drop it
                    // and fail everyone in it.
                    g.tx = None;
                    self.finish(&mut g, Some(e.clone()));
                    return Err(e);
                }
            }
        };
        let my_batch = g.batch;
        if outcome.is_ok() {
            g.pending += 1;
        }
        if g.pending == 0 {
            // Nothing of ours to commit; the open (empty) batch stays for the next caller.
            return outcome;
        }
        if self.queued.load(Ordering::SeqCst) == 0 || g.pending >= self.max_batch {
            let error = self.commit_open(&mut g);
            return match (outcome, error) {
                (Ok(v), None) => Ok(v),
                (Ok(_), Some(e)) => Err(e),
                (Err(e), _) => Err(e),
            };
        }
        let value = outcome?;
        while g.finished_upto <= my_batch {
            g = self.done.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        match g.failed.iter().find(|(b, _)| *b == my_batch) {
            None => Ok(value),
            Some((_, e)) => Err(e.clone()),
        }
    }

    /// Runs `op` in the batch the writer thread is filling.
    fn run_in_open<T>(op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T>) -> Result<T> {
        OPEN.with(|cell| {
            let mut slot = cell
                .try_borrow_mut()
                .map_err(|_| Error::Internal("a write inside a write".into()))?;
            let open = slot
                .as_mut()
                .ok_or_else(|| Error::Internal("no open batch".into()))?;
            if let Some(e) = &open.broken {
                return Err(e.clone());
            }
            let Some(batch) = open.batch.as_mut() else {
                return Err(Error::Internal("no open batch".into()));
            };
            match batch.run(op) {
                Ok(out) => {
                    if out.is_ok() {
                        open.pending += 1;
                    }
                    out
                }
                Err(e) => {
                    open.broken = Some(e.clone());
                    Err(e)
                }
            }
        })
    }

    /// Queues `job` for the writer thread, starting the thread on first use. Errors:
    /// `Overloaded` when the queue holds its bound already (the job is dropped unrun).
    pub(crate) fn submit(self: &Arc<Self>, store: &Arc<Store>, job: Job) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            let (jobs, queue) = std::sync::mpsc::sync_channel(self.queue_bound);
            let (me, store) = (Arc::clone(self), Arc::clone(store));
            let thread = std::thread::Builder::new()
                .name("bespin-writer".into())
                .spawn(move || me.writer_loop(&store, &queue))
                .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
            *w = Some(Writer { jobs, thread });
        }
        let Some(w) = w.as_ref() else {
            return Err(Error::Internal("no writer thread".into()));
        };
        self.writer_queue.fetch_add(1, Ordering::Relaxed);
        w.jobs.try_send((job, Instant::now())).map_err(|e| {
            self.writer_queue.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => Error::Overloaded,
                TrySendError::Disconnected(_) => {
                    Error::Internal("the writer thread has stopped".into())
                }
            }
        })
    }

    /// Stops the writer thread after the jobs already queued, and waits for it (unless called
    /// from it).
    pub(crate) fn shutdown(&self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(Writer { jobs, thread }) = writer {
            drop(jobs);
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    /// The writer thread: one batch per turn, holding every job queued meanwhile.
    fn writer_loop(&self, store: &Store, queue: &Receiver<(Job, Instant)>) {
        WRITER_OF.set(self.id);
        while let Ok(first) = queue.recv() {
            // Let threads waiting to add their own operation in first, so they are not starved.
            for _ in 0..64 {
                if self.queued.load(Ordering::SeqCst) == 0 {
                    break;
                }
                std::thread::yield_now();
            }
            let mut g = self.lock();
            let batch = match g.tx.take() {
                Some(b) => Ok(b),
                None => store.begin(self.durable),
            };
            let open = match batch {
                Ok(b) => Open {
                    batch: Some(b),
                    pending: 0,
                    broken: None,
                },
                // Every job of this turn then fails with the error.
                Err(e) => Open {
                    batch: None,
                    pending: 0,
                    broken: Some(e),
                },
            };
            let room = self.max_batch.saturating_sub(g.pending);
            OPEN.with_borrow_mut(|slot| *slot = Some(open));
            let mut waiting: Vec<Finisher> = Vec::new();
            let mut next = Some(first);
            while let Some((job, queued_at)) = next.take() {
                self.writer_queue.fetch_sub(1, Ordering::Relaxed);
                let waited = queued_at.elapsed().as_secs_f64();
                g.stats.queue_wait_seconds[bucket(&QUEUE_WAIT_SECONDS_BUCKETS, waited)] += 1;
                g.stats.queue_wait_seconds_sum += waited;
                let before = Self::open_pending();
                let finisher = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                // A job that panicked dropped its caller's reply channel while unwinding,
                // which is how that caller learns of it.
                if let Ok(f) = finisher {
                    if Self::open_pending() > before {
                        waiting.push(f);
                    } else {
                        f(None);
                    }
                }
                let stop = OPEN.with_borrow(|o| {
                    o.as_ref()
                        .is_none_or(|o| o.broken.is_some() || o.pending >= room)
                });
                if !stop {
                    next = queue.try_recv().ok();
                }
            }
            let Some(open) = OPEN.with_borrow_mut(Option::take) else {
                continue;
            };
            g.pending += open.pending;
            let error = match (open.broken, open.batch) {
                (None, Some(batch)) => {
                    g.tx = Some(batch);
                    if g.pending == 0 {
                        // Nothing to commit; the empty batch stays open for the next caller.
                        None
                    } else {
                        self.commit_open(&mut g)
                    }
                }
                (broken, _) => {
                    let e = broken.unwrap_or_else(|| Error::Internal("no open batch".into()));
                    g.tx = None;
                    self.finish(&mut g, Some(e.clone()));
                    Some(e)
                }
            };
            drop(g);
            for f in waiting {
                f(error.as_ref());
            }
        }
    }

    /// Successful operations in the writer thread's open batch.
    fn open_pending() -> usize {
        OPEN.with_borrow(|o| o.as_ref().map_or(0, |o| o.pending))
    }

    /// Commits the open batch, records the commit, and wakes its waiters; the commit's error,
    /// if it failed.
    fn commit_open(&self, g: &mut Shared) -> Option<Error> {
        let tx = g.tx.take();
        let started = Instant::now();
        let error = match tx {
            Some(tx) => tx.commit().err(),
            None => Some(Error::Internal("no open batch".into())),
        };
        let took = started.elapsed().as_secs_f64();
        g.stats.commit_seconds[bucket(&COMMIT_SECONDS_BUCKETS, took)] += 1;
        g.stats.commit_seconds_sum += took;
        self.finish(g, error.clone());
        error
    }

    /// Commits and operations so far.
    pub(crate) fn stats(&self) -> CommitStats {
        let mut stats = self.lock().stats;
        stats.queue_depth = self.writer_queue.load(Ordering::Relaxed) as u64;
        stats
    }

    /// Records the outcome of the open batch, starts the next one and wakes the waiters.
    fn finish(&self, g: &mut Shared, error: Option<Error>) {
        let batch = g.batch;
        match error {
            Some(e) => {
                g.failed.push((batch, e));
                if g.failed.len() > 1024 {
                    g.failed.drain(..512);
                }
            }
            None => {
                g.stats.commits += 1;
                g.stats.operations += g.pending as u64;
                g.stats.batch_sizes[bucket(&BATCH_SIZE_BUCKETS, g.pending as f64)] += 1;
            }
        }
        g.batch += 1;
        g.finished_upto = g.batch;
        g.pending = 0;
        self.done.notify_all();
    }
}
