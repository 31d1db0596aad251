//! Model-based test: random sequences of operations run against the pure state
//! machine and against a small reference model; after every step the answers
//! must agree and the invariants must hold:
//! - a (authenticator, step) pair is never accepted twice, nor an older step;
//! - a backup code is accepted once, and never from a superseded batch;
//! - no authenticator is active without a confirmed code (or an admin import);
//! - after an admin reset nothing old is usable;
//! - failures never exceed the hard limit, and a locked user is never let in.
//!
//! The same sequences then run through the `Portal` driver on every store
//! (memory, compare-and-swap key-value, SQLite) and both executors, checked
//! against the same model after every step.

mod flows;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use flows::{ADMIN, Executor, Go, TestPortal, TestStore};

use portal_mfa::core::{Context, EnrolmentRequest, Outcome};
use portal_mfa::{
    AuthenticatorId, Enforcement, EnrolmentOptions, Error, Keyring, LockoutRule, ManualClock, PortalId, PortalPolicy,
    SessionStamp, UserId,
    admin::{ResetMode, ResetReason},
    audit::{Actor, Factor},
    otp::{OtpAuthUri, Secret, Totp, TotpParams},
    record::MfaRecord,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    StartEnrolment { replace: bool },
    ConfirmRight,
    ConfirmWrong,
    SignInCurrent(usize),
    SignInReplayLast,
    SignInWrong,
    SignInBackup(usize),
    Delete(usize),
    Regenerate,
    Reset(bool),
    ToggleEnforcement,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..90).prop_map(Op::Advance),
        2 => any::<bool>().prop_map(|replace| Op::StartEnrolment { replace }),
        2 => Just(Op::ConfirmRight),
        1 => Just(Op::ConfirmWrong),
        4 => (0usize..3).prop_map(Op::SignInCurrent),
        2 => Just(Op::SignInReplayLast),
        3 => Just(Op::SignInWrong),
        2 => (0usize..12).prop_map(Op::SignInBackup),
        1 => (0usize..3).prop_map(Op::Delete),
        1 => Just(Op::Regenerate),
        1 => any::<bool>().prop_map(Op::Reset),
        1 => Just(Op::ToggleEnforcement),
    ]
}

/// Where the world's transitions run: on a record in hand, or through the
/// driver on a store (the record in hand then mirrors the stored one).
enum Engine {
    Pure,
    Driven {
        ex: Executor,
        portal: Box<TestPortal>,
        clock: ManualClock,
    },
}

struct World {
    engine: Engine,
    record: MfaRecord,
    policy: PortalPolicy,
    now: u64,
    rng: StdRng,
    portal: PortalId,
    user: UserId,
    /// Every secret the user ever enrolled, by id: the model's phones.
    phones: HashMap<AuthenticatorId, Totp>,
    pending: Option<(AuthenticatorId, u64)>,
    /// Confirmed and not removed, in the model's view.
    active: Vec<AuthenticatorId>,
    accepted: HashSet<(AuthenticatorId, u64)>,
    newest_accepted: HashMap<AuthenticatorId, u64>,
    last_code: Option<String>,
    backup: Vec<(String, bool)>,
    old_backup: Vec<String>,
    /// What tags the pure engine's stamps (the driven engine's portal has its own).
    keys: Keyring,
    /// The user's signed-in session, from the last answer that gave one.
    session: Option<SessionStamp>,
}

impl World {
    fn new() -> Self {
        Self::on(Engine::Pure)
    }

    /// The world through the driver on `store`.
    fn driven(store: Arc<dyn TestStore>, ex: Executor) -> Self {
        let mut world = Self::on(Engine::Pure);
        let clock = ManualClock::at(world.now);
        let portal = flows::portal_on(store, &clock).with_default_policy(world.policy);
        world.portal = portal.id().clone();
        world.engine = Engine::Driven {
            ex,
            portal: Box::new(portal),
            clock,
        };
        world
    }

