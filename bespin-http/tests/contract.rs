//! Every "Order of checks" list and every state table of the HTTP contract, cell by cell, over
//! real HTTP.
//!
//! A list says which of two failures wins, so each cell sends a request that fails at its step
//! **and** at the steps after it (where the API lets a request fail there) and expects the
//! step's own answer. State-table cells drive a record into each state and try each operation.
//! Refusals and no-ops must write nothing: the cells that say so compare the tenant's usage and
//! timeline before and after. The tests are grouped by the contract's parts (10: conventions,
//! gateway and KPIs; 20: briefs, notifications, chat and daily quotas; 30: billing; 40: Core
//! OS; 50: the console); each cell names its section. Cells the API cannot reach (a tenant
//! without a subscription, a plan row that is missing, a role that is neither `admin` nor
//! `member`) are listed where they would be and not counted.
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestResponse, TestServer, TestTenant, test_config};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const ADMIN_KEY: (&str, &str) = ("X-Platform-Admin-Key", "test-admin-key");
/// Every capability key.
fn capabilities() -> [&'static str; 13] {
    bespin_core::billing::catalog::CAPABILITIES.map(|(key, _)| key)
}
const GHOST: &str = "00000000-0000-4000-8000-000000000000";

/// Cells checked by all tests of this file (printed by each test, so a `--nocapture` run shows
/// the running total).
static CELLS: AtomicUsize = AtomicUsize::new(0);

