//! Global search (40 §8) over a tenant-scoped inverted index (`index.rs`: how records are
//! indexed, the tables, and the checks).
//!
//! ## Matching rules
//! - Text is lower-cased with Unicode case mapping (`str::to_lowercase`) and split into words
//!   at every character that is not alphanumeric (Unicode letters and digits). The same is
//!   done to `q`.
//! - A record matches when **every** word of `q` is a prefix of some word of the record
//!   (title or body). `pric` matches "Pricing"; `ing` does not. There are no wildcards: `%` and
//!   `_` are separators like any punctuation, so a `q` with no letters or digits matches nothing.
//! - Searched fields: actions and tasks: title / description; decisions: title / context,
//!   decision, rationale; meeting notes: title / notes; memory facts: `fact_key` (as the title)
//!   / `fact_value`; only active facts.
//! - Ranking: records where every word of `q` matches in the title come first, then the rest;
//!   within each group newest `updated_at` first (ties: type order, then id).
//! - `snippet`: up to 100 characters of the body field holding the first matching word,
//!   starting a little before it; when only the title matches, the start of the body (for
//!   decisions the context, else the decision text); `null` for an empty body.
//! - Entity types whose capability the tenant's plan lacks are skipped. `total` is the number
//!   of matching records (before `limit`).
//!
//! ## Bounds
//! Indexing and searching are bounded so that no record or query costs more than a fixed budget:
//! - a record's words are indexed by their first [`MAX_TOKEN_CHARS`] characters, and only its
//!   first [`MAX_RECORD_TOKENS`] distinct words are indexed (title first, then the body fields in
//!   order); a query word, at most as long, matches a longer word exactly as the rule above says;
//! - `q` has at most [`MAX_QUERY_CHARS`] characters and [`MAX_QUERY_WORDS`] distinct words,
//!   each at most [`MAX_TOKEN_CHARS`] characters (422 at `["q"]` otherwise); repeated words
//!   count once, and a word that is a prefix of another word of `q` adds nothing (the longer
//!   one implies it) and is not searched;
//! - the words are searched longest first, and the search stops as soon as one of them has
//!   no match left in common with the others (the result is then empty);
//! - a search reads at most [`crate::Options::search_max_scan`] index entries (default
//!   [`DEFAULT_MAX_SCAN`]); one that would read more ends with 422 at `["q"]` (`value_error`:
//!   use longer words), having read no more than that.

pub(crate) mod index;

use index::{BODY, TITLE};
pub(crate) use index::{
    Implied, RANKS, SEARCH, SearchDoc, Searchable, TABLES, cap_index, check, insert, rebuild_index,
    rebuild_ranks, remove, save,
};
pub use index::{MAX_RECORD_TOKENS, MAX_TOKEN_CHARS, tokens};

use super::{EntityType, actions, decisions, meetings, memory, tasks};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::error::{Error, FieldError, LocPart, Result};
use crate::metering::Meter;
use crate::store::{Flow, Order, Reader, WriteTx, parts};
use crate::time::Timestamp;
use crate::validate::{Bounds, Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::Serialize;
use serde_json::Value;

/// The longest `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 512;
/// The most distinct words in `q`.
pub const MAX_QUERY_WORDS: usize = 16;
/// Index entries one search may read, unless [`crate::Options::search_max_scan`] says otherwise.
pub const DEFAULT_MAX_SCAN: usize = 20_000;

/// Query of [`Bespin::search`].
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The query text (1 to [`MAX_QUERY_CHARS`] characters).
    pub q: String,
    /// The words searched for: those of `q`, de-duplicated, without the ones another word
    /// implies (a prefix of it), longest first (see the module's "Bounds").
    pub words: Vec<String>,
    /// The entity types to search, in the contract's order.
    pub types: Vec<EntityType>,
    /// At most this many results (1–100, default 50).
    pub limit: u64,
}

