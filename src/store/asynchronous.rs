//! The storage contract for async hosts (axum, actix, …): the same operations
//! as [`MfaStore`](super::MfaStore), over the same bytes, as `Send` futures, so
//! a database driver can await its I/O without blocking the executor.

use std::future::Future;
use std::pin::Pin;

use super::{
    Applied, ChangeFn, Commit, EventPosition, EventQuery, RecordSummary, RecordWrite, StorageError, Stored,
    StoredEvent, UserListing, Version,
};
use crate::ids::{PortalId, UserId};

/// What [`AsyncMfaStore`] methods return: a boxed `Send` future, so the
/// trait can be used as `Arc<dyn AsyncMfaStore>`. Write a method as
/// `Box::pin(async move { … })`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// The async twin of [`MfaStore`](super::MfaStore): same contract, same
/// atomicity rules, usable as a trait object (`Arc<dyn AsyncMfaStore>`).
///
/// ⚠️ As for [`MfaStore::commit`](super::MfaStore::commit), a commit must write
/// the bytes, the summary and all the events atomically, and only if the
/// version is still `expected`.
pub trait AsyncMfaStore: Send + Sync {
    /// See [`MfaStore::load`](super::MfaStore::load).
    fn load<'a>(&'a self, portal: &'a PortalId, user: &'a UserId) -> StoreFuture<'a, Option<Stored>>;

    /// See [`MfaStore::commit`](super::MfaStore::commit).
    fn commit<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        expected: Option<Version>,
        write: &'a RecordWrite,
    ) -> StoreFuture<'a, Commit>;

    /// See [`MfaStore::load_policy`](super::MfaStore::load_policy).
    fn load_policy<'a>(&'a self, portal: &'a PortalId) -> StoreFuture<'a, Option<Stored>>;

    /// See [`MfaStore::commit_policy`](super::MfaStore::commit_policy).
    fn commit_policy<'a>(
        &'a self,
        portal: &'a PortalId,
        expected: Option<Version>,
        bytes: &'a [u8],
        events: &'a [StoredEvent],
    ) -> StoreFuture<'a, Commit>;

    /// See [`MfaStore::events`](super::MfaStore::events).
    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, Vec<(EventPosition, Vec<u8>)>>;

    /// See [`MfaStore::prune_events`](super::MfaStore::prune_events).
    fn prune_events<'a>(&'a self, portal: &'a PortalId, before: u64, max: usize) -> StoreFuture<'a, usize>;

    /// See [`MfaStore::count_events`](super::MfaStore::count_events).
    fn count_events<'a>(&'a self, portal: &'a PortalId, from: u64, until: u64) -> StoreFuture<'a, Vec<(String, u64)>>;

    /// See [`MfaStore::users`](super::MfaStore::users).
    fn users<'a>(&'a self, listing: &'a UserListing) -> StoreFuture<'a, Vec<(UserId, RecordSummary)>>;

    /// See [`MfaStore::records`](super::MfaStore::records).
    fn records<'a>(
        &'a self,
        portal: &'a PortalId,
        after: Option<&'a UserId>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(UserId, Stored)>>;

    /// See [`MfaStore::read`](super::MfaStore::read); the default loads the two.
    fn read<'a>(&'a self, portal: &'a PortalId, user: &'a UserId) -> StoreFuture<'a, (Option<Stored>, Option<Stored>)> {
        Box::pin(async move { Ok((self.load(portal, user).await?, self.load_policy(portal).await?)) })
    }

    /// See [`MfaStore::apply`](super::MfaStore::apply); the default loads, runs
    /// `change` and commits with compare-and-swap.
    fn apply<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        change: &'a mut ChangeFn<'_>,
    ) -> StoreFuture<'a, Applied> {
        Box::pin(async move {
            let policy = self.load_policy(portal).await?;
            let current = self.load(portal, user).await?;
            let Some(write) = change(current.as_ref(), policy.as_ref()) else {
                return Ok(Applied::Done);
            };
            Ok(self
                .commit(portal, user, current.map(|c| c.version), &write)
                .await?
                .into())
        })
    }
}
