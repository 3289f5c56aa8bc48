//! `GET /readyz`: whether the database's writer thread takes work, with a bounded wait.
//!
//! `/healthz` answers from the read snapshot, so it stays up while the writer is stuck (a
//! liveness probe: restart only if even reads fail). Readiness submits a no-op operation ([`Op::noop`])
//! and waits up to [`TIMEOUT`] for the writer to take it: a writer that is stuck, or too far
//! behind to start a job within that time, makes the server not ready (503), so a load balancer
//! stops sending it writes. One probe runs at a time and its outcome is reused for
//! [`REUSE`], so a flood of probes puts at most one job on the writer's queue at a time.

use bespin_core::{Bespin, Op};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a probe waits for the writer to take its job.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe's outcome answers later probes.
pub const REUSE: Duration = Duration::from_millis(500);

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ready {
    /// The writer ran the probe's job after this wait.
    Yes(Duration),
    /// It did not within [`TIMEOUT`] (or has stopped).
    No,
}

/// The last probe, shared by the requests of one server.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Ready)>>,
    probing: Mutex<()>,
}

impl Readiness {
    /// Whether `db`'s writer takes work: a fresh outcome (at most [`REUSE`] old) or a new probe.
    /// Blocks for at most about twice [`TIMEOUT`] (waiting for another request's probe, then
    /// its own); call it off the runtime's workers.
    pub fn check(&self, db: &Bespin) -> Ready {
        if let Some(r) = self.fresh() {
            return r;
        }
        let _probing = self.probing.lock().unwrap_or_else(|p| p.into_inner());
        // Another request may have probed while this one waited for the lock.
        if let Some(r) = self.fresh() {
            return r;
        }
        let outcome = probe(db);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), outcome));
        outcome
    }

    fn fresh(&self) -> Option<Ready> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.filter(|(at, _)| at.elapsed() < REUSE).map(|(_, r)| r)
    }
}

/// Submits a no-op to the writer and waits up to [`TIMEOUT`] for the writer to take it.
fn probe(db: &Bespin) -> Ready {
    let queued = Instant::now();
    match db.submit(Op::noop()).wait_timeout(TIMEOUT) {
        Some(Ok(())) => Ready::Yes(queued.elapsed()),
        _ => Ready::No,
    }
}
