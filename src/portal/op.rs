//! An operation as a value, the two executors that run it, and the store
//! calls its body makes.
//!
//! Every [`Portal`](crate::Portal) method returns an [`Op`]: the operation
//! written once, as an `async` body that awaits its store calls. The blocking
//! executor, [`Op::run`], polls it once on the calling thread (on a blocking
//! store every call is ready at once); the async executor is `.await` (the
//! body itself, on an async store). Both go through the one retry loop in
//! `driver.rs`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::{Result, StorageError};
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::state::SessionState;
use crate::store::{
    AsyncStore, Backend, BlockingStore, Commit, EventPosition, EventQuery, RecordSummary, Stored, StoredEvent,
    UserListing, Version,
};
use crate::stored::{decode_event, decode_policy, encode_policy, record_sessions};

/// An operation's body once started on an async store: the future `.await` polls.
pub(super) type Body<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Wakes the thread that runs a blocking [`Op::run`].
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// An operation's body, not yet started: either executor can take it.
trait Unstarted<'a, T>: Send {
    /// Runs it on the calling thread, its future pinned on the stack (no allocation).
    fn run(self: Box<Self>, driver: Driver<'a>) -> Result<T>;
    /// Starts it as a future an async runtime polls.
    fn start(self: Box<Self>, driver: Driver<'a>) -> Body<'a, T>;
}

impl<'a, T, F, Fut> Unstarted<'a, T> for F
where
    F: FnOnce(Driver<'a>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<T>> + Send + 'a,
{
    fn run(self: Box<Self>, driver: Driver<'a>) -> Result<T> {
        let mut body = std::pin::pin!((*self)(driver));
        // A blocking store's calls complete before they return and its back-off
        // sleeps the thread, so the body is ready at its first poll, with no
        // waker to make. A body that awaits anything else still completes: the
        // thread parks until that wakes it.
        if let Poll::Ready(answer) = body.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            return answer;
        }
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        loop {
            match body.as_mut().poll(&mut context) {
                Poll::Ready(answer) => return answer,
                Poll::Pending => std::thread::park(),
            }
        }
    }

    fn start(self: Box<Self>, driver: Driver<'a>) -> Body<'a, T> {
        Box::pin((*self)(driver))
    }
}

/// A portal operation on a store `S`, answering `T`, ready to run:
/// [`.run()`](Op::run) it on a blocking store, or `.await` it on an async one
/// (the [`MemoryStore`](crate::store::MemoryStore) does both).
///
/// ```
/// # use portal_mfa::*;
/// # use portal_mfa::store::MemoryStore;
/// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
/// let user = UserId::customer("c-1");
/// // A blocking host:
/// assert!(matches!(portal.begin_sign_in(&user).run()?, SignInStep::NoMfaNeeded { .. }));
/// // An async host (here polled by `pollster`; in a web server, just `.await` it):
/// assert!(matches!(pollster::block_on(async { portal.begin_sign_in(&user).await })?, SignInStep::NoMfaNeeded { .. }));
/// # Ok::<(), portal_mfa::Error>(())
/// ```
///
/// An operation on a blocking store runs with `.run()` (in an async host,
/// serve the store through [`OffRuntime`](crate::store::OffRuntime) instead);
/// awaiting it does not compile:
///
/// ```
/// # use std::sync::Arc;
/// # use portal_mfa::{Portal, UserId, store::MfaStore};
/// fn sign_in(portal: &Portal<Arc<dyn MfaStore>>, user: &UserId) {
///     let _ = portal.begin_sign_in(user).run();
/// }
/// ```
///
/// ```compile_fail
/// # use std::sync::Arc;
/// # use portal_mfa::{Portal, UserId, store::MfaStore};
/// async fn sign_in(portal: &Portal<Arc<dyn MfaStore>>, user: &UserId) {
///     let _ = portal.begin_sign_in(user).await;
/// }
/// ```
#[must_use = "an operation does nothing until it is run: call `.run()` or `.await` it"]
pub struct Op<'a, S: ?Sized, T> {
    store: &'a S,
    body: Box<dyn Unstarted<'a, T> + 'a>,
}

impl<S: ?Sized, T> core::fmt::Debug for Op<'_, S, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Op")
    }
}

/// The store and the way to wait that an executor hands an operation's body.
#[derive(Clone, Copy)]
pub(super) struct Driver<'a> {
    pub(super) backend: Backend<'a>,
    pub(super) pause: Pause,
}

/// How the retry loop waits between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pause {
    /// Sleep the thread (the blocking executor owns it).
    Thread,
    /// Let the task yield (the async executor must not block its runtime).
    Task,
}

impl<'a, S: ?Sized, T> Op<'a, S, T> {
    pub(super) fn new<Fut>(store: &'a S, body: impl FnOnce(Driver<'a>) -> Fut + Send + 'a) -> Self
    where
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Op {
            store,
            body: Box::new(body),
        }
    }
}

impl<S: BlockingStore + ?Sized, T> Op<'_, S, T> {
    /// Runs the operation on the calling thread, blocking it while the store
    /// works and while it backs off from a conflict.
    ///
    /// ⚠️ In an async host, a blocking store (such as
    /// [`SqliteStore`](crate::store::SqliteStore)) must not run on the
    /// runtime's worker threads: serve it through
    /// [`OffRuntime`](crate::store::OffRuntime) and `.await` the operation.
    pub fn run(self) -> Result<T> {
        self.body.run(Driver {
            backend: self.store.blocking(),
            pause: Pause::Thread,
        })
    }
}

