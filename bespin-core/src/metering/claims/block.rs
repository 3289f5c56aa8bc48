//! A block of claims as stored: three columns of fixed width, so that a lookup
//! binary-searches the hashes of the stored bytes ([`BlockView`]) instead of decoding the
//! block's hundred-odd claims.
//!
//! Layout 15 (version 2, after the record's version byte), all integers little-endian: the
//! claim count `n` (`u32`); `n` hashes (`u64`); `n` usage numbers (`u64`); `n` acceptances
//! (`i64` microseconds) — 24 bytes a claim. Version 1 (layout 14) then held each claim's
//! source and id (`2n` end offsets, `u32`, and the strings): a block of either version reads
//! the same, its claims' sources and ids, if any, unread (a match is confirmed on the usage
//! event the claim names, see [`super::Claims::find`]), and a merge writes version 2.

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
    out.reserve(4 + claims.len() * 24);
    out.extend_from_slice(&n.to_le_bytes());
    for c in claims {
        out.extend_from_slice(&c.h.to_le_bytes());
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
    /// checking that the block is exactly as long as its count says (for version 1, that its
    /// strings' offsets lie within it), so that no accessor can read out of bounds.
    pub(crate) fn parse(body: &'a [u8], version: u8) -> Result<BlockView<'a>> {
        let bad = || Error::Storage("a block of claims is cut short".into());
        if body.len() < 4 {
            return Err(bad());
        }
        let n = le_u32(body, 0);
        let columns = n
            .checked_mul(24)
            .and_then(|x| x.checked_add(4))
            .ok_or_else(bad)?;
        match version {
            1 => {
                // Then 2n end offsets and the strings they end.
                let strings = n
                    .checked_mul(8)
                    .and_then(|x| x.checked_add(columns))
                    .ok_or_else(bad)?;
                if body.len() < strings {
                    return Err(bad());
                }
                let mut prev = 0;
                for i in 0..2 * n {
                    let end = le_u32(body, columns + i * 4);
                    if end < prev {
                        return Err(bad());
                    }
                    prev = end;
                }
                if body.len() != strings + prev {
                    return Err(bad());
                }
            }
            2 if body.len() == columns => {}
            2 => return Err(bad()),
            _ => {
                return Err(Error::Storage(
                    "a block of claims of an unknown version".into(),
                ));
            }
        }
        Ok(BlockView { n, b: body })
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

    pub(crate) fn h(&self, i: usize) -> u64 {
        le_u64(self.b, 4 + i * 8)
    }

    pub(crate) fn seq(&self, i: usize) -> u64 {
        le_u64(self.b, 4 + self.n * 8 + i * 8)
    }

    pub(crate) fn accepted_at(&self, i: usize) -> Timestamp {
        Timestamp(le_u64(self.b, 4 + self.n * 16 + i * 8) as i64)
    }

    /// The usage numbers of the claims hashed `h` that are still remembered at `now`
    /// (accepted within `retention`): the events a lookup of a `(source, id)` of that hash
    /// confirms against (almost always none or one).
    pub(crate) fn candidates(
        &self,
        h: u64,
        now: Timestamp,
        retention: i64,
    ) -> impl Iterator<Item = u64> + '_ {
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
            .take_while(move |i| self.h(*i) == h)
            .filter(move |i| super::remembered(self.accepted_at(*i), now, retention))
            .map(|i| self.seq(i))
    }
}

#[cfg(test)]
/// A block as layout 14 stored it (version 1): the three columns, then each claim's
/// source and id (test-only).
pub(crate) fn layout_14(claims: &[(Claim, &str, &str)]) -> Vec<u8> {
    let mut out = vec![1];
    let plain: Vec<Claim> = claims.iter().map(|c| c.0).collect();
    encode(&plain, &mut out).expect("a small block");
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

    fn claim(h: u64, seq: u64) -> Claim {
        Claim {
            h,
            seq,
            accepted_at: Timestamp(1_000 + h as i64),
        }
    }

    #[test]
    fn a_block_reads_back_whole_and_in_place() {
        let block = ClaimBlock {
            claims: vec![claim(3, 30), claim(5, 50), claim(5, 51), claim(9, 90)],
        };
        let stored = codec::encode(&block).unwrap();
        assert_eq!(stored.len(), 1 + 4 + 4 * 24, "24 bytes a claim");
        assert_eq!(codec::decode::<ClaimBlock>(&stored).unwrap(), block);
        let v = BlockView::of_stored(&stored).unwrap();
        let found = |h, now, retention| v.candidates(h, Timestamp(now), retention).collect();
        let found: &dyn Fn(u64, i64, i64) -> Vec<u64> = &found;
        assert_eq!(found(5, 0, 10_000), vec![50, 51], "both claims of the hash");
        assert_eq!(found(9, 0, 10_000), vec![90]);
        assert_eq!(found(4, 0, 10_000), Vec::<u64>::new());
        assert_eq!(found(10, 0, 10_000), Vec::<u64>::new());
        // Past the retention: gone.
        assert_eq!(found(3, 2_000, 997), Vec::<u64>::new());
        assert_eq!(found(3, 2_000, 1_004), vec![30]);
    }

    #[test]
    fn a_layout_14_block_reads_as_its_claims() {
        let claims = [
            (claim(3, 30), "src", "a"),
            (claim(5, 50), "src", "bé"),
            (claim(9, 90), "", ""),
        ];
        let stored = layout_14(&claims);
        let v = BlockView::of_stored(&stored).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v.candidates(5, Timestamp(0), 10_000).collect::<Vec<_>>(),
            [50]
        );
        let block = codec::decode::<ClaimBlock>(&stored).unwrap();
        assert_eq!(block.claims, claims.map(|c| c.0).to_vec());
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
            claims: vec![claim(3, 30), claim(4, 40)],
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
