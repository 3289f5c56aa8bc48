//! In-app notifications: per-user preferences, the outbox and acknowledgement (20 §4).
//!
//! Notification ids are integers from one database-wide sequence, so they are unique across all
//! tenants and increase in insertion order. A user has at most one notification per
//! (type, date); the daily-brief runner relies on that to skip users already notified.

use crate::auth::Principal;
use crate::check::{Checker, Expected};
use crate::error::{Error, FieldError, LocPart, Result};
use crate::events::{self, catalog};
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::{Date, Timestamp};
use crate::validate::{Fields, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only notification type today.
pub const DAILY_BRIEF: &str = "daily_brief";

/// A stored preference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PrefRec {
    pub daily_brief_enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for PrefRec {}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NotificationRec {
    pub notification_type: String,
    pub date: Date,
    pub status: String,
    /// The payload as JSON text (the record codec does not carry free-form JSON).
    pub payload: String,
    pub request_id: String,
    pub created_at: Timestamp,
}
impl Record for NotificationRec {}

key! {
    /// (tenant, user).
    pub(crate) struct PrefKey<'a> { tenant_id: tenant, user_id: ext_id }
    /// (tenant, recipient, id).
    pub(crate) struct NotificationKey<'a> { tenant_id: tenant, user_id: ext_id, id: u64 }
    /// (tenant, recipient, type, date).
    pub(crate) struct UniqueKey<'a> {
        tenant_id: tenant,
        user_id: ext_id,
        notification_type: str,
        date: date,
    }
}

/// (tenant, user) → notification preference.
pub(crate) const NOTIFICATION_PREFS: Table<PrefKey<'static>, PrefRec> =
    Table::new("notification_prefs");
/// (tenant, recipient, id) → notification; ids come from one database-wide sequence.
pub(crate) const NOTIFICATIONS: Table<NotificationKey<'static>, NotificationRec> =
    Table::new("notifications");
/// (tenant, recipient, type, date) → notification id: one notification per user, type and date.
pub(crate) const NOTIFICATION_UNIQUE: Table<UniqueKey<'static>, u64> =
    Table::new("notification_unique");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] =
    &[&NOTIFICATION_PREFS, &NOTIFICATIONS, &NOTIFICATION_UNIQUE];

/// A user's notification preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prefs {
    /// Whether the user receives the daily brief.
    pub daily_brief_enabled: bool,
    /// Always `in_app`.
    pub delivery_method: &'static str,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            daily_brief_enabled: true,
            delivery_method: "in_app",
        }
    }
}

/// Input of [`Bespin::set_notification_prefs`]: omitted fields take their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrefsUpdate {
    /// Default `true`.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub daily_brief_enabled: bool,
}

impl PrefsUpdate {
    /// Validates `{"daily_brief_enabled"?: bool, "delivery_method"?: "in_app"}`.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let enabled = f.boolean("daily_brief_enabled", Presence::Optional);
        let method = f.choice(
            "delivery_method",
            Presence::Optional,
            &["in_app"],
            "^in_app$",
        );
        f.finish()?;
        got(method)?;
        Ok(PrefsUpdate {
            daily_brief_enabled: got(enabled)?.unwrap_or(true),
        })
    }
}

/// A notification as the outbox shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// Database-wide id.
    pub id: u64,
    /// `daily_brief`.
    pub notification_type: String,
    /// The date the notification is about.
    pub date: String,
    /// `queued` or `acked`.
    pub status: String,
    /// The run that enqueued it.
    pub request_id: String,
    /// The content (for `daily_brief`: title, date, summary, highlights).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
}

/// `GET /v1/notifications/outbox`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outbox {
    /// Newest first.
    pub items: Vec<Notification>,
}

/// Filters of the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxQuery {
    /// Only notifications about this date.
    pub date: Option<Date>,
    /// Only this status (any string; unknown ones match nothing).
    pub status: Option<String>,
    /// At most this many (clamped to 1..=200; default 50).
    pub limit: Option<i64>,
}

fn pref_key<'a>(tenant_id: &'a str, user_id: &'a str) -> PrefKey<'a> {
    PrefKey::new(tenant_id, user_id)
}

fn notification_key<'a>(tenant_id: &'a str, user_id: &'a str, id: u64) -> NotificationKey<'a> {
    NotificationKey::new(tenant_id, user_id, id)
}

fn unique_key<'a>(
    tenant_id: &'a str,
    user_id: &'a str,
    kind: &'a str,
    date: Date,
) -> UniqueKey<'a> {
    UniqueKey::new(tenant_id, user_id, kind, date)
}

fn view(id: u64, r: NotificationRec) -> Notification {
    Notification {
        id,
        notification_type: r.notification_type,
        date: r.date.to_string(),
        status: r.status,
        request_id: r.request_id,
        payload: serde_json::from_str(&r.payload).unwrap_or(Value::Null),
    }
}

/// The user's saved preference, if any.
pub(crate) fn saved_pref(r: &impl Reader, tenant_id: &str, user_id: &str) -> Result<Option<bool>> {
    Ok(r.get(&NOTIFICATION_PREFS, &pref_key(tenant_id, user_id))?
        .map(|p| p.daily_brief_enabled))
}

/// Whether the user already has a notification of `kind` for `date`.
pub(crate) fn already_notified(
    r: &impl Reader,
    tenant_id: &str,
    user_id: &str,
    kind: &str,
    date: Date,
) -> Result<bool> {
    r.contains(
        &NOTIFICATION_UNIQUE,
        &unique_key(tenant_id, user_id, kind, date),
    )
}

