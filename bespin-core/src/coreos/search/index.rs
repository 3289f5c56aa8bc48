//! The search index: what each record puts in it, kept in step with the record in the same
//! transaction, and checked.
//!
//! Every write of an action, task, decision, meeting note or memory fact re-indexes that record
//! in the same transaction, so a search never sees a half-written record nor misses a
//! committed one. The index maps (tenant, token, entity type, created_at, entity id) to a field
//! mask (title and/or body). The creation instant sits before the id so that a new record's
//! common words are appended at the end of each word's range instead of landing on a random
//! page (ids are random UUIDs): that keeps a batch of creates to a few dirty pages. A rewrite
//! computes the record's previous tokens from the record it replaces, so no per-record token
//! list is stored. Memory facts are indexed only while `active` (superseding a fact removes the
//! old version).
//!
//! Beside the entries, every indexed record has one **rank row** (tenant, entity type,
//! created_at, entity id) → `updated_at`, written by the same re-indexing. Its key is the tail
//! of the record's index entries, so a search turns each match into its rank row without
//! parsing the id, ranks every match from those rows alone, and reads only the records of the
//! page it returns: a search costs one small read per match plus one record per result, not one
//! record per match. (`updated_at` in every index entry would have made ranking free, but then
//! every update would rewrite all of its record's entries.)
//!
//! Databases written before this layout (which kept a token list per record in
//! `co_search_docs`) get their index rebuilt from the records when opened, and databases
//! before layout 5 get their rank rows ([`crate::layout`]).
//!

use super::super::{EntityType, actions, decisions, meetings, memory, tasks};
use crate::check::{Checker, Expected};
use crate::error::Result;
use crate::store::{Flow, KeyDef, Order, Reader, Record, Table, TableInfo, WriteTx, key, parts};
use crate::time::Timestamp;
use std::collections::BTreeMap;

pub(super) const TITLE: u8 = 1;
pub(super) const BODY: u8 = 2;

/// Characters of a word that are indexed (and the longest word a query may hold).
pub const MAX_TOKEN_CHARS: usize = 64;
/// Distinct words indexed per record.
pub const MAX_RECORD_TOKENS: usize = 1_000;

/// A row of the legacy per-record token table: the tokens indexed for the record (never read,
/// only cleared by [`rebuild_index`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LegacyDoc(Vec<String>);
impl Record for LegacyDoc {}

key! {
    /// (tenant, token, entity type, created at, entity id): one word of one record.
    pub(crate) struct EntryKey<'a> {
        tenant_id: tenant,
        token: str,
        entity_type: str,
        created_at: ts,
        entity_id: ext_id,
    }
    /// (tenant, entity type, created at, entity id): the tail of a record's entries.
    pub(crate) struct RankKey<'a> {
        tenant_id: tenant,
        entity_type: str,
        created_at: ts,
        entity_id: ext_id,
    }
    /// (tenant, entity type, entity id): a record of the layouts before 2.
    pub(crate) struct LegacyDocKey<'a> { tenant_id: tenant, entity_type: str, entity_id: str }
}

/// (tenant, token, entity type, created_at, entity id) → field mask (1 title, 2 body): the
/// search index.
pub(crate) const SEARCH: Table<EntryKey<'static>, u8> = Table::new("co_search");
/// (tenant, entity type, created_at, entity id) → `updated_at` of every indexed record: what
/// a search ranks by, read without decoding the record.
pub(crate) const RANKS: Table<RankKey<'static>, Timestamp> = Table::new("co_search_rank");
/// Legacy: (tenant, entity type, entity id) → the tokens indexed for the record. Written by
/// databases before the current search layout; emptied when such a database is opened.
pub(crate) const LEGACY_DOCS: Table<LegacyDocKey<'static>, LegacyDoc> =
    Table::new("co_search_docs");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&SEARCH, &RANKS, &LEGACY_DOCS];

/// The words of `text`: lower-cased, split at non-alphanumeric characters.
pub fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Where the record of the stored entry `entry` sits — its type, and where the entry's
/// *place* starts: the parts after the token (entity type, created at, entity id), which are
/// its rank row's key after the tenant ([`rank_key`]). `after_tenant` is the length of the
/// entry's tenant part. Read part by part, without the rest of the key: a search reads one
/// of these per index entry it visits.
pub(crate) fn place_of(entry: &[u8], after_tenant: usize) -> Option<(EntityType, usize)> {
    let (_, at) = parts::str::get(entry, after_tenant)?;
    let (et, _) = parts::str::get(entry, at)?;
    Some((EntityType::parse(&et)?, at))
}

