//! Plans, credits and entitlements (`/v1/billing/*`, `/v1/admin/*`; contract part 30).
//!
//! - [`catalog`]: metered event types, capabilities, plans, grants and caps; seeding; the
//!   platform-admin operations.
//! - [`subscriptions`]: one subscription per tenant; the admin change.
//! - [`usage`]: the tenant-facing plan, usage and ledger reports.
//! - `require_capability`: the entitlement check gated endpoints run.
//!
//! Metering itself (quota checks, usage events, rollups) lives in [`crate::metering`].

pub mod catalog;
pub mod subscriptions;
pub mod thresholds;
pub mod usage;

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::store::Reader;

/// The entitlement check (30 §6.1): the tenant needs a subscription, it must be `active`, and
/// its plan must grant `capability`. Errors: `NoSubscription`, `SubscriptionSuspended`,
/// `CapabilityDenied` (all 403 with structured detail). On a read snapshot the outcome is
/// remembered per tenant and capability for the snapshot's life ([`Reader::remembered`]).
pub(crate) fn plan_grants(r: &impl Reader, tenant_id: &str, capability: &str) -> Result<()> {
    r.remembered(&["capability", tenant_id, capability], &mut || {
        check_capability(r, tenant_id, capability)
    })
}

/// The one capability check of an operation: [`plan_grants`] for the caller's tenant, then
/// the scopes of the caller's API key (a key scoped to a list of capabilities may exercise
/// only those: 403 `Forbidden` otherwise). Every operation that needs a capability calls it
/// with its caller.
pub(crate) fn require_capability(
    r: &impl Reader,
    caller: &Principal,
    capability: &str,
) -> Result<()> {
    plan_grants(r, caller.tenant_id(), capability)?;
    match caller.key() {
        Some(k) if !k.scopes.allows_capability(capability) => Err(Error::Forbidden(format!(
            "This API key's scopes do not include capability: {capability}"
        ))),
        _ => Ok(()),
    }
}

fn check_capability(r: &impl Reader, tenant_id: &str, capability: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{db, tenant};

    fn can_read_kpis(db: &crate::Bespin, tenant_id: &str) -> bool {
        db.read(|r, _| Ok(plan_grants(r, tenant_id, "kpi_read").is_ok()))
            .unwrap_or(false)
    }

    #[test]
    fn a_remembered_entitlement_lasts_only_until_the_next_commit() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let t = admin.tenant_id();
        assert!(can_read_kpis(&db, t));
        // Remembered: the same snapshot answers from memory.
        assert!(can_read_kpis(&db, t));
        db.admin_set_plan_capabilities("starter", vec!["chat".to_owned()])
            .expect("grants");
        assert!(!can_read_kpis(&db, t), "the revoked grant is seen at once");
        db.admin_set_plan_capabilities("starter", vec!["kpi_read".to_owned()])
            .expect("grants");
        assert!(can_read_kpis(&db, t));
    }

    /// A write batch remembers a tenant's entitlement and plan between its operations; an
    /// operation of the batch that changes the subscription is seen by the next ones, and one
    /// that is undone is not.
    #[test]
    fn a_batch_sees_a_subscription_changed_or_restored_by_its_own_operations() {
        use crate::commit::TestOp as BatchOp;
        use crate::coreos::tasks::{self, NewTask};
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let t = admin.tenant_id().to_owned();
        let task = |title: &str| -> BatchOp<'_> {
            let body = serde_json::json!({ "title": title });
            let admin = &admin;
            Box::new(move |tx, ctx| {
                tasks::create(tx, ctx, admin, NewTask::from_json(&body)?).map(drop)
            })
        };
        let suspend = |fail: bool| -> BatchOp<'_> {
            let t = t.clone();
            Box::new(move |tx, ctx| {
                let req = subscriptions::SubscriptionUpdate::from_json(&serde_json::json!({
                    "plan_id": "starter", "status": "suspended"
                }))?;
                subscriptions::set(tx, ctx, &t, req)?;
                // Seen at once by the operation itself (and remembered)…
                assert!(crate::metering::active_plan(&*tx, &t).is_err());
                if fail {
                    return Err(Error::Conflict("undone".into()));
                }
                Ok(())
            })
        };
        let ops = vec![
            task("first"),
            suspend(true),
            task("after the undone suspension"),
            suspend(false),
            task("after the suspension"),
        ];
        let out = db.inner.committer.run_batch_for_test(ops).expect("batch");
        let codes: Vec<&str> = out
            .iter()
            .map(|o| o.as_ref().map_or_else(|e| e.code(), |()| "ok"))
            .collect();
        assert_eq!(
            codes,
            ["ok", "conflict", "ok", "ok", "subscription_suspended"]
        );
    }

    /// The usage rollups and daily counters are held in the batch: one chat turn's metering
    /// undone between two others leaves both counted once each, as the usage events say.
    #[test]
    fn a_batch_of_metered_operations_with_one_undone_counts_the_others() {
        use crate::chat::{self, ChatRequest};
        use crate::commit::TestOp as BatchOp;
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let turn = |fail: bool| -> BatchOp<'_> {
            let admin = &admin;
            Box::new(move |tx, ctx| {
                let m = ChatRequest::from_json(&serde_json::json!({ "message": "kpis" }))?;
                chat::chat(tx, ctx, admin, m)?;
                if fail {
                    return Err(Error::Conflict("undone".into()));
                }
                Ok(())
            })
        };
        let out = db
            .inner
            .committer
            .run_batch_for_test(vec![turn(false), turn(true), turn(false)])
            .expect("batch");
        assert_eq!(out.iter().filter(|o| o.is_ok()).count(), 2);
        let daily = db.daily_usage(&admin, None).expect("daily");
        let queries = daily
            .usage
            .iter()
            .find(|u| u.activity_type == "assistant_query")
            .map(|u| u.units);
        assert_eq!(queries, Some(2));
        let usage = db.billing_usage(&admin, None).expect("usage");
        let chat_units: f64 = usage
            .breakdown
            .iter()
            .filter(|b| b.event_key == "assistant_query")
            .map(|b| b.raw_units)
            .sum();
        assert_eq!(chat_units, 2.0);
        let report = db.check().expect("check");
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }
}
