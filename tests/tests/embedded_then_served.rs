//! Cross-crate: a database written in-process through `bespin-core` is served, unchanged, by
//! the `bespin-http` server — the embedded and the HTTP surfaces are one system.
#![allow(clippy::unwrap_used)]

use bespin_core::tenancy::NewTenant;
use bespin_core::{Bespin, Options};
use bespin_http::testing::{TestServer, test_config};
use std::sync::Arc;

#[test]
fn a_tenant_created_in_process_is_visible_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.redb");
    let t = {
        let db = Bespin::open(&path).unwrap();
        db.create_tenant(NewTenant {
            name: "Embedded".into(),
            region: "eu".into(),
            admin_email: "e@mbed.io".into(),
        })
        .unwrap()
    };
    let clock = Arc::new(bespin_core::time::SystemClock);
    let db = Bespin::open_with(&path, clock, Options::default()).unwrap();
    let s = TestServer::start_with(db, test_config());
    let h = [
        ("X-Tenant-ID", t.tenant_id.as_str()),
        ("X-User-ID", t.admin.user_id.as_str()),
        ("X-API-Key", t.api_key.as_str()),
    ];
    let r = s.call("GET", "/v1/billing/plan", &h, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tenant_id"], t.tenant_id.as_str());
}
