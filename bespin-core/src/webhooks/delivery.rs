//! The webhook outbox, its leases and the record of attempts.
//!
//! An event an endpoint wants is put in the outbox in the event's transaction, due at once:
//! one row per (event, endpoint), keyed by due time then a delivery number, so a worker reads
//! what is due in order. [`claim`] (a write operation) takes up to `max` due rows and moves
//! each to `now + lease`: the lease. A worker that dies leaves its rows to come due again when
//! the lease ends, so every committed event is delivered at least once. [`record`] writes the
//! attempt and either removes the row (delivered, or failed for good) or moves it to the time
//! of its next retry: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±10% at random.
//! An endpoint whose attempts have all failed for 5 days is disabled, and a
//! `webhook.endpoint_disabled` event says so.

use super::endpoints::{self, ENDPOINTS, EndpointRec, endpoint_key};
use crate::auth::Principal;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::events::{self, EVENTS, EventKey, catalog};
use crate::store::{Flow, Order, Reader, Record, Table, WriteTx, key};
use crate::time::Timestamp;
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};

/// The waits before each retry, in seconds (then the delivery has failed).
pub const RETRY_SCHEDULE_SECS: [i64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
/// How long an endpoint may fail without a success before it is disabled (5 days).
pub const DISABLE_AFTER_MICROS: i64 = 5 * Timestamp::DAY_MICROS;
/// The most bytes of a receiver's answer kept with an attempt.
pub const BODY_KEPT: usize = 1024;

/// A delivery waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutboxRec {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_seq: u64,
    /// Attempts made so far.
    pub attempts: u32,
}
impl Record for OutboxRec {}

/// One attempt, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttemptRec {
    pub event_seq: u64,
    pub attempt: u32,
    pub status: String,
    pub response_code: Option<u16>,
    pub latency_ms: u64,
    pub response_body: String,
    pub error: Option<String>,
    pub next_retry: Option<Timestamp>,
    pub attempted_at: Timestamp,
}
impl Record for AttemptRec {}

key! {
    /// (due, delivery).
    pub(crate) struct OutboxKey<'a> { due: ts, delivery: u64, for_tenant: ext_id }
    /// (tenant, endpoint, attempt number).
    pub(crate) struct AttemptKey<'a> { tenant_id: tenant, endpoint_id: ext_id, seq: u64 }
}

/// (due, delivery, tenant) → delivery: the outbox, in due order across tenants.
pub(crate) const OUTBOX: Table<OutboxKey<'static>, OutboxRec> = Table::new("webhook_outbox");
/// (tenant, endpoint, seq) → attempt.
pub(crate) const ATTEMPTS: Table<AttemptKey<'static>, AttemptRec> = Table::new("webhook_attempts");

fn put_due(tx: &mut WriteTx, due: Timestamp, id: u64, rec: &OutboxRec) -> Result<()> {
    tx.put(&OUTBOX, &OutboxKey::new(due, id, &rec.tenant_id), rec)
}

/// Puts event `seq` of `tenant` (of type `t`) in the outbox of every enabled endpoint that
/// wants it (called by `events::emit`, in the event's transaction).
pub(crate) fn enqueue(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant: &str,
    seq: u64,
    t: &catalog::EventType,
) -> Result<()> {
    if t == catalog::WEBHOOK_TEST {
        return Ok(());
    }
    // The endpoints that want `t`, remembered for the batch (until one of its operations
    // changes an endpoint): most batches emit many events of one tenant.
    let wanted: Vec<String> = crate::store::remember(&*tx, &["webhooks", tenant, t.name], || {
        let mut wanted = Vec::new();
        tx.scan(
            &ENDPOINTS,
            &ENDPOINTS.prefix().tenant(tenant),
            Order::Asc,
            |_, e: EndpointRec| {
                if endpoints::wants(&e, t) {
                    wanted.push(e.endpoint_id);
                }
                Ok(Flow::Continue)
            },
        )?;
        Ok(wanted)
    })?;
    for endpoint_id in wanted {
        enqueue_one(tx, ctx.now, tenant, &endpoint_id, seq)?;
    }
    Ok(())
}

fn enqueue_one(
    tx: &mut WriteTx,
    due: Timestamp,
    tenant: &str,
    endpoint: &str,
    seq: u64,
) -> Result<()> {
    let id = tx.next_seq("webhook_deliveries")?;
    let rec = OutboxRec {
        tenant_id: tenant.to_owned(),
        endpoint_id: endpoint.to_owned(),
        event_seq: seq,
        attempts: 0,
    };
    put_due(tx, due, id, &rec)
}

