//! The claims of reported usage events: what makes a repeated `(source, id)` of a tenant a
//! duplicate within the retention (layout 14).
//!
//! A claim is remembered in a **run**: the claims one request accepted, sorted by a 64-bit hash
//! of `(source, id)` and written once, in blocks of up to [`BLOCK`] claims (`usage_claim_blocks`,
//! keyed (tenant, run, first hash of the block)), each with a Bloom filter
//! (`usage_claim_filters`, same key). A request's new claims so cost a few pages written
//! together, wherever their ids fall, where one B-tree row per claim (layouts up to 13) wrote a
//! page of its own for each claim once the table outgrew a batch: the cost that kept random
//! ids (UUIDv4) 2.3–3.5x below time-ordered ones.
//!
//! Looking a claim up reads, for each live run of the tenant, the one block whose range holds
//! its hash — only when that block's filter says the claim may be there (about 0.8% of the
//! time for a claim that is not) — and compares `(source, id)` exactly: the hash orders and
//! filters, it never decides. The runs' first hashes and filters are held in memory per
//! process ([`index`]). A tenant's runs are listed in one row (`usage_claim_runs`), which every
//! request that claims reads and writes: on PostgreSQL that row and the batch lock keep two
//! processes from claiming one id twice.
//!
//! Runs are merged so that a lookup visits few ([`merge`]): [`FANOUT`] runs of a size class
//! (a power of [`FANOUT`]) become one, in steps of bounded work that readers never see half
//! done (the inputs stay live until the step that completes the output swaps them), paid for
//! by the requests that add claims (a multiple of what they add) and by the minute's upkeep.
//! Claims past their retention count as gone at once; a merge leaves them out, and a run
//! whose latest claim is past it is dropped whole.

mod filter;
pub(crate) mod index;
pub(crate) mod merge;
#[cfg(test)]
mod tests;

pub(crate) use filter::BlockFilter;

use crate::error::Result;
use crate::store::{Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use index::RunIndex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

/// Claims a block holds at most (more only where claims share a hash, which never straddle
/// two blocks).
pub(crate) const BLOCK: usize = 128;
/// How many runs of one size class are merged into one.
pub(crate) const FANOUT: u64 = 8;
/// The most claims a merge makes one run of: runs above an eighth of it are merged no more.
pub(crate) const MAX_RUN: u64 = 1 << 20;

key! {
    /// (tenant): its runs of claims.
    pub(crate) struct RunsKey<'a> { tenant_id: tenant }
    /// (tenant, run, first hash of the block).
    pub(crate) struct BlockKey<'a> { tenant_id: tenant, run: u64, first_h: u64 }
}

/// (tenant) → its runs of claims, the merge under way, the runs being dropped.
pub(crate) const USAGE_CLAIM_RUNS: Table<RunsKey<'static>, Runs> = Table::new("usage_claim_runs");
/// (tenant, run, first hash) → the block's claims, sorted by hash.
pub(crate) const USAGE_CLAIM_BLOCKS: Table<BlockKey<'static>, ClaimBlock> =
    Table::new("usage_claim_blocks");
/// (tenant, run, first hash) → the block's filter.
pub(crate) const USAGE_CLAIM_FILTERS: Table<BlockKey<'static>, BlockFilter> =
    Table::new("usage_claim_filters");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[
    &USAGE_CLAIM_RUNS,
    &USAGE_CLAIM_BLOCKS,
    &USAGE_CLAIM_FILTERS,
    &merge::USAGE_CLAIM_UPKEEP,
];

/// A tenant's runs of claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Runs {
    /// The number the next run gets.
    pub next: u64,
    /// The runs lookups read, oldest first.
    pub live: Vec<Run>,
    /// The merge under way, if any.
    pub merge: Option<merge::Merge>,
    /// Runs no lookup reads any more whose rows are being deleted, oldest first.
    pub dropping: Vec<u64>,
}
impl Record for Runs {}

/// One run of claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Run {
    /// Its number (unique within the tenant).
    pub no: u64,
    /// Chosen at random when it was written: with the number, what names its cached index.
    pub nonce: u64,
    /// How many claims it holds.
    pub count: u64,
    /// The latest acceptance among them: the run is dropped once that is past the retention.
    pub last_at: Timestamp,
}

impl Run {
    /// Its size class: runs of one class are merged together.
    pub(crate) fn class(&self) -> u32 {
        self.count.max(1).ilog(FANOUT)
    }
}

/// One remembered event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// [`hash`] of its source and id.
    pub h: u64,
    /// Its usage number.
    pub seq: u64,
    /// When it was accepted (the retention counts from here).
    pub accepted_at: Timestamp,
    /// The CloudEvent `source`.
    pub source: String,
    /// The CloudEvent `id`.
    pub id: String,
}

