//! The async driver over the async storage twin: the same walk-through as the
//! sync one, Send futures, and exactly-once acceptance under racing tasks.

#![cfg(feature = "async")]

mod flows;

use std::sync::{Arc, Barrier};

use flows::{ADMIN, Phone, T0};
use portal_mfa::MfaStore;
use portal_mfa::store::{AsyncBackend, AsyncMfaStore, Commit, RecordWrite, StoreFuture, Stored, StoredEvent, Version};
use portal_mfa::{
    Enforcement, EnrolReason, EnrolmentOptions, Error, Factor, ManualClock, MemoryStore, Portal, PortalId, ResetMode,
    ResetReason, SignInStep, UserId,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

type AsyncPortal<S> = Portal<S, ManualClock, StdRng>;

fn portal<S: AsyncBackend>(store: S, clock: &ManualClock) -> AsyncPortal<S> {
    Portal::new(PortalId::new("acme-portal"), "Acme Portal", store)
        .unwrap()
        .with_keyring(flows::keyring())
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(9))
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn futures_are_send_so_multithreaded_executors_can_run_them() {
    let clock = ManualClock::at(T0);
    let portal = portal(MemoryStore::new(), &clock);
    let user = UserId::customer("c1");
    assert_send(&portal.begin_sign_in_async(&user));
    assert_send(&portal.verify_sign_in_async(&user, "123456"));
    assert_send(&portal.start_enrolment_async(&user, "c1", "phone", EnrolmentOptions::default()));
    assert_send(&portal.confirm_enrolment_async(&user, "123456"));
    assert_send(&portal.admin_reset_async(&ADMIN, &user, ResetReason::LostDevice, ResetMode::default()));
    assert_send(&portal.set_enforcement_async(&ADMIN, Enforcement::SelfConfigured));
    // And over a store held as a trait object.
    let store: Arc<dyn AsyncMfaStore> = Arc::new(AsyncCas(flows::kv::KvStore::default()));
    let shared = self::portal(store, &clock);
    assert_send(&shared.begin_sign_in_async(&user));
    assert_send(&shared.verify_sign_in_async(&user, "123456"));
}

#[test]
fn the_whole_walk_through_runs_on_the_async_driver() {
    pollster::block_on(async {
        let clock = ManualClock::at(T0);
        let portal = portal(MemoryStore::new(), &clock);
        let alice = UserId::customer("alice");
        portal
            .set_enforcement_async(&ADMIN, Enforcement::Enforced { grace: None })
            .await
            .unwrap();
        assert_eq!(
            portal.begin_sign_in_async(&alice).await.unwrap(),
            SignInStep::MustEnrol {
                reason: EnrolReason::PolicyEnforced
            }
        );
        let started = portal
            .start_enrolment_async(&alice, "alice", "phone", EnrolmentOptions::default())
            .await
            .unwrap();
        let phone = Phone::scan(&started.uri);
        let confirmed = portal
            .confirm_enrolment_async(&alice, &phone.code(&clock))
            .await
            .unwrap();
        let codes: Vec<String> = confirmed.backup_codes.unwrap().expose().map(str::to_owned).collect();
        clock.advance(30);
        let code = phone.code(&clock);
        assert!(matches!(
            portal.verify_sign_in_async(&alice, &code).await.unwrap().factor,
            Factor::Totp(_)
        ));
        assert!(matches!(
            portal.verify_sign_in_async(&alice, &code).await,
            Err(Error::ReplayedCode)
        ));
        assert_eq!(
            portal.verify_sign_in_async(&alice, &codes[0]).await.unwrap().factor,
            Factor::BackupCode
        );
        portal
            .admin_reset_async(&ADMIN, &alice, ResetReason::LostDevice, ResetMode::default())
            .await
            .unwrap();
        assert_eq!(
            portal.begin_sign_in_async(&alice).await.unwrap(),
            SignInStep::MustEnrol {
                reason: EnrolReason::AdminReset
            }
        );
        assert!(portal.record_async(&alice).await.unwrap().authenticators().is_empty());
        let trail = portal
            .audit_events_async(portal_mfa::EventQuery::portal(portal.id()).user(&alice))
            .await
            .unwrap();
        assert!(trail.len() >= 8);
    });
}

/// The README's toy store through load and compare-and-swap only, so the
/// async trait's default `apply` races for real.
struct AsyncCas(flows::kv::KvStore);

impl AsyncMfaStore for AsyncCas {
    fn load<'a>(&'a self, p: &'a PortalId, u: &'a UserId) -> StoreFuture<'a, Option<Stored>> {
        Box::pin(async move { MfaStore::load(&self.0, p, u) })
    }
    fn commit<'a>(
        &'a self,
        p: &'a PortalId,
        u: &'a UserId,
        v: Option<Version>,
        w: &'a RecordWrite,
    ) -> StoreFuture<'a, Commit> {
        Box::pin(async move {
            // Give the other tasks a chance to interleave between read and write.
            std::thread::yield_now();
            MfaStore::commit(&self.0, p, u, v, w)
        })
    }
    fn load_policy<'a>(&'a self, p: &'a PortalId) -> StoreFuture<'a, Option<Stored>> {
        Box::pin(async move { MfaStore::load_policy(&self.0, p) })
    }
    fn commit_policy<'a>(
        &'a self,
        p: &'a PortalId,
        v: Option<Version>,
        b: &'a [u8],
        e: &'a [StoredEvent],
    ) -> StoreFuture<'a, Commit> {
        Box::pin(async move { MfaStore::commit_policy(&self.0, p, v, b, e) })
    }
    fn events<'a>(&'a self, q: &'a portal_mfa::EventQuery) -> StoreFuture<'a, Vec<Vec<u8>>> {
        Box::pin(async move { MfaStore::events(&self.0, q) })
    }
}

#[test]
fn racing_tasks_accept_one_code_once() {
    race_on(MemoryStore::new());
    race_on(AsyncCas(flows::kv::KvStore::default()));
    // The same store as a trait object, as a host holding several kinds of store would.
    let shared: Arc<dyn AsyncMfaStore> = Arc::new(AsyncCas(flows::kv::KvStore::default()));
    race_on(shared);
}

fn race_on<S: AsyncBackend>(store: S) {
    let clock = ManualClock::at(T0);
    let portal = Arc::new(portal(store, &clock).with_max_attempts(64));
    for trial in 0..50 {
        let user = UserId::customer(format!("c{trial}"));
        let started =
            pollster::block_on(portal.start_enrolment_async(&user, "c", "phone", EnrolmentOptions::default())).unwrap();
        let phone = Phone::scan(&started.uri);
        pollster::block_on(portal.confirm_enrolment_async(&user, &phone.code(&clock))).unwrap();
        clock.advance(30);
        let code = phone.code(&clock);
        let barrier = Barrier::new(8);
        let accepted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        pollster::block_on(portal.verify_sign_in_async(&user, &code)).is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count()
        });
        assert_eq!(accepted, 1, "trial {trial}");
    }
}
