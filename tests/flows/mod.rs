//! Every flow the product documents describe (customer-portal MFA help pages and two Reset MFA requests), written once and
//! run over each store (`seed_flow_tests!` instantiates them per store).

#![allow(dead_code, unreachable_pub)]

pub mod kv;
pub mod pg;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use portal_mfa::store::{
    Applied, AsyncMfaStore, AsyncStore, BlockingStore, ChangeFn, Commit, EventPosition, MfaStore, RecordSummary,
    RecordWrite, StoreFuture, Stored, StoredEvent, UserListing, Version,
};
use portal_mfa::{
    Enforcement, EnrolReason, EnrolmentOptions, Error, EventKind, EventQuery, Factor, Grace, LockoutRule, ManualClock,
    OtpAuthUri, PolicyRefusal, Portal, PortalId, PortalPolicy, ResetMode, ResetReason, Secret, SignInMethod,
    SignInStep, Totp, UserId,
};
use portal_mfa::{Keyring, MemoryStore, Op, StorageError, Work};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A store both executors can run on: the memory store, or a byte store behind [`Both`].
pub trait TestStore: BlockingStore + AsyncStore {}
impl<T: BlockingStore + AsyncStore + ?Sized> TestStore for T {}

pub type StoreFactory = dyn Fn() -> Arc<dyn TestStore>;
pub type TestPortal = Portal<Arc<dyn TestStore>, ManualClock, StdRng>;

/// The in-memory store, for both executors.
pub fn memory() -> Arc<dyn TestStore> {
    Arc::new(MemoryStore::new())
}

/// A byte store for both executors: blocking as itself, async through [`Both`].
pub fn bytes<S: MfaStore + 'static>(store: impl Into<Arc<S>>) -> Arc<dyn TestStore> {
    Arc::new(Both::new(store))
}

/// [`bytes`], owning the temporary directory the store's files live in.
pub fn bytes_in<S: MfaStore + 'static>(store: S, dir: TempDir) -> Arc<dyn TestStore> {
    Arc::new(Both {
        dir: Some(dir),
        ..Both::new(store)
    })
}

/// Every store, through every executor: `(label, store)`, the store fresh.
#[cfg(feature = "sqlite")]
pub fn each_store_and_executor(run: impl Fn(&str, Arc<dyn TestStore>)) {
    for executor in [Executor::Blocking, Executor::Async] {
        set_executor(executor);
        let dir = TempDir::new("stores");
        let sqlite = portal_mfa::SqliteStore::open_with(
            dir.file("mfa.db"),
            portal_mfa::SqliteOptions::new().busy_timeout(std::time::Duration::from_secs(30)),
        )
        .unwrap();
        #[allow(unused_mut)]
        let mut stores: Vec<(&str, Arc<dyn TestStore>)> = vec![
            ("locking apply", memory()),
            ("compare-and-swap", bytes(kv::KvStore::default())),
            ("sqlite", bytes_in(sqlite, dir)),
        ];
        #[cfg(feature = "postgres")]
        if let Some(pair) = pg::pair() {
            stores.push(("postgres", pair));
        }
        for (kind, store) in stores {
            run(&format!("{kind} ({executor:?})"), store);
        }
    }
}

/// The tokio runtime the async executor awaits operations on (a real
/// runtime: the async PostgreSQL store's connections are tokio tasks).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Which executor runs the operations of this thread's test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    Blocking,
    Async,
}

thread_local! {
    static EXECUTOR: std::cell::Cell<Executor> = const { std::cell::Cell::new(Executor::Blocking) };
}

/// The executor of this thread (copy it into threads a test spawns).
pub fn executor() -> Executor {
    EXECUTOR.with(|e| e.get())
}

pub fn set_executor(executor: Executor) {
    EXECUTOR.with(|e| e.set(executor));
}

/// Runs an operation on this thread's executor: `.go()`, or `.await` on a tokio runtime.
pub trait Go {
    type Output;
    fn go(self) -> Result<Self::Output, Error>;
}

impl<'a, W: Work<'a>> Go for Op<'a, W>
where
    W::Store: BlockingStore + AsyncStore,
{
    type Output = W::Output;

    fn go(self) -> Result<W::Output, Error> {
        match executor() {
            Executor::Blocking => self.run(),
            Executor::Async => runtime().block_on(std::future::IntoFuture::into_future(self)),
        }
    }
}

/// A blocking byte store seen through both traits. As an [`AsyncMfaStore`] each
/// call first yields once to the executor (as a network round trip would), so
/// the async executor really suspends mid-operation, and `apply` is the async
/// trait's own load-and-compare-and-swap.
pub struct Both<S: ?Sized> {
    /// Commits to lose before the next one wins, as if another writer had
    /// always come first (for tests of the retry loop).
    pub conflicts: AtomicU32,
    /// Pages of events read so far (either trait).
    pub event_reads: AtomicU32,
    /// The temporary directory the store's files live in, removed with it.
    pub dir: Option<TempDir>,
    pub store: Arc<S>,
}

impl<S> Both<S> {
    pub fn new(store: impl Into<Arc<S>>) -> Self {
        Self {
            conflicts: AtomicU32::new(0),
            event_reads: AtomicU32::new(0),
            dir: None,
            store: store.into(),
        }
    }
}

