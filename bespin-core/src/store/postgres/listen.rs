//! Other processes' commits, heard at once: PostgreSQL's `LISTEN`/`NOTIFY`.
//!
//! A batch that announced news ([`WriteBatch::announce`](super::super::backend::WriteBatch))
//! sends `NOTIFY` on the schema's channel in the same simple query as its `COMMIT`: no round
//! trip of its own, and PostgreSQL delivers a notification only if its transaction commits, so
//! a process is told exactly of the news that exists. The payload is this process's token
//! (so the listener drops its own process's notifications: the process knew already) and the
//! topics, comma-separated, or `*` when they would not fit.
//!
//! One thread per open database (started by [`Backend::watch_others`](super::Backend)) holds
//! a connection of its own in `LISTEN` and calls the watcher for each foreign notification.
//! When the connection fails (PostgreSQL restarted; a silent peer is found out by TCP
//! keepalives within about 25 s), the thread connects again (100 ms, then
//! doubling up to a second, between tries); meanwhile [`Shared::hearing`] is false, so the
//! caller polls, and after each successful `LISTEN` the watcher is called with `None`
//! (whatever committed while nobody listened). The thread ends within a second of the last
//! handle of the database being dropped.

use super::{Shared, ident};
use crate::error::{Error, Result};
use crate::store::backend::OnOthersCommit;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest a payload's topic list may be; past it the payload says `*` (PostgreSQL's
/// limit is 8,000 bytes).
const MAX_TOPICS: usize = 4000;
/// How long the listener waits for a notification before it checks that the database is
/// still open.
const TICK: Duration = Duration::from_secs(1);

/// The channel of `schema`, quoted: `bespin_<schema>`, shortened (with the schema's lock key)
/// to fit PostgreSQL's 63 bytes of an identifier.
pub(super) fn channel(schema: &str, lock_key: i32) -> String {
    if schema.len() <= 56 {
        ident(&format!("bespin_{schema}"))
    } else {
        ident(&format!("bespin_{}_{lock_key:08x}", &schema[..47]))
    }
}

/// A random token naming this open database in the payloads it sends.
pub(super) fn token() -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().fold(String::with_capacity(16), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    }))
}

/// The `NOTIFY` statement (with its `; `) announcing `topics`, sent before the `COMMIT`.
pub(super) fn notify_sql(s: &Shared, topics: &[String]) -> String {
    let plain = |t: &String| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    let len: usize = topics.iter().map(|t| t.len() + 1).sum();
    let list = if len <= MAX_TOPICS && topics.iter().all(plain) {
        topics.join(",")
    } else {
        "*".to_owned()
    };
    // The payload holds hex, plain topics and `*` only: no quote to escape.
    format!("NOTIFY {}, '{} {list}'; ", s.channel, s.token)
}

/// What a payload says: `None` when it is this process's own (or not ours at all), else the
/// topics (`Some(None)`: any).
fn parse<'a>(payload: &'a str, own: &str) -> Option<Option<Vec<&'a str>>> {
    let (token, list) = payload.split_once(' ')?;
    if token == own {
        return None;
    }
    Some((list != "*").then(|| list.split(',').filter(|t| !t.is_empty()).collect()))
}

/// Starts the listening thread of `shared` (see the module doc), unless the URL said
/// `listen=off`.
pub(super) fn start(shared: &Arc<Shared>, on: OnOthersCommit) -> Result<()> {
    if !shared.listen {
        return Ok(());
    }
    let weak = Arc::downgrade(shared);
    let mut config = shared.config.clone();
    // The listener only reads: a server gone without a word (a network partition) would leave
    // it deaf while it believes it hears, and the poll off. TCP keepalives probing after 10 s
    // of silence find that out in about 25 s; the connection then fails and is made anew.
    config
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    let sql = format!("LISTEN {}", shared.channel);
    let own = shared.token.clone();
    let hearing = Arc::clone(&shared.hearing);
    std::thread::Builder::new()
        .name("bespin-pg-listen".into())
        .spawn(move || {
            let mut pause = Duration::from_millis(100);
            while weak.strong_count() > 0 {
                let listening = config.connect(postgres::NoTls).and_then(|mut c| {
                    c.batch_execute(&sql)?;
                    Ok(c)
                });
                let Ok(mut client) = listening else {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                    continue;
                };
                pause = Duration::from_millis(100);
                hearing.store(true, Ordering::SeqCst);
                // Whatever committed before the LISTEN took effect was not heard.
                on(None);
                hear(&mut client, &own, &on, &weak);
                hearing.store(false, Ordering::SeqCst);
            }
        })
        .map(drop)
        .map_err(|e| Error::Internal(format!("cannot start the PostgreSQL listener: {e}")))
}

/// Calls `on` for each foreign notification on `client` until the connection fails or the
/// database is dropped.
fn hear(
    client: &mut postgres::Client,
    own: &str,
    on: &OnOthersCommit,
    open: &std::sync::Weak<Shared>,
) {
    use postgres::fallible_iterator::FallibleIterator;
    loop {
        let next = client.notifications().timeout_iter(TICK).next();
        match next {
            Ok(Some(n)) => match parse(n.payload(), own) {
                Some(Some(topics)) => on(Some(&topics)),
                Some(None) => on(None),
                None => {}
            },
            Ok(None) if !client.is_closed() && open.strong_count() > 0 => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// Whether the listener is in `LISTEN` now, shared with its thread.
pub(super) type Hearing = Arc<AtomicBool>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_sender_and_topics() {
        assert_eq!(parse("aa t1,t2", "bb"), Some(Some(vec!["t1", "t2"])));
        assert_eq!(parse("aa *", "bb"), Some(None));
        assert_eq!(parse("bb t1", "bb"), None, "own notifications are dropped");
        assert_eq!(parse("garbage", "bb"), None);
        assert_eq!(channel("bespin", 1), "\"bespin_bespin\"");
        let long = "s".repeat(63);
        assert_eq!(channel(&long, 0x1234).len(), 63 + 2);
    }
}
