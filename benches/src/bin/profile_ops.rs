//! Runs a fixed number of whole operations in one transaction, for profilers
//! (`valgrind --tool=callgrind target/release/profile_ops task|invoke|chat|meter|ingest|append|latest|search 300`;
//! `task_json` / `task_answer`: a task create with its answer's body rendered again / reused).
//! `meter`: a search's metering alone (capability, quota, usage event and rollups), which is
//! what every search runs on the writer.
//! `ingest`: batches of 10,000 points, `append`: single-point ingests at the end of a series,
//! `latest`: `latest` and a 7-day window over a 100,000-point series, `search`: searches for
//! "pricing" among 10,000 tasks, 244 of which match (like `benches/load/search.sh`), without
//! metering. For the last two, subtract a run with `0` for the set-up.
//! `PROFILE_OPS_DB=path` runs on a database file at `path` instead of in memory.
//! `usage`: `n` reported usage events (`POST /v1/usage/events`'s operation) in batches of
//! 1,000, each a new `(source, id)` of a custom event type. `usage_again`: the same, then the
//! same `n` events again, every one a duplicate (its cost less `usage`'s is the duplicates').

use bespin_core::Bespin;
use bespin_core::coreos::search::SearchQuery;
use bespin_core::coreos::tasks::NewTask;
use bespin_core::tools::InvokeRequest;

fn main() -> bespin_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "task".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    // `PROFILE_OPS_DB=path`: a database file (fsync and all) instead of memory, whose growth
    // the in-memory backend pays for by copying (an artefact in a profile of large writes).
    let db = match std::env::var_os("PROFILE_OPS_DB") {
        Some(path) => Bespin::open(path)?,
        None => Bespin::open_in_memory()?,
    };
    let (p, _) = bespin_benches::tenant(&db, "profile");
    if matches!(what.as_str(), "ingest" | "append" | "latest") {
        // n batches of 10,000 points (or of one point) appended to one KPI.
        let (size, batches) = match what.as_str() {
            "ingest" => (10_000, n),
            "append" => (1, n),
            _ => (10_000, 10),
        };
        let kpi = db.create_kpi(
            &p,
            bespin_core::kpis::NewKpi::from_json(&serde_json::json!({"name": "k"}))?,
        )?;
        for b in 0..batches {
            let points = bespin_core::kpis::PointsBulk {
                points: (0..size)
                    .map(|i| bespin_core::kpis::NewPoint {
                        ts: bespin_core::time::Timestamp(((b * size + i) as i64) * 60_000_000),
                        value: i as f64,
                    })
                    .collect(),
            };
            db.ingest_points(&p, &kpi.kpi_id, points)?;
        }
        if what == "latest" {
            for _ in 0..n {
                std::hint::black_box(db.latest_point(&p, &kpi.kpi_id)?);
                std::hint::black_box(db.kpi_window(&p, &kpi.kpi_id, None, 7)?);
            }
        }
        return Ok(());
    }
    if what == "search" {
        return search(&db, &p, n);
    }
    if what == "usage" {
        return usage(&db, &p, n);
    }
    if what == "usage_again" {
        usage(&db, &p, n)?;
        return report(&db, &p, n);
    }
    // `BATCH=k`: k operations per transaction, as the server's group commit holds (8–26 under
    // load); default: all n in one.
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .filter(|&b| b > 0)
        .unwrap_or(n.max(1));
    let mut start = 0;
    while start < n {
        let end = n.min(start + batch);
        one_batch(&db, &p, &what, start..end)?;
        start = end;
    }
    Ok(())
}

