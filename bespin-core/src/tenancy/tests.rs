//! Keys over their lifetime and users' role and deactivation.

use super::keys::{self, NewApiKey, Rotation, Scopes};
use super::users::{UserPatch, UserQuery};
use crate::coreos::tasks::{self, NewTask};
use crate::testutil::{db, tenant};
use crate::{Bespin, Credentials, Error, Op, Principal, Role};
use serde_json::json;

fn new_key(db: &Bespin, admin: &Principal, user: &str, scopes: Scopes) -> (String, String) {
    let k = db
        .create_api_key(
            admin,
            NewApiKey {
                user_id: user.into(),
                name: "ci".into(),
                scopes,
                expires_at: None,
            },
        )
        .expect("key");
    (k.key.key_id, k.api_key)
}

fn bearer(db: &Bespin, key: &str) -> crate::Result<Principal> {
    db.authenticate(&Credentials::default().with_authorization(Some(&format!("Bearer {key}"))))
}

fn task(title: &str) -> NewTask {
    NewTask::from_json(&json!({ "title": title })).expect("task")
}

fn write_task(db: &Bespin, who: &Principal) -> crate::Result<tasks::Task> {
    db.run(Op::with(who.clone(), task("t"), tasks::create))
}

#[test]
fn a_bound_key_acts_as_its_user_by_header_or_bearer() {
    let (db, _) = db();
    let (admin, member) = tenant(&db);
    let (_, key) = new_key(&db, &admin, member.user_id(), Scopes::All);
    let t = admin.tenant_id();
    let by_header = db
        .authenticate(&Credentials::new(Some(t), None, Some(&key)))
        .expect("no X-User-ID needed");
    assert_eq!(by_header.user_id(), member.user_id());
    assert_eq!(by_header.role(), Role::Member);
    let by_bearer = bearer(&db, &key).expect("bearer alone");
    assert_eq!(by_bearer.user_id(), member.user_id());
    // X-User-ID must name the key's user.
    let other = db.authenticate(&Credentials::new(
        Some(t),
        Some(admin.user_id()),
        Some(&key),
    ));
    assert!(matches!(other, Err(Error::Forbidden(_))), "{other:?}");
    // A bearer with another tenant's header, and unknown keys, are the one 401.
    let mut creds = Credentials::new(Some("00000000-0000-4000-8000-000000000000"), None, None);
    creds = creds.with_authorization(Some(&format!("bearer {key}")));
    assert!(matches!(
        db.authenticate(&creds),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        bearer(&db, "bsk_nope"),
        Err(Error::InvalidCredentials)
    ));
    assert!(db.check().expect("check").is_ok());
}

#[test]
fn the_list_never_shows_a_secret_and_members_see_their_own() {
    let (db, _) = db();
    let (admin, member) = tenant(&db);
    let (_, key) = new_key(&db, &admin, member.user_id(), Scopes::ReadOnly);
    new_key(&db, &admin, admin.user_id(), Scopes::All);
    let all = db.list_api_keys(&admin).expect("list");
    assert_eq!(all.len(), 2);
    let text = serde_json::to_string(&all).expect("json");
    assert!(!text.contains(&key[4..]), "the secret leaked: {text}");
    assert!(all.iter().any(|k| k.last4 == key[key.len() - 4..]));
    assert_eq!(db.list_api_keys(&member).expect("own").len(), 1);
    // Members cannot make keys.
    let refused = db.create_api_key(
        &member,
        NewApiKey {
            user_id: member.user_id().into(),
            name: "x".into(),
            scopes: Scopes::All,
            expires_at: None,
        },
    );
    assert!(matches!(refused, Err(Error::Forbidden(_))));
}