/// What a cell expects of `detail`.
enum Detail {
    /// Exactly this string.
    Is(&'static str),
    /// Exactly this value (for strings built at run time and whole objects).
    Eq(Value),
    /// An object holding at least these members.
    Has(Value),
    /// A validation list whose first item has this `type`.
    Invalid(&'static str),
    /// Not looked at (a success).
    Any,
}

/// A tenant with an admin, two members and a second tenant for cross-tenant cells.
struct World {
    s: TestServer,
    t: TestTenant,
    member: String,
    member2: String,
    other: TestTenant,
    checked: usize,
}

fn world() -> World {
    world_with(test_config())
}

fn world_with(config: bespin_http::Config) -> World {
    let s = TestServer::start(config);
    let t = s.create_tenant("Acme", "ada@acme.io");
    let member = s.add_user(&t, "max@acme.io", "member");
    let member2 = s.add_user(&t, "mia@acme.io", "member");
    let other = s.create_tenant("Umbrella", "uma@umbrella.io");
    let w = World {
        s,
        t,
        member,
        member2,
        other,
        checked: 0,
    };
    for (id, credits, caps) in [
        ("all", 100_000, &capabilities()[..]),
        ("zero", 0, &capabilities()[..]),
        ("none", 0, &[][..]),
    ] {
        w.new_plan(id, credits, caps);
    }
    w
}

impl World {
    /// One checked cell: `r` must have `status` and a `detail` as `detail` says.
    fn cell(&mut self, name: &str, r: &TestResponse, status: u16, detail: Detail) {
        let body = r.json();
        assert_eq!(r.status, status, "{name}: {}", r.body);
        let d = &body["detail"];
        match detail {
            Detail::Is(s) => assert_eq!(d, &json!(s), "{name}"),
            Detail::Eq(v) => assert_eq!(d, &v, "{name}"),
            Detail::Has(v) => {
                for (k, want) in v.as_object().unwrap() {
                    assert_eq!(&d[k], want, "{name}: detail.{k} in {body}");
                }
            }
            Detail::Invalid(kind) => assert_eq!(d[0]["type"], kind, "{name}: {body}"),
            Detail::Any => {}
        }
        self.checked += 1;
        CELLS.fetch_add(1, Ordering::Relaxed);
    }

    /// A request as `user` of the main tenant, with extra headers.
    fn req(
        &self,
        user: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> TestResponse {
        let mut h = self.t.headers(user);
        h.extend_from_slice(extra);
        self.s.call(method, path, &h, body.as_ref())
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> TestResponse {
        self.req(&self.t.admin, method, path, &[], body)
    }

    fn member(&self, method: &str, path: &str, body: Option<Value>) -> TestResponse {
        self.req(&self.member, method, path, &[], body)
    }

    /// A request with raw body bytes and exactly these headers.
    fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> TestResponse {
        let mut h = headers.to_vec();
        h.push(("Content-Type", "application/json"));
        self.s.raw(method, path, &h, body)
    }

    /// A platform-admin call that must succeed.
    fn platform(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self.s.call(method, path, &[ADMIN_KEY], Some(&body));
        assert!(r.status < 300, "{method} {path}: {}", r.body);
        r.json()
    }

    fn new_plan(&self, id: &str, credits: u64, caps: &[&str]) {
        self.platform(
            "POST",
            "/v1/admin/plans",
            json!({"plan_id": id, "name": id, "included_credits": credits, "overage_price_per_credit": 0}),
        );
        self.platform(
            "PUT",
            &format!("/v1/admin/plans/{id}/capabilities"),
            json!({ "capabilities": caps }),
        );
    }

    /// Moves the main tenant to `plan` with `status`.
    fn plan(&self, plan: &str, status: &str) {
        self.platform(
            "PUT",
            &format!("/v1/admin/tenants/{}/subscription", self.t.id),
            json!({"plan_id": plan, "status": status}),
        );
    }

    fn limits(&self, per_day: u64) {
        let r = self.admin(
            "PUT",
            "/v1/limits",
            Some(json!({"assistant_query_daily_limit": per_day, "tool_invocation_daily_limit": per_day,
                "daily_brief_generated_daily_limit": per_day, "notification_enqueued_daily_limit": per_day})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// (credits used this period, timeline events): what a refusal or a no-op must not change.
    fn trail(&self) -> (Value, Value) {
        let usage = self.admin("GET", "/v1/billing/usage", None).json();
        let previous = self.plan_id();
        self.plan("all", "active");
        let events = self.admin("GET", "/v1/timeline?limit=1", None).json();
        self.plan(&previous, "active");
        (usage["credits"]["used"].clone(), events["total"].clone())
    }

    fn plan_id(&self) -> String {
        self.admin("GET", "/v1/billing/plan", None).json()["plan_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a record as `user` (201) and returns the named id.
    fn make(&self, user: &str, path: &str, body: Value, id: &str) -> String {
        let r = self.req(user, "POST", path, &[], Some(body));
        assert_eq!(r.status, 201, "{path}: {}", r.body);
        r.json()[id].as_str().unwrap().to_owned()
    }

    fn action_by(&self, user: &str) -> String {
        self.make(
            user,
            "/v1/actions",
            json!({"title": "Call ACME", "action_type": "outreach"}),
            "action_id",
        )
    }

    /// An action created by the member and driven by the admin into `state`.
    fn action_in(&self, state: &str) -> String {
        let id = self.action_by(&self.member);
        let step = |verb: &str, body: Value| {
            let r = self.admin("POST", &format!("/v1/actions/{id}/{verb}"), Some(body));
            assert_eq!(r.status, 200, "{verb}: {}", r.body);
        };
        match state {
            "proposed" => {}
            "approved" => step("approve", json!({})),
            "rejected" => step("reject", json!({})),
            "cancelled" => step("cancel", json!({})),
            "executed" => {
                step("approve", json!({}));
                step("execute", json!({"execution_status": "succeeded"}));
            }
            _ => unreachable!(),
        }
        id
    }

    fn done(&self, part: &str) {
        println!(
            "{part}: {} cells (all tests so far: {})",
            self.checked,
            CELLS.load(Ordering::Relaxed)
        );
    }
}

fn role(r: &str) -> String {
    format!("Role '{r}' is not authorized for this action")
}

fn denied(cap: &str, plan: &str) -> Detail {
    Detail::Has(json!({"error": "capability_denied", "capability_key": cap, "plan_id": plan}))
}

fn quota(event: &str) -> Detail {
    Detail::Has(json!({"error": "quota_exceeded", "event_key": event}))
}

fn daily(activity: &str) -> Detail {
    Detail::Has(json!({"error": "quota_exceeded", "activity_type": activity}))
}

/// Request headers of a case.
type Headers<'a> = Vec<(&'a str, &'a str)>;

const IDEM: &str = "Missing required header: Idempotency-Key";

/// 10 §3.2 (order of checks for any endpoint), §4.2 (authentication table), §4.4
/// (entitlements), §4.5 (platform-admin key), §10.5 (users), §10.6 (tool invocation),
/// §10.8–§10.11 (KPIs).
#[test]
fn part_10_conventions_gateway_and_kpis() {
    let mut w = world();
    let (tid, key, admin) = (w.t.id.clone(), w.t.key.clone(), w.t.admin.clone());
    let idem = ("Idempotency-Key", "k1");

    // §3.2 step 1: routing wins over everything.
    let r = w.raw("POST", "/v1/nowhere", &[], b"{");
    w.cell(
        "10 §3.2.1 unknown path before JSON",
        &r,
        404,
        Detail::Is("Not Found"),
    );
    let r = w.raw("DELETE", "/v1/tools/invoke", &[], b"{");
    w.cell(
        "10 §3.2.1 wrong method before JSON",
        &r,
        405,
        Detail::Is("Method Not Allowed"),
    );
    // Step 2: malformed JSON before the Idempotency-Key and the credentials.
    let r = w.raw("POST", "/v1/tools/invoke", &[], b"{");
    w.cell(
        "10 §3.2.2 JSON before headers",
        &r,
        422,
        Detail::Invalid("json_invalid"),
    );
    // Step 3: Idempotency-Key before the credentials.
    let r = w.raw("POST", "/v1/tools/invoke", &[], b"{}");
    w.cell(
        "10 §3.2.3 Idempotency-Key before auth",
        &r,
        400,
        Detail::Is(IDEM),
    );
    // Step 4: credentials before validation.
    let r = w.raw("POST", "/v1/tools/invoke", &[idem], b"{\"payload\":5}");
    w.cell(
        "10 §3.2.4 auth before 422",
        &r,
        400,
        Detail::Is("Missing required header: X-Tenant-ID"),
    );
    // Step 5: validation before the role.
    let r = w.req(
        &w.member,
        "POST",
        "/v1/tools/invoke",
        &[idem],
        Some(json!({})),
    );
    w.cell(
        "10 §3.2.5 422 before role",
        &r,
        422,
        Detail::Invalid("missing"),
    );
    // Step 6: the endpoint's own order (role before entitlement here).
    w.plan("none", "active");
    let body = json!({"tool_name": "echo"});
    let r = w.req(
        &w.member,
        "POST",
        "/v1/tools/invoke",
        &[idem],
        Some(body.clone()),
    );
    w.cell(
        "10 §3.2.6 role before entitlement",
        &r,
        403,
        Detail::Eq(json!("Role 'member' is not authorized to invoke tools")),
    );

    // §4.2: each step wins over the ones after it.
    let u = w.member.clone();
    let them = w.other.admin.clone();
    #[rustfmt::skip]
    let cases: [(&str, Headers, u16, &str); 11] = [
        ("1 absent", vec![], 400, "Missing required header: X-Tenant-ID",),
        ("1 empty", vec![("X-Tenant-ID", ""), ("X-User-ID", "u"), ("X-API-Key", "k")], 400, "Missing required header: X-Tenant-ID"),
        ("2 absent", vec![("X-Tenant-ID", "nope")], 400, "Missing required header: X-User-ID",),
        ("2 blank", vec![("X-Tenant-ID", "nope"), ("X-User-ID", " "), ("X-API-Key", "k")], 400, "Missing required header: X-User-ID"),
        ("3 absent", vec![("X-Tenant-ID", "nope"), ("X-User-ID", "nobody")], 400, "Missing required header: X-API-Key"),
        ("3 empty", vec![("X-Tenant-ID", "nope"), ("X-User-ID", "nobody"), ("X-API-Key", "")], 400, "Missing required header: X-API-Key"),
        ("4 unknown tenant", vec![("X-Tenant-ID", "nope"), ("X-User-ID", "nobody"), ("X-API-Key", &key)], 401, "Invalid tenant ID or API key"),
        ("4 wrong key", vec![("X-Tenant-ID", &tid), ("X-User-ID", "nobody"), ("X-API-Key", "bsk_wrong")], 401, "Invalid tenant ID or API key"),
        ("5 unknown user", vec![("X-Tenant-ID", &tid), ("X-User-ID", "nobody"), ("X-API-Key", &key)], 403, "User not found"),
        ("6 other tenant's user", vec![("X-Tenant-ID", &tid), ("X-User-ID", &them), ("X-API-Key", &key)], 403, "User does not belong to this tenant"),
        ("case-insensitive names", vec![("x-tenant-id", &tid), ("x-user-id", &u), ("x-api-key", &key)], 200, ""),
    ];
    for (name, h, status, detail) in cases {
        let r = w.s.call("GET", "/v1/me", &h, None);
        let d = if status == 200 {
            Detail::Any
        } else {
            Detail::Eq(json!(detail))
        };
        w.cell(&format!("10 §4.2 step {name}"), &r, status, d);
    }

    // §4.4: a suspended subscription wins over a missing capability (row 1, no subscription,
    // cannot happen through the API: every tenant is created with one).
    w.plan("none", "suspended");
    let r = w.admin("GET", "/v1/kpis", None);
    w.cell("10 §4.4 row 2 suspended before capability", &r, 403,
        Detail::Eq(json!({"error": "subscription_suspended", "message": "Tenant subscription is suspended", "status": "suspended"})));
    w.plan("none", "active");
    let r = w.admin("GET", "/v1/kpis", None);
    w.cell("10 §4.4 row 3 capability", &r, 403,
        Detail::Eq(json!({"error": "capability_denied", "message": "Plan does not include capability: kpi_read", "capability_key": "kpi_read", "plan_id": "none"})));

    // §4.5 and 30 §8.1: the admin key, after routing and JSON parsing, before the body.
    for (name, h) in [
        ("missing", vec![]),
        ("wrong", vec![("X-Platform-Admin-Key", "nope")]),
    ] {
        let r = w.s.call("GET", "/v1/admin/plans", &h, None);
        w.cell(
            &format!("10 §4.5 {name} key"),
            &r,
            404,
            Detail::Is("Not Found"),
        );
    }
    let r = w.s.call(
        "POST",
        "/v1/admin/plans",
        &[],
        Some(&json!({"plan_id": ""})),
    );
    w.cell(
        "10 §4.5 key before body validation",
        &r,
        404,
        Detail::Is("Not Found"),
    );
    let r = w.raw("POST", "/v1/admin/plans", &[], b"{");
    w.cell(
        "30 §8.1 malformed JSON before the key",
        &r,
        422,
        Detail::Invalid("json_invalid"),
    );
    let r = w.s.call("DELETE", "/v1/admin/plans", &[], None);
    w.cell(
        "10 §3.2.1 routing (405) before the key",
        &r,
        405,
        Detail::Is("Method Not Allowed"),
    );

    // §10.5 users: auth → 422 → role → tenant match.
    w.plan("all", "active");
    let r = w.raw("POST", "/v1/users", &[], b"{\"role\":\"boss\"}");
    w.cell(
        "10 §10.5 auth before 422",
        &r,
        400,
        Detail::Is("Missing required header: X-Tenant-ID"),
    );
    let r = w.member(
        "POST",
        "/v1/users",
        Some(json!({"tenant_id": tid, "email": "x@acme.io", "role": "boss"})),
    );
    w.cell(
        "10 §10.5 422 before role",
        &r,
        422,
        Detail::Invalid("string_pattern_mismatch"),
    );
    let foreign = json!({"tenant_id": w.other.id, "email": "x@acme.io", "role": "member"});
    let r = w.member("POST", "/v1/users", Some(foreign.clone()));
    w.cell(
        "10 §10.5 role before tenant match",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to create users"),
    );
    let r = w.admin("POST", "/v1/users", Some(foreign));
    w.cell(
        "10 §10.5 tenant match",
        &r,
        403,
        Detail::Is("Cannot create users for a different tenant"),
    );

    // §10.6 tool invocation, the processing table (steps 1–9 and 11; step 10, a tool that
    // fails, has no case: tool problems are answers inside `result`).
    let invoke = |w: &World, user: &str, k: &str, body: Value| {
        w.req(
            user,
            "POST",
            "/v1/tools/invoke",
            &[("Idempotency-Key", k)],
            Some(body),
        )
    };
    let r = w.s.call(
        "POST",
        "/v1/tools/invoke",
        &[("X-Tenant-ID", "nope")],
        Some(&json!({})),
    );
    w.cell("10 §10.6 step 1 before 2", &r, 400, Detail::Is(IDEM));
    let r = w.s.call(
        "POST",
        "/v1/tools/invoke",
        &[
            idem,
            ("X-Tenant-ID", &tid),
            ("X-User-ID", &admin),
            ("X-API-Key", "bad"),
        ],
        Some(&json!({})),
    );
    w.cell(
        "10 §10.6 step 2 before 3",
        &r,
        401,
        Detail::Is("Invalid tenant ID or API key"),
    );
    let r = invoke(&w, &w.member, "k1", json!({"tool_name": ""}));
    w.cell(
        "10 §10.6 step 3 before 4",
        &r,
        422,
        Detail::Invalid("string_too_short"),
    );
    w.plan("none", "suspended");
    let r = invoke(&w, &w.member, "k1", body.clone());
    w.cell(
        "10 §10.6 step 4 before 5",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to invoke tools"),
    );
    w.plan("all", "active");
    let first = invoke(&w, &admin, "k1", body.clone());
    w.cell("10 §10.6 step 11 success", &first, 200, Detail::Any);
    w.plan("none", "active");
    let r = invoke(&w, &admin, "k1", body.clone());
    w.cell(
        "10 §10.6 step 5 before 6 (a replay needs the capability)",
        &r,
        403,
        denied("tools", "none"),
    );
    w.plan("zero", "active");
    w.limits(0);
    let r = invoke(&w, &admin, "k1", body.clone());
    assert_eq!(r.body, first.body);
    w.cell(
        "10 §10.6 step 6 before 7 (replay while out of quota)",
        &r,
        200,
        Detail::Any,
    );
    let r = invoke(&w, &admin, "k1", json!({"tool_name": "nope"}));
    w.cell(
        "10 §10.6 step 6 conflict before quota and tool",
        &r,
        409,
        Detail::Is("Idempotency key 'k1' was already used with a different request body"),
    );
    let before = w.trail();
    let r = invoke(&w, &admin, "k2", json!({"tool_name": "nope"}));
    w.cell(
        "10 §10.6 step 7 before 8",
        &r,
        429,
        quota("tool_invocation"),
    );
    w.plan("all", "active");
    let r = invoke(&w, &admin, "k2", json!({"tool_name": "nope"}));
    w.cell(
        "10 §10.6 step 8 before 9",
        &r,
        429,
        daily("tool_invocation"),
    );
    w.limits(100);
    let r = invoke(&w, &admin, "k2", json!({"tool_name": "nope"}));
    w.cell(
        "10 §10.6 step 9",
        &r,
        404,
        Detail::Is("Tool 'nope' not found"),
    );
    assert_eq!(w.trail(), before, "refusals record nothing");

    // §10.8 KPI create: auth → 422 → role → entitlement → quota.
    let bad = |w: &World, method: &str, path: &str, body: &[u8]| {
        w.raw(
            method,
            path,
            &[
                ("X-Tenant-ID", &tid),
                ("X-User-ID", &admin),
                ("X-API-Key", "bad"),
            ],
            body,
        )
    };
    let r = bad(&w, "POST", "/v1/kpis", b"{\"name\":\"\"}");
    w.cell(
        "10 §10.8 auth before 422",
        &r,
        401,
        Detail::Is("Invalid tenant ID or API key"),
    );
    let r = w.member("POST", "/v1/kpis", Some(json!({"name": ""})));
    w.cell(
        "10 §10.8 422 before role",
        &r,
        422,
        Detail::Invalid("string_too_short"),
    );
    w.plan("none", "active");
    let r = w.member("POST", "/v1/kpis", Some(json!({"name": "MRR"})));
    w.cell(
        "10 §10.8 role before entitlement",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to create KPIs"),
    );
    let r = w.admin("POST", "/v1/kpis", Some(json!({"name": "MRR"})));
    w.cell(
        "10 §10.8 entitlement before quota",
        &r,
        403,
        denied("kpi_ingest", "none"),
    );
    w.plan("zero", "active");
    let r = w.admin("POST", "/v1/kpis", Some(json!({"name": "MRR"})));
    w.cell("10 §10.8 quota", &r, 429, quota("kpi_definition_created"));
    w.plan("all", "active");
    let r = w.admin("POST", "/v1/kpis", Some(json!({"name": "MRR"})));
    w.cell("10 §10.8 create", &r, 201, Detail::Any);
    let kpi = r.json()["kpi_id"].as_str().unwrap().to_owned();
    let empty_kpi = w.make(&admin, "/v1/kpis", json!({"name": "Empty"}), "kpi_id");

    // §10.9 bulk ingest: auth → 422 → role → entitlement → lookup → duplicates → quota.
    let bulk = format!("/v1/kpis/{kpi}/points:bulk");
    let ghost_bulk = format!("/v1/kpis/{GHOST}/points:bulk");
    let point = json!({"points": [{"ts": "2026-01-01", "value": 1}]});
    let r = bad(&w, "POST", &bulk, b"{\"points\":[]}");
    w.cell(
        "10 §10.9 auth before 422",
        &r,
        401,
        Detail::Is("Invalid tenant ID or API key"),
    );
    let r = w.member("POST", &ghost_bulk, Some(json!({"points": []})));
    w.cell(
        "10 §10.9 422 before role",
        &r,
        422,
        Detail::Invalid("too_short"),
    );
    w.plan("none", "active");
    let r = w.member("POST", &ghost_bulk, Some(point.clone()));
    w.cell(
        "10 §10.9 role before entitlement",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to ingest KPI points"),
    );
    let r = w.admin("POST", &ghost_bulk, Some(point.clone()));
    w.cell(
        "10 §10.9 entitlement before lookup",
        &r,
        403,
        denied("kpi_ingest", "none"),
    );
    w.plan("zero", "active");
    let r = w.admin("POST", &ghost_bulk, Some(point.clone()));
    w.cell(
        "10 §10.9 lookup before quota",
        &r,
        404,
        Detail::Eq(json!(format!("KPI '{GHOST}' not found"))),
    );
    w.plan("all", "active");
    assert_eq!(w.admin("POST", &bulk, Some(point.clone())).status, 200);
    w.plan("zero", "active");
    let r = w.admin("POST", &bulk, Some(point));
    assert_eq!(r.json(), json!({"inserted": 0, "ignored": 1}));
    w.cell(
        "10 §10.9 duplicates before quota (no quota check when all are known)",
        &r,
        200,
        Detail::Any,
    );
    let r = w.admin(
        "POST",
        &bulk,
        Some(json!({"points": [{"ts": "2026-01-02", "value": 2}]})),
    );
    w.cell("10 §10.9 quota", &r, 429, quota("kpi_points_ingested"));

    // §10.10 list: auth → query 422 → (role: cannot fail, both roles read) → entitlement.
    w.plan("none", "active");
    let r = bad(&w, "GET", "/v1/kpis?limit=abc", b"");
    w.cell(
        "10 §10.10 auth before 422",
        &r,
        401,
        Detail::Is("Invalid tenant ID or API key"),
    );
    let r = w.member("GET", "/v1/kpis?limit=abc", None);
    w.cell(
        "10 §10.10 422 before entitlement",
        &r,
        422,
        Detail::Invalid("int_parsing"),
    );
    let r = w.member("GET", "/v1/kpis", None);
    w.cell("10 §10.10 entitlement", &r, 403, denied("kpi_read", "none"));
    // §10.11 latest: auth → (role) → entitlement → lookup → latest point.
    let r = bad(&w, "GET", &format!("/v1/kpis/{GHOST}/latest"), b"");
    w.cell(
        "10 §10.11 auth first",
        &r,
        401,
        Detail::Is("Invalid tenant ID or API key"),
    );
    let r = w.member("GET", &format!("/v1/kpis/{GHOST}/latest"), None);
    w.cell(
        "10 §10.11 entitlement before lookup",
        &r,
        403,
        denied("kpi_read", "none"),
    );
    w.plan("all", "active");
    let r = w.member("GET", &format!("/v1/kpis/{GHOST}/latest"), None);
    w.cell(
        "10 §10.11 lookup",
        &r,
        404,
        Detail::Eq(json!(format!("KPI '{GHOST}' not found"))),
    );
    let r = w.member("GET", &format!("/v1/kpis/{empty_kpi}/latest"), None);
    w.cell(
        "10 §10.11 latest point",
        &r,
        404,
        Detail::Eq(json!(format!("No data points found for KPI '{empty_kpi}'"))),
    );
    w.done("10");
}

/// 10 §7 (the rate limiter runs before routing, CORS and body parsing).
#[test]
fn part_10_rate_limit_runs_first() {
    let mut config = test_config();
    config.rate_limit.enabled = true;
    config.rate_limit.limit = 2;
    let mut w = world_with(config);
    let r = w.raw("POST", "/v1/tenants", &[], b"{");
    let d = Detail::Is("Rate limit exceeded. Maximum 2 requests per 60 seconds.");
    w.cell("10 §3.2.1 / §7 rate limit before JSON", &r, 429, d);
    w.done("10 §7");
}

/// 20 §1.1–§1.8 (idempotency, authentication, evaluation order, entitlement, credits layer),
/// §3.2–§3.4 (briefs), §4.4 (ack), §5 (the runner), §6.4 (chat), §7.1 (the two quota layers),
/// §7.3 (limits).
#[test]
fn part_20_briefs_notifications_chat_and_daily_quotas() {
    let mut w = world();
    let admin = w.t.admin.clone();
    let tid = w.t.id.clone();
    let with_key = |w: &World, user: &str, path: &str, k: &str, body: Value| {
        w.req(user, "POST", path, &[("Idempotency-Key", k)], Some(body))
    };
    for path in ["/v1/briefs/materialize", "/v1/jobs/daily-brief"] {
        // §1.2 step 1: malformed JSON before everything.
        let r = w.raw("POST", path, &[], b"{");
        w.cell(
            &format!("20 §1.2.1 {path} JSON first"),
            &r,
            422,
            Detail::Invalid("json_invalid"),
        );
        // §1.1: the Idempotency-Key before the credentials.
        let r =
            w.s.call("POST", path, &[("X-Tenant-ID", "nope")], Some(&json!({})));
        w.cell(
            &format!("20 §1.1 {path} Idempotency-Key before auth"),
            &r,
            400,
            Detail::Is(IDEM),
        );
        // §1.2 steps 3–4: credentials before validation, validation before the role.
        let r = w.raw(
            "POST",
            path,
            &[("Idempotency-Key", "x"), ("X-Tenant-ID", &tid)],
            b"{\"top_n\":0}",
        );
        w.cell(
            &format!("20 §1.2.3 {path} auth before 422"),
            &r,
            400,
            Detail::Is("Missing required header: X-User-ID"),
        );
        let r = with_key(&w, &w.member, path, "x", json!({"top_n": 0}));
        w.cell(
            &format!("20 §1.2.4 {path} 422 before role"),
            &r,
            422,
            Detail::Invalid("greater_than_equal"),
        );
    }

    // §1.5 entitlement (row 1, no subscription, cannot happen through the API).
    let chat = |w: &World, body: Value| w.admin("POST", "/v1/cofounder/chat", Some(body));
    w.plan("none", "suspended");
    let r = chat(&w, json!({"message": "help"}));
    w.cell(
        "20 §1.5 row 2 before 3",
        &r,
        403,
        Detail::Has(json!({"error": "subscription_suspended", "status": "suspended"})),
    );
    w.plan("none", "active");
    let r = chat(&w, json!({"message": "help"}));
    w.cell("20 §1.5 row 3", &r, 403, denied("chat", "none"));

    // §1.6 credits layer: unknown event type (3) before the allowance (4) before the cap (5).
    // Step 2 (a plan row that is missing) cannot happen: plans are never deleted.
    w.new_plan("capped", 1000, &capabilities());
    w.platform(
        "PUT",
        "/v1/admin/plans/capped/caps",
        json!({"caps": [{"event_key": "assistant_query", "cap_raw_units": 0}]}),
    );
    w.new_plan("zero_capped", 0, &capabilities());
    w.platform(
        "PUT",
        "/v1/admin/plans/zero_capped/caps",
        json!({"caps": [{"event_key": "assistant_query", "cap_raw_units": 0}]}),
    );
    w.plan("zero_capped", "active");
    w.platform(
        "PUT",
        "/v1/admin/metered-events/assistant_query",
        json!({"active": false}),
    );
    let r = chat(&w, json!({"message": "help"}));
    w.cell(
        "20 §1.6.3 inactive event before the allowance",
        &r,
        400,
        Detail::Eq(json!({"error": "unknown_event_type", "event_key": "assistant_query"})),
    );
    w.platform(
        "PUT",
        "/v1/admin/metered-events/assistant_query",
        json!({"active": true}),
    );
    let r = chat(&w, json!({"message": "help"}));
    w.cell("20 §1.6.4 allowance before cap", &r, 429, Detail::Has(json!({"error": "quota_exceeded", "event_key": "assistant_query", "cap_raw_units": null, "limit_credits": 0})));
    w.plan("capped", "active");
    let r = chat(&w, json!({"message": "help"}));
    w.cell("20 §1.6.5 cap", &r, 429, Detail::Has(json!({"error": "quota_exceeded", "cap_raw_units": 0.0, "used_raw_units": 0.0, "requested_raw_units": 1})));

    // §6.4 chat: (role: both roles may chat) → entitlement → credits → daily → conversation.
    w.plan("none", "active");
    w.limits(0);
    let r = chat(&w, json!({"message": "help", "conversation_id": "nope"}));
    w.cell(
        "20 §6.4.2 entitlement before credits",
        &r,
        403,
        denied("chat", "none"),
    );
    w.plan("zero", "active");
    let r = chat(&w, json!({"message": "help", "conversation_id": "nope"}));
    w.cell(
        "20 §6.4.3 / §7.1 credits before daily",
        &r,
        429,
        quota("assistant_query"),
    );
    w.plan("all", "active");
    let r = chat(&w, json!({"message": "help", "conversation_id": "nope"}));
    w.cell(
        "20 §6.4.4 / §7.1 daily before the conversation",
        &r,
        429,
        daily("assistant_query"),
    );
    w.limits(100);
    let before = w.trail();
    let r = chat(&w, json!({"message": "help", "conversation_id": "nope"}));
    w.cell(
        "20 §6.4.5 conversation lookup",
        &r,
        404,
        Detail::Is("Conversation not found"),
    );
    assert_eq!(w.trail(), before);
    let mine = chat(&w, json!({"message": "help"})).json()["conversation_id"].clone();
    let r = w.member(
        "POST",
        "/v1/cofounder/chat",
        Some(json!({"message": "help", "conversation_id": mine})),
    );
    w.cell(
        "20 §6.4.5 another user's conversation",
        &r,
        404,
        Detail::Is("Conversation not found"),
    );

    // §3.2 materialize: role → entitlement → idempotency → existing brief → credits → daily.
    let mat = "/v1/briefs/materialize";
    w.plan("none", "active");
    let r = with_key(&w, &w.member, mat, "b1", json!({"date": "2026-01-01"}));
    w.cell(
        "20 §3.2.1 role before entitlement",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to materialize briefs"),
    );
    let r = with_key(&w, &admin, mat, "b1", json!({"date": "2026-01-01"}));
    w.cell("20 §3.2.2 entitlement", &r, 403, denied("briefs", "none"));
    w.plan("all", "active");
    let first = with_key(&w, &admin, mat, "b1", json!({"date": "2026-01-01"}));
    w.cell("20 §3.2.6–8 materialize", &first, 200, Detail::Any);
    let brief_id = first.json()["brief_id"].clone();
    w.plan("none", "active");
    let r = with_key(&w, &admin, mat, "b1", json!({"date": "2026-01-01"}));
    w.cell(
        "20 §1.8 a replay needs the capability",
        &r,
        403,
        denied("briefs", "none"),
    );
    w.plan("zero", "active");
    let r = with_key(&w, &w.member, mat, "b1", json!({"date": "2026-01-01"}));
    w.cell(
        "20 §1.8 a replay needs the role",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to materialize briefs"),
    );
    let r = with_key(&w, &admin, mat, "b1", json!({"date": "2026-01-01"}));
    assert_eq!(r.body, first.body);
    w.cell(
        "20 §1.8 / §3.2.3 replay while out of quota",
        &r,
        200,
        Detail::Any,
    );
    let r = with_key(&w, &admin, mat, "b1", json!({"date": "2026-01-02"}));
    w.cell(
        "20 §1.8 / §3.2.3 conflict",
        &r,
        409,
        Detail::Is("Idempotency key 'b1' was already used with a different request body"),
    );
    let before = w.trail();
    let r = with_key(
        &w,
        &admin,
        mat,
        "b2",
        json!({"date": "2026-01-01", "top_n": 5}),
    );
    assert_eq!(r.json()["brief_id"], brief_id);
    w.cell(
        "20 §3.2.4 existing brief before quota",
        &r,
        200,
        Detail::Any,
    );
    assert_eq!(w.trail(), before, "an existing brief costs nothing");
    w.limits(0);
    let r = with_key(&w, &admin, mat, "b3", json!({"date": "2026-01-03"}));
    w.cell(
        "20 §3.2.5 / §7.1 credits before daily",
        &r,
        429,
        quota("daily_brief_generated"),
    );
    w.plan("all", "active");
    let r = with_key(&w, &admin, mat, "b3", json!({"date": "2026-01-03"}));
    w.cell("20 §3.2.5 daily", &r, 429, daily("daily_brief_generated"));
    w.limits(100);
    // §3.3–§3.4 reads: (role: both roles read) → lookup.
    let r = w.other_admin("GET", "/v1/briefs/latest");
    w.cell(
        "20 §3.3.2 none",
        &r,
        404,
        Detail::Is("No briefs found for this tenant"),
    );
    let r = w.member("GET", "/v1/briefs/2026-01-09", None);
    w.cell(
        "20 §3.4.2 unknown date",
        &r,
        404,
        Detail::Is("Brief for date '2026-01-09' not found"),
    );

    // §5 the runner: role → briefs → notifications → idempotency → brief (credits, daily) →
    // recipients (ignored first) → allowance.
    let job = "/v1/jobs/daily-brief";
    w.new_plan("briefs_only", 1000, &["briefs"]);
    w.plan("none", "active");
    let r = with_key(&w, &w.member, job, "j1", json!({"date": "2026-02-01"}));
    w.cell(
        "20 §5.1 role before entitlement",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to run jobs"),
    );
    let r = with_key(&w, &admin, job, "j1", json!({"date": "2026-02-01"}));
    w.cell(
        "20 §5.2 briefs before notifications",
        &r,
        403,
        denied("briefs", "none"),
    );
    w.plan("briefs_only", "active");
    let r = with_key(&w, &admin, job, "j1", json!({"date": "2026-02-01"}));
    w.cell(
        "20 §5.2 notifications",
        &r,
        403,
        denied("notifications", "briefs_only"),
    );
    w.plan("all", "active");
    let limits = json!({"assistant_query_daily_limit": 100, "tool_invocation_daily_limit": 100,
        "daily_brief_generated_daily_limit": 10, "notification_enqueued_daily_limit": 1});
    assert_eq!(w.admin("PUT", "/v1/limits", Some(limits)).status, 200);
    let first = with_key(&w, &admin, job, "j1", json!({"date": "2026-02-01"}));
    assert_eq!(
        (
            &first.json()["brief_created"],
            &first.json()["notifications_inserted"],
            &first.json()["notifications_suppressed_due_to_quota"]
        ),
        (&json!(true), &json!(1), &json!(2))
    );
    w.cell(
        "20 §5.9–10 allowance: daily limit 1 over 3 users",
        &first,
        200,
        Detail::Any,
    );
    w.plan("zero", "active");
    let r = with_key(&w, &admin, job, "j1", json!({"date": "2026-02-01"}));
    assert_eq!(r.body, first.body);
    w.cell("20 §5.3 replay while out of quota", &r, 200, Detail::Any);
    let r = with_key(&w, &admin, job, "j1", json!({"date": "2026-02-02"}));
    w.cell(
        "20 §5.3 conflict",
        &r,
        409,
        Detail::Is("Idempotency key 'j1' was already used with a different request body"),
    );
    let r = with_key(&w, &admin, job, "j2", json!({"date": "2026-02-01"}));
    assert_eq!(
        (
            &r.json()["brief_created"],
            &r.json()["notifications_ignored"],
            &r.json()["notifications_inserted"]
        ),
        (&json!(false), &json!(1), &json!(0))
    );
    w.cell(
        "20 §5.4 / §5.8 existing brief needs no quota; notified users are ignored",
        &r,
        200,
        Detail::Any,
    );
    let r = with_key(&w, &admin, job, "j3", json!({"date": "2026-02-03"}));
    w.cell(
        "20 §5.4 a new brief needs credits",
        &r,
        429,
        quota("daily_brief_generated"),
    );

    // §4.4 ack: path 422 before the lookup; someone else's notification is a 404.
    w.plan("all", "active");
    let r = w.admin("POST", "/v1/notifications/abc/ack", None);
    w.cell(
        "20 §4.4 int_parsing",
        &r,
        422,
        Detail::Invalid("int_parsing"),
    );
    let outbox = w.admin("GET", "/v1/notifications/outbox", None).json();
    let n = outbox["items"][0]["id"].as_i64().unwrap();
    let r = w.member("POST", &format!("/v1/notifications/{n}/ack"), None);
    w.cell(
        "20 §4.4 not the caller's",
        &r,
        404,
        Detail::Eq(json!(format!("Notification {n} not found"))),
    );

    // §7.3 limits: 422 before the role.
    let r = w.member("PUT", "/v1/limits", Some(json!({})));
    w.cell(
        "20 §7.3 422 before role",
        &r,
        422,
        Detail::Invalid("missing"),
    );
    let full = json!({"assistant_query_daily_limit": 1, "tool_invocation_daily_limit": 1,
        "daily_brief_generated_daily_limit": 1, "notification_enqueued_daily_limit": 1});
    let r = w.member("PUT", "/v1/limits", Some(full));
    w.cell(
        "20 §7.3 role",
        &r,
        403,
        Detail::Is("Role 'member' is not authorized to update limits"),
    );
    w.done("20");
}

impl World {
    fn other_admin(&self, method: &str, path: &str) -> TestResponse {
        self.s.call(method, path, &self.other.admin_headers(), None)
    }
}

/// 30 §6.2 (the allowance is inclusive), §8.1 (tenant headers before query validation),
/// §8.2.3 (usage), §8.3.7–§8.3.9 (admin PUTs: lookups before items).
#[test]
fn part_30_billing() {
    let mut w = world();
    // §6.2 step 5: reaching the allowance exactly is allowed, one more credit is not.
    w.new_plan("two", 2, &capabilities());
    w.plan("two", "active");
    let r = w.admin(
        "POST",
        "/v1/tools/invoke",
        Some(json!({"tool_name": "echo"})),
    );
    assert_eq!(r.status, 400, "needs its Idempotency-Key");
    let call = |w: &World, k: &str| {
        w.req(
            &w.t.admin,
            "POST",
            "/v1/tools/invoke",
            &[("Idempotency-Key", k)],
            Some(json!({"tool_name": "echo"})),
        )
    };
    let r = call(&w, "a");
    w.cell(
        "30 §6.2.5 used + requested == included passes",
        &r,
        200,
        Detail::Any,
    );
    let r = call(&w, "b");
    w.cell("30 §6.2.5 over the allowance", &r, 429, Detail::Has(json!({"error": "quota_exceeded", "limit_credits": 2, "used_credits": 2.0, "requested_credits": 2.0})));
    // §8.1: header errors before query validation.
    let r =
        w.s.call("GET", "/v1/billing/usage?period_start=nope", &[], None);
    w.cell(
        "30 §8.1 headers before query",
        &r,
        400,
        Detail::Is("Missing required header: X-Tenant-ID"),
    );
    // §8.2.3: an unparseable period_start is the 422 of spec README decision 3 (the reference's 500).
    let r = w.admin("GET", "/v1/billing/usage?period_start=nope", None);
    w.cell("30 §8.2.3 period_start", &r, 422, Detail::Any);
    // §8.3.7 capabilities: plan lookup → keys in order.
    let caps = |w: &World, plan: &str, list: Value| {
        w.s.call(
            "PUT",
            &format!("/v1/admin/plans/{plan}/capabilities"),
            &[ADMIN_KEY],
            Some(&json!({"capabilities": list})),
        )
    };
    let r = caps(&w, "ghost", json!(["nope"]));
    w.cell(
        "30 §8.3.7 plan before keys",
        &r,
        404,
        Detail::Is("Plan 'ghost' not found"),
    );
    let r = caps(&w, "two", json!(["chat", "nope", "worse"]));
    w.cell(
        "30 §8.3.7 first unknown key",
        &r,
        400,
        Detail::Is("Capability 'nope' not found"),
    );
    assert_eq!(
        w.admin("GET", "/v1/billing/plan", None).json()["capabilities"]
            .as_array()
            .unwrap()
            .len(),
        13,
        "nothing changed"
    );
    // §8.3.8 caps: plan lookup → events in order.
    let cap = |w: &World, plan: &str| {
        w.s.call("PUT", &format!("/v1/admin/plans/{plan}/caps"), &[ADMIN_KEY],
            Some(&json!({"caps": [{"event_key": "chat_x", "cap_raw_units": 1}, {"event_key": "nope", "cap_raw_units": 1}]})))
    };
    let r = cap(&w, "ghost");
    w.cell(
        "30 §8.3.8 plan before events",
        &r,
        404,
        Detail::Is("Plan 'ghost' not found"),
    );
    let r = cap(&w, "two");
    w.cell(
        "30 §8.3.8 first unknown event",
        &r,
        400,
        Detail::Is("Event type 'chat_x' not found"),
    );
    // §8.3.9 subscription: tenant → plan.
    let sub = |w: &World, tenant: &str| {
        w.s.call(
            "PUT",
            &format!("/v1/admin/tenants/{tenant}/subscription"),
            &[ADMIN_KEY],
            Some(&json!({"plan_id": "ghost"})),
        )
    };
    let r = sub(&w, "nobody");
    w.cell(
        "30 §8.3.9 tenant before plan",
        &r,
        404,
        Detail::Is("Tenant 'nobody' not found"),
    );
    let r = sub(&w, &w.t.id.clone());
    w.cell(
        "30 §8.3.9 plan",
        &r,
        404,
        Detail::Is("Plan 'ghost' not found"),
    );
    w.done("30");
}

/// 40 §1.2: every operation in every state (PATCH `status: "cancelled"` as the creator and as
/// an admin), with the exact answer and no writes for no-ops and refusals.
#[test]
fn part_40_action_state_table() {
    let mut w = world();
    w.plan("all", "active");
    let states = ["proposed", "approved", "rejected", "cancelled", "executed"];
    for state in states {
        for op in [
            "approve",
            "reject",
            "cancel",
            "execute",
            "patch as creator",
            "patch as admin",
        ] {
            let id = w.action_in(state);
            let before = w.trail();
            let path = format!("/v1/actions/{id}");
            let r = match op {
                "approve" | "reject" | "cancel" => {
                    w.admin("POST", &format!("{path}/{op}"), Some(json!({})))
                }
                "execute" => w.admin(
                    "POST",
                    &format!("{path}/execute"),
                    Some(json!({"execution_status": "succeeded"})),
                ),
                "patch as creator" => {
                    w.member("PATCH", &path, Some(json!({"status": "cancelled"})))
                }
                _ => w.admin("PATCH", &path, Some(json!({"status": "cancelled"}))),
            };
            let name = format!("40 §1.2 {op} on {state}");
            let status_of = |r: &TestResponse| {
                let v = r.json();
                v.get("action")
                    .map_or(v["status"].clone(), |a| a["status"].clone())
            };
            // (status, detail, resulting action status or None when nothing may change)
            let (code, detail, to): (u16, Detail, Option<&str>) = match (op, state) {
                ("approve", "proposed") => (200, Detail::Any, Some("approved")),
                ("approve", "approved")
                | ("reject", "rejected")
                | ("cancel", "cancelled")
                | ("execute", "executed") => (200, Detail::Any, None),
                ("approve", "rejected") => (
                    409,
                    Detail::Is("Cannot approve an already rejected action"),
                    None,
                ),
                ("approve", "cancelled") => {
                    (409, Detail::Is("Cannot approve a cancelled action"), None)
                }
                ("approve", "executed") => (
                    409,
                    Detail::Is("Cannot approve action with status 'executed'"),
                    None,
                ),
                ("reject", "proposed") => (200, Detail::Any, Some("rejected")),
                ("reject", "approved") => (
                    409,
                    Detail::Is("Cannot reject an already approved action"),
                    None,
                ),
                ("reject", "cancelled") => {
                    (409, Detail::Is("Cannot reject a cancelled action"), None)
                }
                ("reject", "executed") => (
                    409,
                    Detail::Is("Cannot reject action with status 'executed'"),
                    None,
                ),
                ("cancel", "proposed") => (200, Detail::Any, Some("cancelled")),
                ("cancel", _) => (400, Detail::Is("Can only cancel proposed actions"), None),
                ("execute", "approved") => (200, Detail::Any, Some("executed")),
                ("execute", s) => (
                    409,
                    Detail::Eq(
                        json!({"error": "invalid_status_transition", "current_status": s,
                    "message": format!("Cannot execute action with status '{s}'. Only 'approved' actions can be executed.")}),
                    ),
                    None,
                ),
                (_, "proposed") => (200, Detail::Any, Some("cancelled")),
                ("patch as creator", _) => {
                    (403, Detail::Is("Can only update proposed actions"), None)
                }
                _ => (200, Detail::Any, None),
            };
            w.cell(&name, &r, code, detail);
            if code == 200 {
                assert_eq!(status_of(&r), json!(to.unwrap_or(state)), "{name}");
            }
            let after = w.trail();
            if to.is_some() {
                assert_ne!(
                    after, before,
                    "{name}: a transition is metered and on the timeline"
                );
            } else {
                assert_eq!(after, before, "{name}: writes nothing");
            }
        }
    }
    w.done("40 §1.2");
}

/// 40 §0.3 and the order-of-checks lists of §1.3–§9.
#[test]
fn part_40_core_os_orders() {
    let mut w = world();
    let admin = w.t.admin.clone();
    let member = w.member.clone();
    let member2 = w.member2.clone();
    let tid = w.t.id.clone();

    // §0.3: JSON → headers → validation → the endpoint's checks.
    w.plan("none", "active");
    let r = w.raw("POST", "/v1/actions", &[], b"{");
    w.cell(
        "40 §0.3.1 JSON before headers",
        &r,
        422,
        Detail::Invalid("json_invalid"),
    );
    let r = w.raw("POST", "/v1/actions", &[("X-Tenant-ID", &tid)], b"{}");
    w.cell(
        "40 §0.3.2 headers before validation",
        &r,
        400,
        Detail::Is("Missing required header: X-User-ID"),
    );
    let r = w.member("POST", "/v1/actions", Some(json!({"title": ""})));
    w.cell(
        "40 §0.3.3 validation before capability",
        &r,
        422,
        Detail::Invalid("string_too_short"),
    );

    // A fixture of every kind while the plan allows it.
    w.plan("all", "active");
    let proposed = w.action_in("proposed");
    let approved = w.action_in("approved");
    let executed = w.action_in("executed");
    let cancelled = w.action_in("cancelled");
    let task = w.make(&member, "/v1/tasks", json!({"title": "T"}), "task_id");
    let assigned = w.make(
        &admin,
        "/v1/tasks",
        json!({"title": "A", "assigned_to_user_id": member}),
        "task_id",
    );
    let decision = w.make(
        &admin,
        "/v1/decisions",
        json!({"decision_date": "2026-01-01", "title": "D", "decision": "x"}),
        "decision_id",
    );
    let meeting = w.make(
        &member,
        "/v1/meetings",
        json!({"meeting_date": "2026-01-01", "title": "M", "notes": "n"}),
        "meeting_id",
    );
    let fact = w.make(
        &admin,
        "/v1/memory/facts",
        json!({"category": "icp", "fact_key": "k", "fact_value": "v"}),
        "fact_id",
    );
    let old_fact = w.make(
        &admin,
        "/v1/memory/facts",
        json!({"category": "icp", "fact_key": "old", "fact_value": "v"}),
        "fact_id",
    );
    let r = w.admin(
        "POST",
        &format!("/v1/memory/facts/{old_fact}/supersede"),
        Some(json!({"fact_value": "w"})),
    );
    assert_eq!(r.status, 200);
    let r = w.admin("POST", &format!("/v1/tasks/{assigned}/complete"), None);
    assert_eq!(r.status, 200);
    let done_task = assigned;

    // Each case: (cell, plan, user, method, path, body, status, detail). "none" has no
    // capability and no credit, "zero" every capability and no credit.
    let ghost_action = format!("/v1/actions/{GHOST}");
    let ghost_task = format!("/v1/tasks/{GHOST}");
    let ghost_decision = format!("/v1/decisions/{GHOST}");
    let ghost_meeting = format!("/v1/meetings/{GHOST}");
    let ghost_fact = format!("/v1/memory/facts/{GHOST}");
    let no_action = Detail::Is("Action not found");
    let new_action = json!({"title": "x", "action_type": "t"});
    let exec = json!({"execution_status": "succeeded"});
    let ev = |t: &str, id: &str| json!({"entity_type": t, "entity_id": id, "source_type": "manual", "source_ref": {}});
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        String,
        Option<Value>,
        u16,
        Detail,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // §1.3 create: capability → quota.
        ("40 §1.3 capability before quota", "none", &member, "POST", "/v1/actions".into(), Some(new_action.clone()), 403, denied("action_center", "none")),
        ("40 §1.3 quota", "zero", &member, "POST", "/v1/actions".into(), Some(new_action.clone()), 429, quota("action_created")),
        // §1.4 list and §1.5 detail: capability → lookup.
        ("40 §1.4 capability", "none", &member, "GET", "/v1/actions".into(), None, 403, denied("action_center", "none")),
        ("40 §1.5 capability before lookup", "none", &member, "GET", ghost_action.clone(), None, 403, denied("action_center", "none")),
        ("40 §1.5 lookup", "zero", &member, "GET", ghost_action.clone(), None, 404, Detail::Is("Action not found")),
        // §1.6 PATCH.
        ("40 §1.6.1 capability before lookup", "none", &member, "PATCH", ghost_action.clone(), Some(json!({})), 403, denied("action_center", "none")),
        ("40 §1.6.2 lookup before ownership", "zero", &member2, "PATCH", ghost_action.clone(), Some(json!({})), 404, Detail::Is("Action not found")),
        ("40 §1.6.3 ownership, whatever the status", "zero", &member2, "PATCH", format!("/v1/actions/{approved}"), Some(json!({})), 403, Detail::Is("Not authorized to update this action")),
        ("40 §1.6.4 a creator's {} on a non-proposed action", "zero", &member, "PATCH", format!("/v1/actions/{approved}"), Some(json!({})), 403, Detail::Is("Can only update proposed actions")),
        ("40 §1.6.5 no change before quota", "zero", &member, "PATCH", format!("/v1/actions/{proposed}"), Some(json!({"title": "Call ACME"})), 200, Detail::Any),
        ("40 §1.6.6 quota", "zero", &member, "PATCH", format!("/v1/actions/{proposed}"), Some(json!({"title": "New"})), 429, quota("action_updated")),
        ("40 §1.6 an admin edits an executed action", "all", &admin, "PATCH", format!("/v1/actions/{executed}"), Some(json!({"title": "Done"})), 200, Detail::Any),
        // §1.7 cancel.
        ("40 §1.7.1 capability before lookup", "none", &member, "POST", format!("{ghost_action}/cancel"), Some(json!({})), 403, denied("action_center", "none")),
        ("40 §1.7.2 lookup", "zero", &member2, "POST", format!("{ghost_action}/cancel"), Some(json!({})), 404, Detail::Is("Action not found")),
        ("40 §1.7.3 already cancelled: anyone, no quota", "zero", &member2, "POST", format!("/v1/actions/{cancelled}/cancel"), Some(json!({})), 200, Detail::Any),
        ("40 §1.7.4 state before ownership", "zero", &member2, "POST", format!("/v1/actions/{approved}/cancel"), Some(json!({})), 400, Detail::Is("Can only cancel proposed actions")),
        ("40 §1.7.5 ownership before quota", "zero", &member2, "POST", format!("/v1/actions/{proposed}/cancel"), Some(json!({})), 403, Detail::Is("Not authorized to cancel this action")),
        ("40 §1.7.6 quota", "zero", &member, "POST", format!("/v1/actions/{proposed}/cancel"), Some(json!({})), 429, quota("action_updated")),
        // §1.8 approve, §1.9 reject, §1.10 execute: capability → admin → lookup → state → quota.
        ("40 §1.8.1 capability before admin", "none", &member, "POST", format!("{ghost_action}/approve"), Some(json!({})), 403, denied("action_center", "none")),
        ("40 §1.8.2 admin before lookup", "zero", &member, "POST", format!("{ghost_action}/approve"), Some(json!({})), 403, Detail::Eq(json!(role("member")))),
        ("40 §1.8.3 lookup", "zero", &admin, "POST", format!("{ghost_action}/approve"), Some(json!({})), 404, Detail::Is("Action not found")),
        ("40 §1.8.4 approved: no-op without quota", "zero", &admin, "POST", format!("/v1/actions/{approved}/approve"), Some(json!({"comment": "again"})), 200, Detail::Any),
        ("40 §1.8.8 quota", "zero", &admin, "POST", format!("/v1/actions/{proposed}/approve"), Some(json!({})), 429, quota("action_approved")),
        ("40 §1.9 capability before admin", "none", &member, "POST", format!("{ghost_action}/reject"), Some(json!({})), 403, denied("action_center", "none")),
        ("40 §1.9 admin before lookup", "zero", &member, "POST", format!("{ghost_action}/reject"), Some(json!({})), 403, Detail::Eq(json!(role("member")))),
        ("40 §1.9 lookup", "zero", &admin, "POST", format!("{ghost_action}/reject"), Some(json!({})), 404, Detail::Is("Action not found")),
        ("40 §1.9 quota", "zero", &admin, "POST", format!("/v1/actions/{proposed}/reject"), Some(json!({})), 429, quota("action_rejected")),
        ("40 §1.10.1 capability before admin", "none", &member, "POST", format!("{ghost_action}/execute"), Some(exec.clone()), 403, denied("action_center", "none")),
        ("40 §1.10.2 admin before lookup", "zero", &member, "POST", format!("{ghost_action}/execute"), Some(exec.clone()), 403, Detail::Eq(json!(role("member")))),
        ("40 §1.10.3 lookup", "zero", &admin, "POST", format!("{ghost_action}/execute"), Some(exec.clone()), 404, Detail::Is("Action not found")),
        ("40 §1.10.4 executed: the original execution, no quota", "zero", &admin, "POST", format!("/v1/actions/{executed}/execute"), Some(json!({"execution_status": "failed"})), 200, Detail::Any),
        ("40 §1.10 the body is validated on a replay too", "zero", &admin, "POST", format!("/v1/actions/{executed}/execute"), Some(json!({"execution_status": "maybe"})), 422, Detail::Invalid("string_pattern_mismatch")),
        ("40 §1.10.6 quota", "zero", &admin, "POST", format!("/v1/actions/{approved}/execute"), Some(exec.clone()), 429, quota("action_executed")),
        // §2 tasks.
        ("40 §2.2 capability before quota", "none", &member, "POST", "/v1/tasks".into(), Some(json!({"title": "x"})), 403, denied("tasks", "none")),
        ("40 §2.2 quota", "zero", &member, "POST", "/v1/tasks".into(), Some(json!({"title": "x"})), 429, quota("task_created")),
        ("40 §2.4 capability before lookup", "none", &member, "GET", ghost_task.clone(), None, 403, denied("tasks", "none")),
        ("40 §2.4 lookup", "zero", &member, "GET", ghost_task.clone(), None, 404, Detail::Is("Task not found")),
        ("40 §2.5 capability before lookup", "none", &member2, "PATCH", ghost_task.clone(), Some(json!({})), 403, denied("tasks", "none")),
        ("40 §2.5 lookup before ownership", "zero", &member2, "PATCH", ghost_task.clone(), Some(json!({})), 404, Detail::Is("Task not found")),
        ("40 §2.5 ownership before no-op", "zero", &member2, "PATCH", format!("/v1/tasks/{task}"), Some(json!({})), 403, Detail::Is("Not authorized to update this task")),
        ("40 §2.5 no change before quota", "zero", &member, "PATCH", format!("/v1/tasks/{task}"), Some(json!({"title": "T"})), 200, Detail::Any),
        ("40 §2.5 the assignee may edit; quota", "zero", &member, "PATCH", format!("/v1/tasks/{done_task}"), Some(json!({"title": "B"})), 429, quota("task_updated")),
        ("40 §2.6 capability before lookup", "none", &member, "POST", format!("{ghost_task}/complete"), None, 403, denied("tasks", "none")),
        ("40 §2.6 lookup before role", "zero", &member2, "POST", format!("{ghost_task}/complete"), None, 404, Detail::Is("Task not found")),
        ("40 §2.6 the creator is not enough", "zero", &member, "POST", format!("/v1/tasks/{task}/complete"), None, 403, Detail::Is("Not authorized to complete this task")),
        ("40 §2.6 role before the done no-op", "zero", &member2, "POST", format!("/v1/tasks/{done_task}/complete"), None, 403, Detail::Is("Not authorized to complete this task")),
        ("40 §2.6 done: no-op without quota", "zero", &member, "POST", format!("/v1/tasks/{done_task}/complete"), None, 200, Detail::Any),
        ("40 §2.6 quota", "zero", &admin, "POST", format!("/v1/tasks/{task}/complete"), None, 429, quota("task_completed")),
        // §3 decisions.
        ("40 §3.2 capability before admin", "none", &member, "POST", "/v1/decisions".into(), Some(json!({"decision_date": "2026-01-01", "title": "x", "decision": "y"})), 403, denied("decisions", "none")),
        ("40 §3.2 admin before quota", "zero", &member, "POST", "/v1/decisions".into(), Some(json!({"decision_date": "2026-01-01", "title": "x", "decision": "y"})), 403, Detail::Eq(json!(role("member")))),
        ("40 §3.2 quota", "zero", &admin, "POST", "/v1/decisions".into(), Some(json!({"decision_date": "2026-01-01", "title": "x", "decision": "y"})), 429, quota("decision_created")),
        ("40 §3.4 lookup", "zero", &member, "GET", ghost_decision.clone(), None, 404, Detail::Is("Decision not found")),
        ("40 §3.5 capability before admin", "none", &member, "PATCH", ghost_decision.clone(), Some(json!({})), 403, denied("decisions", "none")),
        ("40 §3.5 admin before lookup", "zero", &member, "PATCH", ghost_decision.clone(), Some(json!({})), 403, Detail::Eq(json!(role("member")))),
        ("40 §3.5 lookup", "zero", &admin, "PATCH", ghost_decision.clone(), Some(json!({})), 404, Detail::Is("Decision not found")),
        ("40 §3.5 no change before quota", "zero", &admin, "PATCH", format!("/v1/decisions/{decision}"), Some(json!({"title": "D"})), 200, Detail::Any),
        ("40 §3.5 quota", "zero", &admin, "PATCH", format!("/v1/decisions/{decision}"), Some(json!({"title": "E"})), 429, quota("decision_updated")),
        // §4 meetings.
        ("40 §4.2 capability before quota", "none", &member, "POST", "/v1/meetings".into(), Some(json!({"meeting_date": "2026-01-01", "title": "x", "notes": "y"})), 403, denied("meetings", "none")),
        ("40 §4.2 quota", "zero", &member, "POST", "/v1/meetings".into(), Some(json!({"meeting_date": "2026-01-01", "title": "x", "notes": "y"})), 429, quota("meeting_note_created")),
        ("40 §4.4 lookup", "zero", &member, "GET", ghost_meeting.clone(), None, 404, Detail::Is("Meeting note not found")),
        ("40 §4.5 capability before lookup", "none", &member2, "PATCH", ghost_meeting.clone(), Some(json!({})), 403, denied("meetings", "none")),
        ("40 §4.5 lookup before ownership", "zero", &member2, "PATCH", ghost_meeting.clone(), Some(json!({})), 404, Detail::Is("Meeting note not found")),
        ("40 §4.5 ownership before no-op", "zero", &member2, "PATCH", format!("/v1/meetings/{meeting}"), Some(json!({})), 403, Detail::Is("Not authorized to update this meeting note")),
        ("40 §4.5 no change before quota", "zero", &member, "PATCH", format!("/v1/meetings/{meeting}"), Some(json!({"notes": "n"})), 200, Detail::Any),
        ("40 §4.5 quota", "zero", &admin, "PATCH", format!("/v1/meetings/{meeting}"), Some(json!({"notes": "m"})), 429, quota("meeting_note_updated")),
        // §5 memory.
        ("40 §5.2.1 capability before admin", "none", &member, "POST", "/v1/memory/facts".into(), Some(json!({"category": "icp", "fact_key": "k", "fact_value": "v"})), 403, denied("memory", "none")),
        ("40 §5.2.2 admin before quota", "zero", &member, "POST", "/v1/memory/facts".into(), Some(json!({"category": "icp", "fact_key": "k", "fact_value": "v"})), 403, Detail::Eq(json!(role("member")))),
        ("40 §5.2.3 quota before the duplicate key", "zero", &admin, "POST", "/v1/memory/facts".into(), Some(json!({"category": "icp", "fact_key": "k", "fact_value": "v"})), 429, quota("memory_fact_created")),
        ("40 §5.2.4 duplicate active key", "all", &admin, "POST", "/v1/memory/facts".into(), Some(json!({"category": "icp", "fact_key": "k", "fact_value": "v"})), 409, Detail::Is("Active fact with key 'k' already exists. Use supersede to update.")),
        ("40 §5.4 lookup", "zero", &member, "GET", ghost_fact.clone(), None, 404, Detail::Is("Memory fact not found")),
        ("40 §5.5 capability before admin", "none", &member, "PATCH", ghost_fact.clone(), Some(json!({})), 403, denied("memory", "none")),
        ("40 §5.5 admin before lookup", "zero", &member, "PATCH", ghost_fact.clone(), Some(json!({})), 403, Detail::Eq(json!(role("member")))),
        ("40 §5.5 lookup", "zero", &admin, "PATCH", ghost_fact.clone(), Some(json!({})), 404, Detail::Is("Memory fact not found")),
        ("40 §5.5 no change before quota", "zero", &admin, "PATCH", format!("/v1/memory/facts/{fact}"), Some(json!({"fact_value": "v"})), 200, Detail::Any),
        ("40 §5.5 quota", "zero", &admin, "PATCH", format!("/v1/memory/facts/{fact}"), Some(json!({"fact_value": "w"})), 429, quota("memory_fact_updated")),
        ("40 §5.5 the status is not checked", "all", &admin, "PATCH", format!("/v1/memory/facts/{old_fact}"), Some(json!({"fact_value": "edited"})), 200, Detail::Any),
        ("40 §5.6.1 capability before admin", "none", &member, "POST", format!("{ghost_fact}/supersede"), Some(json!({"fact_value": "x"})), 403, denied("memory", "none")),
        ("40 §5.6.2 admin before lookup", "zero", &member, "POST", format!("{ghost_fact}/supersede"), Some(json!({"fact_value": "x"})), 403, Detail::Eq(json!(role("member")))),
        ("40 §5.6.3 lookup", "zero", &admin, "POST", format!("{ghost_fact}/supersede"), Some(json!({"fact_value": "x"})), 404, Detail::Is("Memory fact not found")),
        ("40 §5.6.4 not active before quota", "zero", &admin, "POST", format!("/v1/memory/facts/{old_fact}/supersede"), Some(json!({"fact_value": "x"})), 400, Detail::Is("Can only supersede active facts")),
        ("40 §5.6.5 quota", "zero", &admin, "POST", format!("/v1/memory/facts/{fact}/supersede"), Some(json!({"fact_value": "x"})), 429, quota("memory_fact_superseded")),
        // §6.2 evidence, by target type.
        ("40 §6.2 action: capability before lookup", "none", &member2, "POST", "/v1/evidence".into(), Some(ev("action", GHOST)), 403, denied("action_center", "none")),
        ("40 §6.2 action: lookup before ownership", "zero", &member2, "POST", "/v1/evidence".into(), Some(ev("action", GHOST)), 404, no_action),
        ("40 §6.2 action: ownership before quota", "zero", &member2, "POST", "/v1/evidence".into(), Some(ev("action", &proposed)), 403, Detail::Is("Not authorized to add evidence to this action")),
        ("40 §6.2 task: capability before lookup", "none", &member2, "POST", "/v1/evidence".into(), Some(ev("task", GHOST)), 403, denied("tasks", "none")),
        ("40 §6.2 task: lookup before ownership", "zero", &member2, "POST", "/v1/evidence".into(), Some(ev("task", GHOST)), 404, Detail::Is("Task not found")),
        ("40 §6.2 task: ownership before quota", "zero", &member2, "POST", "/v1/evidence".into(), Some(ev("task", &task)), 403, Detail::Is("Not authorized to add evidence to this task")),
        ("40 §6.2 decision: capability before admin", "none", &member, "POST", "/v1/evidence".into(), Some(ev("decision", GHOST)), 403, denied("decisions", "none")),
        ("40 §6.2 decision: admin before lookup", "zero", &member, "POST", "/v1/evidence".into(), Some(ev("decision", GHOST)), 403, Detail::Eq(json!(role("member")))),
        ("40 §6.2 decision: lookup before quota", "zero", &admin, "POST", "/v1/evidence".into(), Some(ev("decision", GHOST)), 404, Detail::Is("Decision not found")),
        ("40 §6.2 memory_fact: capability before admin", "none", &member, "POST", "/v1/evidence".into(), Some(ev("memory_fact", GHOST)), 403, denied("memory", "none")),
        ("40 §6.2 memory_fact: admin before lookup", "zero", &member, "POST", "/v1/evidence".into(), Some(ev("memory_fact", GHOST)), 403, Detail::Eq(json!(role("member")))),
        ("40 §6.2 memory_fact: lookup before quota", "zero", &admin, "POST", "/v1/evidence".into(), Some(ev("memory_fact", GHOST)), 404, Detail::Is("Memory fact not found")),
        ("40 §6.2 quota (any status of the target)", "zero", &member, "POST", "/v1/evidence".into(), Some(ev("action", &cancelled)), 429, quota("evidence_link_created")),
        // §7.2 timeline and §8 search: validation → capability → quota.
        ("40 §7.2 capability", "none", &member, "GET", "/v1/timeline".into(), None, 403, denied("timeline", "none")),
        ("40 §8 422 before capability", "none", &member, "GET", "/v1/search".into(), None, 422, Detail::Invalid("missing")),
        ("40 §8 capability before quota", "none", &member, "GET", "/v1/search?q=x".into(), None, 403, denied("search", "none")),
        ("40 §8 quota", "zero", &member, "GET", "/v1/search?q=x".into(), None, 429, quota("search_query")),
        // §9 records: type (400, before any check) → the type's capability → lookup.
        ("40 §9 unknown type before capability", "none", &member, "GET", format!("/v1/records/meetingz/{GHOST}"), None, 400, Detail::Is("Invalid entity_type: meetingz")),
        ("40 §9 capability before lookup", "none", &member, "GET", format!("/v1/records/meeting/{GHOST}"), None, 403, denied("meetings", "none")),
        ("40 §9 action lookup", "zero", &member, "GET", format!("/v1/records/action/{GHOST}"), None, 404, Detail::Is("Action not found")),
        ("40 §9 task lookup", "zero", &member, "GET", format!("/v1/records/task/{GHOST}"), None, 404, Detail::Is("Task not found")),
        ("40 §9 decision lookup", "zero", &member, "GET", format!("/v1/records/decision/{GHOST}"), None, 404, Detail::Is("Decision not found")),
        ("40 §9 meeting lookup", "zero", &member, "GET", format!("/v1/records/meeting/{GHOST}"), None, 404, Detail::Is("Meeting note not found")),
        ("40 §9 memory_fact lookup", "zero", &member, "GET", format!("/v1/records/memory_fact/{GHOST}"), None, 404, Detail::Is("Memory fact not found")),
    ];
    let mut current = String::new();
    for (name, plan, user, method, path, body, status, detail) in cases {
        if plan != current {
            w.plan(plan, "active");
            current = plan.to_owned();
        }
        let before = w.trail();
        let r = w.req(user, method, &path, &[], body);
        w.cell(name, &r, status, detail);
        if method != "GET" && !(status == 200 && plan == "all") {
            assert_eq!(
                w.trail(),
                before,
                "{name}: a refusal or a no-op writes nothing"
            );
        }
    }
    w.done("40");
}

/// 50 §1.2: the console's access check and the table viewer's order. The session cookie is a
/// random token of the server's, not the key (spec README decision 15 and the 50 Notes on the
/// console's secret), so step 2 is held with the cookie the server issued.
#[test]
fn part_50_console_access() {
    let mut config = test_config();
    let key = "contract-console-key-0123";
    let mut w = world_with(config.clone());
    let r = w.s.call("GET", &format!("/console?key={key}"), &[], None);
    w.cell("50 §1.2.1 console off", &r, 404, Detail::Is("Not Found"));
    config.dev_console = true;
    config.dev_console_key = key.into();
    let mut w2 = world_with(config);
    let login = w2.s.call("GET", &format!("/console?key={key}"), &[], None);
    assert!(login.status < 400, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r =
        w2.s.call("GET", "/console?key=wrong", &[("Cookie", &cookie)], None);
    assert!(r.status < 400, "{}", r.body);
    w2.checked += 1;
    CELLS.fetch_add(1, Ordering::Relaxed);
    for (name, path) in [
        ("wrong key", "/console?key=wrong"),
        ("missing key", "/console"),
        ("empty key", "/console?key="),
    ] {
        let r = w2.s.call("GET", path, &[], None);
        w2.cell(
            &format!("50 §1.2.4 {name}"),
            &r,
            404,
            Detail::Is("Not Found"),
        );
    }
    let r = w2.s.call("GET", "/console/db/secrets?limit=abc", &[], None);
    w2.cell(
        "50 §1.2 viewer: access before limit",
        &r,
        404,
        Detail::Is("Not Found"),
    );
    let r = w2.s.call(
        "GET",
        "/console/db/secrets?limit=abc",
        &[("Cookie", &cookie)],
        None,
    );
    w2.cell(
        "50 §1.2 viewer: limit before allow-list",
        &r,
        422,
        Detail::Invalid("int_parsing"),
    );
    let r =
        w2.s.call("GET", "/console/db/secrets", &[("Cookie", &cookie)], None);
    w2.cell(
        "50 §1.2 viewer: allow-list",
        &r,
        404,
        Detail::Is("Table not allowed"),
    );
    w.done("50 (off)");
    w2.done("50");
}
