//! What the [`Portal`](crate::Portal) driver runs against: every [`MfaStore`]
//! (bytes, sealed secrets) and the [`MemoryStore`] (records kept decoded, since
//! it never writes bytes anywhere).

use std::sync::Arc;

use super::{Applied, Commit, EventQuery, MemoryStore, MfaStore, RecordWrite, StorageError, Stored, Version};
use super::{decode_events, decode_stored_policy, stored_events};
use crate::error::Result;
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::state::MfaRecord;
use crate::stored::encode_policy;

mod sealed {
    pub trait Sealed {}
}

/// One attempt of a driver operation, run inside a store's atomic call.
#[doc(hidden)]
pub trait Step: Send {
    /// On a byte store: decode, run the transition, encode. `None`: nothing to write.
    fn on_bytes(&mut self, record: Option<&Stored>, policy: Option<&Stored>) -> Option<RecordWrite>;
    /// On the memory store: the record itself.
    fn on_live(&mut self, record: MfaRecord, policy: Option<PortalPolicy>) -> LiveChange;
}

/// What [`Step::on_live`] leaves.
#[doc(hidden)]
#[derive(Debug)]
pub struct LiveChange {
    pub record: MfaRecord,
    pub changed: bool,
    pub events: Vec<AuditEvent>,
}

/// A store the driver can run on: every [`MfaStore`], the [`MemoryStore`], and
/// an `Arc` of either. Sealed: implement [`MfaStore`] instead.
pub trait Backend: Send + Sync + sealed::Sealed {
    #[doc(hidden)]
    fn run_step(&self, portal: &PortalId, user: &UserId, step: &mut dyn Step) -> Result<Applied, StorageError>;
    #[doc(hidden)]
    fn read_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>>;
    #[doc(hidden)]
    fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit>;
    #[doc(hidden)]
    fn read_events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>>;
    /// Records in their stored form, for sweeps; the memory store has none.
    #[doc(hidden)]
    fn stored_records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError>;
}

impl<S: MfaStore + ?Sized> sealed::Sealed for S {}

impl<S: MfaStore + ?Sized> Backend for S {
    fn run_step(&self, portal: &PortalId, user: &UserId, step: &mut dyn Step) -> Result<Applied, StorageError> {
        self.apply(portal, user, &mut |record, policy| step.on_bytes(record, policy))
    }

    fn read_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>> {
        decode_stored_policy(self.load_policy(portal)?)
    }

    fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit> {
        Ok(self.commit_policy(portal, expected, &encode_policy(policy), &stored_events(events))?)
    }

    fn read_events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        decode_events(&self.events(query)?)
    }

    fn stored_records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        self.records(portal, after, limit)
    }
}

impl sealed::Sealed for MemoryStore {}

impl<B: Backend + ?Sized> sealed::Sealed for Arc<B> {}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn run_step(&self, portal: &PortalId, user: &UserId, step: &mut dyn Step) -> Result<Applied, StorageError> {
        (**self).run_step(portal, user, step)
    }
    fn read_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>> {
        (**self).read_policy(portal)
    }
    fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit> {
        (**self).write_policy(portal, expected, policy, events)
    }
    fn read_events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        (**self).read_events(query)
    }
    fn stored_records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        (**self).stored_records(portal, after, limit)
    }
}
