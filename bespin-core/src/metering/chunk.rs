//! Reported usage events stored in chunks: the events of one `record_usage_events` request
//! that were accepted, as one row of [`USAGE_CHUNKS`] (up to 1,000 events), with one row per
//! insertion order ([`super::export`]) for the chunk instead of three rows per event.
//!
//! A row per event was what bounded ingest (docs/performance.md, issue 22: the event's row and
//! its two order rows were about half of the writer's instructions per event). Each event
//! still has its own usage number (so its exported CloudEvent keeps a stable `id`, and a
//! cursor may point inside a chunk) and its own de-duplication row (exact in races). Events
//! recorded one per row before chunks, and Bespin's own metering (one event per operation),
//! stay rows of `usage_events`; every reader reads both ([`all_events`], the export, the
//! ledger, the purge of de-duplication rows).
//!
//! The key is (tenant, the latest instant of the chunk's events, its first usage number): the
//! ledger, newest first, walks chunks by their latest instant and stops once it holds enough
//! events later than the next chunk's.

use super::{Origin, UsageEventRec};
use crate::check::Checker;
use crate::compact::{self, put_varint, put_varint128, unzigzag, zigzag};
use crate::error::{Error, Result};
use crate::money::Amount;
use crate::store::{Flow, Order, Reader, Record, Show, Shown, Table, TableInfo, key};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

key! {
    /// (tenant, the latest instant of the chunk's events, its first usage number).
    pub(crate) struct UsageChunkKey<'a> { tenant_id: tenant, last_at: ts, first_seq: u64 }
}

/// (tenant, latest instant, first usage number) → the accepted events of one request. The
/// console shows a row per event, as a row of `usage_events` shows.
pub(crate) const USAGE_CHUNKS: Table<UsageChunkKey<'static>, UsageChunk> =
    Table::new("usage_chunks").shown_as(Show {
        key_parts: 1,
        rows: event_rows,
    });

/// A chunk's events as the console shows them: each with the key parts a row of
/// `usage_events` has after the tenant (its instant and number), then its record.
fn event_rows(value: &[u8]) -> Result<Shown> {
    let chunk: UsageChunk = crate::store::codec::decode(value)?;
    chunk
        .events
        .iter()
        .map(|e| {
            let rec = chunk.record(e)?;
            let fields =
                serde_json::to_value(rec).map_err(|e| Error::Storage(format!("show: {e}")))?;
            let parts = vec![
                ("emitted_at", serde_json::Value::String(e.at.to_string())),
                ("seq", serde_json::Value::from(e.seq)),
            ];
            Ok((parts, fields))
        })
        .collect()
}

/// How many events the chunks hold (the console's count of usage events), read from each
/// chunk's header without decoding its events.
pub(crate) fn count_events(r: &impl Reader) -> Result<u64> {
    let mut n = 0u64;
    let mut failed = None;
    r.scan_raw(
        USAGE_CHUNKS.name(),
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
        Order::Asc,
        &mut |_, v| {
            match v.split_first().map(|(_, body)| header_count(body)) {
                Some(Ok(k)) => n += k,
                Some(Err(e)) => failed = Some(e),
                None => failed = Some(malformed()),
            }
            Ok(if failed.is_some() {
                Flow::Stop
            } else {
                Flow::Continue
            })
        },
    )?;
    match failed {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// The number of events of an encoded chunk (after its version byte): the varint after the
/// user, the request, the types and the sources.
fn header_count(body: &[u8]) -> Result<u64> {
    let mut b = body;
    read_str(&mut b)?;
    read_str(&mut b)?;
    for _ in 0..read_len(&mut b)? {
        read_str(&mut b)?;
        read_amount(&mut b)?;
        read_amount(&mut b)?;
    }
    for _ in 0..read_len(&mut b)? {
        read_str(&mut b)?;
    }
    read_varint(&mut b)
}

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&USAGE_CHUNKS];

/// An event type of a chunk, with the weight and price its events were recorded at: an
/// event's credits are its raw units × the weight, its list cost the credits × the price,
/// computed as the ingest computed them (so not stored per event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChunkType {
    pub event_key: String,
    pub credits_per_unit: Amount,
    pub list_price_per_credit: Amount,
}

