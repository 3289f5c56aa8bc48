//! The row cache of the PostgreSQL backend: rows and pages of scans as of one commit count,
//! shared by the writer and the readers of a process, within a byte budget.

use super::super::backend::TableId;
use super::counts;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

/// The budget when the URL does not give one (`cache=`).
pub(super) const DEFAULT_BUDGET: usize = 64 << 20;

/// Bytes counted for a kept row or page beyond its keys and values (the map's slot, the
/// vectors' headers), so that many tiny entries cannot exceed the budget unseen.
const ENTRY_OVERHEAD: usize = 96;
/// Bytes counted per row of a page beyond its key and value (two vectors' headers).
const ROW_OVERHEAD: usize = 48;
/// An entry larger than the budget divided by this is not kept: one large scan (a page may
/// be 4,096 rows) cannot push out the rows and pages the other requests read.
const MAX_SHARE: usize = 64;

/// What one page of a scan asked for: bounds, descending, the most rows.
pub(super) type PageRange = (Bound<Vec<u8>>, Bound<Vec<u8>>, bool, i64);
/// Rows (key, value) of a page, in the scan's order; shared, so a hit copies nothing.
pub(super) type Page = Arc<Vec<(Vec<u8>, Vec<u8>)>>;

/// Rows and pages of the database as of one commit, shared by the writer and the readers of
/// a process, so that what one request read the next need not read again. Every batch of
/// every process increments the `commits` row of `bespin_meta` under the write lock; a batch
/// reads it in the round trip that takes the lock, a read snapshot as its first statement
/// (which fixes the snapshot). The cache is current at one count (`epoch`): a reader or batch
/// at that count is served from it; one at a newer count empties it and fills it anew (another
/// process committed); one at an older count (a snapshot taken before this process's last
/// commits) is served, and fills it, only for the tables none of those commits wrote. A
/// committed batch of this process brings it forward (`batch.rs`, `absorb`): the rows it read
/// and wrote are kept at the next count, the pages of every table it wrote are dropped (a page
/// may cover a range a new row falls into), and those tables are marked changed at that count.
/// While its `COMMIT` is on its way, a reader that already sees it neither reads nor fills the
/// cache (rather than empty it, as it would for another process's commit). So while one
/// server writes, a plan, an API key, a KPI's last chunk or a search index page is read once
/// per change of its table, not once per request; with several, every foreign commit empties
/// it, and it costs nothing but what it saves.
///
/// **Bounded.** Everything kept counts against `budget` bytes (keys, values and a fixed
/// overhead per entry). An entry larger than a 64th of the budget is not kept; when a new
/// entry would pass the budget, the entries not read since the last sweep go first (a
/// not-recently-used clock: each hit marks its entry, each sweep clears the marks it passes),
/// then any, until a quarter of the budget is free. The budget is the process's, not a
/// tenant's: a tenant scanning much can push others' entries out (they are read again, at a
/// round trip each), never grow the process's memory.
pub(super) struct RowCache {
    /// The commit count the entries are current at (`None`: not known, the cache is empty).
    epoch: Option<i64>,
    /// The count the cache was last emptied at: nothing older is served.
    floor: i64,
    /// By table slot, the count of this process's last commit that wrote it (since the
    /// cache was emptied): the table's entries stand for that count and later only.
    written: HashMap<usize, i64>,
    /// The count this process's batch is committing now, if any.
    pending: Option<i64>,
    tables: HashMap<usize, TableCache>,
    /// Bytes counted for every entry kept.
    bytes: usize,
    budget: usize,
    /// When the cache last found a count it did not know (another process's commit, or a
    /// commit of this one that failed to say whether it happened), whether it emptied itself
    /// for it or was brought forward past it ([`RowCache::learn`]).
    others_seen: Option<std::time::Instant>,
    /// The count of commits that recorded their tables, as of `epoch` (`counts.rs`; `None`:
    /// not known).
    tracked: Option<i64>,
}

