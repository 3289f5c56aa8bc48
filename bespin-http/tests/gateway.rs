//! Tools, KPIs and briefs over real HTTP, following the seed README's "Daily Brief Workflow".
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestServer, test_config};
use serde_json::{Value, json};

struct Ctx {
    s: TestServer,
    tenant: String,
    key: String,
    admin: String,
    member: String,
}

impl Ctx {
    fn new() -> Ctx {
        let s = TestServer::start(test_config());
        let t = s.create_tenant("Acme", "a@acme.io");
        let member = s.add_user(&t, "m@acme.io", "member");
        let (tenant, key, admin) = (t.id, t.key, t.admin);
        Ctx {
            s,
            tenant,
            key,
            admin,
            member,
        }
    }

    fn as_user(
        &self,
        user: &str,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut h = vec![
            ("X-Tenant-ID", self.tenant.as_str()),
            ("X-User-ID", user),
            ("X-API-Key", self.key.as_str()),
        ];
        h.extend_from_slice(extra);
        let r = self.s.call(method, path, &h, body);
        (r.status, r.json())
    }

    fn admin(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.as_user(&self.admin, method, path, extra, body)
    }
}

#[test]
fn daily_brief_workflow_from_the_seed_readme() {
    let c = Ctx::new();
    let (st, kpi) = c.admin(
        "POST",
        "/v1/kpis",
        &[],
        Some(&json!({"name": "MRR", "unit": "GBP"})),
    );
    assert_eq!(st, 201, "{kpi}");
    assert_eq!(kpi["description"], Value::Null);
    let id = kpi["kpi_id"].as_str().unwrap();
    let points = json!({"points": [{"ts": "2026-01-24T00:00:00Z", "value": 1000.0}, {"ts": "2026-01-31T00:00:00Z", "value": 1250.0}]});
    let (st, r) = c.admin(
        "POST",
        &format!("/v1/kpis/{id}/points:bulk"),
        &[],
        Some(&points),
    );
    assert_eq!((st, r), (200, json!({"inserted": 2, "ignored": 0})));
    // The path may also arrive percent-encoded.
    let (_, r) = c.admin(
        "POST",
        &format!("/v1/kpis/{id}/points%3Abulk"),
        &[],
        Some(&points),
    );
    assert_eq!(r, json!({"inserted": 0, "ignored": 2}));
    let body = json!({"date": "2026-01-31", "window_days": 7, "top_n": 3});
    let (st, brief) = c.admin(
        "POST",
        "/v1/briefs/materialize",
        &[("Idempotency-Key", "my-unique-key")],
        Some(&body),
    );
    assert_eq!(st, 200, "{brief}");
    let content = &brief["content"];
    assert_eq!(
        content["summary"],
        json!({"kpis_considered": 1, "kpis_up": 1, "kpis_down": 0, "kpis_flat": 0})
    );
    assert_eq!(content["highlights"][0]["delta_pct"], 25.0);
    assert_eq!(
        content["highlights"][0]["start"]["ts"],
        "2026-01-24T00:00:00Z"
    );
    let (st, fetched) = c.as_user(&c.member, "GET", "/v1/briefs/2026-01-31", &[], None);
    assert_eq!((st, &fetched), (200, &brief));
    assert_eq!(
        c.as_user(&c.member, "GET", "/v1/briefs/latest", &[], None)
            .1,
        brief
    );
    // Replay: same body back, nothing charged twice.
    let (_, again) = c.admin(
        "POST",
        "/v1/briefs/materialize",
        &[("Idempotency-Key", "my-unique-key")],
        Some(&body),
    );
    assert_eq!(again, brief);
    let (st, r) = c.admin(
        "POST",
        "/v1/briefs/materialize",
        &[("Idempotency-Key", "my-unique-key")],
        Some(&json!({"date": "2026-01-31", "top_n": 2})),
    );
    assert_eq!(
        (st, r["detail"].as_str().unwrap()),
        (
            409,
            "Idempotency key 'my-unique-key' was already used with a different request body"
        )
    );
    let (_, ledger) = c.admin("GET", "/v1/billing/ledger", &[], None);
    let keys: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "daily_brief_generated",
            "kpi_points_ingested",
            "kpi_definition_created"
        ]
    );
    // Members cannot materialize; bad dates are 422s.
    let (st, r) = c.as_user(
        &c.member,
        "POST",
        "/v1/briefs/materialize",
        &[("Idempotency-Key", "k2")],
        Some(&json!({})),
    );
    assert_eq!(
        (st, r["detail"].as_str().unwrap()),
        (403, "Role 'member' is not authorized to materialize briefs")
    );
    assert_eq!(
        c.admin("GET", "/v1/briefs/2026-13-01", &[], None).1["detail"][0]["loc"],
        json!(["path", "date"])
    );
    assert_eq!(
        c.admin("GET", "/v1/briefs/2026-02-01", &[], None),
        (
            404,
            json!({"detail": "Brief for date '2026-02-01' not found"})
        )
    );
    let (st, r) = c.admin("POST", "/v1/briefs/materialize", &[], Some(&json!({})));
    assert_eq!(
        (st, r),
        (
            400,
            json!({"detail": "Missing required header: Idempotency-Key"})
        )
    );
}

