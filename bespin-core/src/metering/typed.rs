//! Reported usage events read straight from the request's text (issue 22): a typed parse of
//! `application/cloudevents-batch+json` and `application/cloudevents+json` bodies, instead of a
//! `serde_json::Value` tree walked field by field ([`super::ingest::UsageEventIn::from_json`]),
//! which cost the HTTP workers more than the writer spends on a new event.
//!
//! It answers only what it is sure of: an event it reads is one the `Value` path accepts, with
//! the same fields. Anything else — an event with a problem, an unusual shape (a member given
//! twice, a `data` that may be too large), a body that is not such JSON — is left to the
//! `Value` path ([`TypedEvents::with_value`]), which diagnoses it with its own messages and
//! locations: so every answer stays the one it was, and the typed parse only makes the valid
//! events cheap. Every byte goes through `serde_json`'s own `deserialize_any`, as a `Value`
//! does (same syntax, number range and nesting depth checks), so a body it reads is one the
//! `Value` parse reads too.

use super::ingest::{MAX_BATCH, MAX_SCALE, MAX_VALUE, UsageEventIn, UsageEvents};
use crate::LocPart;
use crate::error::Result;
use crate::money::Amount;
use crate::time::Timestamp;
use crate::validate::OBJECT_MAX_BYTES;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// The events of a body read typed: each one either read whole, or left to the `Value` path.
#[derive(Debug)]
pub struct TypedEvents {
    /// `None`: the `Value` path validates this one (it has a problem, or an unusual shape).
    events: Vec<Option<UsageEventIn>>,
    batch: bool,
}

impl TypedEvents {
    /// Reads `text` as one CloudEvent (`batch` false) or a batch of 1–1,000 (`batch` true).
    /// `None` when it is not such JSON (nor framed so): the `Value` path then answers it.
    pub fn read(text: &str, batch: bool) -> Option<TypedEvents> {
        if batch {
            let Batch(events) = serde_json::from_str(text).ok()?;
            if events.is_empty() {
                return None;
            }
            Some(TypedEvents {
                events,
                batch: true,
            })
        } else {
            // A single event with a problem is the request's answer: the `Value` path gives it.
            let Single(event) = serde_json::from_str(text).ok()?;
            Some(TypedEvents {
                events: vec![Some(event?)],
                batch: false,
            })
        }
    }

    /// Every event was read: the request's events, without a `Value` tree.
    pub fn complete(self) -> std::result::Result<UsageEvents, TypedEvents> {
        if self.events.iter().all(Option::is_some) {
            Ok(UsageEvents::new(
                self.events.into_iter().flatten().map(Ok).collect(),
                self.batch,
            ))
        } else {
            Err(self)
        }
    }

    /// The request's events, those not read typed validated from `body`, the same text parsed
    /// as a `Value` (with their own errors, as [`UsageEvents::batch`] gives them).
    pub fn with_value(self, body: &Value) -> Result<UsageEvents> {
        let Value::Array(items) = body else {
            return UsageEvents::batch(body);
        };
        if !self.batch || items.len() != self.events.len() {
            return UsageEvents::batch(body);
        }
        let events = self
            .events
            .into_iter()
            .zip(items)
            .enumerate()
            .map(|(i, (typed, v))| match typed {
                Some(e) => Ok(e),
                None => UsageEventIn::at(v, vec![LocPart::Index(i)]),
            })
            .collect();
        Ok(UsageEvents::new(events, true))
    }
}

/// A batch: each element an event read, or `None`.
struct Batch(Vec<Option<UsageEventIn>>);

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Batch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CloudEvents batch")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Batch, A::Error> {
                let mut events = Vec::new();
                while let Some(Single(e)) = seq.next_element()? {
                    if events.len() == MAX_BATCH {
                        // Too long: the `Value` path says so.
                        return Err(de::Error::custom("too many events"));
                    }
                    events.push(e);
                }
                Ok(Batch(events))
            }
        }
        d.deserialize_any(V)
    }
}

/// One event, read if it is valid and plainly shaped (an object), else `None`.
struct Single(Option<UsageEventIn>);

