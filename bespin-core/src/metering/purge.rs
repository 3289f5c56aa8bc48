//! The de-duplication rows of reported usage events past their retention, forgotten along
//! the platform's insertion order ([`purge_dedup`]), and their checks. (Split from
//! [`super::ingest`], which writes them.)

use super::ingest::{
    DedupKey, PURGED_UP_TO, USAGE_DEDUP, USAGE_DEDUP_BY_EXPIRY, WALK_PER_PURGED, dedup_horizon,
};
use super::{chunk, export};
use crate::Ctx;
use crate::check::Checker;
use crate::error::Result;
use crate::store::{Flow, Order, Reader, WriteTx};
use crate::time::Timestamp;
use std::collections::HashMap;

/// Forgets at most `max` remembered events whose retention has ended, oldest first; returns
/// how many went (the server's upkeep calls it every minute, so a day's expiries leave in
/// bounded steps).
///
/// The walk follows the platform's insertion order (`usage_all_by_seq`) from where
/// the last one stopped (a `meta` row): usage numbers grow with the instant of acceptance, so
/// the remembered events come in the order their retention ends. At a reported event it
/// reads the event (for its source and id) and the de-duplication row: a row of this event
/// past its retention goes; a row still within it ends the walk, which resumes there next
/// time; no row, or the row of a later acceptance of the same id, is passed. Bespin's own
/// usage events are passed without a read, and the walk never enters the last `retention`
/// (less the 5 minutes an event's `time` may lie ahead of its acceptance) of the order, where
/// nothing can have expired. At most 16 × `max` rows are walked per call. A chunk of events
/// (`super::chunk`) is one row of the order, and its events are forgotten together (so up
/// to 999 beyond `max`).
pub fn purge_dedup(tx: &mut WriteTx, ctx: &Ctx, max: usize) -> Result<usize> {
    let retention = ctx.options.usage_dedup_retention_micros;
    let horizon = dedup_horizon(ctx.now, retention);
    let cursor_key = crate::store::NameKey::new(PURGED_UP_TO);
    let from = tx.get(&crate::layout::META, &cursor_key)?.unwrap_or(0);
    let walk = max.saturating_mul(WALK_PER_PURGED).max(1);
    let mut rows: Vec<(u64, String, export::OrderEntry)> = Vec::new();
    let order = &export::USAGE_ALL_BY_SEQ;
    let start = order.prefix().u64(from.saturating_add(1));
    tx.scan_range(
        order,
        &order.prefix(),
        Some(&start),
        None,
        Order::Asc,
        &mut |k, e: export::OrderEntry| {
            if e.at.0 > horizon {
                return Ok(Flow::Stop);
            }
            if let Some(k) = export::UsageSeqKey::decode(k) {
                rows.push((k.seq, k.tenant_id.into_owned(), e));
            }
            Ok(if rows.len() >= walk {
                Flow::Stop
            } else {
                Flow::Continue
            })
        },
    )?;
    let mut walked = from;
    let mut purged = 0;
    'rows: for (seq, tenant, e) in rows {
        if purged >= max {
            break;
        }
        if e.chunk > 0 {
            // A chunk's events were accepted together: all still remembered, or none (a
            // walk that stopped inside one resumes at it, its forgotten rows passed).
            if let Some(c) = chunk::get(tx, &tenant, e.at, seq)? {
                for ev in &c.events {
                    let Some((source, id)) = c.origin_of(ev) else {
                        continue;
                    };
                    let dk = DedupKey::new(&tenant, source, id);
                    match forget(tx, &dk, ev.seq, ctx.now, retention)? {
                        Forgot::Live => break 'rows,
                        Forgot::Gone => purged += 1,
                        Forgot::NotThis => {}
                    }
                }
                walked = c.last_seq().max(seq);
            } else {
                walked = seq;
            }
            continue;
        }
        if e.reported
            && let Some(origin) = tx
                .get(
                    &super::USAGE_EVENTS,
                    &super::UsageKey::new(&tenant, e.at, seq),
                )?
                .and_then(|u| u.origin)
        {
            let dk = DedupKey::new(&tenant, &origin.source, &origin.id);
            match forget(tx, &dk, seq, ctx.now, retention)? {
                Forgot::Live => break,
                Forgot::Gone => purged += 1,
                Forgot::NotThis => {}
            }
        }
        walked = seq;
    }
    if walked != from {
        tx.put(&crate::layout::META, &cursor_key, &walked)?;
    }
    Ok(purged)
}

