//! Meeting notes (40 §4), with an optional link to another record of the tenant (checked:
//! the target must exist, 404 otherwise). `meeting_date` is a real date and immutable; the list
//! walks a (tenant, meeting date, created at, id) index newest date first, and the
//! `from`/`to` filters (real dates, inclusive) bound that walk.

use super::deletion::{self, Deleted, Deletion};
use super::{
    Change, EntityType, Link, Metadata, Paging, check_link, check_quota, dated_records,
    link_fields, new_record_id, next_day, page_index, page_type, patch_string, record_effects,
    search, timeline,
};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Order, Reader, Record, WriteTx};
use crate::time::{Date, Timestamp};
use crate::validate::{Fields, Len, NOTES_MAX, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CAP: &str = "meetings";
const TOOL: &str = "meetings";

/// A stored meeting note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MeetingRec {
    pub meeting_id: String,
    pub created_by: String,
    pub meeting_date: Date,
    pub title: String,
    pub notes: String,
    pub linked_type: Option<String>,
    pub linked_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for MeetingRec {}

dated_records! {
    MeetingRec, "meeting", meeting_id, meeting_date,
    MEETINGS = "co_meetings", MeetingKey;
    MEETINGS_BY_DATE = "co_meetings_by_date", MeetingDateKey;
}

/// A meeting note as the API shows it (`MeetingNoteResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeetingNote {
    /// The meeting note id.
    pub meeting_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The author.
    pub created_by_user_id: String,
    /// `YYYY-MM-DD`.
    pub meeting_date: String,
    /// 1–255 characters.
    pub title: String,
    /// The notes.
    pub notes: String,
    /// Linked record type, if any.
    pub linked_entity_type: Option<String>,
    /// Linked record id, if any.
    pub linked_entity_id: Option<String>,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
}

page_type!(
    /// `GET /v1/meetings`.
    MeetingPage,
    MeetingNote
);

pub(crate) fn view(tenant: &str, m: &MeetingRec) -> MeetingNote {
    MeetingNote {
        meeting_id: m.meeting_id.clone(),
        tenant_id: tenant.to_owned(),
        created_by_user_id: m.created_by.clone(),
        meeting_date: m.meeting_date.to_string(),
        title: m.title.clone(),
        notes: m.notes.clone(),
        linked_entity_type: m.linked_type.clone(),
        linked_entity_id: m.linked_id.clone(),
        created_at: m.created_at.to_rfc3339(),
        updated_at: m.updated_at.to_rfc3339(),
    }
}

/// Input of [`Bespin::create_meeting`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMeeting {
    /// A real date.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub meeting_date: Date,
    /// 1–255 characters.
    pub title: String,
    /// At least 1 character.
    pub notes: String,
    /// A record of the tenant the note is about.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub link: Option<Link>,
}

impl NewMeeting {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let date = f.date("meeting_date", Presence::Required);
        let title = f.req_string("title", Len::between(1, 255));
        let notes = f.req_string("notes", Len::between(1, NOTES_MAX));
        let link = link_fields(&mut f);
        f.finish()?;
        Ok(NewMeeting {
            meeting_date: got(date.flatten())?,
            title: got(title)?,
            notes: got(notes)?,
            link: got(link)?,
        })
    }
}

/// Input of [`Bespin::update_meeting`]: only present keys are applied.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeetingPatch {
    /// New title (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub title: Change<String>,
    /// New notes (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub notes: Change<String>,
    /// New link: `Set` a checked target, `Clear` (both fields `null`), or `Keep`.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub link: Change<Link>,
}

impl MeetingPatch {
    /// Validates a request body. The link fields change together: both given, or both `null`
    /// to clear the link.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = patch_string(&mut f, "title", Len::between(1, 255), false);
        let notes = patch_string(&mut f, "notes", Len::between(1, NOTES_MAX), false);
        let has_t = f.has("linked_entity_type");
        let has_i = f.has("linked_entity_id");
        let link = link_fields(&mut f);
        f.finish()?;
        let link = match got(link)? {
            Some(l) => Change::Set(l),
            None if has_t || has_i => Change::Clear,
            None => Change::Keep,
        };
        Ok(MeetingPatch {
            title: got(title)?,
            notes: got(notes)?,
            link,
        })
    }
}