/// Enqueues a notification for `user_id` (the caller must have checked uniqueness and
/// allowance); returns its id.
pub(crate) fn enqueue(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    user_id: &str,
    date: Date,
    payload: &Value,
    request_id: &str,
) -> Result<u64> {
    let id = tx.next_seq("notifications")?;
    let rec = NotificationRec {
        notification_type: DAILY_BRIEF.into(),
        date,
        status: "queued".into(),
        payload: payload.to_string(),
        request_id: request_id.to_owned(),
        created_at: ctx.now,
    };
    tx.put(
        &NOTIFICATIONS,
        &notification_key(tenant_id, user_id, id),
        &rec,
    )?;
    tx.put(
        &NOTIFICATION_UNIQUE,
        &unique_key(tenant_id, user_id, DAILY_BRIEF, date),
        &id,
    )?;
    let v = view(id, rec);
    let actor = events::Actor::Platform(tenant_id);
    let n = catalog::NOTIFICATION_ENQUEUED;
    events::emit_for(tx, ctx, actor, n, &id.to_string(), Some(user_id), &v)?;
    Ok(id)
}

/// The caller's notifications, newest first, filtered.
pub(crate) fn outbox(
    r: &impl Reader,
    caller: &Principal,
    q: &OutboxQuery,
) -> Result<Vec<Notification>> {
    let limit = usize::try_from(q.limit.unwrap_or(50).clamp(1, 200)).unwrap_or(50);
    let mut items = Vec::new();
    let prefix = NOTIFICATIONS
        .prefix()
        .tenant(caller.tenant_id())
        .ext_id(caller.user_id());
    r.scan(
        &NOTIFICATIONS,
        &prefix,
        Order::Desc,
        |k, rec: NotificationRec| {
            let keep = q.date.is_none_or(|d| d == rec.date)
                && q.status.as_ref().is_none_or(|s| *s == rec.status);
            if keep {
                let id = NotificationKey::decode(k).map_or(0, |k| k.id);
                items.push(view(id, rec));
            }
            Ok(if items.len() >= limit {
                Flow::Stop
            } else {
                Flow::Continue
            })
        },
    )?;
    Ok(items)
}

/// Parses a notification id path segment (an integer; leading zeros allowed).
pub fn parse_id(s: &str) -> Result<u64> {
    s.trim().parse::<u64>().map_err(|_| {
        Error::field(FieldError::new(
            "int_parsing",
            vec![LocPart::from("notification_id")],
            "Input should be a valid integer, unable to parse string as an integer",
            Value::String(s.to_owned()),
        ))
    })
}

/// Saves the caller's preferences, replacing earlier ones (see
/// [`Bespin::set_notification_prefs`]).
pub fn set_prefs(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    update: PrefsUpdate,
) -> Result<Prefs> {
    let key = pref_key(caller.tenant_id(), caller.user_id());
    let created_at = tx
        .get(&NOTIFICATION_PREFS, &key)?
        .map(|p| p.created_at)
        .unwrap_or(ctx.now);
    let rec = PrefRec {
        daily_brief_enabled: update.daily_brief_enabled,
        created_at,
        updated_at: ctx.now,
    };
    tx.put(&NOTIFICATION_PREFS, &key, &rec)?;
    Ok(Prefs {
        daily_brief_enabled: update.daily_brief_enabled,
        delivery_method: "in_app",
    })
}

/// Marks one of the caller's notifications acknowledged (see [`Bespin::ack_notification`]).
pub fn ack(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, id: u64) -> Result<Notification> {
    let key = notification_key(caller.tenant_id(), caller.user_id(), id);
    let mut rec = tx
        .get(&NOTIFICATIONS, &key)?
        .ok_or_else(|| Error::NotFound(format!("Notification {id} not found")))?;
    if rec.status == "acked" {
        return Ok(view(id, rec));
    }
    rec.status = "acked".into();
    tx.put(&NOTIFICATIONS, &key, &rec)?;
    let v = view(id, rec);
    let (me, n) = (Some(caller.user_id()), catalog::NOTIFICATION_ACKED);
    events::emit_for(tx, ctx, caller.into(), n, &id.to_string(), me, &v)?;
    Ok(v)
}

/// Checks that every notification has its (user, type, date) entry and no entry stands for
/// a notification that is not there.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let mut expected = Expected::new();
    for x in c.rows(r, &NOTIFICATIONS)? {
        let (k, n) = (&x.key, &x.value);
        let unique = unique_key(&k.tenant_id, &k.user_id, &n.notification_type, n.date);
        expected.add(&unique, &k.id);
    }
    c.index(r, &NOTIFICATION_UNIQUE, expected, "notification")
}

impl Bespin {
    /// The caller's preferences (defaults when never saved).
    pub fn notification_prefs(&self, caller: &Principal) -> Result<Prefs> {
        self.read(|r, _| {
            Ok(Prefs {
                daily_brief_enabled: saved_pref(r, caller.tenant_id(), caller.user_id())?
                    .unwrap_or(true),
                delivery_method: "in_app",
            })
        })
    }

    /// Saves the caller's preferences, replacing earlier ones.
    pub fn set_notification_prefs(&self, caller: &Principal, update: PrefsUpdate) -> Result<Prefs> {
        self.write_as(caller, |tx, ctx| set_prefs(tx, ctx, caller, update))
    }

    /// The caller's own notifications, newest first.
    pub fn outbox(&self, caller: &Principal, q: &OutboxQuery) -> Result<Outbox> {
        self.read(|r, _| {
            Ok(Outbox {
                items: outbox(r, caller, q)?,
            })
        })
    }

    /// Marks one of the caller's notifications acknowledged (repeating is harmless).
    /// Errors: `NotFound` for a missing id or another user's or tenant's notification.
    pub fn ack_notification(&self, caller: &Principal, id: u64) -> Result<Notification> {
        self.write_as(caller, |tx, ctx| ack(tx, ctx, caller, id))
    }
}