impl<'a, S: AsyncStore + ?Sized, T> IntoFuture for Op<'a, S, T> {
    type Output = Result<T>;
    type IntoFuture = Body<'a, T>;

    /// The operation on an async store, waiting by yielding to the runtime
    /// (or through [`Portal::with_async_sleep`](crate::Portal::with_async_sleep)).
    fn into_future(self) -> Body<'a, T> {
        self.body.start(Driver {
            backend: self.store.nonblocking(),
            pause: Pause::Task,
        })
    }
}

/// The store calls an operation's body makes, one arm per kind of store, and
/// their byte conversions (policy, events), once. On a blocking store (the
/// memory store is one) every call is ready at its first poll. (A record's attempt is
/// the retry loop's, in `driver.rs`.)
impl<'s> Backend<'s> {
    pub(super) async fn read_policy(self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>> {
        let stored = match self {
            Backend::Blocking(s) => s.load_policy(portal)?,
            Backend::Async(s) => s.load_policy(portal).await?,
        };
        stored.map(|s| Ok((decode_policy(&s.bytes)?, s.version))).transpose()
    }

    pub(super) async fn write_policy(
        self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit> {
        let bytes = || encode_policy(policy);
        let stored = || events.iter().map(StoredEvent::of).collect::<Vec<_>>();
        Ok(match self {
            Backend::Blocking(s) => s.commit_policy(portal, expected, &bytes(), &stored())?,
            Backend::Async(s) => s.commit_policy(portal, expected, &bytes(), &stored()).await?,
        })
    }

    /// One page of events (the query's limit already includes the look-ahead one).
    pub(super) async fn read_events(self, query: &EventQuery) -> Result<Vec<(EventPosition, AuditEvent)>> {
        let stored = match self {
            Backend::Blocking(s) => s.events(query)?,
            Backend::Async(s) => s.events(query).await?,
        };
        stored
            .iter()
            .map(|(position, bytes)| Ok((*position, decode_event(bytes)?)))
            .collect()
    }

    pub(super) async fn prune_events(self, portal: &PortalId, before: u64, max: usize) -> Result<usize> {
        Ok(match self {
            Backend::Blocking(s) => s.prune_events(portal, before, max)?,
            Backend::Async(s) => s.prune_events(portal, before, max).await?,
        })
    }

    pub(super) async fn count_events(self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>> {
        Ok(match self {
            Backend::Blocking(s) => s.count_events(portal, from, until)?,
            Backend::Async(s) => s.count_events(portal, from, until).await?,
        })
    }

    pub(super) async fn users(self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>> {
        Ok(match self {
            Backend::Blocking(s) => s.users(listing)?,
            Backend::Async(s) => s.users(listing).await?,
        })
    }

    /// What a session check reads of the user's record (its generation, the
    /// browsers it trusts): one read of the record (by primary key in the SQL
    /// stores), no secret opened, no lock taken beyond the read.
    pub(super) async fn session_state(
        self,
        portal: &PortalId,
        user: &UserId,
        with_browsers: bool,
    ) -> Result<SessionState> {
        let stored = match self {
            Backend::Blocking(s) => s.load(portal, user)?,
            Backend::Async(s) => s.load(portal, user).await?,
        };
        stored.map_or(Ok(SessionState::default()), |s| {
            record_sessions(&s.bytes, with_browsers)
        })
    }

    /// The user's stored record and the portal's stored policy, by a plain
    /// read: no lock taken, no writer waited for.
    pub(super) async fn read_record_and_policy(
        self,
        portal: &PortalId,
        user: &UserId,
    ) -> Result<(Option<Stored>, Option<Stored>)> {
        Ok(match self {
            Backend::Blocking(s) => s.read(portal, user)?,
            Backend::Async(s) => s.read(portal, user).await?,
        })
    }

    /// The key the store seals under when the host gave no keyring (the memory store's).
    pub(super) fn own_keyring(self) -> Option<&'s crate::keyring::Keyring> {
        match self {
            Backend::Blocking(s) => s.own_keyring(),
            Backend::Async(_) => None,
        }
    }

    /// Records in their stored form, for sweeps.
    pub(super) async fn stored_records(
        self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        match self {
            Backend::Blocking(s) => s.records(portal, after, limit),
            Backend::Async(s) => s.records(portal, after, limit).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pending once (waking its waker from another thread), then ready.
    struct Elsewhere(bool);

    impl Future for Elsewhere {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            let waker = cx.waker().clone();
            std::thread::spawn(move || waker.wake());
            Poll::Pending
        }
    }

    #[test]
    fn a_body_that_awaits_something_besides_the_store_still_runs_to_its_end() {
        let store = crate::store::MemoryStore::new();
        let op: Op<'_, _, u32> = Op::new(&store, |_driver| async {
            Elsewhere(false).await;
            Elsewhere(false).await;
            Ok(7)
        });
        assert_eq!(op.run().unwrap(), 7);
    }
}
