//! The test harness: the stores (memory, compare-and-swap, SQLite,
//! PostgreSQL), the two executors, the user's phone and the clock. The
//! product documents' flows are in [`scenarios`], run on every store and
//! executor; helpers for tests that run processes are in [`process`].

#![allow(dead_code, unreachable_pub)]

pub mod change_race;
pub mod kv;
#[cfg(feature = "webauthn")]
pub mod passkeys;
pub mod patience;
pub mod recovery;
#[cfg(feature = "webauthn")]
pub mod soft_key;
#[macro_use]
pub mod pg;
pub mod process;
pub mod scenarios;
pub mod sessions;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use portal_mfa::audit::{AuditEvent, EventQuery};
use portal_mfa::otp::{OtpAuthUri, Secret, Totp, TotpParams};
use portal_mfa::store::{
    Applied, AsyncStore, BlockingStore, ChangeFn, Commit, EventPosition, MemoryStore, MfaStore, OffRuntime,
    RecordSummary, RecordWrite, Stored, StoredEvent, UserListing, Version,
};
use portal_mfa::{Admin, EnrolmentOptions, Error, Keyring, ManualClock, Op, Portal, PortalId, StorageError, UserId};
use rand::SeedableRng;
use rand::rngs::StdRng;

// Each test binary uses a part of the harness.
#[allow(unused_imports)]
pub use patience::{PATIENCE, wait_for, wait_until};
#[allow(unused_imports)]
pub use process::*;

/// The body of an `MfaStore` impl that hands the named methods to
/// `self.$inner` unchanged: the test stores below differ only in a few.
macro_rules! forward_store {
    ($inner:ident; $($method:ident),* $(,)?) => { $( forward_store!(@ $inner $method); )* };
    (@ $inner:ident load) => {
        fn load(&self, p: &PortalId, u: &UserId) -> Result<Option<Stored>, StorageError> {
            self.$inner.load(p, u)
        }
    };
    (@ $inner:ident commit) => {
        fn commit(&self, p: &PortalId, u: &UserId, v: Option<Version>, w: &RecordWrite) -> Result<Commit, StorageError> {
            self.$inner.commit(p, u, v, w)
        }
    };
    (@ $inner:ident load_policy) => {
        fn load_policy(&self, p: &PortalId) -> Result<Option<Stored>, StorageError> {
            self.$inner.load_policy(p)
        }
    };
    (@ $inner:ident commit_policy) => {
        fn commit_policy(&self, p: &PortalId, v: Option<Version>, b: &[u8], e: &[StoredEvent]) -> Result<Commit, StorageError> {
            self.$inner.commit_policy(p, v, b, e)
        }
    };
    (@ $inner:ident events) => {
        fn events(&self, q: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
            self.$inner.events(q)
        }
    };
    (@ $inner:ident prune_events) => {
        fn prune_events(&self, p: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
            self.$inner.prune_events(p, before, max)
        }
    };
    (@ $inner:ident count_events) => {
        fn count_events(&self, p: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
            self.$inner.count_events(p, from, until)
        }
    };
    (@ $inner:ident users) => {
        fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
            self.$inner.users(listing)
        }
    };
    (@ $inner:ident records) => {
        fn records(&self, p: &PortalId, a: Option<&UserId>, l: usize) -> Result<Vec<(UserId, Stored)>, StorageError> {
            self.$inner.records(p, a, l)
        }
    };
    (@ $inner:ident apply) => {
        fn apply(&self, p: &PortalId, u: &UserId, c: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
            self.$inner.apply(p, u, c)
        }
    };
}

/// A store both executors can run on: the memory store, or a byte store
/// served to async code through [`OffRuntime`].
pub trait TestStore: BlockingStore + AsyncStore {}
impl<T: BlockingStore + AsyncStore + ?Sized> TestStore for T {}

pub type StoreFactory = dyn Fn() -> Arc<dyn TestStore>;
pub type TestPortal = Portal<Arc<dyn TestStore>, ManualClock, StdRng>;