/// How long after another process's commit the reads of this one take snapshots of their own
/// ([`RowCache::others_lately`]).
const OTHERS_LATELY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the cache holds of one table.
#[derive(Default)]
struct TableCache {
    /// Key → value (`None`: absent).
    rows: HashMap<Vec<u8>, Kept<Option<Vec<u8>>>>,
    pages: HashMap<PageRange, Kept<Page>>,
    /// Bytes counted for the rows, and for the pages.
    row_bytes: usize,
    page_bytes: usize,
}

/// An entry, its size as counted, and whether it was read since the last sweep passed it.
struct Kept<T> {
    value: T,
    bytes: usize,
    used: bool,
}

/// Puts `value` (counted as `bytes`) under `key` in `map`, adding its bytes to the table's
/// `count` and the cache's `total` and taking back those of the entry it replaces: rows and
/// pages are kept, and counted, alike.
fn keep<K: Eq + std::hash::Hash, T>(
    map: &mut HashMap<K, Kept<T>>,
    count: &mut usize,
    total: &mut usize,
    key: K,
    value: T,
    bytes: usize,
) {
    *count += bytes;
    *total += bytes;
    let kept = Kept {
        value,
        bytes,
        used: false,
    };
    if let Some(old) = map.insert(key, kept) {
        *count -= old.bytes;
        *total -= old.bytes;
    }
}

impl RowCache {
    /// An empty cache that keeps at most `budget` bytes (0: keeps nothing).
    pub(super) fn new(budget: usize) -> RowCache {
        RowCache {
            epoch: None,
            floor: 0,
            written: HashMap::new(),
            pending: None,
            tables: HashMap::new(),
            bytes: 0,
            budget,
            others_seen: None,
            tracked: None,
        }
    }

    /// The count to ask the tables written since, with the counts a snapshot or a write batch
    /// reads first: the cache's, when it knows how many commits recorded their tables by then,
    /// within [`OTHERS_LATELY`] of another process's commit (alone, this process's commits
    /// bring the cache forward themselves, and no other process records anything).
    pub(super) fn since(&self) -> Option<i64> {
        self.tracked
            .and(self.epoch)
            .filter(|_| self.others_lately())
    }

    /// Takes what a snapshot or a batch found first ([`counts::Seen`]): at the cache's count,
    /// or an older one, nothing; at the count this process is committing, nothing (the commit
    /// brings the cache there); at a newer one, when every commit in between recorded its
    /// tables and the tables written since the cache's count were read with it, the entries of
    /// those tables go and the rest stand for the new count; otherwise the cache empties and
    /// starts at it. `slot` names a table's slot (`None`: a table this build does not know,
    /// which it keeps nothing of).
    pub(super) fn learn(&mut self, seen: &counts::Seen, slot: impl Fn(&str) -> Option<usize>) {
        let n = seen.epoch;
        if self.epoch.is_some_and(|e| n <= e) || self.pending == Some(n) {
            return;
        }
        if self.epoch.is_some() {
            self.others_seen = Some(std::time::Instant::now());
        }
        let forward = match (self.epoch, self.tracked, seen.tracked, &seen.written) {
            (Some(e), Some(t), Some(tn), Some((since, names)))
                if *since == e && tn - t == n - e =>
            {
                Some(names)
            }
            _ => None,
        };
        let Some(names) = forward else {
            self.restart(n);
            self.tracked = seen.tracked;
            return;
        };
        self.epoch = Some(n);
        self.tracked = seen.tracked;
        for slot in names.iter().filter_map(|name| slot(name)) {
            self.drop_table(slot);
        }
    }

    /// Whether this process saw another's commit within [`OTHERS_LATELY`]: then the cache is
    /// emptied at every commit of theirs, the reads of one shared snapshot would mostly miss it
    /// and take turns on one connection, and snapshots of their own serve them better
    /// (`share.rs`; measured with two servers under `search`: 1,067 req/s shared, 2,062 not).
    pub(super) fn others_lately(&self) -> bool {
        self.others_seen
            .is_some_and(|t| t.elapsed() < OTHERS_LATELY)
    }

