//! The in-memory index of a run of claims: each block's first hash and filter, read once per
//! process from the run's filter rows and shared by every request after.
//!
//! A run never changes once written (a merge writes a new run and drops its inputs), and its
//! number comes with a random nonce chosen when it was written, so an index cached under
//! (tenant, run, nonce) is right for as long as the run lives, in every process sharing the
//! database — including a run written by a batch that then failed: its number may be written
//! again, but never with the same nonce.

use super::filter::{self, BlockFilter};
use super::{BlockKey, USAGE_CLAIM_FILTERS};
use crate::error::Result;
use crate::store::{Flow, Order, Reader, Table};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

/// The bytes of run indexes a process keeps (64 MiB: the filters of some 50 million claims);
/// beyond it the oldest loaded go, to be read again when next needed.
const BUDGET: usize = 64 << 20;

/// The blocks of one run: each block's first hash and where its filter's words start, in
/// hash order, and every block's filter words in one array (a lookup reads the block's entry,
/// then one word of its filter: two cache lines where a filter of its own took three).
#[derive(Debug, Default)]
pub(crate) struct RunIndex {
    /// (first hash, start of its words in `bits`) per block.
    blocks: Vec<(u64, u32)>,
    bits: Vec<u64>,
}

impl RunIndex {
    /// Appends a block (blocks come in the order of their first hashes).
    pub(crate) fn push(&mut self, first: u64, filter: &BlockFilter) {
        // A run holds at most MAX_RUN claims at 16 bits each: far below u32::MAX words.
        let start = u32::try_from(self.bits.len()).unwrap_or(u32::MAX);
        self.blocks.push((first, start));
        self.bits.extend_from_slice(filter.words());
    }

    /// The first hash of the block that would hold a claim hashed `h`, if any block may hold
    /// it (the last block starting at or below `h`, when its filter admits `h`).
    pub(crate) fn block_for(&self, h: u64) -> Option<u64> {
        let at = self.position(h)?;
        let from = self.blocks[at].1 as usize;
        let to = self
            .blocks
            .get(at + 1)
            .map_or(self.bits.len(), |b| b.1 as usize);
        let bits = self.bits.get(from..to).unwrap_or_default();
        filter::may_hold(bits, h).then_some(self.blocks[at].0)
    }

    /// The position of the last block whose first hash is at most `h`. Hashes are uniform,
    /// so the block lies near `h`'s share of the run: found by a short walk from there (a
    /// binary search over a large run's blocks missed the cache at every step), falling back
    /// to a binary search after a few steps.
    fn position(&self, h: u64) -> Option<usize> {
        let b = &self.blocks;
        let n = b.len();
        let guess = ((u128::from(h) * n as u128) >> 64) as usize;
        let mut at = guess.min(n.checked_sub(1)?);
        for _ in 0..16 {
            if b[at].0 > h {
                at = at.checked_sub(1)?;
            } else if at + 1 < n && b[at + 1].0 <= h {
                at += 1;
            } else {
                return Some(at);
            }
        }
        b.partition_point(|f| f.0 <= h).checked_sub(1)
    }

    /// Where a merge resumes after `h`: the first hash of the block that would hold `h`
    /// (whatever its filter says; the first block when none would, or for no `h`), and how
    /// many blocks there are from it to the run's end.
    pub(crate) fn blocks_from(&self, h: Option<u64>) -> (Option<u64>, usize) {
        let at = h.and_then(|h| self.position(h)).unwrap_or(0);
        let from = self.blocks.get(at..).unwrap_or_default();
        (from.first().map(|b| b.0), from.len())
    }

    fn bytes(&self) -> usize {
        self.blocks.len() * 16 + self.bits.len() * 8
    }

    /// Reads the index of run `run` of `tenant` from its filter rows.
    pub(crate) fn read(r: &impl Reader, tenant: &str, run: u64) -> Result<RunIndex> {
        let t: &Table<BlockKey<'static>, BlockFilter> = &USAGE_CLAIM_FILTERS;
        let mut index = RunIndex::default();
        r.scan(
            t,
            &t.prefix().tenant(tenant).u64(run),
            Order::Asc,
            |k, f| {
                if let Some(k) = BlockKey::decode(k) {
                    index.push(k.first_h, &f);
                }
                Ok(Flow::Continue)
            },
        )?;
        Ok(index)
    }
}

type CacheKey = (String, u64, u64);

#[derive(Default)]
struct Cache {
    map: HashMap<CacheKey, Arc<RunIndex>>,
    order: VecDeque<(CacheKey, usize)>,
    bytes: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The index of run `run` (written with `nonce`) of `tenant`: from the process's cache, or
/// read and cached.
pub(crate) fn get(r: &impl Reader, tenant: &str, run: u64, nonce: u64) -> Result<Arc<RunIndex>> {
    let key = (tenant.to_owned(), run, nonce);
    if let Some(i) = lock().map.get(&key) {
        return Ok(i.clone());
    }
    let index = Arc::new(RunIndex::read(r, tenant, run)?);
    put(key, index.clone());
    Ok(index)
}

/// Caches the index of a run just written (so the request that wrote it reads nothing back).
pub(crate) fn remember(tenant: &str, run: u64, nonce: u64, index: RunIndex) -> Arc<RunIndex> {
    let index = Arc::new(index);
    put((tenant.to_owned(), run, nonce), index.clone());
    index
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // A panic while holding the lock leaves the map consistent (every change is one insert or
    // one remove), so a poisoned lock is taken as it is.
    cache().lock().unwrap_or_else(|p| p.into_inner())
}

fn put(key: CacheKey, index: Arc<RunIndex>) {
    let size = index.bytes() + key.0.len() + 64;
    let mut c = lock();
    if c.map.insert(key.clone(), index).is_none() {
        c.order.push_back((key, size));
        c.bytes += size;
    }
    while c.bytes > BUDGET {
        let Some((old, size)) = c.order.pop_front() else {
            break;
        };
        c.map.remove(&old);
        c.bytes -= size;
    }
}
