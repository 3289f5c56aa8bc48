//! Typed tables: a key type and a record type per table, and the layout of every key as data.
//!
//! A domain module declares each of its tables beside its records:
//!
//! ```ignore
//! key! {
//!     /// (tenant, task).
//!     pub(crate) struct TaskKey<'a> { tenant_id: tenant, task_id: id }
//!     /// (tenant, due date, …): the list's order.
//!     pub(crate) struct TaskDueKey<'a> { tenant_id: tenant, /* … */ task_id: str }
//! }
//! pub(crate) const TASKS: Table<TaskKey<'static>, TaskRec> = Table::new("co_tasks");
//! pub(crate) const TABLES: &[&dyn TableInfo] = &[&TASKS, /* … */];
//! ```
//!
//! [`key!`](crate::store::key) writes the key's encoding and decoding once, from the parts'
//! names and kinds, and gives the layout as data ([`KeyDef::PARTS`]), which is what the
//! console shows and the checker reads every row with. The crate's registry (`schema.rs`)
//! gathers every module's `TABLES`: the list a backend is opened with.

use super::codec::{self, Record};
use super::key::Prefix;
use crate::error::{Error, Result};
use std::marker::PhantomData;

/// The kind of a key part: how it is encoded, and how it reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The id of the tenant owning the row (a string); first in tenant-scoped keys.
    Tenant,
    /// A string.
    Str,
    /// An id that is a UUID most of the time (a record's, an event's, a tenant's after the
    /// first part, a CloudEvent's, an idempotency key): a string, or a canonical UUID's 16
    /// bytes as the tenant part writes them.
    ExtId,
    /// A record id: a sealed id's record number, or an id that is not sealed as a string.
    Id,
    /// An unsigned integer.
    U64,
    /// A signed integer.
    I64,
    /// An instant.
    Ts,
    /// A calendar date (its text).
    Date,
    /// A calendar date or none (the empty text).
    MaybeDate,
}

/// One part of a key's layout: its name (the console's column) and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    /// The part's name.
    pub name: &'static str,
    /// How it is encoded.
    pub kind: Kind,
}

/// A key type of a table, as declared with [`key!`](crate::store::key): implemented by the
/// `'static` instantiation of the key struct, whose borrowed form [`KeyDef::Of`] is what keys
/// are built from (borrowed parts: a key costs one buffer, no copies of its strings).
pub(crate) trait KeyDef: 'static {
    /// The key with its string parts borrowed for `'a`.
    type Of<'a>;
    /// The parts in order.
    const PARTS: &'static [Part];
    /// Appends the encoded key.
    fn encode(key: &Self::Of<'_>, out: &mut Vec<u8>);
    /// Reads a whole stored key back (`None` unless `bytes` is exactly one key of this
    /// layout). String parts borrow from `bytes` where no escape needs undoing.
    fn decode(bytes: &[u8]) -> Option<Self::Of<'_>>;
    /// The key with every part owned.
    fn into_owned(key: Self::Of<'_>) -> Self::Of<'static>;
}

/// Declares key types (one or more in one invocation): each a struct of named, typed parts
/// (in key order), with its encoding, decoding and layout. Part kinds: `tenant` (the owning tenant's id, first in tenant-scoped
/// keys), `str`, `ext_id` (an id that is a UUID most of the time: 16 bytes then), `id` (sealed
/// or not: [`Id`](crate::store::Id)), `u64`, `i64`, `ts`
/// ([`Timestamp`](crate::time::Timestamp)), `date` ([`Date`](crate::time::Date)) and
/// `maybe_date` (`Option<Date>`). Part names are the console's column names.
///
/// Generates `Name::new(parts…)` (string parts borrowed), `key.encode()`,
/// `Name::decode(bytes)` and `key.into_owned()`.
macro_rules! key {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident<'a> { $( $field:ident : $kind:ident ),+ $(,)? }
    )+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis struct $name<'a> {
            $(
                #[doc = concat!("The `", stringify!($field), "` part (", stringify!($kind), ").")]
                pub(crate) $field: $crate::store::parts::$kind::T<'a>,
            )+
        }

        #[allow(dead_code)]
        impl<'a> $name<'a> {
            /// The key of these parts, in key order.
            #[allow(clippy::too_many_arguments)]
            pub(crate) fn new($( $field: $crate::store::parts::$kind::Param<'a> ),+) -> Self {
                $name { $( $field: $crate::store::parts::$kind::from($field) ),+ }
            }

            /// The encoded key.
            pub(crate) fn encode(&self) -> Vec<u8> {
                let mut out = Vec::with_capacity(96);
                <$name<'static> as $crate::store::KeyDef>::encode(self, &mut out);
                out
            }

            /// Reads a stored key of this layout back (`None` if it is not one).
            pub(crate) fn decode(bytes: &'a [u8]) -> Option<Self> {
                <$name<'static> as $crate::store::KeyDef>::decode(bytes)
            }

            /// The key with every part owned.
            pub(crate) fn into_owned(self) -> $name<'static> {
                <$name<'static> as $crate::store::KeyDef>::into_owned(self)
            }
        }

        impl $crate::store::KeyDef for $name<'static> {
            type Of<'a> = $name<'a>;
            const PARTS: &'static [$crate::store::Part] = &[$(
                $crate::store::Part {
                    name: stringify!($field),
                    kind: $crate::store::parts::$kind::KIND,
                }
            ),+];

            fn encode(key: &$name<'_>, out: &mut Vec<u8>) {
                $( $crate::store::parts::$kind::put(&key.$field, out); )+
            }

            fn decode(bytes: &[u8]) -> Option<$name<'_>> {
                let at = 0;
                $( let ($field, at) = $crate::store::parts::$kind::get(bytes, at)?; )+
                (at == bytes.len()).then_some($name { $( $field ),+ })
            }

            fn into_owned(key: $name<'_>) -> $name<'static> {
                $name { $( $field: $crate::store::parts::$kind::own(key.$field) ),+ }
            }
        }
    )+};
}
pub(crate) use key;

