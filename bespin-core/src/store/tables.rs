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
use crate::idempotency::IdemRec;
use crate::kpis::{KpiRec, PointRec};
use crate::limits::LimitsRec;
use crate::metering::{RollupRec, UsageEventRec};
use crate::notifications::{NotificationRec, PrefRec};
use crate::tenancy::{TenantRec, UserRec};

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
/// (tenant, conversation, sequence) → message, in insertion order.
pub(crate) const MESSAGES: Table<MessageRec> = Table::new("messages");
/// (tenant, kpi) → KPI definition.
pub(crate) const KPIS: Table<KpiRec> = Table::new("kpis");
/// (tenant, created at, sequence) → kpi id: definitions in creation order.
pub(crate) const KPIS_BY_CREATION: Table<String> = Table::new("kpis_by_creation");
/// (tenant, name, sequence) → kpi id: definitions by name (byte order), then creation order.
pub(crate) const KPIS_BY_NAME: Table<String> = Table::new("kpis_by_name");
/// (tenant, kpi, instant) → point: a KPI's series is one time-ordered range.
pub(crate) const KPI_POINTS: Table<PointRec> = Table::new("kpi_points");
/// (tenant, brief date) → brief: one per tenant and date; dates sort chronologically.
pub(crate) const BRIEFS: Table<BriefRec> = Table::new("briefs");
/// Global: (name) → last value of a sequence.
pub(crate) const SEQUENCES: Table<u64> = Table::new("sequences");

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
    PLAN_CAPABILITIES.name(),
    PLAN_CAPS.name(),
    SUBSCRIPTIONS.name(),
    USAGE_EVENTS.name(),
    PERIOD_ROLLUPS.name(),
    AUDIT.name(),
    IDEMPOTENCY.name(),
    IDEMPOTENCY_BY_AGE.name(),
    KPIS.name(),
    KPIS_BY_CREATION.name(),
    KPIS_BY_NAME.name(),
    KPI_POINTS.name(),
    BRIEFS.name(),
    SEQUENCES.name(),
    NOTIFICATION_PREFS.name(),
    NOTIFICATIONS.name(),
    NOTIFICATION_UNIQUE.name(),
    CONVERSATIONS.name(),
    CONVERSATIONS_BY_TIME.name(),
    MESSAGES.name(),
];
