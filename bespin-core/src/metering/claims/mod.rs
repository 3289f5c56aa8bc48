//! The claims of reported usage events: what makes a repeated `(source, id)` of a tenant a
//! duplicate within the retention (layout 15).
//!
//! A claim is two independent 64-bit hashes of `(source, id)` ([`hash`], [`hash2`]), the usage
//! number of the event accepted with them, and when it was accepted: 32 bytes, whatever the
//! length of the id (layout 14 kept the source and id instead of the second hash, 81 bytes a
//! claim with UUIDs, written again by every merge). It is remembered in a **run**: the claims
//! one request accepted, sorted by hash and written once, in blocks of up to [`BLOCK`] claims
//! (`usage_claim_blocks`, keyed (tenant, run, first hash of the block)), each with a Bloom
//! filter (`usage_claim_filters`, same key). A request's new claims so cost a few pages written
//! together, wherever their ids fall, where one B-tree row per claim (layouts up to 13) wrote a
//! page of its own for each claim once the table outgrew a batch: the cost that kept random
//! ids (UUIDv4) 2.3–3.5x below time-ordered ones.
//!
//! Looking a claim up reads, for each live run of the tenant, the one block whose range holds
//! its hash — only when that block's filter says the claim may be there (about 0.2% of the
//! time for a claim that is not) — and takes a claim there with both hashes equal for the
//! event's: the first orders and filters, the two together decide. Two different `(source,
//! id)`s of a tenant share both with a probability of 2⁻¹²⁸ (about n·2⁻¹²⁸ that one of n live
//! claims is mistaken for a new event's: 3·10⁻²⁰ at a billion), below the chance that two
//! clients' random UUIDv4 ids (122 random bits) collide, which de-duplication by id accepts
//! anyway; only a tenant's own ids meet, so a crafted collision could only drop its own
//! report. Confirming each match on the stored event instead (tried, layout 15's first form)
//! read a chunk of up to 1,000 events for each duplicate and made a request of scattered
//! repeats cost the writer 10x what layout 14's did. The runs' first hashes and filters are
//! held in memory per process ([`index`]). A tenant's runs are listed in one row (`usage_claim_runs`), which every
//! request that claims reads and writes: on PostgreSQL that row and the batch lock keep two
//! processes from claiming one id twice.
//!
//! Runs are merged so that a lookup visits few ([`merge`]): [`FANOUT`] runs of a size class
//! (a power of [`FANOUT`]) become one, in steps of bounded work that readers never see half
//! done (the inputs stay live until the step that completes the output swaps them), paid for
//! by the requests that add claims (a multiple of what they add) and by the minute's upkeep.
//! Claims past their retention count as gone at once; a merge leaves them out, and a run
//! whose latest claim is past it is dropped whole.
//!
//! Most of a request's claim work is done before the writer takes it, on a snapshot
//! ([`Ahead`]): its lookups in the runs the snapshot lists, and the next step of the merge
//! under way — read, merged and encoded there, so that the writer only stores it, if the
//! merge is still where it was. A merge a request starts is so stepped by the requests
//! after it (or the upkeep); the writer steps it itself only for a request that did no such
//! work, or when merges fall behind ([`merge::lagging`]).

mod ahead;
#[cfg(test)]
mod ahead_tests;
mod block;
mod filter;
pub(crate) mod index;
#[cfg(test)]
mod match_tests;
pub(crate) mod merge;
#[cfg(test)]
mod tests;

pub(crate) use ahead::Ahead;
pub(crate) use block::{BlockView, ClaimBlock};
pub(crate) use filter::BlockFilter;

use crate::error::Result;
use crate::store::{Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use index::RunIndex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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

/// (tenant) → its runs of claims, the merge under way, the runs being dropped. Its erasure
/// also moves the upkeep's cursor off the tenant ([`merge::forget_cursor`]), the one global
/// row that can name it.
pub(crate) const USAGE_CLAIM_RUNS: Table<RunsKey<'static>, Runs> =
    Table::new("usage_claim_runs").with_companions(merge::forget_cursor);
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// [`hash`] of its source and id.
    pub h: u64,
    /// [`hash2`] of its source and id.
    pub h2: u64,
    /// Its usage number.
    pub seq: u64,
    /// When it was accepted (the retention counts from here).
    pub accepted_at: Timestamp,
}

