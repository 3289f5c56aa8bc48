//! The request bodies of the catalogue's admin operations.

use crate::error::{Error, Result};
use crate::money::Amount;
use crate::validate::{Fields, Len, Presence, got};
use crate::{FieldError, LocPart};
use serde_json::Value;

/// Input of [`crate::Bespin::admin_create_metered_event`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMeteredEvent {
    /// 1–100 characters.
    pub event_key: String,
    /// 1–255 characters.
    pub display_name: String,
    /// Optional description.
    pub description: Option<String>,
    /// 1–50 characters.
    pub unit_name: String,
    /// ≥ 0.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub credits_per_unit: Amount,
    /// ≥ 0.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub list_price_per_credit: Amount,
    /// Default true.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub billable: bool,
    /// Default true.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub active: bool,
    /// The plan capability a tenant needs to report this event over `POST /v1/usage/events`
    /// (one of the catalogue's capability keys); absent or null: any plan may.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub capability: Option<String>,
}

fn amount_field(f: &mut Fields<'_>, name: &str, presence: Presence) -> Option<Option<Amount>> {
    let n = f.number(name, presence, Some(0.0))?;
    match n {
        None => Some(None),
        Some(x) => match Amount::from_f64(x) {
            Some(a) => Some(Some(a)),
            None => {
                f.fail(
                    name,
                    "finite_number",
                    "Input should be a finite number",
                    serde_json::json!(x),
                );
                None
            }
        },
    }
}

impl NewMeteredEvent {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let event_key = f.req_string("event_key", Len::between(1, 100));
        let display_name = f.req_string("display_name", Len::between(1, 255));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        let unit_name = f.req_string("unit_name", Len::between(1, 50));
        let credits = amount_field(&mut f, "credits_per_unit", Presence::Required);
        let price = amount_field(&mut f, "list_price_per_credit", Presence::Required);
        let billable = f.boolean("billable", Presence::Optional);
        let active = f.boolean("active", Presence::Optional);
        let capability = f.string("capability", Presence::Optional, Len::between(1, 100));
        f.finish()?;
        Ok(NewMeteredEvent {
            capability: got(capability)?,
            event_key: got(event_key)?,
            display_name: got(display_name)?,
            description: got(description)?,
            unit_name: got(unit_name)?,
            credits_per_unit: got(credits.flatten())?,
            list_price_per_credit: got(price.flatten())?,
            billable: got(billable)?.unwrap_or(true),
            active: got(active)?.unwrap_or(true),
        })
    }
}

/// Input of [`crate::Bespin::admin_update_metered_event`]: absent or null fields stay unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeteredEventPatch {
    /// New display name (1–255).
    pub display_name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New unit name (1–50).
    pub unit_name: Option<String>,
    /// New weight (≥ 0); applies to later emissions only.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub credits_per_unit: Option<Amount>,
    /// New list price (≥ 0); applies to later emissions only.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub list_price_per_credit: Option<Amount>,
    /// New billable flag.
    pub billable: Option<bool>,
    /// New active flag.
    pub active: Option<bool>,
    /// New capability needed to report the event over `POST /v1/usage/events`; `""` removes
    /// it (null leaves it unchanged, as for every field here).
    pub capability: Option<String>,
}

impl MeteredEventPatch {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let display_name = f.string("display_name", Presence::Optional, Len::between(1, 255));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        let unit_name = f.string("unit_name", Presence::Optional, Len::between(1, 50));
        let credits = amount_field(&mut f, "credits_per_unit", Presence::Optional);
        let price = amount_field(&mut f, "list_price_per_credit", Presence::Optional);
        let billable = f.boolean("billable", Presence::Optional);
        let active = f.boolean("active", Presence::Optional);
        let capability = f.string("capability", Presence::Optional, Len::at_most(100));
        f.finish()?;
        Ok(MeteredEventPatch {
            capability: got(capability)?,
            display_name: got(display_name)?,
            description: got(description)?,
            unit_name: got(unit_name)?,
            credits_per_unit: got(credits)?,
            list_price_per_credit: got(price)?,
            billable: got(billable)?,
            active: got(active)?,
        })
    }
}

/// Input of [`crate::Bespin::admin_create_plan`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPlan {
    /// 1–100 characters.
    pub plan_id: String,
    /// 1–255 characters.
    pub name: String,
    /// ≥ 0.
    pub included_credits: i64,
    /// ≥ 0.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub overage_price_per_credit: Amount,
    /// Optional per-tenant request rate limit, 1–1 000 000 requests per minute (absent or
    /// null: no limit).
    pub requests_per_minute: Option<u32>,
}

