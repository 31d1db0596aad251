//! The one shape the driver sees a store in, whichever executor runs it.
//!
//! A [`Backend`] is a borrowed store of one of three kinds: a blocking byte
//! store ([`MfaStore`]), an async byte store ([`AsyncMfaStore`]), or the
//! [`MemoryStore`] (records kept decoded). Each call is an `async fn` with one
//! arm per kind; on a blocking store or the memory store every call is ready
//! at its first poll, which is what lets the blocking executor poll each
//! operation once. The byte conversions (policy, events) live here once.

use std::sync::Arc;

use super::{Applied, AsyncMfaStore, Commit, EventQuery, MemoryStore, MfaStore, RecordWrite, StorageError, Stored};
use super::{EventPosition, RecordSummary, StoredEvent, UserListing, Version};
use crate::error::Result;
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::state::MfaRecord;
use crate::stored::{decode_event, decode_policy, encode_policy};

/// One attempt of a driver operation, run inside a store's atomic call.
pub(crate) trait Step: Send {
    /// On a byte store: decode, run the transition, encode. `None`: nothing to write.
    fn on_bytes(&mut self, record: Option<&Stored>, policy: Option<&Stored>) -> Option<RecordWrite>;
    /// On the memory store: the record itself.
    fn on_live(&mut self, record: MfaRecord, policy: Option<&PortalPolicy>) -> LiveChange;
}

/// What [`Step::on_live`] leaves.
#[derive(Debug)]
pub(crate) struct LiveChange {
    pub(crate) record: MfaRecord,
    pub(crate) changed: bool,
    pub(crate) events: Vec<AuditEvent>,
}

/// A borrowed store, as the driver calls it. `pub` but never exported: that
/// it cannot be named outside the crate is what seals the store traits.
#[allow(unreachable_pub)]
#[derive(Clone, Copy)]
pub enum Backend<'s> {
    /// A blocking byte store.
    Blocking(&'s dyn MfaStore),
    /// An async byte store.
    Async(&'s dyn AsyncMfaStore),
    /// The memory store.
    Memory(&'s MemoryStore),
}

impl<'s> Backend<'s> {
    /// One attempt of `step` in the store's atomic call. A blocking store and
    /// the memory store answer at once (`Ok`), with no future to build or
    /// poll on the hot path; an async store answers with the call to await.
    pub(crate) fn run_step_now(
        self,
        portal: &PortalId,
        user: &UserId,
        step: &mut dyn Step,
    ) -> std::result::Result<Result<Applied, StorageError>, AsyncStep<'s>> {
        match self {
            Backend::Blocking(s) => Ok(s.apply(portal, user, &mut |record, policy| step.on_bytes(record, policy))),
            Backend::Memory(m) => Ok(m.run_step(portal, user, step)),
            Backend::Async(s) => Err(AsyncStep(s)),
        }
    }

    pub(crate) async fn read_policy(self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>> {
        let stored = match self {
            Backend::Blocking(s) => s.load_policy(portal)?,
            Backend::Async(s) => s.load_policy(portal).await?,
            Backend::Memory(m) => return m.read_policy(portal),
        };
        stored.map(|s| Ok((decode_policy(&s.bytes)?, s.version))).transpose()
    }

    pub(crate) async fn write_policy(
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
            Backend::Memory(m) => m.write_policy(portal, expected, policy, events)?,
        })
    }

    /// One page of events (the query's limit already includes the look-ahead one).
    pub(crate) async fn read_events(self, query: &EventQuery) -> Result<Vec<(EventPosition, AuditEvent)>> {
        let stored = match self {
            Backend::Blocking(s) => s.events(query)?,
            Backend::Async(s) => s.events(query).await?,
            Backend::Memory(m) => return Ok(m.read_events(query)?),
        };
        stored
            .iter()
            .map(|(position, bytes)| Ok((*position, decode_event(bytes)?)))
            .collect()
    }

    pub(crate) async fn prune_events(self, portal: &PortalId, before: u64, max: usize) -> Result<usize> {
        Ok(match self {
            Backend::Blocking(s) => s.prune_events(portal, before, max)?,
            Backend::Async(s) => s.prune_events(portal, before, max).await?,
            Backend::Memory(m) => m.prune_events(portal, before, max)?,
        })
    }

    pub(crate) async fn count_events(self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>> {
        Ok(match self {
            Backend::Blocking(s) => s.count_events(portal, from, until)?,
            Backend::Async(s) => s.count_events(portal, from, until).await?,
            Backend::Memory(m) => m.count_events(portal, from, until)?,
        })
    }

    pub(crate) async fn users(self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>> {
        Ok(match self {
            Backend::Blocking(s) => s.users(listing)?,
            Backend::Async(s) => s.users(listing).await?,
            Backend::Memory(m) => m.users(listing)?,
        })
    }

    /// Records in their stored form, for sweeps; the memory store keeps none.
    pub(crate) async fn stored_records(
        self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        match self {
            Backend::Blocking(s) => s.records(portal, after, limit),
            Backend::Async(s) => s.records(portal, after, limit).await,
            Backend::Memory(_) => Ok(Vec::new()),
        }
    }
}

/// A step an async store has yet to run: [`Backend::run_step_now`]'s answer there.
pub(crate) struct AsyncStep<'s>(&'s dyn AsyncMfaStore);

impl AsyncStep<'_> {
    pub(crate) async fn run(
        self,
        portal: &PortalId,
        user: &UserId,
        step: &mut dyn Step,
    ) -> Result<Applied, StorageError> {
        self.0
            .apply(portal, user, &mut |record, policy| step.on_bytes(record, policy))
            .await
    }
}

/// A store an [`Op`](crate::Op) can [`run`](crate::Op::run) on, blocking the
/// calling thread: every [`MfaStore`], the [`MemoryStore`], and an `Arc` of
/// either. Sealed: implement [`MfaStore`] instead.
pub trait BlockingStore: Send + Sync {
    #[doc(hidden)]
    fn blocking(&self) -> Backend<'_>;
}

/// A store an [`Op`](crate::Op) can be `.await`ed on: every
/// [`AsyncMfaStore`], the [`MemoryStore`] (which never waits), and an `Arc` of
/// either. Sealed: implement [`AsyncMfaStore`] instead.
pub trait AsyncStore: Send + Sync {
    #[doc(hidden)]
    fn nonblocking(&self) -> Backend<'_>;
}

/// The store traits are the same four impls apart from the trait and the
/// kind of byte store: a byte store of that kind, it as a trait object, the
/// memory store, and an `Arc` of any of them.
macro_rules! store_for_executor {
    ($store_trait:ident :: $method:ident, $bytes:ident => $variant:ident) => {
        impl<S: $bytes> $store_trait for S {
            fn $method(&self) -> Backend<'_> {
                Backend::$variant(self)
            }
        }

        impl $store_trait for dyn $bytes {
            fn $method(&self) -> Backend<'_> {
                Backend::$variant(self)
            }
        }

        impl $store_trait for MemoryStore {
            fn $method(&self) -> Backend<'_> {
                Backend::Memory(self)
            }
        }

        impl<B: $store_trait + ?Sized> $store_trait for Arc<B> {
            fn $method(&self) -> Backend<'_> {
                (**self).$method()
            }
        }
    };
}

store_for_executor!(BlockingStore::blocking, MfaStore => Blocking);
store_for_executor!(AsyncStore::nonblocking, AsyncMfaStore => Async);
