//! The deterministic cofounder chat (20 §6.4–6.5).
//!
//! One chat request is one transaction: the checks in the contract's order (20 §6.4: role,
//! `chat` capability, credits, the daily limit, then the conversation lookup), the
//! conversation (created when none is given), both messages, the audit row, the usage event
//! and the daily counter. A failed request leaves nothing behind, so a 404 for an unknown
//! conversation costs nothing, though a tenant out of quota gets its 429 first.

pub mod intent;

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::limits::Activity;
use crate::metering::Meter;
use crate::notifications::{self, OutboxQuery};
use crate::store::{Reader, WriteTx};
use crate::time::Date;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, audit, briefs, conversations, ids, kpis};
use intent::Intent;
use serde::Serialize;
use serde_json::{Value, json};

/// The help text (exact, contract wording).
pub const HELP: &str = "Available commands:\n- 'today's brief' or 'brief' - Get your latest daily brief\n- 'kpis' - List all KPIs with latest values\n- 'kpi:<name>' - Get detailed summary for a specific KPI\n- 'outbox' or 'notifications' - View queued notifications\n- 'help' - Show this help message";

/// The fallback reply.
pub const FALLBACK: &str = "Try: 'today's brief', 'kpis', 'outbox', or 'help'";

/// Input of [`Bespin::chat`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatRequest {
    /// 1–4000 characters.
    pub message: String,
    /// An existing conversation of the caller; a new one is started when `None`.
    pub conversation_id: Option<String>,
    /// For the brief intent: the brief of exactly this date (else the newest brief).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub date: Option<Date>,
}

impl ChatRequest {
    /// Validates `{"message", "conversation_id"?, "date"?}`. An empty `conversation_id` or
    /// `date` counts as absent; a non-empty `date` must be a real `YYYY-MM-DD` date.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let message = f.req_string("message", Len::between(1, 4000));
        let conversation_id = f.string("conversation_id", Presence::Optional, Len::ANY);
        let date = f.date_or_blank("date");
        f.finish()?;
        Ok(ChatRequest {
            message: got(message)?,
            conversation_id: got(conversation_id)?.filter(|c| !c.is_empty()),
            date: got(date)?,
        })
    }
}

/// The assistant's message in a chat reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssistantMessage {
    /// The stored message's id.
    pub message_id: String,
    /// The reply text.
    pub content: String,
    /// Structured cards.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub cards: Value,
}

/// `POST /v1/cofounder/chat`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatReply {
    /// This exchange's request id (also on its audit row and usage event).
    pub request_id: String,
    /// The conversation (new or given).
    pub conversation_id: String,
    /// The reply.
    pub assistant_message: AssistantMessage,
}

/// Runs one chat exchange for `caller` (see the module docs). Errors: `Forbidden`, the
/// entitlement errors, `QuotaExceeded`, `DailyQuotaExceeded`, `NotFound` (`Conversation not
/// found`).
pub fn chat(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: ChatRequest,
) -> Result<ChatReply> {
    caller.require(Permission::UseChat, "use chat")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "chat")?;
    let permit = Meter::one("assistant_query", "chat")
        .with_daily(Activity::AssistantQuery)
        .check(tx, ctx, tenant)?;
    if let Some(id) = &req.conversation_id
        && !conversations::owned(tx, caller, id)?
    {
        return Err(Error::NotFound("Conversation not found".into()));
    }
    let conversation_id = match req.conversation_id {
        Some(id) => id,
        None => {
            let title: String = req.message.chars().take(40).collect();
            conversations::create(tx, ctx, caller, Some(title))?.conversation_id
        }
    };
    let (content, cards) = respond(tx, caller, &intent::recognize(&req.message), req.date)?;
    conversations::append(
        tx,
        ctx,
        caller,
        &conversation_id,
        "user",
        &req.message,
        &json!([]),
    )?;
    let message_id = conversations::append(
        tx,
        ctx,
        caller,
        &conversation_id,
        "assistant",
        &content,
        &cards,
    )?;
    let request_id = ids::new_id();
    let entry = audit::Entry::new(caller.user_id(), "cofounder.chat", &request_id)
        .tool(Some("chat"))
        .capability("chat")
        .target("conversation", &conversation_id)
        .units(permit.units());
    audit::append(tx, ctx, tenant, entry)?;
    permit.record(tx, ctx, caller, &request_id)?;
    Ok(ChatReply {
        request_id,
        conversation_id,
        assistant_message: AssistantMessage {
            message_id,
            content,
            cards,
        },
    })
}

