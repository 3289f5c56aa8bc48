//! Idempotent retries (10 §5, spec README decision 7).
//!
//! A record is identified by (tenant, endpoint, key) and holds the SHA-256 fingerprint of the
//! normalised request and the response it produced. The lookup and the store run inside the
//! operation's own write transaction, so the record commits atomically with the effects it
//! describes, and concurrent requests with one key run the operation once: the single writer
//! serialises them, and the later ones find the record. Records older than the retention
//! (default 24 h) are ignored and purged.
//!
//! A record keeps the response as the JSON bytes the first run answered with, and a replay
//! answers with those bytes unchanged ([`Stored`]): it is never parsed on the way out, so any
//! response that could be sent once can be sent again, however deeply it nests.

use crate::check::{Checker, Expected};
use crate::error::{Error, Result};
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::{Bespin, Ctx, ids};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::marker::PhantomData;

/// The longest `Idempotency-Key` accepted, in characters (the reference declares its column
/// with this size; longer keys would let a client grow every record's keys at will).
pub const KEY_MAX_CHARS: usize = 255;

/// Checks a client's `Idempotency-Key`: `MissingHeader` when blank, `BadRequest` when longer
/// than [`KEY_MAX_CHARS`] characters (both are header faults, answered before any other
/// check).
pub fn check_key(key: &str) -> Result<()> {
    if key.trim().is_empty() {
        return Err(Error::MissingHeader("Idempotency-Key"));
    }
    if key.chars().count() > KEY_MAX_CHARS {
        return Err(Error::BadRequest(format!(
            "Idempotency-Key must be at most {KEY_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// The answer of an idempotent operation as the JSON bytes stored with its effects: those of
/// the first run, returned unchanged by every replay. A surface sends [`Stored::json`] as it
/// is, so a replay is byte for byte the first answer and is never re-parsed (a response can
/// nest deeper than a JSON parser's default limit). [`Stored::into_value`] gives the typed
/// response to embedders.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    json: Vec<u8>,
    /// The response itself, when this call ran the operation (a replay has only the bytes).
    fresh: Option<T>,
    of: PhantomData<fn() -> T>,
}

impl<T> Stored<T> {
    /// The response as stored: compact JSON.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The stored JSON bytes.
    pub fn into_json(self) -> Vec<u8> {
        self.json
    }

    /// Whether this call found a stored response instead of running the operation.
    pub fn replayed(&self) -> bool {
        self.fresh.is_none()
    }
}

impl<T: DeserializeOwned> Stored<T> {
    /// The typed response: the one just made, or the stored bytes read back (without a nesting
    /// limit, since they were written from a value this process held). Errors: `Storage` when
    /// the stored bytes are not such a response.
    pub fn into_value(self) -> Result<T> {
        match self.fresh {
            Some(v) => Ok(v),
            None => parse_stored(&self.json),
        }
    }
}

/// Reads stored response bytes back into `T`, with no nesting limit (they were serialised from
/// a value, so their depth is that value's). Errors: `Storage`.
pub fn parse_stored<T: DeserializeOwned>(json: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(json);
    de.disable_recursion_limit();
    T::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Error::Storage(format!("stored response unreadable: {e}")))
}

/// A stored idempotency record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IdemRec {
    pub request_hash: String,
    pub response: Vec<u8>,
    pub created_at: Timestamp,
}
impl Record for IdemRec {}

key! {
    /// (tenant, endpoint, key).
    pub(crate) struct IdemKey<'a> { tenant_id: tenant, endpoint: str, idempotency_key: ext_id }
    /// Global: (written at, tenant, endpoint, key): the record's key after its instant.
    pub(crate) struct IdemAgeKey<'a> {
        written_at: ts,
        tenant_id: ext_id,
        endpoint: str,
        idempotency_key: ext_id,
    }
}

/// (tenant, endpoint, key) → idempotency record.
pub(crate) const IDEMPOTENCY: Table<IdemKey<'static>, IdemRec> = Table::new("idempotency");
/// Global: (written at, tenant, endpoint, key) → (): idempotency records by age, for purging.
pub(crate) const IDEMPOTENCY_BY_AGE: Table<IdemAgeKey<'static>, ()> =
    Table::new("idempotency_by_age");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&IDEMPOTENCY, &IDEMPOTENCY_BY_AGE];

/// An idempotency scope: which endpoint, which key, which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The endpoint path (`/v1/tools/invoke`).
    pub endpoint: &'static str,
    /// The client's key, compared exactly.
    pub key: String,
    /// Fingerprint of the normalised request ([`fingerprint`]).
    pub request_hash: String,
}

impl Idempotency {
    /// A scope for `endpoint` and `key`, fingerprinting the normalised request `normalized`.
    pub fn new(endpoint: &'static str, key: impl Into<String>, normalized: &Value) -> Self {
        Idempotency {
            endpoint,
            key: key.into(),
            request_hash: fingerprint(normalized),
        }
    }
}

