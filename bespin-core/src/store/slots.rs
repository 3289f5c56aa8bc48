//! The tables a store was opened with, found by name on every row access.

use super::backend::TableId;
use super::table::TableInfo;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Every table of the store, in the order it was opened with, and each name's position.
/// Looked up on every row access, so the map hashes with [`WordHash`] rather than the default
/// SipHash (the keys are a few fixed short names; collision resistance buys nothing here).
pub(crate) struct Slots {
    ids: Vec<TableId>,
    index: HashMap<&'static str, usize, std::hash::BuildHasherDefault<WordHash>>,
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

/// A hash for short keys of the store's own (table names, the memo's keys): eight bytes at a
/// time, a rotation, an xor and a multiplication each (the multiplier of rustc's FxHash), where
/// FNV-1a took one byte at a time; the final rotation brings the well-mixed high bits down to
/// the low ones a hash table indexes by. Not collision-resistant: its keys are never chosen
/// to collide by anyone outside (table names are the code's; a memo lives for one batch).
#[derive(Default)]
pub(crate) struct WordHash(u64);

impl WordHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for WordHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}