impl<S: ?Sized> Both<S> {
    /// Whether this commit loses to an injected writer.
    fn loses(&self) -> bool {
        self.conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A store call that first yields once to the executor.
fn later<'a, T: Send + 'a>(call: impl FnOnce() -> Result<T, StorageError> + Send + 'a) -> StoreFuture<'a, T> {
    Box::pin(async move {
        YieldOnce(false).await;
        call()
    })
}

struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl<S: MfaStore + ?Sized> MfaStore for Both<S> {
    fn load(&self, p: &PortalId, u: &UserId) -> Result<Option<Stored>, StorageError> {
        self.store.load(p, u)
    }
    fn commit(&self, p: &PortalId, u: &UserId, v: Option<Version>, w: &RecordWrite) -> Result<Commit, StorageError> {
        if self.loses() {
            return Ok(Commit::Conflict);
        }
        self.store.commit(p, u, v, w)
    }
    fn load_policy(&self, p: &PortalId) -> Result<Option<Stored>, StorageError> {
        self.store.load_policy(p)
    }
    fn commit_policy(
        &self,
        p: &PortalId,
        v: Option<Version>,
        b: &[u8],
        e: &[StoredEvent],
    ) -> Result<Commit, StorageError> {
        self.store.commit_policy(p, v, b, e)
    }
    fn events(&self, q: &portal_mfa::EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        self.event_reads.fetch_add(1, Ordering::SeqCst);
        self.store.events(q)
    }
    fn prune_events(&self, p: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        self.store.prune_events(p, before, max)
    }
    fn count_events(&self, p: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
        self.store.count_events(p, from, until)
    }
    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        self.store.users(listing)
    }
    fn records(&self, p: &PortalId, a: Option<&UserId>, l: usize) -> Result<Vec<(UserId, Stored)>, StorageError> {
        self.store.records(p, a, l)
    }
    fn apply(&self, p: &PortalId, u: &UserId, c: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        if self.loses() {
            return Ok(Applied::Conflict);
        }
        self.store.apply(p, u, c)
    }
}

impl<S: MfaStore + ?Sized> AsyncMfaStore for Both<S> {
    fn load<'a>(&'a self, p: &'a PortalId, u: &'a UserId) -> StoreFuture<'a, Option<Stored>> {
        later(move || self.store.load(p, u))
    }
    fn commit<'a>(
        &'a self,
        p: &'a PortalId,
        u: &'a UserId,
        v: Option<Version>,
        w: &'a RecordWrite,
    ) -> StoreFuture<'a, Commit> {
        later(move || MfaStore::commit(self, p, u, v, w))
    }
    fn load_policy<'a>(&'a self, p: &'a PortalId) -> StoreFuture<'a, Option<Stored>> {
        later(move || self.store.load_policy(p))
    }
    fn commit_policy<'a>(
        &'a self,
        p: &'a PortalId,
        v: Option<Version>,
        b: &'a [u8],
        e: &'a [StoredEvent],
    ) -> StoreFuture<'a, Commit> {
        later(move || self.store.commit_policy(p, v, b, e))
    }
    fn events<'a>(&'a self, q: &'a portal_mfa::EventQuery) -> StoreFuture<'a, Vec<(EventPosition, Vec<u8>)>> {
        later(move || MfaStore::events(self, q))
    }
    fn prune_events<'a>(&'a self, p: &'a PortalId, before: u64, max: usize) -> StoreFuture<'a, usize> {
        later(move || self.store.prune_events(p, before, max))
    }
    fn count_events<'a>(&'a self, p: &'a PortalId, from: u64, until: u64) -> StoreFuture<'a, Vec<(String, u64)>> {
        later(move || self.store.count_events(p, from, until))
    }
    fn users<'a>(&'a self, listing: &'a UserListing) -> StoreFuture<'a, Vec<(UserId, RecordSummary)>> {
        later(move || self.store.users(listing))
    }
    fn records<'a>(
        &'a self,
        p: &'a PortalId,
        a: Option<&'a UserId>,
        l: usize,
    ) -> StoreFuture<'a, Vec<(UserId, Stored)>> {
        later(move || self.store.records(p, a, l))
    }
}

pub const T0: u64 = 1_763_800_000;
/// The admin every test portal trusts (authorised by the "host", the test).
pub static ADMIN: std::sync::LazyLock<portal_mfa::Admin> =
    std::sync::LazyLock::new(|| portal_mfa::Admin::authorised("admin@acme.example"));

pub fn portal_on(store: Arc<dyn TestStore>, clock: &ManualClock) -> TestPortal {
    Portal::new(PortalId::new("acme-portal"), "Acme Portal", store)
        .unwrap()
        .with_keyring(keyring())
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(42))
}

pub fn setup(make: &StoreFactory) -> (TestPortal, ManualClock) {
    let clock = ManualClock::at(T0);
    (portal_on(make(), &clock), clock)
}

/// The user's authenticator app, built from the URI text as a phone reads it from the QR code.
pub struct Phone(Totp);

impl Phone {
    pub fn scan(uri: &OtpAuthUri) -> Self {
        let scanned = OtpAuthUri::parse(&uri.to_uri()).unwrap();
        issued(scanned.secret().to_base32().as_ref());
        Self(Totp::new(scanned.secret(), *scanned.params()))
    }

    /// The code the app shows now. When it shows the same digits as one step
    /// earlier, the person waits for the next code (the clock moves on): the
    /// portal would refuse the repeat as already used, whichever step it was
    /// typed at, so a long run of sign-ins would hit that at some step.
    /// The app holding `secret` with the standard parameters (for an imported authenticator).
    pub fn with_secret(secret: &Secret) -> Self {
        Self(Totp::new(secret, portal_mfa::TotpParams::standard()))
    }

    pub fn code(&self, clock: &ManualClock) -> String {
        while portal_mfa::Clock::now(clock) >= 30 && self.shows_last_steps_digits(portal_mfa::Clock::now(clock)) {
            clock.advance(30);
        }
        self.code_at(portal_mfa::Clock::now(clock))
    }

    fn shows_last_steps_digits(&self, unix_time: u64) -> bool {
        let (now, before) = (self.0.generate(unix_time), self.0.generate(unix_time - 30));
        matches!((now, before), (Ok(now), Ok(before)) if *now.expose() == *before.expose())
    }