    fn on(engine: Engine) -> Self {
        Self {
            engine,
            record: MfaRecord::default(),
            policy: PortalPolicy::default().with_lockout(LockoutRule::new(3, 30, 120).unwrap()),
            now: 1_763_800_000,
            rng: StdRng::seed_from_u64(1),
            portal: PortalId::new("p"),
            user: UserId::customer("u"),
            phones: HashMap::new(),
            pending: None,
            active: Vec::new(),
            accepted: HashSet::new(),
            newest_accepted: HashMap::new(),
            last_code: None,
            backup: Vec::new(),
            old_backup: Vec::new(),
            keys: Keyring::new("model", &[3; 32]).unwrap(),
            session: None,
        }
    }

    fn apply<T>(
        &mut self,
        actor: Actor,
        f: impl FnOnce(MfaRecord, &Context<'_>, &mut StdRng) -> Outcome<T>,
    ) -> Result<T, Error> {
        let record = std::mem::take(&mut self.record);
        let ctx = Context::new(&self.portal, &self.user, &self.policy, self.now, &actor, &self.keys);
        let outcome = f(record, &ctx, &mut self.rng);
        // Events are always about this user, and never carry secrets.
        for e in &outcome.events {
            assert_eq!(e.user.as_ref(), Some(&self.user));
            assert!(outcome.changed);
        }
        self.record = outcome.record;
        outcome.result
    }

    /// One operation: `pure` on the record in hand, or `driven` through the
    /// portal at the world's time, after which the record in hand is reloaded.
    fn run<T>(
        &mut self,
        actor: Actor,
        pure: impl FnOnce(MfaRecord, &Context<'_>, &mut StdRng) -> Outcome<T>,
        driven: impl FnOnce(&TestPortal, &UserId, Executor) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Engine::Driven { ex, portal, clock } = &self.engine else {
            return self.apply(actor, pure);
        };
        let ex = *ex;
        clock.set(self.now);
        let result = driven(portal, &self.user, ex);
        self.record = portal.record(&self.user).go(ex).unwrap();
        result
    }

    fn verify(&mut self, code: &str) -> Result<portal_mfa::SignInVerified, Error> {
        self.run(
            Actor::User,
            |r, c, _| r.verify(c, code),
            |p, u, ex| p.verify_sign_in(u, code).go(ex),
        )
    }

    /// The session a self-service change is made from: the last one an
    /// answer gave while it is current, else the password step's (a user
    /// without MFA); `None` for a user with MFA whose session ended.
    fn session(&mut self) -> Option<SessionStamp> {
        if let Some(session) = self.session.filter(|s| self.record.session_is_current(s)) {
            return Some(session);
        }
        let step = self.run(
            Actor::User,
            |r, c, _| r.sign_in_step(c),
            |p, u, ex| p.begin_sign_in(u).go(ex),
        );
        self.session = step.ok().and_then(|step| step.session());
        self.session
    }

    fn code_of(&self, id: AuthenticatorId) -> String {
        self.phones[&id].generate(self.now).unwrap().expose().to_string()
    }

    fn locked(&self) -> bool {
        self.record.failures().active_lock(self.now).is_some()
    }

    fn wrong_code(&self) -> String {
        let window: HashSet<String> = self
            .active
            .iter()
            .flat_map(|id| {
                (0..3).map(move |d| {
                    self.phones[id]
                        .generate(self.now + d * 30 - 30)
                        .unwrap()
                        .expose()
                        .to_string()
                })
            })
            .collect();
        (0..)
            .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
            .find(|c| !window.contains(c))
            .unwrap()
    }

    fn proof(&self) -> Option<String> {
        let id = *self.active.first()?;
        let step = self.now / 30;
        (self.newest_accepted.get(&id).is_none_or(|&s| s < step)).then(|| self.code_of(id))
    }

    fn note_success(&mut self, factor: Factor, code: Option<&str>) {
        if let Factor::Totp(id) = factor {
            // A factor deleted by this very operation can never be used again.
            let Some(authenticator) = self.record.authenticators().iter().find(|a| a.id() == id) else {
                return;
            };
            let step = authenticator.last_used_step().unwrap();
            assert!(self.accepted.insert((id, step)), "step {step} of {id} accepted twice");
            if let Some(&newest) = self.newest_accepted.get(&id) {
                assert!(step > newest, "older step {step} accepted after {newest}");
            }
            self.newest_accepted.insert(id, step);
            self.last_code = code.map(str::to_owned);
        }
    }

    fn step(&mut self, op: &Op) {
        let was_locked = self.locked();
        match op.clone() {
            Op::Advance(s) => self.now += s,
            Op::StartEnrolment { replace } => {
                let replaces = if replace { self.active.first().copied() } else { None };
                let proof = self.proof();
                let secret = Secret::generate(&mut self.rng);
                let request = EnrolmentRequest::new("phone", "u@example.com", "P")
                    .replacing(replaces)
                    .with_proof(proof.as_deref());
                let mut options = EnrolmentOptions::default();
                if let Some(id) = replaces {
                    options = options.replacing(id);
                }
                if let Some(proof) = proof.as_deref() {
                    options = options.with_proof(proof);
                }
                let Some(session) = self.session() else { return };
                let result = self.run(
                    Actor::User,
                    |r, c, _| r.start_enrolment(c, &session, request, secret),
                    |p, u, ex| p.start_enrolment(u, &session, "u@example.com", "phone", options).go(ex),
                );
                match result {
                    Ok(started) => {
                        assert!(!was_locked);
                        let scanned = OtpAuthUri::parse(&started.uri.to_uri()).unwrap();
                        self.phones
                            .insert(started.authenticator, Totp::new(scanned.secret(), *scanned.params()));
                        self.pending = Some((started.authenticator, started.expires_at));
                        if proof.is_some() && !self.active.is_empty() {
                            self.note_success(Factor::Totp(self.active[0]), proof.as_deref());
                        }
                    }
                    Err(e) => assert!(
                        was_locked
                            || (!self.active.is_empty() && proof.is_none())
                            || self.locked()
                            || matches!(e, Error::TooManyAuthenticators),
                        "unexpected refusal {e:?}"
                    ),
                }
            }
            Op::ConfirmRight | Op::ConfirmWrong => {
                let code = match (self.pending, op) {
                    (Some((id, _)), Op::ConfirmRight) => self.code_of(id),
                    _ => "000000".to_owned(),
                };
                let before_active = self.active.clone();
                let Some(session) = self.session() else { return };
                let result = self.run(
                    Actor::User,
                    |r, c, rng| r.confirm_enrolment(c, &session, &code, rng),
                    |p, u, ex| p.confirm_enrolment(u, &session, &code).go(ex),
                );
                match result {
                    Ok(confirmed) => {
                        self.session = Some(confirmed.session);
                        let (id, expires) = self.pending.take().unwrap();
                        assert_eq!(confirmed.authenticator, id);
                        assert!(self.now < expires && !was_locked);
                        let replaced = self.record.authenticators().len() == before_active.len();
                        if replaced {
                            self.active
                                .retain(|a| self.record.authenticators().iter().any(|r| r.id() == *a));
                        }
                        self.active.push(id);
                        let step = self
                            .record
                            .authenticators()
                            .iter()
                            .find(|a| a.id() == id)
                            .unwrap()
                            .last_used_step()
                            .unwrap();
                        assert!(self.accepted.insert((id, step)));
                        self.newest_accepted.insert(id, step);
                        if let Some(codes) = confirmed.backup_codes {
                            assert!(before_active.is_empty(), "codes issued although MFA was already on");
                            self.old_backup.extend(self.backup.drain(..).map(|(c, _)| c));
                            self.backup = codes.expose().map(|c| (c.to_owned(), false)).collect();
                        }
                    }
                    Err(Error::EnrolmentExpired | Error::EnrolmentCancelled) => self.pending = None,
                    Err(_) => {}
                }
            }
            Op::SignInCurrent(i) => {
                let Some(&id) = self.active.get(i % self.active.len().max(1)) else {
                    let r = self.verify("123456");
                    assert!(matches!(r, Err(Error::NotEnrolled | Error::LockedOut { .. })), "{r:?}");
                    return;
                };
                let code = self.code_of(id);
                let fresh = self.newest_accepted.get(&id).is_none_or(|&s| s < self.now / 30);
                let result = self.verify(&code);
                match result {
                    Ok(v) => {
                        assert!(!was_locked);
                        self.session = Some(v.session);
                        self.note_success(v.factor, Some(&code));
                    }
                    Err(e) => assert!(was_locked || !fresh || matches!(e, Error::LockedOut { .. }), "{e:?}"),
                }
                if !was_locked && fresh {
                    assert_eq!(self.record.failures().consecutive(), 0);
                }
            }
            Op::SignInReplayLast => {
                let Some(code) = self.last_code.clone() else { return };
                let result = self.verify(&code);
                if let Ok(v) = result {
                    // Only acceptable if the code is, by chance, also the fresh code of some step.
                    self.note_success(v.factor, Some(&code));
                }
            }
            Op::SignInWrong => {
                let wrong = self.wrong_code();
                let before = self.record.failures().consecutive();
                let result = self.verify(&wrong);
                match result {
                    Ok(_) => panic!("a wrong code was accepted"),
                    Err(Error::WrongCode { .. }) => assert_eq!(self.record.failures().consecutive(), before + 1),
                    Err(Error::LockedOut { .. }) => {}
                    Err(Error::NotEnrolled) => assert!(self.active.is_empty()),
                    Err(e) => panic!("{e:?}"),
                }
            }
            Op::SignInBackup(i) => {
                let all: Vec<String> = self
                    .backup
                    .iter()
                    .map(|(c, _)| c.clone())
                    .chain(self.old_backup.iter().cloned())
                    .collect();
                let Some(code) = all.get(i % all.len().max(1)).cloned() else {
                    return;
                };
                let usable = self.backup.iter().any(|(c, used)| *c == code && !used) && !self.active.is_empty();
                let result = self.verify(&code);
                match result {
                    Ok(v) => {
                        assert!(usable && !was_locked, "backup code accepted when it should not be");
                        assert_eq!(v.factor, Factor::BackupCode);
                        self.backup.iter_mut().find(|(c, _)| *c == code).unwrap().1 = true;
                    }
                    Err(e) => assert!(!usable || was_locked || matches!(e, Error::LockedOut { .. }), "{e:?}"),
                }
            }
            Op::Delete(i) => {
                let Some(&id) = self.active.get(i % self.active.len().max(1)) else {
                    return;
                };
                let Some(proof) = self.proof() else { return };
                let Some(session) = self.session() else { return };
                let result = self.run(
                    Actor::User,
                    |r, c, _| r.delete_authenticator(c, &session, id, &proof),
                    |p, u, ex| p.delete_authenticator(u, &session, id, &proof).go(ex),
                );
                if let Ok(renewed) = result {
                    assert!(self.record.session_is_current(&renewed));
                    assert!(!self.record.session_is_current(&session), "the other sessions ended");
                    self.session = Some(renewed);
                    assert!(!(self.policy.is_enforced() && self.active.len() == 1));
                    self.note_success(Factor::Totp(self.active[0]), Some(&proof));
                    self.active.retain(|a| *a != id);
                    if self.pending.is_some_and(|_| self.record.pending().is_none()) {
                        self.pending = None;
                    }
                    if self.active.is_empty() {
                        self.old_backup.extend(self.backup.drain(..).map(|(c, _)| c));
                    }
                }
            }
            Op::Regenerate => {
                let Some(proof) = self.proof() else { return };
                let Some(session) = self.session() else { return };
                let result = self.run(
                    Actor::User,
                    |r, c, rng| r.regenerate_backup_codes(c, &session, &proof, rng),
                    |p, u, ex| p.regenerate_backup_codes(u, &session, &proof).go(ex),
                );
                if let Ok(codes) = result {
                    assert!(!self.record.session_is_current(&session), "the other sessions ended");
                    self.session = Some(codes.session);
                    self.note_success(Factor::Totp(self.active[0]), Some(&proof));
                    self.old_backup.extend(self.backup.drain(..).map(|(c, _)| c));
                    self.backup = codes.codes.expose().map(|c| (c.to_owned(), false)).collect();
                }
            }
            Op::Reset(force) => {
                let mode = if force {
                    ResetMode::ForceReenrolment
                } else {
                    ResetMode::RemoveOnly
                };
                let summary = self
                    .run(
                        Actor::Admin("admin".into()),
                        |r, c, _| r.admin_reset(c, ResetReason::LostDevice, mode),
                        |p, u, ex| p.admin_reset(&ADMIN, u, ResetReason::LostDevice, mode).go(ex),
                    )
                    .unwrap();
                assert_eq!(summary.authenticators_removed as usize, self.active.len());
                self.active.clear();
                self.pending = None;
                self.old_backup.extend(self.backup.drain(..).map(|(c, _)| c));
                // Nothing old is usable.
                assert!(self.session.is_none_or(|s| !self.record.session_is_current(&s)));
                assert!(self.record.authenticators().is_empty() && self.record.backup_codes().is_none());
                assert!(self.record.pending().is_none() && self.record.failures().consecutive() == 0);
                for id in self.phones.keys().copied().collect::<Vec<_>>() {
                    let code = self.code_of(id);
                    assert!(matches!(self.verify(&code), Err(Error::NotEnrolled)));
                }
            }
            Op::ToggleEnforcement => {
                let next = if self.policy.is_enforced() {
                    Enforcement::SelfConfigured
                } else {
                    Enforcement::Enforced { grace: None }
                };
                self.policy = self.policy.with_enforcement(next).unwrap();
                if let Engine::Driven { ex, portal, clock } = &self.engine {
                    clock.set(self.now);
                    assert_eq!(portal.set_enforcement(&ADMIN, next).go(*ex).unwrap(), self.policy);
                }
            }
        }
        self.check_invariants();
    }

    fn check_invariants(&self) {
        let ids: Vec<AuthenticatorId> = self.record.authenticators().iter().map(|a| a.id()).collect();
        let mut model = self.active.clone();
        model.sort();
        let mut real = ids.clone();
        real.sort();
        assert_eq!(real, model, "active authenticators differ from the model");
        for a in self.record.authenticators() {
            assert!(a.last_used_step().is_some(), "active without a confirmed code");
        }
        let unused = self.backup.iter().filter(|(_, used)| !used).count() as u32;
        assert_eq!(
            self.record.backup_codes().map_or(0, |b| b.remaining()),
            if self.active.is_empty() { 0 } else { unused }
        );
        assert!(self.record.failures().consecutive() <= LockoutRule::HARD_LIMIT);
        assert_eq!(self.record.pending().map(|p| p.id()), self.pending.map(|(id, _)| id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_operation_sequences_keep_every_invariant(ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
        }
    }
}

/// Through the driver: the SQLite store is one of them, and PostgreSQL (sync and async) when there is a server.
#[cfg(feature = "sqlite")]
mod driven {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn the_same_sequences_through_the_driver_on_every_store_and_executor(
            ops in prop::collection::vec(op(), 1..60)
        ) {
            for ex in [Executor::Blocking, Executor::Async] {
                let dir = flows::TempDir::new("model");
                let sqlite = portal_mfa::store::SqliteStore::open(dir.file("mfa.db")).unwrap();
                #[allow(unused_mut)]
                let mut stores: Vec<Arc<dyn TestStore>> = vec![
                    flows::memory(),
                    flows::bytes(flows::kv::KvStore::default()),
                    flows::bytes_in(sqlite, dir),
                ];
                #[cfg(feature = "postgres")]
                stores.extend(flows::pair().map(|pair| pair as Arc<dyn TestStore>));
                for store in stores {
                    let mut world = World::driven(store, ex);
                    for op in &ops {
                        world.step(op);
                    }
                }
            }
        }
    }
}

#[test]
fn imported_authenticators_are_active_without_a_used_step() {
    let mut world = World::new();
    let secret = Secret::generate(&mut world.rng);
    let totp = Totp::new(&secret, TotpParams::standard());
    let id = world
        .apply(Actor::Admin("admin".into()), |r, c, _| {
            r.import_authenticator(c, "legacy", secret, TotpParams::standard())
        })
        .unwrap();
    assert_eq!(world.record.authenticators()[0].last_used_step(), None);
    let code = totp.generate(world.now).unwrap().expose().to_string();
    assert_eq!(
        world.apply(Actor::User, |r, c, _| r.verify(c, &code)).unwrap().factor,
        Factor::Totp(id)
    );
    assert!(matches!(
        world.apply(Actor::User, |r, c, _| r.verify(c, &code)),
        Err(Error::ReplayedCode)
    ));
    // Only admins import.
    let other = Secret::generate(&mut world.rng);
    assert!(
        world
            .apply(Actor::User, |r, c, _| r.import_authenticator(
                c,
                "x",
                other,
                TotpParams::standard()
            ))
            .is_err()
    );
}