#[test]
fn a_revocation_stops_writes_authenticated_before_it() {
    let (db, _) = db();
    let (admin, member) = tenant(&db);
    let (id, key) = new_key(&db, &admin, member.user_id(), Scopes::All);
    let who = bearer(&db, &key).expect("auth");
    write_task(&db, &who).expect("live key writes");
    db.revoke_api_key(&admin, &id).expect("revoke");
    // Authenticated before the revocation, written after: refused in the transaction.
    assert!(matches!(
        write_task(&db, &who),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(bearer(&db, &key), Err(Error::InvalidCredentials)));
    // A revoked key stays listed, with its revocation, and its digest is gone.
    let listed = db.list_api_keys(&admin).expect("list");
    assert!(listed[0].revoked_at.is_some());
    assert!(db.check().expect("check").is_ok());
}

#[test]
fn a_revocation_inside_a_batch_is_seen_by_the_operations_after_it() {
    let (db, _) = db();
    let (admin, member) = tenant(&db);
    let (id, key) = new_key(&db, &admin, member.user_id(), Scopes::All);
    let who = bearer(&db, &key).expect("auth");
    let out = db.transaction(|tx, ctx| {
        let first = crate::tenancy::keys::admit(tx, ctx, &who, keys::Access::Write);
        keys::revoke(tx, ctx, &admin, &id)?;
        let second = crate::tenancy::keys::admit(tx, ctx, &who, keys::Access::Write);
        Ok((first.is_ok(), second.is_ok()))
    });
    assert_eq!(out.expect("batch"), (true, false));
}

#[test]
fn keys_expire_and_read_only_keys_write_nothing() {
    let (db, clock) = db();
    let (admin, member) = tenant(&db);
    let later = crate::time::Timestamp(crate::time::Clock::now(&clock).0 + 60_000_000);
    let k = db
        .create_api_key(
            &admin,
            NewApiKey {
                user_id: member.user_id().into(),
                name: "short".into(),
                scopes: Scopes::ReadOnly,
                expires_at: Some(later),
            },
        )
        .expect("key");
    let who = bearer(&db, &k.api_key).expect("auth");
    assert!(who.read_only());
    assert!(matches!(write_task(&db, &who), Err(Error::Forbidden(_))));
    // The write that accompanies a read is allowed.
    db.run(Op::for_read(who.clone(), keys::touch))
        .expect("touch");
    clock.advance(61_000_000);
    assert!(matches!(
        bearer(&db, &k.api_key),
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        db.run(Op::for_read(who, keys::touch)),
        Err(Error::InvalidCredentials)
    ));
}

#[test]
fn last_use_is_written_once_a_day() {
    let (db, clock) = db();
    let (admin, member) = tenant(&db);
    let (_, key) = new_key(&db, &admin, member.user_id(), Scopes::All);
    let who = bearer(&db, &key).expect("auth");
    assert!(who.key_touch_due());
    write_task(&db, &who).expect("write");
    let again = bearer(&db, &key).expect("auth");
    assert!(!again.key_touch_due(), "the write recorded today");
    let day = db.list_api_keys(&admin).expect("list")[0]
        .last_used_on
        .clone();
    assert_eq!(day.as_deref(), Some("2026-01-31"));
    clock.advance(86_400_000_000);
    assert!(bearer(&db, &key).expect("auth").key_touch_due());
}

#[test]
fn rotation_keeps_the_old_key_for_its_grace_only() {
    let (db, clock) = db();
    let t = db
        .create_tenant(crate::tenancy::NewTenant {
            name: "R".into(),
            region: "eu".into(),
            admin_email: "r@r.example".into(),
        })
        .expect("tenant");
    let creds = |k: &str| Credentials::new(Some(&t.tenant_id), Some(&t.admin.user_id), Some(k));
    let admin = db.authenticate(&creds(&t.api_key)).expect("admin");
    let r = db
        .rotate_tenant_key(
            &admin,
            Rotation {
                grace_seconds: 3600,
            },
        )
        .expect("rotate");
    db.authenticate(&creds(&r.api_key)).expect("new key");
    db.authenticate(&creds(&t.api_key))
        .expect("old key in its grace");
    clock.advance(3_601_000_000);
    assert!(matches!(
        db.authenticate(&creds(&t.api_key)),
        Err(Error::InvalidCredentials)
    ));
    let r2 = db
        .rotate_tenant_key(&admin, Rotation { grace_seconds: 0 })
        .expect("rotate now");
    assert!(matches!(
        db.authenticate(&creds(&r.api_key)),
        Err(Error::InvalidCredentials)
    ));
    db.authenticate(&creds(&r2.api_key)).expect("newest");
    assert!(Rotation::from_json(&json!({"grace_seconds": 604801})).is_err());
    assert!(db.check().expect("check").is_ok());
}

#[test]
fn users_are_listed_a_page_at_a_time() {
    let (db, _) = db();
    let (admin, member) = tenant(&db);
    for i in 0..3 {
        db.create_user(
            &admin,
            crate::tenancy::NewUser {
                tenant_id: admin.tenant_id().into(),
                email: format!("u{i}@acme.example"),
                role: Role::Member,
            },
        )
        .expect("user");
    }
    let p1 = db
        .list_users(&admin, UserQuery::new(Some(2), None).expect("q"))
        .expect("p1");
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.items[0].user_id, admin.user_id());
    let cursor: i64 = p1.next_cursor.as_deref().expect("more").parse().expect("n");
    let p2 = db
        .list_users(&admin, UserQuery::new(Some(2), Some(cursor)).expect("q"))
        .expect("p2");
    let p3 = db
        .list_users(
            &admin,
            UserQuery::new(
                Some(2),
                Some(p2.next_cursor.as_deref().expect("n").parse().expect("n")),
            )
            .expect("q"),
        )
        .expect("p3");
    assert_eq!(p2.items.len() + p3.items.len(), 3);
    assert!(p3.next_cursor.is_none());
    assert!(matches!(
        db.list_users(&member, UserQuery::new(None, None).expect("q")),
        Err(Error::Forbidden(_))
    ));
    assert!(UserQuery::new(Some(0), None).is_err());
    assert_eq!(
        db.get_user(&member, member.user_id()).expect("self").email,
        "bob@acme.example"
    );
}