impl Claim {
    /// Whether it is still remembered at `now`: accepted within the `retention`. A claim past
    /// it counts as gone everywhere, whether or not its run has been dropped yet.
    pub(crate) fn live(&self, now: Timestamp, retention: i64) -> bool {
        remembered(self.accepted_at, now, retention)
    }

    /// The order of claims in a run: by hash, then usage number (so equal hashes, which a
    /// block never splits, still have one order).
    pub(crate) fn order(&self, o: &Claim) -> std::cmp::Ordering {
        (self.h, self.seq).cmp(&(o.h, o.seq))
    }
}

/// The hash a claim is sorted and filtered by: SipHash-1-3 of the source, a separator no
/// source holds, and the id. Stable across builds and platforms (it is stored); its key is
/// fixed, so a client could search for ids that collide — which would cost it a block read
/// each, never a wrong answer unless [`hash2`] collides too.
pub(crate) fn hash(source: &str, id: &str) -> u64 {
    sip(KEY1, source.as_bytes(), id.as_bytes())
}

/// The second hash of a claim, which a match needs as well: the same bytes hashed with keys
/// of their own, so independent of [`hash`].
pub(crate) fn hash2(source: &str, id: &str) -> u64 {
    sip(KEY2, source.as_bytes(), id.as_bytes())
}

/// Both hashes of `(source, id)`: what a lookup and a claim are made from.
pub(crate) fn hashes(source: &str, id: &str) -> (u64, u64) {
    (hash(source, id), hash2(source, id))
}

/// The keys of [`hash`] and [`hash2`].
const KEY1: (u64, u64) = (0x6265_7370_696e_2d63, 0x6c61_696d_7321);
const KEY2: (u64, u64) = (0x6365_7274_6169_6e6c, 0x7920_6f6e_6365);

/// SipHash-1-3 under `key` of `source`, a separator no source holds, and `id`.
fn sip((k0, k1): (u64, u64), source: &[u8], id: &[u8]) -> u64 {
    let mut s = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
    s.write(source);
    s.write_u8(0xFF);
    s.write(id);
    s.finish()
}

/// [`hash2`] of the bytes of a source and id (as a block of layout 14 holds them).
fn hash2_of_bytes(source: &[u8], id: &[u8]) -> u64 {
    sip(KEY2, source, id)
}

/// Whether a claim accepted at `accepted_at` is still remembered at `now`: accepted within the
/// `retention`. A claim past it counts as gone everywhere (lookups, merges, the dropping of a
/// run by its latest claim), whether or not its run has been dropped yet.
pub(crate) fn remembered(accepted_at: Timestamp, now: Timestamp, retention: i64) -> bool {
    accepted_at.0.saturating_add(retention) > now.0
}

