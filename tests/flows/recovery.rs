//! The lost-device path and resets at incident scale, on every store and
//! executor: a user's reset request (ask, withdraw by signing in, approve,
//! decline, cooldown) and a bulk Reset MFA (selection, once per incident,
//! resumable).

use std::sync::{Arc, Mutex};

use portal_mfa::admin::{BulkReset, ResetMode, ResetReason, ResetSelection, StatusFilter, UserQuery};
use portal_mfa::audit::{AuditEvent, EventKind};
use portal_mfa::record::ResetRequest;
use portal_mfa::{Error, ManualClock, RequestRefusal, SignInStep, UserId, UserKind};

use super::{ADMIN, Executor, Go, Phone, StoreFactory, T0, TestPortal, enrol, portal_on, setup, trail_of};

fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> RequestRefusal {
    match result {
        Err(Error::ResetRequest(why)) => why,
        other => panic!("expected a reset-request refusal, got {other:?}"),
    }
}

fn requested(ex: Executor, portal: &TestPortal) -> Vec<UserId> {
    let query = UserQuery::new().status(StatusFilter::ResetRequested);
    let page = portal.users(query).go(ex).unwrap();
    assert!(page.items.iter().all(|s| s.reset_requested_at.is_some()));
    page.items.into_iter().map(|s| s.user).collect()
}

fn heard(make: &StoreFactory, clock: &ManualClock) -> (TestPortal, Arc<Mutex<Vec<AuditEvent>>>) {
    let heard: Arc<Mutex<Vec<AuditEvent>>> = Arc::default();
    let sink = heard.clone();
    let portal = portal_on(make(), clock).with_notifier(move |e: &AuditEvent| sink.lock().unwrap().push(e.clone()));
    (portal, heard)
}

pub fn a_user_who_lost_every_factor_asks_and_an_admin_approves(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    let (portal, heard) = heard(make, &clock);
    let user = UserId::customer("lost-phone");
    let other = UserId::customer("other");
    enrol(ex, &portal, &clock, &user);
    enrol(ex, &portal, &clock, &other);
    // Locked out by wrong guesses: a request is still taken.
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&user, "000000").go(ex);
    }
    clock.advance(10);
    let asked_at = portal_mfa::Clock::now(&clock);
    let request = portal
        .request_reset(
            &user,
            "  Lost my phone on the train; the codes were on it.\n Ticket 4411  ",
        )
        .go(ex)
        .unwrap();
    assert_eq!(request.at, asked_at);
    assert_eq!(
        &*request.note,
        "Lost my phone on the train; the codes were on it.\n Ticket 4411"
    );
    assert_eq!(requested(ex, &portal), std::slice::from_ref(&user));
    assert_eq!(portal.record(&user).go(ex).unwrap().reset_request(), Some(&request));
    // One at a time.
    assert_eq!(
        refusal(portal.request_reset(&user, "again").go(ex)),
        RequestRefusal::AlreadyOpen { since: asked_at }
    );
    // Nothing is removed by asking.
    assert_eq!(portal.record(&user).go(ex).unwrap().authenticators().len(), 1);
    let summary = portal
        .approve_reset_request(&ADMIN, &user, ResetMode::default())
        .go(ex)
        .unwrap();
    assert_eq!((summary.authenticators_removed, summary.backup_codes_removed), (1, 10));
    assert!(requested(ex, &portal).is_empty());
    assert!(portal.record(&user).go(ex).unwrap().reset_request().is_none());
    assert!(matches!(
        portal.begin_sign_in(&user).go(ex).unwrap(),
        SignInStep::MustEnrol { .. }
    ));
    // The reset's reason is the request, with the user's note, in the trail and in the notice.
    let trail = trail_of(ex, &portal, &user);
    let reset = trail
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::MfaReset {
                reason: ResetReason::Requested(note),
                ..
            } => Some(note.clone()),
            _ => None,
        })
        .expect("a reset for the request");
    assert_eq!(reset, request.note);
    assert!(trail.iter().any(|e| matches!(e.kind, EventKind::ResetRequested { .. })));
    let heard = heard.lock().unwrap();
    let mine: Vec<_> = heard.iter().filter(|e| e.user.as_ref() == Some(&user)).collect();
    let asked = mine
        .iter()
        .find(|e| matches!(e.kind, EventKind::ResetRequested { .. }))
        .unwrap();
    assert!(
        asked
            .notice("Acme Portal")
            .unwrap()
            .body
            .contains("nothing is removed until one approves it")
    );
    let done = mine
        .iter()
        .find(|e| matches!(e.kind, EventKind::MfaReset { .. }))
        .unwrap();
    assert!(
        done.notice("Acme Portal")
            .unwrap()
            .body
            .contains("Why: you asked for it")
    );
    // The other user was never touched.
    assert_eq!(portal.record(&other).go(ex).unwrap().authenticators().len(), 1);
    // Only someone with a factor to lose can ask.
    assert_eq!(
        refusal(portal.request_reset(&UserId::vendor("no-mfa"), "help").go(ex)),
        RequestRefusal::NothingToReset
    );
}

