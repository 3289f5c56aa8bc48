//! What a durable redb commit costs as a batch touches more key ranges: the evidence behind
//! the README's "What is left". `commit_pages [DIR] [ROUNDS]` (default: a temporary directory
//! under `/tmp`, 2,000 commits per layout).
//!
//! Each commit holds 10 "requests"; each request appends one 120-byte row to each of N logical
//! tables (N = 1, 4, 8, about what one Bespin write touches). Three layouts of those rows:
//! - `separate`: one redb table per logical table (what Bespin does);
//! - `one table`: one redb table, the logical table as a key prefix (merging tables);
//! - `adjacent`: one redb table, a request's rows next to each other (key: request, then table).
//!
//! It prints the wall time per commit and the bytes (and 4 KiB pages) the process wrote per
//! commit, read from `/proc/self/io` (Linux). The figures it printed on 2026-12-01 are in the
//! README: merging tables barely changes the pages written (each logical range still dirties
//! its own leaf and path), and writing a third of the pages takes only about a fifth off the
//! commit, because the `fdatasync` has a fixed floor.

use redb::{Database, Durability, TableDefinition};
use std::time::Instant;

const PREFILL: u64 = 50_000;
const PER_COMMIT: u64 = 10;
const TENANT: &[u8] = b"00000000-0000-4000-8000-000000000000";

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Separate,
    OneTable,
    Adjacent,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Separate => "separate",
            Layout::OneTable => "one table",
            Layout::Adjacent => "adjacent",
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
            Layout::Separate | Layout::OneTable => {
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

/// Runs one layout with `tables` logical tables; returns (µs per commit, bytes per commit).
fn run(
    dir: &std::path::Path,
    layout: Layout,
    tables: usize,
    rounds: u64,
) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let path = dir.join(format!("{}-{tables}.redb", layout.name().replace(' ', "_")));
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path)?;
    let names: Vec<&'static str> = (0..tables)
        .map(|t| &*Box::leak(format!("t{t}").into_boxed_str()))
        .collect();
    let table_of = |t: usize| -> Tab {
        match layout {
            Layout::Separate => TableDefinition::new(names[t]),
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
    let (w0, t0) = (written_bytes()?, Instant::now());
    let mut n = PREFILL;
    for _ in 0..rounds {
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        {
            let mut open = Vec::new();
            for t in 0..tables {
                if layout == Layout::Separate || t == 0 {
                    open.push(tx.open_table(table_of(t))?);
                }
            }
            for _ in 0..PER_COMMIT {
                for t in 0..tables {
                    let table = &mut open[if layout == Layout::Separate { t } else { 0 }];
                    table.insert(layout.key(t, n).as_slice(), value.as_slice())?;
                }
                n += 1;
            }
        }
        tx.commit()?;
    }
    let micros = t0.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let bytes = (written_bytes()? - w0) / rounds;
    drop(db);
    std::fs::remove_file(&path)?;
    Ok((micros, bytes))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    println!("layout     tables  µs/commit  bytes/commit  pages/commit");
    for layout in [Layout::Separate, Layout::OneTable, Layout::Adjacent] {
        for tables in [1, 4, 8] {
            if tables == 1 && layout != Layout::Separate {
                continue;
            }
            let (micros, bytes) = run(&dir, layout, tables, rounds)?;
            println!(
                "{:<10} {tables:>6} {micros:>10.0} {bytes:>13} {:>13.1}",
                layout.name(),
                bytes as f64 / 4096.0
            );
        }
    }
    Ok(())
}
