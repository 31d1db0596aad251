//! The storage contract for async hosts (axum, actix, …): the same operations
//! as [`MfaStore`](super::MfaStore), over the same bytes, as `Send` futures, so
//! a database driver can await its I/O without blocking the executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    Applied, Backend, ChangeFn, Commit, EventQuery, MemoryStore, RecordWrite, Step, StorageError, Stored, StoredEvent,
    Version,
};
use super::{decode_events, decode_stored_policy, stored_events};
use crate::error::Result;
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::stored::encode_policy;

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
    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, Vec<Vec<u8>>>;

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

mod sealed {
    pub trait Sealed {}
}

/// A store the async driver can run on: every [`AsyncMfaStore`], the
/// [`MemoryStore`], and an `Arc` of either. Sealed: implement [`AsyncMfaStore`] instead.
pub trait AsyncBackend: Send + Sync + sealed::Sealed {
    #[doc(hidden)]
    fn run_step(
        &self,
        portal: &PortalId,
        user: &UserId,
        step: &mut dyn Step,
    ) -> impl Future<Output = Result<Applied, StorageError>> + Send;
    #[doc(hidden)]
    fn read_policy(&self, portal: &PortalId) -> impl Future<Output = Result<Option<(PortalPolicy, Version)>>> + Send;
    #[doc(hidden)]
    fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<Commit>> + Send;
    #[doc(hidden)]
    fn read_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<AuditEvent>>> + Send;
}

impl<S: AsyncMfaStore + ?Sized> sealed::Sealed for S {}

impl<S: AsyncMfaStore + ?Sized> AsyncBackend for S {
    async fn run_step(&self, portal: &PortalId, user: &UserId, step: &mut dyn Step) -> Result<Applied, StorageError> {
        self.apply(portal, user, &mut |record, policy| step.on_bytes(record, policy))
            .await
    }

    async fn read_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>> {
        decode_stored_policy(self.load_policy(portal).await?)
    }

    async fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit> {
        Ok(self
            .commit_policy(portal, expected, &encode_policy(policy), &stored_events(events))
            .await?)
    }

    async fn read_events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        decode_events(&self.events(query).await?)
    }
}

impl sealed::Sealed for MemoryStore {}

/// The in-memory store never waits, so its futures are ready at once.
impl AsyncBackend for MemoryStore {
    async fn run_step(&self, portal: &PortalId, user: &UserId, step: &mut dyn Step) -> Result<Applied, StorageError> {
        Backend::run_step(self, portal, user, step)
    }

    async fn read_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>> {
        Backend::read_policy(self, portal)
    }

    async fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit> {
        Backend::write_policy(self, portal, expected, policy, events)
    }

    async fn read_events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        Backend::read_events(self, query)
    }
}

impl<B: AsyncBackend + ?Sized> sealed::Sealed for Arc<B> {}

impl<B: AsyncBackend + ?Sized> AsyncBackend for Arc<B> {
    fn run_step(
        &self,
        portal: &PortalId,
        user: &UserId,
        step: &mut dyn Step,
    ) -> impl Future<Output = Result<Applied, StorageError>> + Send {
        (**self).run_step(portal, user, step)
    }
    fn read_policy(&self, portal: &PortalId) -> impl Future<Output = Result<Option<(PortalPolicy, Version)>>> + Send {
        (**self).read_policy(portal)
    }
    fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<Commit>> + Send {
        (**self).write_policy(portal, expected, policy, events)
    }
    fn read_events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<AuditEvent>>> + Send {
        (**self).read_events(query)
    }
}
