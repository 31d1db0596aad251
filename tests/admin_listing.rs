//! The admin's views at any size: users by MFA status, the audit trail in
//! pages either way, retention by pruning, counts per kind. Each runs on every
//! store (memory, compare-and-swap key-value, SQLite) through both executors.

#![cfg(feature = "sqlite")]

mod flows;

use std::collections::BTreeSet;
use std::sync::Arc;

use flows::{ADMIN, Executor, Go, TestPortal, TestStore, all_pages, each_store_and_executor, enrol, portal_on};
use portal_mfa::{
    Cursor, Enforcement, EnrolmentOptions, Error, Grace, MAX_PAGE, ManualClock, Page, UserId, UserKind,
    admin::{ResetMode, ResetReason, StatusFilter, UserQuery, UserStatus},
    audit::{EventKind, EventQuery},
};

fn setup(store: Arc<dyn TestStore>) -> (TestPortal, ManualClock) {
    let clock = ManualClock::at(flows::T0);
    (portal_on(store, &clock), clock)
}

/// Every page of a user listing, in order.
fn all_users(ex: Executor, portal: &TestPortal, query: UserQuery) -> Vec<UserStatus> {
    let mut users = Vec::new();
    let mut next = Some(query);
    while let Some(query) = next.take() {
        let page: Page<UserStatus> = portal.users(query.clone()).go(ex).unwrap();
        assert!(page.items.len() <= query.limit.min(MAX_PAGE));
        users.extend(page.items);
        next = page.next.map(|cursor| query.after(cursor));
    }
    users
}

fn ids(users: &[UserStatus]) -> Vec<String> {
    users.iter().map(|u| u.user.id().to_owned()).collect()
}

fn lock_out(ex: Executor, portal: &TestPortal, user: &UserId) {
    for _ in 0..100 {
        if let Err(Error::LockedOut { .. }) = portal.verify_sign_in(user, "000000").go(ex) {
            return;
        }
    }
    panic!("never locked");
}

#[test]
fn admins_list_users_by_mfa_status_kind_and_page() {
    each_store_and_executor(|label, ex, store| {
        let (portal, clock) = setup(store);
        let grace = Grace::new(None, Some(2));
        portal
            .set_enforcement(&ADMIN, Enforcement::Enforced { grace: Some(grace) })
            .go(ex)
            .unwrap();
        let enrolled = UserId::customer("a-enrolled");
        let pending = UserId::customer("b-pending");
        let locked = UserId::customer("c-locked");
        let reset = UserId::customer("d-reset");
        let graced = UserId::customer("e-grace");
        let vendor = UserId::vendor("f-vendor");
        let (phone, _) = enrol(ex, &portal, &clock, &enrolled);
        portal.verify_sign_in(&enrolled, &phone.code(&clock)).go(ex).unwrap();
        let verified_at = portal_mfa::Clock::now(&clock);
        let session = flows::password_step(ex, &portal, &pending);
        portal
            .start_enrolment(&pending, &session, "b", "phone", EnrolmentOptions::default())
            .go(ex)
            .unwrap();
        enrol(ex, &portal, &clock, &locked);
        enrol(ex, &portal, &clock, &reset);
        portal
            .admin_reset(&ADMIN, &reset, ResetReason::LostDevice, ResetMode::ForceReenrolment)
            .go(ex)
            .unwrap();
        portal.complete_grace_sign_in(&graced).go(ex).unwrap();
        enrol(ex, &portal, &clock, &vendor);
        lock_out(ex, &portal, &locked);

        let list = |status| ids(&all_users(ex, &portal, UserQuery::new().status(status).limit(2)));
        let everyone = list(StatusFilter::Any);
        assert_eq!(
            everyone,
            ["a-enrolled", "b-pending", "c-locked", "d-reset", "e-grace", "f-vendor"],
            "{label}: every user, kind then id"
        );
        assert_eq!(
            list(StatusFilter::Enrolled),
            ["a-enrolled", "c-locked", "f-vendor"],
            "{label}"
        );
        assert_eq!(list(StatusFilter::PendingEnrolment), ["b-pending"], "{label}");
        assert_eq!(list(StatusFilter::LockedOut), ["c-locked"], "{label}");
        assert_eq!(list(StatusFilter::MustReenrol), ["d-reset"], "{label}");
        assert_eq!(list(StatusFilter::MfaOff), ["e-grace"], "{label}");
        assert_eq!(list(StatusFilter::InGrace), ["b-pending", "e-grace"], "{label}");
        let vendors = all_users(ex, &portal, UserQuery::new().kind(UserKind::Vendor));
        assert_eq!(ids(&vendors), ["f-vendor"], "{label}");

        let all = all_users(ex, &portal, UserQuery::new());
        let status = |id: &str| all.iter().find(|u| u.user.id() == id).unwrap().clone();
        let a = status("a-enrolled");
        assert!(
            a.mfa_on() && a.authenticators == 1 && a.backup_codes_left == 10,
            "{label}: {a:?}"
        );
        assert_eq!(a.last_verified_at, Some(verified_at), "{label}");
        assert!(a.locked.is_none() && a.grace.is_none() && !a.must_reenrol, "{label}");
        let c = status("c-locked");
        let until = c.locked.and_then(|l| l.until).expect("a dated lock");
        assert!(until > portal_mfa::Clock::now(&clock), "{label}");
        assert!(status("d-reset").must_reenrol && !status("d-reset").mfa_on(), "{label}");
        assert!(status("b-pending").pending_enrolment, "{label}");
        let e = status("e-grace").grace.expect("in grace");
        assert_eq!(e.sign_ins, Some(1), "{label}: one of two grace sign-ins left");

        // The lock ends by itself: the listing follows the clock, not a write.
        clock.set(until);
        assert!(list(StatusFilter::LockedOut).is_empty(), "{label}");
        // A grace with nothing left is no grace; without enforcement there is none at all.
        portal.complete_grace_sign_in(&graced).go(ex).unwrap();
        assert_eq!(list(StatusFilter::InGrace), ["b-pending"], "{label}");
        portal
            .set_enforcement(&ADMIN, Enforcement::SelfConfigured)
            .go(ex)
            .unwrap();
        assert!(list(StatusFilter::InGrace).is_empty(), "{label}");
    });
}

