//! An operation as a value, and the two executors that run it.
//!
//! Every [`Portal`](crate::Portal) method returns an [`Op`]: the operation
//! written once, as an `async` body that awaits its store calls. The blocking
//! executor, [`Op::run`], polls it once on the calling thread (on a blocking
//! store every call is ready at once); the async executor is `.await` (the
//! body itself, on an async store). Both go through the one retry loop.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::task::{Context, Poll, Waker};

use crate::error::Result;
use crate::store::{AsyncStore, Backend, BlockingStore};

/// A portal operation, ready to run: [`.run()`](Op::run) it on a blocking
/// store, or `.await` it on an async one (the [`MemoryStore`](crate::MemoryStore)
/// does both).
///
/// ```
/// # use portal_mfa::*;
/// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", MemoryStore::new())?;
/// let user = UserId::customer("c-1");
/// // A blocking host:
/// assert_eq!(portal.begin_sign_in(&user).run()?, SignInStep::NoMfaNeeded);
/// // An async host (here polled by `pollster`; in a web server, just `.await` it):
/// assert_eq!(pollster::block_on(async { portal.begin_sign_in(&user).await })?, SignInStep::NoMfaNeeded);
/// # Ok::<(), portal_mfa::Error>(())
/// ```
///
/// An operation on a blocking store runs with `.run()` (in an async host, on
/// the runtime's blocking pool); awaiting it does not compile:
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
pub struct Op<'a, W> {
    work: W,
    lifetime: PhantomData<&'a ()>,
}

impl<W> core::fmt::Debug for Op<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Op")
    }
}

/// What an [`Op`] does: its store and its answer. Only the crate implements it.
pub trait Work<'a>: Send {
    /// The store the operation runs on.
    type Store: ?Sized + 'a;
    /// What the operation answers.
    type Output;
    /// The operation's body, as the async executor awaits it.
    type Future: Future<Output = Result<Self::Output>> + Send + 'a;

    #[doc(hidden)]
    fn store(&self) -> &'a Self::Store;

    #[doc(hidden)]
    fn start(self, driver: Driver<'a>) -> Self::Future;
}

/// The store and the way to wait that an executor hands an operation's body.
/// `pub` but never exported: that it cannot be named outside the crate is what
/// keeps [`Work`] implemented by the crate alone.
#[allow(unreachable_pub)]
#[derive(Clone, Copy)]
pub struct Driver<'a> {
    pub(crate) backend: Backend<'a>,
    pub(crate) pause: Pause,
}

/// How the retry loop waits between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pause {
    /// Sleep the thread (the blocking executor owns it).
    Thread,
    /// Let the task yield (the async executor must not block its runtime).
    Task,
}

/// The one [`Work`]: a store and the body to run on it.
pub(crate) struct Job<'a, S: ?Sized, F> {
    store: &'a S,
    body: F,
}

impl<'a, S, F, Fut, T> Work<'a> for Job<'a, S, F>
where
    S: ?Sized + Sync + 'a,
    F: FnOnce(Driver<'a>) -> Fut + Send,
    Fut: Future<Output = Result<T>> + Send + 'a,
{
    type Store = S;
    type Output = T;
    type Future = Fut;

    fn store(&self) -> &'a S {
        self.store
    }

    fn start(self, driver: Driver<'a>) -> Fut {
        (self.body)(driver)
    }
}

impl<'a, S: ?Sized, F> Job<'a, S, F> {
    pub(crate) fn op(store: &'a S, body: F) -> Op<'a, Self> {
        Op {
            work: Job { store, body },
            lifetime: PhantomData,
        }
    }
}

impl<'a, W: Work<'a>> Op<'a, W>
where
    W::Store: BlockingStore,
{
    /// Runs the operation on the calling thread, blocking it while the store
    /// works and while it backs off from a conflict.
    ///
    /// ⚠️ In an async host, a blocking store (such as
    /// [`SqliteStore`](crate::SqliteStore)) must be run off the runtime's
    /// worker threads, e.g. inside `tokio::task::spawn_blocking`; see the
    /// README's "Async hosts".
    pub fn run(self) -> Result<W::Output> {
        let driver = Driver {
            backend: self.work.store().blocking(),
            pause: Pause::Thread,
        };
        let mut body = std::pin::pin!(self.work.start(driver));
        match body.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => answer,
            Poll::Pending => unreachable!(
                "a blocking store's calls complete before they return, and its back-off sleeps the thread, \
                 so the body is ready at its first poll"
            ),
        }
    }
}

impl<'a, W: Work<'a>> IntoFuture for Op<'a, W>
where
    W::Store: AsyncStore,
{
    type Output = Result<W::Output>;
    type IntoFuture = W::Future;

    /// The operation on an async store, waiting by yielding to the runtime
    /// (or through [`Portal::with_async_sleep`](crate::Portal::with_async_sleep)).
    fn into_future(self) -> W::Future {
        let driver = Driver {
            backend: self.work.store().nonblocking(),
            pause: Pause::Task,
        };
        self.work.start(driver)
    }
}