pub fn the_users_own_sign_in_withdraws_their_request(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let user = UserId::vendor("found-it");
    let (phone, _) = enrol(ex, &portal, &clock, &user);
    portal.request_reset(&user, "phone gone").go(ex).unwrap();
    clock.advance(30);
    portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).unwrap();
    assert!(portal.record(&user).go(ex).unwrap().reset_request().is_none());
    assert!(requested(ex, &portal).is_empty());
    assert!(
        trail_of(ex, &portal, &user)
            .iter()
            .any(|e| matches!(e.kind, EventKind::ResetRequestWithdrawn))
    );
    // An approval that comes too late finds nothing to approve, and removes nothing.
    assert_eq!(
        refusal(portal.approve_reset_request(&ADMIN, &user, ResetMode::default()).go(ex)),
        RequestRefusal::NoneOpen
    );
    assert_eq!(portal.record(&user).go(ex).unwrap().authenticators().len(), 1);
    // The other order: approved first, then the old phone's code is no good.
    portal.request_reset(&user, "gone again").go(ex).unwrap();
    portal
        .approve_reset_request(&ADMIN, &user, ResetMode::default())
        .go(ex)
        .unwrap();
    clock.advance(30);
    assert!(portal.verify_sign_in(&user, &phone.code(&clock)).go(ex).is_err());
}

pub fn a_declined_request_tells_the_user_and_starts_a_cooldown(make: &StoreFactory, ex: Executor) {
    let clock = ManualClock::at(T0);
    let (portal, heard) = heard(make, &clock);
    let user = UserId::contact("declined");
    let (_phone, _) = enrol(ex, &portal, &clock, &user);
    assert_eq!(
        refusal(portal.decline_reset_request(&ADMIN, &user, "").go(ex)),
        RequestRefusal::NoneOpen
    );
    for bad in [
        "x".repeat(ResetRequest::MAX_NOTE_CHARS + 1),
        "tab\tstop".to_owned(),
        "bell\u{7}".to_owned(),
    ] {
        assert_eq!(
            refusal(portal.request_reset(&user, &bad).go(ex)),
            RequestRefusal::InvalidNote
        );
    }
    portal
        .request_reset(&user, &"y".repeat(ResetRequest::MAX_NOTE_CHARS))
        .go(ex)
        .unwrap();
    clock.advance(60);
    let declined_at = portal_mfa::Clock::now(&clock);
    portal
        .decline_reset_request(&ADMIN, &user, "Call the help desk to confirm who you are.")
        .go(ex)
        .unwrap();
    let record = portal.record(&user).go(ex).unwrap();
    assert!(record.reset_request().is_none());
    assert_eq!(record.reset_request_declined_at(), Some(declined_at));
    assert_eq!(record.authenticators().len(), 1, "a decline removes nothing");
    let until = declined_at + ResetRequest::COOLDOWN_SECS;
    assert_eq!(
        refusal(portal.request_reset(&user, "please").go(ex)),
        RequestRefusal::CoolingDown { until }
    );
    clock.set(until);
    portal.request_reset(&user, "please").go(ex).unwrap();
    let heard = heard.lock().unwrap();
    let declined = heard
        .iter()
        .find(|e| matches!(e.kind, EventKind::ResetRequestDeclined { .. }))
        .unwrap();
    let notice = declined.notice("Acme Portal").unwrap();
    assert_eq!(notice.to, user);
    assert!(notice.body.contains("Call the help desk") && notice.body.contains("admin@acme.example"));
}

