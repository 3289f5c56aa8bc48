//! Group commit: concurrent operations share one write transaction and one fsync.
//!
//! redb has a single writer, so operations are serialised anyway; what costs is the fsync at
//! each commit. Here a caller takes the shared transaction (opening one if none is open), runs
//! its operation in it, and then either commits the batch itself — when nobody else is queued to
//! add an operation — or waits until a later caller commits it. Every caller returns only after
//! the batch holding its operation is durable, so an acknowledged write is never lost.
//!
//! Isolation: before an operation runs, the position of the transaction's undo log is taken; if
//! the operation fails (or panics) its own changes are undone, and only its caller sees the
//! error. A failed commit fails every operation of that batch, none of which was acknowledged.

use crate::error::{Error, Result};
use crate::store::{Batch, Store, WriteTx};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

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

/// Batches operations into shared transactions.
pub(crate) struct Committer {
    shared: Mutex<Shared>,
    done: Condvar,
    queued: AtomicUsize,
    max_batch: usize,
    durable: bool,
}

/// Upper bounds of the batch-size histogram buckets (operations per commit).
pub const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
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
}

fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

impl Committer {
    pub(crate) fn new(max_batch: usize, durable: bool) -> Self {
        Committer {
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
            max_batch: max_batch.max(1),
            durable,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` in the shared transaction and returns once its batch is committed.
    pub(crate) fn run<T>(
        &self,
        store: &Store,
        op: impl FnOnce(&mut WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
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
            let tx = g.tx.take();
            let started = std::time::Instant::now();
            let error = match tx {
                Some(tx) => tx.commit().err(),
                None => Some(Error::Internal("no open batch".into())),
            };
            let took = started.elapsed().as_secs_f64();
            g.stats.commit_seconds[bucket(&COMMIT_SECONDS_BUCKETS, took)] += 1;
            g.stats.commit_seconds_sum += took;
            self.finish(&mut g, error.clone());
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

    /// Commits and operations so far.
    pub(crate) fn stats(&self) -> CommitStats {
        self.lock().stats
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