/// One event of a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChunkEvent {
    /// Its usage number.
    pub seq: u64,
    /// Its type: an index into the chunk's `types`.
    pub ty: u32,
    /// Its CloudEvent `source`: an index into the chunk's `sources`.
    pub source: u32,
    /// Its CloudEvent `id`.
    pub id: String,
    /// Its CloudEvent `subject`.
    pub subject: Option<String>,
    /// When the usage happened (its `time`).
    pub at: Timestamp,
    /// `data.value`.
    pub raw_units: Amount,
}

/// A row of [`USAGE_CHUNKS`]: the events one request of one tenant's caller reported and had
/// accepted, in the order of their usage numbers (increasing, not necessarily consecutive:
/// a duplicate found by its claim leaves its number unused).
///
/// Stored (after the version byte) in a layout of its own, not postcard, so that it is
/// compact (postcard writes an amount as 16 single bytes):
///
/// ```text
/// user_id, request_id   str
/// types                 varint n, then n × (event_key str, weight amount, price amount)
/// sources               varint n, then n × str
/// events                varint n, then n × (seq varint: the first absolute, each next as its
///                       difference to the one before; type varint; source varint; id str;
///                       subject varint 0 for none, else its length + 1 then its bytes;
///                       at zigzag varint of its difference to the one before, the first's
///                       to 0; raw_units amount)
/// str                   varint length, UTF-8 bytes
/// amount                varint scale, zigzag varint of the 128-bit mantissa
/// ```
///
/// The serde derives only satisfy [`Record`]'s bounds; the stored layout is the one above.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct UsageChunk {
    /// The caller that reported them.
    pub user_id: String,
    /// The request they came in.
    pub request_id: String,
    /// Their types.
    pub types: Vec<ChunkType>,
    /// Their sources.
    pub sources: Vec<String>,
    /// The events, by usage number.
    pub events: Vec<ChunkEvent>,
}

/// One reported event to add to a chunk ([`UsageChunk::push`]).
pub(crate) struct Accepted<'a> {
    pub seq: u64,
    pub event_key: &'a str,
    pub credits_per_unit: Amount,
    pub list_price_per_credit: Amount,
    pub source: &'a str,
    /// Moved from the request's event, not copied: each copy was an allocation on the writer.
    pub id: String,
    pub subject: Option<String>,
    pub at: Timestamp,
    pub raw_units: Amount,
}

impl UsageChunk {
    /// An empty chunk of `user_id`'s request `request_id`.
    pub(crate) fn new(user_id: &str, request_id: &str) -> Self {
        UsageChunk {
            user_id: user_id.to_owned(),
            request_id: request_id.to_owned(),
            ..UsageChunk::default()
        }
    }

    /// Adds an accepted event (its number above every number in the chunk).
    pub(crate) fn push(&mut self, e: Accepted<'_>) {
        let ty = match self.types.iter().rposition(|t| {
            t.event_key == e.event_key
                && t.credits_per_unit == e.credits_per_unit
                && t.list_price_per_credit == e.list_price_per_credit
        }) {
            Some(i) => i,
            None => {
                self.types.push(ChunkType {
                    event_key: e.event_key.to_owned(),
                    credits_per_unit: e.credits_per_unit,
                    list_price_per_credit: e.list_price_per_credit,
                });
                self.types.len() - 1
            }
        };
        let source = match self.sources.iter().rposition(|s| s == e.source) {
            Some(i) => i,
            None => {
                self.sources.push(e.source.to_owned());
                self.sources.len() - 1
            }
        };
        self.events.push(ChunkEvent {
            seq: e.seq,
            ty: ty as u32,
            source: source as u32,
            id: e.id,
            subject: e.subject,
            at: e.at,
            raw_units: e.raw_units,
        });
    }

    /// The first event's usage number (0 for an empty chunk).
    pub(crate) fn first_seq(&self) -> u64 {
        self.events.first().map_or(0, |e| e.seq)
    }