    #[cfg(test)]
    /// The commit count the cache is current at.
    pub(super) fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    #[cfg(test)]
    /// Bytes counted for what the cache holds now (at most the budget).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The row, if the cache knows it as of `epoch`.
    pub(super) fn get(&mut self, epoch: i64, t: TableId, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if !self.valid(epoch, t.slot) {
            return None;
        }
        let kept = self.tables.get_mut(&t.slot)?.rows.get_mut(key)?;
        kept.used = true;
        Some(kept.value.clone())
    }

    /// Keeps a row read as of `epoch` (see the type's doc for which epochs count).
    pub(super) fn remember(&mut self, epoch: i64, t: TableId, key: &[u8], value: &Option<Vec<u8>>) {
        if self.at(epoch, t.slot) {
            self.put_row(t.slot, key.to_vec(), value.clone());
        }
    }

    /// The page `range` of table `slot`, if the cache knows it as of `epoch`.
    pub(super) fn page(&mut self, epoch: i64, slot: usize, range: &PageRange) -> Option<Page> {
        if !self.valid(epoch, slot) {
            return None;
        }
        let kept = self.tables.get_mut(&slot)?.pages.get_mut(range)?;
        kept.used = true;
        Some(Arc::clone(&kept.value))
    }

    /// Keeps the page `range` of table `slot` fetched as of `epoch` (as [`RowCache::remember`]
    /// a row).
    pub(super) fn remember_page(&mut self, epoch: i64, slot: usize, range: PageRange, page: &Page) {
        if !self.at(epoch, slot) {
            return;
        }
        let bytes = page_bytes(&range, page);
        if !self.make_room(bytes) {
            return;
        }
        let t = self.tables.entry(slot).or_default();
        let page = Arc::clone(page);
        keep(
            &mut t.pages,
            &mut t.page_bytes,
            &mut self.bytes,
            range,
            page,
            bytes,
        );
    }

    /// Whether the entries of table `slot` stand for the count `epoch`: it is not newer than
    /// the cache's, nor older than the last change of the table the cache knows of.
    fn valid(&self, epoch: i64, slot: usize) -> bool {
        self.epoch.is_some_and(|e| epoch <= e)
            && epoch >= self.floor
            && self.written.get(&slot).is_none_or(|&w| epoch >= w)
    }

    /// Whether what a read as of `epoch` found in table `slot` may be kept: it stands for the
    /// cache's count ([`RowCache::valid`]), or the cache is older (it is emptied and made
    /// current at `epoch`) — but for the count this process is committing, whose changes the
    /// cache does not know yet.
    fn at(&mut self, epoch: i64, slot: usize) -> bool {
        match self.epoch {
            Some(e) if epoch <= e => self.valid(epoch, slot),
            _ if self.pending == Some(epoch) => false,
            _ => {
                self.restart(epoch);
                true
            }
        }
    }

    /// Empties the cache and makes it current at `epoch`.
    pub(super) fn restart(&mut self, epoch: i64) {
        if self.epoch.is_some() {
            self.others_seen = Some(std::time::Instant::now());
        }
        self.tables.clear();
        self.written.clear();
        self.bytes = 0;
        self.floor = epoch;
        self.epoch = Some(epoch);
        self.tracked = None;
    }

    /// This process's batch is sending its `COMMIT`, which makes the count `next`, or it
    /// failed (`None`).
    pub(super) fn committing(&mut self, next: Option<i64>) {
        self.pending = next;
    }

    /// Moves the cache from `epoch` to `epoch + 1`, the count a batch of this process that
    /// began at `epoch` just committed; whether it is at `epoch + 1` now (false: it was at
    /// another count, which the batch's rows do not describe). The caller then drops what the
    /// batch changed and keeps what it wrote.
    pub(super) fn advance(&mut self, epoch: i64, recorded: bool) -> bool {
        self.pending = None;
        let next = epoch + 1;
        if self.epoch == Some(epoch) {
            self.epoch = Some(next);
            if recorded {
                // The commit recorded its tables (`counts::record`), and counted itself.
                self.tracked = self.tracked.map(|t| t + 1);
            }
        }
        self.epoch == Some(next)
    }

