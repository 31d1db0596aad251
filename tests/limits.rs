//! The ends of every range a host can reach, on every store (memory, the
//! README's compare-and-swap store, SQLite, PostgreSQL) through both
//! executors: event times at both ends of time, locks that would end past
//! the last second a clock may show, and the longest user id.

#![cfg(feature = "sqlite")]

mod flows;

use flows::{ADMIN, Executor, Go, TestPortal, all_pages, each_store_and_executor, enrol, portal_on};
use portal_mfa::{
    Cursor, Enforcement, Error, ManualClock, SignInStep, UserId,
    admin::{ResetMode, ResetReason, StatusFilter, UserQuery},
    audit::{EventKind, EventQuery},
};

const END: u64 = i64::MAX as u64;

/// Times an event is written at: both ends, and around the last second.
const EVENT_TIMES: [u64; 6] = [0, 1, END - 30, END - 1, END, END];

/// Query bounds at, around and past both ends.
const BOUNDS: [u64; 13] = [
    0,
    1,
    2,
    END - 31,
    END - 30,
    END - 29,
    END - 1,
    END,
    END + 1,
    END + 30,
    u64::MAX - 1,
    u64::MAX,
    1_000,
];

fn lock_out(ex: Executor, portal: &TestPortal, user: &UserId) -> Option<u64> {
    for _ in 0..100 {
        if let Err(Error::LockedOut { until }) = portal.verify_sign_in(user, "000000").go(ex) {
            return until;
        }
    }
    panic!("never locked");
}

/// Every count and page at and around both ends of time is what the plain
/// range `from <= at < until` over the written events gives, on every store:
/// an upper bound past `i64::MAX` bounds nothing, a lower bound past it
/// selects nothing.
#[test]
fn counts_and_pages_at_both_ends_of_time_agree_on_every_store() {
    let transcripts: std::cell::RefCell<Vec<(String, String)>> = Default::default();
    each_store_and_executor(|label, ex, store| {
        let clock = ManualClock::at(0);
        let portal = portal_on(store, &clock);
        let user = UserId::customer("u");
        // One user event and one portal event at each time.
        for (i, &at) in EVENT_TIMES.iter().enumerate() {
            clock.set(at);
            portal
                .admin_reset(&ADMIN, &user, ResetReason::LostDevice, ResetMode::RemoveOnly)
                .go(ex)
                .unwrap();
            let enforcement = if i % 2 == 0 {
                Enforcement::Enforced { grace: None }
            } else {
                Enforcement::SelfConfigured
            };
            portal.set_enforcement(&ADMIN, enforcement).go(ex).unwrap();
        }
        let every = all_pages(ex, &portal, EventQuery::portal(portal.id()).limit(5));
        let reset_times: Vec<u64> = every
            .iter()
            .filter(|e| matches!(e.kind, EventKind::MfaReset { .. }))
            .map(|e| e.at)
            .collect();
        assert_eq!(reset_times, EVENT_TIMES, "{label}: one reset at each time");
        // Each reset also ends the user's sessions: two user events at each time.
        let user_times: Vec<u64> = every.iter().filter(|e| e.user.is_some()).map(|e| e.at).collect();
        let all_times: Vec<u64> = every.iter().map(|e| e.at).collect();

        let mut transcript = String::new();
        for from in BOUNDS {
            for until in BOUNDS {
                let want =
                    |times: &[u64]| -> Vec<u64> { times.iter().copied().filter(|&t| from <= t && t < until).collect() };
                let counted: u64 = portal.event_counts(from, until).go(ex).unwrap().values().sum();
                assert_eq!(
                    counted,
                    want(&all_times).len() as u64,
                    "{label}: event_counts({from}, {until})"
                );
                let query = EventQuery::portal(portal.id()).between(from, until).limit(2);
                let oldest_first: Vec<u64> = all_pages(ex, &portal, query.clone()).iter().map(|e| e.at).collect();
                assert_eq!(oldest_first, want(&all_times), "{label}: pages in [{from}, {until})");
                let mut newest_first: Vec<u64> = all_pages(ex, &portal, query.newest_first())
                    .iter()
                    .map(|e| e.at)
                    .collect();
                newest_first.reverse();
                assert_eq!(newest_first, oldest_first, "{label}: newest first in [{from}, {until})");
                let users: Vec<u64> = all_pages(
                    ex,
                    &portal,
                    EventQuery::portal(portal.id())
                        .user(&user)
                        .between(from, until)
                        .limit(2),
                )
                .iter()
                .map(|e| e.at)
                .collect();
                assert_eq!(
                    users,
                    want(&user_times),
                    "{label}: the user's pages in [{from}, {until})"
                );
                transcript.push_str(&format!("{from} {until}: {counted} {oldest_first:?} {users:?}\n"));
            }
        }
        transcripts.borrow_mut().push((label.to_owned(), transcript));
    });
    let transcripts = transcripts.into_inner();
    let (first_label, first) = &transcripts[0];
    for (label, transcript) in &transcripts[1..] {
        assert_eq!(transcript, first, "{label} and {first_label} answer differently");
    }
}

