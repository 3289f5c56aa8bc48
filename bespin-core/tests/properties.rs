//! Property tests: random sequences of core operations across two tenants keep every
//! `check()` invariant, and no record of one tenant is ever readable by the other; and the
//! chunked KPI store answers like a plain ordered map of points.
#![allow(clippy::unwrap_used)]

use bespin_core::chat::ChatRequest;
use bespin_core::coreos::actions::{NewAction, ReviewComment};
use bespin_core::coreos::decisions::NewDecision;
use bespin_core::coreos::meetings::NewMeeting;
use bespin_core::coreos::memory::{FactValue, NewFact};
use bespin_core::coreos::tasks::{NewTask, TaskPatch};
use bespin_core::kpis::{IngestResult, NewKpi, NewPoint, PointsBulk};
use bespin_core::tenancy::NewTenant;
use bespin_core::time::Timestamp;
use bespin_core::tools::InvokeRequest;
use bespin_core::{Bespin, Credentials, ErrorKind, Principal};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Kpi(usize, u8),
    Points(usize, usize, i32),
    Chat(usize, bool, u8),
    Invoke(usize, u8, u8),
    Task(usize, String),
    EditTask(usize, usize, String),
    CompleteTask(usize, usize),
    Action(usize, String),
    Review(usize, usize, bool),
    Fact(usize, u8),
    Supersede(usize, usize, String),
    Decision(usize, String),
    Meeting(usize, String),
}

fn words() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "alpha",
        "Beta price",
        "gamma-ray",
        "Δelta ünïcode",
        "x",
        "pricing plan",
    ])
    .prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0usize..2;
    let i = 0usize..6;
    prop_oneof![
        (t.clone(), 0u8..4).prop_map(|(t, n)| Op::Kpi(t, n)),
        (t.clone(), i.clone(), -1000i32..1000).prop_map(|(t, i, v)| Op::Points(t, i, v)),
        (t.clone(), any::<bool>(), 0u8..3).prop_map(|(t, c, n)| Op::Chat(t, c, n)),
        (t.clone(), 0u8..4, 0u8..3).prop_map(|(t, k, p)| Op::Invoke(t, k, p)),
        (t.clone(), words()).prop_map(|(t, w)| Op::Task(t, w)),
        (t.clone(), i.clone(), words()).prop_map(|(t, i, w)| Op::EditTask(t, i, w)),
        (t.clone(), i.clone()).prop_map(|(t, i)| Op::CompleteTask(t, i)),
        (t.clone(), words()).prop_map(|(t, w)| Op::Action(t, w)),
        (t.clone(), i.clone(), any::<bool>()).prop_map(|(t, i, a)| Op::Review(t, i, a)),
        (t.clone(), 0u8..3).prop_map(|(t, k)| Op::Fact(t, k)),
        (t.clone(), i.clone(), words()).prop_map(|(t, i, w)| Op::Supersede(t, i, w)),
        (t.clone(), words()).prop_map(|(t, w)| Op::Decision(t, w)),
        (t, words()).prop_map(|(t, w)| Op::Meeting(t, w)),
    ]
}

#[derive(Default)]
struct Ids {
    kpis: Vec<String>,
    convs: Vec<String>,
    tasks: Vec<String>,
    actions: Vec<String>,
    facts: Vec<String>,
    decisions: Vec<String>,
    meetings: Vec<String>,
}

fn pick(v: &[String], i: usize) -> Option<&String> {
    if v.is_empty() {
        None
    } else {
        v.get(i % v.len())
    }
}

fn tenant(db: &Bespin, n: usize) -> Principal {
    let t = db
        .create_tenant(NewTenant {
            name: format!("t{n}"),
            region: "eu".into(),
            admin_email: format!("a{n}@t.example"),
        })
        .unwrap();
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(&t.admin.user_id),
        Some(&t.api_key),
    ))
    .unwrap()
}