/// SHA-256 (hex) of the canonical JSON of `v`: object keys sorted at every level, no white
/// space, non-ASCII as `\u` escapes. Integers and floats stay distinct (`1` ≠ `1.0`).
pub fn fingerprint(v: &Value) -> String {
    let mut out = String::new();
    canonical(v, &mut out);
    ids::sha256_hex(out.as_bytes())
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                escape(k, out);
                out.push(':');
                if let Some(x) = m.get(*k) {
                    canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        Value::String(s) => escape(s, out),
        Value::Number(n) if n.is_f64() => {
            // Floats carry a marker so that 1.0 never equals the integer 1.
            out.push_str(&format!("{:?}f", n.as_f64().unwrap_or(0.0)));
        }
        other => out.push_str(&other.to_string()),
    }
}

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7E => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn record_key<'a>(tenant_id: &'a str, endpoint: &'a str, key: &'a str) -> IdemKey<'a> {
    IdemKey::new(tenant_id, endpoint, key)
}

/// The idempotency record an operation looks up first, named before the operation runs, so
/// that the writer can read the records of all the operations it is about to run at once
/// ([`prefetch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ahead {
    tenant_id: String,
    endpoint: &'static str,
    key: String,
}

impl Ahead {
    /// The record of `key` for `endpoint` in `tenant_id`.
    pub(crate) fn new(tenant_id: &str, endpoint: &'static str, key: &str) -> Self {
        Ahead {
            tenant_id: tenant_id.to_owned(),
            endpoint,
            key: key.to_owned(),
        }
    }
}

/// Reads ahead the records that `ahead` name ([`WriteTx::prefetch`]): on PostgreSQL one round
/// trip for a batch's idempotent operations instead of one each, taken while the batch holds
/// the write lock; nothing on redb. A key the operation will refuse (blank, too long) is
/// not read.
pub(crate) fn prefetch<'a>(tx: &WriteTx, ahead: impl IntoIterator<Item = &'a Ahead>) -> Result<()> {
    tx.prefetch(
        &IDEMPOTENCY,
        ahead
            .into_iter()
            .filter(|a| check_key(&a.key).is_ok())
            .map(|a| record_key(&a.tenant_id, a.endpoint, &a.key)),
    )
}

/// Looks up a live record for `scope` in the caller's tenant: `Ok(Some(stored))` for a
/// replay, `Ok(None)` when the key is unused (or expired), `IdempotencyConflict` when it was
/// used with a different request.
pub(crate) fn lookup<T>(
    r: &impl Reader,
    ctx: &Ctx,
    tenant_id: &str,
    scope: &Idempotency,
) -> Result<Option<Stored<T>>> {
    let Some(rec) = r.get(
        &IDEMPOTENCY,
        &record_key(tenant_id, scope.endpoint, &scope.key),
    )?
    else {
        return Ok(None);
    };
    if rec.created_at.0 + ctx.options.idempotency_retention_micros <= ctx.now.0 {
        return Ok(None);
    }
    if rec.request_hash != scope.request_hash {
        return Err(Error::IdempotencyConflict(scope.key.clone()));
    }
    Ok(Some(Stored {
        json: rec.response,
        fresh: None,
        of: PhantomData,
    }))
}

/// Stores `response` for `scope` in the open transaction (replacing an expired record) and
/// returns it with the bytes stored.
pub fn store<T: Serialize>(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    scope: &Idempotency,
    response: T,
) -> Result<Stored<T>> {
    let json = serde_json::to_vec(&response)
        .map_err(|e| Error::Internal(format!("response not serialisable: {e}")))?;
    let rec = IdemRec {
        request_hash: scope.request_hash.clone(),
        response: json,
        created_at: ctx.now,
    };
    let key = record_key(tenant_id, scope.endpoint, &scope.key);
    // One tree walk: the insert hands back the expired record it replaces, if any.
    if let Some(old) = tx.replace(&IDEMPOTENCY, &key, &rec)? {
        tx.delete(
            &IDEMPOTENCY_BY_AGE,
            &age_key(old.created_at, tenant_id, scope),
        )?;
    }
    tx.put(
        &IDEMPOTENCY_BY_AGE,
        &age_key(ctx.now, tenant_id, scope),
        &(),
    )?;
    Ok(Stored {
        json: rec.response,
        fresh: Some(response),
        of: PhantomData,
    })
}

fn age_key<'a>(at: Timestamp, tenant_id: &'a str, scope: &'a Idempotency) -> IdemAgeKey<'a> {
    IdemAgeKey::new(at, tenant_id, scope.endpoint, &scope.key)
}

/// Runs `op` at most once per scope: a stored response is returned as is (nothing else runs);
/// otherwise `op` runs and its response is stored in the same transaction.
pub fn once<T: Serialize>(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    scope: &Idempotency,
    op: impl FnOnce(&mut WriteTx) -> Result<T>,
) -> Result<Stored<T>> {
    if let Some(stored) = lookup(tx, ctx, tenant_id, scope)? {
        return Ok(stored);
    }
    let response = op(tx)?;
    store(tx, ctx, tenant_id, scope, response)
}