impl Claim {
    /// Whether it is still remembered at `now`: accepted within the `retention`. A claim past
    /// it counts as gone everywhere, whether or not its run has been dropped yet.
    pub(crate) fn live(&self, now: Timestamp, retention: i64) -> bool {
        self.accepted_at.0.saturating_add(retention) > now.0
    }

    fn is(&self, h: u64, source: &str, id: &str) -> bool {
        self.h == h && self.source == source && self.id == id
    }

    /// The order of claims in a run: by hash, then source and id (so equal hashes, which a
    /// block never splits, still have one order).
    pub(crate) fn order(&self, o: &Claim) -> std::cmp::Ordering {
        (self.h, &self.source, &self.id).cmp(&(o.h, &o.source, &o.id))
    }
}

/// The claims of one block, in [`Claim::order`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClaimBlock {
    pub claims: Vec<Claim>,
}
impl Record for ClaimBlock {}

/// The hash a claim is sorted and filtered by: SipHash-1-3 of the source, a separator no
/// source holds, and the id. Stable across builds and platforms (it is stored); its key is
/// fixed, so a client could search for ids that collide — which would cost it a block read
/// each, never a wrong answer, since a match is confirmed on `(source, id)`.
pub(crate) fn hash(source: &str, id: &str) -> u64 {
    let mut s = siphasher::sip::SipHasher13::new_with_keys(0x6265_7370_696e_2d63, 0x6c61_696d_7321);
    s.write(source.as_bytes());
    s.write_u8(0xFF);
    s.write(id.as_bytes());
    s.finish()
}

