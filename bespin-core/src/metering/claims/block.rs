//! A block of claims as stored: columns of fixed width, so that a lookup binary-searches the
//! hashes of the stored bytes ([`BlockView`]) instead of decoding the block's hundred-odd
//! claims.
//!
//! Layout 15 (version 2, after the record's version byte), all integers little-endian: the
//! claim count `n` (`u32`); `n` hashes (`u64`); `n` second hashes (`u64`); `n` usage numbers
//! (`u64`); `n` acceptances (`i64` microseconds) — 32 bytes a claim. Version 1 (layout 14) had
//! no second hashes, and after the acceptances each claim's source and id (`2n` end offsets,
//! `u32`, and the strings): a block of either version reads the same, the second hash of a
//! claim of version 1 made from its source and id, and a merge writes version 2.

use super::Claim;
use crate::error::{Error, Result};
use crate::store::Record;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The claims of one block, in [`Claim::order`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClaimBlock {
    pub claims: Vec<Claim>,
}

/// Appends the body of a block of `claims` (in [`Claim::order`]) to `out`.
pub(crate) fn encode(claims: &[Claim], out: &mut Vec<u8>) -> Result<()> {
    let n = u32::try_from(claims.len()).map_err(|_| Error::Storage("block too large".into()))?;
    out.reserve(4 + claims.len() * 32);
    out.extend_from_slice(&n.to_le_bytes());
    for c in claims {
        out.extend_from_slice(&c.h.to_le_bytes());
    }
    for c in claims {
        out.extend_from_slice(&c.h2.to_le_bytes());
    }
    for c in claims {
        out.extend_from_slice(&c.seq.to_le_bytes());
    }
    for c in claims {
        out.extend_from_slice(&c.accepted_at.0.to_le_bytes());
    }
    Ok(())
}

impl Record for ClaimBlock {
    const VERSION: u8 = 2;

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        encode(&self.claims, out)
    }

    fn decode_body(body: &[u8]) -> Result<Self> {
        Ok(BlockView::parse(body, Self::VERSION)?.claims())
    }

    fn decode_older(version: u8, body: &[u8]) -> Result<Self> {
        Ok(BlockView::parse(body, version)?.claims())
    }
}

/// A stored block read in place.
pub(crate) struct BlockView<'a> {
    n: usize,
    b: &'a [u8],
    /// Version 1 (layout 14): no column of second hashes; the sources and ids after the
    /// acceptances instead.
    old: bool,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn le_u32(b: &[u8], at: usize) -> usize {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x) as usize
}

impl<'a> BlockView<'a> {
    /// Reads the header of `body` (a block's bytes after its version byte, `version`),
    /// checking that the block is exactly as long as its count says (for version 1, its
    /// strings' offsets included), so that no accessor can read out of bounds.
    pub(crate) fn parse(body: &'a [u8], version: u8) -> Result<BlockView<'a>> {
        let bad = || Error::Storage("a block of claims is cut short".into());
        if body.len() < 4 {
            return Err(bad());
        }
        let n = le_u32(body, 0);
        let columns = |width: usize| {
            n.checked_mul(width)
                .and_then(|x| x.checked_add(4))
                .ok_or_else(bad)
        };
        match version {
            1 => {
                // Three columns, then 2n end offsets and the strings they end.
                let strings = columns(32)?;
                if body.len() < strings {
                    return Err(bad());
                }
                let mut prev = 0;
                for i in 0..2 * n {
                    let end = le_u32(body, 4 + n * 24 + i * 4);
                    if end < prev {
                        return Err(bad());
                    }
                    prev = end;
                }
                if body.len() != strings + prev {
                    return Err(bad());
                }
            }
            2 if body.len() == columns(32)? => {}
            2 => return Err(bad()),
            _ => {
                return Err(Error::Storage(
                    "a block of claims of an unknown version".into(),
                ));
            }
        }
        Ok(BlockView {
            n,
            b: body,
            old: version == 1,
        })
    }

    /// Reads a stored block: its version byte, then [`BlockView::parse`].
    pub(crate) fn of_stored(stored: &'a [u8]) -> Result<BlockView<'a>> {
        match stored.split_first() {
            Some((&v, body)) => BlockView::parse(body, v),
            None => Err(Error::Storage("an empty block of claims".into())),
        }
    }

    /// How many claims it holds.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Claim `i`.
    pub(crate) fn claim(&self, i: usize) -> Claim {
        Claim {
            h: self.h(i),
            h2: self.h2(i),
            seq: self.seq(i),
            accepted_at: self.accepted_at(i),
        }
    }

    /// Every claim, decoded.
    fn claims(&self) -> ClaimBlock {
        ClaimBlock {
            claims: (0..self.n).map(|i| self.claim(i)).collect(),
        }
    }

    /// The byte offset of column `c` (0 hashes, then second hashes, numbers, acceptances;
    /// version 1 has no second hashes: its numbers and acceptances come one column earlier,
    /// and column 1 is never asked of it, see [`BlockView::h2`]).
    fn column(&self, c: usize) -> usize {
        let c = if self.old { c - usize::from(c > 1) } else { c };
        4 + c * self.n * 8
    }

    pub(crate) fn h(&self, i: usize) -> u64 {
        le_u64(self.b, self.column(0) + i * 8)
    }

    /// The second hash of claim `i` (made from its source and id in a block of version 1).
    pub(crate) fn h2(&self, i: usize) -> u64 {
        if self.old {
            let ends = 4 + self.n * 24;
            let end = |j: usize| le_u32(self.b, ends + j * 4);
            let start = |j: usize| if j == 0 { 0 } else { end(j - 1) };
            let strings = ends + self.n * 8;
            let text = |j: usize| &self.b[strings + start(j)..strings + end(j)];
            super::hash2_of_bytes(text(2 * i), text(2 * i + 1))
        } else {
            le_u64(self.b, self.column(1) + i * 8)
        }
    }

    pub(crate) fn seq(&self, i: usize) -> u64 {
        le_u64(self.b, self.column(2) + i * 8)
    }

    pub(crate) fn accepted_at(&self, i: usize) -> Timestamp {
        Timestamp(le_u64(self.b, self.column(3) + i * 8) as i64)
    }

    /// The usage number of the claim with hashes `(h, h2)` that is still remembered at `now`
    /// (accepted within `retention`), if the block holds one.
    pub(crate) fn find(&self, (h, h2): (u64, u64), now: Timestamp, retention: i64) -> Option<u64> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.h(mid) < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo..self.n)
            .take_while(|i| self.h(*i) == h)
            .find(|i| self.h2(*i) == h2 && super::remembered(self.accepted_at(*i), now, retention))
            .map(|i| self.seq(i))
    }
}