#[test]
fn deactivation_refuses_the_user_and_revokes_their_keys() {
    let (db, _) = db();
    let t = db
        .create_tenant(crate::tenancy::NewTenant {
            name: "D".into(),
            region: "eu".into(),
            admin_email: "d@d.example".into(),
        })
        .expect("tenant");
    let creds = |u: &str| Credentials::new(Some(&t.tenant_id), Some(u), Some(&t.api_key));
    let admin = db.authenticate(&creds(&t.admin.user_id)).expect("admin");
    let m = db
        .create_user(
            &admin,
            crate::tenancy::NewUser {
                tenant_id: t.tenant_id.clone(),
                email: "m@d.example".into(),
                role: Role::Member,
            },
        )
        .expect("member");
    let member = db.authenticate(&creds(&m.user_id)).expect("member");
    let (_, key) = new_key(&db, &admin, member.user_id(), Scopes::All);
    let who = bearer(&db, &key).expect("auth");
    let off = UserPatch {
        role: None,
        deactivated: Some(true),
    };
    let u = db
        .update_user(&admin, member.user_id(), off)
        .expect("deactivate");
    assert!(u.deactivated);
    assert!(matches!(bearer(&db, &key), Err(Error::InvalidCredentials)));
    assert!(matches!(
        write_task(&db, &who),
        Err(Error::InvalidCredentials)
    ));
    // By the tenant key too; their records stay.
    assert!(matches!(
        db.authenticate(&creds(&m.user_id)),
        Err(Error::InvalidCredentials)
    ));
    let t = db.list_api_keys(&admin).expect("list");
    assert!(t[0].revoked_at.is_some());
    let on = UserPatch {
        role: None,
        deactivated: Some(false),
    };
    assert!(
        !db.update_user(&admin, member.user_id(), on)
            .expect("again")
            .deactivated
    );
    db.authenticate(&creds(&m.user_id)).expect("active again");
    assert!(db.check().expect("check").is_ok());
}

#[test]
fn the_last_active_admin_stays() {
    let (db, _) = db();
    let (admin, member) = tenant(&db);
    let demote = UserPatch {
        role: Some(Role::Member),
        deactivated: None,
    };
    let refused = db.update_user(&admin, admin.user_id(), demote.clone());
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let off = UserPatch {
        role: None,
        deactivated: Some(true),
    };
    assert!(matches!(
        db.update_user(&admin, admin.user_id(), off),
        Err(Error::Conflict(_))
    ));
    let promote = UserPatch {
        role: Some(Role::Admin),
        deactivated: None,
    };
    db.update_user(&admin, member.user_id(), promote)
        .expect("second admin");
    db.update_user(&admin, admin.user_id(), demote)
        .expect("now allowed");
}

#[test]
fn a_capability_scoped_key_exercises_only_its_capabilities() {
    let (db, _) = db();
    let (admin, _) = tenant(&db);
    let scopes = Scopes::Capabilities(vec!["tasks".into()]);
    let (_, key) = new_key(&db, &admin, admin.user_id(), scopes);
    let who = bearer(&db, &key).expect("auth");
    write_task(&db, &who).expect("tasks is in scope");
    let fact = crate::coreos::memory::NewFact::from_json(&json!({
        "category": "icp", "fact_key": "k", "fact_value": "v"
    }))
    .expect("fact");
    let refused = db.run(Op::with(who.clone(), fact, crate::coreos::memory::create));
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    // Nor can it manage keys or users.
    let more = db.create_api_key(
        &who,
        NewApiKey {
            user_id: admin.user_id().into(),
            name: "wider".into(),
            scopes: Scopes::All,
            expires_at: None,
        },
    );
    assert!(matches!(more, Err(Error::Forbidden(_))));
    assert!(
        NewApiKey::from_json(&json!({"user_id": "u", "name": "n", "scopes": ["nope"]})).is_err()
    );
}
