#![allow(clippy::unwrap_used)]
use super::*;
use crate::chat::ChatRequest;
use crate::check::testing::{caught, populated};
use crate::store::Flow;
use crate::testutil;

/// A database whose first tenant has `rows` audit rows (one chat each), and that tenant's admin.
fn chained(rows: usize) -> (Bespin, crate::time::ManualClock, Principal) {
    let (db, clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let (other, _) = testutil::tenant(&db);
    for i in 0..rows {
        for p in [&admin, &other] {
            let m = serde_json::json!({ "message": format!("hello {i}") });
            db.chat(p, ChatRequest::from_json(&m).unwrap()).unwrap();
        }
    }
    (db, clock, admin)
}

fn stored(db: &Bespin, tenant: &str, n: u64) -> Vec<u8> {
    let k = AuditKey::new(tenant, n).encode();
    db.read(|r, _| r.get_raw(AUDIT_LOG.name(), &k))
        .unwrap()
        .unwrap()
}

/// The (position, fault) pairs of the report's findings for `tenant`.
fn faults(db: &Bespin, tenant: &str) -> Vec<(u64, Fault)> {
    let rep = db.audit_verify().unwrap();
    rep.findings
        .iter()
        .filter(|f| f.tenant_id == tenant)
        .map(|f| (f.n, f.fault))
        .collect()
}

#[test]
fn an_honest_database_verifies_and_its_chains_are_dense_and_in_time_order() {
    let (db, clock, admin) = chained(3);
    // The clock going back does not put a row before its predecessor.
    clock.advance(-60_000_000);
    let m = serde_json::json!({ "message": "late" });
    db.chat(&admin, ChatRequest::from_json(&m).unwrap())
        .unwrap();
    let rep = db.audit_verify().unwrap();
    assert!(rep.is_clean(), "{rep}");
    assert_eq!((rep.chains, rep.rows), (2, 7));
    let rows = db.audit_log(&admin, 10).unwrap();
    let ns: Vec<u64> = rows.iter().map(|r| r.n).collect();
    assert_eq!(ns, [3, 2, 1, 0], "newest first, dense");
    assert!(rows[0].created_at >= rows[1].created_at);
    assert_eq!(rows[0].outcome, Outcome::Success);
    // (The metering's own check objects to the clock going back; the audit's does not.)
    let report = db.check().unwrap();
    assert!(
        report
            .violations
            .iter()
            .all(|v| !v.table.starts_with("audit")),
        "{report}"
    );
}

#[test]
fn a_flipped_byte_is_an_altered_row_at_its_place() {
    let (db, _, admin) = chained(3);
    let t = admin.tenant_id();
    let mut v = stored(&db, t, 1);
    let at = v.windows(12).position(|w| w == b"cofounder.ch").unwrap();
    v[at] ^= 0x01;
    let k = AuditKey::new(t, 1).encode();
    db.tamper(|tx| tx.raw_insert_for_test(AUDIT_LOG.name(), &k, &v));
    assert_eq!(faults(&db, t), [(1, Fault::AlteredRow)]);
    caught(&db, "audit_chain", "altered row");
}

#[test]
fn a_changed_personal_field_is_caught_by_its_digest() {
    let (db, _, admin) = chained(2);
    let t = admin.tenant_id();
    db.tamper(|tx| {
        let k = AuditKey::new(t, 0);
        let mut a = tx.get(&AUDIT_LOG, &k)?.unwrap();
        a.idempotency_key = Some("forged".into());
        tx.put(&AUDIT_LOG, &k, &a)
    });
    assert_eq!(faults(&db, t), [(0, Fault::AlteredPersonal)]);
}

#[test]
fn an_erased_row_still_verifies() {
    let (db, _, admin) = chained(2);
    let t = admin.tenant_id();
    db.tamper(|tx| {
        let k = AuditKey::new(t, 0);
        let mut a = tx.get(&AUDIT_LOG, &k)?.unwrap();
        (a.user_id, a.digest_salt) = (String::new(), None);
        tx.put(&AUDIT_LOG, &k, &a)
    });
    assert!(db.audit_verify().unwrap().is_clean());
    let report = db.check().unwrap();
    assert!(report.violations.is_empty(), "{report}");
}

#[test]
fn a_deleted_row_is_a_gap_and_a_broken_link_after_it() {
    let (db, _, admin) = chained(4);
    let t = admin.tenant_id();
    db.tamper(|tx| tx.delete(&AUDIT_LOG, &AuditKey::new(t, 1)).map(drop));
    assert_eq!(faults(&db, t), [(2, Fault::Gap), (2, Fault::BrokenLink)]);
    caught(&db, "audit_chain", "broken link");
}

#[test]
fn a_deleted_last_row_is_caught_by_the_head() {
    let (db, _, admin) = chained(3);
    let t = admin.tenant_id();
    db.tamper(|tx| tx.delete(&AUDIT_LOG, &AuditKey::new(t, 2)).map(drop));
    assert_eq!(faults(&db, t), [(3, Fault::Head)]);
    caught(&db, "audit_heads", "does not match the last row");
}

#[test]
fn two_reordered_rows_are_broken_links_at_both_places() {
    let (db, _, admin) = chained(4);
    let t = admin.tenant_id();
    let (a, b) = (stored(&db, t, 1), stored(&db, t, 2));
    db.tamper(|tx| {
        tx.raw_insert_for_test(AUDIT_LOG.name(), &AuditKey::new(t, 1).encode(), &b)?;
        tx.raw_insert_for_test(AUDIT_LOG.name(), &AuditKey::new(t, 2).encode(), &a)
    });
    assert_eq!(
        faults(&db, t),
        [
            (1, Fault::BrokenLink),
            (2, Fault::BrokenLink),
            (3, Fault::BrokenLink)
        ]
    );
}

#[test]
fn an_audit_row_of_a_missing_user_is_caught() {
    let (db, _, _) = populated();
    db.tamper(|tx| {
        let mut first = None;
        tx.scan(&AUDIT_LOG, &AUDIT_LOG.prefix(), Order::Asc, |k, _| {
            first = AuditKey::decode(k).map(AuditKey::into_owned);
            Ok(Flow::Stop)
        })?;
        let k = first.unwrap();
        let mut a = tx.get(&AUDIT_LOG, &k)?.unwrap();
        a.user_id = "nobody".into();
        tx.put(&AUDIT_LOG, &k, &a)
    });
    caught(&db, "audit_chain", "missing user nobody");
}

#[test]
fn unchained_rows_are_chained_by_the_upgrade_in_their_order() {
    let (db, _, admin) = chained(3);
    let before = db.audit_log(&admin, 10).unwrap();
    db.tamper(|tx| {
        unchain_for_test(tx)?;
        crate::layout::set_old_for_test(tx, 7)
    });
    caught(&db, "audit", "unchained audit row left");
    // The step a database of layout 7 takes when it is opened, on whichever backend the
    // suite runs (redb, or PostgreSQL under BESPIN_TEST_DB).
    db.write(crate::layout::upgrade).unwrap();
    assert_eq!(
        db.read(|r, _| crate::layout::version(r)).unwrap(),
        crate::layout::CURRENT
    );
    let rep = db.audit_verify().unwrap();
    assert!(rep.is_clean(), "{rep}");
    assert_eq!(rep.rows, 6);
    let after = db.audit_log(&admin, 10).unwrap();
    let strip = |v: &[AuditRow]| -> Vec<(u64, String, String)> {
        v.iter()
            .map(|r| (r.n, r.request_id.clone(), r.created_at.clone()))
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
    assert!(db.check().unwrap().violations.is_empty());
}

#[test]
fn a_period_is_a_range_of_positions_and_stats_count_it() {
    let (db, clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let start = crate::time::Clock::now(&clock);
    for i in 0..6 {
        let m = serde_json::json!({ "message": format!("hello {i}") });
        db.chat(&admin, ChatRequest::from_json(&m).unwrap())
            .unwrap();
        clock.advance(3_600_000_000);
    }
    let at = |h: i64| Timestamp(start.0 + h * 3_600_000_000).to_rfc3339();
    let q = serde_json::json!({ "since": at(2), "until": at(4), "limit": "1" });
    let q = AuditQuery::from_json(&q).unwrap();
    let p = db.audit_page(&admin, &q).unwrap();
    assert_eq!(p.items.iter().map(|r| r.n).collect::<Vec<_>>(), [3]);
    let q = AuditQuery {
        cursor: p.next_cursor.map(|c| c.parse().unwrap()),
        ..q
    };
    let p = db.audit_page(&admin, &q).unwrap();
    assert_eq!(p.items.iter().map(|r| r.n).collect::<Vec<_>>(), [2]);
    assert_eq!(p.next_cursor, None);
    let s = serde_json::json!({ "group_by": "outcome", "since": at(1) });
    let s = db
        .audit_stats(&admin, &StatsQuery::from_json(&s).unwrap())
        .unwrap();
    assert_eq!(s.total, 5);
    assert_eq!(s.groups[0].key, "success");
}

#[test]
fn the_upkeep_signs_moved_heads_and_a_proof_reaches_the_checkpoint() {
    use super::checkpoint::{ProofQuery, origin};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let (db, _, admin) = chained(3);
    let t = admin.tenant_id();
    let q = ProofQuery { from: 1, to: 1 };
    assert_eq!(db.audit_proof(&admin, q).unwrap().checkpoint, None);
    assert_eq!(
        db.audit_checkpoint().unwrap(),
        2,
        "both tenants' heads moved"
    );
    assert_eq!(db.audit_checkpoint().unwrap(), 0, "nothing moved since");
    let p = db.audit_proof(&admin, q).unwrap();
    // The rows run on to the checkpoint's size, so the last one's hash is its head.
    assert_eq!(p.rows.iter().map(|r| r.n).collect::<Vec<_>>(), [1, 2]);
    let note = p.checkpoint.unwrap();
    let (text, sig) = note.split_once("\n\n").unwrap();
    let head = &p.rows[1].row_hash;
    assert_eq!(text, format!("{}\n3\n{head}", origin(t)));
    let sig = sig
        .strip_prefix("\u{2014} bespin-audit ")
        .unwrap()
        .trim_end();
    let blob = B64.decode(sig).unwrap();
    let pk: [u8; 32] = B64
        .decode(&p.public_key.ed25519_public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&pk).unwrap();
    let sig = Signature::from_slice(&blob[4..]).unwrap();
    key.verify(format!("{text}\n").as_bytes(), &sig).unwrap();
    assert!(p.public_key.verifier_key.starts_with("bespin-audit+"));
    assert_eq!(p.prev_hash, B64.encode(stored_row(&db, t, 0).row_hash));
    // A range past the chain's end is refused; members are refused.
    let past = ProofQuery { from: 0, to: 3 };
    assert!(matches!(
        db.audit_proof(&admin, past),
        Err(crate::Error::Validation(_))
    ));
    let bad = serde_json::json!({ "from": "2", "to": "1" });
    assert!(ProofQuery::from_json(&bad).is_err());
    assert_eq!(
        db.audit_public_key().unwrap(),
        db.audit_public_key().unwrap(),
        "one key per database"
    );
}

fn stored_row(db: &Bespin, tenant: &str, n: u64) -> AuditRec {
    db.read(|r, _| r.get(&AUDIT_LOG, &AuditKey::new(tenant, n)))
        .unwrap()
        .unwrap()
}

#[test]
fn a_core_os_write_names_its_record_and_capability() {
    let (db, _) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let new = serde_json::json!({ "title": "Pricing review", "priority": "low" });
    let task = crate::coreos::tasks::NewTask::from_json(&new).unwrap();
    let t = db.create_task(&admin, task).unwrap();
    let row = &db.audit_log(&admin, 1).unwrap()[0];
    assert_eq!(row.action, "tasks.create");
    assert_eq!(row.target_type.as_deref(), Some("task"));
    assert_eq!(row.target_id.as_deref(), Some(t.task_id.as_str()));
    assert_eq!(row.capability.as_deref(), Some("tasks"));
    assert_eq!(row.units, Some(1));
    assert!(db.audit_verify().unwrap().is_clean());
}

/// The newest `n` rows of `p`'s tenant as (action, outcome, units, target id).
fn newest(db: &Bespin, p: &Principal, n: usize) -> Vec<(String, Outcome, Option<u64>)> {
    let rows = db.audit_log(p, n).unwrap();
    rows.into_iter()
        .map(|r| (r.action, r.outcome, r.units))
        .collect()
}

#[test]
fn refusals_of_proven_callers_are_audited_with_their_outcome() {
    use crate::error::QuotaExceeded;
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    let denied = db
        .audit_page(
            &member,
            &AuditQuery::from_json(&serde_json::json!({})).unwrap(),
        )
        .unwrap_err();
    let r = Refusal::of_error("list_audit", "req-1", &denied).unwrap();
    let r = r.with_idempotency_key(Some("key-1"));
    db.audit_refusal(&member, r).unwrap().wait().unwrap();
    let cap = crate::Error::CapabilityDenied {
        capability_key: "coreos".into(),
        plan_id: "free".into(),
    };
    let r = Refusal::of_error("create_task", "req-2", &cap).unwrap();
    db.audit_refusal(&member, r).unwrap().wait().unwrap();
    let quota = crate::Error::QuotaExceeded(Box::new(QuotaExceeded {
        error: "quota_exceeded",
        period_start: "2026-12-01".into(),
        event_key: "tool_invocation".into(),
        limit_credits: 10,
        used_credits: 10.0,
        requested_credits: 1.0,
        cap_raw_units: None,
        used_raw_units: None,
        requested_raw_units: 1.into(),
    }));
    let r = Refusal::of_error("invoke_tool", "req-3", &quota).unwrap();
    db.audit_refusal(&member, r).unwrap().wait().unwrap();
    let r = Refusal::rate_limited("create_task", "req-4");
    db.audit_refusal(&member, r).unwrap().wait().unwrap();
    // Credentials that prove no caller, and errors that are not refusals, are not audited.
    for e in [
        crate::Error::UserNotFound,
        crate::Error::UserNotInTenant,
        crate::Error::InvalidCredentials,
        crate::Error::NotFound("x".into()),
        crate::Error::Validation(vec![]),
    ] {
        assert_eq!(Refusal::of_error("x", "r", &e), None, "{e:?}");
    }
    let rows = db.audit_log(&admin, 4).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.action.as_str(),
                r.outcome,
                r.request_id.as_str(),
                r.capability.as_deref(),
                r.user_id.as_str(),
            )
        })
        .collect();
    let m = member.user_id();
    assert_eq!(
        got,
        [
            ("create_task", Outcome::Quota, "req-4", None, m),
            ("invoke_tool", Outcome::Quota, "req-3", None, m),
            ("create_task", Outcome::Denied, "req-2", Some("coreos"), m),
            ("list_audit", Outcome::Denied, "req-1", None, m),
        ]
    );
    assert_eq!(rows[3].idempotency_key.as_deref(), Some("key-1"));
    assert!(db.audit_verify().unwrap().is_clean());
    assert!(db.check().unwrap().violations.is_empty());
}