#[test]
fn kpi_summary_invocation_and_its_replay() {
    let c = Ctx::new();
    let (_, kpi) = c.admin("POST", "/v1/kpis", &[], Some(&json!({"name": "MRR"})));
    let id = kpi["kpi_id"].as_str().unwrap();
    let pts = json!({"points": [
        {"ts": "2026-01-01T00:00:00Z", "value": 100}, {"ts": "2026-01-03", "value": 110},
        {"ts": "2026-01-08T00:00:00+00:00", "value": 150}, {"ts": "2026-01-10T01:00:00+01:00", "value": 160}]});
    assert_eq!(
        c.admin(
            "POST",
            &format!("/v1/kpis/{id}/points:bulk"),
            &[],
            Some(&pts)
        )
        .1,
        json!({"inserted": 4, "ignored": 0})
    );
    let body = json!({"tool_name": "kpi_summary", "payload": {"kpi_id": id}});
    let (st, first) = c.admin(
        "POST",
        "/v1/tools/invoke",
        &[("Idempotency-Key", "inv-1")],
        Some(&body),
    );
    assert_eq!(st, 200, "{first}");
    assert_eq!(
        first["result"]["start"],
        json!({"ts": "2026-01-03T00:00:00Z", "value": 110.0})
    );
    assert_eq!(first["result"]["delta_pct"], 45.45454545454545);
    let (_, replay) = c.admin(
        "POST",
        "/v1/tools/invoke",
        &[("Idempotency-Key", "inv-1")],
        Some(&body),
    );
    assert_eq!(replay, first, "same body, same request_id");
    let (_, usage) = c.admin("GET", "/v1/usage/daily", &[], None);
    assert_eq!(
        usage["usage"][1],
        json!({"activity_type": "tool_invocation", "units": 1})
    );
    let (st, r) = c.admin(
        "POST",
        "/v1/tools/invoke",
        &[("Idempotency-Key", "inv-2")],
        Some(&json!({"tool_name": "nope"})),
    );
    assert_eq!((st, r), (404, json!({"detail": "Tool 'nope' not found"})));
    let (_, echo) = c.admin(
        "POST",
        "/v1/tools/invoke",
        &[("Idempotency-Key", "inv-3")],
        Some(&json!({"tool_name": "echo", "payload": {"x": 1.0, "s": "é"}})),
    );
    assert_eq!(echo["result"], json!({"echo": {"x": 1.0, "s": "é"}}));
    let (st, r) = c.as_user(
        &c.member,
        "POST",
        "/v1/tools/invoke",
        &[("Idempotency-Key", "inv-4")],
        Some(&body),
    );
    assert_eq!(
        (st, r["detail"].as_str().unwrap()),
        (403, "Role 'member' is not authorized to invoke tools")
    );
    let (_, tools) = c.as_user(&c.member, "GET", "/v1/tools", &[], None);
    assert_eq!(tools.as_array().unwrap().len(), 2);
    assert_eq!(
        c.as_user(
            &c.member,
            "GET",
            &format!("/v1/kpis/{id}/latest"),
            &[],
            None
        )
        .1,
        json!({"kpi_id": id, "ts": "2026-01-10T00:00:00Z", "value": 160.0})
    );
}

