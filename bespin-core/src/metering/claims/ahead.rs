//! The claim work of a request done before the writer takes it, on a snapshot: the lookups
//! a snapshot can answer, and the next step of the tenant's merge under way.
//!
//! Runs never change once written (see [`super::index`]), and a merge in progress is named
//! by its output's number and nonce and by where it stands ([`merge::Merge`]), so what a
//! snapshot says of them still holds in the writer for every run and merge still listed
//! there as they were. The writer, where every request of every tenant waits its turn, then
//! asks only the runs written since and stores a merge step already worked out; a request
//! made without this (an operation submitted as it is) does all of it in the writer, as
//! does one whose snapshot the writer finds overtaken.

use super::merge::{self, Step};
use super::{RunsKey, USAGE_CLAIM_RUNS, indexes};
use crate::error::Result;
use crate::store::Reader;
use crate::time::Timestamp;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a request's claim work found and did on a snapshot ([`Ahead::look`]): the runs whose
/// filters were asked, which events none of them admits, and the merge step worked out, if
/// this request took it. Filters only: no block is read for a lookup, so a snapshot on
/// PostgreSQL costs no round trip per block, and an event a filter admits (a duplicate, or
/// about 0.2% of new events per run) is looked up in the writer as without it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Ahead {
    pub(super) tenant: String,
    /// The runs asked, by (number, nonce).
    pub(super) runs: Vec<(u64, u64)>,
    /// Per event of the request: whether no filter of `runs` admits its hash.
    pub(super) clear: Vec<bool>,
    /// The next step of the merge under way, for the writer to store.
    pub(super) step: Option<Step>,
}

impl Ahead {
    /// Asks the filters of `tenant`'s live runs, as `r` sees them at `now`, about each of
    /// `hashes` (`None` for an event refused before any lookup), and works out the next step
    /// of the tenant's merge under way — the share of a request that adds that many claims
    /// ([`merge::budget_for`]) — unless another request of this process is working out the
    /// same step.
    pub(crate) fn look(
        r: &impl Reader,
        tenant: &str,
        hashes: impl Iterator<Item = Option<u64>>,
        now: Timestamp,
        retention: i64,
    ) -> Result<Ahead> {
        let runs = r
            .get(&USAGE_CLAIM_RUNS, &RunsKey::new(tenant))?
            .unwrap_or_default();
        let indexes = indexes(r, tenant, &runs)?;
        let clear: Vec<bool> = hashes
            .map(|h| h.is_some_and(|h| indexes.iter().all(|(_, i)| i.block_for(h).is_none())))
            .collect();
        let step = match &runs.merge {
            Some(m) if take(tenant, m) => {
                let budget = merge::budget_for(clear.len() as u64);
                Step::compute(r, tenant, &runs, now, retention, budget)?
            }
            _ => None,
        };
        Ok(Ahead {
            tenant: tenant.to_owned(),
            runs: runs.live.iter().map(|r| (r.no, r.nonce)).collect(),
            clear,
            step,
        })
    }
}

/// How long a merge step taken by a request stays its own: a request that fails before the
/// writer stores its step leaves the step to others after this.
const TAKEN_FOR: Duration = Duration::from_secs(1);

/// The merge steps being worked out by this process's requests: per tenant, the output run
/// and the hash the step starts after, and when it was taken. A request whose snapshot shows
/// the same step leaves it (its work would be dropped by the writer), so concurrent requests
/// of a tenant do not work out one step each.
type Taken = HashMap<String, ((u64, u64, Option<u64>), Instant)>;

fn taken() -> std::sync::MutexGuard<'static, Taken> {
    static TAKEN: OnceLock<Mutex<Taken>> = OnceLock::new();
    // Every change is one insert or remove: a poisoned map is consistent.
    (TAKEN.get_or_init(Default::default).lock()).unwrap_or_else(|p| p.into_inner())
}

/// Takes the next step of merge `m` of `tenant` for the calling request, unless another
/// took it less than [`TAKEN_FOR`] ago.
fn take(tenant: &str, m: &merge::Merge) -> bool {
    let step = (m.out.no, m.out.nonce, m.after);
    let now = Instant::now();
    let mut map = taken();
    if map
        .get(tenant)
        .is_some_and(|(s, at)| *s == step && now.duration_since(*at) < TAKEN_FOR)
    {
        return false;
    }
    if map.len() >= 10_000 {
        // Tenants that stopped reporting leave their entries: bounded by dropping the stale.
        map.retain(|_, (_, at)| now.duration_since(*at) < TAKEN_FOR);
    }
    map.insert(tenant.to_owned(), (step, now));
    true
}
