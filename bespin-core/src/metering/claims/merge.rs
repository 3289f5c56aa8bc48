//! The upkeep of a tenant's runs of claims: dropping runs past the retention and merging runs
//! of one size class, in steps of bounded work.
//!
//! A merge takes the [`FANOUT`] oldest runs of the smallest size class that has that many
//! (runs above an eighth of [`MAX_RUN`] are final) and writes their live claims, in order, as
//! a new run. Each step reads up to a share of its budget from every input, from where the
//! last step stopped (a hash), and writes every claim up to the least of the hashes each
//! input reached — all the inputs hold up to there — leaving out the claims past their
//! retention. Until the step that finds every input exhausted, lookups read the inputs and
//! never the output; that step makes the output live and the inputs dropping, in the same
//! write. A dropping run's rows are deleted in later steps.
//!
//! A step is worked out from any reader ([`Step::compute`]: on a snapshot before the writer
//! takes a request, or in the writer itself) and stored by the writer ([`Step::apply`]) only
//! if the merge is still exactly where the step started: a merge is named by its output's
//! number and random nonce and by the hash it is written up to, so a step worked out from a
//! state the writer no longer holds is dropped, never stored twice or out of place.

use super::index;
use super::{
    BLOCK, BlockView, Claim, Encoded, FANOUT, MAX_RUN, Run, Runs, RunsKey, USAGE_CLAIM_BLOCKS,
    USAGE_CLAIM_FILTERS, USAGE_CLAIM_RUNS, encode_blocks, put_blocks, remembered,
};
use crate::error::Result;
use crate::store::{Flow, NameKey, Order, Reader, Record, Table, WriteTx};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// A merge under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Merge {
    /// The run being written (its count and latest acceptance so far).
    pub out: Run,
    /// The runs merged, live until the merge completes.
    pub inputs: Vec<u64>,
    /// The hash up to which the output is written (none before the first step).
    pub after: Option<u64>,
}

/// The upkeep a request that adds `claims` claims pays for, in claims read or rows deleted:
/// every claim is merged about once per size class (six from a batch of 1,000 to a final run),
/// so eight times what it adds keeps merges ahead of the claims that make them, plus a
/// constant so that small requests still finish the merges of small runs.
pub(crate) fn budget_for(claims: u64) -> u64 {
    claims.saturating_mul(8).saturating_add(4 * BLOCK as u64)
}

/// Does at most `budget` of upkeep on `runs` of `tenant` (the caller writes `runs` back):
/// live runs whose latest claim is past the `retention` become dropping, dropping runs'
/// rows are deleted, a merge starts if none is under way and a size class has [`FANOUT`]
/// runs, and — if `steps` — the merge under way takes steps. Returns how many claims were
/// forgotten (in dropped runs, or left out of a merge as past the retention) and how much
/// of the budget was used.
pub(crate) fn upkeep(
    tx: &mut WriteTx,
    tenant: &str,
    runs: &mut Runs,
    now: Timestamp,
    retention: i64,
    (budget, steps): (u64, bool),
) -> Result<(u64, u64)> {
    let mut forgotten = 0;
    let merging: Vec<u64> = runs.merge.iter().flat_map(|m| m.inputs.clone()).collect();
    let (expired, live): (Vec<Run>, Vec<Run>) = std::mem::take(&mut runs.live)
        .into_iter()
        .partition(|r| !merging.contains(&r.no) && !remembered(r.last_at, now, retention));
    runs.live = live;
    for r in expired {
        forgotten += r.count;
        runs.dropping.push(r.no);
    }
    let mut left = budget;
    while let Some(&no) = runs.dropping.first() {
        if left == 0 {
            break;
        }
        let (deleted, done) = delete_some(tx, tenant, no, left)?;
        left = left.saturating_sub(deleted.max(1));
        if !done {
            break;
        }
        runs.dropping.remove(0);
    }
    while left > 0 {
        if runs.merge.is_none() {
            runs.merge = choose(runs)?;
        }
        if !steps {
            break;
        }
        let Some(step) = Step::compute(tx, tenant, runs, now, retention, left)? else {
            break;
        };
        let (read, left_out) = (step.read, step.left_out);
        forgotten += left_out;
        left = left.saturating_sub(read.max(1));
        step.apply(tx, tenant, runs)?;
    }
    Ok((forgotten, budget - left))
}

