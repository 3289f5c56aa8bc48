//! The commit counts a snapshot or a write batch reads first, and what they tell the row cache
//! about other processes' commits.
//!
//! Every batch of every process increments `bespin_meta`'s `commits` row under the write lock
//! (`batch.rs`); a batch of this build, while another process commits too (within five seconds
//! of its last commit seen), also increments `tracked` and records, in `bespin_written`, the
//! count at which it wrote each of its tables. (A lone server records nothing: no one would
//! read it, and two more rows in every flush cost 12-14% of its writes.) So when a process finds
//! the count moved from the one its row cache stands for (`E`) to `N`, and `tracked` moved by
//! as much — every commit in between recorded its tables; a server of an older build, which
//! records nothing, makes the two differ — the tables written at a count above `E` are all that
//! changed: the cache drops those and keeps the rest ([`super::cache::RowCache::learn`]),
//! instead of emptying itself at every other server's commit; a commit that recorded nothing
//! (a server alone until then, or of an older build) makes the cache empty itself, as before.
//! One statement reads all of it, in the round trip that starts the snapshot or takes the
//! write lock.

use super::{COMMITS, ident};
use crate::error::{Error, Result};
use postgres::SimpleQueryMessage;

/// The `bespin_meta` row counting the commits that recorded the tables they wrote.
pub(super) const TRACKED: &str = "tracked";

/// What the first statement of a snapshot or a batch read.
pub(super) struct Seen {
    /// The commit count.
    pub(super) epoch: i64,
    /// The count of commits that recorded their tables (`None`: a schema made before them).
    pub(super) tracked: Option<i64>,
    /// The count the tables below were asked for since, and the tables written at a count
    /// above it (by name).
    pub(super) written: Option<(i64, Vec<String>)>,
}

/// The statement reading the counts, and the tables written since count `since` when given:
/// one statement, so a snapshot's counts and tables are of the same moment.
pub(super) fn sql(schema: &str, since: Option<i64>) -> String {
    let schema = ident(schema);
    let mut sql = format!(
        "SELECT name, value::text FROM {schema}.bespin_meta WHERE name IN ('{COMMITS}', '{TRACKED}')"
    );
    if let Some(e) = since {
        sql.push_str(&format!(
            " UNION ALL SELECT 'written', name FROM {schema}.bespin_written WHERE at > {e}"
        ));
    }
    sql
}

/// The counts in the answer to [`sql`] (asked with `since`), among the answer's other
/// statements' messages.
pub(super) fn parse(answer: &[SimpleQueryMessage], since: Option<i64>) -> Result<Seen> {
    let (mut epoch, mut tracked, mut names) = (None, None, Vec::new());
    for m in answer {
        // Rows of this statement have two columns (the write lock's has one).
        let SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        if r.len() != 2 {
            continue;
        }
        match (r.get(0), r.get(1)) {
            (Some(COMMITS), Some(v)) => epoch = v.parse::<i64>().ok(),
            (Some(TRACKED), Some(v)) => tracked = v.parse::<i64>().ok(),
            (Some("written"), Some(name)) => names.push(name.to_owned()),
            _ => {}
        }
    }
    let epoch =
        epoch.ok_or_else(|| Error::Storage("PostgreSQL: no commit count in bespin_meta".into()))?;
    Ok(Seen {
        epoch,
        tracked,
        written: since.map(|e| (e, names)),
    })
}

/// The statements a batch's flush adds when it commits as count `count` (a parameter's
/// placeholder, or a literal): `tracked` incremented, and each of `tables` recorded as written
/// at it — as data-modifying CTEs of the flush statement (`cte`), or as statements of their
/// own.
pub(super) fn record(schema: &str, tables: &[&str], count: &str, cte: bool) -> String {
    let schema = ident(schema);
    let mut values = String::new();
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            values.push_str(", ");
        }
        // Our own table names: lowercase letters, digits and underscores.
        values.push_str(&format!("('{}', {count})", t.replace('\'', "''")));
    }
    let tracked =
        format!("UPDATE {schema}.bespin_meta SET value = value + 1 WHERE name = '{TRACKED}'");
    let written = format!(
        "INSERT INTO {schema}.bespin_written (name, at) VALUES {values} \
         ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at"
    );
    match (cte, tables.is_empty()) {
        (true, true) => format!("wt AS ({tracked})"),
        (true, false) => format!("wt AS ({tracked}), ww AS ({written})"),
        (false, true) => format!("{tracked}; "),
        (false, false) => format!("{tracked}; {written}; "),
    }
}

/// The schema's statements for the counts: the `bespin_written` table, and the `tracked` row,
/// started at the commit count (every commit before counts as recorded: there was no cache to
/// mislead yet, and none kept across the upgrade can be older than it — a process of an older
/// build committing after it makes the two counts differ from then on).
pub(super) fn create_sql(schema: &str) -> String {
    let schema = ident(schema);
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.bespin_written (name text PRIMARY KEY, at int8 NOT NULL); \
         INSERT INTO {schema}.bespin_meta SELECT '{TRACKED}', value FROM {schema}.bespin_meta \
         WHERE name = '{COMMITS}' ON CONFLICT DO NOTHING; "
    )
}