impl SearchQuery {
    /// Validates query values (`q`, `types`, `limit`) given as a JSON object of strings.
    /// `types` is a comma-separated list of `actions`, `tasks`, `decisions`, `meetings`,
    /// `memory`; items are trimmed, unknown items ignored; empty or absent means all types.
    /// `q` is bounded as the module's "Bounds" say (422 `value_error` at `["q"]`).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let q = f.req_string("q", Len::between(1, MAX_QUERY_CHARS));
        let words = q.as_deref().map(query_words);
        match &words {
            Some(w) if w.distinct > MAX_QUERY_WORDS => f.value_error(
                "q",
                format!("q should have at most {MAX_QUERY_WORDS} distinct words"),
            ),
            Some(w) if w.longest > MAX_TOKEN_CHARS => f.value_error(
                "q",
                format!("each word of q should have at most {MAX_TOKEN_CHARS} characters"),
            ),
            _ => {}
        }
        let types = f.string("types", Presence::Optional, Len::ANY);
        let limit = f.int("limit", Presence::Optional, Bounds::range(1, 100));
        f.finish()?;
        let types = match got(types)?.filter(|s| !s.trim().is_empty()) {
            None => EntityType::ALL.to_vec(),
            Some(s) => {
                let wanted: Vec<&str> = s.split(',').map(str::trim).collect();
                EntityType::ALL
                    .into_iter()
                    .filter(|t| wanted.contains(&plural(*t)))
                    .collect()
            }
        };
        Ok(SearchQuery {
            q: got(q)?,
            words: got(words)?.searched,
            types,
            limit: u64::try_from(got(limit)?.unwrap_or(50)).unwrap_or(50),
        })
    }
}

/// The words of a query: how many distinct ones, the longest one's length in characters, and
/// those to search (see [`SearchQuery::words`]).
struct QueryWords {
    distinct: usize,
    longest: usize,
    searched: Vec<String>,
}

fn query_words(q: &str) -> QueryWords {
    let mut words = tokens(q);
    words.sort_unstable();
    words.dedup();
    let distinct = words.len();
    let longest = words.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    // Sorted, a word that is a prefix of others comes right before one of them.
    let mut searched: Vec<String> = words
        .iter()
        .enumerate()
        .filter(|(i, w)| {
            words
                .get(i + 1)
                .is_none_or(|next| !next.starts_with(w.as_str()))
        })
        .map(|(_, w)| w.clone())
        .collect();
    searched.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    QueryWords {
        distinct,
        longest,
        searched,
    }
}

fn plural(t: EntityType) -> &'static str {
    match t {
        EntityType::Action => "actions",
        EntityType::Task => "tasks",
        EntityType::Decision => "decisions",
        EntityType::Meeting => "meetings",
        EntityType::MemoryFact => "memory",
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    /// `action`, `task`, `decision`, `meeting` or `memory_fact`.
    pub entity_type: String,
    /// The record id.
    pub entity_id: String,
    /// The record's title (`fact_key` for memory facts).
    pub title: String,
    /// Up to 100 characters of the body around the match, or `null`.
    pub snippet: Option<String>,
    /// The record's `updated_at` (RFC 3339, UTC).
    pub updated_at: String,
}

/// `GET /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// `q` as received.
    pub q: String,
    /// Ranked results, at most `limit`.
    pub results: Vec<SearchHit>,
    /// Number of matching records (before `limit`).
    pub total: u64,
}

/// What search needs of a record.
struct Doc {
    title: String,
    bodies: Vec<String>,
    fallback: Option<String>,
}