    /// The last event's usage number (0 for an empty chunk).
    pub(crate) fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.seq)
    }

    /// The latest instant of its events (its key's).
    pub(crate) fn last_at(&self) -> Timestamp {
        self.events
            .iter()
            .map(|e| e.at)
            .max()
            .unwrap_or(Timestamp(0))
    }

    /// Event `e` as the usage event it stands for (what a row of `usage_events` would hold).
    pub(crate) fn record(&self, e: &ChunkEvent) -> Result<UsageEventRec> {
        let (Some(t), Some(source)) = (
            self.types.get(e.ty as usize),
            self.sources.get(e.source as usize),
        ) else {
            return Err(malformed());
        };
        let credits = e.raw_units * t.credits_per_unit;
        Ok(UsageEventRec {
            user_id: self.user_id.clone(),
            event_key: t.event_key.clone(),
            raw_units: e.raw_units,
            credits,
            list_cost_estimate: credits * t.list_price_per_credit,
            tool_name: None,
            request_id: self.request_id.clone(),
            created_at: e.at,
            origin: Some(Box::new(Origin {
                source: source.clone(),
                id: e.id.clone(),
                subject: e.subject.clone(),
            })),
        })
    }

    /// Every event with its usage number, as usage events.
    pub(crate) fn records(&self) -> Result<Vec<(u64, UsageEventRec)>> {
        self.events
            .iter()
            .map(|e| Ok((e.seq, self.record(e)?)))
            .collect()
    }
}

impl Record for UsageChunk {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        out.reserve(64 + self.events.len() * 40);
        put_str(out, &self.user_id);
        put_str(out, &self.request_id);
        put_varint(out, self.types.len() as u64);
        for t in &self.types {
            put_str(out, &t.event_key);
            put_amount(out, t.credits_per_unit);
            put_amount(out, t.list_price_per_credit);
        }
        put_varint(out, self.sources.len() as u64);
        for s in &self.sources {
            put_str(out, s);
        }
        put_varint(out, self.events.len() as u64);
        let (mut seq, mut at) = (0u64, 0i64);
        for e in &self.events {
            put_varint(out, e.seq.wrapping_sub(seq));
            seq = e.seq;
            put_varint(out, u64::from(e.ty));
            put_varint(out, u64::from(e.source));
            put_str(out, &e.id);
            match &e.subject {
                None => put_varint(out, 0),
                Some(s) => {
                    put_varint(out, s.len() as u64 + 1);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            put_varint(out, zigzag(e.at.0.wrapping_sub(at)));
            at = e.at.0;
            put_amount(out, e.raw_units);
        }
        Ok(())
    }

    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut b = body;
        let user_id = read_str(&mut b)?;
        let request_id = read_str(&mut b)?;
        let n = read_len(&mut b)?;
        let mut types = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            types.push(ChunkType {
                event_key: read_str(&mut b)?,
                credits_per_unit: read_amount(&mut b)?,
                list_price_per_credit: read_amount(&mut b)?,
            });
        }
        let n = read_len(&mut b)?;
        let mut sources = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            sources.push(read_str(&mut b)?);
        }
        let n = read_len(&mut b)?;
        let mut events = Vec::with_capacity(n.min(1024));
        let (mut seq, mut at) = (0u64, 0i64);
        for _ in 0..n {
            seq = seq.wrapping_add(read_varint(&mut b)?);
            let ty = u32::try_from(read_varint(&mut b)?).map_err(|_| malformed())?;
            let source = u32::try_from(read_varint(&mut b)?).map_err(|_| malformed())?;
            if ty as usize >= types.len() || source as usize >= sources.len() {
                return Err(malformed());
            }
            let id = read_str(&mut b)?;
            let subject = match read_len(&mut b)? {
                0 => None,
                len => Some(read_bytes(&mut b, len - 1)?),
            };
            at = at.wrapping_add(unzigzag(read_varint(&mut b)?));
            events.push(ChunkEvent {
                seq,
                ty,
                source,
                id,
                subject,
                at: Timestamp(at),
                raw_units: read_amount(&mut b)?,
            });
        }
        if !b.is_empty() {
            return Err(malformed());
        }
        Ok(UsageChunk {
            user_id,
            request_id,
            types,
            sources,
            events,
        })
    }
}