/// The type of a place ([`place_of`]) and where its id part starts.
pub(crate) fn id_of(place: &[u8]) -> Option<(EntityType, usize)> {
    let (et, at) = parts::str::get(place, 0)?;
    // The id follows the type and the eight bytes of the creation instant.
    let id_at = at.checked_add(8).filter(|&i| i < place.len())?;
    Some((EntityType::parse(&et)?, id_at))
}

/// The index entry of `token` in record (`et`, `id`) created at `created_at`.
pub(crate) fn entry_key<'a>(
    tenant: &'a str,
    token: &'a str,
    et: EntityType,
    created_at: Timestamp,
    id: &'a str,
) -> EntryKey<'a> {
    EntryKey::new(tenant, token, et.as_str(), created_at, id)
}

/// The rank row of record (`et`, `id`) created at `created_at`: the tail of its index entries
/// ([`entry_key`]) after the tenant, without the token.
pub(crate) fn rank_key<'a>(
    tenant: &'a str,
    et: EntityType,
    created_at: Timestamp,
    id: &'a str,
) -> RankKey<'a> {
    RankKey::new(tenant, et.as_str(), created_at, id)
}

/// `word` cut to its first [`MAX_TOKEN_CHARS`] characters, as indexed.
fn cut(mut word: String) -> String {
    if let Some((at, _)) = word.char_indices().nth(MAX_TOKEN_CHARS) {
        word.truncate(at);
    }
    word
}

/// The tokens of a record with their field masks (title and/or body), as indexed: its words
/// cut to [`MAX_TOKEN_CHARS`] characters, the first [`MAX_RECORD_TOKENS`] distinct ones (title
/// first). A word met again later still adds its field to the mask.
pub(crate) fn doc_tokens(title: &str, bodies: &[&str]) -> BTreeMap<String, u8> {
    fields_tokens(title, bodies, true)
}

/// The tokens layouts before 6 indexed: every word, whole (for the upgrade).
fn uncapped_tokens(title: &str, bodies: &[&str]) -> BTreeMap<String, u8> {
    fields_tokens(title, bodies, false)
}

fn fields_tokens(title: &str, bodies: &[&str], capped: bool) -> BTreeMap<String, u8> {
    let mut out: BTreeMap<String, u8> = BTreeMap::new();
    let fields = std::iter::once((title, TITLE)).chain(bodies.iter().map(|b| (*b, BODY)));
    for (text, mask) in fields {
        for w in tokens(text) {
            let w = if capped { cut(w) } else { w };
            let room = !capped || out.len() < MAX_RECORD_TOKENS;
            match out.get_mut(&w) {
                Some(m) => *m |= mask,
                None if room => {
                    out.insert(w, mask);
                }
                None => {}
            }
        }
    }
    out
}

/// What one record contributes to the search index: its type, id, title and body fields. Each
/// searchable record type says so once ([`Searchable`]); indexing and the consistency checker
/// both read it from there.
pub(crate) struct SearchDoc<'a> {
    pub entity_type: EntityType,
    pub id: &'a str,
    pub title: &'a str,
    pub bodies: Vec<&'a str>,
    /// The record's creation instant (never changes, so its entries keep their place).
    pub created_at: Timestamp,
    /// What the record is ranked by (its rank row).
    pub updated_at: Timestamp,
}

/// A record that is indexed for search.
pub(crate) trait Searchable {
    /// Its search document.
    fn search_doc(&self) -> SearchDoc<'_>;

    /// Whether it is in the index at all (memory facts: only while active).
    fn indexed(&self) -> bool {
        true
    }
}

/// What one record puts in the index: its place (type, id, creation instant), its rank and
/// its tokens with their field masks.
struct Indexed {
    et: EntityType,
    id: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    tokens: BTreeMap<String, u8>,
}

impl Indexed {
    fn of<R: Searchable + ?Sized>(r: &R) -> Option<Self> {
        r.indexed().then(|| {
            let d = r.search_doc();
            Indexed {
                et: d.entity_type,
                id: d.id.to_owned(),
                created_at: d.created_at,
                updated_at: d.updated_at,
                tokens: doc_tokens(d.title, &d.bodies),
            }
        })
    }

    fn same_place(&self, other: &Indexed) -> bool {
        self.et == other.et && self.id == other.id && self.created_at == other.created_at
    }

    fn entry<'a>(&'a self, tenant: &'a str, token: &'a str) -> EntryKey<'a> {
        entry_key(tenant, token, self.et, self.created_at, &self.id)
    }

    fn rank<'a>(&'a self, tenant: &'a str) -> RankKey<'a> {
        rank_key(tenant, self.et, self.created_at, &self.id)
    }
}