fn doc(r: &impl Reader, tenant: &str, et: EntityType, id: &str) -> Result<Option<Doc>> {
    let d = match et {
        EntityType::Action => {
            let a = actions::load(r, tenant, id)?;
            let body = a.description.unwrap_or_default();
            Doc {
                title: a.title,
                bodies: vec![body.clone()],
                fallback: Some(body),
            }
        }
        EntityType::Task => {
            let t = tasks::load(r, tenant, id)?;
            let body = t.description.unwrap_or_default();
            Doc {
                title: t.title,
                bodies: vec![body.clone()],
                fallback: Some(body),
            }
        }
        EntityType::Decision => {
            let d = decisions::load(r, tenant, id)?;
            let context = d.context.unwrap_or_default();
            let fallback = if context.is_empty() {
                d.decision.clone()
            } else {
                context.clone()
            };
            Doc {
                title: d.title,
                bodies: vec![context, d.decision, d.rationale.unwrap_or_default()],
                fallback: Some(fallback),
            }
        }
        EntityType::Meeting => {
            let m = meetings::load(r, tenant, id)?;
            Doc {
                title: m.title,
                bodies: vec![m.notes.clone()],
                fallback: Some(m.notes),
            }
        }
        EntityType::MemoryFact => {
            let f = memory::load(r, tenant, id)?;
            if f.status != "active" {
                return Ok(None);
            }
            Doc {
                title: f.fact_key,
                bodies: vec![f.fact_value.clone()],
                fallback: Some(f.fact_value),
            }
        }
    };
    Ok(Some(d))
}

fn first_chars(s: &str, n: usize) -> String {
    let end = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
    s[..end].to_owned()
}

/// A matching record, as ranked: its id is read out of its place only if it makes the page.
struct Hit {
    in_title: bool,
    updated_at: Timestamp,
    /// The tail of its index entries: type, created_at, id (see [`index::place_of`]).
    place: Vec<u8>,
    /// Where the id part starts in `place`.
    id_at: usize,
    et: EntityType,
}

impl Hit {
    /// Title matches first, then the most recently updated, then by type, then by id. Ids are
    /// compared in their key encoding ([`parts::ext_id`]), which orders UUIDs (every id Bespin
    /// makes) as their text does.
    fn order(a: &Hit, b: &Hit) -> std::cmp::Ordering {
        b.in_title
            .cmp(&a.in_title)
            .then(b.updated_at.cmp(&a.updated_at))
            .then(a.et.cmp(&b.et))
            .then(a.place[a.id_at..].cmp(&b.place[b.id_at..]))
    }
}

/// The places in both sorted lists, a title match only where both words are in the title.
fn both(a: Vec<(Vec<u8>, u8)>, b: &[(Vec<u8>, u8)]) -> Vec<(Vec<u8>, u8)> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let mut b = b.iter().peekable();
    for (place, m) in a {
        while b.next_if(|(other, _)| *other < place).is_some() {}
        if let Some((_, m2)) = b.next_if(|(other, _)| *other == place) {
            out.push((place, (m & m2 & TITLE) | BODY));
        }
    }
    out
}

/// Whether `word` lower-cased (as [`tokens`] lower-cases) starts with one of `q`.
fn word_matches(word: &str, q: &[String]) -> bool {
    if word.is_ascii() {
        // The common case, without building the lower-cased word.
        let w = word.as_bytes();
        // `q`'s words are lower-cased already.
        q.iter()
            .any(|t| t.len() <= w.len() && w[..t.len()].eq_ignore_ascii_case(t.as_bytes()))
    } else {
        let lower = word.to_lowercase();
        q.iter().any(|t| lower.starts_with(t.as_str()))
    }
}