/// Query of [`Bespin::list_meetings`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeetingQuery {
    /// Only notes on or after this date.
    pub from: Option<Date>,
    /// Only notes on or before this date.
    pub to: Option<Date>,
    /// `limit` 1–100 (default 50), `offset` ≥ 0.
    pub paging: Option<Paging>,
}

impl MeetingQuery {
    /// Validates query values given as a JSON object of strings (`from`/`to` real dates).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let from = f.date_or_blank("from");
        let to = f.date_or_blank("to");
        let paging = Paging::read(&mut f, 100);
        f.finish()?;
        Ok(MeetingQuery {
            from: got(from)?,
            to: got(to)?,
            paging: Some(got(paging)?),
        })
    }
}

/// The meeting note `id` of the tenant, or 404.
pub(crate) fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<MeetingRec> {
    get(r, tenant, id)?.ok_or_else(|| EntityType::Meeting.not_found())
}

fn save(tx: &mut WriteTx, tenant: &str, m: &MeetingRec) -> Result<()> {
    let key = record_key(tx, tenant, &m.meeting_id);
    search::save(tx, &MEETINGS, &key, tenant, m)
}

/// Creates a meeting note (any user). Order: capability → link (404) → quota → write.
pub fn create(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewMeeting,
) -> Result<MeetingNote> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    check_link(tx, t, req.link.as_ref())?;
    let permit = check_quota(tx, ctx, caller, "meeting_note_created", TOOL)?;
    let m = MeetingRec {
        meeting_id: new_record_id(tx)?,
        created_by: caller.user_id().to_owned(),
        meeting_date: req.meeting_date,
        title: req.title,
        notes: req.notes,
        linked_type: req.link.as_ref().map(|l| l.entity_type.as_str().to_owned()),
        linked_id: req.link.map(|l| l.entity_id),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    search::insert(tx, &MEETINGS, &record_key(tx, t, &m.meeting_id), t, &m)?;
    tx.put(&MEETINGS_BY_DATE, &date_key(t, &m), &m.meeting_id)?;
    let date = m.meeting_date.to_string();
    timeline::emit(
        tx,
        ctx,
        caller,
        "meeting_note_created",
        EntityType::Meeting,
        &m.meeting_id,
        m.created_at,
        format!("Meeting note created: {}", m.title),
        Metadata::of(&[("meeting_date", Some(&date))]),
    )?;
    let v = view(t, &m);
    events::emit(tx, ctx, caller, catalog::MEETING_CREATED, &m.meeting_id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "meetings.create",
        TOOL,
        (EntityType::Meeting, &m.meeting_id),
    )?;
    Ok(v)
}

/// Edits a meeting note (creator or admin). Order: capability → 404 → 403 → link (404) → no
/// change (200 no-op) → quota → write.
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    meeting_id: &str,
    patch: MeetingPatch,
) -> Result<MeetingNote> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let mut m = load(tx, t, meeting_id)?;
    if !caller.is_admin() && m.created_by != caller.user_id() {
        return Err(Error::Forbidden(
            "Not authorized to update this meeting note".into(),
        ));
    }
    let mut changed = patch.title.apply(&mut m.title);
    changed |= patch.notes.apply(&mut m.notes);
    let (lt, li) = match &patch.link {
        Change::Keep => (Change::Keep, Change::Keep),
        Change::Clear => (Change::Clear, Change::Clear),
        Change::Set(l) => {
            check_link(tx, t, Some(l))?;
            (
                Change::Set(l.entity_type.as_str().to_owned()),
                Change::Set(l.entity_id.clone()),
            )
        }
    };
    changed |= lt.apply_opt(&mut m.linked_type);
    changed |= li.apply_opt(&mut m.linked_id);
    if !changed {
        return Ok(view(t, &m));
    }
    let permit = check_quota(tx, ctx, caller, "meeting_note_updated", TOOL)?;
    m.updated_at = ctx.now;
    save(tx, t, &m)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "meeting_note_updated",
        EntityType::Meeting,
        &m.meeting_id,
        m.created_at,
        format!("Meeting note updated: {}", m.title),
        Metadata::empty(),
    )?;
    let v = view(t, &m);
    events::emit(tx, ctx, caller, catalog::MEETING_UPDATED, &m.meeting_id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "meetings.update",
        TOOL,
        (EntityType::Meeting, &m.meeting_id),
    )?;
    Ok(v)
}

