//! Group commit: concurrent operations share one write transaction and one fsync.
//!
//! redb has a single writer, so operations are serialised anyway; what costs is the fsync at
//! each commit, and — on a machine with few cores — handing the writer from thread to thread.
//! Two kinds of caller share one open batch:
//!
//! - **The writer thread** ([`Committer::submit`]). An operation ([`Op`]) is queued with the
//!   completer of its [`Pending`](crate::op::Pending) and run on one long-lived thread, which
//!   keeps taking queued operations into the open batch until the queue is empty (or the batch
//!   is full), then commits once and settles each operation's pending with its value or the
//!   commit's error. Under load a request costs no thread switch inside the database at all,
//!   and the thread runs nothing but core operations.
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
use crate::idempotency::{self, Ahead};
use crate::op::{Completer, Op};
use crate::store::{Batch, Store, WriteTx};
use crate::time::Clock;
use crate::{Ctx, Options};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// An operation queued for the writer thread, with where its outcome goes.
trait Queued: Send {
    /// Runs the operation in `batch`: `Ok(true)` when it succeeded (its writes stay in the
    /// batch until the commit), `Ok(false)` when it failed and was rolled back (its caller has
    /// its error already); `Err` when the batch can no longer be trusted (the rollback failed).
    fn run(&mut self, batch: &mut Batch, ctx: &Ctx) -> Result<bool>;
    /// Settles the outcome once the batch it ran in is committed (`commit` is the commit's
    /// error, if it failed) or abandoned.
    fn finish(self: Box<Self>, commit: Option<&Error>);
    /// The idempotency record the operation will look up first, if it named one
    /// ([`Op::reading_ahead`]), while it has not run.
    fn ahead(&self) -> Option<&Ahead>;
}

/// An [`Op`] on its way through the writer: the op until it runs, then its value until the
/// commit.
struct Submitted<T> {
    op: Option<Op<T>>,
    value: Option<T>,
    done: Option<Completer<T>>,
    /// Settle as soon as the operation ran, without waiting for the commit (see
    /// [`crate::Bespin::submit_deferred`]).
    early: bool,
}

impl<T: Send + 'static> Queued for Submitted<T> {
    fn run(&mut self, batch: &mut Batch, ctx: &Ctx) -> Result<bool> {
        let Some(op) = self.op.take() else {
            return Ok(false);
        };
        // An operation that writes nothing (a probe) is settled in its turn and adds nothing
        // to the batch, so it never causes a commit of its own.
        let writes = op.writes;
        let out = batch.run(|tx: &mut WriteTx| op.call(tx, ctx));
        let done = self.done.take();
        match out {
            Ok(Ok(v)) if writes && !self.early => {
                self.value = Some(v);
                self.done = done;
                Ok(true)
            }
            Ok(out) => {
                let counts = writes && out.is_ok();
                if let Some(d) = done {
                    d.complete(out);
                }
                Ok(counts)
            }
            Err(e) => {
                if let Some(d) = done {
                    d.complete(Err(e.clone()));
                }
                Err(e)
            }
        }
    }

    fn ahead(&self) -> Option<&Ahead> {
        self.op.as_ref()?.ahead.as_ref()
    }

    fn finish(self: Box<Self>, commit: Option<&Error>) {
        let Submitted { value, done, .. } = *self;
        if let Some(d) = done {
            d.complete(match (value, commit) {
                (_, Some(e)) => Err(e.clone()),
                (Some(v), None) => Ok(v),
                (None, None) => Err(Error::Internal("the operation did not run".into())),
            });
        }
    }
}

type Job = Box<dyn Queued>;

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
    /// Callers of [`Committer::run`] waiting for a later caller's commit: `done` is signalled
    /// only when there is one (a signal is a system call even when nobody waits).
    blocked: usize,
}

/// The writer thread and the queue that feeds it (each job with the instant it was queued).
struct Writer {
    jobs: SyncSender<(Job, Instant)>,
    thread: std::thread::JoinHandle<()>,
}

/// Batches operations into shared transactions.
pub(crate) struct Committer {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    options: Options,
    shared: Mutex<Shared>,
    done: Condvar,
    /// Threads other than the writer waiting to take the shared batch.
    queued: AtomicUsize,
    /// Jobs queued for the writer thread and not yet taken by it.
    writer_queue: AtomicUsize,
    writer: Mutex<Option<Writer>>,
    /// Subscribers of the event log, woken after each commit (see `events::hub`).
    hub: Arc<crate::events::hub::Hub>,
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

/// An operation of [`Committer::run_batch_for_test`].
#[cfg(test)]
pub(crate) type TestOp<'a> = Box<dyn FnOnce(&mut WriteTx<'_, '_>, &Ctx) -> Result<()> + 'a>;

impl Committer {
    pub(crate) fn new(store: Arc<Store>, clock: Arc<dyn Clock>, options: Options) -> Self {
        Committer {
            store,
            clock,
            options,
            shared: Mutex::new(Shared {
                tx: None,
                pending: 0,
                batch: 0,
                finished_upto: 0,
                failed: Vec::new(),
                stats: CommitStats::default(),
                blocked: 0,
            }),
            done: Condvar::new(),
            queued: AtomicUsize::new(0),
            writer_queue: AtomicUsize::new(0),
            writer: Mutex::new(None),
            hub: Arc::default(),
        }
    }