/// The byte offset of the first word of `text` that starts with one of `q`.
fn first_match(text: &str, q: &[String]) -> Option<usize> {
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if word_matches(&text[s..i], q) {
                    return Some(s);
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

fn snippet(d: &Doc, q: &[String]) -> Option<String> {
    for b in &d.bodies {
        if let Some(pos) = first_match(b, q) {
            // Up to 30 characters back, then forward to the start of a word.
            let back = b[..pos].char_indices().rev().nth(29).map_or(0, |(i, _)| i);
            let mut start = back;
            if start > 0
                && let Some((ws, c)) = b[start..pos]
                    .char_indices()
                    .find(|(_, c)| c.is_whitespace())
            {
                start += ws + c.len_utf8();
            }
            return Some(first_chars(&b[start..], 100));
        }
    }
    d.fallback
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| first_chars(s, 100))
}

/// Runs a search in the tenant over the types in `q` that the plan grants, reading at most
/// `max_scan` index entries: `None` when it would need more.
///
/// Cost: one range scan of the index per searched word (longest first, stopping once no record
/// can match), at most `max_scan` index entries in all, one rank row read per matching record,
/// then the record, snippet and rendering of the returned page only.
pub(crate) fn run(
    r: &impl Reader,
    caller: &Principal,
    q: &SearchQuery,
    max_scan: usize,
) -> Result<Option<SearchResults>> {
    let tenant = caller.tenant_id();
    let mut allowed = Vec::new();
    for t in &q.types {
        match require_capability(r, caller, t.capability()) {
            Ok(()) => allowed.push(*t),
            // Types the plan lacks, or the caller's key is not scoped to, are skipped.
            Err(Error::CapabilityDenied { .. } | Error::Forbidden(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let words = &q.words;
    let mut budget = max_scan;
    let mut hits: Vec<Hit> = Vec::new();
    if !words.is_empty() && !allowed.is_empty() {
        // For each query word: the places (type, created_at, id: the tail of an index entry
        // after its token) of the records having a word with that prefix, and where; sorted,
        // so that the words' lists meet in one merge.
        let mut acc: Option<Vec<(Vec<u8>, u8)>> = None;
        let in_tenant = SEARCH.prefix().tenant(tenant);
        let after_tenant = in_tenant.as_bytes().len();
        for w in words {
            let mut found: Vec<(Vec<u8>, u8)> = Vec::new();
            let prefix = in_tenant.clone().starting(w);
            let mut over = false;
            r.scan(&SEARCH, &prefix, Order::Asc, |k, mask: u8| {
                if budget == 0 {
                    over = true;
                    return Ok(Flow::Stop);
                }
                budget -= 1;
                if let Some((et, at)) = index::place_of(k, after_tenant)
                    && allowed.contains(&et)
                {
                    found.push((k[at..].to_vec(), mask));
                }
                Ok(Flow::Continue)
            })?;
            if over {
                return Ok(None);
            }
            // A record shows up once per indexed word with the prefix: one place, masks joined.
            found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            found.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 |= next.1;
                }
                same
            });
            let joined = match acc {
                None => found,
                Some(prev) => both(prev, &found),
            };
            // No record has every word so far: none can match, whatever the other words.
            let decided = joined.is_empty();
            acc = Some(joined);
            if decided {
                break;
            }
        }
        // A rank row's key is the tenant and the place of the record's entries.
        let mut rank = RANKS.prefix().tenant(tenant).as_bytes().to_vec();
        let after_tenant = rank.len();
        for (place, mask) in acc.unwrap_or_default() {
            let Some((et, id_at)) = index::id_of(&place) else {
                continue;
            };
            rank.truncate(after_tenant);
            rank.extend_from_slice(&place);
            // Every indexed record has its rank row (the checker holds the index to that).
            let Some(updated_at) = r.get_stored(&RANKS, &rank)? else {
                continue;
            };
            hits.push(Hit {
                in_title: mask & TITLE != 0,
                updated_at,
                place,
                id_at,
                et,
            });
        }
    }
    let total = hits.len() as u64;
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    if hits.len() > limit {
        // Only the page needs to be in order.
        hits.select_nth_unstable_by(limit, Hit::order);
        hits.truncate(limit);
    }
    hits.sort_by(Hit::order);
    let mut results = Vec::with_capacity(hits.len());
    for hit in hits {
        let Some((id, _)) = parts::ext_id::get(&hit.place, hit.id_at) else {
            continue;
        };
        if let Some(d) = doc(r, tenant, hit.et, &id)? {
            results.push(SearchHit {
                entity_type: hit.et.as_str().to_owned(),
                entity_id: id.into_owned(),
                snippet: snippet(&d, words),
                title: d.title,
                updated_at: hit.updated_at.to_rfc3339(),
            });
        }
    }
    Ok(Some(SearchResults {
        q: q.q.clone(),
        results,
        total,
    }))
}

/// The 422 of a search that would read more than `max` index entries.
fn too_broad(q: &SearchQuery, max: usize) -> Error {
    Error::field(FieldError::value_error(
        vec![LocPart::from("q")],
        Value::String(q.q.clone()),
        &format!("q matches more than {max} indexed words; search with longer or other words"),
    ))
}

/// Searches (any user) inside an open transaction: [`meter`], then the search. Errors as
/// [`Bespin::search`]; the usage event is in the same transaction, so a failed search leaves
/// none (metered even with zero results; no audit row, no timeline event).
pub fn search(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    q: &SearchQuery,
) -> Result<SearchResults> {
    meter(tx, ctx, caller)?;
    let max = ctx.options.search_max_scan;
    run(tx, caller, q, max)?.ok_or_else(|| too_broad(q, max))
}

/// Meters one search: capability `search` → quota `search_query` → the usage event.
pub fn meter(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal) -> Result<()> {
    require_capability(tx, caller, "search")?;
    one_search()
        .check(tx, ctx, caller.tenant_id())?
        .record_fresh(tx, ctx, caller)
}

/// A search taken with [`Bespin::search_deferred`], holding its snapshot until it runs.
pub struct DeferredSearch {
    snapshot: std::sync::Arc<crate::store::ReadTx>,
    caller: Principal,
    q: SearchQuery,
    max_scan: usize,
}

impl DeferredSearch {
    /// Runs the search: the results, or 422 at `["q"]` past the budget (as
    /// [`Bespin::search_unmetered`]).
    pub fn run(self) -> Result<SearchResults> {
        run(&*self.snapshot, &self.caller, &self.q, self.max_scan)?
            .ok_or_else(|| too_broad(&self.q, self.max_scan))
    }
}

impl std::fmt::Debug for DeferredSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredSearch")
            .field("q", &self.q)
            .finish()
    }
}