    pub fn code_at(&self, unix_time: u64) -> String {
        let code = self.0.generate(unix_time).unwrap().expose().to_string();
        issued(&code);
        code
    }
}

/// Every secret, code and backup code the scenarios have issued or typed so
/// far, for tests that search output for them.
pub static ISSUED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn issued(secret: &str) {
    ISSUED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(secret.to_owned());
}

/// Enrols `user` from scratch; returns their phone and backup codes. Leaves the clock on the next step.
pub fn enrol(portal: &TestPortal, clock: &ManualClock, user: &UserId) -> (Phone, Vec<String>) {
    let started = portal
        .start_enrolment(user, user.id(), "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    let phone = Phone::scan(&started.uri);
    let confirmed = portal.confirm_enrolment(user, &phone.code(clock)).go().unwrap();
    let codes: Vec<String> = confirmed
        .backup_codes
        .map(|c| c.expose().map(str::to_owned).collect())
        .unwrap_or_default();
    codes.iter().for_each(|c| issued(c));
    clock.advance(30);
    (phone, codes)
}

/// One user's audit trail, oldest first.
/// A user's whole trail, oldest first, read in pages of 3 both ways: every
/// scenario thereby checks that paging either way sees the same events.
pub fn trail_of(portal: &TestPortal, user: &UserId) -> Vec<portal_mfa::AuditEvent> {
    let query = EventQuery::portal(portal.id()).user(user).limit(3);
    let oldest_first = all_pages(portal, query.clone());
    let mut newest_first = all_pages(portal, query.newest_first());
    newest_first.reverse();
    assert_eq!(
        oldest_first, newest_first,
        "paging oldest first and newest first disagree"
    );
    oldest_first
}

/// Every page of `query`, in order.
pub fn all_pages(portal: &TestPortal, query: EventQuery) -> Vec<portal_mfa::AuditEvent> {
    let mut events = Vec::new();
    let mut next = Some(query.clone());
    while let Some(query) = next.take() {
        let page = portal.audit_events(query.clone()).go().unwrap();
        assert!(page.items.len() <= query.limit);
        events.extend(page.items);
        next = page.next.map(|cursor| query.after(cursor));
    }
    events
}

fn enforce(portal: &TestPortal) {
    portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: None })
        .go()
        .unwrap();
}

// ---------------------------------------------------------------- policy

pub fn mfa_is_off_by_default(make: &StoreFactory) {
    let (portal, _) = setup(make);
    assert!(!portal.policy().go().unwrap().is_enforced());
    assert_eq!(
        portal.begin_sign_in(&UserId::customer("c1")).go().unwrap(),
        SignInStep::NoMfaNeeded
    );
}

pub fn enforced_mfa_sends_unenrolled_users_to_enrolment_after_password(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    enforce(&portal);
    let user = UserId::customer("c1");
    assert_eq!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced
        }
    );
    let (phone, _) = enrol(&portal, &clock, &user);
    // From then on, every sign-in asks for a code.
    for _ in 0..3 {
        assert!(matches!(
            portal.begin_sign_in(&user).go().unwrap(),
            SignInStep::EnterCode { .. }
        ));
        portal.verify_sign_in(&user, &phone.code(&clock)).go().unwrap();
        clock.advance(30);
    }
}

pub fn enforcing_is_refused_for_saml_portal(make: &StoreFactory) {
    let (portal, _) = setup(make);
    portal.set_sign_in_method(&ADMIN, SignInMethod::Saml).go().unwrap();
    let refused = portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: None })
        .go();
    assert!(
        matches!(refused, Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))),
        "{refused:?}"
    );
    assert!(!portal.policy().go().unwrap().is_enforced());
    // And the other way round: an enforced portal cannot move to SAML.
    portal.set_sign_in_method(&ADMIN, SignInMethod::Password).go().unwrap();
    enforce(&portal);
    let refused = portal.set_sign_in_method(&ADMIN, SignInMethod::Saml).go();
    assert!(matches!(
        refused,
        Err(Error::NotAllowed(PolicyRefusal::EnforcementWithSaml))
    ));
    assert_eq!(portal.policy().go().unwrap().sign_in_method(), SignInMethod::Password);
}

pub fn vendor_and_customer_share_policy(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    enforce(&portal);
    let customer = UserId::customer("acme-buyer");
    let vendor = UserId::vendor("acme-supplier");
    for user in [&customer, &vendor] {
        assert_eq!(
            portal.begin_sign_in(user).go().unwrap(),
            SignInStep::MustEnrol {
                reason: EnrolReason::PolicyEnforced
            }
        );
    }
    // Same identifier, different kinds: two users, two records.
    let (_, _) = enrol(&portal, &clock, &UserId::customer("same-id"));
    assert!(matches!(
        portal.begin_sign_in(&UserId::vendor("same-id")).go().unwrap(),
        SignInStep::MustEnrol { .. }
    ));
    // Resets work for either kind.
    for user in [&customer, &vendor] {
        enrol(&portal, &clock, user);
        let summary = portal
            .admin_reset(&ADMIN, user, ResetReason::LostDevice, ResetMode::default())
            .go()
            .unwrap();
        assert_eq!(summary.authenticators_removed, 1);
        assert_eq!(
            portal.begin_sign_in(user).go().unwrap(),
            SignInStep::MustEnrol {
                reason: EnrolReason::AdminReset
            }
        );
    }
}

pub fn self_configured_user_turns_mfa_on_from_my_account(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let other = UserId::customer("c2");
    assert_eq!(portal.begin_sign_in(&user).go().unwrap(), SignInStep::NoMfaNeeded);
    let (phone, codes) = enrol(&portal, &clock, &user);
    assert_eq!(codes.len(), 10);
    assert_eq!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::EnterCode {
            backup_codes_remaining: 10
        }
    );
    portal.verify_sign_in(&user, &phone.code(&clock)).go().unwrap();
    // Only that user: the portal does not enforce anything.
    assert_eq!(portal.begin_sign_in(&other).go().unwrap(), SignInStep::NoMfaNeeded);
}