/// Lists meeting notes, newest meeting date first, within `from`..=`to`.
pub(crate) fn list(r: &impl Reader, tenant: &str, q: &MeetingQuery) -> Result<MeetingPage> {
    let paging = q.paging.unwrap_or(Paging::DEFAULT);
    let prefix = MEETINGS_BY_DATE.prefix().tenant(tenant);
    let from = q.from.map(|d| prefix.clone().date(d));
    let to = q.to.map(|d| prefix.clone().date(next_day(d)));
    let (items, total) = page_index(
        r,
        &MEETINGS_BY_DATE,
        &prefix,
        from.as_ref(),
        to.as_ref(),
        Order::Desc,
        paging,
        false,
        |r, id| Ok(Some(view(tenant, &load(r, tenant, id)?))),
    )?;
    Ok(MeetingPage::new(items, total, paging))
}

/// Deletes a meeting note (its creator or an admin): gone from its table, its list index and
/// search in this transaction; its timeline stays, with `meeting_deleted`. Order: capability →
/// 404 → 403 → write.
pub fn delete(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, id: &str) -> Result<Deleted> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let m = load(tx, t, id)?;
    if !caller.is_admin() && m.created_by != caller.user_id() {
        return Err(crate::error::Error::Forbidden(
            "Not authorized to delete this meeting note".into(),
        ));
    }
    remove(tx, t, &m)?;
    deletion::finish(
        tx,
        ctx,
        caller,
        Deletion {
            et: EntityType::Meeting,
            id: &m.meeting_id,
            created_at: m.created_at,
            title: &m.title,
            audit_action: "meetings.delete",
            event: catalog::MEETING_DELETED,
        },
    )
}

impl Bespin {
    /// `POST /v1/meetings`. Errors: entitlement, `NotFound` (linked record), `QuotaExceeded`.
    pub fn create_meeting(&self, caller: &Principal, req: NewMeeting) -> Result<MeetingNote> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// `GET /v1/meetings`. Capability `meetings`.
    pub fn list_meetings(&self, caller: &Principal, q: &MeetingQuery) -> Result<MeetingPage> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            list(r, caller.tenant_id(), q)
        })
    }

    /// `GET /v1/meetings/{id}`. Errors: entitlement, `NotFound`.
    pub fn get_meeting(&self, caller: &Principal, meeting_id: &str) -> Result<MeetingNote> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            Ok(view(
                caller.tenant_id(),
                &load(r, caller.tenant_id(), meeting_id)?,
            ))
        })
    }

    /// `PATCH /v1/meetings/{id}`. Errors: entitlement, `NotFound`, `Forbidden`,
    /// `QuotaExceeded`.
    pub fn update_meeting(
        &self,
        caller: &Principal,
        meeting_id: &str,
        patch: MeetingPatch,
    ) -> Result<MeetingNote> {
        self.write_as(caller, |tx, ctx| update(tx, ctx, caller, meeting_id, patch))
    }
}

impl search::Searchable for MeetingRec {
    fn search_doc(&self) -> search::SearchDoc<'_> {
        search::SearchDoc {
            entity_type: EntityType::Meeting,
            id: &self.meeting_id,
            title: &self.title,
            bodies: vec![&self.notes],
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}