/// Capability `search`, then the quota for one `search_query`, on a snapshot. Only whether it
/// passes: the usage is recorded by [`meter`], which checks again in its transaction, so the
/// snapshot's answer serves every search on it.
fn allowed(r: &impl Reader, ctx: &Ctx, caller: &Principal) -> Result<()> {
    let tenant = caller.tenant_id();
    require_capability(r, caller, "search")?;
    r.remembered(&["quota", tenant, "search_query"], &mut || {
        one_search().check(r, ctx, tenant).map(|_permit| ())
    })
}

/// What one search is metered as.
fn one_search() -> Meter<'static> {
    Meter::one("search_query", "search")
}

impl Bespin {
    /// `GET /v1/search`: [`Bespin::search_allowed`], [`Bespin::search_unmetered`], then
    /// [`Bespin::meter_search`]. The search reads the last commit and runs outside the writer,
    /// so concurrent searches run in parallel; only the metering queues for the single writer.
    /// Errors as the contract orders them: entitlement (403), then `QuotaExceeded` (429), then a
    /// search past its budget (422); a refused search writes nothing.
    pub fn search(&self, caller: &Principal, q: &SearchQuery) -> Result<SearchResults> {
        self.search_allowed(caller)?;
        let out = self.search_unmetered(caller, q)?;
        self.meter_search(caller)?;
        Ok(out)
    }

    /// Whether the caller may search now, on the latest snapshot: capability `search`, then the
    /// billing quota for one `search_query` (the contract checks both before the search). A
    /// tenant out of credits is refused before a search costs anything; [`Bespin::meter_search`]
    /// checks again in the transaction that records the usage, so concurrent searches never
    /// jointly exceed the quota. Errors: entitlement, `QuotaExceeded`.
    pub fn search_allowed(&self, caller: &Principal) -> Result<()> {
        self.read(|r, ctx| allowed(r, ctx, caller))
    }