// ---------------------------------------------------------------- enrolment

pub fn enrolment_works_by_qr_code_or_typed_key(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let by_qr = UserId::customer("qr");
    let started = portal
        .start_enrolment(&by_qr, "qr@example.com", "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    assert!(started.uri.qr_svg().unwrap().contains("<svg"));
    assert!(!started.uri.qr_terminal().unwrap().is_empty());
    portal
        .confirm_enrolment(&by_qr, &Phone::scan(&started.uri).code(&clock))
        .go()
        .unwrap();

    let by_hand = UserId::customer("typed");
    let started = portal
        .start_enrolment(&by_hand, "typed@example.com", "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    let typed_key = started.uri.secret().to_grouped_base32().to_lowercase();
    issued(started.uri.secret().to_base32().as_ref());
    let app = Totp::new(&Secret::from_base32(&typed_key).unwrap(), *started.uri.params());
    let code = app
        .generate(portal_mfa::Clock::now(&clock))
        .unwrap()
        .expose()
        .to_string();
    issued(&code);
    portal.confirm_enrolment(&by_hand, &code).go().unwrap();
    assert!(portal.record(&by_hand).go().unwrap().mfa_enabled());
}

pub fn enrolment_is_active_only_after_a_valid_code(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    enforce(&portal);
    let user = UserId::customer("c1");
    let started = portal
        .start_enrolment(&user, "c1", "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    let phone = Phone::scan(&started.uri);
    let right = phone.code(&clock);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        portal.confirm_enrolment(&user, wrong).go(),
        Err(Error::WrongCode { attempts_left: Some(4) })
    ));
    assert!(matches!(
        portal.confirm_enrolment(&user, "12ab").go(),
        Err(Error::MalformedCode(_))
    ));
    // Not enabled yet: still sent to enrolment, and codes from the pending secret do not sign in.
    assert!(!portal.record(&user).go().unwrap().mfa_enabled());
    assert!(matches!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::MustEnrol { .. }
    ));
    assert!(matches!(
        portal.verify_sign_in(&user, &right).go(),
        Err(Error::NotEnrolled)
    ));
    portal.confirm_enrolment(&user, &right).go().unwrap();
    assert!(portal.record(&user).go().unwrap().mfa_enabled());
}

