//! A Bloom filter per block of claims: a claim's hash is looked for in the one block of each
//! run whose range holds it, and the block is read only when its filter says it may be there.

use serde::{Deserialize, Serialize};

/// Bits per claim: about 0.8% false positives with [`PROBES`] probes.
const BITS_PER_CLAIM: usize = 10;
/// Probes per hash (the best count for 10 bits a claim is 7).
const PROBES: u64 = 7;

/// The filter of one block: its bits, at least 64 (a block of one claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockFilter {
    bits: Vec<u64>,
}

impl crate::store::Record for BlockFilter {}

/// The two probe strides of a claim hash. Claims of a block share the high bits of their hash
/// (a block is a range of the sorted hashes), so the probes come from the hash mixed anew
/// (SplitMix64's finaliser) rather than from its bits as they are.
fn strides(h: u64) -> (u64, u64) {
    let mut z = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z & 0xFFFF_FFFF, (z >> 32) | 1)
}

impl BlockFilter {
    /// The filter of the claims whose hashes are `hashes`: every one of them answers
    /// [`BlockFilter::may_hold`] true (a Bloom filter has no false negatives).
    pub(crate) fn of(hashes: impl ExactSizeIterator<Item = u64>) -> BlockFilter {
        let words = (hashes.len() * BITS_PER_CLAIM).div_ceil(64).max(1);
        let mut f = BlockFilter {
            bits: vec![0; words],
        };
        let n = (words * 64) as u64;
        for h in hashes {
            let (a, b) = strides(h);
            for i in 0..PROBES {
                let bit = a.wrapping_add(i.wrapping_mul(b)) % n;
                f.bits[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        f
    }

    /// Whether a claim with hash `h` may be in the block: false means it is not.
    pub(crate) fn may_hold(&self, h: u64) -> bool {
        let n = (self.bits.len() * 64) as u64;
        if n == 0 {
            return true;
        }
        let (a, b) = strides(h);
        (0..PROBES).all(|i| {
            let bit = a.wrapping_add(i.wrapping_mul(b)) % n;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    /// The filter's size in bytes (for the cache's budget).
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
        assert_eq!(f.bytes(), 160, "10 bits a claim, in whole words");
        assert!(members.iter().all(|h| f.may_hold(*h)));
        // Neighbours of members (a block's hashes are close to each other) are mostly refused.
        let others = (0..10_000u64).map(|i| members[(i % 128) as usize] + 1 + i / 128);
        let false_positives = others.filter(|h| f.may_hold(*h)).count();
        assert!(false_positives < 300, "{false_positives} of 10,000");
    }

    #[test]
    fn one_claim_still_has_a_word() {
        let f = BlockFilter::of([7u64].into_iter());
        assert!(f.may_hold(7));
        assert_eq!(f.bytes(), 8);
    }
}