fn malformed() -> Error {
    Error::Storage("malformed usage chunk".into())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_amount(out: &mut Vec<u8>, a: Amount) {
    let (mantissa, scale) = a.parts();
    put_varint(out, u64::from(scale));
    put_varint128(out, ((mantissa << 1) ^ (mantissa >> 127)) as u128);
}

fn read_varint128(bytes: &mut &[u8]) -> Result<u128> {
    compact::read_varint128(bytes).ok_or_else(malformed)
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64> {
    u64::try_from(read_varint128(bytes)?).map_err(|_| malformed())
}

fn read_len(bytes: &mut &[u8]) -> Result<usize> {
    let n = usize::try_from(read_varint(bytes)?).map_err(|_| malformed())?;
    // No count or length can exceed the bytes left (each item takes at least one).
    if n > bytes.len() {
        return Err(malformed());
    }
    Ok(n)
}

fn read_bytes(bytes: &mut &[u8], len: usize) -> Result<String> {
    let (s, rest) = bytes.split_at_checked(len).ok_or_else(malformed)?;
    let s = std::str::from_utf8(s).map_err(|_| malformed())?.to_owned();
    *bytes = rest;
    Ok(s)
}

fn read_str(bytes: &mut &[u8]) -> Result<String> {
    let len = read_len(bytes)?;
    read_bytes(bytes, len)
}

fn read_amount(bytes: &mut &[u8]) -> Result<Amount> {
    let scale = u32::try_from(read_varint(bytes)?).map_err(|_| malformed())?;
    let z = read_varint128(bytes)?;
    let mantissa = ((z >> 1) as i128) ^ -((z & 1) as i128);
    Amount::from_parts(mantissa, scale).ok_or_else(malformed)
}

/// The chunk of `tenant_id` whose order rows name it (latest instant `at`, first number
/// `first_seq`), if it is still there (a tenant being erased loses it before its order rows).
pub(crate) fn get(
    r: &impl Reader,
    tenant_id: &str,
    at: Timestamp,
    first_seq: u64,
) -> Result<Option<UsageChunk>> {
    r.get(&USAGE_CHUNKS, &UsageChunkKey::new(tenant_id, at, first_seq))
}

/// The newest `limit` events of `tenant_id`'s chunks with an instant in `[from, to)`, newest
/// first (by instant, then number): what the ledger merges with the events of rows of their
/// own. Chunks are walked by their latest instant, newest first; the walk stops at a chunk
/// whose latest instant is below `limit` events already found (none of it or of the chunks
/// after it can be newer).
pub(crate) fn newest(
    r: &impl Reader,
    tenant_id: &str,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> Result<Vec<(Timestamp, u64, UsageEventRec)>> {
    let prefix = USAGE_CHUNKS.prefix().tenant(tenant_id);
    let (lo, hi) = (prefix.clone().ts(from), prefix.clone().ts(to));
    let mut found: Vec<(Timestamp, u64, UsageEventRec)> = Vec::new();
    let mut failed = None;
    r.scan_range(
        &USAGE_CHUNKS,
        &prefix,
        Some(&lo),
        Some(&hi),
        Order::Desc,
        &mut |k, c: UsageChunk| {
            let Some(k) = UsageChunkKey::decode(k) else {
                return Ok(Flow::Continue);
            };
            if found.iter().filter(|f| f.0 > k.last_at).count() >= limit {
                return Ok(Flow::Stop);
            }
            for e in c.events.iter().filter(|e| e.at >= from && e.at < to) {
                match c.record(e) {
                    Ok(rec) => found.push((e.at, e.seq, rec)),
                    Err(err) => {
                        failed = Some(err);
                        return Ok(Flow::Stop);
                    }
                }
            }
            Ok(Flow::Continue)
        },
    )?;
    if let Some(err) = failed {
        return Err(err);
    }
    found.sort_by_key(|f| std::cmp::Reverse((f.0, f.1)));
    found.truncate(limit);
    Ok(found)
}

/// A usage event as stored, in a row of its own or in a chunk.
pub(crate) struct Stored {
    /// Its tenant.
    pub tenant: String,
    /// Its usage number.
    pub seq: u64,
    /// The usage event.
    pub rec: UsageEventRec,
}

/// Every usage event of the database, those of rows of their own then those of chunks (the
/// checker's view: a chunk that does not decode is reported by the walk over every table).
/// A row of `usage_events` whose key's instant differs from its record's is reported here.
pub(crate) fn all_events(r: &impl Reader, c: &mut Checker) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    for x in c.rows(r, &super::USAGE_EVENTS)? {
        if x.key.emitted_at != x.value.created_at {
            let table = super::USAGE_EVENTS.name();
            c.violation(table, &x.bytes, "key instant differs from created_at");
        }
        out.push(Stored {
            tenant: x.key.tenant_id.into_owned(),
            seq: x.key.seq,
            rec: x.value,
        });
    }
    for x in c.rows(r, &USAGE_CHUNKS)? {
        for (seq, rec) in x.value.records()? {
            out.push(Stored {
                tenant: x.key.tenant_id.to_string(),
                seq,
                rec,
            });
        }
    }
    Ok(out)
}

/// Checks each chunk's shape: not empty, its numbers increasing from its key's first, its
/// key's instant the latest of its events'.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let table = USAGE_CHUNKS.name();
    for x in c.rows(r, &USAGE_CHUNKS)? {
        let ch = &x.value;
        let ordered = ch.events.windows(2).all(|w| w[0].seq < w[1].seq);
        if ch.events.is_empty() {
            c.violation(table, &x.bytes, "chunk without events");
        } else if ch.first_seq() != x.key.first_seq || !ordered {
            c.violation(
                table,
                &x.bytes,
                "usage numbers not increasing from the key's",
            );
        } else if ch.last_at() != x.key.last_at {
            c.violation(table, &x.bytes, "key instant is not the latest event's");
        } else {
            c.ok();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_chunk_round_trips_its_compact_encoding() {
        let mut ch = UsageChunk::new("usr_1", "req_1");
        let amount = |s: &str| Amount::parse(s).unwrap();
        let cases = [
            (
                7u64,
                "llm_tokens",
                "0.001",
                "a",
                Some("customer-42"),
                1_700_000_000_000_000i64,
                "1532",
            ),
            (
                8,
                "llm_tokens",
                "0.001",
                "a",
                None,
                1_600_000_000_000_000,
                "0.000000000001",
            ),
            // A number left unused between two events, another type, another source.
            (
                10,
                "minutes",
                "2.5",
                "b",
                Some(""),
                1_800_000_000_000_000,
                "1000000000000000",
            ),
            (
                11,
                "llm_tokens",
                "0.001",
                "b",
                None,
                -5,
                "123456789012.123456789012",
            ),
        ];
        for (seq, key, weight, source, subject, at, units) in cases {
            ch.push(Accepted {
                seq,
                event_key: key,
                credits_per_unit: amount(weight),
                list_price_per_credit: amount("0.02"),
                source,
                id: format!("id-{seq}"),
                subject: subject.map(str::to_owned),
                at: Timestamp(at),
                raw_units: amount(units),
            });
        }
        assert_eq!((ch.types.len(), ch.sources.len()), (2, 2));
        let bytes = crate::store::codec::encode(&ch).unwrap();
        let back: UsageChunk = crate::store::codec::decode(&bytes).unwrap();
        assert_eq!(back, ch);
        // The scale is kept (1532 is not 1532.0), so the amounts show as they came.
        for (a, b) in ch.events.iter().zip(&back.events) {
            assert_eq!(a.raw_units.to_string(), b.raw_units.to_string());
            assert_eq!(a.raw_units.scale(), b.raw_units.scale());
        }
        assert_eq!((back.first_seq(), back.last_seq()), (7, 11));
        assert_eq!(back.last_at(), Timestamp(1_800_000_000_000_000));
        let recs = back.records().unwrap();
        assert_eq!(recs[2].1.credits, amount("2500000000000000"));
        assert_eq!(
            recs[0].1.list_cost_estimate,
            amount("1532") * amount("0.001") * amount("0.02")
        );
        // Compact: 40 bytes an event here, where postcard writes 48 for an event's three
        // amounts alone.
        assert!(bytes.len() <= 40 * 4, "{}", bytes.len());
        // Truncated or extended, it does not decode.
        for cut in [bytes.len() - 1, bytes.len() / 2, 2] {
            assert!(crate::store::codec::decode::<UsageChunk>(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(crate::store::codec::decode::<UsageChunk>(&longer).is_err());
    }
}