#[test]
fn user_pages_refuse_foreign_cursors_a_zero_limit_and_cap_a_huge_one() {
    each_store_and_executor(|label, ex, store| {
        let (portal, _clock) = setup(store);
        // More records than a page holds: admin resets make records without any crypto.
        for i in 0..MAX_PAGE + 5 {
            let user = UserId::new(
                if i % 3 == 0 {
                    UserKind::Vendor
                } else {
                    UserKind::Customer
                },
                format!("u{i:05}"),
            );
            portal
                .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::RemoveOnly)
                .go(ex)
                .unwrap();
        }
        let huge = portal.users(UserQuery::new().limit(usize::MAX)).go(ex).unwrap();
        assert_eq!(huge.items.len(), MAX_PAGE, "{label}: capped");
        let rest = portal
            .users(UserQuery::new().limit(usize::MAX).after(huge.next.clone().unwrap()))
            .go(ex)
            .unwrap();
        assert_eq!(rest.items.len(), 5, "{label}");
        assert!(rest.next.is_none(), "{label}");
        let mut seen: Vec<UserId> = huge.items.iter().chain(&rest.items).map(|u| u.user.clone()).collect();
        let sorted = {
            let mut s = seen.clone();
            s.sort();
            s
        };
        assert_eq!(seen, sorted, "{label}: one order on every store");
        seen.dedup();
        assert_eq!(seen.len(), MAX_PAGE + 5, "{label}: no user twice");

        assert!(matches!(
            portal.users(UserQuery::new().limit(0)).go(ex),
            Err(Error::InvalidPageSize)
        ));
        let cursor = huge.next.unwrap();
        for other in [
            UserQuery::new().status(StatusFilter::MustReenrol),
            UserQuery::new().kind(UserKind::Vendor),
        ] {
            let refused = portal.users(other.after(cursor.clone())).go(ex);
            assert!(matches!(refused, Err(Error::InvalidCursor(_))), "{label}: {refused:?}");
        }
        let events_cursor = portal
            .audit_events(EventQuery::portal(portal.id()).limit(1))
            .go(ex)
            .unwrap()
            .next
            .unwrap();
        let refused = portal.users(UserQuery::new().after(events_cursor)).go(ex);
        assert!(
            matches!(refused, Err(Error::InvalidCursor(_))),
            "{label}: an event cursor"
        );
        // A cursor edited by hand still lists only this portal's users, from where it says.
        let text = cursor.as_str();
        let edited = format!("{}{}", &text[..text.len() - 2], "00");
        if let Ok(edited) = Cursor::parse(&edited) {
            match portal.users(UserQuery::new().after(edited)).go(ex) {
                Ok(page) => assert!(page.items.iter().all(|u| u.user.id().starts_with('u')), "{label}"),
                Err(e) => assert!(matches!(e, Error::InvalidCursor(_)), "{label}: {e:?}"),
            }
        }
    });
}

