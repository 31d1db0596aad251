//! Storage: the traits a host implements for its database, and the stores
//! that ship with the crate.
//!
//! The contract is compare-and-swap: [`MfaStore::load`] returns a record with
//! its version; [`MfaStore::commit`] writes the new record **and its audit
//! events together**, and only if the version is still the one loaded. Two app
//! instances racing on one user therefore cannot both accept the same code: one
//! commit wins, the other sees [`Commit::Conflict`], and the driver re-runs its
//! transition on the fresh record (where the step is now used).

#[cfg(feature = "async")]
mod asynchronous;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "async")]
pub use asynchronous::AsyncMfaStore;
pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SCHEMA_VERSION, SqliteStore};

use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::state::MfaRecord;

/// A record's version: changes on every commit.
pub type Version = u64;

/// How a compare-and-swap write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Written; the record now has this version.
    Committed(Version),
    /// Someone else wrote first; nothing was written.
    Conflict,
}

/// A change computed from a user's current record: the next record, whether
/// anything changed, and the events to store with it.
#[derive(Debug)]
pub struct Change {
    /// The record to store.
    pub record: MfaRecord,
    /// Whether to write at all (the record or the trail changed).
    pub changed: bool,
    /// Audit events, written with the record.
    pub events: Vec<AuditEvent>,
}

/// How one [`MfaStore::apply`] attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The change was computed and (if it changed anything) stored.
    Done,
    /// Another writer got there first; nothing was stored. Try again.
    Conflict,
}

impl From<Commit> for Applied {
    fn from(commit: Commit) -> Self {
        match commit {
            Commit::Committed(_) => Applied::Done,
            Commit::Conflict => Applied::Conflict,
        }
    }
}

/// A loaded record and its version, or a fresh record for a user never stored.
pub(crate) fn split_loaded(loaded: Option<(MfaRecord, Version)>) -> (MfaRecord, Option<Version>) {
    match loaded {
        Some((record, version)) => (record, Some(version)),
        None => (MfaRecord::default(), None),
    }
}

/// Which audit events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// The portal.
    pub portal: PortalId,
    /// Only this user's events (portal-wide events have no user).
    pub user: Option<UserId>,
    /// Events at or after this Unix time.
    pub from: Option<u64>,
    /// Events before this Unix time.
    pub until: Option<u64>,
}

impl EventQuery {
    /// Every event of a portal.
    pub fn portal(portal: &PortalId) -> Self {
        Self {
            portal: portal.clone(),
            user: None,
            from: None,
            until: None,
        }
    }

    /// One user's events.
    #[must_use]
    pub fn user(mut self, user: &UserId) -> Self {
        self.user = Some(user.clone());
        self
    }

    /// Events in `[from, until)`.
    #[must_use]
    pub fn between(mut self, from: u64, until: u64) -> Self {
        self.from = Some(from);
        self.until = Some(until);
        self
    }

    /// Whether `event` is selected.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        event.portal == self.portal
            && self.user.as_ref().is_none_or(|u| event.user.as_ref() == Some(u))
            && self.from.is_none_or(|t| event.at >= t)
            && self.until.is_none_or(|t| event.at < t)
    }
}

/// A store of MFA records, portal policies and audit events, for synchronous hosts.
///
/// ⚠️ Implementations must make [`MfaStore::commit`] atomic: the record and
/// every event are written together or not at all, and only if the stored
/// version equals `expected` (`None`: only if there is no record yet). That is
/// what makes replay protection and lockout counting hold across app instances.
pub trait MfaStore: Send + Sync {
    /// The record and its version; `None` if the user never had one.
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<(MfaRecord, Version)>, StorageError>;

    /// Writes `record` and `events` atomically if the version is still `expected`.
    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError>;

    /// The portal's policy and its version; `None` if never saved.
    fn load_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>, StorageError>;

    /// Writes the policy and its events atomically if the version is still `expected`.
    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError>;

    /// Audit events matching `query`, oldest first.
    fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, StorageError>;

    /// Check-and-record in one call: runs `change` on the user's current record
    /// (a fresh one if none) and the portal's stored policy (if any), and stores
    /// the result with its events, atomically.
    ///
    /// The default loads, runs `change`, and commits with compare-and-swap,
    /// answering [`Applied::Conflict`] if another writer came first. A store that
    /// can lock the record (an in-process map, a database transaction) overrides
    /// it to run `change` under that lock and never conflict.
    ///
    /// ⚠️ `change` is pure and fast; an override may call it while holding a
    /// lock, and must call it at most once per attempt.
    fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut dyn FnMut(MfaRecord, Option<PortalPolicy>) -> Change,
    ) -> Result<Applied, StorageError> {
        let policy = self.load_policy(portal)?.map(|(p, _)| p);
        let (record, version) = split_loaded(self.load(portal, user)?);
        let change = change(record, policy);
        if !change.changed {
            return Ok(Applied::Done);
        }
        Ok(self
            .commit(portal, user, version, &change.record, &change.events)?
            .into())
    }
}

impl<S: MfaStore + ?Sized> MfaStore for std::sync::Arc<S> {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<(MfaRecord, Version)>, StorageError> {
        (**self).load(portal, user)
    }
    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        (**self).commit(portal, user, expected, record, events)
    }
    fn load_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>, StorageError> {
        (**self).load_policy(portal)
    }
    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        (**self).commit_policy(portal, expected, policy, events)
    }
    fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, StorageError> {
        (**self).events(query)
    }
    fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut dyn FnMut(MfaRecord, Option<PortalPolicy>) -> Change,
    ) -> Result<Applied, StorageError> {
        (**self).apply(portal, user, change)
    }
}

/// What kind of storage failure happened, so the host can react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The database cannot be reached or opened.
    Unavailable,
    /// Locked by another writer for longer than the store waits; retry later.
    Busy,
    /// The database is read-only.
    ReadOnly,
    /// Stored data is damaged or not ours.
    Corrupt,
    /// Written by a newer version of this crate.
    IncompatibleSchema,
    /// Anything else.
    Other,
}

impl core::fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "the MFA store is unavailable",
            Self::Busy => "the MFA store is busy",
            Self::ReadOnly => "the MFA store is read-only",
            Self::Corrupt => "the MFA store holds damaged or foreign data",
            Self::IncompatibleSchema => "the MFA store was written by a newer version",
            Self::Other => "the MFA store failed",
        })
    }
}

/// A storage failure: its kind and the backend's own error.
///
/// Backend errors never contain secrets from this crate: stores pass secrets
/// only as bound parameters, never inside query text.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct StorageError {
    kind: StorageErrorKind,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure of `kind` caused by the backend's `source`.
    pub fn new(kind: StorageErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// A failure of `kind` with no underlying error.
    pub fn of_kind(kind: StorageErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// The kind.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}
