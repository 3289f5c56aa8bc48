//! What a durable redb commit costs as a batch touches more key ranges: the evidence behind
//! the README's "What is left". `commit_pages [DIR] [ROUNDS]` (default: a temporary directory
//! under `/tmp`, 2,000 commits per layout).
//!
//! Each commit holds 10 "requests"; each request appends one 120-byte row to each of N logical
//! tables (N = 1, 4, 8, about what one Bespin write touches), in five layouts:
//! - `separate`: one redb table per logical table (what Bespin does);
//! - `one table`: one redb table, the logical table as a key prefix (merging tables);
//! - `adjacent`: one redb table, a request's rows next to each other (key: request, then table);
//! - `redo log`: `separate`, but redb commits without durability and the batch's rows are
//!   appended to a log file that is fsynced instead, with a durable redb commit (a checkpoint)
//!   every 64 commits — the design the README measured for write latency and set aside;
//! - `checkpoint only`: `redo log` without the log: what redb's commits cost without an fsync
//!   (the part of a commit a pipelined redo log would leave on the writer's path).
//!
//! It prints the mean and 99th-percentile wall time per commit and the bytes (and 4 KiB pages)
//! the process wrote per commit, read from `/proc/self/io` (Linux). A second table, without
//! redb, times one `fdatasync` after writing N pages of a file written once before, the pages
//! either scattered over 64 MiB or side by side: what makes a commit's fsync cost what it does.
//!
//! The figures it printed on 2026-12-01 are in the README: merging tables barely changes the
//! pages written (each logical range still dirties its own leaf and path); without any fsync a
//! redb commit costs about a quarter of a durable one, but a durable checkpoint then stalls for
//! several milliseconds; and an fsync costs by the places it writes, not the bytes (40 pages
//! scattered about five times 40 pages side by side).

use bespin_benches::percentile;
use redb::{Database, Durability, TableDefinition};
use std::io::Write;
use std::time::Instant;

const PREFILL: u64 = 50_000;
const PER_COMMIT: u64 = 10;
const TENANT: &[u8] = b"00000000-0000-4000-8000-000000000000";
/// With a redo log: a durable redb commit every this many commits.
const CHECKPOINT_EVERY: u64 = 64;

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Separate,
    OneTable,
    Adjacent,
    RedoLog,
    CheckpointOnly,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Separate => "separate",
            Layout::OneTable => "one table",
            Layout::Adjacent => "adjacent",
            Layout::RedoLog => "redo log",
            Layout::CheckpointOnly => "checkpoint only",
        }
    }

    /// The key of request `n`'s row in logical table `t`.
    fn key(self, t: usize, n: u64) -> Vec<u8> {
        let tag = u8::try_from(t).unwrap_or(u8::MAX);
        let mut k = Vec::with_capacity(TENANT.len() + 9);
        match self {
            Layout::Adjacent => {
                k.extend_from_slice(TENANT);
                k.extend_from_slice(&n.to_be_bytes());
                k.push(tag);
            }
            Layout::Separate | Layout::OneTable | Layout::RedoLog | Layout::CheckpointOnly => {
                k.push(tag);
                k.extend_from_slice(TENANT);
                k.extend_from_slice(&n.to_be_bytes());
            }
        }
        k
    }
}

