//! A block of claims as stored: columns of fixed width, then the strings, so that a lookup
//! binary-searches the hashes of the stored bytes and compares one claim's source and id in
//! place ([`BlockView`]) instead of decoding the block's hundred-odd claims and their strings.
//!
//! Layout (after the record's version byte), all integers little-endian: the claim count `n`
//! (`u32`); `n` hashes (`u64`); `n` usage numbers (`u64`); `n` acceptances (`i64`
//! microseconds); `2n` end offsets (`u32`) of the sources and ids in the string area, in the
//! order source₀, id₀, source₁, …; the string area (UTF-8).

use super::{Claim, ClaimRef};
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
pub(crate) fn encode(claims: &[ClaimRef<'_>], out: &mut Vec<u8>) -> Result<()> {
    let n = claims.len();
    let strings: usize = claims.iter().map(|c| c.source.len() + c.id.len()).sum();
    out.reserve(4 + n * 32 + strings);
    let too_large = || Error::Storage("block too large".into());
    let n32 = u32::try_from(n).map_err(|_| too_large())?;
    out.extend_from_slice(&n32.to_le_bytes());
    for c in claims {
        out.extend_from_slice(&c.h.to_le_bytes());
    }
    for c in claims {
        out.extend_from_slice(&c.seq.to_le_bytes());
    }
    for c in claims {
        out.extend_from_slice(&c.accepted_at.0.to_le_bytes());
    }
    let mut end = 0usize;
    for c in claims {
        for s in [c.source, c.id] {
            end += s.len();
            let e = u32::try_from(end).map_err(|_| too_large())?;
            out.extend_from_slice(&e.to_le_bytes());
        }
    }
    for c in claims {
        out.extend_from_slice(c.source);
        out.extend_from_slice(c.id);
    }
    Ok(())
}

impl Record for ClaimBlock {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        let refs: Vec<ClaimRef<'_>> = self.claims.iter().map(Claim::as_ref).collect();
        encode(&refs, out)
    }

    fn decode_body(body: &[u8]) -> Result<Self> {
        let v = BlockView::parse(body)?;
        let claims = (0..v.len())
            .map(|i| {
                let text = |b: &[u8]| {
                    std::str::from_utf8(b)
                        .map(str::to_owned)
                        .map_err(|_| Error::Storage("a claim's text is not UTF-8".into()))
                };
                Ok(Claim {
                    h: v.h(i),
                    seq: v.seq(i),
                    accepted_at: v.accepted_at(i),
                    source: text(v.source(i))?,
                    id: text(v.id(i))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(ClaimBlock { claims })
    }
}

/// A stored block read in place.
pub(crate) struct BlockView<'a> {
    n: usize,
    b: &'a [u8],
    strings: usize,
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
    /// Reads the header of `body` (a block's bytes after the version byte), checking that
    /// every column and string lies within it, so that no accessor can read out of bounds.
    pub(crate) fn parse(body: &'a [u8]) -> Result<BlockView<'a>> {
        let bad = || Error::Storage("a block of claims is cut short".into());
        if body.len() < 4 {
            return Err(bad());
        }
        let n = le_u32(body, 0);
        let strings = n
            .checked_mul(32)
            .and_then(|x| x.checked_add(4))
            .ok_or_else(bad)?;
        if body.len() < strings {
            return Err(bad());
        }
        let v = BlockView {
            n,
            b: body,
            strings,
        };
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
        Ok(v)
    }

    /// Reads a stored block: its version byte, then [`BlockView::parse`].
    pub(crate) fn of_stored(stored: &'a [u8]) -> Result<BlockView<'a>> {
        match stored.split_first() {
            Some((&v, body)) if v == ClaimBlock::VERSION => BlockView::parse(body),
            _ => Err(Error::Storage(
                "a block of claims of an unknown version".into(),
            )),
        }
    }

    /// How many claims it holds.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Claim `i`, borrowed from the block.
    pub(crate) fn claim(&self, i: usize) -> ClaimRef<'a> {
        ClaimRef {
            h: self.h(i),
            seq: self.seq(i),
            accepted_at: self.accepted_at(i),
            source: self.source(i),
            id: self.id(i),
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

    /// The bytes of string `j` (source of claim `j / 2` when even, its id when odd).
    fn string(&self, j: usize) -> &'a [u8] {
        let ends = 4 + self.n * 24;
        let start = if j == 0 {
            0
        } else {
            le_u32(self.b, ends + (j - 1) * 4)
        };
        let end = le_u32(self.b, ends + j * 4);
        &self.b[self.strings + start..self.strings + end]
    }

    pub(crate) fn source(&self, i: usize) -> &'a [u8] {
        self.string(2 * i)
    }

    pub(crate) fn id(&self, i: usize) -> &'a [u8] {
        self.string(2 * i + 1)
    }

    /// The usage number of the claim of `(source, id)` hashed `h` that is still remembered at
    /// `now` (accepted within `retention`), if the block holds one.
    pub(crate) fn find(
        &self,
        h: u64,
        source: &str,
        id: &str,
        now: Timestamp,
        retention: i64,
    ) -> Option<u64> {
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
            .find(|i| {
                self.source(*i) == source.as_bytes()
                    && self.id(*i) == id.as_bytes()
                    && super::remembered(self.accepted_at(*i), now, retention)
            })
            .map(|i| self.seq(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    fn claim(h: u64, id: &str) -> Claim {
        Claim {
            h,
            seq: h * 10,
            accepted_at: Timestamp(1_000 + h as i64),
            source: "src".into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_block_reads_back_whole_and_in_place() {
        let block = ClaimBlock {
            claims: vec![claim(3, "a"), claim(5, "bé"), claim(5, "c"), claim(9, "")],
        };
        let stored = codec::encode(&block).unwrap();
        assert_eq!(codec::decode::<ClaimBlock>(&stored).unwrap(), block);
        let v = BlockView::of_stored(&stored).unwrap();
        assert_eq!(v.find(5, "src", "c", Timestamp(0), 10_000), Some(50));
        assert_eq!(v.find(5, "src", "bé", Timestamp(0), 10_000), Some(50));
        assert_eq!(
            v.find(5, "src", "d", Timestamp(0), 10_000),
            None,
            "same hash, other id"
        );
        assert_eq!(v.find(5, "other", "c", Timestamp(0), 10_000), None);
        assert_eq!(v.find(9, "src", "", Timestamp(0), 10_000), Some(90));
        assert_eq!(v.find(4, "src", "a", Timestamp(0), 10_000), None);
        // Past the retention: gone.
        assert_eq!(v.find(3, "src", "a", Timestamp(2_000), 997), None);
        assert_eq!(v.find(3, "src", "a", Timestamp(2_000), 1_004), Some(30));
    }

    #[test]
    fn a_cut_or_padded_block_is_refused_not_misread() {
        let block = ClaimBlock {
            claims: vec![claim(3, "abc"), claim(4, "de")],
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
        let mut huge = stored;
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(BlockView::of_stored(&huge).is_err());
    }
}