/// Brings the index from `before` (the record as stored until this write; `None` for a new
/// record) to `after` (`None`: the record is gone), writing only the entries that change and
/// the rank row when `updated_at` moved.
fn reindex<R: Searchable + ?Sized>(
    tx: &mut WriteTx,
    tenant: &str,
    before: Option<&R>,
    after: Option<&R>,
) -> Result<()> {
    let old = before.and_then(Indexed::of);
    let new = after.and_then(Indexed::of);
    // Both versions when the record keeps its place: only what differs is then rewritten.
    let in_place = old
        .as_ref()
        .zip(new.as_ref())
        .filter(|(o, n)| o.same_place(n));
    if let Some(o) = &old {
        let kept = in_place.map(|(_, n)| n);
        for w in o.tokens.keys() {
            if !kept.is_some_and(|n| n.tokens.contains_key(w)) {
                tx.delete(&SEARCH, &o.entry(tenant, w))?;
            }
        }
        if kept.is_none() {
            tx.delete(&RANKS, &o.rank(tenant))?;
        }
    }
    if let Some(n) = &new {
        let was = in_place.map(|(o, _)| o);
        for (w, m) in &n.tokens {
            if was.is_none_or(|o| o.tokens.get(w) != Some(m)) {
                tx.put(&SEARCH, &n.entry(tenant, w), m)?;
            }
        }
        if was.is_none_or(|o| o.updated_at != n.updated_at) {
            tx.put(&RANKS, &n.rank(tenant), &n.updated_at)?;
        }
    }
    Ok(())
}

/// Stores `rec`, a record of the tenant, in `table` under its id and brings the index (entries
/// and rank row) from the version it replaces to it, in the caller's transaction.
pub(crate) fn save<K: KeyDef, R: Record + Searchable>(
    tx: &mut WriteTx,
    table: &Table<K, R>,
    key: &K::Of<'_>,
    tenant: &str,
    rec: &R,
) -> Result<()> {
    let before = tx.replace(table, key, rec)?;
    reindex(tx, tenant, before.as_ref(), Some(rec))
}

/// [`save`] for a record just created, whose id this operation sealed from a sequence: no
/// version can be stored under its key, so none is read first. The index entries and rank row
/// are written as for any new record. (On PostgreSQL the read of the version replaced was a
/// round trip per create, the writer's lock held meanwhile; `bespin check` holds the index to
/// the records, so a key that did hold a record would not go unnoticed.)
pub(crate) fn insert<K: KeyDef, R: Record + Searchable>(
    tx: &mut WriteTx,
    table: &Table<K, R>,
    key: &K::Of<'_>,
    tenant: &str,
    rec: &R,
) -> Result<()> {
    tx.put(table, key, rec)?;
    reindex(tx, tenant, None, Some(rec))
}

/// Removes the record under `key` of `table` and, in the same transaction, its index entries
/// and rank row: from this commit on, no search finds it. Returns the removed record.
pub(crate) fn remove<K: KeyDef, R: Record + Searchable>(
    tx: &mut WriteTx,
    table: &Table<K, R>,
    key: &K::Of<'_>,
    tenant: &str,
) -> Result<Option<R>> {
    let before: Option<R> = tx.get(table, key)?;
    if before.is_some() {
        tx.delete(table, key)?;
        reindex(tx, tenant, before.as_ref(), None)?;
    }
    Ok(before)
}

/// Rebuilds the whole index and the rank rows from the records (for a database of an older
/// layout, which also kept a token list per record in `co_search_docs`).
pub(crate) fn rebuild_index(tx: &mut WriteTx) -> Result<()> {
    tx.delete_prefix(&LEGACY_DOCS, &LEGACY_DOCS.prefix())?;
    tx.delete_prefix(&SEARCH, &SEARCH.prefix())?;
    tx.delete_prefix(&RANKS, &RANKS.prefix())?;
    each_record(tx, &mut |tx, tenant, rec| {
        reindex(tx, tenant, None, Some(rec))
    })
}

/// Brings the index of a database of layout 2 to 5, which indexed every word whole, to the
/// bounds of layout 6 ([`doc_tokens`]): only records with a word longer than
/// [`MAX_TOKEN_CHARS`] or more than [`MAX_RECORD_TOKENS`] distinct words change; the others are
/// read and left alone.
pub(crate) fn cap_index(tx: &mut WriteTx) -> Result<()> {
    each_record(tx, &mut |tx, tenant, rec| {
        let Some(capped) = Indexed::of(rec) else {
            return Ok(());
        };
        let d = rec.search_doc();
        let whole = uncapped_tokens(d.title, &d.bodies);
        if whole == capped.tokens {
            return Ok(());
        }
        for w in whole.keys() {
            tx.delete(&SEARCH, &capped.entry(tenant, w))?;
        }
        for (w, m) in &capped.tokens {
            tx.put(&SEARCH, &capped.entry(tenant, w), m)?;
        }
        Ok(())
    })
}