pub fn enrolment_expires_after_its_lifetime(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let started = portal
        .start_enrolment(&user, "c1", "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    assert_eq!(started.expires_at, T0 + 600);
    clock.advance(600);
    let code = Phone::scan(&started.uri).code(&clock);
    assert!(matches!(
        portal.confirm_enrolment(&user, &code).go(),
        Err(Error::EnrolmentExpired)
    ));
    assert!(matches!(
        portal.confirm_enrolment(&user, &code).go(),
        Err(Error::NoPendingEnrolment)
    ));
}

pub fn restarting_enrolment_replaces_the_pending_secret(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let first = portal
        .start_enrolment(&user, "c1", "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    let second = portal
        .start_enrolment(&user, "c1", "phone", EnrolmentOptions::default())
        .go()
        .unwrap();
    assert_ne!(first.uri.secret(), second.uri.secret());
    let stale = Phone::scan(&first.uri).code(&clock);
    let fresh = Phone::scan(&second.uri).code(&clock);
    if stale != fresh {
        assert!(matches!(
            portal.confirm_enrolment(&user, &stale).go(),
            Err(Error::WrongCode { .. })
        ));
    }
    portal.confirm_enrolment(&user, &fresh).go().unwrap();
}

pub fn changing_authenticator_keeps_the_old_one_until_the_new_is_confirmed(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (old_phone, _) = enrol(&portal, &clock, &user);
    let old_id = portal.record(&user).go().unwrap().authenticators()[0].id();
    // A password alone cannot swap the factor.
    let options = EnrolmentOptions::default().replacing(old_id);
    assert!(matches!(
        portal.start_enrolment(&user, "c1", "new", options).go(),
        Err(Error::ProofRequired)
    ));
    let proof = old_phone.code(&clock);
    let options = EnrolmentOptions::default().replacing(old_id).with_proof(&proof);
    let started = portal.start_enrolment(&user, "c1", "new", options).go().unwrap();
    clock.advance(30);
    // Meanwhile the old phone still signs in.
    portal.verify_sign_in(&user, &old_phone.code(&clock)).go().unwrap();
    let new_phone = Phone::scan(&started.uri);
    let confirmed = portal.confirm_enrolment(&user, &new_phone.code(&clock)).go().unwrap();
    assert!(
        confirmed.backup_codes.is_none(),
        "MFA stayed on: the backup codes are kept"
    );
    clock.advance(30);
    let record = portal.record(&user).go().unwrap();
    assert_eq!(record.authenticators().len(), 1);
    assert_eq!(record.authenticators()[0].label(), "new");
    assert!(matches!(
        portal.verify_sign_in(&user, &old_phone.code(&clock)).go(),
        Err(Error::WrongCode { .. })
    ));
    portal.verify_sign_in(&user, &new_phone.code(&clock)).go().unwrap();
}

pub fn self_configured_user_deletes_authenticator_with_a_fresh_code(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(&portal, &clock, &user);
    let id = portal.record(&user).go().unwrap().authenticators()[0].id();
    assert!(matches!(
        portal.delete_authenticator(&user, id, "000000").go(),
        Err(Error::WrongCode { .. }) | Err(Error::ReplayedCode)
    ));
    portal
        .delete_authenticator(&user, id, &phone.code(&clock))
        .go()
        .unwrap();
    let record = portal.record(&user).go().unwrap();
    assert!(!record.mfa_enabled() && record.backup_codes().is_none());
    assert_eq!(portal.begin_sign_in(&user).go().unwrap(), SignInStep::NoMfaNeeded);
}

pub fn deleting_the_last_authenticator_is_refused_while_enforced(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    enforce(&portal);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(&portal, &clock, &user);
    let id = portal.record(&user).go().unwrap().authenticators()[0].id();
    let refused = portal.delete_authenticator(&user, id, &phone.code(&clock)).go();
    assert!(matches!(
        refused,
        Err(Error::NotAllowed(PolicyRefusal::LastAuthenticatorWhileEnforced))
    ));
    // The refused attempt did not consume the code.
    portal.verify_sign_in(&user, &phone.code(&clock)).go().unwrap();
}

// ---------------------------------------------------------------- backup codes and sign-in

pub fn backup_codes_are_issued_once_and_each_works_once(make: &StoreFactory) {
    let clock = ManualClock::at(T0);
    // One product issues 5 codes.
    let policy = PortalPolicy::default().with_backup_codes(5, 2).unwrap();
    let portal = portal_on(make(), &clock).with_default_policy(policy);
    let user = UserId::customer("c1");
    let (_, codes) = enrol(&portal, &clock, &user);
    assert_eq!(codes.len(), 5);
    for (i, code) in codes.iter().enumerate() {
        let verified = portal.verify_sign_in(&user, code).go().unwrap();
        assert_eq!(verified.factor, Factor::BackupCode);
        assert_eq!(verified.backup_codes_remaining, 4 - i as u32);
        assert_eq!(verified.low_on_backup_codes, verified.backup_codes_remaining <= 2);
        assert!(
            matches!(portal.verify_sign_in(&user, code).go(), Err(Error::WrongCode { .. })),
            "code {i} reused"
        );
    }
    // A second authenticator does not issue more codes.
    let stored = portal.record(&user).go().unwrap();
    assert_eq!(stored.backup_codes().unwrap().remaining(), 0);
}

pub fn sign_in_takes_a_totp_code_or_a_backup_code(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    enforce(&portal);
    let user = UserId::contact("help-center-contact");
    let (phone, codes) = enrol(&portal, &clock, &user);
    assert!(matches!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::EnterCode {
            backup_codes_remaining: 10
        }
    ));
    let code = phone.code(&clock);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    assert!(matches!(
        portal.verify_sign_in(&user, &spaced).go().unwrap().factor,
        Factor::Totp(_)
    ));
    let typed_loosely = codes[3].replace('-', " ").to_lowercase();
    assert_eq!(
        portal.verify_sign_in(&user, &typed_loosely).go().unwrap().factor,
        Factor::BackupCode
    );
    assert!(matches!(
        portal.verify_sign_in(&user, "not a code!").go(),
        Err(Error::MalformedCode(_))
    ));
}

pub fn replayed_code_is_refused(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(&portal, &clock, &user);
    let code = phone.code(&clock);
    portal.verify_sign_in(&user, &code).go().unwrap();
    assert!(matches!(
        portal.verify_sign_in(&user, &code).go(),
        Err(Error::ReplayedCode)
    ));
    clock.advance(10);
    assert!(matches!(
        portal.verify_sign_in(&user, &code).go(),
        Err(Error::ReplayedCode)
    ));
}

pub fn regenerating_backup_codes_invalidates_the_old_ones(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, old) = enrol(&portal, &clock, &user);
    assert!(matches!(
        portal.regenerate_backup_codes(&user, "000000").go(),
        Err(Error::WrongCode { .. } | Error::ReplayedCode)
    ));
    let new = portal.regenerate_backup_codes(&user, &phone.code(&clock)).go().unwrap();
    let new: Vec<String> = new.expose().map(str::to_owned).collect();
    new.iter().for_each(|c| issued(c));
    assert_eq!(new.len(), 10);
    assert!(matches!(
        portal.verify_sign_in(&user, &old[0]).go(),
        Err(Error::WrongCode { .. })
    ));
    portal.verify_sign_in(&user, &new[0]).go().unwrap();
}

pub fn wrong_codes_lock_mfa_with_growing_locks_and_a_success_resets_the_count(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(&portal, &clock, &user);
    let wrong = |p: &Phone| {
        if p.code(&clock) == "000000" {
            "111111".to_owned()
        } else {
            "000000".to_owned()
        }
    };
    for left in (1..=4).rev() {
        assert!(
            matches!(portal.verify_sign_in(&user, &wrong(&phone)).go(), Err(Error::WrongCode { attempts_left: Some(l) }) if l == left)
        );
    }
    let first_lock = portal.verify_sign_in(&user, &wrong(&phone)).go();
    assert!(
        matches!(first_lock, Err(Error::LockedOut { until: Some(t) }) if t == T0 + 30 + 60),
        "{first_lock:?}"
    );
    // While locked even the right code is refused, and nothing is counted.
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(),
        Err(Error::LockedOut { .. })
    ));
    assert!(matches!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::LockedOut { .. }
    ));
    clock.advance(60);
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&user, &wrong(&phone)).go();
    }
    let now = portal_mfa::Clock::now(&clock);
    assert_eq!(
        portal.record(&user).go().unwrap().failures().locked_until(),
        Some(now + 120),
        "second lock doubles"
    );
    clock.advance(120);
    portal.verify_sign_in(&user, &phone.code(&clock)).go().unwrap();
    assert_eq!(portal.record(&user).go().unwrap().failures().consecutive(), 0);
}

