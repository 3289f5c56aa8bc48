//! Every table of Bespin, in one place.
//!
//! Keys are built with [`Key`](super::Key). Tenant-scoped tables start every key with the tenant
//! id, so a tenant's rows are one prefix range and a lookup cannot reach another tenant's rows.
//! The few global tables (catalogue, user → tenant index, sequences) say so.

use super::Table;
use crate::audit::AuditRec;
use crate::billing::catalog::{CapRec, MeteredEventRec, PlanRec};
use crate::billing::subscriptions::SubscriptionRec;
use crate::briefs::BriefRec;
use crate::conversations::{ConversationRec, MessageRec};
use crate::coreos::actions::{ActionRec, ExecutionRec, ReviewRec};
use crate::coreos::decisions::DecisionRec;
use crate::coreos::evidence::EvidenceRec;
use crate::coreos::meetings::MeetingRec;
use crate::coreos::memory::FactRec;
use crate::coreos::search::LegacyDoc;
use crate::coreos::tasks::TaskRec;
use crate::coreos::timeline::{EventPos, EventRec};
use crate::idempotency::IdemRec;
use crate::kpis::series::ChunkRec;
use crate::kpis::{KpiRec, PointRec};
use crate::limits::LimitsRec;
use crate::metering::{RollupRec, UsageEventRec};
use crate::notifications::{NotificationRec, PrefRec};
use crate::tenancy::{TenantRec, UserRec};
use crate::time::Timestamp;

/// (tenant) → tenant.
pub(crate) const TENANTS: Table<TenantRec> = Table::new("tenants");
/// (tenant, user) → user.
pub(crate) const USERS: Table<UserRec> = Table::new("users");
/// Global: (user) → tenant id. Lets authentication tell a missing user from another tenant's.
pub(crate) const USER_TENANT: Table<String> = Table::new("user_tenant");
/// (tenant, creation sequence) → user id: users in creation order.
pub(crate) const USERS_BY_CREATION: Table<String> = Table::new("users_by_creation");
/// (tenant) → daily limits.
pub(crate) const LIMITS: Table<LimitsRec> = Table::new("limits");
/// (tenant, date, activity) → units used that UTC day.
pub(crate) const DAILY_ROLLUPS: Table<i64> = Table::new("daily_rollups");
/// Global: (event key) → metered event type.
pub(crate) const METERED_EVENTS: Table<MeteredEventRec> = Table::new("metered_events");
/// Global: (plan) → plan.
pub(crate) const PLANS: Table<PlanRec> = Table::new("plans");
/// Global: (plan) → requests per minute: the plan's per-tenant request rate limit, if any.
/// (A table of its own so that stored plan records keep their layout.)
pub(crate) const PLAN_RATE_LIMITS: Table<u64> = Table::new("plan_rate_limits");
/// Global: (plan, capability) → grant.
pub(crate) const PLAN_CAPABILITIES: Table<()> = Table::new("plan_capabilities");
/// Global: (plan, event key, period) → cap.
pub(crate) const PLAN_CAPS: Table<CapRec> = Table::new("plan_caps");
/// (tenant) → subscription.
pub(crate) const SUBSCRIPTIONS: Table<SubscriptionRec> = Table::new("subscriptions");
/// (tenant, emitted at, sequence) → usage event.
pub(crate) const USAGE_EVENTS: Table<UsageEventRec> = Table::new("usage_events");
/// (tenant, period start, event key) → period rollup.
pub(crate) const PERIOD_ROLLUPS: Table<RollupRec> = Table::new("period_rollups");
/// (tenant, UTC date, event key) → the same sums for one day: what a chart of usage per day
/// reads (≤ 31 × event keys rows a month) instead of the month's usage events.
pub(crate) const DAY_ROLLUPS: Table<RollupRec> = Table::new("day_rollups");
/// (tenant, written at, sequence) → audit row.
pub(crate) const AUDIT: Table<AuditRec> = Table::new("audit");
/// (tenant, endpoint, key) → idempotency record.
pub(crate) const IDEMPOTENCY: Table<IdemRec> = Table::new("idempotency");
/// Global: (written at, tenant, endpoint, key) → (): idempotency records by age, for purging.
pub(crate) const IDEMPOTENCY_BY_AGE: Table<()> = Table::new("idempotency_by_age");
/// (tenant, user) → notification preference.
pub(crate) const NOTIFICATION_PREFS: Table<PrefRec> = Table::new("notification_prefs");
/// (tenant, recipient, id) → notification; ids come from one database-wide sequence.
pub(crate) const NOTIFICATIONS: Table<NotificationRec> = Table::new("notifications");
/// (tenant, recipient, type, date) → notification id: one notification per user, type and date.
pub(crate) const NOTIFICATION_UNIQUE: Table<u64> = Table::new("notification_unique");
/// (tenant, owner, conversation) → conversation.
pub(crate) const CONVERSATIONS: Table<ConversationRec> = Table::new("conversations");
/// (tenant, owner, created at, sequence) → conversation id: newest-first listing.
pub(crate) const CONVERSATIONS_BY_TIME: Table<String> = Table::new("conversations_by_time");
/// (tenant, conversation sequence, message sequence) → message, in insertion order. Keyed by
/// the conversation's sequence number rather than its (random) id, so new messages append.
pub(crate) const MESSAGES: Table<MessageRec> = Table::new("messages");
/// (tenant, kpi) → KPI definition.
pub(crate) const KPIS: Table<KpiRec> = Table::new("kpis");
/// (tenant, created at, sequence) → kpi id: definitions in creation order.
pub(crate) const KPIS_BY_CREATION: Table<String> = Table::new("kpis_by_creation");
/// (tenant, name, sequence) → kpi id: definitions by name (byte order), then creation order.
pub(crate) const KPIS_BY_NAME: Table<String> = Table::new("kpis_by_name");
/// (tenant, kpi, instant of the chunk's first point) → up to 128 consecutive points of the
/// KPI's series, sorted by instant, no instant twice (`kpis::series`). Chunks of one series
/// do not overlap, so the series is one time-ordered range of rows, and the chunk holding an
/// instant is the last one whose key is at or before it.
pub(crate) const KPI_CHUNKS: Table<ChunkRec> = Table::new("kpi_chunks");
/// Legacy: (tenant, kpi, instant) → point, one row per point. Written by databases before
/// layout 4; moved into [`KPI_CHUNKS`] and emptied when such a database is opened.
pub(crate) const KPI_POINTS: Table<PointRec> = Table::new("kpi_points");
/// (tenant, brief date) → brief: one per tenant and date; dates sort chronologically.
pub(crate) const BRIEFS: Table<BriefRec> = Table::new("briefs");
/// Global: (name) → last value of a sequence.
pub(crate) const SEQUENCES: Table<u64> = Table::new("sequences");
/// Global: (name) → a secret of the file: `ids`, the key of [`crate::ids::Sealer`]. Never
/// shown (not in the console's allow-list).
pub(crate) const SECRETS: Table<crate::ids::IdSecret> = Table::new("secrets");
/// Global: (name) → a property of the file; `layout` is the version of the key layouts
/// ([`crate::layout`]).
pub(crate) const META: Table<u64> = Table::new("meta");