#[test]
fn the_audit_trail_pages_either_way_and_refuses_cursors_of_other_queries() {
    each_store_and_executor(|label, ex, store| {
        let (portal, clock) = setup(store);
        let alice = UserId::customer("alice");
        let bob = UserId::vendor("bob");
        for user in [&alice, &bob] {
            let (phone, _) = enrol(ex, &portal, &clock, user);
            for _ in 0..3 {
                portal.verify_sign_in(user, &phone.code(&clock)).go(ex).unwrap();
                clock.advance(30);
            }
        }
        let everything = all_pages(ex, &portal, EventQuery::portal(portal.id()).limit(MAX_PAGE));
        for limit in [1, 2, 5] {
            let query = EventQuery::portal(portal.id()).limit(limit);
            assert_eq!(
                all_pages(ex, &portal, query.clone()),
                everything,
                "{label}: pages of {limit}"
            );
            let mut newest = all_pages(ex, &portal, query.newest_first());
            newest.reverse();
            assert_eq!(newest, everything, "{label}: newest first, pages of {limit}");
        }
        let alices: Vec<_> = everything
            .iter()
            .filter(|e| e.user.as_ref() == Some(&alice))
            .cloned()
            .collect();
        let query = EventQuery::portal(portal.id()).user(&alice).limit(2);
        assert_eq!(all_pages(ex, &portal, query.clone()), alices, "{label}");
        let from = everything[3].at;
        let until = everything[everything.len() - 2].at;
        let window: Vec<_> = everything
            .iter()
            .filter(|e| (from..until).contains(&e.at))
            .cloned()
            .collect();
        let ranged = EventQuery::portal(portal.id()).between(from, until).limit(2);
        assert_eq!(all_pages(ex, &portal, ranged.clone()), window, "{label}");

        let cursor = portal.audit_events(query.clone()).go(ex).unwrap().next.unwrap();
        for other in [
            EventQuery::portal(portal.id()).user(&bob).limit(2),
            query.clone().newest_first(),
            EventQuery::portal(portal.id()).limit(2),
            ranged,
        ] {
            let refused = portal.audit_events(other.after(cursor.clone())).go(ex);
            assert!(matches!(refused, Err(Error::InvalidCursor(_))), "{label}: {refused:?}");
        }
        // The same query with another page size continues where it left off.
        let rest = all_pages(ex, &portal, query.clone().limit(100).after(cursor.clone()));
        assert_eq!(rest, alices[2..], "{label}");
        assert!(matches!(
            portal.audit_events(query.clone().limit(0)).go(ex),
            Err(Error::InvalidPageSize)
        ));
        // A cursor edited to any position still answers only Alice's events, in order.
        let text = cursor.as_str();
        let stem = &text[..text.rfind('.').unwrap() + 1];
        for newest_first in [false, true] {
            let q = if newest_first {
                query.clone().newest_first()
            } else {
                query.clone()
            };
            let cursor = portal.audit_events(q.clone()).go(ex).unwrap().next.unwrap();
            let stem_q = &cursor.as_str()[..cursor.as_str().rfind('.').unwrap() + 1];
            for position in 0..40 {
                let edited = Cursor::parse(&format!("{stem_q}{position}")).unwrap();
                let page = portal.audit_events(q.clone().limit(100).after(edited)).go(ex).unwrap();
                let mut expected: Vec<_> = page.items.clone();
                assert!(
                    page.items.iter().all(|e| e.user.as_ref() == Some(&alice)),
                    "{label}: position {position}"
                );
                if newest_first {
                    expected.reverse();
                }
                let suffix = &alices[alices.len() - expected.len()..];
                if !newest_first {
                    assert_eq!(expected, suffix, "{label}: position {position}");
                }
            }
        }
        assert!(Cursor::parse(&format!("{stem}x")).is_ok_and(|c| matches!(
            portal.audit_events(query.clone().after(c)).go(ex),
            Err(Error::InvalidCursor(_))
        )));
    });
}