/// Writes the rank row of every indexed record (for a database of layout 2 to 4, whose index
/// entries are current but which had no rank rows).
pub(crate) fn rebuild_ranks(tx: &mut WriteTx) -> Result<()> {
    tx.delete_prefix(&RANKS, &RANKS.prefix())?;
    each_record(tx, &mut |tx, tenant, rec| match Indexed::of(rec) {
        Some(i) => tx.put(&RANKS, &i.rank(tenant), &i.updated_at),
        None => Ok(()),
    })
}

/// What [`each_record`] does with one record of a tenant.
type Visit<'a> = dyn FnMut(&mut WriteTx, &str, &dyn Searchable) -> Result<()> + 'a;

/// Calls `f` with every searchable record of every tenant.
fn each_record(tx: &mut WriteTx, f: &mut Visit<'_>) -> Result<()> {
    each_of(tx, &actions::ACTIONS, f)?;
    each_of(tx, &tasks::TASKS, f)?;
    each_of(tx, &decisions::DECISIONS, f)?;
    each_of(tx, &meetings::MEETINGS, f)?;
    each_of(tx, &memory::FACTS, f)
}

/// Calls `f` with every record of `table` (keyed by tenant first).
fn each_of<K: KeyDef, R: Record + Searchable>(
    tx: &mut WriteTx,
    table: &Table<K, R>,
    f: &mut Visit<'_>,
) -> Result<()> {
    let mut all: Vec<(String, R)> = Vec::new();
    tx.scan(table, &table.prefix(), Order::Asc, |k, rec: R| {
        if let Some((tenant, _)) = crate::store::parts::tenant::get(k, 0) {
            all.push((tenant.into_owned(), rec));
        }
        Ok(Flow::Continue)
    })?;
    for (tenant, rec) in &all {
        f(tx, tenant, rec)?;
    }
    Ok(())
}

/// The search index and rank rows the records' text implies ([`super::Records::add`]).
#[derive(Default)]
pub(crate) struct Implied {
    entries: Expected<EntryKey<'static>, u8>,
    ranks: Expected<RankKey<'static>, Timestamp>,
}

impl Implied {
    /// Adds what record `rec` of `tenant` puts in the index (nothing if it is not indexed).
    pub(crate) fn add(&mut self, tenant: &str, rec: &dyn Searchable) {
        let Some(i) = Indexed::of(rec) else {
            return;
        };
        for (w, mask) in &i.tokens {
            self.entries.add(&i.entry(tenant, w), mask);
        }
        self.ranks.add(&i.rank(tenant), &i.updated_at);
    }
}

/// Checks that the search index and the rank rows are exactly what the records' text implies
/// (both ways), and that the per-record token table of older layouts is empty.
pub(crate) fn check(r: &impl Reader, c: &mut Checker, implied: Implied) -> Result<()> {
    c.index(r, &LEGACY_DOCS, Expected::new(), "legacy search document")?;
    c.index(r, &SEARCH, implied.entries, "search token")?;
    c.index(r, &RANKS, implied.ranks, "search rank")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{caught, first_key, populated};

    #[test]
    fn a_rank_key_is_the_tenant_and_the_place_of_the_entries() {
        let (t, et, at) = ("tenant", EntityType::Decision, Timestamp(-3));
        // An id Bespin makes (16 bytes in the key), and one that is not a UUID (its text).
        for (id, id_len) in [("0f9e8d7c-6b5a-4948-8776-655443322110", 18), ("id\0x", 7)] {
            let entry = entry_key(t, "word", et, at, id).encode();
            let after_tenant = SEARCH.prefix().tenant(t).as_bytes().len();
            let (found, place_at) = place_of(&entry, after_tenant).expect("place");
            assert_eq!(found, et);
            let place = &entry[place_at..];
            let rank = rank_key(t, et, at, id).encode();
            assert_eq!(rank, [&rank[..after_tenant], place].concat());
            let (et2, id_at) = id_of(place).expect("id");
            assert_eq!(et2, et);
            assert_eq!(place.len() - id_at, id_len);
            assert_eq!(parts::ext_id::get(place, id_at).expect("id").0, id);
        }
    }

    #[test]
    fn a_stale_search_entry_and_a_missing_token_are_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &SEARCH);
            tx.delete_stored(&SEARCH, &k)?;
            tx.put_stored(&SEARCH, &[k.as_slice(), b"x"].concat(), &1u8)
        });
        caught(&db, "co_search", "missing index entry");
        caught(&db, "co_search", "dangling or stale");
    }

    #[test]
    fn a_stale_search_rank_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &RANKS);
            tx.put_stored(&RANKS, &k, &Timestamp(1))
        });
        caught(&db, "co_search_rank", "wrong value");
    }
}
