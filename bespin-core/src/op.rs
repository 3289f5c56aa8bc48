//! Operations as values: what the database's writer thread runs.
//!
//! An [`Op`] is one write operation of the core — a function of the standard shape over an
//! open [`WriteTx`], with the owned arguments it will be called with — ready to be run by
//! [`Bespin::run`](crate::Bespin::run) (on the caller's thread, sharing a batch with concurrent
//! callers) or handed to the writer thread by [`Bespin::submit`](crate::Bespin::submit), whose
//! [`Pending`] resolves once the commit holding it is durable. Ops are built from core
//! functions only: a server hands the core values, never code of its own, so nothing of the
//! server runs on the writer.
//!
//! The standard shapes (every write operation of the core has one):
//!
//! | constructor | operation |
//! |---|---|
//! | [`Op::with`] | `fn(tx, ctx, caller: &Principal, req: R)` |
//! | [`Op::on`] | `fn(tx, ctx, caller: &Principal, id: &str)` |
//! | [`Op::on_with`] | `fn(tx, ctx, caller: &Principal, id: &str, req: R)` (idempotent operations: the `Idempotency-Key` is the id) |
//! | [`Op::by`] | `fn(tx, ctx, caller: &Principal)` |
//! | [`Op::admin`] | `fn(tx, ctx, req: R)` (platform operations, no caller) |
//! | [`Op::admin_on`] | `fn(tx, ctx, id: &str, req: R)` |
//! | [`Op::for_read`] | `fn(tx, ctx, caller: &Principal)`, the write that accompanies a read (metering) |
//!
//! Every constructor that takes a caller first runs `keys::admit` in the operation's
//! transaction: a caller authenticated by a user-bound key is refused (401) once the key is
//! revoked or expired or its user deactivated, even if the request was authenticated before,
//! and a read-only key may write nothing (403; [`Op::for_read`] allows it).

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::idempotency::{Ahead, Stored};
use crate::tenancy::keys::{self, Access};
use crate::{Ctx, WriteTx};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

type Run<T> = Box<dyn FnOnce(&mut WriteTx, &Ctx) -> Result<T> + Send>;

/// One write operation, ready to run: a core function of a standard shape with its owned
/// arguments (see the [module](self) documentation). Running it is one operation of a batch:
/// rolled back alone if it fails, acknowledged only once its batch is durable.
#[must_use = "an operation does nothing until it is run or submitted"]
pub struct Op<T> {
    run: Run<T>,
    /// `false` for [`Op::noop`]: the writer settles it when its turn comes, without a batch.
    pub(crate) writes: bool,
    /// The idempotency record the operation looks up first, if it is idempotent: the writer
    /// reads those of a batch's operations together ([`Op::reading_ahead`]).
    pub(crate) ahead: Option<Ahead>,
}

impl<T> std::fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