#[test]
fn kpi_bad_input_is_refused_and_stores_nothing() {
    let c = Ctx::new();
    let (_, kpi) = c.admin("POST", "/v1/kpis", &[], Some(&json!({"name": "MRR"})));
    let id = kpi["kpi_id"].as_str().unwrap();
    let path = format!("/v1/kpis/{id}/points:bulk");
    let (st, r) = c.admin(
        "POST",
        &path,
        &[],
        Some(
            &json!({"points": [{"ts": "2026-01-01", "value": 1}, {"ts": "yesterday", "value": 2}]}),
        ),
    );
    assert_eq!(
        (st, r["detail"][0]["loc"].clone()),
        (422, json!(["body", "points", 1, "ts"]))
    );
    assert_eq!(
        c.admin("POST", &path, &[], Some(&json!({"points": []}))).0,
        422
    );
    let (st, r) = c.admin(
        "POST",
        &path,
        &[],
        Some(&json!({"points": [{"ts": "2026-01-01", "value": "NaN"}]})),
    );
    assert_eq!(
        (st, r["detail"][0]["type"].as_str()),
        (422, Some("finite_number"))
    );
    assert_eq!(
        c.admin("GET", &format!("/v1/kpis/{id}/latest"), &[], None)
            .0,
        404
    );
    assert_eq!(
        c.admin(
            "POST",
            "/v1/kpis/ghost/points:bulk",
            &[],
            Some(&json!({"points": [{"ts": "2026-01-01", "value": 1}]}))
        ),
        (404, json!({"detail": "KPI 'ghost' not found"}))
    );
    let (st, r) = c.admin("GET", "/v1/kpis?limit=x&offset=y", &[], None);
    assert_eq!((st, r["detail"].as_array().unwrap().len()), (422, 2));
    assert_eq!(
        c.admin("GET", "/v1/kpis?limit=0", &[], None)
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another tenant's KPI is a missing one.
    let other =
        c.s.call(
            "POST",
            "/v1/tenants",
            &[],
            Some(&json!({"name": "B", "region": "eu", "admin_email": "b@b.io"})),
        )
        .json();
    let h = [
        ("X-Tenant-ID", other["tenant_id"].as_str().unwrap()),
        ("X-User-ID", other["admin"]["user_id"].as_str().unwrap()),
        ("X-API-Key", other["api_key"].as_str().unwrap()),
    ];
    assert_eq!(
        c.s.call("GET", &format!("/v1/kpis/{id}/latest"), &h, None)
            .json(),
        json!({"detail": format!("KPI '{id}' not found")})
    );
    assert_eq!(c.s.call("GET", "/v1/kpis", &h, None).json(), json!([]));
}

#[test]
fn chart_endpoints_series_brief_dates_and_usage_per_day() {
    let c = Ctx::new();
    let (_, kpi) = c.admin("POST", "/v1/kpis", &[], Some(&json!({"name": "MRR"})));
    let id = kpi["kpi_id"].as_str().unwrap();
    let points: Vec<Value> = (1..=20)
        .map(|d| json!({"ts": format!("2026-01-{d:02}"), "value": d * 10}))
        .collect();
    let (st, _) = c.admin(
        "POST",
        &format!("/v1/kpis/{id}/points:bulk"),
        &[],
        Some(&json!({ "points": points })),
    );
    assert_eq!(st, 200);
    let series = |q: &str| {
        c.as_user(
            &c.member,
            "GET",
            &format!("/v1/kpis/{id}/series{q}"),
            &[],
            None,
        )
    };

    // The window rule's range: 7 days back from the latest point, inclusive.
    let (st, r) = series("?window_days=7");
    assert_eq!(st, 200);
    assert_eq!(
        (
            &r["from"],
            &r["to"],
            &r["points_in_range"],
            &r["downsampled"]
        ),
        (
            &json!("2026-01-13T00:00:00Z"),
            &json!("2026-01-20T00:00:00Z"),
            &json!(8),
            &json!(false)
        )
    );
    assert_eq!(
        r["points"][0],
        json!({"ts": "2026-01-13T00:00:00Z", "value": 130.0})
    );
    // Downsampled to the budget (clamped to at least 4), ends kept.
    let (_, r) = series("?max_points=1");
    let pts = r["points"].as_array().unwrap();
    assert!(pts.len() <= 4 && r["downsampled"] == json!(true), "{r}");
    assert_eq!(
        (&pts[0]["value"], &pts[pts.len() - 1]["value"]),
        (&json!(10.0), &json!(200.0))
    );
    let (_, r) = series("?from=2026-01-05&to=2026-01-06T12:00:00%2B02:00");
    assert_eq!(r["points"].as_array().unwrap().len(), 2);
    // Bad input is a 422 at the query parameter; a foreign or unknown KPI a 404.
    let (st, r) = series("?from=soon&window_days=0");
    assert_eq!(st, 422);
    let locs: Vec<&Value> = r["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"])
        .collect();
    assert_eq!(
        locs,
        [&json!(["query", "from"]), &json!(["query", "window_days"])]
    );
    assert_eq!(
        c.admin("GET", "/v1/kpis/ghost/series", &[], None),
        (404, json!({"detail": "KPI 'ghost' not found"}))
    );

    // Briefs: dates newest first, paged with `before`.
    for d in ["2026-01-10", "2026-01-20"] {
        let (st, _) = c.admin(
            "POST",
            "/v1/briefs/materialize",
            &[("Idempotency-Key", d)],
            Some(&json!({ "date": d })),
        );
        assert_eq!(st, 200);
    }
    let (st, r) = c.as_user(&c.member, "GET", "/v1/briefs", &[], None);
    assert_eq!(st, 200);
    let dates: Vec<&Value> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["date"])
        .collect();
    assert_eq!(dates, [&json!("2026-01-20"), &json!("2026-01-10")]);
    assert_eq!(r["items"][0]["summary"]["kpis_considered"], json!(1));
    let (_, r) = c.admin("GET", "/v1/briefs?before=2026-01-20&limit=5", &[], None);
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    let (st, r) = c.admin("GET", "/v1/briefs?before=2026-02-31", &[], None);
    assert_eq!(
        (st, &r["detail"][0]["loc"]),
        (422, &json!(["query", "before"]))
    );

    // Usage per day: today's KPI, points and briefs, adding up to the period's credits.
    let (st, days) = c.as_user(&c.member, "GET", "/v1/billing/usage/daily", &[], None);
    assert_eq!(st, 200);
    let (_, usage) = c.admin("GET", "/v1/billing/usage", &[], None);
    assert_eq!(days["period_start"], usage["period_start"]);
    let total: f64 = days["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["credits"].as_f64().unwrap())
        .sum();
    assert!(
        (total - usage["credits"]["used"].as_f64().unwrap()).abs() < 1e-9,
        "{days}"
    );
    let keys: Vec<&str> = days["days"][0]["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"kpi_points_ingested") && keys.contains(&"daily_brief_generated"),
        "{keys:?}"
    );
    let (st, _) = c.admin(
        "GET",
        "/v1/billing/usage/daily?period_start=2026-13-01",
        &[],
        None,
    );
    assert_eq!(st, 422);
}