impl NewPlan {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let plan_id = f.req_string("plan_id", Len::between(1, 100));
        let name = f.req_string("name", Len::between(1, 255));
        let included = f.int(
            "included_credits",
            Presence::Required,
            crate::validate::Bounds::ge(0),
        );
        let overage = amount_field(&mut f, "overage_price_per_credit", Presence::Required);
        let rpm = rate_field(&mut f);
        f.finish()?;
        Ok(NewPlan {
            plan_id: got(plan_id)?,
            name: got(name)?,
            included_credits: got(included.flatten())?,
            overage_price_per_credit: got(overage.flatten())?,
            requests_per_minute: got(rpm)?,
        })
    }
}

/// Input of [`crate::Bespin::admin_update_plan`]: absent or null fields stay unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanPatch {
    /// New name (1–255).
    pub name: Option<String>,
    /// New allowance (≥ 0); applies at once to the current period.
    pub included_credits: Option<i64>,
    /// New overage price (≥ 0).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub overage_price_per_credit: Option<Amount>,
    /// New request rate limit: `Some(Some(n))` sets it (1–1 000 000 per minute),
    /// `Some(None)` (JSON `null`) removes it, `None` (absent) leaves it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub requests_per_minute: Option<Option<u32>>,
}

impl PlanPatch {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let name = f.string("name", Presence::Optional, Len::between(1, 255));
        let included = f.int(
            "included_credits",
            Presence::Optional,
            crate::validate::Bounds::ge(0),
        );
        let overage = amount_field(&mut f, "overage_price_per_credit", Presence::Optional);
        let clear_rpm = v.get("requests_per_minute").is_some_and(Value::is_null);
        let rpm = rate_field(&mut f);
        f.finish()?;
        Ok(PlanPatch {
            name: got(name)?,
            included_credits: got(included)?,
            overage_price_per_credit: got(overage)?,
            requests_per_minute: if clear_rpm {
                Some(None)
            } else {
                got(rpm)?.map(Some)
            },
        })
    }
}

/// The optional `requests_per_minute` member (1–1 000 000).
fn rate_field(f: &mut Fields<'_>) -> Option<Option<u32>> {
    f.int(
        "requests_per_minute",
        Presence::Optional,
        crate::validate::Bounds::range(1, 1_000_000),
    )
    .map(|o| o.and_then(|n| u32::try_from(n).ok()))
}

/// Validates `{"capabilities": [string, …]}`; a repeated key is a 422 at its position.
pub fn capabilities_from_json(v: &Value) -> Result<Vec<String>> {
    let mut f = Fields::new(v)?;
    let items = f.list("capabilities", Presence::Required, 0);
    let mut out = Vec::new();
    if let Some(Some(items)) = items {
        let base = f.loc_of("capabilities");
        let mut errs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut loc = base.clone();
            loc.push(LocPart::Index(i));
            match item {
                Value::String(s) if out.contains(s) => errs.push(FieldError::new(
                    "unique_items",
                    loc,
                    format!("Capability '{s}' is listed more than once"),
                    item.clone(),
                )),
                Value::String(s) => out.push(s.clone()),
                other => errs.push(FieldError::new(
                    "string_type",
                    loc,
                    "Input should be a valid string",
                    other.clone(),
                )),
            }
        }
        f.extend(errs);
    }
    f.finish()?;
    Ok(out)
}

/// Validates `{"caps": [{"event_key", "period"?, "cap_raw_units"}, …]}`; a repeated
/// (event_key, period) is a 422 at its position.
pub fn caps_from_json(v: &Value) -> Result<Vec<(String, String, Amount)>> {
    let mut f = Fields::new(v)?;
    let items = f.list("caps", Presence::Required, 0);
    let mut out: Vec<(String, String, Amount)> = Vec::new();
    if let Some(Some(items)) = items {
        let base = f.loc_of("caps");
        let mut errs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut loc = base.clone();
            loc.push(LocPart::Index(i));
            let mut g = match Fields::at(item, loc.clone()) {
                Ok(g) => g,
                Err(Error::Validation(e)) => {
                    errs.extend(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let key = g.req_string("event_key", Len::ANY);
            let period = g.string("period", Presence::Optional, Len::ANY);
            let units = amount_field(&mut g, "cap_raw_units", Presence::Required);
            match g.finish() {
                Ok(()) => {
                    let key = got(key)?;
                    let period = got(period)?.unwrap_or_else(|| "monthly".into());
                    if out.iter().any(|(k, p, _)| *k == key && *p == period) {
                        errs.push(FieldError::new(
                            "unique_items",
                            loc,
                            format!("Cap for ('{key}', '{period}') is listed more than once"),
                            item.clone(),
                        ));
                    } else {
                        out.push((key, period, got(units.flatten())?));
                    }
                }
                Err(Error::Validation(e)) => errs.extend(e),
                Err(e) => return Err(e),
            }
        }
        f.extend(errs);
    }
    f.finish()?;
    Ok(out)
}