/// Applies `op`; refusals (quota, state conflicts and the 400 of a refused supersede or cancel,
/// validation) are fine, but only those.
fn apply(db: &Bespin, who: &[Principal; 2], ids: &mut [Ids; 2], op: &Op) {
    use ErrorKind as K;
    let allowed = |r: Result<(), bespin_core::Error>| {
        if let Err(e) = r {
            assert!(
                matches!(
                    e.kind(),
                    K::Conflict | K::BadRequest | K::Validation | K::QuotaExceeded
                ),
                "{op:?}: unexpected {e:?}"
            );
        }
    };
    match op {
        Op::Kpi(t, n) => allowed(
            db.create_kpi(
                &who[*t],
                NewKpi {
                    name: format!("kpi{n}"),
                    unit: None,
                    description: None,
                },
            )
            .map(|k| ids[*t].kpis.push(k.kpi_id)),
        ),
        Op::Points(t, i, v) => {
            if let Some(k) = pick(&ids[*t].kpis, *i).cloned() {
                let pts = PointsBulk::from_json(
                    &json!({"points": [{"ts": "2026-01-01T00:00:00Z", "value": v}]}),
                )
                .unwrap();
                allowed(db.ingest_points(&who[*t], &k, pts).map(|_| ()));
            }
        }
        Op::Chat(t, cont, n) => {
            let conversation_id = if *cont {
                ids[*t].convs.first().cloned()
            } else {
                None
            };
            let req = ChatRequest {
                message: format!("what are my kpis {n}"),
                conversation_id,
                date: None,
            };
            allowed(db.chat(&who[*t], req).map(|r| {
                if !ids[*t].convs.contains(&r.conversation_id) {
                    ids[*t].convs.push(r.conversation_id)
                }
            }));
        }
        Op::Invoke(t, k, p) => {
            let req = InvokeRequest::from_json(&json!({"tool_name": "echo", "payload": {"p": p}}))
                .unwrap();
            // The same key with another payload is an idempotency conflict: allowed.
            allowed(
                db.invoke_tool(&who[*t], &format!("key{k}"), req)
                    .map(|_| ()),
            );
        }
        Op::Task(t, w) => allowed(
            db.create_task(
                &who[*t],
                NewTask::from_json(&json!({"title": w, "description": w})).unwrap(),
            )
            .map(|x| ids[*t].tasks.push(x.task_id)),
        ),
        Op::EditTask(t, i, w) => {
            if let Some(id) = pick(&ids[*t].tasks, *i).cloned() {
                let p =
                    TaskPatch::from_json(&json!({"title": w, "due_date": "2026-03-01"})).unwrap();
                allowed(db.update_task(&who[*t], &id, p).map(|_| ()));
            }
        }
        Op::CompleteTask(t, i) => {
            if let Some(id) = pick(&ids[*t].tasks, *i).cloned() {
                allowed(db.complete_task(&who[*t], &id).map(|_| ()));
            }
        }
        Op::Action(t, w) => allowed(
            db.create_action(
                &who[*t],
                NewAction::from_json(&json!({"title": w, "action_type": "outreach"})).unwrap(),
            )
            .map(|a| ids[*t].actions.push(a.action_id)),
        ),
        Op::Review(t, i, approve) => {
            if let Some(id) = pick(&ids[*t].actions, *i).cloned() {
                let r = if *approve {
                    db.approve_action(&who[*t], &id, ReviewComment::default())
                } else {
                    db.reject_action(&who[*t], &id, ReviewComment::default())
                };
                allowed(r.map(|_| ()));
            }
        }
        Op::Fact(t, k) => allowed(
            db.create_memory_fact(
                &who[*t],
                NewFact::from_json(
                    &json!({"category": "icp", "fact_key": format!("k{k}"), "fact_value": "v"}),
                )
                .unwrap(),
            )
            .map(|f| ids[*t].facts.push(f.fact_id)),
        ),
        Op::Supersede(t, i, w) => {
            if let Some(id) = pick(&ids[*t].facts, *i).cloned() {
                let v = FactValue::supersede_from_json(&json!({"fact_value": w})).unwrap();
                allowed(
                    db.supersede_memory_fact(&who[*t], &id, v)
                        .map(|f| ids[*t].facts.push(f.fact_id)),
                );
            }
        }
        Op::Decision(t, w) => allowed(
            db.create_decision(
                &who[*t],
                NewDecision::from_json(
                    &json!({"decision_date": "2026-01-02", "title": w, "decision": w}),
                )
                .unwrap(),
            )
            .map(|d| ids[*t].decisions.push(d.decision_id)),
        ),
        Op::Meeting(t, w) => allowed(
            db.create_meeting(
                &who[*t],
                NewMeeting::from_json(
                    &json!({"meeting_date": "2026-01-02", "title": w, "notes": w}),
                )
                .unwrap(),
            )
            .map(|m| ids[*t].meetings.push(m.meeting_id)),
        ),
    }
}