/// A lock that would end past the last second a clock may show never ends by
/// time: `begin_sign_in`, the listing's status and its filter all call it a
/// lock until an admin reset, at any clock up to the last second. A lock that
/// ends before it reads the same everywhere, and ends everywhere at once.
#[test]
fn locks_at_the_end_of_time_read_the_same_in_sign_in_listing_and_filter() {
    each_store_and_executor(|label, ex, store| {
        let clock = ManualClock::at(END - 10_000);
        let portal = portal_on(store, &clock);
        let (far, near) = (UserId::customer("far"), UserId::customer("near"));
        enrol(ex, &portal, &clock, &far);
        enrol(ex, &portal, &clock, &near);
        let near_until = lock_out(ex, &portal, &near).expect("a timed lock");
        assert!(near_until < END - 30, "{label}");
        clock.set(END - 30);
        assert_eq!(
            lock_out(ex, &portal, &far),
            None,
            "{label}: a lock past the end of time"
        );

        let status = |user: &UserId| {
            let any = portal.users(UserQuery::new()).go(ex).unwrap();
            let locked = portal
                .users(UserQuery::new().status(StatusFilter::LockedOut))
                .go(ex)
                .unwrap();
            let listed = any
                .items
                .iter()
                .find(|s| s.user == *user)
                .unwrap()
                .locked
                .map(|lock| lock.until);
            let filtered = locked.items.iter().any(|s| s.user == *user);
            let step = match portal.begin_sign_in(user).go(ex).unwrap() {
                SignInStep::LockedOut { until } => Some(until),
                _ => None,
            };
            (step, listed, filtered)
        };
        let forever = Some(None);
        for at in [END - 30, END - 1, END] {
            clock.set(at);
            assert_eq!(status(&far), (forever, forever, true), "{label}: at {at}");
        }
        clock.set(near_until - 1);
        let timed = Some(Some(near_until));
        assert_eq!(status(&near), (timed, timed, true), "{label}");
        clock.set(near_until);
        assert_eq!(status(&near), (None, None, false), "{label}: the lock is over");
        // The admin reset ends the lock no clock would.
        portal
            .admin_reset(&ADMIN, &far, ResetReason::LockedOut, ResetMode::ForceReenrolment)
            .go(ex)
            .unwrap();
        assert_eq!(status(&far), (None, None, false), "{label}: reset");
    });
}