/// What [`claim`] asks for.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The most deliveries taken.
    pub max: usize,
    /// How long they are leased (they come due again after it).
    pub lease_micros: i64,
}

/// A delivery a worker has leased: everything it needs to send it.
#[derive(Debug, Clone)]
pub struct Due {
    /// The delivery number (with `leased_until`, where its row is now).
    pub delivery: u64,
    /// The end of the lease.
    pub leased_until: Timestamp,
    /// The tenant.
    pub tenant_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// The secrets to sign with: the current one, and a rotated one still in its 24 h.
    pub secrets: Vec<String>,
    /// The event id (`webhook-id`).
    pub event_id: String,
    /// The body: the event as JSON.
    pub body: String,
    /// This is attempt number `attempt + 1`.
    pub attempt: u32,
}

/// Leases up to `c.max` due deliveries (a write: on several servers over one database, two
/// workers never take the same row). Rows whose endpoint or event is gone, or whose endpoint
/// is disabled, are dropped.
pub fn claim(tx: &mut WriteTx, ctx: &Ctx, c: Claim) -> Result<Vec<Due>> {
    let mut rows: Vec<(OutboxKey<'static>, OutboxRec)> = Vec::new();
    let until = OUTBOX.prefix().ts(Timestamp(ctx.now.0 + 1));
    tx.scan_range(
        &OUTBOX,
        &OUTBOX.prefix(),
        None,
        Some(&until),
        Order::Asc,
        &mut |k, r| {
            if let Some(k) = OutboxKey::decode(k) {
                rows.push((k.into_owned(), r));
            }
            Ok(if rows.len() >= c.max {
                Flow::Stop
            } else {
                Flow::Continue
            })
        },
    )?;
    let leased_until = Timestamp(ctx.now.0 + c.lease_micros);
    let mut out = Vec::with_capacity(rows.len());
    for (k, r) in rows {
        tx.delete(&OUTBOX, &k)?;
        let endpoint = tx.get(&ENDPOINTS, &endpoint_key(tx, &r.tenant_id, &r.endpoint_id))?;
        let event = tx.get(&EVENTS, &EventKey::new(&r.tenant_id, r.event_seq))?;
        let (Some(e), Some(ev)) = (endpoint, event) else {
            continue;
        };
        if !e.enabled && ev.event_type != catalog::WEBHOOK_TEST.name {
            continue;
        }
        put_due(tx, leased_until, k.delivery, &r)?;
        let mut secrets = vec![e.secret.clone()];
        if let (Some(old), Some(t)) = (&e.old_secret, e.old_secret_until)
            && t > ctx.now
        {
            secrets.push(old.clone());
        }
        out.push(Due {
            delivery: k.delivery,
            leased_until,
            tenant_id: r.tenant_id.clone(),
            endpoint_id: r.endpoint_id.clone(),
            url: e.url,
            secrets,
            event_id: events::event_id(r.event_seq),
            body: events::stored_view(&r.tenant_id, r.event_seq, ev).to_json(),
            attempt: r.attempts,
        });
    }
    Ok(out)
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The delivery as claimed.
    pub due: Due,
    /// The receiver's status code, if it answered.
    pub response_code: Option<u16>,
    /// Why there was no answer (refused address, timeout, connection error).
    pub error: Option<String>,
    /// Milliseconds from connecting to the answer.
    pub latency_ms: u64,
    /// The start of the answer's body (cut to [`BODY_KEPT`] bytes).
    pub response_body: String,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.error.is_none() && self.response_code.is_some_and(|c| (200..300).contains(&c))
    }
}

fn jittered(secs: i64) -> i64 {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0, |()| i64::from(u16::from_le_bytes(b)));
    // ±10%: r / 65535 spread over [-0.1, +0.1].
    let micros = secs * 1_000_000;
    micros + (micros / 5) * r / 65_535 - micros / 10
}