impl<'de> Deserialize<'de> for Single {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Single;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CloudEvent")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Single, A::Error> {
                let mut e = Members::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Other => {
                            map.next_value::<Skipped>()?;
                            continue;
                        }
                        Key::Data => {
                            let data = map.next_value::<Data>()?;
                            e.twice |= e.data.replace(data).is_some();
                            continue;
                        }
                        Key::SpecVersion => &mut e.specversion,
                        Key::Id => &mut e.id,
                        Key::Source => &mut e.source,
                        Key::Type => &mut e.event_type,
                        Key::Subject => &mut e.subject,
                        Key::Time => &mut e.time,
                    };
                    let v = map.next_value::<Scalar>()?;
                    e.twice |= slot.replace(v).is_some();
                }
                Ok(Single(e.event()))
            }
            // Any other JSON value: read through (checked as a `Value` would be), left.
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Single, A::Error> {
                SkipVisitor.visit_seq(seq).map(|_| Single(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Single, E> {
                Ok(Single(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Single, E> {
                Ok(Single(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Single, E> {
                Ok(Single(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Single, E> {
                Ok(Single(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Single, E> {
                Ok(Single(None))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Single, E> {
                Ok(Single(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The members of an event the ingest reads.
#[derive(Default)]
struct Members<'de> {
    specversion: Option<Scalar<'de>>,
    id: Option<Scalar<'de>>,
    source: Option<Scalar<'de>>,
    event_type: Option<Scalar<'de>>,
    subject: Option<Scalar<'de>>,
    time: Option<Scalar<'de>>,
    data: Option<Data<'de>>,
    /// A member given twice (a `Value` keeps the last): left to the `Value` path.
    twice: bool,
}

impl Members<'_> {
    /// The event, when the `Value` path accepts it — each rule of `UsageEventIn::at` and
    /// `value`, in the same terms: a string's length in characters, `time` at most 64 of them
    /// and RFC 3339, `data` an object of at most `OBJECT_MAX_BYTES` as compact JSON whose
    /// `value` is a number or numeric string > 0, ≤ 10¹⁵, with at most 12 decimals.
    fn event(self) -> Option<UsageEventIn> {
        if self.twice {
            return None;
        }
        if string(self.specversion, 1, 10)? != "1.0" {
            return None;
        }
        let id = string(self.id, 1, 256)?;
        let source = string(self.source, 1, 256)?;
        let event_key = string(self.event_type, 1, 100)?;
        let subject = optional(self.subject, 256)?;
        let time = match optional(self.time, 64)? {
            None => None,
            Some(t) => {
                let dt = chrono::DateTime::parse_from_rfc3339(&t).ok()?;
                Some(Timestamp(dt.timestamp_micros()))
            }
        };
        let Some(Data::Object {
            value: Some(value),
            twice: false,
            bound,
        }) = self.data
        else {
            return None;
        };
        if bound > OBJECT_MAX_BYTES {
            return None;
        }
        let value = match value {
            // What `Amount::from_f64` makes of it (its shortest text is its digits), without
            // formatting and parsing that text.
            Scalar::Int(n) => Amount::from_int(n),
            Scalar::Num(n) => Amount::from_f64(n)?,
            Scalar::Str(s) => Amount::parse(&s)?,
            _ => return None,
        };
        if value.is_negative()
            || value.is_zero()
            || value > Amount::from_int(MAX_VALUE)
            || value.scale() > MAX_SCALE
        {
            return None;
        }
        Some(UsageEventIn {
            id,
            source,
            event_key,
            subject,
            time,
            value,
        })
    }
}

/// A required string member of `min..=max` characters.
fn string(v: Option<Scalar<'_>>, min: usize, max: usize) -> Option<String> {
    match v? {
        Scalar::Str(s) if fits(&s, min, max) => Some(s.into_owned()),
        _ => None,
    }
}

/// An optional string member (absent or `null`: not given) of at most `max` characters;
/// `None` when it is something else.
fn optional(v: Option<Scalar<'_>>, max: usize) -> Option<Option<String>> {
    match v {
        None | Some(Scalar::Null) => Some(None),
        Some(Scalar::Str(s)) if fits(&s, 0, max) => Some(Some(s.into_owned())),
        Some(_) => None,
    }
}

/// Whether `s` has `min..=max` characters (a string of at most `max` bytes has at most as
/// many characters: counted only when longer).
fn fits(s: &str, min: usize, max: usize) -> bool {
    if s.len() < min {
        return false;
    }
    s.len() <= max || s.chars().count() <= max
}

/// A member's name.
enum Key {
    SpecVersion,
    Id,
    Source,
    Type,
    Subject,
    Time,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Key, E> {
                Ok(match s {
                    "specversion" => Key::SpecVersion,
                    "id" => Key::Id,
                    "source" => Key::Source,
                    "type" => Key::Type,
                    "subject" => Key::Subject,
                    "time" => Key::Time,
                    "data" => Key::Data,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A member's value as far as the ingest cares: a string (borrowed from the text when it has
/// no escapes), a number (as `Value`'s `as_f64` gives it), `null`, or anything else (read
/// through).
enum Scalar<'de> {
    Str(Cow<'de, str>),
    /// A whole number of at most 10¹⁵ (exact as an `f64`).
    Int(i64),
    Num(f64),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                s: &'de str,
            ) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(s)))
            }
            // `serde_json::Number::as_f64`: integers convert with `as`.
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Scalar<'de>, E> {
                Ok(match i64::try_from(n) {
                    Ok(i) if i <= MAX_VALUE => Scalar::Int(i),
                    _ => Scalar::Num(n as f64),
                })
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Num(n as f64))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Num(n))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Scalar<'de>, A::Error> {
                SkipVisitor.visit_seq(seq).map(|_| Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Scalar<'de>, A::Error> {
                SkipVisitor.visit_map(map).map(|_| Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl Scalar<'_> {
    /// At least its length as compact JSON (see [`Skipped`]).
    fn bound(&self) -> usize {
        match self {
            Scalar::Str(s) => str_bound(s),
            Scalar::Int(_) | Scalar::Num(_) => NUMBER_BOUND,
            Scalar::Null => 4,
            // Not a number nor a string: the event goes to the `Value` path anyway.
            Scalar::Other => usize::MAX,
        }
    }
}

/// The event's `data`: an object (its `value`, whether a member came twice, and a bound of its
/// compact JSON length), or anything else.
enum Data<'de> {
    Object {
        value: Option<Scalar<'de>>,
        twice: bool,
        bound: usize,
    },
    Other,
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Data<'de>, A::Error> {
                let (mut value, mut twice, mut bound) = (None::<Scalar<'de>>, false, 2usize);
                while let Some(DataKey {
                    value: is_value,
                    bound: key,
                }) = map.next_key()?
                {
                    let n = if is_value {
                        let v = map.next_value::<Scalar>()?;
                        let n = v.bound();
                        twice |= value.replace(v).is_some();
                        n
                    } else {
                        map.next_value::<Skipped>()?.0
                    };
                    bound = bound
                        .saturating_add(key)
                        .saturating_add(n)
                        .saturating_add(2);
                }
                Ok(Data::Object {
                    value,
                    twice,
                    bound,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Data<'de>, A::Error> {
                SkipVisitor.visit_seq(seq).map(|_| Data::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Data<'de>, E> {
                Ok(Data::Other)
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Data<'de>, E> {
                Ok(Data::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A member name of `data`: whether it is `value`, and a bound of its length as JSON.
struct DataKey {
    value: bool,
    bound: usize,
}

impl<'de> Deserialize<'de> for DataKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DataKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<DataKey, E> {
                Ok(DataKey {
                    value: s == "value",
                    bound: str_bound(s),
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// The most characters `serde_json` writes for a number (an `f64` through `ryu`, e.g.
/// `-2.2250738585072014e-308`, 24; an integer at most 20), with room.
const NUMBER_BOUND: usize = 32;

/// At least a string's length as compact JSON: its quotes, and each byte escaped at most as
/// `\u00XX` (six bytes).
fn str_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

/// A value read through and dropped, keeping an upper bound of its length as compact JSON
/// (what `validate::json_len` measures of `data`): members given twice only make the real
/// length shorter.
struct Skipped(usize);

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skipped;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Skipped, E> {
        Ok(Skipped(5))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Skipped, E> {
        Ok(Skipped(NUMBER_BOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Skipped, E> {
        Ok(Skipped(NUMBER_BOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Skipped, E> {
        Ok(Skipped(NUMBER_BOUND))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Skipped, E> {
        Ok(Skipped(str_bound(s)))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Skipped, E> {
        Ok(Skipped(4))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Skipped, A::Error> {
        let mut n = 2usize;
        while let Some(Skipped(k)) = seq.next_element()? {
            n = n.saturating_add(k).saturating_add(1);
        }
        Ok(Skipped(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Skipped, A::Error> {
        let mut n = 2usize;
        while let Some((Skipped(k), Skipped(v))) = map.next_entry()? {
            n = n.saturating_add(k).saturating_add(v).saturating_add(2);
        }
        Ok(Skipped(n))
    }
}

#[cfg(test)]
mod tests {
    //! The typed parse against the `Value` path, its oracle: every body gives the same events
    //! and the same errors, and the valid ones are read without the `Value` path.
    #![allow(clippy::unwrap_used)]

    use super::TypedEvents;
    use crate::metering::ingest::UsageEvents;
    use serde_json::Value;

    /// What the `Value` path makes of `text`, as the route framed it before.
    fn oracle(text: &str, batch: bool) -> Option<crate::error::Result<UsageEvents>> {
        let v: Value = serde_json::from_str(text).ok()?;
        Some(if batch {
            UsageEvents::batch(&v)
        } else {
            UsageEvents::single(&v)
        })
    }

    /// What the typed parse makes of it, leaving to the `Value` path what it does not read;
    /// and whether it read every event itself.
    fn typed(text: &str, batch: bool) -> (Option<crate::error::Result<UsageEvents>>, bool) {
        match TypedEvents::read(text, batch).map(TypedEvents::complete) {
            Some(Ok(events)) => (Some(Ok(events)), true),
            Some(Err(partial)) => {
                let v: Value = serde_json::from_str(text).unwrap();
                (Some(partial.with_value(&v)), false)
            }
            None => (oracle(text, batch), false),
        }
    }

    const OK: &str =
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":5}}"#;

    /// Events the typed parse reads itself (each the same as the `Value` path's).
    const READ: &[&str] = &[
        OK,
        r#"{"specversion":"1.0","id":"a\u0062","source":"s\/t","type":"llm_tokens","subject":null,"data":{"value":"1.5"}}"#,
        r#"{"type":"llm_tokens","source":"s","id":"é€😀","specversion":"1.0","time":"2026-12-04T17:02:11.123456+02:00","data":{"value":1e3,"unit":"t","x":[1,{"y":null}]},"ext":{"a":[true,false,null,1.5e300]}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","subject":"","data":{"value":0.000000000001}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","time":null,"data":{"value":1000000000000000}}"#,
        r#"{"\u0073pecversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"val\u0075e":"7"}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":123456789012}}"#,
        // chrono's RFC 3339 takes a space for the `T`, as the `Value` path did.
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","time":"2026-12-04 17:02:11Z","data":{"value":5}}"#,
    ];

    /// Events with a problem or an unusual shape: the `Value` path answers them.
    const LEFT: &[&str] = &[
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":0}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":-1}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":"abc"}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":true}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":null}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":1000000000000000.5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":"0.0000000000001"}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":1e16}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":18446744073709551615}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":1,"value":2}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":[1]}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":null}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":"5"}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens"}"#,
        r#"{"specversion":"1.1","id":"a","source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":1.0,"id":"a","source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"id":"a","source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"","source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":7,"source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":null,"source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":["s"],"type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","subject":5,"data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","time":"yesterday","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","time":"2026-12-04","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","time":1733331731,"data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","id":"b","source":"s","type":"llm_tokens","data":{"value":5}}"#,
        r#"{"specversion":"1.0","id":"a","source":"s","type":"llm_tokens","data":{"value":5},"data":{"value":6}}"#,
        r#"{}"#,
        r#"[]"#,
        r#"null"#,
        r#""event""#,
        r#"5"#,
        r#"{"specversion":null,"id":null,"source":null,"type":null,"subject":null,"time":null,"data":null}"#,
    ];

    /// An event whose `member` is `n` characters of `c` (the others as in [`OK`]).
    fn sized(member: &str, c: char, n: usize) -> String {
        let v: String = std::iter::repeat_n(c, n).collect();
        let pick = |m: &str, d: &str| if m == member { v.clone() } else { d.to_owned() };
        format!(
            r#"{{"specversion":"1.0","id":"{}","source":"{}","type":"{}","subject":"{}","data":{{"value":5}}}}"#,
            pick("id", "a"),
            pick("source", "s"),
            pick("type", "llm_tokens"),
            pick("subject", "c"),
        )
    }

    fn edges() -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for (member, max) in [
            ("id", 256),
            ("source", 256),
            ("type", 100),
            ("subject", 256),
        ] {
            for c in ['a', 'é', '😀'] {
                out.push((sized(member, c, max), true));
                out.push((sized(member, c, max + 1), false));
            }
        }
        let time = |t: &str| OK.replacen(r#""data""#, &format!(r#""time":"{t}","data""#), 1);
        // At most 64 characters, then RFC 3339.
        out.push((
            time(&format!("2026-12-04T17:02:11.{}Z", "1".repeat(43))),
            true,
        ));
        out.push((
            time(&format!("2026-12-04T17:02:11.{}Z", "1".repeat(44))),
            false,
        ));
        // `data` at most 16 KiB as compact JSON: padded with a string member.
        let data = |pad: usize| {
            OK.replacen(
                r#"{"value":5}"#,
                &format!(r#"{{"value":5,"p":"{}"}}"#, "x".repeat(pad)),
                1,
            )
        };
        out.push((data(100), true));
        out.push((data(16 * 1024), false));
        out
    }

    fn same(text: &str, read: bool) {
        for batch in [false, true] {
            let body = if batch {
                format!("[{OK},{text},{OK}]")
            } else {
                text.to_owned()
            };
            let (got, all_read) = typed(&body, batch);
            assert_eq!(got, oracle(&body, batch), "{body}");
            assert_eq!(all_read, read, "read typed: {body}");
        }
    }

    #[test]
    fn the_typed_parse_gives_the_value_paths_events_and_errors() {
        for text in READ {
            same(text, true);
        }
        for text in LEFT {
            same(text, false);
        }
        for (text, read) in edges() {
            same(&text, read);
        }
    }

    /// A whole number is read as `Amount::from_f64` reads it, to the representation (the
    /// chunk stores scale and mantissa).
    #[test]
    fn whole_numbers_are_the_amounts_from_f64_makes() {
        use crate::money::Amount;
        for n in [
            1i64,
            5,
            10,
            1000,
            4000,
            123_456_789_012,
            999_999_999_999_999,
            1_000_000_000_000_000,
        ] {
            let (a, b) = (Amount::from_int(n), Amount::from_f64(n as f64).unwrap());
            assert_eq!((a, a.parts()), (b, b.parts()));
            let text = OK.replacen(r#""value":5"#, &format!(r#""value":{n}"#), 1);
            let (got, read) = typed(&text, false);
            assert_eq!(got, oracle(&text, false));
            assert!(read);
            let TypedEvents { events, .. } = TypedEvents::read(&text, false).unwrap();
            let typed = events[0].as_ref().unwrap().value;
            assert_eq!(typed.parts(), b.parts());
        }
    }

    #[test]
    fn bodies_it_does_not_read_are_left_whole() {
        let many = format!("[{}]", vec![OK; 1001].join(","));
        let deep = format!(
            "[{}]",
            OK.replacen(
                r#"{"value":5}"#,
                &format!(
                    r#"{{"value":5,"d":{}{}}}"#,
                    "[".repeat(200),
                    "]".repeat(200)
                ),
                1
            )
        );
        let huge = OK.replacen(r#"{"value":5}"#, r#"{"value":5,"n":1e400}"#, 1);
        for body in [
            "[]".to_owned(),
            many,
            deep,
            format!("[{huge}]"),
            format!("[{OK}] x"),
            format!("[{OK},]"),
            OK.to_owned(),
            "[".to_owned(),
        ] {
            assert!(TypedEvents::read(&body, true).is_none(), "{body}");
        }
        assert!(TypedEvents::read(&huge, false).is_none());
        assert!(TypedEvents::read(&format!("[{OK}]"), false).is_none());
    }
}