/// Deletes records older than the retention; returns how many went.
pub fn purge_expired(tx: &mut WriteTx, ctx: &Ctx) -> Result<usize> {
    let cutoff = Timestamp(ctx.now.0 - ctx.options.idempotency_retention_micros);
    let cutoff = IDEMPOTENCY_BY_AGE.prefix().ts(cutoff);
    let mut expired: Vec<IdemAgeKey<'static>> = Vec::new();
    tx.scan_range(
        &IDEMPOTENCY_BY_AGE,
        &IDEMPOTENCY_BY_AGE.prefix(),
        None,
        Some(&cutoff),
        Order::Asc,
        &mut |k, ()| {
            expired.extend(IdemAgeKey::decode(k).map(IdemAgeKey::into_owned));
            Ok(Flow::Continue)
        },
    )?;
    for age in &expired {
        let record = IdemKey::new(&age.tenant_id, &age.endpoint, &age.idempotency_key);
        tx.delete(&IDEMPOTENCY, &record)?;
        tx.delete(&IDEMPOTENCY_BY_AGE, age)?;
    }
    Ok(expired.len())
}

/// Checks every idempotency record: indexed by age exactly once (so it is purgeable once past
/// retention), not dated in the future, holding a JSON response whose `request_id`, while the
/// record is live, names a committed usage event of its tenant (`requests`), and a SHA-256
/// request hash.
pub(crate) fn check(
    r: &impl Reader,
    c: &mut Checker,
    requests: &HashSet<(String, String)>,
) -> Result<()> {
    let table = IDEMPOTENCY.name();
    let mut by_age = Expected::new();
    for x in c.rows(r, &IDEMPOTENCY)? {
        let (k, rec) = (&x.bytes, &x.value);
        let t = x.key.tenant_id.as_ref();
        let age = IdemAgeKey::new(rec.created_at, t, &x.key.endpoint, &x.key.idempotency_key);
        by_age.add(&age, &());
        if rec.created_at.0 > c.now().0 + 60_000_000 {
            c.violation(table, k, "record dated in the future");
        }
        let expired = rec.created_at.0 + c.retention() <= c.now().0;
        match parse_stored::<Value>(&rec.response) {
            Ok(v) => {
                c.ok();
                if let Some(id) = v.get("request_id").and_then(|x| x.as_str())
                    && !expired
                {
                    if requests.contains(&(t.to_owned(), id.to_owned())) {
                        c.ok();
                    } else {
                        let d = format!("stored response names request {id} with no usage event");
                        c.violation(table, k, d);
                    }
                }
            }
            Err(e) => c.violation(table, k, format!("response is not JSON: {e}")),
        }
        if rec.request_hash.len() != 64 || !rec.request_hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            c.violation(table, k, "request hash is not SHA-256 hex");
        }
    }
    c.index(r, &IDEMPOTENCY_BY_AGE, by_age, "idempotency record")
}

impl Bespin {
    /// Deletes idempotency records older than the retention; returns how many went. The server
    /// calls this periodically; expired records are already ignored by lookups.
    pub fn purge_expired_idempotency(&self) -> Result<usize> {
        self.write(purge_expired)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::testing::{caught, first_key, populated};
    use serde_json::json;

    #[test]
    fn an_unpurgeable_or_unbacked_idempotency_record_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &IDEMPOTENCY_BY_AGE);
            tx.delete_stored(&IDEMPOTENCY_BY_AGE, &k)?;
            let k = first_key(tx, &IDEMPOTENCY);
            let k = IdemKey::decode(&k).unwrap();
            let mut r = tx.get(&IDEMPOTENCY, &k)?.unwrap();
            r.response = br#"{"request_id":"never-ran","result":{}}"#.to_vec();
            tx.put(&IDEMPOTENCY, &k, &r)
        });
        caught(&db, "idempotency_by_age", "missing index entry");
        caught(&db, "idempotency", "no usage event");
    }

    fn same(a: &str, b: &str) -> bool {
        let pa: serde_json::Value = serde_json::from_str(a).expect("json");
        let pb: serde_json::Value = serde_json::from_str(b).expect("json");
        fingerprint(&pa) == fingerprint(&pb)
    }

    #[test]
    fn fingerprints_follow_the_contract() {
        assert!(same(r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#));
        assert!(!same(r#"{"a":1}"#, r#"{"a":1.0}"#));
        assert!(same(r#"{"a":1.0}"#, r#"{"a":1.00}"#));
        assert!(same(r#"{"a":1.0}"#, r#"{"a":1e0}"#));
        assert!(!same(r#"{"a":100}"#, r#"{"a":1e2}"#));
        assert!(!same(r#"{"a":true}"#, r#"{"a":1}"#));
        assert!(!same(r#"{"a":[1,2]}"#, r#"{"a":[2,1]}"#));
        assert!(same(r#"{"a":1,"a":2}"#, r#"{"a":2}"#));
        assert_ne!(
            fingerprint(&json!({"s": "é"})),
            fingerprint(&json!({"s": "e"}))
        );
    }
}