    /// The search part of [`Bespin::search`], on the latest snapshot: checks capability
    /// `search` (and skips the entity types the plan lacks). Writes nothing, so it must be
    /// followed by [`Bespin::meter_search`] before its results are shown.
    pub fn search_unmetered(&self, caller: &Principal, q: &SearchQuery) -> Result<SearchResults> {
        let max = self.ctx().options.search_max_scan;
        self.search_within(caller, q, max)?
            .ok_or_else(|| too_broad(q, max))
    }

    /// [`Bespin::search_unmetered`], to run later on another thread ([`DeferredSearch::run`]),
    /// on the snapshot of now: the capability is checked and the snapshot taken here, so the
    /// thread that runs it reads only that snapshot and takes no lock that the database's
    /// readers or writer wait on (it may run at a low priority). Errors: entitlement.
    pub fn search_deferred(&self, caller: &Principal, q: SearchQuery) -> Result<DeferredSearch> {
        let snapshot = self.snapshot()?;
        require_capability(&*snapshot, caller, "search")?;
        Ok(DeferredSearch {
            snapshot,
            caller: caller.clone(),
            q,
            max_scan: self.inner.options.search_max_scan,
        })
    }

    /// [`Bespin::search_unmetered`] if it reads at most `max_scan` index entries (never more
    /// than [`crate::Options::search_max_scan`]); `None` if it would read more (having read no
    /// more than that). Checks capability and quota first, as [`Bespin::search_allowed`]. For a caller that runs cheap searches at
    /// once and sends the others where they cost less (the server's background lane).
    pub fn search_within(
        &self,
        caller: &Principal,
        q: &SearchQuery,
        max_scan: usize,
    ) -> Result<Option<SearchResults>> {
        self.read(|r, ctx| {
            allowed(r, ctx, caller)?;
            run(r, caller, q, max_scan.min(ctx.options.search_max_scan))
        })
    }