/// Users for a sweep: `n` of `kind` enrolled at the clock's time; answers them with their phones.
fn enrolled(ex: Executor, portal: &TestPortal, clock: &ManualClock, kind: UserKind, n: usize) -> Vec<(UserId, Phone)> {
    (0..n)
        .map(|i| {
            let user = UserId::new(kind, format!("{}-{i:02}", kind.as_str()));
            let (phone, _) = enrol(ex, portal, clock, &user);
            (user, phone)
        })
        .collect()
}

fn incident_resets(ex: Executor, portal: &TestPortal, user: &UserId, incident: &str) -> usize {
    trail_of(ex, portal, user)
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::MfaReset { reason: ResetReason::Incident { id, .. }, .. } if &**id == incident))
        .count()
}

pub fn a_bulk_reset_resets_each_selected_user_once_however_often_it_is_resumed(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let customers = enrolled(ex, &portal, &clock, UserKind::Customer, 7);
    let vendors = enrolled(ex, &portal, &clock, UserKind::Vendor, 3);
    let off = UserId::customer("customer-no-mfa");
    portal.request_reset(&customers[0].0, "lost").go(ex).unwrap();
    let _ = portal.begin_sign_in(&off).go(ex).unwrap();
    clock.advance(100);
    let started_at = portal_mfa::Clock::now(&clock);
    // A customer who enrolled after the incident began is not its concern.
    let fresh = UserId::customer("late");
    enrol(ex, &portal, &clock, &fresh);
    let plan = BulkReset::new(
        "INC-7",
        "seed backup leaked",
        started_at,
        ResetSelection::everyone().kind(UserKind::Customer),
    )
    .unwrap();
    let sweep = |preview: bool, after: Option<UserId>, batches: Option<usize>| {
        let (mut after, mut reset, mut batches_run) = (after, 0, 0);
        loop {
            let progress = if preview {
                portal.bulk_reset_preview(&ADMIN, &plan, after.as_ref(), 3).go(ex)
            } else {
                portal.bulk_reset(&ADMIN, &plan, after.as_ref(), 3).go(ex)
            }
            .unwrap();
            assert!(progress.failed.is_empty(), "{:?}", progress.failed);
            reset += progress.reset;
            after = progress.next;
            batches_run += 1;
            if after.is_none() || batches.is_some_and(|n| batches_run == n) {
                return (reset, after);
            }
        }
    };
    // The preview counts, changing nothing: the 7 customers of before (the 8th enrolled since).
    assert_eq!(sweep(true, None, None), (7, None));
    assert_eq!(portal.record(&customers[0].0).go(ex).unwrap().authenticators().len(), 1);
    // One batch, then the sweep "crashes"; a vendor signs in meanwhile.
    let (first, cursor) = sweep(false, None, Some(1));
    assert_eq!(first, 3);
    let cursor = cursor.expect("more to do");
    clock.advance(30);
    for (vendor, phone) in &vendors {
        portal.verify_sign_in(vendor, &phone.code(&clock)).go(ex).unwrap();
    }
    // A customer the first batch reset enrols again before the sweep resumes.
    let first_user = &customers[0].0;
    assert!(matches!(
        portal.begin_sign_in(first_user).go(ex).unwrap(),
        SignInStep::MustEnrol { .. }
    ));
    let (phone_again, _) = enrol(ex, &portal, &clock, first_user);
    // Resumed from the cursor, and then run again from the start: nobody twice.
    assert_eq!(sweep(false, Some(cursor), None), (4, None));
    assert_eq!(sweep(false, None, None), (0, None));
    for (customer, _) in &customers {
        assert_eq!(incident_resets(ex, &portal, customer, "INC-7"), 1, "{customer}");
        let last = portal.record(customer).go(ex).unwrap();
        assert_eq!(last.reset_request(), None, "a reset resolves the open request");
    }
    // The one who re-enrolled keeps their new phone.
    clock.advance(30);
    portal
        .verify_sign_in(first_user, &phone_again.code(&clock))
        .go(ex)
        .unwrap();
    for untouched in vendors.iter().map(|(u, _)| u).chain([&fresh, &off]) {
        assert_eq!(incident_resets(ex, &portal, untouched, "INC-7"), 0, "{untouched}");
    }
    assert_eq!(portal.record(&fresh).go(ex).unwrap().authenticators().len(), 1);
    assert!(requested(ex, &portal).is_empty());
}

