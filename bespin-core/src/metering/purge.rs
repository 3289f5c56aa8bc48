//! The claims of reported usage events past their retention forgotten ([`purge_dedup`]), the
//! upgrade of layout 13's de-duplication rows to runs of claims, and the claims' checks.

use super::chunk;
use super::claims::{self, BlockFilter, Claim};
use super::ingest::{
    DedupKey, DedupRec, PURGED_UP_TO, USAGE_DEDUP, USAGE_DEDUP_BY_EXPIRY, dedup_horizon,
};
use crate::Ctx;
use crate::check::Checker;
use crate::error::Result;
use crate::store::{Flow, Order, Reader, WriteTx};
use crate::time::Timestamp;
use std::collections::{HashMap, HashSet};
use std::ops::Bound;

/// Forgets at most about `max` remembered events whose retention has ended and does the
/// upkeep of the runs of claims of idle tenants ([`claims::merge::upkeep_all`]: runs past the
/// retention dropped, merges under way continued), from where the last call stopped; returns
/// how many claims went. The server's upkeep calls it every minute.
pub fn purge_dedup(tx: &mut WriteTx, ctx: &Ctx, max: usize) -> Result<usize> {
    let retention = ctx.options.usage_dedup_retention_micros;
    let gone = claims::merge::upkeep_all(tx, ctx.now, retention, max as u64)?;
    Ok(gone as usize)
}

/// The upgrade to layout 14: every de-duplication row of layout 13 becomes a claim in a run
/// of its tenant ([`claims`]), at most [`claims::MAX_RUN`] to a run (the table is read in
/// slices of that many rows, one tenant's at a time, so the upgrade holds one run's claims in
/// memory however large the table); the old table is left empty and the old purge's cursor
/// goes. Returns how many rows moved.
pub(crate) fn rows_to_runs(tx: &mut WriteTx) -> Result<u64> {
    rows_to_runs_in(tx, claims::MAX_RUN)
}

/// [`rows_to_runs`] with runs of at most `slice` claims (a test makes several of a tenant's).
pub(crate) fn rows_to_runs_in(tx: &mut WriteTx, slice: u64) -> Result<u64> {
    let t = &USAGE_DEDUP;
    let mut moved = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut tenant: Option<String> = None;
        let mut run: Vec<Claim> = Vec::new();
        let from = after.take();
        let lo = from.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        tx.scan_stored(
            t,
            &t.prefix(),
            lo,
            Bound::Unbounded,
            Order::Asc,
            &mut |k, v| {
                let Some(key) = DedupKey::decode(k) else {
                    return Ok(Flow::Continue);
                };
                let of = key.tenant_id.as_ref();
                if tenant.as_deref().is_some_and(|t| t != of) || run.len() as u64 >= slice {
                    return Ok(Flow::Stop);
                }
                tenant.get_or_insert_with(|| of.to_owned());
                let d: DedupRec = crate::store::codec::decode(v)?;
                let (h, h2) = claims::hashes(&key.source, &key.event_id);
                run.push(Claim {
                    h,
                    h2,
                    seq: d.seq,
                    accepted_at: d.accepted_at,
                });
                after = Some(k.to_vec());
                Ok(Flow::Continue)
            },
        )?;
        let Some(tenant) = tenant else {
            break;
        };
        moved += run.len() as u64;
        run.sort_unstable_by(Claim::order);
        let key = claims::RunsKey::new(&tenant);
        let mut runs = tx.get(&claims::USAGE_CLAIM_RUNS, &key)?.unwrap_or_default();
        runs.live
            .push(claims::write_run(tx, &tenant, runs.next, &run)?);
        runs.next += 1;
        tx.put(&claims::USAGE_CLAIM_RUNS, &key, &runs)?;
    }
    tx.clear_unlogged(&USAGE_DEDUP)?;
    tx.delete(
        &crate::layout::META,
        &crate::store::NameKey::new(PURGED_UP_TO),
    )?;
    Ok(moved)
}