#[test]
fn pruning_cuts_the_trail_from_its_start_in_batches() {
    each_store_and_executor(|label, ex, store| {
        let (portal, clock) = setup(store);
        let user = UserId::customer("old-timer");
        let (phone, _) = enrol(ex, &portal, &clock, &user);
        // More old events than one batch: policy changes, one event each.
        let old = portal_mfa::Portal::<(), ManualClock>::PRUNE_BATCH + 7;
        for i in 0..old {
            let enforcement = if i % 2 == 0 {
                Enforcement::Enforced { grace: None }
            } else {
                Enforcement::SelfConfigured
            };
            portal.set_enforcement(&ADMIN, enforcement).go(ex).unwrap();
        }
        clock.advance(3600);
        let cut = portal_mfa::Clock::now(&clock);
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
        let before = all_pages(ex, &portal, EventQuery::portal(portal.id()).limit(MAX_PAGE));
        let older = before.iter().filter(|e| e.at < cut).count();
        assert!(older > old, "{label}");
        assert_eq!(portal.prune_events(cut).go(ex).unwrap(), older as u64, "{label}");
        let after = all_pages(ex, &portal, EventQuery::portal(portal.id()).limit(MAX_PAGE));
        assert_eq!(after, before[older..], "{label}: exactly the older prefix is gone");
        // The user's trail is what is left of it, read either way, and grows on.
        assert_eq!(flows::trail_of(ex, &portal, &user).len(), 1, "{label}");
        clock.advance(30);
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
        assert_eq!(flows::trail_of(ex, &portal, &user).len(), 2, "{label}");
        assert_eq!(
            portal.prune_events(cut).go(ex).unwrap(),
            0,
            "{label}: nothing more to prune"
        );

        // A clock that ran backwards: the early-stamped event after a later one waits for it.
        clock.advance(100);
        let grace = Some(Grace::new(None, Some(1)));
        portal
            .set_enforcement(&ADMIN, Enforcement::Enforced { grace })
            .go(ex)
            .unwrap();
        clock.set(cut + 10);
        portal
            .set_enforcement(&ADMIN, Enforcement::SelfConfigured)
            .go(ex)
            .unwrap();
        let deleted = portal.prune_events(cut + 50).go(ex).unwrap();
        assert_eq!(
            deleted, 2,
            "{label}: the two sign-ins before the cut; the trail keeps no holes"
        );
        let left = all_pages(ex, &portal, EventQuery::portal(portal.id()));
        assert_eq!(left.len(), 2, "{label}");
        assert_eq!(
            left[1].at,
            cut + 10,
            "{label}: the straggler is kept, after the event before it"
        );
    });
}

#[test]
fn counts_per_kind_over_a_time_range_feed_a_dashboard() {
    each_store_and_executor(|label, ex, store| {
        let (portal, clock) = setup(store);
        let user = UserId::customer("c");
        let (phone, _) = enrol(ex, &portal, &clock, &user);
        let start = portal_mfa::Clock::now(&clock);
        for _ in 0..3 {
            assert!(portal.verify_sign_in(&user, "000000").go(ex).is_err());
        }
        portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
        clock.advance(86_400);
        assert!(portal.verify_sign_in(&user, "000000").go(ex).is_err());
        let day = portal.event_counts(start, start + 86_400).go(ex).unwrap();
        let failed = EventKind::VerificationFailed {
            consecutive_failures: 0,
        }
        .name();
        assert_eq!(day.get(failed), Some(&3), "{label}: {day:?}");
        assert_eq!(day.get("verified"), Some(&1), "{label}");
        assert!(
            !day.contains_key("authenticator_added"),
            "{label}: enrolment was before the range"
        );
        let all = portal.event_counts(0, u64::MAX).go(ex).unwrap();
        assert_eq!(all.get(failed), Some(&4), "{label}");
        let trail = all_pages(ex, &portal, EventQuery::portal(portal.id()));
        assert_eq!(all.values().sum::<u64>(), trail.len() as u64, "{label}");
        let kinds: BTreeSet<&str> = trail.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            all.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            kinds,
            "{label}"
        );
        assert!(
            portal.event_counts(start, start).go(ex).unwrap().is_empty(),
            "{label}: an empty range"
        );
    });
}