impl<T: 'static> Op<T> {
    /// An operation of the core's own making (named constructors for odd shapes).
    pub(crate) fn new(run: impl FnOnce(&mut WriteTx, &Ctx) -> Result<T> + Send + 'static) -> Self {
        Op {
            run: Box::new(run),
            writes: true,
            ahead: None,
        }
    }

    /// This operation, naming the idempotency record it looks up first, which the writer then
    /// reads with those of the other operations it is about to run (one round trip for all
    /// of them on PostgreSQL). What the operation reads and does is unchanged.
    pub(crate) fn reading_ahead(self, ahead: Ahead) -> Self {
        Op {
            ahead: Some(ahead),
            ..self
        }
    }

    /// Runs the operation in `tx`.
    pub(crate) fn call(self, tx: &mut WriteTx, ctx: &Ctx) -> Result<T> {
        (self.run)(tx, ctx)
    }

    /// `f(tx, ctx, &caller, req)`, e.g. `Op::with(caller, req, tasks::create)`.
    pub fn with<R: Send + 'static>(
        caller: Principal,
        req: R,
        f: fn(&mut WriteTx, &Ctx, &Principal, R) -> Result<T>,
    ) -> Self {
        Op::new(move |tx, ctx| {
            keys::admit(tx, ctx, &caller, Access::Write)?;
            f(tx, ctx, &caller, req)
        })
    }

    /// `f(tx, ctx, &caller, &id)`, e.g. `Op::on(caller, task_id, tasks::complete)`.
    pub fn on(
        caller: Principal,
        id: impl Into<String>,
        f: fn(&mut WriteTx, &Ctx, &Principal, &str) -> Result<T>,
    ) -> Self {
        let id = id.into();
        Op::new(move |tx, ctx| {
            keys::admit(tx, ctx, &caller, Access::Write)?;
            f(tx, ctx, &caller, &id)
        })
    }

    /// `f(tx, ctx, &caller, &id, req)`, e.g. `Op::on_with(caller, task_id, patch,
    /// tasks::update)`; for an idempotent operation the id is the `Idempotency-Key`
    /// (`Op::on_with(caller, key, req, tools::invoke)`).
    pub fn on_with<R: Send + 'static>(
        caller: Principal,
        id: impl Into<String>,
        req: R,
        f: fn(&mut WriteTx, &Ctx, &Principal, &str, R) -> Result<T>,
    ) -> Self {
        let id = id.into();
        Op::new(move |tx, ctx| {
            keys::admit(tx, ctx, &caller, Access::Write)?;
            f(tx, ctx, &caller, &id, req)
        })
    }

    /// `f(tx, ctx, &caller)`.
    pub fn by(caller: Principal, f: fn(&mut WriteTx, &Ctx, &Principal) -> Result<T>) -> Self {
        Op::new(move |tx, ctx| {
            keys::admit(tx, ctx, &caller, Access::Write)?;
            f(tx, ctx, &caller)
        })
    }

    /// `f(tx, ctx, &caller)` for the write that accompanies a read, e.g. `Op::for_read(caller,
    /// search::meter)`: allowed to a read-only key (a revoked one is still refused).
    pub fn for_read(caller: Principal, f: fn(&mut WriteTx, &Ctx, &Principal) -> Result<T>) -> Self {
        Op::new(move |tx, ctx| {
            keys::admit(tx, ctx, &caller, Access::Read)?;
            f(tx, ctx, &caller)
        })
    }

    /// A platform operation (no caller): `f(tx, ctx, req)`, e.g. `Op::admin(req,
    /// tenancy::create_tenant)`.
    pub fn admin<R: Send + 'static>(req: R, f: fn(&mut WriteTx, &Ctx, R) -> Result<T>) -> Self {
        Op::new(move |tx, ctx| f(tx, ctx, req))
    }

    /// A platform operation on one record: `f(tx, ctx, &id, req)`.
    pub fn admin_on<R: Send + 'static>(
        id: impl Into<String>,
        req: R,
        f: fn(&mut WriteTx, &Ctx, &str, R) -> Result<T>,
    ) -> Self {
        let id = id.into();
        Op::new(move |tx, ctx| f(tx, ctx, &id, req))
    }

    /// Any closure as an operation. Only with the `testing` feature, for tests that must hold
    /// the writer thread or fail inside a batch on purpose; the server never enables it.
    #[cfg(feature = "testing")]
    pub fn from_fn(f: impl FnOnce(&mut WriteTx, &Ctx) -> Result<T> + Send + 'static) -> Self {
        Op::new(f)
    }
}

impl<T: serde::Serialize + 'static> Op<T> {
    /// This operation at most once per `scope` in `tenant_id`: the first run's answer is stored
    /// in its transaction (`idempotency::once`) and a later run with the same key and the same
    /// request answers it again, writing nothing; the same key with another request is
    /// `IdempotencyConflict`; a blank or over-long key is refused first. For operations whose
    /// REST route takes no `Idempotency-Key` but whose other callers retry (an MCP tool's
    /// `idempotency_key` argument): the operation and every check in it are unchanged, and
    /// the audit rows it writes record the key (as the REST `Idempotency-Key` is recorded).
    pub fn once(self, tenant_id: String, scope: crate::idempotency::Idempotency) -> Op<Stored<T>> {
        let ahead = Ahead::new(&tenant_id, scope.endpoint, &scope.key);
        Op::new(move |tx, ctx| {
            crate::idempotency::check_key(&scope.key)?;
            let keyed = Ctx {
                idempotency_key: Some(scope.key.clone()),
                ..ctx.clone()
            };
            crate::idempotency::once(tx, ctx, &tenant_id, &scope, |tx| self.call(tx, &keyed))
        })
        .reading_ahead(ahead)
    }
}

impl Op<()> {
    /// An operation that writes nothing: `/readyz` submits one to prove that the writer takes
    /// work.
    pub fn noop() -> Self {
        Op {
            writes: false,
            ..Op::new(|_, _| Ok(()))
        }
    }
}