/// Test-only: the claims as layout 13 kept them, the inverse of [`rows_to_runs`]: every claim
/// of a live run becomes a `usage_dedup` row (keeping the latest acceptance of a `(source,
/// id)` accepted again after its retention) and the claim tables are emptied; returns how many
/// rows.
#[cfg(test)]
pub(crate) fn runs_to_rows_for_test(tx: &mut WriteTx) -> Result<u64> {
    use std::collections::BTreeMap;
    let mut tenants = Vec::new();
    let t = &claims::USAGE_CLAIM_RUNS;
    tx.scan(t, &t.prefix(), Order::Asc, |k, _| {
        tenants.extend(claims::RunsKey::decode(k).map(|k| k.tenant_id.into_owned()));
        Ok(Flow::Continue)
    })?;
    // Every reported event's source and id, by (tenant, usage number).
    let mut origins: HashMap<(String, u64), (String, String)> = HashMap::new();
    let c = &chunk::USAGE_CHUNKS;
    tx.scan(c, &c.prefix(), Order::Asc, |k, chunk: chunk::UsageChunk| {
        let tenant = chunk::UsageChunkKey::decode(k).map(|k| k.tenant_id.into_owned());
        for (seq, rec) in chunk.records()? {
            if let (Some(t), Some(o)) = (&tenant, rec.origin) {
                origins.insert((t.clone(), seq), (o.source, o.id));
            }
        }
        Ok(Flow::Continue)
    })?;
    let e = &super::USAGE_EVENTS;
    tx.scan(e, &e.prefix(), Order::Asc, |k, rec| {
        if let (Some(k), Some(o)) = (super::UsageKey::decode(k), rec.origin) {
            origins.insert((k.tenant_id.into_owned(), k.seq), (o.source, o.id));
        }
        Ok(Flow::Continue)
    })?;
    let mut rows: BTreeMap<(String, String, String), DedupRec> = BTreeMap::new();
    for tenant in tenants {
        for (_, c) in claims::live_claims(tx, &tenant)? {
            let rec = DedupRec {
                seq: c.seq,
                accepted_at: c.accepted_at,
            };
            let Some((source, id)) = origins.get(&(tenant.clone(), c.seq)).cloned() else {
                continue;
            };
            let at = rows
                .entry((tenant.clone(), source, id))
                .or_insert(rec.clone());
            if rec.accepted_at > at.accepted_at {
                *at = rec;
            }
        }
    }
    for ((tenant, source, id), rec) in &rows {
        tx.put(&USAGE_DEDUP, &DedupKey::new(tenant, source, id), rec)?;
    }
    let (b, f) = (&claims::USAGE_CLAIM_BLOCKS, &claims::USAGE_CLAIM_FILTERS);
    tx.delete_prefix(t, &t.prefix())?;
    tx.delete_prefix(b, &b.prefix())?;
    tx.delete_prefix(f, &f.prefix())?;
    let u = &claims::merge::USAGE_CLAIM_UPKEEP;
    tx.delete_prefix(u, &u.prefix())?;
    Ok(rows.len() as u64)
}

/// The upgrade to layout 10: empties layout 9's expiry order, whose rows the purge no longer
/// reads.
pub(crate) fn drop_expiry_order(tx: &mut WriteTx) -> Result<()> {
    tx.clear_unlogged(&USAGE_DEDUP_BY_EXPIRY)
}