/// The (number, nonce) of each input of a merge, as listed live.
fn runs_live(live: &[Run], inputs: &[u64]) -> Vec<(u64, u64)> {
    live.iter()
        .filter(|r| inputs.contains(&r.no))
        .map(|r| (r.no, r.nonce))
        .collect()
}

/// Whether merges fall behind the runs being written: a size class below the final runs
/// holds twice [`FANOUT`] live runs besides the merge's inputs (its steps worked out ahead
/// were dropped, or not made). A request then takes merge steps in the writer itself, so a
/// lookup never visits more than about twice the runs it would with merges kept up.
pub(crate) fn lagging(runs: &Runs) -> bool {
    let merging: &[u64] = runs.merge.as_ref().map_or(&[], |m| &m.inputs);
    let mut count: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    (runs.live.iter())
        .filter(|r| r.count.saturating_mul(FANOUT) <= MAX_RUN && !merging.contains(&r.no))
        .any(|r| {
            let n = count.entry(r.class()).or_default();
            *n += 1;
            *n >= 2 * FANOUT
        })
}

/// The inputs of a new merge, if a size class below the final runs has [`FANOUT`] live runs:
/// its oldest ones.
fn pick(runs: &Runs) -> Option<Vec<u64>> {
    let mergeable = |r: &&Run| r.count.saturating_mul(FANOUT) <= MAX_RUN;
    let mut classes: Vec<u32> = runs.live.iter().filter(mergeable).map(Run::class).collect();
    classes.sort_unstable();
    let class = classes
        .windows(FANOUT as usize)
        .find(|w| w[0] == w[w.len() - 1])
        .map(|w| w[0])?;
    let inputs = runs
        .live
        .iter()
        .filter(mergeable)
        .filter(|r| r.class() == class);
    Some(inputs.take(FANOUT as usize).map(|r| r.no).collect())
}

/// A new merge of [`pick`]'s inputs into a new run, if there are any.
fn choose(runs: &mut Runs) -> Result<Option<Merge>> {
    let Some(inputs) = pick(runs) else {
        return Ok(None);
    };
    let no = runs.next;
    runs.next += 1;
    Ok(Some(Merge {
        out: Run {
            no,
            nonce: super::nonce()?,
            count: 0,
            last_at: Timestamp(i64::MIN),
        },
        inputs,
        after: None,
    }))
}

/// One step of a merge, worked out from the merge as some reader saw it ([`Step::compute`]:
/// the inputs read, their claims merged, the blocks encoded) and then stored in the writer
/// ([`Step::apply`]) if the merge is still where it was: a step worked out on a snapshot
/// before the writer takes the request ([`super::Ahead`]) leaves the writer only the storing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    /// The merge as it was before the step.
    pub(super) from: Merge,
    /// The output's next blocks.
    blocks: Vec<Encoded>,
    /// Claims read, and left out as past the retention.
    read: u64,
    left_out: u64,
    /// Claims written, and the latest acceptance among them.
    pub(super) count: u64,
    last_at: Option<Timestamp>,
    /// Where the output is written up to after the step (`None`: the merge is complete).
    pub(super) after: Option<u64>,
}