/// The outcome of a submitted operation, as a [`Future`] (any executor; the core runs none) or
/// through [`Pending::wait`]: the operation's value once the commit holding it is durable, or
/// its error, its commit's error, or `Error::Overloaded` when the writer's queue was full.
#[must_use = "the outcome of a submitted operation is its acknowledgement"]
pub struct Pending<T> {
    slot: Arc<Slot<T>>,
}

/// Hands a [`Pending`] its outcome; dropping it unused resolves the pending with an error
/// (the writer stopped before running the operation).
pub(crate) struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

struct State<T> {
    outcome: Option<Result<T>>,
    waker: Option<Waker>,
    /// Threads blocked in [`Pending::wait`] or [`Pending::wait_timeout`]: the condvar is
    /// signalled only when there is one, since a signal is a system call (`futex`) even when
    /// nobody waits, and the writer would make one per operation for the futures that never do.
    blocked: usize,
}

/// A pending outcome and the completer that settles it.
pub(crate) fn pending<T>() -> (Pending<T>, Completer<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            outcome: None,
            waker: None,
            blocked: 0,
        }),
        done: Condvar::new(),
    });
    (
        Pending {
            slot: Arc::clone(&slot),
        },
        Completer { slot: Some(slot) },
    )
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Pending<T> {
    /// Blocks the calling thread until the outcome is known (for callers outside any async
    /// runtime; never call it from an operation, which would wait on its own writer).
    pub fn wait(self) -> Result<T> {
        crate::nowait::may_wait("waiting for a write")?;
        let mut g = self.slot.lock();
        loop {
            if let Some(out) = g.outcome.take() {
                return out;
            }
            g.blocked += 1;
            g = self.slot.done.wait(g).unwrap_or_else(|p| p.into_inner());
            g.blocked -= 1;
        }
    }
}

impl<T> Pending<T> {
    /// [`Pending::wait`] for at most `timeout`: `None` when the outcome is not known by then
    /// (the operation may still run later).
    pub fn wait_timeout(self, timeout: std::time::Duration) -> Option<Result<T>> {
        if let Err(e) = crate::nowait::may_wait("waiting for a write") {
            return Some(Err(e));
        }
        let deadline = std::time::Instant::now() + timeout;
        let mut g = self.slot.lock();
        loop {
            if let Some(out) = g.outcome.take() {
                return Some(out);
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            g.blocked += 1;
            g = self
                .slot
                .done
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            g.blocked -= 1;
        }
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut g = self.slot.lock();
        if let Some(out) = g.outcome.take() {
            return Poll::Ready(out);
        }
        match &mut g.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Completer<T> {
    /// Settles the pending with `outcome` and wakes whoever waits on it.
    pub(crate) fn complete(mut self, outcome: Result<T>) {
        if let Some(slot) = self.slot.take() {
            Self::settle(&slot, outcome);
        }
    }

    fn settle(slot: &Slot<T>, outcome: Result<T>) {
        let (waker, blocked) = {
            let mut g = slot.lock();
            g.outcome = Some(outcome);
            (g.waker.take(), g.blocked > 0)
        };
        if blocked {
            slot.done.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            Self::settle(
                &slot,
                Err(Error::Internal("the writer dropped the operation".into())),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Waits (a bounded while) until a thread is blocked on the slot's condvar.
    fn until_blocked<T>(p: &Pending<T>) {
        for _ in 0..10_000 {
            if p.slot.lock().blocked > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the waiting thread never blocked");
    }

    // The completer signals the condvar only while a thread is blocked on it: each way of
    // blocking must count itself, or the settle would leave it asleep.
    #[test]
    fn a_thread_blocked_in_wait_or_wait_timeout_is_woken_by_the_outcome() {
        for timed in [false, true] {
            let (p, c) = pending::<u32>();
            let peek = Pending {
                slot: Arc::clone(&p.slot),
            };
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let out = if timed {
                    p.wait_timeout(Duration::from_secs(3_600))
                } else {
                    Some(p.wait())
                };
                let _ = tx.send(out.map(|r| r.ok()));
            });
            until_blocked(&peek);
            c.complete(Ok(7));
            let got = rx.recv_timeout(Duration::from_secs(20));
            assert_eq!(got, Ok(Some(Some(7))), "timed: {timed}");
            assert_eq!(peek.slot.lock().blocked, 0);
        }
    }

    #[test]
    fn an_outcome_settled_before_anyone_waits_is_there_for_wait() {
        let (p, c) = pending::<u32>();
        c.complete(Ok(3));
        assert_eq!(p.wait().ok(), Some(3));
    }
}
