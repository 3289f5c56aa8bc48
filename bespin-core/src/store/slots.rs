//! The tables a store was opened with, found by name on every row access.

use super::backend::TableId;
use super::table::TableInfo;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Every table of the store, in the order it was opened with, and each name's position.
/// Looked up on every row access, so the map hashes with FNV-1a rather than the default
/// SipHash (the keys are a few fixed short names; collision resistance buys nothing here).
pub(crate) struct Slots {
    ids: Vec<TableId>,
    index: HashMap<&'static str, usize, std::hash::BuildHasherDefault<Fnv1a>>,
}

impl Slots {
    /// The slots of `tables`. Errors: `Internal` if a name is there twice.
    pub(crate) fn new(tables: &[&'static dyn TableInfo]) -> Result<Slots> {
        let mut index = HashMap::default();
        let mut ids = Vec::with_capacity(tables.len());
        for (slot, t) in tables.iter().enumerate() {
            if index.insert(t.name(), slot).is_some() {
                return Err(Error::Internal(format!(
                    "table {} declared twice",
                    t.name()
                )));
            }
            ids.push(TableId {
                slot,
                name: t.name(),
                memo: t.is_memo(),
            });
        }
        Ok(Slots { ids, index })
    }

    /// The table named `name`. Errors: `Internal` for a table the store was not opened with.
    pub(crate) fn id(&self, name: &'static str) -> Result<TableId> {
        match self.index.get(name) {
            Some(&slot) => Ok(self.ids[slot]),
            None => Err(Error::Internal(format!("unknown table {name}"))),
        }
    }

    /// Every table, in order.
    pub(crate) fn ids(&self) -> &[TableId] {
        &self.ids
    }
}

/// FNV-1a, 64 bits.
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
