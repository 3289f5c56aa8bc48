//! The catalogue of event types: every type an operation may emit, what it is about, and who
//! may see it. Served in OpenAPI (`EventType` of `/openapi.json`) and in the README.

/// Who may see events of a type (besides the tenant's plan granting its capability).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every user of the tenant (members read these records too).
    Members,
    /// Admins, and the one user the event concerns (their notification, their conversation).
    Owner,
    /// Tenant admins only (tool invocations, usage, billing, users, webhooks).
    Admins,
}

impl Audience {
    /// The audience as documented.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Members => "members",
            Audience::Owner => "owner",
            Audience::Admins => "admins",
        }
    }
}

/// One event type of the catalogue.
#[derive(Debug, PartialEq, Eq)]
pub struct EventType {
    /// Dotted `<noun>.<verb>`.
    pub name: &'static str,
    /// The `subject.type` of its events.
    pub subject: &'static str,
    /// The plan capability a caller's tenant needs to see it (`None`: any plan).
    pub capability: Option<&'static str>,
    /// Who may see it.
    pub audience: Audience,
    /// What happened, and what `data` holds.
    pub description: &'static str,
}

macro_rules! catalogue {
    ($($id:ident = $name:literal, $subject:literal, $cap:expr, $aud:ident, $desc:literal;)+) => {
        $(
            #[doc = $desc]
            pub const $id: &EventType = &EventType {
                name: $name,
                subject: $subject,
                capability: $cap,
                audience: Audience::$aud,
                description: $desc,
            };
        )+
        /// Every event type, in documentation order.
        pub const ALL: &[&EventType] = &[$($id),+];
    };
}