#[test]
fn a_tenant_writes_at_most_sixty_refusal_rows_a_minute_then_one_summary_per_outcome() {
    let (db, clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    let (other, _) = testutil::tenant(&db);
    // Start at a minute's beginning, so the test's refusals share one minute.
    let now = crate::time::Clock::now(&clock).0;
    clock.advance(60_000_000 - now.rem_euclid(60_000_000));
    let minute = crate::time::Clock::now(&clock).to_rfc3339();
    let refuse = |p: &Principal, i: usize, outcome: Outcome| {
        let mut r = Refusal::rate_limited("create_task", &format!("req-{i}"));
        r.outcome = outcome;
        db.audit_refusal(p, r).map(|w| w.wait().unwrap()).is_some()
    };
    let written = (0..70)
        .filter(|&i| refuse(&member, i, Outcome::Quota))
        .count();
    assert_eq!(written, 60);
    assert!(
        !refuse(&admin, 70, Outcome::Denied),
        "the budget is the tenant's"
    );
    assert!(
        refuse(&other, 0, Outcome::Denied),
        "another tenant has its own"
    );
    let size = |p: &Principal| db.audit_log(p, 1000).unwrap().len();
    assert_eq!(size(&admin), 60);
    // The next minute's first refusal writes the summaries of the last one first.
    clock.advance(60_000_000);
    assert!(refuse(&admin, 71, Outcome::Denied));
    let rows = db.audit_log(&admin, 3).unwrap();
    assert_eq!(
        newest(&db, &admin, 3),
        [
            ("create_task".into(), Outcome::Denied, None),
            (SUPPRESSED.into(), Outcome::Quota, Some(10)),
            (SUPPRESSED.into(), Outcome::Denied, Some(1)),
        ]
    );
    assert_eq!(rows[1].target_type.as_deref(), Some("minute"));
    assert_eq!(rows[1].target_id.as_deref(), Some(minute.as_str()));
    assert_eq!(rows[1].request_id, "req-60", "the first refusal left out");
    assert_eq!(rows[2].user_id, admin.user_id());
    // A minute with refusals left out and none after it: the upkeep writes its summary.
    for i in 0..61 {
        refuse(&member, 100 + i, Outcome::Quota);
    }
    assert_eq!(
        db.flush_refusal_summaries().unwrap(),
        0,
        "the minute goes on"
    );
    clock.advance(60_000_000);
    assert_eq!(db.flush_refusal_summaries().unwrap(), 1);
    assert_eq!(
        newest(&db, &admin, 1),
        [(SUPPRESSED.into(), Outcome::Quota, Some(2))]
    );
    assert_eq!(db.flush_refusal_summaries().unwrap(), 0, "written once");
    assert_eq!(size(&admin), 60 + 3 + 59 + 1);
    assert!(db.audit_verify().unwrap().is_clean());
    assert!(db.check().unwrap().violations.is_empty());
}

const SUPPRESSED: &str = refused::SUPPRESSED_ACTION;

/// Appends `rows` audit rows of `p` in one transaction (faster than one operation each).
fn append_rows(db: &Bespin, p: &Principal, rows: usize) {
    db.transaction(|tx, ctx| {
        for i in 0..rows {
            let id = format!("bulk-{i}");
            append(tx, ctx, p.tenant_id(), Entry::new(p.user_id(), "bulk", &id))?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn an_export_streams_a_period_page_by_page_from_one_snapshot() {
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    append_rows(&db, &admin, 1_203);
    let q = ExportQuery::from_json(&serde_json::json!({ "since": "2000-01-01" })).unwrap();
    let mut x = db.audit_export(&admin, &q).unwrap();
    assert_eq!(x.remaining(), 1_203);
    // Rows written after the export began are not in it: it reads one snapshot.
    append_rows(&db, &admin, 5);
    let (mut pages, mut lines) = (0, Vec::new());
    let mut out = Vec::new();
    while x.next_page(&mut out).unwrap() {
        pages += 1;
        assert!(out.split(|&b| b == b'\n').count() <= export::EXPORT_PAGE as usize + 1);
        lines.extend(
            out.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap()),
        );
        out.clear();
    }
    assert_eq!((pages, lines.len()), (3, 1_203));
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["n"], i as u64, "oldest first, every position");
        assert_eq!(l["tenant_id"], admin.tenant_id());
        if i > 0 {
            assert_eq!(l["prev_hash"], lines[i - 1]["row_hash"], "linked");
        }
    }
    assert_eq!(lines[0]["user_id"], admin.user_id());
    assert!(lines[0]["digest_salt"].is_string());
    // At most two exports of a tenant at once; a finished one frees its place.
    drop(x);
    let a = db.audit_export(&admin, &q).unwrap();
    let b = db.audit_export(&admin, &q).unwrap();
    assert!(matches!(
        db.audit_export(&admin, &q),
        Err(crate::Error::Overloaded)
    ));
    drop(a);
    let _c = db.audit_export(&admin, &q).unwrap();
    drop(b);
    // An export rendered to its last page frees its place at once, though the value lives on
    // (the server drops it only once the last bytes went out).
    let mut d = db.audit_export(&admin, &q).unwrap();
    assert!(matches!(
        db.audit_export(&admin, &q),
        Err(crate::Error::Overloaded)
    ));
    while d.next_page(&mut out).unwrap() {}
    let after_d = db.audit_export(&admin, &q).unwrap();
    drop((d, after_d));
    // An empty period, bad input, members.
    let later = ExportQuery::from_json(&serde_json::json!({ "since": "2999-01-01" })).unwrap();
    let mut e = db.audit_export(&admin, &later).unwrap();
    assert!(!e.next_page(&mut out).unwrap());
    assert!(ExportQuery::from_json(&serde_json::json!({ "since": "soon" })).is_err());
    assert!(matches!(
        db.audit_export(&member, &q),
        Err(crate::Error::Forbidden(_))
    ));
}

#[test]
fn chat_briefs_and_runs_fill_capability_target_units_and_key() {
    use crate::briefs::MaterializeRequest;
    let (db, _clock) = testutil::db();
    let (admin, _member) = testutil::tenant(&db);
    let m = serde_json::json!({ "message": "hello" });
    let c = db
        .chat(&admin, ChatRequest::from_json(&m).unwrap())
        .unwrap();
    let req = || MaterializeRequest::from_json(&serde_json::json!({})).unwrap();
    let b = db.materialize_brief(&admin, "brief-key", req()).unwrap();
    let b = b.into_value().unwrap();
    db.run_daily_brief(&admin, "run-key", req()).unwrap();
    let rows = db.audit_log(&admin, 3).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.action.as_str(),
                r.capability.as_deref(),
                r.target_type.as_deref(),
                r.target_id.as_deref(),
                r.units,
                r.idempotency_key.as_deref(),
            )
        })
        .collect();
    let brief_id = b.brief_id.as_str();
    assert_eq!(
        got,
        [
            (
                "notifications.enqueue",
                Some("notifications"),
                Some("brief"),
                Some(brief_id),
                Some(2),
                Some("run-key")
            ),
            (
                "briefs.materialize",
                Some("briefs"),
                Some("brief"),
                Some(brief_id),
                Some(1),
                Some("brief-key")
            ),
            (
                "cofounder.chat",
                Some("chat"),
                Some("conversation"),
                Some(c.conversation_id.as_str()),
                Some(1),
                None
            ),
        ]
    );
    assert!(db.audit_verify().unwrap().is_clean());
}