    /// The metering part of [`Bespin::search`]: capability `search`, the billing quota for one
    /// `search_query` and its usage event, in one transaction ([`meter`]). Errors: entitlement,
    /// `QuotaExceeded`.
    pub fn meter_search(&self, caller: &Principal) -> Result<()> {
        // The write of a read: allowed to a read-only key, refused to a revoked one.
        self.write(|tx, ctx| {
            let read = crate::tenancy::keys::Access::Read;
            crate::tenancy::keys::admit(tx, ctx, caller, read)?;
            meter(tx, ctx, caller)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snip(body: &str, q: &str) -> Option<String> {
        let d = Doc {
            title: String::new(),
            bodies: vec![body.to_owned()],
            fallback: Some(body.to_owned()),
        };
        snippet(&d, &tokens(q))
    }

    #[test]
    fn snippets_start_a_little_before_the_first_matching_word() {
        let long = "The quarterly review covered many topics before we finally discussed pricing \
                    at length and then some more words to pass one hundred characters easily";
        assert_eq!(
            snip(long, "pric").as_deref(),
            Some(
                "before we finally discussed pricing at length and then some more words to pass \
                 one hundred character"
            )
        );
        // Multi-byte text, upper case outside ASCII, the match found case-insensitively.
        let de = "Überprüfung der ÄNDERUNGEN an der Preisgestaltung für Großkunden im nächsten \
                  Quartal — PREISGESTALTUNG bleibt";
        assert_eq!(
            snip(de, "preisg").as_deref(),
            Some(
                "der ÄNDERUNGEN an der Preisgestaltung für Großkunden im nächsten Quartal — \
                 PREISGESTALTUNG bleibt"
            )
        );
        assert_eq!(snip("ÉCOLE élève", "éco").as_deref(), Some("ÉCOLE élève"));
        assert_eq!(
            snip("Pricing first", "pricing").as_deref(),
            Some("Pricing first")
        );
        // No match in the body: its first 100 characters; an empty body: none.
        assert_eq!(
            snip("no match here", "zzz").as_deref(),
            Some("no match here")
        );
        assert_eq!(snip("", "zzz"), None);
        // Prefixes of words only.
        assert_eq!(first_match("repricing pricing", &tokens("pric")), Some(10));
        // A hundred characters, not bytes.
        let accents = "é".repeat(120);
        assert_eq!(snip(&accents, "zzz"), Some("é".repeat(100)));
    }

    /// The 422 items of a query.
    fn refused(q: Value) -> Vec<FieldError> {
        match SearchQuery::from_json(&q) {
            Err(Error::Validation(items)) => items,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn queries_are_bounded_and_their_words_reduced() {
        let words = |q: &str| SearchQuery::from_json(&json!({"q": q})).expect("q").words;
        // Repeats count once; a word another word starts with adds nothing; longest first.
        assert_eq!(words(&"a ".repeat(100)), ["a"]);
        assert_eq!(words("pri Pricing board b pricing"), ["pricing", "board"]);
        assert_eq!(words("%_ ,"), Vec::<String>::new());
        let sixteen: Vec<String> = (0..16).map(|i| format!("w{i:02}")).collect();
        assert_eq!(words(&sixteen.join(" ")).len(), 16);
        let loc = |items: &[FieldError]| (items[0].kind, items[0].loc.clone());
        let q = vec![LocPart::from("q")];
        let items = refused(json!({"q": format!("{} w16", sixteen.join(" "))}));
        assert_eq!(loc(&items), ("value_error", q.clone()));
        assert!(
            items[0].msg.contains("at most 16 distinct words"),
            "{}",
            items[0].msg
        );
        assert_eq!(words(&"x".repeat(64)).len(), 1);
        let items = refused(json!({"q": format!("ok {}", "x".repeat(65))}));
        assert!(
            items[0].msg.contains("at most 64 characters"),
            "{}",
            items[0].msg
        );
        let items = refused(json!({"q": "a ".repeat(257), "limit": "0"}));
        assert_eq!(loc(&items), ("string_too_long", q));
        assert_eq!(items.len(), 2, "every field is reported");
    }

    #[test]
    fn a_search_reads_at_most_its_budget_and_stops_once_decided() {
        let clock = crate::time::ManualClock::at("2026-01-31T12:00:00Z").expect("clock");
        let options = crate::Options {
            search_max_scan: 30,
            ..crate::Options::default()
        };
        let db = Bespin::open_for_test(std::sync::Arc::new(clock), options).expect("db");
        let (admin, _) = crate::testutil::tenant(&db);
        // 30 index entries start with "a": ten tasks of three such words each.
        for i in 0..10 {
            let t = json!({"title": format!("a{i}x a{i}y a{i}z")});
            let t = crate::coreos::tasks::NewTask::from_json(&t).expect("task");
            db.create_task(&admin, t).expect("create");
        }
        let search = |q: &str| {
            let q = SearchQuery::from_json(&json!({"q": q})).expect("q");
            db.search(&admin, &q)
        };
        assert_eq!(search("a").expect("30 entries").total, 10);
        let t = crate::coreos::tasks::NewTask::from_json(&json!({"title": "a10x zebra"}))
            .expect("task");
        db.create_task(&admin, t).expect("create");
        let before = db.billing_usage(&admin, None).expect("usage").credits.used;
        match search("a") {
            Err(Error::Validation(items)) => {
                assert_eq!(
                    (items[0].kind, items[0].loc.clone()),
                    ("value_error", vec![LocPart::from("q")])
                );
                assert!(items[0].msg.contains("more than 30"), "{}", items[0].msg);
            }
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(
            db.billing_usage(&admin, None).expect("usage").credits.used,
            before,
            "a refused search is not metered"
        );
        // The longest word goes first; when it matches nothing, the search is decided before
        // it would read the 31 entries of "a". When it matches, "a" is read too.
        assert_eq!(search("zzz a").expect("decided early").total, 0);
        assert!(matches!(search("zebra a"), Err(Error::Validation(_))));
    }

    #[test]
    fn a_tenant_out_of_credits_is_refused_before_the_search() {
        let (db, _) = crate::testutil::db();
        let (admin, member) = crate::testutil::tenant(&db);
        db.search_allowed(&member).expect("allowed");
        let tiny = json!({"plan_id": "tiny", "name": "Tiny", "included_credits": 0,
            "overage_price_per_credit": 0.0});
        let tiny = crate::billing::catalog::NewPlan::from_json(&tiny).expect("plan");
        db.admin_create_plan(tiny).expect("create plan");
        db.admin_set_plan_capabilities("tiny", vec!["search".to_owned()])
            .expect("caps");
        let sub = crate::billing::subscriptions::SubscriptionUpdate::from_json(
            &json!({"plan_id": "tiny"}),
        )
        .expect("sub");
        db.admin_set_subscription(admin.tenant_id(), sub)
            .expect("subscribe");
        assert!(matches!(
            db.search_allowed(&member),
            Err(Error::QuotaExceeded(_))
        ));
    }

    #[test]
    fn ranking_joins_a_records_words_and_breaks_ties_by_id() {
        let (db, _clock) = crate::testutil::db();
        let (admin, _) = crate::testutil::tenant(&db);
        let task = |title: &str, description: &str| {
            let t = json!({"title": title, "description": description});
            let t = crate::coreos::tasks::NewTask::from_json(&t).expect("task");
            db.create_task(&admin, t).expect("create").task_id
        };
        // The clock stands still: every record has the same updated_at.
        let both_in_title = task("pricing board", "");
        let split = task("pricing", "board meeting");
        let prefix_twice = task("pricing again", "priced");
        let body_only = task("other", "board pricing");
        let ids = |q: &str| {
            let q = SearchQuery::from_json(&json!({"q": q})).expect("query");
            let found = db.search(&admin, &q).expect("search");
            let ids: Vec<String> = found.results.into_iter().map(|h| h.entity_id).collect();
            (ids, found.total)
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        // A title match needs every word in the title; the rest tie, so they go by id.
        let mut want = vec![both_in_title.clone()];
        want.extend(sorted(vec![split.clone(), body_only.clone()]));
        assert_eq!(ids("pricing board"), (want, 3));
        // A record with two words of the prefix counts once, as a title match.
        let mut want = sorted(vec![both_in_title, split, prefix_twice]);
        want.push(body_only);
        assert_eq!(ids("pric"), (want, 4));
    }

    #[test]
    fn equal_matches_of_equal_age_go_by_type_in_the_contracts_order() {
        let (db, _clock) = crate::testutil::db();
        let (admin, _) = crate::testutil::tenant(&db);
        // The clock stands still: both have the same updated_at, so the type decides before
        // the ids do, whichever of the two sorts first.
        let m = json!({"meeting_date": "2026-11-30", "title": "pricing", "notes": "n"});
        let meeting = crate::coreos::meetings::NewMeeting::from_json(&m).expect("meeting");
        db.create_meeting(&admin, meeting).expect("create");
        let t =
            crate::coreos::tasks::NewTask::from_json(&json!({"title": "pricing"})).expect("task");
        db.create_task(&admin, t).expect("create");
        let q = SearchQuery::from_json(&json!({"q": "pricing"})).expect("query");
        let found = db.search(&admin, &q).expect("search");
        let types: Vec<&str> = found
            .results
            .iter()
            .map(|h| h.entity_type.as_str())
            .collect();
        assert_eq!(types, ["task", "meeting"]);
    }
}