#[cfg(test)]
/// A block as layout 14 stored it (version 1): hashes, usage numbers, acceptances, then each
/// claim's source and id (test-only; the claims' second hashes are not written).
pub(crate) fn layout_14(claims: &[(Claim, &str, &str)]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(&(claims.len() as u32).to_le_bytes());
    for (c, _, _) in claims {
        out.extend_from_slice(&c.h.to_le_bytes());
    }
    for (c, _, _) in claims {
        out.extend_from_slice(&c.seq.to_le_bytes());
    }
    for (c, _, _) in claims {
        out.extend_from_slice(&c.accepted_at.0.to_le_bytes());
    }
    let mut end = 0u32;
    for (_, source, id) in claims {
        for s in [source, id] {
            end += s.len() as u32;
            out.extend_from_slice(&end.to_le_bytes());
        }
    }
    for (_, source, id) in claims {
        out.extend_from_slice(source.as_bytes());
        out.extend_from_slice(id.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    /// A claim of hash `h`, second hash `h2`, usage number `seq`.
    fn claim(h: u64, h2: u64, seq: u64) -> Claim {
        Claim {
            h,
            h2,
            seq,
            accepted_at: Timestamp(1_000 + h as i64),
        }
    }

    #[test]
    fn a_block_reads_back_whole_and_in_place() {
        let block = ClaimBlock {
            claims: vec![
                claim(3, 1, 30),
                claim(5, 7, 50),
                claim(5, 8, 51),
                claim(9, 2, 90),
            ],
        };
        let stored = codec::encode(&block).unwrap();
        assert_eq!(stored.len(), 1 + 4 + 4 * 32, "32 bytes a claim");
        assert_eq!(codec::decode::<ClaimBlock>(&stored).unwrap(), block);
        let v = BlockView::of_stored(&stored).unwrap();
        let found = |h, now, retention| v.find(h, Timestamp(now), retention);
        assert_eq!(found((5, 8), 0, 10_000), Some(51), "both hashes decide");
        assert_eq!(found((5, 7), 0, 10_000), Some(50));
        assert_eq!(
            found((5, 9), 0, 10_000),
            None,
            "the first hash alone never does"
        );
        assert_eq!(found((9, 2), 0, 10_000), Some(90));
        assert_eq!(found((4, 1), 0, 10_000), None);
        assert_eq!(found((10, 1), 0, 10_000), None);
        // Past the retention: gone.
        assert_eq!(found((3, 1), 2_000, 997), None);
        assert_eq!(found((3, 1), 2_000, 1_004), Some(30));
    }

    #[test]
    fn a_layout_14_block_reads_as_its_claims_second_hashes_made_from_their_ids() {
        let claims = [
            (claim(3, 0, 30), "src", "a"),
            (claim(5, 0, 50), "src", "bé"),
            (claim(9, 0, 90), "", ""),
        ];
        let stored = layout_14(&claims);
        let v = BlockView::of_stored(&stored).unwrap();
        assert_eq!(v.len(), 3);
        let h2 = super::super::hash2;
        assert_eq!(v.find((5, h2("src", "bé")), Timestamp(0), 10_000), Some(50));
        assert_eq!(v.find((5, h2("src", "b")), Timestamp(0), 10_000), None);
        let block = codec::decode::<ClaimBlock>(&stored).unwrap();
        let made: Vec<Claim> = (claims.iter())
            .map(|(c, source, id)| Claim {
                h2: h2(source, id),
                ..*c
            })
            .collect();
        assert_eq!(block.claims, made);
        for cut in 1..stored.len() {
            assert!(
                BlockView::of_stored(&stored[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_cut_or_padded_block_is_refused_not_misread() {
        let block = ClaimBlock {
            claims: vec![claim(3, 1, 30), claim(4, 1, 40)],
        };
        let stored = codec::encode(&block).unwrap();
        for cut in 1..stored.len() {
            assert!(
                BlockView::of_stored(&stored[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut padded = stored.clone();
        padded.push(0);
        assert!(BlockView::of_stored(&padded).is_err());
        let mut huge = stored.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(BlockView::of_stored(&huge).is_err());
        let mut unknown = stored;
        unknown[0] = 3;
        assert!(BlockView::of_stored(&unknown).is_err());
    }
}