/// Operations `range` of kind `what`, in one transaction.
fn one_batch(
    db: &Bespin,
    p: &bespin_core::Principal,
    what: &str,
    range: std::ops::Range<usize>,
) -> bespin_core::Result<()> {
    db.transaction(|tx, ctx| {
        for i in range {
            match what {
                "chat" => {
                    let r = bespin_core::chat::ChatRequest::from_json(
                        &serde_json::json!({"message": "kpis"}),
                    )?;
                    bespin_core::chat::chat(tx, ctx, p, r)?;
                }
                "meter" => bespin_core::coreos::search::meter(tx, ctx, p)?,
                "invoke" => {
                    let r = InvokeRequest::from_json(
                        &serde_json::json!({"tool_name": "echo", "payload": {"i": i}}),
                    )?;
                    bespin_core::tools::invoke(tx, ctx, p, &format!("k{i}"), r)?;
                }
                // A task create and its answer's body as the server makes it: rendered again
                // on the worker (`task_json`, before issue 26's answer reuse) or the bytes its
                // event was rendered with (`task_answer`, now).
                "task_json" => {
                    let t = load_task(i)?;
                    let v = bespin_core::coreos::tasks::create(tx, ctx, p, t)?;
                    std::hint::black_box(serde_json::to_vec(&v).unwrap_or_default());
                }
                "task_answer" => {
                    let t = load_task(i)?;
                    let v = bespin_core::coreos::tasks::create_rendered(tx, ctx, p, t)?;
                    std::hint::black_box(v.json().to_vec());
                }
                _ => {
                    let t = load_task(i)?;
                    bespin_core::coreos::tasks::create(tx, ctx, p, t)?;
                }
            }
        }
        Ok(())
    })
}

/// The load script's task create body, numbered `i`.
fn load_task(i: usize) -> bespin_core::Result<NewTask> {
    NewTask::from_json(
        &serde_json::json!({"title": format!("Load task {i}"), "priority": "medium"}),
    )
}

/// `n` usage events of a custom type, reported in batches of 1,000 (one transaction each).
fn usage(db: &Bespin, p: &bespin_core::Principal, n: usize) -> bespin_core::Result<()> {
    bespin_benches::usage_event_type(db);
    report(db, p, n)
}

/// Usage events 0 to `n` (of the type [`usage`] made), reported in batches of 1,000.
fn report(db: &Bespin, p: &bespin_core::Principal, n: usize) -> bespin_core::Result<()> {
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..n.min(i + 1000))
            .map(|k| bespin_benches::usage_event(k as u64))
            .collect();
        i += batch.len();
        let events = bespin_core::metering::ingest::UsageEvents::from_events(batch)?;
        db.record_usage_events(p, events)?;
    }
    Ok(())
}

/// 10,000 tasks of words from a 300-word vocabulary, every 41st one mentioning "pricing"; then
/// `n` searches for "pricing".
fn search(db: &Bespin, p: &bespin_core::Principal, n: usize) -> bespin_core::Result<()> {
    // A fixed sequence, so every run indexes the same words.
    let mut next = bespin_benches::xorshift(0x2545_f491_4f6c_dd1d);
    let mut word = move || {
        let state = next();
        format!(
            "w{}{}",
            state % 60,
            ["a", "b", "c", "d", "e"][(state >> 8) as usize % 5]
        )
    };
    for chunk in 0..10 {
        db.transaction(|tx, ctx| {
            for i in 0..1_000 {
                let mut title: Vec<String> = (0..5).map(|_| word()).collect();
                if (chunk * 1_000 + i) % 41 == 0 {
                    title[2] = "pricing".into();
                }
                let description: Vec<String> = (0..20).map(|_| word()).collect();
                let t = NewTask::from_json(&serde_json::json!({
                    "title": title.join(" "),
                    "description": description.join(" "),
                    "priority": "medium",
                }))?;
                bespin_core::coreos::tasks::create(tx, ctx, p, t)?;
            }
            Ok(())
        })?;
    }
    let q = SearchQuery::from_json(&serde_json::json!({"q": "pricing"}))?;
    for _ in 0..n {
        let found = db.search_unmetered(p, &q)?;
        std::hint::black_box(found);
    }
    Ok(())
}