/// Retention on a busy SQLite file: 200 000 old events pruned while a user
/// keeps signing in. Each batch is its own short transaction, so sign-ins
/// slip in between: every one succeeds and stays in the trail.
#[test]
fn sign_ins_go_on_while_a_prune_runs() {
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    const OLD: usize = 200_000;
    const SIGN_INS: usize = 300;
    let ex = flows::Executor::Blocking;
    let dir = flows::TempDir::new("prune");
    let path = dir.file("mfa.db");
    let store = portal_mfa::store::SqliteStore::open(&path).unwrap();
    let clock = ManualClock::at(flows::T0);
    let portal = portal_on(flows::bytes(store), &clock);
    // Old history, written straight into the table (the bytes of one real event; pruning never reads them).
    portal
        .set_enforcement(&ADMIN, Enforcement::SelfConfigured)
        .go(ex)
        .unwrap();
    portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: None })
        .go(ex)
        .unwrap();
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        let bytes: Vec<u8> = tx
            .query_row("SELECT event FROM portal_mfa_events", [], |r| r.get(0))
            .unwrap();
        tx.execute("DELETE FROM portal_mfa_events", []).unwrap();
        tx.execute("UPDATE portal_mfa_policies SET last_event = NULL", [])
            .unwrap();
        let mut insert = tx
            .prepare("INSERT INTO portal_mfa_events (portal, at, kind, prev, event) VALUES (?1, 1000, 'enforcement_changed', NULL, ?2)")
            .unwrap();
        for _ in 0..OLD {
            insert.execute(rusqlite::params![portal.id().as_str(), bytes]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    let user = UserId::customer("busy");
    let (phone, _) = enrol(ex, &portal, &clock, &user);

    // A fixed number of sign-ins, begun with the prune: the outcome is the same
    // on any machine; how they interleave with the batches is the machine's,
    // so their latency is printed, never asserted.
    let start = Barrier::new(2);
    let (pruned, took, sign_ins) = std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            start.wait();
            let began = Instant::now();
            let pruned = portal.prune_events(2000).run().unwrap();
            (pruned, began.elapsed())
        });
        start.wait();
        let mut sign_ins: Vec<Duration> = Vec::with_capacity(SIGN_INS);
        for _ in 0..SIGN_INS {
            let code = phone.code(&clock);
            let began = Instant::now();
            portal.verify_sign_in(&user, &code).run().unwrap();
            sign_ins.push(began.elapsed());
            clock.advance(30);
        }
        let (pruned, took) = pruner.join().unwrap();
        (pruned, took, sign_ins)
    });
    assert_eq!(pruned, OLD as u64);
    let mut sorted = sign_ins.clone();
    sorted.sort();
    println!(
        "pruned {OLD} events in {took:?} ({} batches); {SIGN_INS} sign-ins beside it: median {:?}, longest {:?}",
        OLD.div_ceil(portal_mfa::Portal::<(), ManualClock>::PRUNE_BATCH),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
    );
    // Every sign-in made during the prune is in the trail; the old history is gone.
    // (Newest first: one user's trail oldest first walks all of it per page on SQLite.)
    let trail = all_pages(
        ex,
        &portal,
        EventQuery::portal(portal.id())
            .user(&user)
            .newest_first()
            .limit(MAX_PAGE),
    );
    let verified = trail
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Verified { .. }))
        .count();
    assert_eq!(verified, sign_ins.len());
    assert!(
        all_pages(ex, &portal, EventQuery::portal(portal.id()).limit(MAX_PAGE))
            .iter()
            .all(|e| e.at >= flows::T0)
    );
}

/// The JSON Lines export reads the store a page at a time and writes each
/// page before reading the next: memory stays one page, however long the trail.
#[cfg(feature = "serde")]
#[test]
fn the_json_lines_export_streams_page_by_page() {
    use std::sync::atomic::Ordering;
    const EVENTS: usize = 2 * MAX_PAGE + 500;
    for ex in [flows::Executor::Blocking, flows::Executor::Async] {
        let store = flows::faulty_kv();
        let (portal, _clock) = setup(store.clone());
        // A reset writes two events: the reset, and the end of the user's sessions.
        for i in 0..EVENTS / 2 {
            let user = UserId::customer(format!("u{i}"));
            portal
                .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::RemoveOnly)
                .go(ex)
                .unwrap();
        }
        /// Notes, for each line written, how many pages had been read by then.
        struct Watch<'a>(&'a flows::Faulty<flows::kv::KvStore>, Vec<u32>);
        impl std::io::Write for Watch<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                for _ in buf.iter().filter(|&&b| b == b'\n') {
                    self.1.push(self.0.event_reads.load(Ordering::SeqCst));
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        store.get_ref().event_reads.store(0, Ordering::SeqCst);
        let mut watch = Watch(store.get_ref(), Vec::new());
        let query = EventQuery::portal(portal.id());
        let written = portal.export_events(query, &mut watch).go(ex).unwrap();
        assert_eq!(written, EVENTS as u64);
        let pages = watch.1;
        assert_eq!(pages.len(), EVENTS);
        assert_eq!(
            pages[0], 1,
            "{ex:?}: the first page is written before the second is read"
        );
        assert_eq!(pages[MAX_PAGE], 2, "{ex:?}");
        assert_eq!(pages[EVENTS - 1], 3, "{ex:?}");
        assert_eq!(
            store.get_ref().event_reads.load(Ordering::SeqCst),
            3,
            "{ex:?}: three pages in all"
        );

        /// A writer that fails: the export answers a typed error.
        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let failed = portal
            .export_events(EventQuery::portal(portal.id()), &mut Broken)
            .go(ex);
        assert!(matches!(failed, Err(Error::Export(_))), "{failed:?}");
    }
}
