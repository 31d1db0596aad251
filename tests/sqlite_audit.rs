//! Audit queries on SQLite answer exactly what the in-memory store answers:
//! per user in commit order, per portal by time range.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;

use flows::{ADMIN, T0, TempDir, TestStore, enrol, portal_on};
use portal_mfa::{
    ManualClock, UserId,
    admin::{ResetMode, ResetReason},
    audit::EventQuery,
    store::SqliteStore,
};

fn story(store: Arc<dyn TestStore>) -> Vec<(String, Vec<String>)> {
    let clock = ManualClock::at(T0);
    let portal = portal_on(store, &clock);
    let users = [UserId::customer("a"), UserId::vendor("a"), UserId::contact("b")];
    portal
        .set_enforcement(&ADMIN, portal_mfa::Enforcement::Enforced { grace: None })
        .run()
        .unwrap();
    for (i, user) in users.iter().enumerate() {
        let (phone, codes) = enrol(flows::Executor::Blocking, &portal, &clock, user);
        portal.verify_sign_in(user, &phone.code(&clock)).run().unwrap();
        let _ = portal.verify_sign_in(user, "000000").run();
        portal.verify_sign_in(user, &codes[i]).run().unwrap();
        clock.advance(100);
    }
    portal
        .admin_reset(&ADMIN, &users[1], ResetReason::NewDevice, ResetMode::default())
        .run()
        .unwrap();
    let show = |q: EventQuery| -> Vec<String> {
        portal
            .audit_events(q.limit(portal_mfa::MAX_PAGE))
            .run()
            .unwrap()
            .items
            .iter()
            .map(|e| format!("{e:?}"))
            .collect()
    };
    let base = EventQuery::portal(portal.id());
    let mut answers = Vec::new();
    for user in &users {
        answers.push((format!("{user}"), show(base.clone().user(user))));
        answers.push((
            format!("{user} early"),
            show(base.clone().user(user).between(T0, T0 + 150)),
        ));
    }
    for (from, until) in [
        (0, u64::MAX),
        (T0 + 30, T0 + 200),
        (T0 + 10_000, u64::MAX),
        (u64::MAX - 1, u64::MAX),
    ] {
        let mut all = show(base.clone().between(from, until));
        all.sort();
        answers.push((format!("portal {from}..{until}"), all));
    }
    let mut all = show(base);
    all.sort();
    answers.push(("portal".into(), all));
    answers
}

#[test]
fn sqlite_answers_audit_queries_like_the_memory_store() {
    let dir = TempDir::new("audit");
    let expected = story(flows::memory());
    let actual = story(flows::bytes(SqliteStore::open(dir.file("mfa.db")).unwrap()));
    assert!(
        expected.iter().any(|(_, events)| events.len() > 10),
        "the story leaves a trail"
    );
    for ((query, want), (_, got)) in expected.iter().zip(&actual) {
        assert_eq!(got, want, "query {query}");
    }
}