/// A random nonce for a new run.
fn nonce() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| crate::Error::Internal(format!("no randomness: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

/// Writes `claims` (sorted in [`Claim::order`]) as run `no` of `tenant` in blocks of up to
/// [`BLOCK`], never splitting claims of one hash; returns the run's index.
pub(crate) fn write_blocks(
    tx: &mut WriteTx,
    tenant: &str,
    no: u64,
    claims: Vec<Claim>,
    index: &mut RunIndex,
) -> Result<()> {
    let mut block = ClaimBlock::default();
    let mut flush = |tx: &mut WriteTx, block: &mut ClaimBlock| -> Result<()> {
        let Some(first) = block.claims.first().map(|c| c.h) else {
            return Ok(());
        };
        let f = BlockFilter::of(block.claims.iter().map(|c| c.h));
        let key = BlockKey::new(tenant, no, first);
        tx.put(&USAGE_CLAIM_BLOCKS, &key, block)?;
        tx.put(&USAGE_CLAIM_FILTERS, &key, &f)?;
        index.push(first, f);
        block.claims.clear();
        Ok(())
    };
    for c in claims {
        let splits = block.claims.len() >= BLOCK && block.claims.last().is_some_and(|l| l.h != c.h);
        if splits {
            flush(tx, &mut block)?;
        }
        block.claims.push(c);
    }
    flush(tx, &mut block)
}

/// Writes `claims` (sorted in [`Claim::order`]) as run `no` of `tenant`, its index cached, and
/// returns the run to list.
pub(crate) fn write_run(
    tx: &mut WriteTx,
    tenant: &str,
    no: u64,
    claims: Vec<Claim>,
) -> Result<Run> {
    let count = claims.len() as u64;
    let last_at = claims
        .iter()
        .map(|c| c.accepted_at)
        .max()
        .unwrap_or(Timestamp(i64::MIN));
    let nonce = nonce()?;
    let mut index = RunIndex::default();
    write_blocks(tx, tenant, no, claims, &mut index)?;
    index::remember(tenant, no, nonce, index);
    Ok(Run {
        no,
        nonce,
        count,
        last_at,
    })
}

/// One request's view of a tenant's claims: the runs as read at its start, the claims it
/// accepted so far, and the blocks it read (a resent batch reads each block once).
pub(crate) struct Claims<'t> {
    tenant: &'t str,
    runs: Runs,
    indexes: Vec<(u64, Arc<RunIndex>)>,
    blocks: HashMap<(u64, u64), Arc<ClaimBlock>>,
    new: Vec<Claim>,
    new_by_hash: HashMap<u64, usize>,
}

impl<'t> Claims<'t> {
    /// Reads `tenant`'s runs and their indexes.
    pub(crate) fn open(tx: &WriteTx, tenant: &'t str) -> Result<Claims<'t>> {
        let runs = tx
            .get(&USAGE_CLAIM_RUNS, &RunsKey::new(tenant))?
            .unwrap_or_default();
        let indexes = runs
            .live
            .iter()
            .map(|r| Ok((r.no, index::get(tx, tenant, r.no, r.nonce)?)))
            .collect::<Result<_>>()?;
        Ok(Claims {
            tenant,
            runs,
            indexes,
            blocks: HashMap::new(),
            new: Vec::new(),
            new_by_hash: HashMap::new(),
        })
    }

    /// Reads at once every block that a lookup of these `(source, id)`s will read (on
    /// PostgreSQL one round trip for a batch, not one per block; nothing on redb).
    pub(crate) fn prefetch<'a>(
        &self,
        tx: &mut WriteTx,
        keys: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        let mut wanted: Vec<(u64, u64)> = Vec::new();
        for (source, id) in keys {
            let h = hash(source, id);
            for (no, index) in &self.indexes {
                if let Some(first) = index.block_for(h) {
                    wanted.push((*no, first));
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let tenant = self.tenant;
        tx.prefetch(
            &USAGE_CLAIM_BLOCKS,
            wanted
                .iter()
                .map(|(no, first)| BlockKey::new(tenant, *no, *first)),
        )
    }

    /// The usage number of the event remembered under `(source, id)` at `now`, if one was
    /// accepted within the `retention` (by an earlier request, or earlier in this one).
    pub(crate) fn find(
        &mut self,
        tx: &WriteTx,
        source: &str,
        id: &str,
        now: Timestamp,
        retention: i64,
    ) -> Result<Option<u64>> {
        let h = hash(source, id);
        if let Some(&i) = self.new_by_hash.get(&h) {
            // Claims of this request sharing a hash are chained by position: the map holds
            // the latest, and earlier ones are found by scanning back (hash collisions only).
            if let Some(c) = self.new[..=i].iter().rev().find(|c| c.is(h, source, id)) {
                return Ok(Some(c.seq));
            }
        }
        for (no, index) in &self.indexes {
            let Some(first) = index.block_for(h) else {
                continue;
            };
            let block = match self.blocks.get(&(*no, first)) {
                Some(b) => b.clone(),
                None => {
                    let key = BlockKey::new(self.tenant, *no, first);
                    let b = Arc::new(tx.get(&USAGE_CLAIM_BLOCKS, &key)?.unwrap_or_default());
                    self.blocks.insert((*no, first), b.clone());
                    b
                }
            };
            let from = block.claims.partition_point(|c| c.h < h);
            let hit = block.claims[from..]
                .iter()
                .take_while(|c| c.h == h)
                .find(|c| c.is(h, source, id) && c.live(now, retention));
            if let Some(c) = hit {
                return Ok(Some(c.seq));
            }
        }
        Ok(None)
    }

    /// Remembers `(source, id)` as usage event `seq`, accepted at `now` (written by
    /// [`Claims::finish`]). The caller has found no live claim of it ([`Claims::find`]).
    pub(crate) fn add(&mut self, source: &str, id: &str, seq: u64, now: Timestamp) {
        let h = hash(source, id);
        self.new_by_hash.insert(h, self.new.len());
        self.new.push(Claim {
            h,
            seq,
            accepted_at: now,
            source: source.to_owned(),
            id: id.to_owned(),
        });
    }

    /// Writes this request's claims as a new run and does the upkeep they pay for (see
    /// [`merge::upkeep`]): at most a few times the work of writing them.
    pub(crate) fn finish(mut self, tx: &mut WriteTx, now: Timestamp, retention: i64) -> Result<()> {
        if self.new.is_empty() {
            return Ok(());
        }
        let count = self.new.len() as u64;
        let mut claims = std::mem::take(&mut self.new);
        claims.sort_unstable_by(Claim::order);
        let no = self.runs.next;
        self.runs.next += 1;
        let run = write_run(tx, self.tenant, no, claims)?;
        self.runs.live.push(run);
        let budget = merge::budget_for(count);
        merge::upkeep(tx, self.tenant, &mut self.runs, now, retention, budget)?;
        tx.put(&USAGE_CLAIM_RUNS, &RunsKey::new(self.tenant), &self.runs)
    }
}

/// Every claim of `tenant`'s live runs, with its run's number (for the tests).
#[cfg(test)]
pub(crate) fn live_claims(r: &impl Reader, tenant: &str) -> Result<Vec<(u64, Claim)>> {
    let runs = r
        .get(&USAGE_CLAIM_RUNS, &RunsKey::new(tenant))?
        .unwrap_or_default();
    let mut out = Vec::new();
    for run in &runs.live {
        let t = &USAGE_CLAIM_BLOCKS;
        r.scan(
            t,
            &t.prefix().tenant(tenant).u64(run.no),
            crate::store::Order::Asc,
            |_, b| {
                out.extend(b.claims.into_iter().map(|c| (run.no, c)));
                Ok(crate::store::Flow::Continue)
            },
        )?;
    }
    Ok(out)
}