    /// The event log's wake-up hub.
    pub(crate) fn hub(&self) -> &crate::events::hub::Hub {
        &self.hub
    }

    pub(crate) fn hub_arc(&self) -> &Arc<crate::events::hub::Hub> {
        &self.hub
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job the writer took off its queue, counted out of it (with the time it waited).
    fn taken(&self, g: &mut MutexGuard<'_, Shared>, (job, queued_at): (Job, Instant)) -> Job {
        self.writer_queue.fetch_sub(1, Ordering::Relaxed);
        let waited = queued_at.elapsed().as_secs_f64();
        g.stats.queue_wait_seconds[bucket(&QUEUE_WAIT_SECONDS_BUCKETS, waited)] += 1;
        g.stats.queue_wait_seconds_sum += waited;
        job
    }

    fn max_batch(&self) -> usize {
        self.options.max_batch.max(1)
    }

    /// The operation context for now.
    pub(crate) fn ctx(&self) -> Ctx {
        Ctx {
            now: self.clock.now(),
            options: self.options.clone(),
            hub: Arc::clone(&self.hub),
            idempotency_key: None,
        }
    }

    /// Runs `op` in the shared transaction and returns once its batch is committed. Never call
    /// it from an operation (the writer thread holds the batch: that would wait for ever).
    pub(crate) fn run<T>(
        &self,
        op: impl FnOnce(&mut WriteTx<'_, '_>, &Ctx) -> Result<T>,
    ) -> Result<T> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if g.tx.is_none() {
            g.tx = Some(self.store.begin(self.options.durable)?);
        }
        let outcome = {
            let Some(batch) = g.tx.as_mut() else {
                return Err(Error::Internal("no open batch".into()));
            };
            let ctx = self.ctx();
            match batch.run(|tx| op(tx, &ctx)) {
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
            // Nothing of ours to commit; the open (empty) batch stays for the next caller,
            // unless other processes share the database: it holds their writes back.
            if self.store.shared_with_others() {
                g.tx = None;
            }
            return outcome;
        }
        if self.queued.load(Ordering::SeqCst) == 0 || g.pending >= self.max_batch() {
            let error = self.commit_open(&mut g);
            return match (outcome, error) {
                (Ok(v), None) => Ok(v),
                (Ok(_), Some(e)) => Err(e),
                (Err(e), _) => Err(e),
            };
        }
        let value = outcome?;
        while g.finished_upto <= my_batch {
            g.blocked += 1;
            g = self.done.wait(g).unwrap_or_else(|p| p.into_inner());
            g.blocked -= 1;
        }
        match g.failed.iter().find(|(b, _)| *b == my_batch) {
            None => Ok(value),
            Some((_, e)) => Err(e.clone()),
        }
    }

    /// Test-only: runs `ops` one after another in one batch (each rolled back alone if it
    /// fails, as the writer does) and commits it once; returns each one's outcome.
    #[cfg(test)]
    pub(crate) fn run_batch_for_test(&self, ops: Vec<TestOp<'_>>) -> Result<Vec<Result<()>>> {
        let mut g = self.lock();
        let mut batch = match g.tx.take() {
            Some(b) => b,
            None => self.store.begin(self.options.durable)?,
        };
        let ctx = self.ctx();
        let mut out = Vec::new();
        for op in ops {
            out.push(batch.run(|tx| op(tx, &ctx))?);
        }
        g.tx = Some(batch);
        g.pending += 1;
        match self.commit_open(&mut g) {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Queues `op` for the writer thread, starting the thread on first use; `done` is settled
    /// once the batch holding it is durable (with `early`, as soon as it ran). A full queue
    /// settles it at once with `Overloaded` (the op is dropped unrun).
    pub(crate) fn submit<T: Send + 'static>(
        self: &Arc<Self>,
        op: Op<T>,
        done: Completer<T>,
        early: bool,
    ) {
        let job = Box::new(Submitted {
            op: Some(op),
            value: None,
            done: Some(done),
            early,
        });
        if let Err((job, e)) = self.queue(job) {
            job.finish(Some(&e));
        }
    }

    /// Puts `job` on the writer's queue; gives it back with the reason when it cannot.
    fn queue(self: &Arc<Self>, job: Job) -> std::result::Result<(), (Job, Error)> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            let (jobs, queue) = std::sync::mpsc::sync_channel(self.options.writer_queue.max(1));
            let me = Arc::clone(self);
            match std::thread::Builder::new()
                .name("bespin-writer".into())
                .spawn(move || me.writer_loop(&queue))
            {
                Ok(thread) => *w = Some(Writer { jobs, thread }),
                Err(e) => {
                    let e = Error::Internal(format!("cannot start the writer thread: {e}"));
                    return Err((job, e));
                }
            }
        }
        let Some(w) = w.as_ref() else {
            return Err((job, Error::Internal("no writer thread".into())));
        };
        self.writer_queue.fetch_add(1, Ordering::Relaxed);
        w.jobs.try_send((job, Instant::now())).map_err(|e| {
            self.writer_queue.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full((job, _)) => (job, Error::Overloaded),
                TrySendError::Disconnected((job, _)) => {
                    (job, Error::Internal("the writer thread has stopped".into()))
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

    /// The writer thread: one batch per turn, holding every operation queued meanwhile.
    fn writer_loop(&self, queue: &Receiver<(Job, Instant)>) {
        while let Ok(first) = queue.recv() {
            // Let threads waiting to add their own operation in first, so they are not starved.
            for _ in 0..64 {
                if self.queued.load(Ordering::SeqCst) == 0 {
                    break;
                }
                std::thread::yield_now();
            }
            let mut g = self.lock();
            let mut batch = match g.tx.take() {
                Some(b) => Ok(b),
                None => self.store.begin(self.options.durable),
            };
            let room = self.max_batch().saturating_sub(g.pending);
            let mut ran = 0usize;
            // Operations that succeeded, settled once their batch is committed.
            let mut waiting: Vec<Job> = Vec::new();
            // Operations taken off the queue with the one running, whose idempotency records
            // were read ahead with its own; never more than the batch has room for, so each
            // of them runs in this batch.
            let mut ahead: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
            let mut next = Some(self.taken(&mut g, first));
            while let Some(mut job) = next.take() {
                let open = match &mut batch {
                    Ok(open) => open,
                    // The batch could not begin: this operation fails with it.
                    Err(e) => {
                        job.finish(Some(e));
                        break;
                    }
                };
                if ahead.is_empty() {
                    // A new run of operations: take whatever else is queued now, and read the
                    // idempotency records they all look up first at once.
                    while ran + 1 + ahead.len() < room {
                        let Ok(more) = queue.try_recv() else { break };
                        ahead.push_back(self.taken(&mut g, more));
                    }
                    let named = std::iter::once(&job)
                        .chain(ahead.iter())
                        .filter_map(|j| j.ahead());
                    if let Err(e) = open.run(|tx| idempotency::prefetch(tx, named)) {
                        // Reading wrote nothing, so this cannot happen; if it did, the batch
                        // is not to be trusted, like a failed rollback.
                        batch = Err(e);
                        ahead.push_front(job);
                        break;
                    }
                }
                match job.run(open, &self.ctx()) {
                    Ok(true) => {
                        ran += 1;
                        waiting.push(job);
                    }
                    Ok(false) => job.finish(None),
                    Err(e) => {
                        // The rollback failed: nothing of this batch can be trusted.
                        batch = Err(e);
                        break;
                    }
                }
                next = ahead.pop_front().or_else(|| {
                    (ran < room)
                        .then(|| queue.try_recv().ok())
                        .flatten()
                        .map(|j| self.taken(&mut g, j))
                });
            }
            // Operations read ahead of a batch that failed fail with it.
            if let Err(e) = &batch {
                for job in ahead.drain(..) {
                    job.finish(Some(e));
                }
            }
            let error = match batch {
                Ok(open) => {
                    g.tx = Some(open);
                    g.pending += ran;
                    if g.pending == 0 {
                        // Nothing to commit; the empty batch stays open for the next caller
                        // (rolled back when other processes share the database: an open
                        // batch holds the write lock they wait for).
                        if self.store.shared_with_others() {
                            g.tx = None;
                        }
                        None
                    } else {
                        self.commit_open(&mut g)
                    }
                }
                Err(e) => {
                    g.tx = None;
                    self.finish(&mut g, Some(e.clone()));
                    Some(e)
                }
            };
            drop(g);
            for job in waiting {
                job.finish(error.as_ref());
            }
        }
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
        // The commit is visible to new snapshots now: subscribers may read it.
        self.hub.publish();
        self.finish(g, error.clone());
        error
    }

    /// Operations waiting for the writer thread (without the committer's lock, so it answers
    /// while the writer is busy).
    pub(crate) fn queue_depth(&self) -> usize {
        self.writer_queue.load(Ordering::Relaxed)
    }

    /// Commits and operations so far.
    pub(crate) fn stats(&self) -> CommitStats {
        let mut stats = self.lock().stats;
        stats.queue_depth = self.queue_depth() as u64;
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
        if g.blocked > 0 {
            self.done.notify_all();
        }
    }
}