pub fn failures_never_exceed_the_hard_limit(make: &StoreFactory) {
    let clock = ManualClock::at(T0);
    let lenient = PortalPolicy::default().with_lockout(LockoutRule::new(100, 1, 1).unwrap());
    let portal = portal_on(make(), &clock).with_default_policy(lenient);
    let user = UserId::customer("c1");
    let (phone, _) = enrol(&portal, &clock, &user);
    let mut locked_for_good = false;
    for _ in 0..150 {
        clock.advance(2);
        let code = phone.code(&clock);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        if let Err(Error::LockedOut { until: None }) = portal.verify_sign_in(&user, wrong).go() {
            locked_for_good = true;
        }
    }
    assert!(locked_for_good);
    assert_eq!(
        portal.record(&user).go().unwrap().failures().consecutive(),
        LockoutRule::HARD_LIMIT
    );
    clock.advance(30);
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(),
        Err(Error::LockedOut { until: None })
    ));
    portal
        .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::default())
        .go()
        .unwrap();
    assert_eq!(portal.record(&user).go().unwrap().failures().consecutive(), 0);
}

// ---------------------------------------------------------------- admin reset

pub fn admin_reset_forces_reenrolment_without_deleting_user(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    // Not enforced: the reset alone forces re-enrolment.
    let user = UserId::customer("c1");
    let (phone, codes) = enrol(&portal, &clock, &user);
    let summary = portal
        .admin_reset(&ADMIN, &user, ResetReason::LostDevice, ResetMode::ForceReenrolment)
        .go()
        .unwrap();
    assert_eq!(
        (
            summary.authenticators_removed,
            summary.backup_codes_removed,
            summary.must_enrol
        ),
        (1, 10, true)
    );
    let record = portal.record(&user).go().unwrap();
    assert!(record.authenticators().is_empty() && record.pending().is_none() && record.backup_codes().is_none());
    let reset = record.last_reset().unwrap();
    assert_eq!(
        (&*reset.by, &reset.reason, reset.at),
        (ADMIN.name(), &ResetReason::LostDevice, T0 + 30)
    );
    // Nothing old works; the user (same id) is sent to enrolment and can come back.
    assert!(matches!(
        portal.verify_sign_in(&user, &phone.code(&clock)).go(),
        Err(Error::NotEnrolled)
    ));
    assert!(matches!(
        portal.verify_sign_in(&user, &codes[0]).go(),
        Err(Error::NotEnrolled)
    ));
    assert_eq!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::AdminReset
        }
    );
    let (new_phone, new_codes) = enrol(&portal, &clock, &user);
    assert_eq!(new_codes.len(), 10);
    assert!(!portal.record(&user).go().unwrap().must_enrol());
    portal.verify_sign_in(&user, &new_phone.code(&clock)).go().unwrap();
    let trail = trail_of(&portal, &user);
    let reset_event = trail
        .iter()
        .find(|e| matches!(e.kind, EventKind::MfaReset { .. }))
        .unwrap();
    assert_eq!(reset_event.actor, portal_mfa::Actor::Admin(ADMIN.name().into()));
}

pub fn admin_reset_remove_only_lets_self_configured_user_sign_in_without_mfa(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    enrol(&portal, &clock, &user);
    let summary = portal
        .admin_reset(&ADMIN, &user, ResetReason::NewDevice, ResetMode::RemoveOnly)
        .go()
        .unwrap();
    assert!(!summary.must_enrol);
    assert_eq!(portal.begin_sign_in(&user).go().unwrap(), SignInStep::NoMfaNeeded);
    // Under enforcement, remove-only still leads to enrolment.
    enforce(&portal);
    assert_eq!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced
        }
    );
}

pub fn admin_reset_records_every_reason_the_requests_name(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let reasons = [
        ResetReason::LostDevice,
        ResetReason::NewDevice,
        ResetReason::LockedOut,
        ResetReason::SecurityIncident,
        ResetReason::Other("ticket 4711".into()),
    ];
    for (i, reason) in reasons.into_iter().enumerate() {
        let user = UserId::contact(format!("contact-{i}"));
        enrol(&portal, &clock, &user);
        portal
            .admin_reset(&ADMIN, &user, reason.clone(), ResetMode::default())
            .go()
            .unwrap();
        assert_eq!(portal.record(&user).go().unwrap().last_reset().unwrap().reason, reason);
        let trail = trail_of(&portal, &user);
        assert!(
            trail
                .iter()
                .any(|e| matches!(&e.kind, EventKind::MfaReset { reason: r, .. } if *r == reason))
        );
    }
}

pub fn locked_out_user_is_recovered_by_admin_reset(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let user = UserId::customer("c1");
    enrol(&portal, &clock, &user);
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&user, "999999").go();
        let _ = portal.verify_sign_in(&user, "000000").go();
    }
    assert!(matches!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::LockedOut { .. }
    ));
    portal
        .admin_reset(&ADMIN, &user, ResetReason::LockedOut, ResetMode::default())
        .go()
        .unwrap();
    assert_eq!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::AdminReset
        }
    );
    enrol(&portal, &clock, &user);
}

pub fn disabling_enforcement_keeps_enrolled_users_challenged(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    enforce(&portal);
    let enrolled = UserId::customer("enrolled");
    let never = UserId::vendor("never-enrolled");
    let (phone, _) = enrol(&portal, &clock, &enrolled);
    portal
        .set_enforcement(&ADMIN, Enforcement::SelfConfigured)
        .go()
        .unwrap();
    assert!(matches!(
        portal.begin_sign_in(&enrolled).go().unwrap(),
        SignInStep::EnterCode { .. }
    ));
    portal.verify_sign_in(&enrolled, &phone.code(&clock)).go().unwrap();
    assert_eq!(portal.begin_sign_in(&never).go().unwrap(), SignInStep::NoMfaNeeded);
    // The admin turns it off for the enrolled user with a reset.
    portal
        .admin_reset(
            &ADMIN,
            &enrolled,
            ResetReason::Other("MFA no longer required".into()),
            ResetMode::RemoveOnly,
        )
        .go()
        .unwrap();
    assert_eq!(portal.begin_sign_in(&enrolled).go().unwrap(), SignInStep::NoMfaNeeded);
}