#[test]
fn the_audit_log_pages_filters_and_counts_for_admins_only() {
    let c = Ctx::new();
    let invoke = |user: &str, key: &str| {
        let h = [("Idempotency-Key", key)];
        let body = json!({ "tool_name": "kpi_summary", "payload": {} });
        c.as_user(user, "POST", "/v1/tools/invoke", &h, Some(&body))
            .0
    };
    for i in 0..3 {
        assert_eq!(invoke(&c.admin, &format!("a{i}")), 200);
    }
    let chat = json!({ "message": "hello" });
    let (st, _) = c.as_user(&c.member, "POST", "/v1/cofounder/chat", &[], Some(&chat));
    assert_eq!(st, 200);
    // Newest first, two to a page; a row appended between pages shifts nothing.
    let (st, p1) = c.admin("GET", "/v1/audit?limit=2", &[], None);
    assert_eq!(st, 200, "{p1}");
    let ns = |p: &Value| -> Vec<u64> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["n"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ns(&p1), [3, 2]);
    assert_eq!(p1["items"][0]["user_id"], c.member.as_str());
    assert_eq!(p1["items"][0]["outcome"], "success");
    assert_eq!(p1["items"][0]["action"], "cofounder.chat");
    assert_eq!(p1["items"][1]["action"], "tools.invoke");
    assert_eq!(invoke(&c.admin, "a3"), 200);
    let cur = p1["next_cursor"].as_str().unwrap().to_owned();
    let (_, p2) = c.admin("GET", &format!("/v1/audit?limit=2&cursor={cur}"), &[], None);
    assert_eq!(ns(&p2), [1, 0]);
    assert_eq!(p2["next_cursor"], Value::Null);
    // Filters.
    let path = format!("/v1/audit?actor_user_id={}", c.member);
    let (_, mine) = c.admin("GET", &path, &[], None);
    assert_eq!(ns(&mine), [3]);
    let (_, none) = c.admin("GET", "/v1/audit?outcome=denied", &[], None);
    assert_eq!(ns(&none), Vec::<u64>::new());
    let (_, later) = c.admin("GET", "/v1/audit?since=2999-01-01", &[], None);
    assert_eq!(ns(&later), Vec::<u64>::new());
    let (_, all) = c.admin(
        "GET",
        "/v1/audit?since=2000-01-01&until=2999-01-01",
        &[],
        None,
    );
    assert_eq!(ns(&all), [4, 3, 2, 1, 0]);
    // Counts per group.
    let (st, s) = c.admin("GET", "/v1/audit/stats?group_by=actor", &[], None);
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["total"], 5);
    assert_eq!(s["groups"][0], json!({ "key": c.admin, "count": 4 }));
    assert_eq!(s["groups"][1], json!({ "key": c.member, "count": 1 }));
    // Bad input is a 422 naming the query field; members are refused.
    for bad in [
        "/v1/audit?outcome=maybe",
        "/v1/audit?limit=0",
        "/v1/audit?since=yesterday",
        "/v1/audit/stats",
        "/v1/audit/stats?group_by=tool",
    ] {
        let (st, b) = c.admin("GET", bad, &[], None);
        assert_eq!(st, 422, "{bad}: {b}");
        assert_eq!(b["detail"][0]["loc"][0], "query", "{bad}: {b}");
    }
    // Refusals of a proven caller are audited: 403 as `denied`, 429 as `quota`, under the
    // request's X-Request-ID and the route's operation id.
    for (i, path) in ["/v1/audit", "/v1/audit/stats?group_by=day"]
        .iter()
        .enumerate()
    {
        let id = format!("refused-{i}");
        let h = [("X-Request-ID", id.as_str())];
        assert_eq!(c.as_user(&c.member, "GET", path, &h, None).0, 403, "{path}");
    }
    let limits = json!({ "assistant_query_daily_limit": 0, "tool_invocation_daily_limit": 0,
        "daily_brief_generated_daily_limit": 0, "notification_enqueued_daily_limit": 0 });
    assert_eq!(c.admin("PUT", "/v1/limits", &[], Some(&limits)).0, 200);
    assert_eq!(invoke(&c.admin, "over"), 429);
    // Not audited: a caller whose key fails (401), and a 422.
    let h = [("X-API-Key", "wrong")];
    let r = c.s.call(
        "GET",
        "/v1/audit",
        &[
            ("X-Tenant-ID", c.tenant.as_str()),
            ("X-User-ID", c.member.as_str()),
            h[0],
        ],
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(c.admin("GET", "/v1/audit?limit=0", &[], None).0, 422);
    let (_, refused) = c.admin("GET", "/v1/audit?since=2000-01-01&limit=10", &[], None);
    let got: Vec<(String, String, String)> = refused["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] != "success")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("action"), s("outcome"), s("idempotency_key"))
        })
        .collect();
    let row = |a: &str, o: &str, k: &str| (a.to_owned(), o.to_owned(), k.to_owned());
    assert_eq!(
        got,
        [
            row("invoke_tool", "quota", "over"),
            row("audit_stats", "denied", ""),
            row("list_audit", "denied", ""),
        ]
    );
    let (_, denied) = c.admin("GET", "/v1/audit?outcome=denied", &[], None);
    assert_eq!(denied["items"][0]["request_id"], "refused-1");
    assert_eq!(denied["items"][0]["user_id"], c.member.as_str());
}