/// Rows of the console for one stored row: per row shown, the key columns the record adds
/// after the table's own, and the record's fields.
pub(crate) type Shown = Vec<(Vec<(&'static str, serde_json::Value)>, serde_json::Value)>;

/// A table of records `V` under keys of `K` (a [`KeyDef`]), stored under its name.
pub(crate) struct Table<K, V> {
    name: &'static str,
    secret: bool,
    memo: bool,
    show: Option<Show>,
    companions: Option<Companions>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// Deletes the global rows (keys that do not start with a tenant) that go with one row of a
/// tenant's table, given the row's key and value: what a tenant's erasure removes with it
/// ([`Table::with_companions`]).
pub(crate) type Companions = fn(&mut super::WriteTx, &[u8], &[u8]) -> Result<()>;

/// How the console shows a table whose rows hold several records each (the KPI chunks).
#[derive(Clone, Copy)]
pub(crate) struct Show {
    /// How many of the key's parts are shown (the rest are per record).
    pub key_parts: usize,
    /// The records of one stored value.
    pub rows: fn(&[u8]) -> Result<Shown>,
}

impl<K: KeyDef, V: Record> Table<K, V> {
    /// A table stored under `name`.
    pub(crate) const fn new(name: &'static str) -> Self {
        Table {
            name,
            secret: false,
            memo: false,
            show: None,
            companions: None,
            _types: PhantomData,
        }
    }

    /// This table holds secrets: never shown, whatever asks.
    pub(crate) const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// A configuration table (plans, subscriptions, event types, webhook endpoints): read by
    /// most operations and rarely written, so a write batch keeps what it read of it (gets,
    /// and scans of up to 64 rows) until an operation of the batch writes to it.
    pub(crate) const fn memo(mut self) -> Self {
        self.memo = true;
        self
    }

    /// Each row of this tenant's table has global rows that point at it (a user's user → tenant
    /// entry, a key's digest): `forget` deletes them, and the erasure of the tenant calls it
    /// for every row it deletes. Declared with the table, so a table that gains such rows
    /// cannot be left out of the erasure.
    pub(crate) const fn with_companions(mut self, forget: Companions) -> Self {
        self.companions = Some(forget);
        self
    }

    /// The console shows each stored row as several (see [`Show`]).
    pub(crate) const fn shown_as(mut self, show: Show) -> Self {
        self.show = Some(show);
        self
    }

    /// The table's stored name.
    pub(crate) const fn name(&self) -> &'static str {
        self.name
    }

    /// The empty prefix of this table's keys, to append parts to.
    pub(crate) fn prefix(&self) -> Prefix<K> {
        Prefix::all()
    }
}

/// What the registry, the console and the checker know of a table without its types.
pub(crate) trait TableInfo: Sync {
    /// The stored name.
    fn name(&self) -> &'static str;
    /// The key's parts.
    fn layout(&self) -> &'static [Part];
    /// Whether the rows are secrets (never shown).
    fn is_secret(&self) -> bool;
    /// Whether a write batch memoises reads of it ([`Table::memo`]).
    fn is_memo(&self) -> bool;
    /// What deletes the global rows that go with one of its rows
    /// ([`Table::with_companions`]).
    fn companions(&self) -> Option<Companions>;
    /// Whether the key starts with the owning tenant's id.
    fn tenant_scoped(&self) -> bool {
        self.layout()
            .first()
            .is_some_and(|p| p.kind == Kind::Tenant)
    }
    /// Decodes a stored value as this table's record (the checker's "every row decodes").
    fn decodes(&self, value: &[u8]) -> Result<()>;
    /// A stored value as the console shows it: the record as JSON, or several records.
    fn show(&self, value: &[u8]) -> Result<Shown>;
    /// How many key parts the console shows.
    fn shown_key_parts(&self) -> usize;
}

impl<K: KeyDef, V: Record> TableInfo for Table<K, V> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn layout(&self) -> &'static [Part] {
        K::PARTS
    }

    fn is_secret(&self) -> bool {
        self.secret
    }

    fn is_memo(&self) -> bool {
        self.memo
    }

    fn companions(&self) -> Option<Companions> {
        self.companions
    }

    fn decodes(&self, value: &[u8]) -> Result<()> {
        codec::decode::<V>(value).map(|_| ())
    }

    fn show(&self, value: &[u8]) -> Result<Shown> {
        if self.secret {
            return Err(Error::Internal(format!("table {} is secret", self.name)));
        }
        if let Some(s) = &self.show {
            return (s.rows)(value);
        }
        let v = serde_json::to_value(codec::decode::<V>(value)?)
            .map_err(|e| Error::Storage(format!("show: {e}")))?;
        Ok(vec![(Vec::new(), v)])
    }

    fn shown_key_parts(&self) -> usize {
        self.show.map_or(K::PARTS.len(), |s| s.key_parts)
    }
}
