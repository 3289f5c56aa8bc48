//! The registry of tables: every domain module's `TABLES`, gathered once.
//!
//! Each module declares its tables beside its records (a key type per table with
//! [`crate::store::key`], the table as a [`crate::store::Table`]) and lists them in its
//! `TABLES`. This list is what the database is opened with (the backend creates the tables it
//! lacks), what the checker walks (every row's key, record and tenant) and what the console's
//! table browser reads layouts and records from. Adding a module with tables adds one line
//! here.

use crate::store::TableInfo;
use std::sync::OnceLock;

/// Every table of Bespin, module by module.
pub(crate) fn tables() -> &'static [&'static dyn TableInfo] {
    static ALL: OnceLock<Vec<&'static dyn TableInfo>> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            crate::store::TABLES,
            crate::layout::TABLES,
            crate::tenancy::TABLES,
            crate::limits::TABLES,
            crate::billing::catalog::TABLES,
            crate::billing::subscriptions::TABLES,
            crate::billing::thresholds::TABLES,
            crate::metering::TABLES,
            crate::metering::chunk::TABLES,
            crate::metering::export::TABLES,
            crate::metering::ingest::TABLES,
            crate::metering::claims::TABLES,
            crate::audit::TABLES,
            crate::idempotency::TABLES,
            crate::kpis::TABLES,
            crate::kpis::series::TABLES,
            crate::briefs::TABLES,
            crate::notifications::TABLES,
            crate::conversations::TABLES,
            crate::coreos::actions::TABLES,
            crate::coreos::tasks::TABLES,
            crate::coreos::decisions::TABLES,
            crate::coreos::meetings::TABLES,
            crate::coreos::memory::TABLES,
            crate::coreos::evidence::TABLES,
            &[&crate::coreos::deletion::DELETED],
            crate::coreos::timeline::TABLES,
            crate::coreos::search::TABLES,
            crate::events::TABLES,
            crate::webhooks::TABLES,
        ]
        .concat()
    })
}

/// The declaration of the table named `name`.
pub(crate) fn table(name: &str) -> Option<&'static dyn TableInfo> {
    tables().iter().find(|t| t.name() == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_declared_once() {
        let mut names: Vec<&str> = tables().iter().map(|t| t.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(
            n, 78,
            "the tables of layout 9, the event log, the key lifecycle, the tombstones of deleted \
             records, usage de-duplication, usage chunks and the runs of claims (layout 14)"
        );
        assert!(table("co_tasks").is_some_and(|t| t.tenant_scoped()));
        assert!(table("secrets").is_some_and(|t| t.is_secret()));
    }
}
