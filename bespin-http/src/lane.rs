//! The background lane: where a request's expensive work runs — a search past its first few
//! index entries, a body over [`crate::pipeline::LARGE_BODY`], bulk ingest — so that it
//! cannot slow down the cheap requests of others.
//!
//! Two things make it fair:
//! - its threads run at the lowest CPU priority (nice 19 on Linux): whenever a runtime worker
//!   or the writer wants a core, it gets it, and the lane has what they leave;
//! - it takes turns across its callers (tenants, or clients for unauthenticated requests):
//!   each turn runs one job of the next caller with work waiting, so a caller with a hundred
//!   queued jobs delays another's single job by one job, not a hundred. Each caller may have
//!   only so many jobs waiting; past that, `Busy` (503 with `Retry-After`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

type Job = Box<dyn FnOnce() + Send>;

/// Why the lane did not run a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The caller has as many jobs waiting as it may.
    Busy,
    /// The job panicked.
    Panicked,
}

#[derive(Default)]
struct Queues {
    /// Waiting jobs by caller.
    jobs: HashMap<String, VecDeque<Job>>,
    /// Callers with jobs waiting, in turn order.
    turn: VecDeque<String>,
    /// The lane was dropped: its threads finish what waits, then end.
    closed: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

/// The lane: a few low-priority threads and the callers' queues. Dropping it ends its threads
/// once the jobs already waiting are done.
pub struct Lane {
    shared: Arc<Shared>,
    per_caller: usize,
}

impl Lane {
    /// A lane of `threads` threads; each caller may have `per_caller` jobs waiting.
    pub fn new(threads: usize, per_caller: usize) -> Lane {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("bespin-lane-{i}"))
                .spawn(move || {
                    lowest_priority();
                    work(&s);
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a lane thread: {e}");
            }
        }
        Lane {
            shared,
            per_caller: per_caller.max(1),
        }
    }

    /// Runs `f` in the lane in `caller`'s turn and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        caller: String,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (send, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = send.send(out);
        });
        {
            let mut q = lock(&self.shared);
            let waiting = q.jobs.entry(caller.clone()).or_default();
            if waiting.len() >= self.per_caller {
                return Err(Refused::Busy);
            }
            waiting.push_back(job);
            if waiting.len() == 1 {
                q.turn.push_back(caller);
            }
        }
        self.shared.ready.notify_one();
        match result.await {
            Ok(Ok(v)) => Ok(v),
            _ => Err(Refused::Panicked),
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.ready.notify_all();
    }
}

fn lock(s: &Shared) -> MutexGuard<'_, Queues> {
    s.queues.lock().unwrap_or_else(|p| p.into_inner())
}

/// A lane thread: the next caller's next job, until the lane is dropped and nothing waits.
fn work(s: &Shared) {
    loop {
        let job = {
            let mut q = lock(s);
            loop {
                if let Some(caller) = q.turn.pop_front() {
                    let Some(waiting) = q.jobs.get_mut(&caller) else {
                        continue;
                    };
                    let job = waiting.pop_front();
                    if waiting.is_empty() {
                        q.jobs.remove(&caller);
                    } else {
                        q.turn.push_back(caller);
                    }
                    if let Some(job) = job {
                        break job;
                    }
                } else if q.closed {
                    return;
                } else {
                    q = s.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            }
        };
        job();
    }
}

/// Lowers the calling thread's CPU priority as far as it goes (Linux: nice 19, which applies
/// to the thread alone). Elsewhere the lane keeps its turns but not the priority.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 19) {
        tracing::warn!("cannot lower the lane's priority: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_take_turns_and_each_has_a_bounded_queue() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let lane = Arc::new(Lane::new(1, 3));
            // Hold the lane's only thread.
            let (release, held) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::spawn({
                let lane = Arc::clone(&lane);
                async move { lane.run("x".into(), move || held.recv().is_ok()).await }
            });
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut waiting = Vec::new();
            for (caller, n) in [("a", 1), ("a", 2), ("a", 3), ("b", 1)] {
                let (lane, order) = (Arc::clone(&lane), Arc::clone(&order));
                waiting.push(tokio::spawn(async move {
                    lane.run(caller.to_owned(), move || {
                        order.lock().expect("order").push(format!("{caller}{n}"))
                    })
                    .await
                }));
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(
                lane.run("a".into(), || ()).await,
                Err(Refused::Busy),
                "a has three waiting"
            );
            release.send(()).expect("release");
            assert_eq!(blocker.await.expect("join"), Ok(true));
            for w in waiting {
                assert_eq!(w.await.expect("join"), Ok(()));
            }
            // b's one job ran after a's first, not after all of a's.
            assert_eq!(*order.lock().expect("order"), ["a1", "b1", "a2", "a3"]);
            assert_eq!(
                lane.run("c".into(), || panic!("boom")).await,
                Err::<(), _>(Refused::Panicked)
            );
        });
    }
}
