//! A coarse timer for hyper's header-read timeout.
//!
//! hyper arms the header-read timer for every request a connection waits for, and drops it as
//! soon as the head is in — so almost no such timer ever fires. With tokio's timer each of them
//! is an entry in the runtime's one timer wheel, inserted and removed under the wheel's lock by
//! whichever worker runs the connection: on a read-heavy load that cost about a sixth of the
//! server's CPU (measured against a build without the timeout). This timer keeps its entries in
//! a few sharded slabs instead (no allocation once warm, an uncontended lock to arm and to
//! drop), and one task sweeps them every [`TICK`], waking the connections whose deadline has
//! passed. A deadline is honoured at most one tick late, which is all a timeout needs.

use hyper::rt::{Sleep, Timer};
use std::collections::BinaryHeap;
use std::cmp::Reverse;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the sweeper runs: the most a timeout fires late.
pub const TICK: Duration = Duration::from_millis(100);

const SHARDS: usize = 8;

/// The timer handed to hyper (cheap to clone; all clones share one wheel).
#[derive(Clone)]
pub struct CoarseTimer {
    wheel: Arc<Wheel>,
}

struct Wheel {
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// (deadline, slot, generation), earliest first; entries of dropped sleeps are skipped.
    due: BinaryHeap<Reverse<(Instant, u32, u32)>>,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    fired: bool,
    waker: Option<Waker>,
}

impl Wheel {
    fn shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl CoarseTimer {
    /// A timer whose sweeper runs on the current tokio runtime until the returned timer and
    /// every sleep made from it are dropped.
    pub fn start() -> CoarseTimer {
        let wheel = Arc::new(Wheel {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        });
        let weak = Arc::downgrade(&wheel);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(wheel) = weak.upgrade() else { return };
                wheel.sweep(Instant::now());
            }
        });
        CoarseTimer { wheel }
    }
}

impl Wheel {
    /// Marks every live sleep whose deadline has passed as fired and wakes its task.
    fn sweep(&self, now: Instant) {
        let mut wake = Vec::new();
        for i in 0..SHARDS {
            let mut s = self.shard(i);
            while let Some(Reverse((deadline, slot, generation))) = s.due.peek().copied() {
                if deadline > now {
                    break;
                }
                s.due.pop();
                let Some(e) = s.slots.get_mut(slot as usize) else {
                    continue;
                };
                if e.generation == generation {
                    e.fired = true;
                    wake.extend(e.waker.take());
                }
            }
        }
        for w in wake {
            w.wake();
        }
    }
}

impl Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(CoarseSleep {
            wheel: Arc::clone(&self.wheel),
            deadline,
            armed: None,
        })
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A sleep of [`CoarseTimer`]: armed (given a slot) on its first pending poll.
struct CoarseSleep {
    wheel: Arc<Wheel>,
    deadline: Instant,
    /// (shard, slot, generation) once armed.
    armed: Option<(usize, u32, u32)>,
}

impl Sleep for CoarseSleep {}

/// Spreads the threads arming sleeps over the shards.
fn home_shard() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    HOME.with(|h| *h)
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        match self.armed {
            Some((shard, slot, generation)) => {
                let mut s = self.wheel.shard(shard);
                match s.slots.get_mut(slot as usize) {
                    Some(e) if e.generation == generation && e.fired => Poll::Ready(()),
                    Some(e) if e.generation == generation => {
                        e.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                    _ => Poll::Ready(()),
                }
            }
            None => {
                let shard = home_shard();
                let deadline = self.deadline;
                let armed = {
                    let mut s = self.wheel.shard(shard);
                    let slot = match s.free.pop() {
                        Some(i) => i,
                        None => {
                            s.slots.push(Slot::default());
                            u32::try_from(s.slots.len() - 1).unwrap_or(u32::MAX)
                        }
                    };
                    let Some(e) = s.slots.get_mut(slot as usize) else {
                        return Poll::Ready(());
                    };
                    e.fired = false;
                    e.waker = Some(cx.waker().clone());
                    let generation = e.generation;
                    s.due.push(Reverse((deadline, slot, generation)));
                    (shard, slot, generation)
                };
                self.armed = Some(armed);
                Poll::Pending
            }
        }
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some((shard, slot, generation)) = self.armed {
            let mut s = self.wheel.shard(shard);
            if let Some(e) = s.slots.get_mut(slot as usize)
                && e.generation == generation
            {
                // A new generation: the sweeper skips this sleep's queued deadline.
                e.generation = e.generation.wrapping_add(1);
                e.waker = None;
                e.fired = false;
                s.free.push(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_fire_after_their_deadline_and_not_before() {
        let timer = CoarseTimer::start();
        let started = Instant::now();
        timer.sleep(Duration::from_millis(150)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_millis(150) + TICK * 10, "{took:?}");
        // A deadline already past is ready at once.
        timer.sleep_until(Instant::now()).await;
    }

    #[tokio::test]
    async fn dropped_sleeps_give_their_slot_back_and_never_fire() {
        let timer = CoarseTimer::start();
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut s = timer.sleep(Duration::from_secs(60));
            assert!(s.as_mut().poll(&mut cx).is_pending());
            drop(s);
        }
        let slots: usize = (0..SHARDS)
            .map(|i| timer.wheel.shard(i).slots.len())
            .sum();
        assert!(slots <= SHARDS, "slots are reused, found {slots}");
        // A sweep past every deadline wakes nobody: the queued entries are stale.
        timer.wheel.sweep(Instant::now() + Duration::from_secs(120));
        let live: usize = (0..SHARDS)
            .map(|i| timer.wheel.shard(i).slots.iter().filter(|e| e.fired).count())
            .sum();
        assert_eq!(live, 0);
    }

    #[tokio::test]
    async fn many_sleeps_each_fire() {
        let timer = CoarseTimer::start();
        let handles: Vec<_> = (0..64u64)
            .map(|i| {
                let t = timer.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let d = Duration::from_millis(20 + i * 3);
                    t.sleep(d).await;
                    started.elapsed() >= d
                })
            })
            .collect();
        for h in handles {
            assert!(h.await.unwrap_or(false));
        }
    }

    fn futures_noop_waker() -> Waker {
        Waker::noop().clone()
    }
}