impl Step {
    /// Works out the next step of the merge under way of `runs` (of `tenant`), if any, as `r`
    /// sees its inputs, reading at most about `budget` claims.
    pub(crate) fn compute(
        r: &impl Reader,
        tenant: &str,
        runs: &Runs,
        now: Timestamp,
        retention: i64,
        budget: u64,
    ) -> Result<Option<Step>> {
        let Some(m) = &runs.merge else {
            return Ok(None);
        };
        let inputs = runs_live(&runs.live, &m.inputs);
        let share = (budget / inputs.len().max(1) as u64).max(BLOCK as u64) as usize;
        let mut read = 0u64;
        // The claims read past `after`, one input after the other.
        let mut taken: Vec<Claim> = Vec::new();
        // The least last hash read among the inputs not read to their end.
        let mut bound: Option<u64> = None;
        for (no, nonce) in inputs {
            let idx = index::get(r, tenant, no, nonce)?;
            let (Some(start), left) = idx.blocks_from(m.after) else {
                continue;
            };
            // One range read per input (one query on PostgreSQL), from the block holding the
            // hash after which the output is written.
            let (mut got, mut blocks) = (0usize, 0usize);
            let mut last = m.after.unwrap_or(0);
            let t = &USAGE_CLAIM_BLOCKS;
            let from = t.prefix().tenant(tenant).u64(no).u64(start);
            let lo = Bound::Included(from.as_bytes());
            let prefix = t.prefix().tenant(tenant).u64(no);
            r.scan_stored(
                t,
                &prefix,
                lo,
                Bound::Unbounded,
                Order::Asc,
                &mut |_, block| {
                    let view = BlockView::of_stored(block)?;
                    read += view.len() as u64;
                    for i in 0..view.len() {
                        if m.after.is_none_or(|a| view.h(i) > a) {
                            got += 1;
                            last = view.h(i);
                            taken.push(view.claim(i));
                        }
                    }
                    blocks += 1;
                    Ok(if got < share {
                        Flow::Continue
                    } else {
                        Flow::Stop
                    })
                },
            )?;
            if blocks < left {
                // Not read to its end: everything up to its last hash read is taken (a block
                // never splits a hash, and whole blocks were read).
                bound = Some(bound.map_or(last, |b| b.min(last)));
            }
        }
        // Up to the bound, and of those the claims still remembered.
        taken.retain(|c| bound.is_none_or(|b| c.h <= b));
        let within = taken.len();
        taken.retain(|c| c.live(now, retention));
        let left_out = (within - taken.len()) as u64;
        // The inputs' claims one input after the other, each input's in order: a stable sort
        // finds those sorted stretches and merges them (about n·log2(inputs) comparisons),
        // where an unstable sort compared as for a shuffle (a fifth of a merge's
        // instructions).
        taken.sort_by(Claim::order);
        Ok(Some(Step {
            from: m.clone(),
            blocks: encode_blocks(&taken)?,
            read,
            left_out,
            count: taken.len() as u64,
            last_at: taken.iter().map(|c| c.accepted_at).max(),
            after: bound,
        }))
    }

    /// Stores the step in the merge under way of `runs` (of `tenant`), if that merge is still
    /// where the step started from, and completes the merge if the step was its last: the
    /// output becomes live and the inputs dropping, in this same write. Returns whether it
    /// was stored (a step of a merge that moved on since, or was replaced, is dropped).
    pub(crate) fn apply(self, tx: &mut WriteTx, tenant: &str, runs: &mut Runs) -> Result<bool> {
        let Some(m) = runs.merge.as_mut().filter(|m| **m == self.from) else {
            return Ok(false);
        };
        put_blocks(tx, tenant, m.out.no, &self.blocks, None)?;
        m.out.count += self.count;
        if let Some(latest) = self.last_at {
            m.out.last_at = m.out.last_at.max(latest);
        }
        m.after = self.after;
        if self.after.is_none() {
            complete(runs)?;
        }
        Ok(true)
    }
}

/// Completes the merge under way of `runs`: its output live (if it holds any claim), its
/// inputs dropping.
fn complete(runs: &mut Runs) -> Result<()> {
    let m = runs
        .merge
        .take()
        .ok_or_else(|| crate::Error::Internal("merge lost".into()))?;
    runs.live.retain(|r| !m.inputs.contains(&r.no));
    if m.out.count > 0 {
        // Kept in number order, which is the order runs were started in.
        let at = runs.live.partition_point(|r| r.no < m.out.no);
        runs.live.insert(at, m.out);
    }
    runs.dropping.extend(m.inputs);
    Ok(())
}

/// Deletes up to `max` rows of dropping run `no` (its blocks, then its filters); returns how
/// many went and whether none is left.
fn delete_some(tx: &mut WriteTx, tenant: &str, no: u64, max: u64) -> Result<(u64, bool)> {
    let prefix = USAGE_CLAIM_BLOCKS.prefix().tenant(tenant).u64(no);
    let end = crate::store::successor(prefix.as_bytes());
    let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut deleted = 0;
    for table in [USAGE_CLAIM_BLOCKS.name(), USAGE_CLAIM_FILTERS.name()] {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let lo = Bound::Included(prefix.as_bytes());
        tx.scan_raw(table, lo, hi, Order::Asc, &mut |k, _| {
            keys.push(k.to_vec());
            Ok(if deleted + (keys.len() as u64) < max {
                Flow::Continue
            } else {
                Flow::Stop
            })
        })?;
        for k in &keys {
            tx.delete_raw(table, k)?;
        }
        deleted += keys.len() as u64;
        if deleted >= max {
            return Ok((deleted, false));
        }
    }
    Ok((deleted, true))
}