catalogue! {
    ACTION_CREATED = "action.created", "action", Some("action_center"), Members,
        "An action was proposed; data: the action.";
    ACTION_UPDATED = "action.updated", "action", Some("action_center"), Members,
        "A proposed action was edited; data: the action.";
    ACTION_APPROVED = "action.approved", "action", Some("action_center"), Members,
        "An action was approved; data: the action.";
    ACTION_REJECTED = "action.rejected", "action", Some("action_center"), Members,
        "An action was rejected; data: the action.";
    ACTION_CANCELLED = "action.cancelled", "action", Some("action_center"), Members,
        "An action was cancelled; data: the action.";
    ACTION_EXECUTED = "action.executed", "action", Some("action_center"), Members,
        "An approved action was executed (or its execution failed); data: the action.";
    TASK_CREATED = "task.created", "task", Some("tasks"), Members,
        "A task was created; data: the task.";
    TASK_UPDATED = "task.updated", "task", Some("tasks"), Members,
        "A task was edited; data: the task.";
    TASK_COMPLETED = "task.completed", "task", Some("tasks"), Members,
        "A task was marked done; data: the task.";
    DECISION_CREATED = "decision.created", "decision", Some("decisions"), Members,
        "A decision was recorded; data: the decision.";
    DECISION_UPDATED = "decision.updated", "decision", Some("decisions"), Members,
        "A decision was edited; data: the decision.";
    MEETING_CREATED = "meeting.created", "meeting", Some("meetings"), Members,
        "A meeting note was recorded; data: the meeting.";
    MEETING_UPDATED = "meeting.updated", "meeting", Some("meetings"), Members,
        "A meeting note was edited; data: the meeting.";
    MEMORY_CREATED = "memory_fact.created", "memory_fact", Some("memory"), Members,
        "A memory fact was recorded; data: the fact.";
    MEMORY_UPDATED = "memory_fact.updated", "memory_fact", Some("memory"), Members,
        "A memory fact's status or confidence changed; data: the fact.";
    MEMORY_SUPERSEDED = "memory_fact.superseded", "memory_fact", Some("memory"), Members,
        "A memory fact was superseded by a new value; subject: the old fact; data: the new fact.";
    EVIDENCE_LINKED = "evidence.linked", "evidence", None, Members,
        "Evidence was linked to a record; data: the evidence link.";
    EVIDENCE_DELETED = "evidence.deleted", "evidence", None, Members,
        "An evidence link was deleted; data: {entity_type, entity_id, deleted_at}.";
    TASK_DELETED = "task.deleted", "task", Some("tasks"), Members,
        "A task was deleted (its history stays in the timeline); data: {entity_type, entity_id, deleted_at}.";
    DECISION_DELETED = "decision.deleted", "decision", Some("decisions"), Members,
        "A decision was deleted; data: {entity_type, entity_id, deleted_at}.";
    MEETING_DELETED = "meeting.deleted", "meeting", Some("meetings"), Members,
        "A meeting note was deleted; data: {entity_type, entity_id, deleted_at}.";
    MEMORY_DELETED = "memory_fact.deleted", "memory_fact", Some("memory"), Members,
        "A memory fact was deleted with every version of its supersede chain; data: {entity_type, entity_id, deleted_at}.";
    BRIEF_GENERATED = "brief.generated", "brief", Some("briefs"), Members,
        "A daily brief was materialized; data: {brief_id, brief_date}.";
    NOTIFICATION_ENQUEUED = "notification.enqueued", "notification", None, Owner,
        "A notification was queued for a user; data: the notification.";
    NOTIFICATION_ACKED = "notification.acked", "notification", None, Owner,
        "A user acknowledged a notification; data: the notification.";
    CONVERSATION_MESSAGE = "conversation.message", "conversation", Some("chat"), Owner,
        "A message was added to a conversation (a chat turn adds the user's and the reply); data: {conversation_id, role, content}.";
    CONVERSATION_DELETED = "conversation.deleted", "conversation", Some("chat"), Owner,
        "A conversation was deleted with its messages; data: {entity_type, entity_id, deleted_at}.";
    TOOL_INVOKED = "tool.invoked", "tool", Some("tools"), Admins,
        "A tool was invoked through the gateway; data: {tool_name, request_id, status}.";
    KPI_POINTS_INGESTED = "kpi.points_ingested", "kpi", Some("kpi_ingest"), Members,
        "KPI points were ingested (one event per request); data: {kpi_key, count}.";
    KPI_DELETED = "kpi.deleted", "kpi", Some("kpi_ingest"), Members,
        "A KPI was deleted with its points; data: {entity_type, entity_id, deleted_at}.";
    USAGE_THRESHOLD_CROSSED = "usage.threshold_crossed", "usage", None, Admins,
        "Usage crossed 80% or 100% of the period's credit allowance or of an event's cap (each at most once per period); data: {period_start, limit, threshold, used, limit_value, event_key}.";
    USAGE_EVENTS_INGESTED = "usage.events_ingested", "usage", None, Admins,
        "Usage events reported with POST /v1/usage/events were recorded (one event per request that recorded any); data: {request_id, accepted, duplicates, rejected}.";
    SUBSCRIPTION_CHANGED = "subscription.changed", "subscription", None, Admins,
        "The tenant's subscription (plan or status) was set; data: the subscription.";
    LIMITS_CHANGED = "limits.changed", "limits", None, Admins,
        "The tenant's daily limits were changed; data: the limits.";
    USER_CREATED = "user.created", "user", None, Admins,
        "A user was added to the tenant; data: the user.";
    USER_UPDATED = "user.updated", "user", None, Admins,
        "A user's role or deactivation changed (PATCH /v1/users/{id}); data: the user.";
    API_KEY_CREATED = "api_key.created", "api_key", None, Admins,
        "A user-bound API key was made; data: the key as listed (never the secret).";
    API_KEY_REVOKED = "api_key.revoked", "api_key", None, Admins,
        "A user-bound API key was revoked (DELETE /v1/api-keys/{id}); data: the key as listed.";
    TENANT_KEY_ROTATED = "tenant.key_rotated", "tenant", None, Admins,
        "The tenant key was rotated; data: {previous_valid_until}.";
    WEBHOOK_TEST = "webhook.test", "webhook_endpoint", None, Admins,
        "A test delivery asked for with POST /v1/webhooks/endpoints/{id}/test (sent to that endpoint only); data: {endpoint_id, message}.";
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled", "webhook_endpoint", None, Admins,
        "The server disabled a webhook endpoint whose deliveries all failed for 5 days; data: the endpoint.";
    WEBHOOK_ENDPOINT_DELETED = "webhook.endpoint_deleted", "webhook_endpoint", None, Admins,
        "A webhook endpoint was deleted with its attempts (DELETE /v1/webhooks/endpoints/{id}; it receives no more deliveries, this one included); data: {entity_type, entity_id, deleted_at}.";
}

/// The event type named `name`.
pub fn find(name: &str) -> Option<&'static EventType> {
    ALL.iter().find(|t| t.name == name).copied()
}

/// The catalogue as a Markdown table (the README's list is checked against it).
pub fn markdown() -> String {
    let mut s = String::from("| type | subject | capability | audience | description |\n");
    s.push_str("|---|---|---|---|---|\n");
    for t in ALL {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            t.name,
            t.subject,
            t.capability.unwrap_or("—"),
            t.audience.as_str(),
            t.description
        ));
    }
    s
}