/// What [`forget`] did with a de-duplication row.
enum Forgot {
    /// The row of this event, still remembered: left, and the walk ends.
    Live,
    /// The row of this event, past its retention: deleted.
    Gone,
    /// Forgotten already, or remembered for a later acceptance of the same id: passed.
    NotThis,
}

/// Deletes the de-duplication row `dk` if it is usage event `seq`'s and past its retention.
fn forget(
    tx: &mut WriteTx,
    dk: &DedupKey<'_>,
    seq: u64,
    now: Timestamp,
    retention: i64,
) -> Result<Forgot> {
    Ok(match tx.get(&USAGE_DEDUP, dk)? {
        Some(d) if d.seq == seq && d.live(now, retention) => Forgot::Live,
        Some(d) if d.seq == seq => {
            tx.delete(&USAGE_DEDUP, dk)?;
            Forgot::Gone
        }
        _ => Forgot::NotThis,
    })
}

/// The upgrade to layout 10: empties layout 9's expiry order, whose rows the purge no longer
/// reads.
pub(crate) fn drop_expiry_order(tx: &mut WriteTx) -> Result<()> {
    tx.clear_unlogged(&USAGE_DEDUP_BY_EXPIRY)
}

/// Checks the de-duplication rows: each names a usage event of its tenant that came from that
/// source and id (so is marked reported in the insertion order, [`export::check`]) and lies
/// past where the purge has walked (which never passes a row it leaves); every event reported
/// with a `time` within the retention (less 5 minutes) has its row, which neither the purge
/// nor a later acceptance of its id can have taken yet; layout 9's expiry order is empty.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let walked = r
        .get(
            &crate::layout::META,
            &crate::store::NameKey::new(PURGED_UP_TO),
        )?
        .unwrap_or(0);
    let horizon = dedup_horizon(c.now(), c.options_dedup_retention());
    // Every reported event, by (tenant, number): its source and id.
    let mut reported: HashMap<(String, u64), (String, String)> = HashMap::new();
    for x in chunk::all_events(r, c)? {
        let Some(o) = x.rec.origin else {
            continue;
        };
        if x.rec.created_at.0 > horizon {
            let dk = DedupKey::new(&x.tenant, &o.source, &o.id);
            match r.get(&USAGE_DEDUP, &dk)? {
                Some(d) if d.seq == x.seq => c.ok(),
                _ => c.violation(
                    USAGE_DEDUP.name(),
                    &dk.encode(),
                    "missing for a usage event reported within the retention",
                ),
            }
        }
        reported.insert((x.tenant, x.seq), (o.source, o.id));
    }
    for x in c.rows(r, &USAGE_DEDUP)? {
        let (t, k, d) = (x.key.tenant_id.as_ref(), &x.key, &x.value);
        let table = USAGE_DEDUP.name();
        match reported.get(&(t.to_owned(), d.seq)) {
            Some((source, id)) if *source == k.source && *id == k.event_id => c.ok(),
            _ => c.violation(
                table,
                &x.bytes,
                "names no usage event ingested with this source and id",
            ),
        }
        if d.seq <= walked {
            c.violation(table, &x.bytes, "left behind by the purge's walk");
        }
    }
    for x in c.rows(r, &USAGE_DEDUP_BY_EXPIRY)? {
        c.violation(
            USAGE_DEDUP_BY_EXPIRY.name(),
            &x.bytes,
            "expiry row of layout 9 left",
        );
    }
    Ok(())
}
