//! The record explorer (40 §9): one record with its evidence links and its 20 newest timeline
//! events. Order: entity type (400 for an unknown one, before any other check) → the type's
//! capability → lookup (404). Not metered, not audited.

use super::evidence::{self, EvidenceLink};
use super::timeline::{self, TimelineEvent};
use super::{EntityType, actions, decisions, meetings, memory, tasks};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::{Bespin, store::Reader};
use serde::Serialize;

/// The record itself, with the keys of its normal representation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Entity {
    /// An action (without review and execution).
    Action(actions::Action),
    /// A task.
    Task(tasks::Task),
    /// A decision.
    Decision(decisions::Decision),
    /// A meeting note.
    Meeting(meetings::MeetingNote),
    /// A memory fact (any status).
    MemoryFact(memory::MemoryFact),
}

/// `GET /v1/records/{entity_type}/{entity_id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordView {
    /// The record.
    pub entity: Entity,
    /// Its evidence links, newest first (always empty for meeting notes).
    pub evidence: Vec<EvidenceLink>,
    /// Its 20 newest timeline events, newest first.
    pub timeline: Vec<TimelineEvent>,
}

/// Reads the record view (see the module docs for the order of checks).
pub(crate) fn explore(
    r: &impl Reader,
    caller: &Principal,
    entity_type: &str,
    entity_id: &str,
) -> Result<RecordView> {
    let et = EntityType::parse(entity_type)
        .ok_or_else(|| Error::BadRequest(format!("Invalid entity_type: {entity_type}")))?;
    let t = caller.tenant_id();
    require_capability(r, caller, et.capability())?;
    let entity = match et {
        EntityType::Action => Entity::Action(actions::view(t, &actions::load(r, t, entity_id)?)),
        EntityType::Task => Entity::Task(tasks::view(t, &tasks::load(r, t, entity_id)?)),
        EntityType::Decision => {
            Entity::Decision(decisions::view(t, &decisions::load(r, t, entity_id)?))
        }
        EntityType::Meeting => {
            Entity::Meeting(meetings::view(t, &meetings::load(r, t, entity_id)?))
        }
        EntityType::MemoryFact => {
            Entity::MemoryFact(memory::view(t, &memory::load(r, t, entity_id)?))
        }
    };
    Ok(RecordView {
        entity,
        evidence: evidence::for_entity(r, t, et, entity_id)?,
        timeline: timeline::for_entity(r, t, et, entity_id, 20)?,
    })
}

impl Bespin {
    /// `GET /v1/records/{entity_type}/{entity_id}`. Errors: `BadRequest` (unknown type),
    /// entitlement (the type's capability), `NotFound`.
    pub fn record(
        &self,
        caller: &Principal,
        entity_type: &str,
        entity_id: &str,
    ) -> Result<RecordView> {
        self.read(|r, _| explore(r, caller, entity_type, entity_id))
    }
}