pub fn grace_period_lets_unenrolled_users_in_until_it_ends(make: &StoreFactory) {
    let (portal, clock) = setup(make);
    let grace = Grace::new(Some(T0 + 3_600), Some(2));
    portal
        .set_enforcement(&ADMIN, Enforcement::Enforced { grace: Some(grace) })
        .go()
        .unwrap();
    let user = UserId::customer("c1");
    let first = SignInStep::GraceSignIn {
        remaining: Some(1),
        until: grace.until,
    };
    // Asking is a pure read (a page reload asks twice); completing spends one.
    assert_eq!(portal.begin_sign_in(&user).go().unwrap(), first);
    assert_eq!(portal.begin_sign_in(&user).go().unwrap(), first);
    assert_eq!(portal.complete_grace_sign_in(&user).go().unwrap(), first);
    let last = SignInStep::GraceSignIn {
        remaining: Some(0),
        until: grace.until,
    };
    assert_eq!(portal.begin_sign_in(&user).go().unwrap(), last);
    assert_eq!(portal.complete_grace_sign_in(&user).go().unwrap(), last);
    assert_eq!(
        portal.begin_sign_in(&user).go().unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced
        }
    );
    assert!(matches!(
        portal.complete_grace_sign_in(&user).go(),
        Err(Error::NotAllowed(PolicyRefusal::NoGraceLeft))
    ));
    let trail = trail_of(&portal, &user);
    assert_eq!(trail.len(), 2, "one event per grace sign-in spent, none for asking");
    // The deadline ends it too: grace holds up to and at `until`, not after.
    let late = UserId::customer("c2");
    clock.set(T0 + 3_600);
    assert!(matches!(
        portal.begin_sign_in(&late).go().unwrap(),
        SignInStep::GraceSignIn { .. }
    ));
    clock.set(T0 + 3_601);
    assert_eq!(
        portal.begin_sign_in(&late).go().unwrap(),
        SignInStep::MustEnrol {
            reason: EnrolReason::PolicyEnforced
        }
    );
    assert!(matches!(
        portal
            .set_enforcement(
                &ADMIN,
                Enforcement::Enforced {
                    grace: Some(Grace::new(None, None))
                }
            )
            .go(),
        Err(Error::InvalidPolicy {
            field: "enforcement.grace",
            ..
        })
    ));
}

pub fn users_hear_about_changes_to_their_factors(make: &StoreFactory) {
    let clock = ManualClock::at(T0);
    let heard: Arc<Mutex<Vec<portal_mfa::AuditEvent>>> = Arc::default();
    let sink = heard.clone();
    let portal =
        portal_on(make(), &clock).with_notifier(move |e: &portal_mfa::AuditEvent| sink.lock().unwrap().push(e.clone()));
    let user = UserId::customer("c1");
    let (_, codes) = enrol(&portal, &clock, &user);
    portal.verify_sign_in(&user, &codes[0]).go().unwrap();
    portal
        .admin_reset(&ADMIN, &user, ResetReason::SecurityIncident, ResetMode::default())
        .go()
        .unwrap();
    let heard = heard.lock().unwrap();
    assert!(matches!(heard[0].kind, EventKind::AuthenticatorAdded { .. }));
    assert!(matches!(heard[1].kind, EventKind::BackupCodeUsed { remaining: 9 }));
    assert!(matches!(heard[2].kind, EventKind::MfaReset { .. }));
    assert_eq!(heard.len(), 3, "sign-ins themselves are not notifications: {heard:?}");
    // Each is an email's worth: to whom, what, when, by whom, and why for the reset.
    let notices: Vec<_> = heard.iter().map(|e| e.notice("Acme Portal").unwrap()).collect();
    for notice in &notices {
        assert_eq!(notice.to, user);
        assert!(notice.subject.starts_with("Acme Portal: "), "{notice:?}");
        assert!(notice.body.contains("When: 2025-11-22 "), "{notice:?}");
    }
    assert!(notices[0].body.contains("\"phone\"") && notices[0].body.contains("By: you"));
    assert!(notices[1].body.contains("9 unused codes are left"));
    assert!(notices[2].body.contains("By: an administrator (admin@acme.example)"));
    assert!(notices[2].body.contains("Why: security incident"));
    // Nothing the user typed or was issued is in a notice.
    let text: String = notices.iter().map(|n| format!("{}{}", n.subject, n.body)).collect();
    assert!(codes.iter().all(|code| !text.contains(code.as_str())));
    // Events a user need not hear about have no notice.
    let trail = trail_of(&portal, &user);
    assert!(
        trail
            .iter()
            .any(|e| matches!(e.kind, EventKind::Verified { .. }) && e.notice("Acme Portal").is_none())
    );
}