/// Checks the claims ([`claims`]): every claim of a live run names a usage event of its tenant
/// reported from a source and id of the claim's hashes, at most one is live per usage event and
/// per `(source, id)`, and every event reported with a `time` within the retention (less 5
/// minutes) has its live claim; each block is sorted, keyed by its first hash, and has a
/// filter that admits each; each run's count and latest acceptance are its claims'; no block
/// or filter belongs to a run its tenant does not list; layout 13's rows and layout 9's expiry
/// order are empty.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let horizon = dedup_horizon(c.now(), c.options_dedup_retention());
    let retention = c.options_dedup_retention();
    // Every tenant's runs: live (number → count, latest), and the others its rows may be of.
    let mut live: HashMap<(String, u64), (u64, Timestamp)> = HashMap::new();
    let mut known: HashSet<(String, u64)> = HashSet::new();
    for x in c.rows(r, &claims::USAGE_CLAIM_RUNS)? {
        let (tenant, runs) = (x.key.tenant_id.as_ref(), &x.value);
        for run in &runs.live {
            live.insert((tenant.to_owned(), run.no), (run.count, run.last_at));
            if run.no >= runs.next {
                c.violation(
                    claims::USAGE_CLAIM_RUNS.name(),
                    &x.bytes,
                    "a run numbered past `next`",
                );
            }
        }
        let others = runs
            .dropping
            .iter()
            .chain(runs.merge.iter().map(|m| &m.out.no));
        known.extend(others.map(|no| (tenant.to_owned(), *no)));
        if let Some(m) = &runs.merge
            && !m
                .inputs
                .iter()
                .all(|no| runs.live.iter().any(|l| l.no == *no))
        {
            c.violation(
                claims::USAGE_CLAIM_RUNS.name(),
                &x.bytes,
                "a merge of a run not live",
            );
        }
    }
    let mut filters: HashMap<Vec<u8>, BlockFilter> = HashMap::new();
    for x in c.rows(r, &claims::USAGE_CLAIM_FILTERS)? {
        filters.insert(x.bytes.clone(), x.value);
    }
    // The live claims of live runs, by (tenant, usage number): their hashes.
    let mut remembered: HashMap<(String, u64), Vec<(u64, u64)>> = HashMap::new();
    let mut counted: HashMap<(String, u64), (u64, Timestamp)> = HashMap::new();
    let blocks = claims::USAGE_CLAIM_BLOCKS.name();
    for x in c.rows(r, &claims::USAGE_CLAIM_BLOCKS)? {
        let (k, b) = (&x.key, &x.value);
        let run = (k.tenant_id.to_string(), k.run);
        let filter = filters.remove(&x.bytes);
        let sorted = b.claims.windows(2).all(|w| w[0].order(&w[1]).is_lt());
        let filtered = filter.is_some_and(|f| b.claims.iter().all(|cl| f.may_hold(cl.h)));
        let first = b.claims.first().map(|cl| cl.h) == Some(k.first_h);
        match (sorted && first, filtered) {
            (true, true) => c.ok(),
            (false, _) => c.violation(blocks, &x.bytes, "claims unsorted or misnamed"),
            (true, false) => c.violation(blocks, &x.bytes, "no filter admitting every claim"),
        }
        if !live.contains_key(&run) {
            if !known.contains(&run) {
                c.violation(blocks, &x.bytes, "a block of no run of its tenant");
            }
            continue;
        }
        let n = counted
            .entry(run.clone())
            .or_insert((0, Timestamp(i64::MIN)));
        for cl in &b.claims {
            n.0 += 1;
            n.1 = n.1.max(cl.accepted_at);
            if cl.live(c.now(), retention) {
                let who = (run.0.clone(), cl.seq);
                remembered.entry(who).or_default().push((cl.h, cl.h2));
            }
        }
    }
    for (key, _) in filters {
        c.violation(
            claims::USAGE_CLAIM_FILTERS.name(),
            &key,
            "a filter of no block",
        );
    }
    for (run, (count, last_at)) in &live {
        let got = counted
            .get(run)
            .copied()
            .unwrap_or((0, Timestamp(i64::MIN)));
        if got == (*count, *last_at) {
            c.ok();
        } else {
            let key = claims::RunsKey::new(&run.0).encode();
            c.violation(
                claims::USAGE_CLAIM_RUNS.name(),
                &key,
                format!(
                    "run {} lists {count} claims, latest {last_at:?}; its blocks hold {got:?}",
                    run.1
                ),
            );
        }
    }
    // Every reported event, by (tenant, number): its source and id.
    let mut reported: HashMap<(String, u64), (String, String)> = HashMap::new();
    for x in chunk::all_events(r, c)? {
        let Some(o) = x.rec.origin else {
            continue;
        };
        let who = (x.tenant, x.seq);
        if x.rec.created_at.0 > horizon {
            if remembered.contains_key(&who) {
                c.ok();
            } else {
                c.violation(
                    blocks,
                    &claims::RunsKey::new(&who.0).encode(),
                    format!(
                        "no live claim of usage event {} reported within the retention",
                        who.1
                    ),
                );
            }
        }
        reported.insert(who, (o.source, o.id));
    }
    // The live claims of each (tenant, source, id), through the events they name.
    let mut claims_of: HashMap<(&str, &str, &str), u64> = HashMap::new();
    for ((tenant, seq), hashes) in &remembered {
        let key = claims::RunsKey::new(tenant).encode();
        if hashes.len() > 1 {
            let why = format!("{} live claims of usage event {seq}", hashes.len());
            c.violation(blocks, &key, why);
        }
        for h in hashes {
            match reported.get(&(tenant.clone(), *seq)) {
                Some((s, i)) if claims::hashes(s, i) == *h => {
                    c.ok();
                    *claims_of.entry((tenant, s, i)).or_default() += 1;
                }
                _ => c.violation(
                    blocks,
                    &key,
                    format!(
                        "claim hashed {:#x} names no usage event {seq} ingested with its hashes",
                        h.0
                    ),
                ),
            }
        }
    }
    for ((tenant, source, id), n) in claims_of {
        if n > 1 {
            let key = claims::RunsKey::new(tenant).encode();
            c.violation(blocks, &key, format!("{n} live claims of ({source}, {id})"));
        }
    }
    for t in [USAGE_DEDUP.name(), USAGE_DEDUP_BY_EXPIRY.name()] {
        let mut any = false;
        r.scan_raw(
            t,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            Order::Asc,
            &mut |k, _| {
                any = true;
                c.violation(t, k, "a row of an older layout left");
                Ok(Flow::Stop)
            },
        )?;
        if !any {
            c.ok();
        }
    }
    Ok(())
}
