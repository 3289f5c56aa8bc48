//! A Bloom filter per block of claims: a claim's hash is looked for in the one block of each
//! run whose range holds it, and the block is read only when its filter says it may be there.

use serde::{Deserialize, Serialize};

/// Bits per claim: with [`PROBES`] bits a claim in one 64-bit word, about 0.2% false
/// positives (at 10 bits, 1.2%: a lookup of a new id in a tenant with 20 runs read a block
/// in a fifth of the cases, the most expensive part of a lookup at a million claims).
const BITS_PER_CLAIM: usize = 16;
/// Bits set per claim.
const PROBES: u32 = 6;

/// The filter of one block: its bits, at least 64 (a block of one claim). A register-blocked
/// Bloom filter: a claim's bits all lie in one word, so a probe reads one word and divides
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockFilter {
    bits: Vec<u64>,
}

// Stored as its words, 8 bytes each little-endian: postcard's varints took 10 bytes for a word
// of random bits, and writing a run's filters cost 1,300 instructions a claim.
impl crate::store::Record for BlockFilter {
    fn encode_body(&self, out: &mut Vec<u8>) -> crate::error::Result<()> {
        out.reserve(self.bits.len() * 8);
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        Ok(())
    }

    fn decode_body(body: &[u8]) -> crate::error::Result<Self> {
        if !body.len().is_multiple_of(8) {
            return Err(crate::Error::Storage("a filter is cut short".into()));
        }
        let bits = body
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        Ok(BlockFilter { bits })
    }
}

/// The word and the mask of a claim hash in a filter of `words` words. Claims of a block
/// share the high bits of their hash (a block is a range of the sorted hashes), so both come
/// from the hash mixed anew (SplitMix64's finaliser) rather than from its bits as they are.
fn place(h: u64, words: usize) -> (usize, u64) {
    let mut z = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The word by multiply-shift of the low half (no division); the bits from the high half.
    let word = (((z & 0xFFFF_FFFF) * words as u64) >> 32) as usize;
    let mut mask = 0u64;
    for i in 0..PROBES {
        mask |= 1 << ((z >> (32 + 5 * i)) & 63);
    }
    (word, mask)
}

/// Whether a claim with hash `h` may be among those the filter `bits` was made of.
pub(crate) fn may_hold(bits: &[u64], h: u64) -> bool {
    if bits.is_empty() {
        return true;
    }
    let (w, mask) = place(h, bits.len());
    bits[w] & mask == mask
}

impl BlockFilter {
    /// The filter of the claims whose hashes are `hashes`: every one of them answers
    /// [`BlockFilter::may_hold`] true (a Bloom filter has no false negatives).
    pub(crate) fn of(hashes: impl ExactSizeIterator<Item = u64>) -> BlockFilter {
        let words = (hashes.len() * BITS_PER_CLAIM).div_ceil(64).max(1);
        let mut bits = vec![0; words];
        for h in hashes {
            let (w, mask) = place(h, words);
            bits[w] |= mask;
        }
        BlockFilter { bits }
    }

    /// Whether a claim with hash `h` may be in the block: false means it is not.
    pub(crate) fn may_hold(&self, h: u64) -> bool {
        may_hold(&self.bits, h)
    }

    /// The filter's words (a run's index keeps every block's words in one array).
    pub(crate) fn words(&self) -> &[u64] {
        &self.bits
    }

    /// The filter's size in bytes.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_member_and_few_others() {
        let members: Vec<u64> = (0..128u64)
            .map(|i| i.wrapping_mul(0x1234_5678_9ABC_DEF1))
            .collect();
        let f = BlockFilter::of(members.iter().copied());
        assert_eq!(f.bytes(), 256, "16 bits a claim, in whole words");
        assert!(members.iter().all(|h| f.may_hold(*h)));
        // Neighbours of members (a block's hashes are close to each other) are mostly refused.
        let others = (0..10_000u64).map(|i| members[(i % 128) as usize] + 1 + i / 128);
        let false_positives = others.filter(|h| f.may_hold(*h)).count();
        assert!(false_positives < 100, "{false_positives} of 10,000");
    }

    #[test]
    fn a_filter_is_stored_as_its_words() {
        let f = BlockFilter::of((0..100u32).map(|i| u64::from(i) * 7919));
        let stored = crate::store::codec::encode(&f).unwrap();
        assert_eq!(stored.len(), 1 + f.bytes());
        assert_eq!(
            crate::store::codec::decode::<BlockFilter>(&stored).unwrap(),
            f
        );
        assert!(crate::store::codec::decode::<BlockFilter>(&stored[..stored.len() - 1]).is_err());
    }

    #[test]
    fn one_claim_still_has_a_word() {
        let f = BlockFilter::of([7u64].into_iter());
        assert!(f.may_hold(7));
        assert_eq!(f.bytes(), 8);
    }
}
