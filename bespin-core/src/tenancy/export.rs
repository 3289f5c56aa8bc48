//! The tenant export: everything a tenant owns, as JSON Lines, from one snapshot.
//!
//! Every tenant-scoped table of the registry (`schema::tables()`: the tables whose key starts
//! with the tenant) is read under the tenant's prefix, in the registry's order and key order,
//! on one snapshot, so the export is one consistent state however long it takes. Each row is
//! a line `{"table": <name>, "row": {<key parts>…, <fields>…}}`, rendered as the console
//! renders rows: secret tables are skipped and secret columns (key digests, hashes, tokens,
//! stored response bodies) removed; a row holding several records (a KPI chunk, the reported
//! usage events of one request) is a line per record. The lines go to a sink a chunk at a
//! time, so memory stays bounded by one chunk whatever the tenant's size. Global tables (the
//! user → tenant and key digest indexes, the platform's usage order) hold nothing the tenant's
//! own tables do not.

use crate::auth::Principal;
use crate::console::{decode_key, row};
use crate::error::{Error, Result};
use crate::store::{Flow, Order, Reader, parts};
use crate::{Bespin, schema};
use serde_json::{Map, Value};
use std::ops::Bound;

/// The size past which a chunk of lines is handed to the sink.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exported {
    /// Lines (rows) written.
    pub rows: u64,
    /// Tables read.
    pub tables: u64,
}

/// The names of the tables an export reads, in its order.
pub fn tables() -> Vec<&'static str> {
    schema::tables()
        .iter()
        .filter(|t| t.tenant_scoped() && !t.is_secret())
        .map(|t| t.name())
        .collect()
}

/// Whether `caller` may export the tenant: an admin, not through a capability-scoped key
/// (403). A server checks it before it starts the streamed answer.
pub fn may_export(caller: &Principal) -> Result<()> {
    caller.require_admin_to("export the tenant")?;
    if matches!(
        caller.key().map(|k| &k.scopes),
        Some(super::keys::Scopes::Capabilities(_))
    ) {
        return Err(Error::Forbidden(
            "A capability-scoped API key cannot export the tenant".into(),
        ));
    }
    Ok(())
}

impl Bespin {
    /// Streams the caller's tenant as JSON Lines to `sink`, a chunk of about [`CHUNK_BYTES`]
    /// at a time (see the [module](self) docs); `sink` returning an error (the client left)
    /// ends the export with it. Admin, not through a capability-scoped key (403).
    pub fn export_tenant(
        &self,
        caller: &Principal,
        mut sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<Exported> {
        may_export(caller)?;
        let snapshot = self.snapshot()?;
        let r = &*snapshot;
        let mut prefix = Vec::new();
        parts::tenant::put(caller.tenant_id(), &mut prefix);
        let end = crate::store::successor(&prefix);
        let hi = match &end {
            Some(s) => Bound::Excluded(s.as_slice()),
            None => Bound::Unbounded,
        };
        let mut out = Exported::default();
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 4096);
        for table in schema::tables()
            .iter()
            .filter(|t| t.tenant_scoped() && !t.is_secret())
        {
            out.tables += 1;
            r.scan_raw(
                table.name(),
                Bound::Included(prefix.as_slice()),
                hi,
                Order::Asc,
                &mut |k, v| {
                    let key = decode_key(r.sealer(), *table, k);
                    for (more, fields) in table.show(v)? {
                        let mut cols = key.clone();
                        cols.extend(more.into_iter().map(|(c, v)| (c.to_owned(), v)));
                        let fields: Map<String, Value> = row(cols, fields).into_iter().collect();
                        let line = serde_json::json!({"table": table.name(), "row": fields});
                        serde_json::to_writer(&mut chunk, &line)
                            .map_err(|e| Error::Internal(format!("export: {e}")))?;
                        chunk.push(b'\n');
                        out.rows += 1;
                    }
                    if chunk.len() >= CHUNK_BYTES {
                        sink(std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(CHUNK_BYTES + 4096),
                        ))?;
                    }
                    Ok(Flow::Continue)
                },
            )?;
        }
        if !chunk.is_empty() {
            sink(chunk)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{db, kpi, report_usage, tenant};
    use serde_json::Value;

    #[test]
    fn an_export_holds_the_tenants_rows_only_and_no_secret() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let (other, _) = tenant(&db);
        kpi(&db, &admin, "MRR", &[("2026-01-01", 1.0)]);
        kpi(&db, &other, "Other", &[("2026-01-01", 1.0)]);
        // Reported usage is stored a request to a row (a chunk): exported an event a line.
        report_usage(&db, &admin, &["e1", "e2", "e3"]);
        report_usage(&db, &other, &["o1"]);
        let mut text = Vec::new();
        let out = db
            .export_tenant(&admin, |c| {
                text.extend_from_slice(&c);
                Ok(())
            })
            .expect("export");
        let text = String::from_utf8(text).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len() as u64, out.rows);
        assert!(
            lines
                .iter()
                .any(|l| l["table"] == "kpis" && l["row"]["name"] == "MRR")
        );
        assert!(lines.iter().any(|l| l["table"] == "users"));
        assert!(lines.iter().any(|l| l["table"] == "kpi_chunks"));
        let reported: Vec<&Value> = lines
            .iter()
            .filter(|l| l["table"] == "usage_chunks")
            .collect();
        let ids: Vec<&Value> = reported.iter().map(|l| &l["row"]["origin"]["id"]).collect();
        assert_eq!(ids, ["e1", "e2", "e3"], "{reported:?}");
        for l in &reported {
            // Exact decimals, as the usage API shows them.
            assert_eq!(l["row"]["raw_units"], "5");
            assert_eq!(l["row"]["credits"], "0.005");
            assert_eq!(l["row"]["tenant_id"], admin.tenant_id());
        }
        assert!(!text.contains(other.tenant_id()), "another tenant's rows");
        assert!(!text.contains("\"Other\""));
        assert!(!text.contains("api_key_digest") && !text.contains("digest"));
        // Members may not export.
        assert!(db.export_tenant(&member, |_| Ok(())).is_err());
    }
}
