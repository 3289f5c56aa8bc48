//! The tables a store was opened with, found by name on every row access.

use super::backend::TableId;
use super::table::TableInfo;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every table of the store, in the order it was opened with, and each name's position.
/// Looked up on every row access, so the map hashes with [`WordHash`] rather than the default
/// SipHash (the keys are a few fixed short names; collision resistance buys nothing here).
pub(crate) struct Slots {
    ids: Vec<TableId>,
    index: HashMap<&'static str, usize, std::hash::BuildHasherDefault<WordHash>>,
    /// The slots of the names looked up so far, by the address of their text: a name is a
    /// `&'static str` of a table's declaration, and each place in the code that names a table
    /// passes the text at one address, so after its first lookup a name is found by comparing
    /// an address and a length (the same address and length are the same text, which cannot
    /// change while the program runs). Each position holds one packed entry ([`pack`]; 0:
    /// none), replaced by the latest name to land there; a name not found here is looked up by
    /// its text in `index`, as every name was before.
    seen: Box<[AtomicU64]>,
}

/// Positions in [`Slots::seen`] (a power of two, several times the places naming a table).
const SEEN: usize = 1024;

/// The position of the name at `address` in [`Slots::seen`].
fn position(address: usize) -> usize {
    (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize >> (usize::BITS - 10)
}

/// A name's address, length and slot in one word (47, 7 and 10 bits): `None` where one does
/// not fit (such a name is always looked up by its text).
fn pack(address: usize, len: usize, slot: usize) -> Option<u64> {
    let (address, len, slot) = (address as u64, len as u64, slot as u64);
    (address >> 47 == 0 && len < 1 << 7 && slot < 1 << 10)
        .then_some(address << 17 | len << 10 | slot)
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
        Ok(Slots {
            ids,
            index,
            seen: (0..SEEN).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The table named `name`. Errors: `Internal` for a table the store was not opened with.
    pub(crate) fn id(&self, name: &'static str) -> Result<TableId> {
        let address = name.as_ptr() as usize;
        let seen = &self.seen[position(address) % SEEN];
        if let Some(this) = pack(address, name.len(), 0) {
            let entry = seen.load(Ordering::Relaxed);
            if entry != 0
                && entry >> 10 == this >> 10
                && let Some(id) = self.ids.get((entry & 0x3ff) as usize)
            {
                return Ok(*id);
            }
        }
        match self.index.get(name) {
            Some(&slot) => {
                if let Some(entry) = pack(address, name.len(), slot) {
                    seen.store(entry, Ordering::Relaxed);
                }
                Ok(self.ids[slot])
            }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A name is found by its text wherever its text lies: at the address the tables were
    // declared with, at other addresses (copies made at run time, more of them than the
    // positions of the names seen, so entries replace each other), and within a longer
    // name's text at the same address (the length tells them apart); twice each, the second
    // time through what the first lookup left.
    #[test]
    fn a_name_is_its_tables_at_any_address_and_length() {
        let tables = crate::schema::tables();
        let slots = Slots::new(tables).unwrap();
        let copies: Vec<(&'static str, usize)> = (0..3 * SEEN)
            .map(|i| {
                let slot = i % tables.len();
                let text: &'static str = Box::leak(tables[slot].name().to_owned().into_boxed_str());
                (text, slot)
            })
            .collect();
        for _ in 0..2 {
            for (slot, t) in tables.iter().enumerate() {
                assert_eq!(slots.id(t.name()).unwrap().slot, slot);
            }
            for (text, slot) in &copies {
                assert_eq!(slots.id(text).unwrap().slot, *slot);
            }
        }
        // One table's name that begins with another's, cut to the other's length.
        let (long, short) = tables
            .iter()
            .flat_map(|a| tables.iter().map(move |b| (a.name(), b.name())))
            .find(|(a, b)| a.len() > b.len() && a.starts_with(b))
            .unwrap();
        let long: &'static str = Box::leak(long.to_owned().into_boxed_str());
        let cut = &long[..short.len()];
        for _ in 0..2 {
            assert_eq!(slots.id(long).unwrap().name, long);
            assert_eq!(slots.id(cut).unwrap().name, short);
        }
        assert!(slots.id(&long[..1]).is_err());
    }
}