#[test]
fn an_audit_export_streams_a_large_period_as_json_lines() {
    use bespin_core::audit::{Entry, append};
    let c = Ctx::new();
    // 20,000 rows (40 pages) written straight into the chain, in one transaction.
    const ROWS: usize = 20_000;
    c.s.bespin
        .transaction(|tx, ctx| {
            for i in 0..ROWS {
                let id = format!("bulk-{i}");
                append(tx, ctx, &c.tenant, Entry::new(&c.admin, "bulk", &id))?;
            }
            Ok(())
        })
        .unwrap();
    let h = [
        ("X-Tenant-ID", c.tenant.as_str()),
        ("X-User-ID", c.admin.as_str()),
        ("X-API-Key", c.key.as_str()),
    ];
    let r =
        c.s.call("GET", "/v1/audit/export?since=2000-01-01", &h, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("x-audit-rows"), Some("20000"));
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), ROWS);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["n"], i as u64);
        if i > 0 {
            assert_eq!(l["prev_hash"], lines[i - 1]["row_hash"]);
        }
    }
    assert_eq!(lines[ROWS - 1]["request_id"], "bulk-19999");
    // A period without rows is an empty body; bad input 422 at the query; members 403.
    let r =
        c.s.call("GET", "/v1/audit/export?since=2999-01-01", &h, None);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = c.s.call("GET", "/v1/audit/export?until=never", &h, None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["query", "until"]));
    let st = c.as_user(&c.member, "GET", "/v1/audit/export", &[], None).0;
    assert_eq!(st, 403);
}
