//! Counts the round trips to PostgreSQL of each operation of the load scenarios (issue 19):
//! `round_trips postgres://…/db [n]` opens a fresh schema, sets up a tenant, then runs each
//! operation `n` times (default 50) alone, one operation per batch as a request on an idle
//! server would, and `n` times in one batch (group commit under load), and prints the
//! statements sent per operation (`Bespin::round_trips`: connections, prepares, queries and
//! transaction control, each one round trip).

use bespin_core::coreos::tasks::NewTask;
use bespin_core::tools::InvokeRequest;
use bespin_core::{Bespin, Principal, Result, WriteTx};

fn main() -> Result<()> {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .expect("usage: round_trips postgres://user@host/db [n]");
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema=rt_{}", std::process::id());
    let db = Bespin::open(&url)?;
    let (p, creds) = bespin_benches::tenant(&db, "rt");
    let kpi = db.create_kpi(
        &p,
        bespin_core::kpis::NewKpi::from_json(&serde_json::json!({"name": "k"}))?,
    )?;
    let point = serde_json::json!({"points": [{"ts": "2026-01-01T00:00:00Z", "value": 1.0}]});
    db.ingest_points(
        &p,
        &kpi.kpi_id,
        bespin_core::kpis::PointsBulk::from_json(&point)?,
    )?;
    let count = |label: &str, f: &mut dyn FnMut(u64) -> Result<()>| -> Result<()> {
        // A first run prepares the statements, as a warm server has.
        f(u64::MAX)?;
        let before = db.round_trips().unwrap_or(0);
        for i in 0..n {
            f(i)?;
        }
        let per = (db.round_trips().unwrap_or(0) - before) as f64 / n as f64;
        println!("{label:34} {per:6.1}");
        Ok(())
    };
    println!("{:34} {:>6}", "operation", "round trips");
    count("authenticate (every request)", &mut |_| {
        db.authenticate(&creds).map(|_| ())
    })?;
    count("latest (read)", &mut |_| {
        db.latest_point(&p, &kpi.kpi_id).map(|_| ())
    })?;
    count("task create, alone", &mut |i| {
        db.transaction(|tx, ctx| task(tx, ctx, &p, i))
    })?;
    count("invoke, alone", &mut |i| {
        db.transaction(|tx, ctx| invoke(tx, ctx, &p, i))
    })?;
    count("chat, alone", &mut |_| {
        db.transaction(|tx, ctx| chat(tx, ctx, &p))
    })?;
    count("search metering, alone", &mut |_| {
        db.transaction(|tx, ctx| bespin_core::coreos::search::meter(tx, ctx, &p))
    })?;
    // A read request as the server serves one: authentication, then the handler's read. Alone
    // (each on a snapshot of its own, as before issue 19's one snapshot per request), and with
    // the read taking over the snapshot authentication read (`RequestSnapshot`).
    let latest = |who: &Principal| db.latest_point(who, &kpi.kpi_id).map(|_| ());
    let tasks = bespin_core::coreos::tasks::TaskQuery::from_json(&serde_json::json!({}))?;
    let list = |who: &Principal| db.list_tasks(who, &tasks).map(|_| ());
    let q = bespin_core::coreos::search::SearchQuery::from_json(&serde_json::json!({"q": "task"}))?;
    let search = |who: &Principal| db.search_within(who, &q, 1_000).map(|_| ());
    let reads: [(&str, ReadOf); 3] = [
        ("latest", &latest),
        ("task list", &list),
        ("search", &search),
    ];
    for (name, read) in reads {
        count(&format!("request: auth + {name}, apart"), &mut |_| {
            read(&db.authenticate_with_rate_limit(&creds)?.0)
        })?;
        count(&format!("request: auth + {name}, one snap"), &mut |_| {
            let (who, _, kept) = db.authenticate_keeping(&creds)?;
            kept.scope(|| read(&who))
        })?;
    }
    let batched = |label: &str,
                   f: &dyn Fn(&mut WriteTx, &bespin_core::Ctx, u64) -> Result<()>|
     -> Result<()> {
        let before = db.round_trips().unwrap_or(0);
        db.transaction(|tx, ctx| (0..n).try_for_each(|i| f(tx, ctx, 1_000_000 + i)))?;
        let per = (db.round_trips().unwrap_or(0) - before) as f64 / n as f64;
        println!("{label:34} {per:6.1}");
        Ok(())
    };
    batched("task create, batch of n", &|tx, ctx, i| {
        task(tx, ctx, &p, i)
    })?;
    batched("invoke, batch of n", &|tx, ctx, i| invoke(tx, ctx, &p, i))?;
    batched("chat, batch of n", &|tx, ctx, _| chat(tx, ctx, &p))?;
    // As the server runs them: n invocations submitted to the writer thread at once, which
    // takes them into its batches (and reads their idempotency records ahead, together).
    let before = db.round_trips().unwrap_or(0);
    let pending: Vec<_> = (0..n)
        .map(|i| {
            let r = InvokeRequest::from_json(
                &serde_json::json!({"tool_name": "echo", "payload": {"i": i}}),
            )?;
            Ok(db.submit(bespin_core::tools::invoke_op(
                p.clone(),
                format!("sub{i}"),
                r,
            )))
        })
        .collect::<Result<_>>()?;
    for done in pending {
        done.wait()?;
    }
    let per = (db.round_trips().unwrap_or(0) - before) as f64 / n as f64;
    println!("{:34} {per:6.1}", "invoke, n submitted to the writer");
    Ok(())
}

/// A read of a request, for the caller it authenticated.
type ReadOf<'a> = &'a dyn Fn(&Principal) -> Result<()>;

fn task(tx: &mut WriteTx, ctx: &bespin_core::Ctx, p: &Principal, i: u64) -> Result<()> {
    let t = NewTask::from_json(&serde_json::json!({"title": format!("Load task {i}")}))?;
    bespin_core::coreos::tasks::create(tx, ctx, p, t).map(|_| ())
}

fn invoke(tx: &mut WriteTx, ctx: &bespin_core::Ctx, p: &Principal, i: u64) -> Result<()> {
    let r =
        InvokeRequest::from_json(&serde_json::json!({"tool_name": "echo", "payload": {"i": i}}))?;
    bespin_core::tools::invoke(tx, ctx, p, &format!("rt{i}"), r).map(|_| ())
}

fn chat(tx: &mut WriteTx, ctx: &bespin_core::Ctx, p: &Principal) -> Result<()> {
    let r = bespin_core::chat::ChatRequest::from_json(&serde_json::json!({"message": "kpis"}))?;
    bespin_core::chat::chat(tx, ctx, p, r).map(|_| ())
}