    /// Table `slot` changed at the cache's count: a commit of this process wrote `writes` to
    /// it (in key order; `None`: a removal), or emptied it (`None`). No entry of it stands for
    /// an older count from now on. Each of its pages is brought to the new count when the
    /// writes say exactly what a scan of its range reads now ([`patched`]), and goes when they
    /// do not; all of them go when the table has more than [`PATCHED_PAGES`] (a commit's cost
    /// stays bounded) or was emptied. So the page a batch scans every time — a tenant's
    /// period rollups, which every metered write also updates — is read from the database
    /// once, not once per batch.
    pub(super) fn changed(&mut self, slot: usize, writes: Option<&[Write<'_>]>) {
        if let Some(e) = self.epoch {
            self.written.insert(slot, e);
        }
        let Some(t) = self.tables.get_mut(&slot) else {
            return;
        };
        let keep = writes.filter(|_| t.pages.len() <= PATCHED_PAGES);
        let Some(writes) = keep else {
            self.bytes -= t.page_bytes;
            t.page_bytes = 0;
            t.pages = HashMap::new();
            return;
        };
        let mut counted = 0;
        t.pages.retain(|range, kept| {
            let fits = match patched(range, &kept.value, writes) {
                Patch::Same => true,
                Patch::Now(rows) => {
                    let bytes = page_bytes(range, &rows);
                    kept.value = Arc::new(rows);
                    kept.bytes = bytes;
                    true
                }
                Patch::Unknown => false,
            };
            if fits {
                counted += kept.bytes;
            }
            fits
        });
        self.bytes = self.bytes - t.page_bytes + counted;
        t.page_bytes = counted;
        if self.bytes > self.budget {
            self.sweep(self.budget / 4 * 3);
        }
    }

    /// Drops everything of table `slot` (a commit emptied it).
    pub(super) fn drop_table(&mut self, slot: usize) {
        self.changed(slot, None);
        if let Some(t) = self.tables.remove(&slot) {
            self.bytes -= t.row_bytes + t.page_bytes;
        }
    }

    /// Keeps `value` as the row `key` of table `slot` at the current count (or forgets the
    /// row, when it is too large to keep: what the cache held of it may be out of date).
    pub(super) fn put_row(&mut self, slot: usize, key: Vec<u8>, value: Option<Vec<u8>>) {
        let bytes = ENTRY_OVERHEAD + key.len() + value.as_ref().map_or(0, Vec::len);
        if !self.make_room(bytes) {
            if let Some(t) = self.tables.get_mut(&slot)
                && let Some(old) = t.rows.remove(&key)
            {
                t.row_bytes -= old.bytes;
                self.bytes -= old.bytes;
            }
            return;
        }
        let t = self.tables.entry(slot).or_default();
        keep(
            &mut t.rows,
            &mut t.row_bytes,
            &mut self.bytes,
            key,
            value,
            bytes,
        );
    }

    /// Makes room for an entry of `bytes`; false when it is too large to keep at all.
    fn make_room(&mut self, bytes: usize) -> bool {
        if bytes > self.budget / MAX_SHARE {
            return false;
        }
        if self.bytes + bytes > self.budget {
            self.sweep((self.budget / 4 * 3).saturating_sub(bytes));
        }
        true
    }

    /// Evicts entries until at most `target` bytes are kept: first those not read since the
    /// last sweep (clearing the mark of those read, which stay), then, if that was not enough,
    /// any. Each sweep frees at least a quarter of the budget, so its walk over the entries
    /// is paid for by the inserts that filled that quarter.
    fn sweep(&mut self, target: usize) {
        for second_chance in [true, false] {
            for t in self.tables.values_mut() {
                let TableCache {
                    rows,
                    pages,
                    row_bytes,
                    page_bytes,
                } = t;
                evict(pages, page_bytes, &mut self.bytes, target, second_chance);
                evict(rows, row_bytes, &mut self.bytes, target, second_chance);
            }
            if self.bytes <= target {
                break;
            }
        }
        self.tables
            .retain(|_, t| !t.rows.is_empty() || !t.pages.is_empty());
    }
}

/// Bytes counted for keeping `page` under `range`.
fn page_bytes(range: &PageRange, page: &[(Vec<u8>, Vec<u8>)]) -> usize {
    let bound = |b: &Bound<Vec<u8>>| match b {
        Bound::Included(v) | Bound::Excluded(v) => v.len(),
        Bound::Unbounded => 0,
    };
    ENTRY_OVERHEAD
        + bound(&range.0)
        + bound(&range.1)
        + page
            .iter()
            .map(|(k, v)| k.len() + v.len() + ROW_OVERHEAD)
            .sum::<usize>()
}

/// The most pages of one table a commit brings forward ([`RowCache::changed`]).
const PATCHED_PAGES: usize = 256;

/// A row a commit wrote: its key, and its value (`None`: removed).
pub(super) type Write<'a> = (&'a [u8], Option<&'a [u8]>);

/// What a commit's writes make of a cached page ([`patched`]).
enum Patch {
    /// None of them falls in what the page holds.
    Same,
    /// The rows a scan of the page's range reads after the commit.
    Now(Vec<(Vec<u8>, Vec<u8>)>),
    /// Not known without reading: a row removed from a page cut at its limit (the row that
    /// follows the cut was never read).
    Unknown,
}

/// The page `rows` of `range` — the first `limit` rows of its bounds in its order, all of
/// them when fewer — after the commit of `writes` (in ascending key order). A write past the
/// last row of a page cut at its limit changes nothing it holds; a put within it goes in
/// (pushing the last row out when the page is at its limit, which cuts it there); a removal
/// within a cut page leaves a gap only a read can fill.
fn patched(range: &PageRange, rows: &[(Vec<u8>, Vec<u8>)], writes: &[Write<'_>]) -> Patch {
    let (lo, hi, desc, limit) = range;
    let above_lo = |k: &[u8]| match lo {
        Bound::Included(l) => k >= l.as_slice(),
        Bound::Excluded(l) => k > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below_hi = |k: &[u8]| match hi {
        Bound::Included(h) => k <= h.as_slice(),
        Bound::Excluded(h) => k < h.as_slice(),
        Bound::Unbounded => true,
    };
    let start = writes.partition_point(|(k, _)| !above_lo(k));
    let end = writes.partition_point(|(k, _)| below_hi(k)).max(start);
    let inside = &writes[start..end];
    if inside.is_empty() {
        return Patch::Same;
    }
    let limit = usize::try_from(*limit).unwrap_or(0);
    let mut cut = rows.len() >= limit;
    let mut now = rows.to_vec();
    let mut moved = false;
    for &(k, v) in inside {
        let at = if *desc {
            now.binary_search_by(|(r, _)| k.cmp(r.as_slice()))
        } else {
            now.binary_search_by(|(r, _)| r.as_slice().cmp(k))
        };
        match (at, v) {
            (Ok(i), Some(v)) => now[i].1 = v.to_vec(),
            (Ok(_), None) if cut => return Patch::Unknown,
            (Ok(i), None) => {
                now.remove(i);
            }
            (Err(_), None) => continue,
            (Err(i), Some(_)) if cut && i == now.len() => continue,
            (Err(i), Some(v)) => {
                now.insert(i, (k.to_vec(), v.to_vec()));
                if now.len() > limit {
                    now.pop();
                    cut = true;
                }
            }
        }
        moved = true;
    }
    if moved { Patch::Now(now) } else { Patch::Same }
}

/// Evicts entries of `map` while `total` is above `target` (sparing, with `second_chance`,
/// those read since the last sweep, whose mark it clears), counting them off `table` and
/// `total`.
fn evict<K, T>(
    map: &mut HashMap<K, Kept<T>>,
    table: &mut usize,
    total: &mut usize,
    target: usize,
    second_chance: bool,
) {
    if *total <= target {
        return;
    }
    map.retain(|_, e| {
        if *total <= target {
            return true;
        }
        if second_chance && e.used {
            e.used = false;
            return true;
        }
        *table -= e.bytes;
        *total -= e.bytes;
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TableId = TableId {
        slot: 3,
        name: "t",
        memo: false,
    };
    const U: TableId = TableId {
        slot: 4,
        name: "u",
        memo: false,
    };

    /// A row a commit wrote that is too large to keep must not leave the old value behind;
    /// a snapshot older than the cache is served only the tables no later commit wrote, one
    /// newer empties it, but for the commit this process is making.
    #[test]
    fn what_cannot_be_kept_is_forgotten_and_only_unchanged_tables_serve_older_counts() {
        let mut c = RowCache::new(64 * 1024);
        c.remember(5, T, b"k", &Some(b"old".to_vec()));
        c.remember(5, U, b"u", &Some(b"u5".to_vec()));
        assert_eq!(c.get(5, T, b"k"), Some(Some(b"old".to_vec())));
        assert_eq!(c.get(4, T, b"k"), None, "older than the cache's start");
        // The batch begun at 5 commits: a reader that already sees count 6 keeps nothing
        // and empties nothing.
        c.committing(Some(6));
        c.remember(6, U, b"v", &None);
        assert_eq!(c.get(6, U, b"v"), None);
        assert_eq!(c.get(5, U, b"u"), Some(Some(b"u5".to_vec())));
        // It wrote T a value larger than an entry may be.
        assert!(c.advance(5, true));
        c.changed(T.slot, None);
        c.put_row(T.slot, b"k".to_vec(), Some(vec![0; 2048]));
        assert_eq!(c.get(6, T, b"k"), None);
        // A snapshot at 5 is still served U (unchanged since), not T; what it reads of T is
        // not kept, what it reads of U is.
        assert_eq!(c.get(6, U, b"u"), Some(Some(b"u5".to_vec())));
        assert_eq!(c.get(5, U, b"u"), Some(Some(b"u5".to_vec())));
        c.remember(5, T, b"j", &None);
        assert_eq!(c.get(6, T, b"j"), None);
        c.remember(5, U, b"w", &None);
        assert_eq!(c.get(6, U, b"w"), Some(None));
        let range: PageRange = (Bound::Unbounded, Bound::Unbounded, false, 32);
        let page: Page = Arc::new(vec![(b"a".to_vec(), b"1".to_vec())]);
        c.remember_page(6, T.slot, range.clone(), &page);
        assert!(c.page(6, T.slot, &range).is_some());
        assert!(c.page(5, T.slot, &range).is_none());
        assert!(c.advance(6, true));
        c.changed(T.slot, None);
        assert!(c.page(7, T.slot, &range).is_none());
        // Another process committed (count 9): everything goes.
        c.remember_page(9, T.slot, range.clone(), &page);
        assert!(c.page(7, T.slot, &range).is_none());
        assert!(c.page(9, T.slot, &range).is_some());
        assert_eq!(c.get(9, U, b"u"), None);
        assert!(
            !c.advance(5, true),
            "a commit of an older count leaves it alone"
        );
        assert_eq!(c.epoch(), Some(9));
        c.drop_table(T.slot);
        assert_eq!(c.bytes(), 0);
    }

    fn rows(keys: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
        keys.iter()
            .map(|k| (k.as_bytes().to_vec(), b"v".to_vec()))
            .collect()
    }

    fn keys(p: Patch) -> Option<Vec<String>> {
        match p {
            Patch::Same => Some(vec!["same".into()]),
            Patch::Now(r) => Some(
                r.iter()
                    .map(|(k, v)| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(k),
                            if v == b"v" { "" } else { "*" }
                        )
                    })
                    .collect(),
            ),
            Patch::Unknown => None,
        }
    }

    /// Every case of bringing a page forward by a commit's writes, in both orders: a page
    /// holding all of its range takes puts and removals; a page cut at its limit takes a put
    /// within it (its last row pushed out) and ignores writes past its cut, and cannot take a
    /// removal within it; writes outside the bounds change nothing.
    #[test]
    fn a_page_is_brought_forward_exactly_or_not_at_all() {
        let r = |lo: Bound<&str>, hi: Bound<&str>, desc: bool, limit: i64| -> PageRange {
            let own = |b: Bound<&str>| b.map(|s| s.as_bytes().to_vec());
            (own(lo), own(hi), desc, limit)
        };
        let put = |k: &'static str| (k.as_bytes(), Some(&b"new"[..]));
        let del = |k: &'static str| (k.as_bytes(), None);
        let all = r(Bound::Included("b"), Bound::Excluded("m"), false, 32);
        let page = rows(&["c", "e", "g"]);
        // Outside the bounds (below, at the excluded end, above): nothing.
        assert_eq!(
            keys(patched(&all, &page, &[put("a"), put("m"), put("z")])),
            keys(Patch::Same)
        );
        // A whole page: puts in order, a replacement, a removal; a removal of a missing row.
        assert_eq!(
            keys(patched(
                &all,
                &page,
                &[put("b"), put("d"), del("e"), put("g"), del("h")]
            )),
            Some(vec!["b*".into(), "c".into(), "d*".into(), "g*".into()])
        );
        assert_eq!(keys(patched(&all, &page, &[del("d")])), keys(Patch::Same));
        // Cut at 3 rows (ascending): past the cut nothing, within it the last row goes.
        let cut = r(Bound::Unbounded, Bound::Unbounded, false, 3);
        assert_eq!(
            keys(patched(&cut, &page, &[put("h"), del("x")])),
            keys(Patch::Same)
        );
        assert_eq!(
            keys(patched(&cut, &page, &[put("d"), put("f")])),
            Some(vec!["c".into(), "d*".into(), "e".into()])
        );
        assert_eq!(
            keys(patched(&cut, &page, &[put("e")])),
            Some(vec!["c".into(), "e*".into(), "g".into()])
        );
        assert!(keys(patched(&cut, &page, &[del("e")])).is_none());
        // A whole page that a put fills past its limit becomes cut.
        let two = r(Bound::Unbounded, Bound::Unbounded, false, 4);
        assert_eq!(
            keys(patched(&two, &page, &[put("a"), put("b"), put("f")])),
            Some(vec!["a*".into(), "b*".into(), "c".into(), "e".into()])
        );
        // Descending, cut at 3: "a" lies past the cut, "f" within.
        let desc = r(Bound::Unbounded, Bound::Included("g"), true, 3);
        let page = rows(&["g", "e", "c"]);
        assert_eq!(
            keys(patched(&desc, &page, &[put("a"), put("h")])),
            keys(Patch::Same)
        );
        assert_eq!(
            keys(patched(&desc, &page, &[put("a"), put("f")])),
            Some(vec!["g".into(), "f*".into(), "e".into()])
        );
        assert!(keys(patched(&desc, &page, &[del("g")])).is_none());
    }

    /// A commit brings a table's pages forward and counts their new size; one that emptied the
    /// table (or a table with more pages than a commit patches) drops them.
    #[test]
    fn a_commit_patches_the_pages_of_what_it_wrote_and_counts_them() {
        let mut c = RowCache::new(1 << 20);
        let range: PageRange = (Bound::Unbounded, Bound::Unbounded, false, 32);
        c.remember_page(5, T.slot, range.clone(), &Arc::new(rows(&["a"])));
        let one = c.bytes();
        assert!(c.advance(5, true));
        c.changed(T.slot, Some(&[(b"b", Some(b"v"))]));
        assert_eq!(c.page(6, T.slot, &range).map(|p| p.len()), Some(2));
        assert_eq!(c.bytes(), one + 1 + 1 + ROW_OVERHEAD);
        assert!(
            c.page(5, T.slot, &range).is_none(),
            "not for an older count"
        );
        for n in 0..=PATCHED_PAGES as i64 {
            let r: PageRange = (Bound::Unbounded, Bound::Unbounded, false, 100 + n);
            c.remember_page(6, T.slot, r, &Arc::new(rows(&["a"])));
        }
        assert!(c.advance(6, true));
        c.changed(T.slot, Some(&[(b"c", Some(b"v"))]));
        assert!(
            c.page(7, T.slot, &range).is_none(),
            "too many pages: all dropped"
        );
        assert_eq!(c.bytes(), 0);
        c.remember_page(7, T.slot, range.clone(), &Arc::new(rows(&["a"])));
        assert!(c.advance(7, true));
        c.drop_table(T.slot);
        assert!(c.page(8, T.slot, &range).is_none());
        assert_eq!(c.bytes(), 0);
    }

    /// What the first statement of a snapshot or batch tells the cache: nothing at its count,
    /// an older one or the count it is committing; at a newer one, with every commit between
    /// recorded and the tables written since its count read, it drops those tables only (an
    /// older snapshot is not served them, is served the rest) and stands for the new count; a
    /// commit that recorded nothing, or tables read since another count, empty it.
    #[test]
    fn another_process_s_commits_drop_only_the_tables_they_wrote() {
        let seen = |epoch: i64, tracked: i64, written: Option<(i64, &[&str])>| counts::Seen {
            epoch,
            tracked: Some(tracked),
            written: written.map(|(e, n)| (e, n.iter().map(|s| s.to_string()).collect())),
        };
        let slot = |name: &str| match name {
            "t" => Some(T.slot),
            "u" => Some(U.slot),
            _ => None,
        };
        let mut c = RowCache::new(64 * 1024);
        c.learn(&seen(5, 50, None), slot);
        c.remember(5, T, b"k", &Some(b"t5".to_vec()));
        c.remember(5, U, b"k", &Some(b"u5".to_vec()));
        // Older, the same, and this process's commit in flight: nothing.
        c.learn(&seen(4, 49, None), slot);
        c.committing(Some(6));
        c.learn(&seen(6, 51, Some((5, &["t"]))), slot);
        assert_eq!(c.get(5, U, b"k"), Some(Some(b"u5".to_vec())));
        assert!(c.advance(5, true));
        c.changed(T.slot, Some(&[(b"k", Some(b"t6"))]));
        c.put_row(T.slot, b"k".to_vec(), Some(b"t6".to_vec()));
        assert_eq!(c.get(6, T, b"k"), Some(Some(b"t6".to_vec())));
        // Two commits of another process, both recorded, that wrote T and a table this build
        // does not know.
        c.learn(&seen(8, 53, Some((6, &["t", "zz"]))), slot);
        assert_eq!(c.get(8, T, b"k"), None, "written: dropped");
        assert_eq!(
            c.get(8, U, b"k"),
            Some(Some(b"u5".to_vec())),
            "not written: kept"
        );
        assert_eq!(c.get(7, U, b"k"), Some(Some(b"u5".to_vec())));
        c.remember(7, T, b"k", &Some(b"t6".to_vec()));
        assert_eq!(c.get(8, T, b"k"), None, "an older snapshot's T is not kept");
        assert!(c.others_lately());
        // Its own commit counts one more recorded commit.
        assert!(c.advance(8, true));
        c.learn(&seen(10, 55, Some((9, &["t"]))), slot);
        assert_eq!(
            c.get(10, U, b"k"),
            Some(Some(b"u5".to_vec())),
            "9 -> 10, 54 -> 55"
        );
        // Two commits, one of which recorded nothing: everything goes.
        c.learn(&seen(12, 56, Some((10, &["t"]))), slot);
        assert_eq!(c.get(12, U, b"k"), None);
        // Tables read since another count than the cache's: everything goes.
        c.remember(12, U, b"k", &Some(b"u12".to_vec()));
        c.learn(&seen(13, 57, Some((11, &["t"]))), slot);
        assert_eq!(c.get(13, U, b"k"), None);
    }
}