/// Ids up to `UserId::MAX_LEN` bytes page with cursors that fit a link and
/// read back from their text, in user listings and audit pages; a longer id
/// is refused by every operation before the store is asked.
#[test]
fn the_longest_ids_page_through_text_cursors_and_longer_ones_are_refused() {
    each_store_and_executor(|label, ex, store| {
        let clock = ManualClock::at(flows::T0);
        let portal = portal_on(store, &clock);
        let longest: Vec<UserId> = ["a", "b", "é"]
            .iter()
            .map(|c| UserId::customer(c.repeat(UserId::MAX_LEN / c.len())))
            .collect();
        for user in &longest {
            assert_eq!(user.id().len(), UserId::MAX_LEN);
            portal
                .admin_reset(&ADMIN, user, ResetReason::LostDevice, ResetMode::ForceReenrolment)
                .go(ex)
                .unwrap();
            portal
                .admin_reset(&ADMIN, user, ResetReason::NewDevice, ResetMode::ForceReenrolment)
                .go(ex)
                .unwrap();
        }
        // User listing, a page of one at a time, each cursor through its text.
        let query = UserQuery::new().status(StatusFilter::MustReenrol).limit(1);
        let mut listed = Vec::new();
        let mut next = Some(query.clone());
        while let Some(q) = next.take() {
            let page = portal.users(q).go(ex).unwrap();
            listed.extend(page.items.into_iter().map(|s| s.user));
            next = page.next.map(|cursor| {
                assert!(
                    cursor.as_str().len() <= 1088,
                    "{label}: {} characters",
                    cursor.as_str().len()
                );
                query
                    .clone()
                    .after(Cursor::parse(cursor.as_str()).expect("the cursor reads back"))
            });
        }
        assert_eq!(listed, longest, "{label}");
        // One user's audit trail, a page of one at a time, both ways.
        for user in &longest {
            for query in [
                EventQuery::portal(portal.id()).user(user).limit(1),
                EventQuery::portal(portal.id()).user(user).limit(1).newest_first(),
            ] {
                let mut seen = 0;
                let mut next = Some(query.clone());
                while let Some(q) = next.take() {
                    let page = portal.audit_events(q).go(ex).unwrap();
                    seen += page.items.len();
                    next = page
                        .next
                        .map(|c| query.clone().after(Cursor::parse(c.as_str()).unwrap()));
                }
                // Two resets, each with the end of the user's sessions.
                assert_eq!(seen, 4, "{label}");
            }
        }
        for len in [UserId::MAX_LEN + 1, 600, 2_000] {
            let user = UserId::customer("x".repeat(len));
            let too_long =
                |result: Result<(), Error>| matches!(result, Err(Error::UserIdTooLong { len: l }) if l == len);
            assert!(too_long(portal.begin_sign_in(&user).go(ex).map(drop)), "{label}");
            assert!(
                too_long(
                    portal
                        .admin_reset(&ADMIN, &user, ResetReason::LostDevice, ResetMode::ForceReenrolment)
                        .go(ex)
                        .map(drop)
                ),
                "{label}"
            );
            assert!(too_long(portal.record(&user).go(ex).map(drop)), "{label}");
            assert!(
                too_long(
                    portal
                        .audit_events(EventQuery::portal(portal.id()).user(&user))
                        .go(ex)
                        .map(drop)
                ),
                "{label}"
            );
        }
        let everyone = portal.users(UserQuery::new()).go(ex).unwrap();
        assert_eq!(
            everyone.items.len(),
            longest.len(),
            "{label}: nothing written for a refused id"
        );
    });
}

/// An id over the limit that a store holds anyway (written around the
/// portal) is refused when a listing reads it back, never paged with a
/// cursor too long to parse.
#[test]
fn a_stored_id_over_the_limit_is_refused_when_read_back() {
    let store = flows::faulty_kv();
    let clock = ManualClock::at(flows::T0);
    let portal = portal_on(store.clone() as std::sync::Arc<dyn flows::TestStore>, &clock);
    let ok = UserId::customer("ok");
    portal
        .admin_reset(&ADMIN, &ok, ResetReason::LostDevice, ResetMode::ForceReenrolment)
        .run()
        .unwrap();
    {
        let mut kv = store.get_ref().store.kv();
        let (key, stored) = kv.records.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
        let summary = kv.summaries[&key];
        let long = (key.0.clone(), UserId::customer("y".repeat(UserId::MAX_LEN + 1)));
        kv.records.insert(long.clone(), stored);
        kv.summaries.insert(long, summary);
    }
    assert!(matches!(
        portal.users(UserQuery::new().limit(1)).run(),
        Err(Error::CorruptRecord(_))
    ));
}