// ---- Core Business OS (coreos) ----
/// (tenant, action) → action.
pub(crate) const CO_ACTIONS: Table<ActionRec> = Table::new("co_actions");
/// (tenant, created at, action) → action id: actions in creation order.
pub(crate) const CO_ACTIONS_BY_TIME: Table<String> = Table::new("co_actions_by_time");
/// (tenant, action) → its one review.
pub(crate) const CO_ACTION_REVIEWS: Table<ReviewRec> = Table::new("co_action_reviews");
/// (tenant, action) → its one execution.
pub(crate) const CO_ACTION_EXECUTIONS: Table<ExecutionRec> = Table::new("co_action_executions");
/// (tenant, task) → task.
pub(crate) const CO_TASKS: Table<TaskRec> = Table::new("co_tasks");
/// (tenant, 0 dated / 1 undated, due date, −created at, task) → task id: the list order.
pub(crate) const CO_TASKS_BY_DUE: Table<String> = Table::new("co_tasks_by_due");
/// (tenant, decision) → decision.
pub(crate) const CO_DECISIONS: Table<DecisionRec> = Table::new("co_decisions");
/// (tenant, decision date, created at, decision) → decision id.
pub(crate) const CO_DECISIONS_BY_DATE: Table<String> = Table::new("co_decisions_by_date");
/// (tenant, meeting) → meeting note.
pub(crate) const CO_MEETINGS: Table<MeetingRec> = Table::new("co_meetings");
/// (tenant, meeting date, created at, meeting) → meeting id.
pub(crate) const CO_MEETINGS_BY_DATE: Table<String> = Table::new("co_meetings_by_date");
/// (tenant, fact) → memory fact.
pub(crate) const CO_FACTS: Table<FactRec> = Table::new("co_facts");
/// (tenant, category, fact key, created at, fact) → fact id: the list order.
pub(crate) const CO_FACTS_BY_KEY: Table<String> = Table::new("co_facts_by_key");
/// (tenant, fact key) → id of the one active fact with that key.
pub(crate) const CO_ACTIVE_FACTS: Table<String> = Table::new("co_active_facts");
/// (tenant, entity type, entity id, created at, evidence) → evidence link.
pub(crate) const CO_EVIDENCE: Table<EvidenceRec> = Table::new("co_evidence");
/// (tenant, instant, sequence) → timeline event.
pub(crate) const CO_TIMELINE: Table<EventRec> = Table::new("co_timeline");
/// (tenant, entity type, instant, sequence) → event position.
pub(crate) const CO_TIMELINE_BY_TYPE: Table<EventPos> = Table::new("co_timeline_by_type");
/// (tenant, entity type, entity created_at, entity id, instant, sequence) → event position. The
/// record's creation instant comes before its (random) id so the events of new records append.
pub(crate) const CO_TIMELINE_BY_ENTITY: Table<EventPos> = Table::new("co_timeline_by_entity");
/// (tenant, event id) → event position (the `before` cursor).
pub(crate) const CO_TIMELINE_IDS: Table<EventPos> = Table::new("co_timeline_ids");
/// (tenant, token, entity type, created_at, entity id) → field mask (1 title, 2 body): the
/// search index.
pub(crate) const CO_SEARCH: Table<u8> = Table::new("co_search");
/// (tenant, entity type, created_at, entity id) → `updated_at` of every indexed record: what
/// a search ranks by, read without decoding the record.
pub(crate) const CO_SEARCH_RANK: Table<Timestamp> = Table::new("co_search_rank");
/// Legacy: (tenant, entity type, entity id) → the tokens indexed for the record. Written by
/// databases before the current search layout; emptied when such a database is opened.
pub(crate) const CO_SEARCH_DOCS: Table<LegacyDoc> = Table::new("co_search_docs");