pub fn a_bulk_reset_selects_by_status_and_by_when_factors_were_added_or_used(make: &StoreFactory, ex: Executor) {
    let (portal, clock) = setup(make);
    let old = enrolled(ex, &portal, &clock, UserKind::Customer, 2);
    clock.advance(1_000);
    let cutoff = portal_mfa::Clock::now(&clock);
    let new = enrolled(ex, &portal, &clock, UserKind::Vendor, 2);
    clock.advance(30);
    // One old user signs in after the cutoff: their factor was used since.
    portal.verify_sign_in(&old[1].0, &old[1].1.code(&clock)).go(ex).unwrap();
    // One new user locks themselves out.
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&new[0].0, "000000").go(ex);
    }
    let now = portal_mfa::Clock::now(&clock);
    let count = |selection: ResetSelection| {
        let plan = BulkReset::new("INC-8", "", now + 1, selection).unwrap();
        portal
            .bulk_reset_preview(&ADMIN, &plan, None, 100)
            .go(ex)
            .unwrap()
            .reset
    };
    assert_eq!(count(ResetSelection::everyone()), 4);
    assert_eq!(count(ResetSelection::everyone().added_before(cutoff)), 2);
    assert_eq!(count(ResetSelection::everyone().last_used_before(cutoff)), 1);
    assert_eq!(count(ResetSelection::everyone().status(StatusFilter::LockedOut)), 1);
    assert_eq!(
        count(ResetSelection::everyone().kind(UserKind::Vendor).added_before(cutoff)),
        0
    );
    // Typed refusals for a plan that cannot be recorded.
    for bad in ["", "   ", &"i".repeat(65), "tab\tid"] {
        assert!(matches!(
            BulkReset::new(bad, "", now, ResetSelection::everyone()),
            Err(Error::ResetRequest(RequestRefusal::InvalidIncident))
        ));
    }
    // The locked-out user is reset, and gets in again by enrolling.
    let plan = BulkReset::new(
        "INC-8",
        "lockouts",
        now + 1,
        ResetSelection::everyone().status(StatusFilter::LockedOut),
    )
    .unwrap()
    .with_mode(ResetMode::RemoveOnly);
    assert_eq!(portal.bulk_reset(&ADMIN, &plan, None, 100).go(ex).unwrap().reset, 1);
    let record = portal.record(&new[0].0).go(ex).unwrap();
    assert!(!record.mfa_enabled() && record.failures().consecutive() == 0 && !record.must_enrol());
}