/// The stored head of `tenant`'s chain.
fn head_of(db: &Bespin, tenant: &str) -> HeadRec {
    db.read(|r, _| r.get(&AUDIT_HEADS, &HeadKey::new(tenant)))
        .unwrap()
        .unwrap_or(HeadRec::EMPTY)
}

use crate::commit::TestOp as BatchOp;

/// An operation of one append of `p`'s, under request id `id`, that then fails if `fail`.
fn append_op<'a>(p: &'a Principal, id: String, fail: bool) -> BatchOp<'a> {
    Box::new(move |tx, ctx| {
        append(tx, ctx, p.tenant_id(), Entry::new(p.user_id(), "bulk", &id))?;
        if fail {
            return Err(crate::Error::Conflict("no".into()));
        }
        Ok(())
    })
}

/// The head is held in the batch and written once at its commit: a failed operation's append
/// gives its position back to the next one, in the same batch.
#[test]
fn a_failed_append_in_a_batch_gives_its_position_back() {
    let (db, _clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let t = admin.tenant_id();
    let s0 = head_of(&db, t).size;
    let ops = [
        ("a", false),
        ("b", true),
        ("c", false),
        ("d", true),
        ("e", false),
    ]
    .into_iter()
    .map(|(id, fail)| append_op(&admin, id.into(), fail))
    .collect();
    let ok: Vec<bool> = db
        .inner
        .committer
        .run_batch_for_test(ops)
        .unwrap()
        .iter()
        .map(Result::is_ok)
        .collect();
    assert_eq!(ok, [true, false, true, false, true]);
    let rows = db.audit_log(&admin, 3).unwrap();
    let got: Vec<(u64, &str)> = rows.iter().map(|r| (r.n, r.request_id.as_str())).collect();
    assert_eq!(got, [(s0 + 2, "e"), (s0 + 1, "c"), (s0, "a")]);
    assert_eq!(head_of(&db, t).size, s0 + 3);
    assert!(db.audit_verify().unwrap().is_clean());
}

/// A batch of 2,500 appends (one failing among them) crosses two checkpoints, each signed over
/// the head of its size; the upkeep run in the same batch sees the held head; every read of
/// the batch sees the held head; the chains verify after the commit.
#[test]
fn a_batch_of_many_appends_checkpoints_every_thousand_rows_and_verifies() {
    use super::checkpoint::{CHECKPOINTS, CheckpointKey, ProofQuery};
    let (db, _clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let t = admin.tenant_id().to_owned();
    let s0 = head_of(&db, &t).size;
    let mut ops: Vec<BatchOp<'_>> = Vec::new();
    for i in 0..2_500 {
        ops.push(append_op(&admin, format!("r{i}"), false));
        if i == 1_200 {
            ops.push(append_op(&admin, "failed".into(), true));
            // The upkeep sees the head as the batch holds it, and signs it.
            let t = t.clone();
            ops.push(Box::new(move |tx, ctx| {
                let head = tx.get(&AUDIT_HEADS, &HeadKey::new(&t))?.unwrap();
                assert_eq!(
                    head.size,
                    s0 + 1_201,
                    "a read of the batch sees the held head"
                );
                assert_eq!(checkpoint::checkpoint_moved(tx, ctx)?, 1);
                assert!(tx.contains(&CHECKPOINTS, &CheckpointKey::new(&t, s0 + 1_201))?);
                Ok(())
            }));
        }
    }
    let outcomes = db.inner.committer.run_batch_for_test(ops).unwrap();
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 1);
    assert_eq!(head_of(&db, &t).size, s0 + 2_500);
    let sizes: Vec<u64> = db
        .read(|r, _| {
            let mut sizes = Vec::new();
            r.scan(
                &CHECKPOINTS,
                &CHECKPOINTS.prefix().tenant(&t),
                Order::Asc,
                |k, _| {
                    sizes.extend(CheckpointKey::decode(k).map(|k| k.size));
                    Ok(Flow::Continue)
                },
            )?;
            Ok(sizes)
        })
        .unwrap();
    assert_eq!(sizes, [1_000, s0 + 1_201, 2_000]);
    // Each checkpoint signs the chain as it was at its size.
    for size in [1_000u64, 2_000] {
        let p = db
            .audit_proof(
                &admin,
                ProofQuery {
                    from: size - 2,
                    to: size - 1,
                },
            )
            .unwrap();
        let note = p.checkpoint.unwrap();
        let last = &p.rows.last().unwrap().row_hash;
        assert!(note.contains(&format!("\n{size}\n{last}\n")), "{note}");
    }
    assert!(db.audit_verify().unwrap().is_clean());
    assert!(db.check().unwrap().violations.is_empty());
}