/// A random nonce for a new run.
fn nonce() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| crate::Error::Internal(format!("no randomness: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

/// A block of claims ready to be stored: its first hash, its bytes as stored, its filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Encoded {
    first_h: u64,
    bytes: Vec<u8>,
    filter: BlockFilter,
}

/// `claims` (sorted in [`Claim::order`]) as blocks of up to [`BLOCK`] claims, never splitting
/// claims of one hash, each with its filter (the work of writing them that needs no
/// transaction: a merge's is done before the writer takes it, see [`merge`]).
pub(crate) fn encode_blocks(claims: &[Claim]) -> Result<Vec<Encoded>> {
    let mut out = Vec::with_capacity(claims.len().div_ceil(BLOCK));
    let mut rest = claims;
    while let Some(first) = rest.first() {
        let mut end = rest.len().min(BLOCK);
        while end < rest.len() && rest[end].h == rest[end - 1].h {
            end += 1;
        }
        let (block, after) = rest.split_at(end);
        rest = after;
        let mut bytes = vec![ClaimBlock::VERSION];
        block::encode(block, &mut bytes)?;
        let filter = BlockFilter::of(block.iter().map(|c| c.h));
        out.push(Encoded {
            first_h: first.h,
            bytes,
            filter,
        });
    }
    Ok(out)
}

/// Stores `blocks` in run `no` of `tenant`, adding them to `index` if given.
pub(crate) fn put_blocks(
    tx: &mut WriteTx,
    tenant: &str,
    no: u64,
    blocks: &[Encoded],
    mut index: Option<&mut RunIndex>,
) -> Result<()> {
    for b in blocks {
        let key = BlockKey::new(tenant, no, b.first_h);
        tx.put_encoded(&USAGE_CLAIM_BLOCKS, &key, &b.bytes)?;
        tx.put(&USAGE_CLAIM_FILTERS, &key, &b.filter)?;
        if let Some(index) = index.as_deref_mut() {
            index.push(b.first_h, &b.filter);
        }
    }
    Ok(())
}

/// Writes `claims` (sorted in [`Claim::order`]) as run `no` of `tenant`, its index cached, and
/// returns the run to list.
pub(crate) fn write_run(tx: &mut WriteTx, tenant: &str, no: u64, claims: &[Claim]) -> Result<Run> {
    let count = claims.len() as u64;
    let last_at = claims
        .iter()
        .map(|c| c.accepted_at)
        .max()
        .unwrap_or(Timestamp(i64::MIN));
    let nonce = nonce()?;
    let mut index = RunIndex::default();
    put_blocks(tx, tenant, no, &encode_blocks(claims)?, Some(&mut index))?;
    index::remember(tenant, no, nonce, index);
    Ok(Run {
        no,
        nonce,
        count,
        last_at,
    })
}

/// The indexes of `runs`' live runs, in their order.
pub(crate) fn indexes(
    r: &impl Reader,
    tenant: &str,
    runs: &Runs,
) -> Result<Vec<(u64, Arc<RunIndex>)>> {
    (runs.live.iter())
        .map(|run| Ok((run.no, index::get(r, tenant, run.no, run.nonce)?)))
        .collect()
}

/// The runs a lookup asks among `indexes`: all, or for an event [`Ahead`] found `clear`, those
/// it did not ask (`asked`, one per index).
fn to_ask<'a>(
    indexes: &'a [(u64, Arc<RunIndex>)],
    asked: &'a [bool],
    clear: bool,
) -> impl Iterator<Item = &'a (u64, Arc<RunIndex>)> {
    (indexes.iter().zip(asked))
        .filter(move |(_, asked)| !(clear && **asked))
        .map(|(index, _)| index)
}

/// What a request's [`Ahead`] leaves the writer: which events it found clear, and its merge
/// step.
struct Looked {
    /// Per event of the request: whether no run asked ahead admits it.
    clear: Vec<bool>,
    step: Option<merge::Step>,
}

/// One request's view of a tenant's claims: the runs as read at its start, the claims it
/// accepted so far, and the blocks it read (a resent batch reads each block once).
pub(crate) struct Claims<'t> {
    tenant: &'t str,
    runs: Runs,
    indexes: Vec<(u64, Arc<RunIndex>)>,
    /// Per entry of `indexes`: whether [`Ahead`] asked that run already (an event it found
    /// in none of them is looked up in the others only).
    asked: Vec<bool>,
    /// The request's look-ahead, if it made one (for this tenant).
    looked: Option<Looked>,
    /// Blocks read, as stored, by (run, first hash).
    blocks: HashMap<(u64, u64), Vec<u8>>,
    /// The claims this request accepted: hash, usage number, second hash.
    new: Vec<(u64, u64, u64)>,
    new_by_hash: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
}

