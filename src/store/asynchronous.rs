//! The storage contract for async hosts (axum, actix, …): the same operations
//! as [`MfaStore`], as `Send` futures, so a database driver can await its I/O
//! without blocking the executor.

use std::future::Future;

use super::{Applied, Change, Commit, EventQuery, MemoryStore, MfaStore, StorageError, Version};
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::state::MfaRecord;

/// The async twin of [`MfaStore`]: same contract, same atomicity rules.
///
/// ⚠️ As for [`MfaStore::commit`], a commit must write the record and all its
/// events atomically, and only if the version is still `expected`.
pub trait AsyncMfaStore: Send + Sync {
    /// See [`MfaStore::load`].
    fn load(
        &self,
        portal: &PortalId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<(MfaRecord, Version)>, StorageError>> + Send;

    /// See [`MfaStore::commit`].
    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<Commit, StorageError>> + Send;

    /// See [`MfaStore::load_policy`].
    fn load_policy(
        &self,
        portal: &PortalId,
    ) -> impl Future<Output = Result<Option<(PortalPolicy, Version)>, StorageError>> + Send;

    /// See [`MfaStore::commit_policy`].
    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<Commit, StorageError>> + Send;

    /// See [`MfaStore::events`].
    fn events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<AuditEvent>, StorageError>> + Send;

    /// See [`MfaStore::apply`]; the default loads, runs `change` and commits
    /// with compare-and-swap.
    fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut (dyn FnMut(MfaRecord, Option<PortalPolicy>) -> Change + Send),
    ) -> impl Future<Output = Result<Applied, StorageError>> + Send {
        async move {
            let policy = self.load_policy(portal).await?.map(|(p, _)| p);
            let (record, version) = super::split_loaded(self.load(portal, user).await?);
            let change = change(record, policy);
            if !change.changed {
                return Ok(Applied::Done);
            }
            Ok(self
                .commit(portal, user, version, &change.record, &change.events)
                .await?
                .into())
        }
    }
}

/// The in-memory store never waits, so its futures are ready at once.
impl AsyncMfaStore for MemoryStore {
    async fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<(MfaRecord, Version)>, StorageError> {
        MfaStore::load(self, portal, user)
    }

    async fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        MfaStore::commit(self, portal, user, expected, record, events)
    }

    async fn load_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>, StorageError> {
        MfaStore::load_policy(self, portal)
    }

    async fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        MfaStore::commit_policy(self, portal, expected, policy, events)
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, StorageError> {
        MfaStore::events(self, query)
    }

    async fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut (dyn FnMut(MfaRecord, Option<PortalPolicy>) -> Change + Send),
    ) -> Result<Applied, StorageError> {
        MfaStore::apply(self, portal, user, change)
    }
}

impl<S: AsyncMfaStore + ?Sized> AsyncMfaStore for std::sync::Arc<S> {
    fn load(
        &self,
        portal: &PortalId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<(MfaRecord, Version)>, StorageError>> + Send {
        (**self).load(portal, user)
    }
    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<Commit, StorageError>> + Send {
        (**self).commit(portal, user, expected, record, events)
    }
    fn load_policy(
        &self,
        portal: &PortalId,
    ) -> impl Future<Output = Result<Option<(PortalPolicy, Version)>, StorageError>> + Send {
        (**self).load_policy(portal)
    }
    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<Commit, StorageError>> + Send {
        (**self).commit_policy(portal, expected, policy, events)
    }
    fn events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<AuditEvent>, StorageError>> + Send {
        (**self).events(query)
    }
    fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut (dyn FnMut(MfaRecord, Option<PortalPolicy>) -> Change + Send),
    ) -> impl Future<Output = Result<Applied, StorageError>> + Send {
        (**self).apply(portal, user, change)
    }
}
