//! [`OffRuntime`]: a blocking store served to async code.

use super::{
    Applied, AsyncMfaStore, ChangeFn, Commit, EventPosition, EventQuery, MfaStore, RecordSummary, RecordWrite,
    StorageError, StoreFuture, Stored, StoredEvent, UserListing, Version,
};
use crate::ids::{PortalId, UserId};

/// A blocking store (such as [`SqliteStore`](crate::store::SqliteStore), or your
/// own [`MfaStore`]) for async hosts on tokio: each call leaves the runtime's
/// worker thread for the blocking pool while it runs
/// (`tokio::task::block_in_place`), so the worker's other tasks move on
/// meanwhile. It is also still a blocking store: `.run()` works on it too.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use portal_mfa::{Portal, PortalId, SignInStep, UserId, store::{OffRuntime, SqliteStore}};
///
/// # fn main() -> Result<(), portal_mfa::Error> {
/// # let dir = std::env::temp_dir().join(format!("portal-mfa-doc-off-runtime-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let store = OffRuntime::new(SqliteStore::open(dir.join("mfa.db"))?);
/// let portal = Portal::new(PortalId::new("acme"), "Acme Portal", store)?;
/// let runtime = tokio::runtime::Builder::new_multi_thread().build().unwrap();
/// let step = runtime.block_on(async { portal.begin_sign_in(&UserId::customer("c-1")).await })?;
/// assert!(matches!(step, SignInStep::NoMfaNeeded { .. }));
/// # drop(portal); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// # main().unwrap(); }
/// ```
///
/// ⚠️ On tokio's current-thread runtime, or outside any runtime, a call runs in
/// place and blocks that thread until the store answers (tokio cannot move
/// tasks off a current-thread runtime's only thread): host it on the
/// multi-thread runtime (`#[tokio::main]`'s default), or keep each call short.
#[derive(Debug, Default, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct OffRuntime<S>(S);

impl<S: MfaStore> OffRuntime<S> {
    /// Serves `store` to async code.
    pub fn new(store: S) -> Self {
        Self(store)
    }

    /// The blocking store.
    pub fn get_ref(&self) -> &S {
        &self.0
    }

    fn call<'a, T: Send + 'a>(
        &'a self,
        call: impl FnOnce(&S) -> Result<T, StorageError> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                tokio::task::block_in_place(|| call(&self.0))
            } else {
                call(&self.0)
            }
        })
    }
}

impl<S: MfaStore> AsyncMfaStore for OffRuntime<S> {
    fn load<'a>(&'a self, portal: &'a PortalId, user: &'a UserId) -> StoreFuture<'a, Option<Stored>> {
        self.call(move |s| s.load(portal, user))
    }

    fn commit<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        expected: Option<Version>,
        write: &'a RecordWrite,
    ) -> StoreFuture<'a, Commit> {
        self.call(move |s| s.commit(portal, user, expected, write))
    }

    fn load_policy<'a>(&'a self, portal: &'a PortalId) -> StoreFuture<'a, Option<Stored>> {
        self.call(move |s| s.load_policy(portal))
    }

    fn commit_policy<'a>(
        &'a self,
        portal: &'a PortalId,
        expected: Option<Version>,
        bytes: &'a [u8],
        events: &'a [StoredEvent],
    ) -> StoreFuture<'a, Commit> {
        self.call(move |s| s.commit_policy(portal, expected, bytes, events))
    }

    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, Vec<(EventPosition, Vec<u8>)>> {
        self.call(move |s| s.events(query))
    }

    fn prune_events<'a>(&'a self, portal: &'a PortalId, before: u64, max: usize) -> StoreFuture<'a, usize> {
        self.call(move |s| s.prune_events(portal, before, max))
    }

    fn count_events<'a>(&'a self, portal: &'a PortalId, from: u64, until: u64) -> StoreFuture<'a, Vec<(String, u64)>> {
        self.call(move |s| s.count_events(portal, from, until))
    }

    fn users<'a>(&'a self, listing: &'a UserListing) -> StoreFuture<'a, Vec<(UserId, RecordSummary)>> {
        self.call(move |s| s.users(listing))
    }

    fn records<'a>(
        &'a self,
        portal: &'a PortalId,
        after: Option<&'a UserId>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(UserId, Stored)>> {
        self.call(move |s| s.records(portal, after, limit))
    }

    fn read<'a>(&'a self, portal: &'a PortalId, user: &'a UserId) -> StoreFuture<'a, (Option<Stored>, Option<Stored>)> {
        self.call(move |s| s.read(portal, user))
    }

    /// The blocking store's own `apply` (SQLite's checks and records in one transaction).
    fn apply<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        change: &'a mut ChangeFn<'_>,
    ) -> StoreFuture<'a, Applied> {
        self.call(move |s| s.apply(portal, user, change))
    }
}
