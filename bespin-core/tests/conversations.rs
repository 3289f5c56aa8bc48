#![allow(clippy::unwrap_used)]
//! Notification preferences, the outbox and conversations through the public API.

use bespin_core::conversations::NewConversation;
use bespin_core::notifications::{OutboxQuery, PrefsUpdate};
use bespin_core::tenancy::{NewTenant, NewUser, TenantCreated};
use bespin_core::{Bespin, Credentials, Principal, Role};

fn tenant(db: &Bespin, name: &str) -> TenantCreated {
    db.create_tenant(NewTenant {
        name: name.into(),
        region: "eu".into(),
        admin_email: "a@b.io".into(),
    })
    .expect("tenant")
}

fn login(db: &Bespin, t: &TenantCreated, user: &str) -> Principal {
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(user),
        Some(&t.api_key),
    ))
    .expect("auth")
}

fn add_member(db: &Bespin, t: &TenantCreated) -> Principal {
    let admin = login(db, t, &t.admin.user_id);
    let u = db
        .create_user(
            &admin,
            NewUser {
                tenant_id: t.tenant_id.clone(),
                email: "m@b.io".into(),
                role: Role::Member,
            },
        )
        .expect("user");
    login(db, t, &u.user_id)
}

#[test]
fn prefs_default_until_saved_and_saving_replaces() {
    let db = Bespin::open_for_test(
        std::sync::Arc::new(bespin_core::time::SystemClock),
        Default::default(),
    )
    .expect("db");
    let t = tenant(&db, "A");
    let m = add_member(&db, &t);
    assert!(
        db.notification_prefs(&m)
            .expect("prefs")
            .daily_brief_enabled
    );
    let p = db
        .set_notification_prefs(
            &m,
            PrefsUpdate {
                daily_brief_enabled: false,
            },
        )
        .expect("save");
    assert!(!p.daily_brief_enabled);
    assert!(
        !db.notification_prefs(&m)
            .expect("prefs")
            .daily_brief_enabled
    );
    // Another user's preference is their own.
    assert!(
        db.notification_prefs(&login(&db, &t, &t.admin.user_id))
            .expect("prefs")
            .daily_brief_enabled
    );
    let bad = PrefsUpdate::from_json(&serde_json::json!({"delivery_method": "email"}));
    assert!(bad.is_err());
    assert!(
        PrefsUpdate::from_json(&serde_json::json!({}))
            .expect("defaults")
            .daily_brief_enabled
    );
}

#[test]
fn acking_someone_elses_notification_is_not_found() {
    let db = Bespin::open_for_test(
        std::sync::Arc::new(bespin_core::time::SystemClock),
        Default::default(),
    )
    .expect("db");
    let t = tenant(&db, "A");
    let m = add_member(&db, &t);
    assert!(
        db.outbox(&m, &OutboxQuery::default())
            .expect("outbox")
            .items
            .is_empty()
    );
    assert_eq!(
        db.ack_notification(&m, 7).unwrap_err().to_string(),
        "Notification 7 not found"
    );
}

#[test]
fn conversations_belong_to_their_owner() {
    let db = Bespin::open_for_test(
        std::sync::Arc::new(bespin_core::time::SystemClock),
        Default::default(),
    )
    .expect("db");
    let t = tenant(&db, "A");
    let other = tenant(&db, "B");
    let admin = login(&db, &t, &t.admin.user_id);
    let m = add_member(&db, &t);
    let c1 = db
        .create_conversation(
            &m,
            NewConversation {
                title: Some("first".into()),
            },
        )
        .expect("c1");
    let c2 = db
        .create_conversation(&m, NewConversation { title: None })
        .expect("c2");
    let list = db.conversations(&m, None, None).expect("list");
    let ids: Vec<&str> = list
        .items
        .iter()
        .map(|c| c.conversation_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [c2.conversation_id.as_str(), c1.conversation_id.as_str()],
        "newest first"
    );
    assert_eq!(
        db.conversations(&m, Some(1), Some(1)).expect("page").items[0].conversation_id,
        c1.conversation_id
    );
    assert_eq!(
        db.conversations(&m, Some(0), Some(-5))
            .expect("clamped")
            .items
            .len(),
        1
    );
    let got = db.conversation(&m, &c1.conversation_id).expect("get");
    assert_eq!(
        (got.title.as_deref(), got.messages.len()),
        (Some("first"), 0)
    );
    // Neither another user of the tenant nor another tenant can see it.
    assert_eq!(
        db.conversation(&admin, &c1.conversation_id)
            .unwrap_err()
            .to_string(),
        "Conversation not found"
    );
    let oa = login(&db, &other, &other.admin.user_id);
    assert!(db.conversation(&oa, &c1.conversation_id).is_err());
    assert!(
        db.conversations(&admin, None, None)
            .expect("list")
            .items
            .is_empty()
    );
}