/// Records an attempt: the attempts list, the outbox (gone, or due again at the next retry),
/// the endpoint's failure streak (and its disabling after 5 days), and on success the metered
/// `webhook_delivered`.
pub fn record(tx: &mut WriteTx, ctx: &Ctx, o: Outcome) -> Result<()> {
    let d = &o.due;
    let t = d.tenant_id.as_str();
    let row = OutboxKey::new(d.leased_until, d.delivery, t);
    let Some(mut rec) = tx.get(&OUTBOX, &row)? else {
        // The lease ended and the row was taken again (or retried by hand): that turn owns it.
        return Ok(());
    };
    tx.delete(&OUTBOX, &row)?;
    let ok = o.delivered();
    rec.attempts += 1;
    let next = match RETRY_SCHEDULE_SECS.get(rec.attempts as usize - 1) {
        Some(secs) if !ok => Some(Timestamp(ctx.now.0 + jittered(*secs))),
        _ => None,
    };
    let status = match (ok, next) {
        (true, _) => "delivered",
        (false, Some(_)) => "retrying",
        (false, None) => "failed",
    };
    let mut body = o.response_body.clone();
    if body.len() > BODY_KEPT {
        let mut cut = BODY_KEPT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    let attempt = AttemptRec {
        event_seq: rec.event_seq,
        attempt: rec.attempts,
        status: status.into(),
        response_code: o.response_code,
        latency_ms: o.latency_ms,
        response_body: body,
        error: o.error.clone(),
        next_retry: next,
        attempted_at: ctx.now,
    };
    let seq = tx.next_seq("webhook_attempts")?;
    tx.put(
        &ATTEMPTS,
        &AttemptKey::new(t, &d.endpoint_id, seq),
        &attempt,
    )?;
    forget_old_attempts(tx, ctx, t, &d.endpoint_id)?;
    if let Some(due) = next {
        put_due(tx, due, d.delivery, &rec)?;
    }
    let key = endpoint_key(tx, t, &d.endpoint_id).into_owned();
    let Some(mut e) = tx.get(&ENDPOINTS, &key)? else {
        return Ok(());
    };
    if ok {
        if e.failing_since.take().is_some() {
            tx.put(&ENDPOINTS, &key, &e)?;
        }
        let who = (t, e.created_by.as_str(), events::Actor::Platform(t));
        return crate::metering::record_after_the_fact(tx, ctx, who, "webhook_delivered", 1);
    }
    let since = *e.failing_since.get_or_insert(ctx.now);
    if e.enabled && ctx.now.0 - since.0 >= DISABLE_AFTER_MICROS {
        e.enabled = false;
        e.disabled_reason = Some("every delivery failed for 5 days".into());
        e.updated_at = ctx.now;
        tx.put(&ENDPOINTS, &key, &e)?;
        return endpoints::disabled_event(tx, ctx, t, &e);
    }
    tx.put(&ENDPOINTS, &key, &e)
}

/// Deletes the endpoint's attempts older than the event retention, at most two per call: each
/// recorded attempt pays for the ones that aged out, so the list stays bounded by the
/// retention without a sweep.
fn forget_old_attempts(tx: &mut WriteTx, ctx: &Ctx, tenant: &str, endpoint: &str) -> Result<()> {
    let cutoff = Timestamp(ctx.now.0.saturating_sub(ctx.options.event_retention_micros));
    let mut old: Vec<Vec<u8>> = Vec::new();
    let prefix = ATTEMPTS.prefix().tenant(tenant).ext_id(endpoint);
    tx.scan(&ATTEMPTS, &prefix, Order::Asc, |k, a: AttemptRec| {
        if old.len() >= 2 || a.attempted_at >= cutoff {
            return Ok(Flow::Stop);
        }
        old.push(k.to_vec());
        Ok(Flow::Continue)
    })?;
    for k in old {
        tx.delete_stored(&ATTEMPTS, &k)?;
    }
    Ok(())
}

/// Deletes every attempt of the endpoint (it is being deleted).
pub(crate) fn forget_attempts(tx: &mut WriteTx, tenant: &str, endpoint: &str) -> Result<()> {
    let prefix = ATTEMPTS.prefix().tenant(tenant).ext_id(endpoint);
    tx.delete_prefix(&ATTEMPTS, &prefix).map(|_| ())
}

/// An attempt as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// The event delivered (`webhook-id`).
    pub event_id: String,
    /// 1 for the first attempt of a delivery.
    pub attempt: u32,
    /// `delivered`, `retrying` or `failed`.
    pub status: String,
    /// The receiver's status code, if it answered.
    pub response_code: Option<u16>,
    /// Milliseconds to the answer.
    pub latency_ms: u64,
    /// The first 1 KiB of the answer's body.
    pub response_body: String,
    /// Why there was no answer.
    pub error: Option<String>,
    /// When the next attempt is due, for `retrying`.
    pub next_retry: Option<String>,
    /// When this attempt was made.
    pub attempted_at: String,
}

