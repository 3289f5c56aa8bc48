//! Plans, credits and entitlements (30-billing-metering.md).
//!
//! - [`catalog`]: metered event types, capabilities, plans, grants and caps; seeding; the
//!   platform-admin operations.
//! - [`subscriptions`]: one subscription per tenant; the admin change.
//! - [`usage`]: the tenant-facing plan, usage and ledger reports.
//! - [`require_capability`]: the entitlement check gated endpoints run.
//!
//! Metering itself (quota checks, usage events, rollups) lives in [`crate::metering`].

pub mod catalog;
pub mod subscriptions;
pub mod usage;

use crate::error::{Error, Result};
use crate::store::Reader;

/// The entitlement check (30 §6.1): the tenant needs a subscription, it must be `active`, and
/// its plan must grant `capability`. Errors: `NoSubscription`, `SubscriptionSuspended`,
/// `CapabilityDenied` (all 403 with structured detail).
pub(crate) fn require_capability(r: &impl Reader, tenant_id: &str, capability: &str) -> Result<()> {
    let sub = subscriptions::get(r, tenant_id)?.ok_or(Error::NoSubscription)?;
    if sub.status != "active" {
        return Err(Error::SubscriptionSuspended { status: sub.status });
    }
    if !catalog::grants(r, &sub.plan_id, capability)? {
        return Err(Error::CapabilityDenied {
            capability_key: capability.to_owned(),
            plan_id: sub.plan_id,
        });
    }
    Ok(())
}