/// Global: where [`upkeep_all`] stopped: the key of the last tenant's runs it visited.
pub(crate) const USAGE_CLAIM_UPKEEP: Table<NameKey<'static>, Cursor> =
    Table::new("usage_claim_upkeep");

/// The position of [`upkeep_all`] among the tenants' runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The stored key of the last row visited (empty: start from the first).
    pub after: Vec<u8>,
}
impl Record for Cursor {}

/// The erasure's companion of a tenant's runs row `key`: the upkeep's cursor, a global row,
/// names the tenant when it stopped at it; it is set back to the start, so no row names an
/// erased tenant (the next walk starts over, which costs a look at each tenant's row).
pub(crate) fn forget_cursor(tx: &mut WriteTx, key: &[u8], _: &[u8]) -> Result<()> {
    let name = NameKey::new("claims");
    if tx
        .get(&USAGE_CLAIM_UPKEEP, &name)?
        .is_some_and(|c| c.after == key)
    {
        tx.put(&USAGE_CLAIM_UPKEEP, &name, &Cursor::default())?;
    }
    Ok(())
}

/// Whether `runs` has upkeep to do at `now`: a run to drop, a merge under way or one to start.
fn has_work(runs: &Runs, now: Timestamp, retention: i64) -> bool {
    runs.merge.is_some()
        || !runs.dropping.is_empty()
        || runs
            .live
            .iter()
            .any(|r| !remembered(r.last_at, now, retention))
        || pick(runs).is_some()
}

/// Does at most about `max` of upkeep on the claims of every tenant, from where the last call
/// stopped, for the minute's upkeep: runs past the retention are dropped and merges left half
/// done by idle tenants go on. Visits at most `max` tenants' rows. Returns how many claims
/// were forgotten.
pub(crate) fn upkeep_all(
    tx: &mut WriteTx,
    now: Timestamp,
    retention: i64,
    max: u64,
) -> Result<u64> {
    let name = NameKey::new("claims");
    let cursor = tx.get(&USAGE_CLAIM_UPKEEP, &name)?.unwrap_or_default();
    let t = &USAGE_CLAIM_RUNS;
    let lo = if cursor.after.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(cursor.after.as_slice())
    };
    let mut visited: Vec<(Vec<u8>, Runs)> = Vec::new();
    tx.scan_stored(
        t,
        &t.prefix(),
        lo,
        Bound::Unbounded,
        Order::Asc,
        &mut |k, v| {
            visited.push((k.to_vec(), crate::store::codec::decode(v)?));
            Ok(if (visited.len() as u64) < max.max(1) {
                Flow::Continue
            } else {
                Flow::Stop
            })
        },
    )?;
    let wrapped = (visited.len() as u64) < max.max(1);
    // Each row visited costs one of `max`; a tenant's upkeep costs what it did.
    let mut left = max;
    let mut forgotten = 0;
    let mut last = Vec::new();
    let mut stopped = false;
    for (k, mut runs) in visited {
        if left == 0 {
            stopped = true;
            break;
        }
        last = k.clone();
        left -= 1;
        if !has_work(&runs, now, retention) {
            continue;
        }
        let Some(key) = RunsKey::decode(&k) else {
            continue;
        };
        let tenant = key.tenant_id.into_owned();
        if crate::tenancy::erasure::is_erased(tx, &tenant)? {
            // Being erased: its rows go, work on them would be wasted.
            continue;
        }
        let budget = left.max(BLOCK as u64);
        let (gone, used) = upkeep(tx, &tenant, &mut runs, now, retention, (budget, true))?;
        forgotten += gone;
        left = left.saturating_sub(used);
        tx.put(t, &RunsKey::new(&tenant), &runs)?;
    }
    let after = if wrapped && !stopped {
        Vec::new()
    } else {
        last
    };
    if after != cursor.after {
        tx.put(&USAGE_CLAIM_UPKEEP, &name, &Cursor { after })?;
    }
    Ok(forgotten)
}