/// Names of every table, created when the database opens.
pub(crate) const ALL: &[&str] = &[
    TENANTS.name(),
    USERS.name(),
    USER_TENANT.name(),
    USERS_BY_CREATION.name(),
    LIMITS.name(),
    DAILY_ROLLUPS.name(),
    METERED_EVENTS.name(),
    PLANS.name(),
    PLAN_RATE_LIMITS.name(),
    PLAN_CAPABILITIES.name(),
    PLAN_CAPS.name(),
    SUBSCRIPTIONS.name(),
    USAGE_EVENTS.name(),
    PERIOD_ROLLUPS.name(),
    DAY_ROLLUPS.name(),
    AUDIT.name(),
    IDEMPOTENCY.name(),
    IDEMPOTENCY_BY_AGE.name(),
    KPIS.name(),
    KPIS_BY_CREATION.name(),
    KPIS_BY_NAME.name(),
    KPI_CHUNKS.name(),
    KPI_POINTS.name(),
    BRIEFS.name(),
    SEQUENCES.name(),
    META.name(),
    SECRETS.name(),
    NOTIFICATION_PREFS.name(),
    NOTIFICATIONS.name(),
    NOTIFICATION_UNIQUE.name(),
    CONVERSATIONS.name(),
    CONVERSATIONS_BY_TIME.name(),
    MESSAGES.name(),
    CO_ACTIONS.name(),
    CO_ACTIONS_BY_TIME.name(),
    CO_ACTION_REVIEWS.name(),
    CO_ACTION_EXECUTIONS.name(),
    CO_TASKS.name(),
    CO_TASKS_BY_DUE.name(),
    CO_DECISIONS.name(),
    CO_DECISIONS_BY_DATE.name(),
    CO_MEETINGS.name(),
    CO_MEETINGS_BY_DATE.name(),
    CO_FACTS.name(),
    CO_FACTS_BY_KEY.name(),
    CO_ACTIVE_FACTS.name(),
    CO_EVIDENCE.name(),
    CO_TIMELINE.name(),
    CO_TIMELINE_BY_TYPE.name(),
    CO_TIMELINE_BY_ENTITY.name(),
    CO_TIMELINE_IDS.name(),
    CO_SEARCH.name(),
    CO_SEARCH_RANK.name(),
    CO_SEARCH_DOCS.name(),
];