/// The newest attempts first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptList {
    /// At most 100 attempts, newest first.
    pub items: Vec<Attempt>,
}

/// Queues event `event_id` again for endpoint `id` (tenant admin), due now.
pub fn retry(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    id: &str,
    event_id: String,
) -> Result<()> {
    caller.require_admin_to("manage webhooks")?;
    let t = caller.tenant_id();
    let e = endpoints::load(tx, t, id)?;
    let seq = events::parse_id(&event_id)
        .filter(|s| tx.contains(&EVENTS, &EventKey::new(t, *s)).unwrap_or(false));
    let seq = seq.ok_or_else(|| Error::NotFound(format!("Event '{event_id}' not found")))?;
    enqueue_one(tx, ctx.now, t, &e.endpoint_id, seq)
}

/// Sends a `webhook.test` event to endpoint `id` alone (tenant admin); its id.
pub fn test(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, id: &str) -> Result<String> {
    caller.require_admin_to("manage webhooks")?;
    let t = caller.tenant_id();
    let e = endpoints::load(tx, t, id)?;
    let data = serde_json::json!({"endpoint_id": e.endpoint_id, "message": "a test delivery"});
    let seq = events::emit(
        tx,
        ctx,
        caller,
        catalog::WEBHOOK_TEST,
        &e.endpoint_id,
        &data,
    )?;
    enqueue_one(tx, ctx.now, t, &e.endpoint_id, seq)?;
    Ok(events::event_id(seq))
}

/// Invariants: every outbox row names an existing tenant and a delivery counted once;
/// attempts are numbered from 1.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for x in c.rows(r, &OUTBOX)? {
        if x.key.for_tenant != x.value.tenant_id || !seen.insert(x.key.delivery) {
            c.violation(
                OUTBOX.name(),
                &x.bytes,
                "outbox row repeated or of another tenant",
            );
        } else {
            c.ok();
        }
    }
    for x in c.rows(r, &ATTEMPTS)? {
        let endpoint = endpoint_key(r, &x.tenant, &x.key.endpoint_id);
        if x.value.attempt == 0 {
            c.violation(ATTEMPTS.name(), &x.bytes, "attempt numbered 0");
        } else if !r.contains(&ENDPOINTS, &endpoint)? {
            c.violation(ATTEMPTS.name(), &x.bytes, "attempt of a missing endpoint");
        } else {
            c.ok();
        }
    }
    Ok(())
}

impl Bespin {
    /// Whether any delivery is due now (a read: the worker asks before it claims, so an idle
    /// server never takes the writer for nothing).
    pub fn webhooks_due(&self) -> Result<bool> {
        self.read(|r, ctx| {
            let mut due = false;
            r.scan(&OUTBOX, &OUTBOX.prefix(), Order::Asc, |k, _: OutboxRec| {
                due = OutboxKey::decode(k).is_some_and(|k| k.due <= ctx.now);
                Ok(Flow::Stop)
            })?;
            Ok(due)
        })
    }

    /// The endpoint's newest attempts (tenant admin).
    pub fn webhook_attempts(&self, caller: &Principal, id: &str) -> Result<AttemptList> {
        caller.require_admin_to("manage webhooks")?;
        self.read(|r, _| {
            let t = caller.tenant_id();
            let e = endpoints::load(r, t, id)?;
            let mut items = Vec::new();
            let prefix = ATTEMPTS.prefix().tenant(t).ext_id(&e.endpoint_id);
            r.scan(&ATTEMPTS, &prefix, Order::Desc, |_, a: AttemptRec| {
                items.push(Attempt {
                    event_id: events::event_id(a.event_seq),
                    attempt: a.attempt,
                    status: a.status,
                    response_code: a.response_code,
                    latency_ms: a.latency_ms,
                    response_body: a.response_body,
                    error: a.error,
                    next_retry: a.next_retry.map(Timestamp::to_rfc3339),
                    attempted_at: a.attempted_at.to_rfc3339(),
                });
                Ok(if items.len() >= 100 {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })?;
            Ok(AttemptList { items })
        })
    }
}