type Tab = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn written_bytes() -> std::io::Result<u64> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    Ok(io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// What one layout measured.
struct Measured {
    mean_micros: f64,
    p99_micros: f64,
    bytes: u64,
}

/// Runs one layout with `tables` logical tables.
fn run(
    dir: &std::path::Path,
    layout: Layout,
    tables: usize,
    rounds: u64,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let path = dir.join(format!("{}-{tables}.redb", layout.name().replace(' ', "_")));
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path)?;
    let names: Vec<&'static str> = (0..tables)
        .map(|t| &*Box::leak(format!("t{t}").into_boxed_str()))
        .collect();
    let table_of = |t: usize| -> Tab {
        match layout {
            Layout::Separate | Layout::RedoLog | Layout::CheckpointOnly => {
                TableDefinition::new(names[t])
            }
            Layout::OneTable | Layout::Adjacent => TableDefinition::new("all"),
        }
    };
    let value = [7u8; 120];
    let tx = db.begin_write()?;
    for t in 0..tables {
        let mut table = tx.open_table(table_of(t))?;
        for n in 0..PREFILL {
            table.insert(layout.key(t, n).as_slice(), value.as_slice())?;
        }
    }
    tx.commit()?;
    let log_path = path.with_extension("log");
    let mut log = std::fs::File::create(&log_path)?;
    let own_tables = matches!(
        layout,
        Layout::Separate | Layout::RedoLog | Layout::CheckpointOnly
    );
    let deferred = matches!(layout, Layout::RedoLog | Layout::CheckpointOnly);
    let mut took: Vec<f64> = Vec::with_capacity(usize::try_from(rounds).unwrap_or(0));
    let w0 = written_bytes()?;
    let mut n = PREFILL;
    let mut record = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let mut tx = db.begin_write()?;
        let checkpoint = (round + 1) % CHECKPOINT_EVERY == 0;
        tx.set_durability(if deferred && !checkpoint {
            Durability::None
        } else {
            Durability::Immediate
        })?;
        record.clear();
        {
            let mut open = Vec::new();
            for t in 0..tables {
                if own_tables || t == 0 {
                    open.push(tx.open_table(table_of(t))?);
                }
            }
            for _ in 0..PER_COMMIT {
                for t in 0..tables {
                    let key = layout.key(t, n);
                    open[if own_tables { t } else { 0 }]
                        .insert(key.as_slice(), value.as_slice())?;
                    record.extend_from_slice(&key);
                    record.extend_from_slice(&value);
                }
                n += 1;
            }
        }
        tx.commit()?;
        if layout == Layout::RedoLog {
            if checkpoint {
                log.set_len(0)?;
            } else {
                log.write_all(&record)?;
                log.sync_data()?;
            }
        }
        took.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let bytes = (written_bytes()? - w0) / rounds;
    drop(db);
    std::fs::remove_file(&path)?;
    std::fs::remove_file(&log_path)?;
    let mean_micros = took.iter().sum::<f64>() / took.len().max(1) as f64;
    took.sort_by(f64::total_cmp);
    let p99_micros = percentile(&took, 99);
    Ok(Measured {
        mean_micros,
        p99_micros,
        bytes,
    })
}

/// Median and 99th percentile of `fdatasync` after writing `pages` 4 KiB pages of `file`
/// (64 MiB, written once before), scattered or side by side.
fn fsync_pages(
    file: &std::fs::File,
    pages: u64,
    scattered: bool,
    rounds: u64,
) -> std::io::Result<(f64, f64)> {
    use std::os::unix::fs::FileExt;
    const FILE_PAGES: u64 = 64 * 256;
    let page = [3u8; 4096];
    let run = vec![5u8; 4096 * usize::try_from(pages).unwrap_or(1)];
    // The same offsets on every run.
    let mut next = bespin_benches::xorshift(0x9e37_79b9_7f4a_7c15);
    let mut took = Vec::with_capacity(usize::try_from(rounds).unwrap_or(0));
    for _ in 0..rounds {
        let started = Instant::now();
        if scattered {
            for _ in 0..pages {
                file.write_all_at(&page, next() % FILE_PAGES * 4096)?;
            }
        } else {
            file.write_all_at(&run, next() % (FILE_PAGES - pages) * 4096)?;
        }
        file.sync_data()?;
        took.push(started.elapsed().as_secs_f64() * 1e6);
    }
    took.sort_by(f64::total_cmp);
    Ok((percentile(&took, 50), percentile(&took, 99)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("commit_pages-{}", std::process::id()))
        });
    let rounds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    std::fs::create_dir_all(&dir)?;
    println!("{PER_COMMIT} requests per commit, {PREFILL} rows per logical table before");
    println!("layout           tables  µs/commit  p99 µs  bytes/commit  pages/commit");
    for layout in [
        Layout::Separate,
        Layout::OneTable,
        Layout::Adjacent,
        Layout::RedoLog,
        Layout::CheckpointOnly,
    ] {
        for tables in [1, 4, 8] {
            if tables == 1 && layout != Layout::Separate {
                continue;
            }
            let m = run(&dir, layout, tables, rounds)?;
            println!(
                "{:<16} {tables:>6} {:>10.0} {:>7.0} {:>13} {:>13.1}",
                layout.name(),
                m.mean_micros,
                m.p99_micros,
                m.bytes,
                m.bytes as f64 / 4096.0
            );
        }
    }
    let path = dir.join("fsync.bin");
    let file = std::fs::File::create(&path)?;
    file.set_len(64 << 20)?;
    // Written once, so the timed writes change no extent and no file size.
    std::os::unix::fs::FileExt::write_all_at(&file, &vec![1u8; 64 << 20], 0)?;
    file.sync_all()?;
    println!();
    println!("pages  scattered: median µs  p99 µs   side by side: median µs  p99 µs");
    for pages in [1, 4, 13, 40] {
        let (sm, sp) = fsync_pages(&file, pages, true, rounds / 4)?;
        let (cm, cp) = fsync_pages(&file, pages, false, rounds / 4)?;
        println!("{pages:>5} {sm:>20.0} {sp:>7.0} {cm:>24.0} {cp:>7.0}");
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(())
}
