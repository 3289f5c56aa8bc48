//! Running a read where the thread must not wait: a server's runtime worker.
//!
//! On PostgreSQL a read waits for the network twice at most: for its snapshot (a round trip,
//! shared by the reads that start together) and for a row the row cache does not hold. A
//! server used to run every such read on its blocking pool, so a request's snapshot could be
//! waited for there; but most reads need nothing from the network once they have a snapshot,
//! and the hand-offs to the pool and back cost a request more than its read (issue 19:
//! 57–68 µs of server CPU a `latest` request against 8–10 on redb, seven thread switches a
//! request). So a server asks for the request's snapshot without waiting
//! ([`crate::Bespin::request_snapshot_later`]) and runs the request on its worker inside
//! [`without_waiting`]: every place of the core that would wait — a snapshot begun, a
//! statement sent, a write run or queued — refuses instead and marks the scope, and the server
//! runs the request again where it may wait. A scope's result is only used when nothing in it
//! was refused, so what a refused read returned (an error, or a fallback a caller chose)
//! never reaches anyone.

use crate::error::{Error, Result};
use std::cell::Cell;

thread_local! {
    /// Whether the current thread runs inside [`without_waiting`].
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
    /// Whether something inside the current [`without_waiting`] scope would have waited.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on this thread where the core must not wait for the network or the writer: `None`
/// when something in `f` would have (its result is then dropped; run `f` again where waiting
/// is allowed), else `f`'s result. Only reads belong in such a scope: a write, and an
/// operation queued for the writer, refuse at once (queued, it would be queued again by the
/// try that counts).
pub fn without_waiting<T>(f: impl FnOnce() -> T) -> Option<T> {
    /// Restores the outer state when the scope ends, panics included.
    struct Restore(bool, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_WAIT.with(|c| c.set(self.0));
            REFUSED.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(
        NO_WAIT.with(|c| c.replace(true)),
        REFUSED.with(|c| c.replace(false)),
    );
    let out = f();
    (!REFUSED.with(Cell::get)).then_some(out)
}

/// Called where the core is about to wait (`what`: for what): an error, and the scope marked,
/// inside [`without_waiting`]; nothing otherwise.
pub(crate) fn may_wait(what: &str) -> Result<()> {
    if NO_WAIT.with(Cell::get) {
        REFUSED.with(|c| c.set(true));
        return Err(Error::Unavailable(format!(
            "{what} would wait on a thread that must not"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{may_wait, without_waiting};

    #[test]
    fn a_scope_is_refused_when_anything_in_it_would_wait() {
        assert_eq!(without_waiting(|| 7), Some(7));
        // Even when the caller swallowed the error.
        assert_eq!(without_waiting(|| may_wait("a read").unwrap_or(())), None);
        // Outside a scope nothing is refused.
        assert!(may_wait("a read").is_ok());
        // An inner scope's refusal is the inner scope's; the outer one goes on.
        let outer = without_waiting(|| {
            let inner = without_waiting(|| may_wait("x").is_err());
            assert_eq!(inner, None);
            may_wait("y").is_ok()
        });
        assert_eq!(
            outer, None,
            "the outer scope refuses too: may_wait is inside it"
        );
        let outer = without_waiting(|| without_waiting(|| may_wait("x")).is_none());
        assert_eq!(outer, Some(true));
        // A panic inside restores the state.
        let caught = std::panic::catch_unwind(|| without_waiting(|| panic!("boom")));
        assert!(caught.is_err());
        assert!(may_wait("a read").is_ok());
    }
}