fn not_found<T: std::fmt::Debug>(r: Result<T, bespin_core::Error>, what: &str) {
    match r {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => panic!("{what}: another tenant's record was reachable: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_invariants_and_the_tenants_apart(ops in prop::collection::vec(op(), 1..40)) {
        let db = Bespin::open_in_memory().unwrap();
        let who = [tenant(&db, 0), tenant(&db, 1)];
        let mut ids: [Ids; 2] = Default::default();
        for op in &ops {
            apply(&db, &who, &mut ids, op);
        }
        let report = db.check().unwrap();
        prop_assert!(report.is_ok(), "{}", report);
        for (a, b) in [(0usize, 1usize), (1, 0)] {
            let (mine, other) = (&ids[a], &who[b]);
            for id in &mine.kpis { not_found(db.latest_point(other, id), "kpi"); }
            for id in &mine.convs { not_found(db.conversation(other, id), "conversation"); }
            for id in &mine.tasks { not_found(db.get_task(other, id), "task"); }
            for id in &mine.actions { not_found(db.get_action(other, id), "action"); }
            for id in &mine.facts { not_found(db.get_memory_fact(other, id), "fact"); }
            for id in &mine.decisions { not_found(db.get_decision(other, id), "decision"); }
            for id in &mine.meetings { not_found(db.get_meeting(other, id), "meeting"); }
        }
    }
}

/// An operation on one of two KPIs of a tenant; instants are in hours.
#[derive(Debug, Clone)]
enum SeriesOp {
    /// Points (hour, value), in request order.
    Ingest(usize, Vec<(i64, i32)>),
    /// The newest point at or before the cut-off.
    Latest(usize, Option<i64>),
    /// The window rule over a span of days, with an optional cut-off.
    Window(usize, Option<i64>, u64),
}

const HOUR: i64 = 3_600_000_000;

fn series_op() -> impl Strategy<Value = SeriesOp> {
    // Instants from a narrow range, so requests repeat instants, land before, inside and after
    // stored chunks, and fill and split them.
    let k = 0usize..2;
    let point = (-200i64..1200, -50i32..50);
    prop_oneof![
        3 => (k.clone(), prop::collection::vec(point, 1..300))
            .prop_map(|(k, p)| SeriesOp::Ingest(k, p)),
        // Runs in order, as appends and backfills are.
        1 => (k.clone(), -200i64..1200, 1i64..400).prop_map(|(k, start, n)| {
            SeriesOp::Ingest(k, (0..n).map(|i| (start + i, i as i32)).collect())
        }),
        1 => (k.clone(), prop::option::of(-250i64..1300)).prop_map(|(k, c)| SeriesOp::Latest(k, c)),
        1 => (k, prop::option::of(-250i64..1300), 0u64..60)
            .prop_map(|(k, c, d)| SeriesOp::Window(k, c, d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_chunked_series_answers_like_an_ordered_map(ops in prop::collection::vec(series_op(), 1..30)) {
        let db = Bespin::open_in_memory().unwrap();
        let p = tenant(&db, 0);
        let ids: Vec<String> = (0..2)
            .map(|i| {
                let k = NewKpi { name: format!("k{i}"), unit: None, description: None };
                db.create_kpi(&p, k).unwrap().kpi_id
            })
            .collect();
        let mut model: [BTreeMap<i64, f64>; 2] = Default::default();
        let at = |h: i64| Timestamp(h * HOUR);
        for op in &ops {
            match op {
                SeriesOp::Ingest(k, points) => {
                    let m = &mut model[*k];
                    let mut inserted = 0;
                    for &(h, v) in points {
                        if let std::collections::btree_map::Entry::Vacant(e) = m.entry(h) {
                            e.insert(f64::from(v));
                            inserted += 1;
                        }
                    }
                    let req = PointsBulk {
                        points: points.iter().map(|&(h, v)| NewPoint { ts: at(h), value: f64::from(v) }).collect(),
                    };
                    let got = db.ingest_points(&p, &ids[*k], req).unwrap();
                    prop_assert_eq!(got, IngestResult { inserted, ignored: points.len() as u64 - inserted });
                }
                SeriesOp::Latest(k, cutoff) => {
                    let want = model[*k].range(..=cutoff.unwrap_or(i64::MAX)).next_back();
                    let got = db.kpi_window(&p, &ids[*k], cutoff.map(at), 0).unwrap();
                    prop_assert_eq!(
                        got.map(|w| (w.latest.ts, w.latest.value)),
                        want.map(|(h, v)| (at(*h), *v))
                    );
                    if cutoff.is_none() {
                        let latest = db.latest_point(&p, &ids[*k]).ok().map(|l| (l.ts, l.value));
                        let want = want.map(|(h, v)| (bespin_core::kpis::format_point_ts(at(*h)), *v));
                        prop_assert_eq!(latest, want);
                    }
                }
                SeriesOp::Window(k, cutoff, days) => {
                    let m = &model[*k];
                    let want = m.range(..=cutoff.unwrap_or(i64::MAX)).next_back().map(|(l, lv)| {
                        let from = l - 24 * *days as i64;
                        let (s, sv) = m.range(from..).next().unwrap();
                        ((at(*l), *lv), (at(*s), *sv))
                    });
                    let got = db.kpi_window(&p, &ids[*k], cutoff.map(at), *days).unwrap();
                    prop_assert_eq!(
                        got.map(|w| ((w.latest.ts, w.latest.value), (w.start.ts, w.start.value))),
                        want
                    );
                }
            }
        }
        let report = db.check().unwrap();
        prop_assert!(report.is_ok(), "{}", report);
    }
}
