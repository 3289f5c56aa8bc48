//! Scans of the PostgreSQL backend: pages of rows from the database, merged with the rows a
//! batch holds in memory.

use super::super::backend::RawVisitor;
use super::super::{Flow, Order};
use super::cache::Page;
use crate::error::Result;
use std::ops::Bound;

/// Rows fetched by the first page of a scan; each next page is 8 times larger (up to
/// [`MAX_PAGE`]), so a scan that stops after a few rows reads few, and a long one few pages.
const FIRST_PAGE: i64 = 32;
const MAX_PAGE: i64 = 4096;

/// Rows of a scan: the pages the database gives (`fetch(lo, hi, limit)`), merged with the
/// rows a batch holds in memory for the part of the range each page covers (`overlay(lo,
/// hi)`: `None` values are removals), visited in `order` until the visitor stops.
#[allow(clippy::type_complexity)]
pub(super) fn paged(
    fetch: &mut dyn FnMut(Bound<&[u8]>, Bound<&[u8]>, i64) -> Result<Page>,
    overlay: &mut dyn FnMut(Bound<&[u8]>, Bound<&[u8]>) -> Vec<(Vec<u8>, Option<Vec<u8>>)>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    order: Order,
    visit: &mut RawVisitor<'_>,
) -> Result<()> {
    let owned = |b: Bound<&[u8]>| b.map(<[u8]>::to_vec);
    let (mut lo, mut hi) = (owned(lo), owned(hi));
    let mut limit = FIRST_PAGE;
    loop {
        let page = fetch(as_ref(&lo), as_ref(&hi), limit)?;
        let done = (page.len() as i64) < limit;
        // The part of the range this page covers: all of what is left when it is the last.
        let edge = match page.last() {
            Some((k, _)) if !done => Bound::Included(k.clone()),
            _ => match order {
                Order::Asc => hi.clone(),
                Order::Desc => lo.clone(),
            },
        };
        let mem = match order {
            Order::Asc => overlay(as_ref(&lo), as_ref(&edge)),
            Order::Desc => {
                let mut m = overlay(as_ref(&edge), as_ref(&hi));
                m.reverse();
                m
            }
        };
        if merge(&page, mem, order, visit)? {
            return Ok(());
        }
        if done {
            return Ok(());
        }
        let next = match edge {
            Bound::Included(k) => Bound::Excluded(k),
            other => other,
        };
        match order {
            Order::Asc => lo = next,
            Order::Desc => hi = next,
        }
        limit = (limit * 8).min(MAX_PAGE);
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Visits the rows of `db` and `mem` (both in `order`) as one sequence, `mem` winning on equal
/// keys; `true` when the visitor stopped.
fn merge(
    db: &[(Vec<u8>, Vec<u8>)],
    mem: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    order: Order,
    visit: &mut RawVisitor<'_>,
) -> Result<bool> {
    let before = |a: &[u8], b: &[u8]| match order {
        Order::Asc => a < b,
        Order::Desc => a > b,
    };
    let mut db = db.iter().peekable();
    let mut mem = mem.into_iter().peekable();
    loop {
        let take_mem = match (db.peek(), mem.peek()) {
            (None, None) => return Ok(false),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((dk, _)), Some((mk, _))) => {
                if dk == mk {
                    db.next();
                    true
                } else {
                    before(mk, dk)
                }
            }
        };
        let flow = if take_mem {
            match mem.next() {
                Some((k, Some(v))) => visit(&k, &v)?,
                _ => Flow::Continue,
            }
        } else {
            match db.next() {
                Some((k, v)) => visit(k, v)?,
                None => Flow::Continue,
            }
        };
        if let Flow::Stop = flow {
            return Ok(true);
        }
    }
}