/// A hasher for keys that are hashes already (a claim's): the map takes them as they are
/// rather than hashing them again with SipHash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with it; anything else is folded in, never dropped.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<'t> Claims<'t> {
    /// Reads `tenant`'s runs and their indexes; `ahead`, the request's claim work done on a
    /// snapshot, if any (another tenant's is ignored).
    pub(crate) fn open(tx: &WriteTx, tenant: &'t str, ahead: Option<Ahead>) -> Result<Claims<'t>> {
        let runs = tx
            .get(&USAGE_CLAIM_RUNS, &RunsKey::new(tenant))?
            .unwrap_or_default();
        let indexes = indexes(tx, tenant, &runs)?;
        let ahead = ahead.filter(|a| a.tenant == tenant);
        let asked = (runs.live.iter())
            .map(|r| {
                ahead
                    .as_ref()
                    .is_some_and(|a| a.runs.contains(&(r.no, r.nonce)))
            })
            .collect();
        Ok(Claims {
            tenant,
            runs,
            indexes,
            asked,
            looked: ahead.map(|a| Looked {
                clear: a.clear,
                step: a.step,
            }),
            blocks: HashMap::new(),
            new: Vec::new(),
            new_by_hash: HashMap::default(),
        })
    }

    /// Whether [`Ahead`] found event `at` of the request in none of the runs it asked.
    fn clear(&self, at: usize) -> bool {
        (self.looked.as_ref()).is_some_and(|l| l.clear.get(at).copied().unwrap_or(false))
    }

    /// Reads at once every block that a lookup of these `(source, id)`s will read (on
    /// PostgreSQL one round trip for a batch, not one per block; nothing on redb); each hash
    /// comes with its event's position in the request.
    pub(crate) fn prefetch(
        &self,
        tx: &mut WriteTx,
        hashes: impl Iterator<Item = (usize, u64)>,
    ) -> Result<()> {
        if !tx.prefetches() || self.indexes.is_empty() {
            return Ok(());
        }
        let mut wanted: Vec<(u64, u64)> = Vec::new();
        for (at, h) in hashes {
            for (no, index) in to_ask(&self.indexes, &self.asked, self.clear(at)) {
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

    /// The usage number of the event remembered under the `(source, id)` whose [`hashes`]
    /// are `(h, h2)` at `now`, if one was accepted within the `retention` (by an earlier
    /// request, or earlier in this one). `at`: the event's position in the request.
    pub(crate) fn find(
        &mut self,
        tx: &WriteTx,
        (at, (h, h2)): (usize, (u64, u64)),
        now: Timestamp,
        retention: i64,
    ) -> Result<Option<u64>> {
        if let Some(&i) = self.new_by_hash.get(&h) {
            // The map holds the latest claim of this request with the hash; earlier ones
            // sharing it are found by scanning back.
            let is = |c: &&(u64, u64, u64)| c.0 == h && c.2 == h2;
            if let Some(c) = self.new[..=i].iter().rev().find(is) {
                return Ok(Some(c.1));
            }
        }
        let clear = self.clear(at);
        for (no, index) in to_ask(&self.indexes, &self.asked, clear) {
            let Some(first) = index.block_for(h) else {
                continue;
            };
            let stored = match self.blocks.entry((*no, first)) {
                std::collections::hash_map::Entry::Occupied(b) => b.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let key = BlockKey::new(self.tenant, *no, first).encode();
                    let raw = tx.get_raw(USAGE_CLAIM_BLOCKS.name(), &key)?;
                    v.insert(raw.unwrap_or_default())
                }
            };
            if stored.is_empty() {
                continue;
            }
            if let Some(seq) = BlockView::of_stored(stored)?.find((h, h2), now, retention) {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    /// Remembers the event whose [`hashes`] are `(h, h2)` as usage event `seq` (written by
    /// [`Claims::finish`]). The caller has found no live claim of it ([`Claims::find`]).
    pub(crate) fn add(&mut self, (h, h2): (u64, u64), seq: u64) {
        self.new_by_hash.insert(h, self.new.len());
        self.new.push((h, seq, h2));
    }

    /// Writes this request's claims as a new run and does the upkeep they pay for (see
    /// [`merge::upkeep`]): at most a few times the work of writing them. A request whose claim
    /// work was begun on a snapshot ([`Ahead`]) stores the merge step it worked out, if the
    /// merge is still where it was, and takes no step here unless merges fall behind
    /// ([`merge::lagging`]); any other takes its steps here.
    pub(crate) fn finish(mut self, tx: &mut WriteTx, now: Timestamp, retention: i64) -> Result<()> {
        // A step worked out ahead is stored even by a request that claims nothing (all its
        // events duplicates): it was taken for this request, so no other works it out.
        let looked = self.looked.is_some();
        let stored = match self.looked.as_mut().and_then(|l| l.step.take()) {
            Some(step) => step.apply(tx, self.tenant, &mut self.runs)?,
            None => false,
        };
        if self.new.is_empty() {
            if stored {
                tx.put(&USAGE_CLAIM_RUNS, &RunsKey::new(self.tenant), &self.runs)?;
            }
            return Ok(());
        }
        let count = self.new.len() as u64;
        // Sorted by (hash, usage number), which is the claims' order.
        self.new.sort_unstable();
        let claims: Vec<Claim> = (self.new.iter())
            .map(|&(h, seq, h2)| Claim {
                h,
                h2,
                seq,
                accepted_at: now,
            })
            .collect();
        let no = self.runs.next;
        self.runs.next += 1;
        let run = write_run(tx, self.tenant, no, &claims)?;
        self.runs.live.push(run);
        let steps = !looked || merge::lagging(&self.runs);
        let budget = merge::budget_for(count);
        merge::upkeep(
            tx,
            self.tenant,
            &mut self.runs,
            now,
            retention,
            (budget, steps),
        )?;
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