/// The reply text and cards for an intent. Reads only.
fn respond(
    r: &impl Reader,
    caller: &Principal,
    intent: &Intent,
    date: Option<Date>,
) -> Result<(String, Value)> {
    let tenant = caller.tenant_id();
    Ok(match intent {
        Intent::Help => (HELP.to_owned(), json!([])),
        Intent::Fallback => (FALLBACK.to_owned(), json!([])),
        Intent::Brief => {
            let brief = match date {
                Some(d) => briefs::get(r, tenant, d)?,
                None => briefs::latest(r, tenant)?,
            };
            match brief {
                None => (
                    "No brief found. To generate a brief, an admin should run:\nPOST /v1/jobs/daily-brief or POST /v1/briefs/materialize".to_owned(),
                    json!([]),
                ),
                Some(b) => (
                    format!("Here's your brief for {}:", b.content.date),
                    json!([{
                        "type": "brief",
                        "date": b.content.date,
                        "brief_id": b.brief_id,
                        "summary": b.content.summary,
                        "highlights": b.content.highlights,
                    }]),
                ),
            }
        }
        Intent::Outbox => {
            let items = notifications::outbox(
                r,
                caller,
                &OutboxQuery {
                    limit: Some(10),
                    ..Default::default()
                },
            )?;
            if items.is_empty() {
                ("No notifications in your outbox.".to_owned(), json!([]))
            } else {
                let cards: Vec<Value> = items
                    .iter()
                    .map(|n| {
                        let title = n.payload.get("title").cloned().unwrap_or_else(|| json!(n.notification_type));
                        json!({"type": "notification", "id": n.id, "date": n.date, "title": title, "status": n.status})
                    })
                    .collect();
                (
                    format!("Found {} notification(s) in your outbox:", cards.len()),
                    Value::Array(cards),
                )
            }
        }
        Intent::KpiDetail(name) => {
            let found = kpis::by_name(r, tenant)?
                .into_iter()
                .find(|(_, k)| k.name.to_lowercase() == *name);
            match found {
                None => (format!("KPI '{name}' not found."), json!([])),
                Some((kpi_id, k)) => match kpis::window(r, tenant, &kpi_id, None, 7)? {
                    None => (
                        format!("No data points found for KPI '{kpi_id}'"),
                        json!([]),
                    ),
                    Some(w) => (
                        format!("Summary for KPI '{}':", k.name),
                        json!([{
                            "type": "kpi_summary",
                            "kpi_id": kpi_id,
                            "name": k.name,
                            "unit": k.unit,
                            "latest": w.latest.view(),
                            "start": w.start.view(),
                            "delta_abs": w.delta_abs,
                            "delta_pct": w.delta_pct,
                        }]),
                    ),
                },
            }
        }
        Intent::KpiList => {
            let all = kpis::by_name(r, tenant)?;
            if all.is_empty() {
                ("No KPIs defined for your tenant.".to_owned(), json!([]))
            } else {
                let mut cards = Vec::with_capacity(all.len());
                for (kpi_id, k) in &all {
                    let latest = kpis::latest_at(r, tenant, kpi_id, None)?.map(|p| p.view());
                    cards.push(json!({"type": "kpi", "kpi_id": kpi_id, "name": k.name, "unit": k.unit, "latest": latest}));
                }
                (
                    format!("Found {} KPI(s):", cards.len()),
                    Value::Array(cards),
                )
            }
        }
    })
}

impl Bespin {
    /// One cofounder-chat exchange, in one transaction (see [`chat`]).
    pub fn chat(&self, caller: &Principal, req: ChatRequest) -> Result<ChatReply> {
        self.write_as(caller, |tx, ctx| chat(tx, ctx, caller, req))
    }
}