/// Instantiates every scenario above as a `#[test]` over the store `$make` builds.
#[macro_export]
macro_rules! seed_flow_tests {
    ($make:ident) => {
        /// Every scenario through `Op::run`.
        mod blocking {
            $crate::seed_flow_tests!(@names $make, Blocking);
        }
        /// Every scenario through `.await` (on a tokio runtime).
        mod nonblocking {
            $crate::seed_flow_tests!(@names $make, Async);
        }
    };
    // Only where `$guard()` says the store is there (it says why not, once).
    ($make:ident, when $guard:path) => {
        mod blocking {
            $crate::seed_flow_tests!(@with_names [@each_when $guard, $make, Blocking]);
        }
        mod nonblocking {
            $crate::seed_flow_tests!(@with_names [@each_when $guard, $make, Async]);
        }
    };
    (@names $make:ident, $executor:ident) => {
        $crate::seed_flow_tests!(@with_names [@each $make, $executor]);
    };
    (@each_when $guard:path, $make:ident, $executor:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if !$guard() {
                    return;
                }
                $crate::flows::set_executor($crate::flows::Executor::$executor);
                $crate::flows::$name(&super::$make)
            }
        )*
    };
    // Calls every scenario on `$make`, in one function body.
    (@run_all $make:ident) => {
        $crate::seed_flow_tests!(@with_names [@call $make])
    };
    (@call $make:ident; $($name:ident),* $(,)?) => {
        $( $crate::flows::$name(&$make); )*
    };
    // The one list of scenarios, handed to `$arm`.
    (@with_names [$($arm:tt)*]) => {
        $crate::seed_flow_tests!($($arm)*;
            mfa_is_off_by_default,
            enforced_mfa_sends_unenrolled_users_to_enrolment_after_password,
            enforcing_is_refused_for_saml_portal,
            vendor_and_customer_share_policy,
            self_configured_user_turns_mfa_on_from_my_account,
            enrolment_works_by_qr_code_or_typed_key,
            enrolment_is_active_only_after_a_valid_code,
            enrolment_expires_after_its_lifetime,
            restarting_enrolment_replaces_the_pending_secret,
            changing_authenticator_keeps_the_old_one_until_the_new_is_confirmed,
            self_configured_user_deletes_authenticator_with_a_fresh_code,
            deleting_the_last_authenticator_is_refused_while_enforced,
            backup_codes_are_issued_once_and_each_works_once,
            sign_in_takes_a_totp_code_or_a_backup_code,
            replayed_code_is_refused,
            regenerating_backup_codes_invalidates_the_old_ones,
            wrong_codes_lock_mfa_with_growing_locks_and_a_success_resets_the_count,
            failures_never_exceed_the_hard_limit,
            admin_reset_forces_reenrolment_without_deleting_user,
            admin_reset_remove_only_lets_self_configured_user_sign_in_without_mfa,
            admin_reset_records_every_reason_the_requests_name,
            locked_out_user_is_recovered_by_admin_reset,
            disabling_enforcement_keeps_enrolled_users_challenged,
            grace_period_lets_unenrolled_users_in_until_it_ends,
            users_hear_about_changes_to_their_factors,
        );
    };
    (@each $make:ident, $executor:ident; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::flows::set_executor($crate::flows::Executor::$executor);
                $crate::flows::$name(&super::$make)
            }
        )*
    };
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("portal-mfa-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The keyring every test portal seals with (a fixed key: tests only).
pub fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new("test-1", &[0x5a; 32]).unwrap())
}

/// Log output kept in memory, to be searched for what must never appear.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `run` with every `tracing` event of the process (every thread, the
/// pools' tasks too) kept, at every level; answers the text logged meanwhile.
/// Without the `tracing` feature nothing of this crate logs: runs `run` and answers "".
pub fn capture_logs(run: impl FnOnce()) -> String {
    #[cfg(feature = "tracing")]
    {
        static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        let logs = LOGS.get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .without_time()
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
            captured
        });
        let start = logs.0.lock().unwrap().len();
        run();
        String::from_utf8_lossy(&logs.0.lock().unwrap()[start..]).into_owned()
    }
    #[cfg(not(feature = "tracing"))]
    {
        run();
        String::new()
    }
}

/// The main example's binary, which `cargo test` builds beside the tests.
pub fn example_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/portal
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    path.pop();
    path.push("examples");
    path.push(format!("portal{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "cargo test builds the examples; missing {}",
        path.display()
    );
    path
}

/// The secrets the main example printed for typing by hand.
pub fn printed_keys(output: &str) -> Vec<Vec<u8>> {
    output
        .lines()
        .filter_map(|l| {
            l.split_once("or type: ")
                .or_else(|| l.split_once("into her new phone: "))
        })
        .map(|(_, key)| portal_mfa::Secret::from_base32(key).unwrap().expose_bytes().to_vec())
        .collect()
}

/// Milliseconds since the Unix epoch: when processes meet.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Runs this test binary's `worker` test in a child process with `env`, its
/// stdout piped back (a test file that calls this has a `worker` test).
pub fn spawn_worker(env: &[(&str, String)]) -> std::process::Child {
    use std::process::{Command, Stdio};
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "worker", "--ignored", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker")
}

/// A worker's `@@ <trial> <verdict>` lines, as (trial, verdict). The test
/// harness writes its own text around them, which is skipped.
pub fn verdicts(stdout: &[u8]) -> Vec<(usize, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let (trial, verdict) = line.strip_prefix("@@ ")?.split_once(' ')?;
            Some((trial.parse().ok()?, verdict.to_owned()))
        })
        .collect()
}

/// Waits for the race workers and counts their verdicts: per trial, how many
/// accepted, and every refusal as (trial, verdict). Each worker must succeed,
/// and every trial be answered `answers` times in all.
pub fn tally(
    children: impl IntoIterator<Item = std::process::Child>,
    trials: usize,
    answers: usize,
) -> (Vec<usize>, Vec<(usize, String)>) {
    let mut accepted = vec![0usize; trials];
    let mut answered = vec![0usize; trials];
    let mut refused = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "worker failed");
        for (trial, verdict) in verdicts(&output.stdout) {
            answered[trial] += 1;
            if verdict == "ok" {
                accepted[trial] += 1;
            } else {
                refused.push((trial, verdict));
            }
        }
    }
    assert!(
        answered.iter().all(|&n| n == answers),
        "every trial answered {answers} times: {answered:?}"
    );
    (accepted, refused)
}