/// The in-memory store.
pub fn memory() -> Arc<dyn TestStore> {
    Arc::new(MemoryStore::new())
}

/// A byte store: blocking as itself, async through [`OffRuntime`].
pub fn bytes<S: MfaStore + 'static>(store: impl Into<Arc<S>>) -> Arc<dyn TestStore> {
    Arc::new(OffRuntime::new(Faulty::new(store)))
}

/// [`bytes`], owning the temporary directory the store's files live in.
pub fn bytes_in<S: MfaStore + 'static>(store: S, dir: TempDir) -> Arc<dyn TestStore> {
    Arc::new(OffRuntime::new(Faulty {
        dir: Some(dir),
        ..Faulty::new(store)
    }))
}

/// The compare-and-swap store, with faults to inject (as a test store: `Arc<dyn TestStore>` coerces from it).
pub fn faulty_kv() -> Arc<OffRuntime<Faulty<kv::KvStore>>> {
    Arc::new(OffRuntime::new(Faulty::new(kv::KvStore::default())))
}

/// Every store, through every executor: `(label, executor, store)`, the store fresh.
#[cfg(feature = "sqlite")]
pub fn each_store_and_executor(run: impl Fn(&str, Executor, Arc<dyn TestStore>)) {
    for executor in [Executor::Blocking, Executor::Async] {
        let dir = TempDir::new("stores");
        let sqlite = portal_mfa::store::SqliteStore::open_with(
            dir.file("mfa.db"),
            portal_mfa::store::SqliteOptions::new().busy_timeout(PATIENCE),
        )
        .unwrap();
        #[allow(unused_mut)]
        let mut stores: Vec<(&str, Arc<dyn TestStore>)> = vec![
            ("locking apply", memory()),
            ("compare-and-swap", bytes(kv::KvStore::default())),
            ("sqlite", bytes_in(sqlite, dir)),
        ];
        #[cfg(feature = "postgres")]
        if let Some(pair) = pair() {
            stores.push(("postgres", pair));
        }
        for (kind, store) in stores {
            run(&format!("{kind} ({executor:?})"), executor, store);
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

/// Which executor runs a test's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// `Op::run`, on the calling thread.
    Blocking,
    /// `.await`, on the tokio [`runtime`].
    Async,
}

/// Runs an operation on an executor: `op.go(executor)`.
pub trait Go {
    type Output;
    fn go(self, executor: Executor) -> Result<Self::Output, Error>;
}

impl<S: TestStore + ?Sized, T> Go for Op<'_, S, T> {
    type Output = T;

    fn go(self, executor: Executor) -> Result<T, Error> {
        match executor {
            Executor::Blocking => self.run(),
            Executor::Async => runtime().block_on(std::future::IntoFuture::into_future(self)),
        }
    }
}

/// A byte store with faults a test can inject: commits it loses as if another
/// writer had come first, and a count of the event pages read.
pub struct Faulty<S: ?Sized> {
    /// Commits to lose before the next one wins (for tests of the retry loop).
    pub conflicts: AtomicU32,
    /// Pages of events read so far.
    pub event_reads: AtomicU32,
    /// The temporary directory the store's files live in, removed with it.
    pub dir: Option<TempDir>,
    pub store: Arc<S>,
}

impl<S> Faulty<S> {
    pub fn new(store: impl Into<Arc<S>>) -> Self {
        Self {
            conflicts: AtomicU32::new(0),
            event_reads: AtomicU32::new(0),
            dir: None,
            store: store.into(),
        }
    }
}

impl<S: ?Sized> Faulty<S> {
    /// Whether this commit loses to an injected writer.
    fn loses(&self) -> bool {
        self.conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl<S: MfaStore + ?Sized> MfaStore for Faulty<S> {
    forward_store!(store; load, load_policy, commit_policy, prune_events, count_events, users, records);

    fn commit(&self, p: &PortalId, u: &UserId, v: Option<Version>, w: &RecordWrite) -> Result<Commit, StorageError> {
        if self.loses() {
            return Ok(Commit::Conflict);
        }
        self.store.commit(p, u, v, w)
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        self.event_reads.fetch_add(1, Ordering::SeqCst);
        self.store.events(q)
    }

    fn apply(&self, p: &PortalId, u: &UserId, c: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        if self.loses() {
            return Ok(Applied::Conflict);
        }
        self.store.apply(p, u, c)
    }
}

#[cfg(feature = "postgres")]
#[allow(unused_imports)]
pub use postgres_pair::{PgPair, pair};

#[cfg(feature = "postgres")]
mod postgres_pair {
    use portal_mfa::store::{AsyncMfaStore, AsyncPostgresStore, PostgresOptions, PostgresStore, StoreFuture};

    use super::*;

    /// Both PostgreSQL stores on one fresh schema: the blocking executor runs on
    /// [`PostgresStore`], the async one on [`AsyncPostgresStore`].
    pub struct PgPair {
        pub sync: PostgresStore,
        pub nonblocking: AsyncPostgresStore,
        pub schema: String,
    }

    impl PgPair {
        /// Both stores on a fresh schema of `server`.
        pub fn new(server: &pg::PgServer, options: PostgresOptions) -> Self {
            Self::open(server.url(), &pg::unique_name("s"), options)
        }

        /// Both stores on `schema` at `url`.
        pub fn open(url: &str, schema: &str, options: PostgresOptions) -> Self {
            let options = options.schema(schema);
            let sync = PostgresStore::connect(url, options.clone()).expect("connect the blocking store");
            let nonblocking = runtime()
                .block_on(AsyncPostgresStore::connect(url, options))
                .expect("connect the async store");
            Self {
                sync,
                nonblocking,
                schema: schema.to_owned(),
            }
        }
    }

    /// Both stores on a fresh schema of the shared server, as a test store; `None` without a server.
    pub fn pair() -> Option<Arc<PgPair>> {
        pg::shared().map(|server| Arc::new(PgPair::new(server, PostgresOptions::new())))
    }

    impl MfaStore for PgPair {
        forward_store!(sync; load, commit, load_policy, commit_policy, events, prune_events, count_events, users, records, apply);
    }

    impl AsyncMfaStore for PgPair {
        forward_async_store!(nonblocking; load, commit, load_policy, commit_policy, events, prune_events, count_events, users, records, apply);
    }
}

pub const T0: u64 = 1_763_800_000;
/// The admin every test portal trusts (authorised by the "host", the test).
pub static ADMIN: std::sync::LazyLock<Admin> = std::sync::LazyLock::new(|| Admin::authorised("admin@acme.example"));

pub fn portal_on(store: Arc<dyn TestStore>, clock: &ManualClock) -> TestPortal {
    Portal::new(PortalId::new("acme-portal"), "Acme Portal", store)
        .unwrap()
        .with_keyring(keyring())
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(42))
        .with_passkeys_if_built()
}

/// Test portals take passkeys whenever the crate is built with them.
pub trait WithPasskeys {
    fn with_passkeys_if_built(self) -> Self;
}

impl WithPasskeys for TestPortal {
    #[cfg(feature = "webauthn")]
    fn with_passkeys_if_built(self) -> Self {
        self.with_passkeys(passkeys::rp())
    }
    #[cfg(not(feature = "webauthn"))]
    fn with_passkeys_if_built(self) -> Self {
        self
    }
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

    /// The app holding `secret` with the standard parameters (for an imported authenticator).
    pub fn with_secret(secret: &Secret) -> Self {
        Self(Totp::new(secret, TotpParams::standard()))
    }

    /// The code the app shows now. When it shows the same digits as one step
    /// earlier, the person waits for the next code (the clock moves on): the
    /// portal would refuse the repeat as already used, whichever step it was
    /// typed at, so a long run of sign-ins would hit that at some step.
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

/// Notes each of `codes` as issued.
pub fn issued_all<'a>(codes: impl Iterator<Item = &'a str>) {
    codes.for_each(issued);
}

pub fn issued(secret: &str) {
    ISSUED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(secret.to_owned());
}

/// Enrols `user` from scratch; returns their phone and backup codes. Leaves the clock on the next step.
pub fn enrol(ex: Executor, portal: &TestPortal, clock: &ManualClock, user: &UserId) -> (Phone, Vec<String>) {
    let (phone, codes, _) = enrol_signed_in(ex, portal, clock, user);
    (phone, codes)
}

/// [`enrol`], answering also the session the confirming code signed in.
pub fn enrol_signed_in(
    ex: Executor,
    portal: &TestPortal,
    clock: &ManualClock,
    user: &UserId,
) -> (Phone, Vec<String>, portal_mfa::SessionStamp) {
    let session = password_step(ex, portal, user);
    let phone = start_enrolment_with(ex, portal, user, &session);
    let confirmed = portal
        .confirm_enrolment(user, &session, &phone.code(clock))
        .go(ex)
        .unwrap();
    let codes: Vec<String> = confirmed
        .backup_codes
        .map(|c| c.expose().map(str::to_owned).collect())
        .unwrap_or_default();
    codes.iter().for_each(|c| issued(c));
    clock.advance(30);
    (phone, codes, confirmed.session)
}

/// The stamp the password step gives a user with no second factor to give:
/// the session of one without MFA, the enrolment stamp of one who must
/// enrol, or a grace sign-in's (spending one). Panics for a user a code is asked of.
pub fn password_step(ex: Executor, portal: &TestPortal, user: &UserId) -> portal_mfa::SessionStamp {
    use portal_mfa::SignInStep;
    match portal.begin_sign_in(user).go(ex).unwrap() {
        SignInStep::NoMfaNeeded { session } | SignInStep::MustEnrol { session, .. } => session,
        SignInStep::GraceSignIn { .. } => portal.complete_grace_sign_in(user).go(ex).unwrap().session,
        other => panic!("{user:?}: the password step asks for {other:?}"),
    }
}

/// A signed-in session of `user`, who has MFA: a code from `phone` now (the clock then moves on a step).
pub fn signed_in(
    ex: Executor,
    portal: &TestPortal,
    clock: &ManualClock,
    user: &UserId,
    phone: &Phone,
) -> portal_mfa::SessionStamp {
    let session = portal.verify_sign_in(user, &phone.code(clock)).go(ex).unwrap().session;
    clock.advance(30);
    session
}

/// Starts `user`'s enrolment (label "phone") at the password step; answers the phone that scanned its QR code.
pub fn start_enrolment(ex: Executor, portal: &TestPortal, user: &UserId) -> Phone {
    let session = password_step(ex, portal, user);
    start_enrolment_with(ex, portal, user, &session)
}

/// Starts `user`'s enrolment (label "phone") for `session`.
pub fn start_enrolment_with(
    ex: Executor,
    portal: &TestPortal,
    user: &UserId,
    session: &portal_mfa::SessionStamp,
) -> Phone {
    let started = portal
        .start_enrolment(user, session, user.id(), "phone", EnrolmentOptions::default())
        .go(ex)
        .unwrap();
    Phone::scan(&started.uri)
}

/// One user's audit trail, oldest first.
/// A user's whole trail, oldest first, read in pages of 3 both ways: every
/// scenario thereby checks that paging either way sees the same events.
pub fn trail_of(ex: Executor, portal: &TestPortal, user: &UserId) -> Vec<AuditEvent> {
    let query = EventQuery::portal(portal.id()).user(user).limit(3);
    let oldest_first = all_pages(ex, portal, query.clone());
    let mut newest_first = all_pages(ex, portal, query.newest_first());
    newest_first.reverse();
    assert_eq!(
        oldest_first, newest_first,
        "paging oldest first and newest first disagree"
    );
    oldest_first
}

/// Every page of `query`, in order.
pub fn all_pages(ex: Executor, portal: &TestPortal, query: EventQuery) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    let mut next = Some(query.clone());
    while let Some(query) = next.take() {
        let page = portal.audit_events(query.clone()).go(ex).unwrap();
        assert!(page.items.len() <= query.limit);
        events.extend(page.items);
        next = page.next.map(|cursor| query.after(cursor));
    }
    events
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
