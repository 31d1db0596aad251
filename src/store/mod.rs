//! Storage: the traits a host implements for its database, and the stores
//! that ship with the crate.
//!
//! A store keeps **bytes**: each user's record in its stored form (secrets
//! sealed, see [`Keyring`](crate::Keyring)) with a version and a small plain
//! [`RecordSummary`], each portal's policy with a version, and the audit events
//! as [`StoredEvent`]s. It never maps a record's fields, so a store for any
//! database is a few dozen lines.
//!
//! The contract is compare-and-swap: [`MfaStore::load`] returns the bytes with
//! their version; [`MfaStore::commit`] writes new bytes, their summary **and
//! their audit events together**, and only if the version is still the one
//! loaded. Two app instances racing on one user therefore cannot both accept
//! the same code: one commit wins, the other sees [`Commit::Conflict`], and the
//! driver re-runs its transition on the fresh record (where the step is now used).

mod asynchronous;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod columns;
pub(crate) mod memory;
#[cfg(feature = "tokio")]
mod off_runtime;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

pub use asynchronous::{AsyncMfaStore, StoreFuture};
pub use memory::MemoryStore;
#[cfg(feature = "tokio")]
pub use off_runtime::OffRuntime;
#[cfg(feature = "postgres")]
pub use postgres::{AsyncPostgresStore, POSTGRES_SCHEMA_VERSION, PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};

// Where the store layer's own code finds them; hosts find them at the root.
pub(crate) use crate::error::{StorageError, StorageErrorKind};
use crate::event::AuditEvent;
pub use crate::event::EventPosition;
pub(crate) use crate::event::EventQuery;
use crate::ids::{PortalId, UserId};
pub use crate::users::{RecordSummary, SummaryFilter, UserListing};

/// A record's version: changes on every commit.
pub type Version = u64;

/// The change [`MfaStore::apply`] runs: given the stored record and the stored
/// policy (if any), the write to make (`None`: nothing to write).
pub type ChangeFn<'a> = dyn FnMut(Option<&Stored>, Option<&Stored>) -> Option<RecordWrite> + Send + 'a;

/// How a compare-and-swap write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Written; the value now has this version.
    Committed(Version),
    /// Someone else wrote first; nothing was written.
    Conflict,
}

/// How one [`MfaStore::apply`] attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The change was computed and (if it wrote anything) stored.
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

/// A stored value (a record or a policy) and its version.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    /// The stored form, as the crate wrote it. Opaque: keep it byte for byte.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: Version,
}

impl core::fmt::Debug for Stored {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Stored {{ {} bytes, version: {} }}", self.bytes.len(), self.version)
    }
}

/// An audit event as a store keeps it: the columns a query filters on, and
/// the event's stored form.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// Unix time of the event.
    pub at: u64,
    /// The user it concerns; `None` for portal-wide events (policy changes).
    pub user: Option<UserId>,
    /// Its kind's stable name ([`EventKind::name`](crate::audit::EventKind::name)), for counting by kind.
    pub kind: &'static str,
    /// The whole event in its stored form. Opaque: keep it byte for byte.
    pub bytes: Vec<u8>,
}

impl StoredEvent {
    /// The stored form of `event`, with its columns: for tools and floors
    /// that write records by hand (see [`RecordWrite::new`]).
    pub fn of(event: &AuditEvent) -> Self {
        Self {
            at: event.at,
            user: event.user.clone(),
            kind: event.kind.name(),
            bytes: crate::stored::encode_event(event),
        }
    }
}

impl core::fmt::Debug for StoredEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoredEvent")
            .field("at", &self.at)
            .field("user", &self.user)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What one commit of a record writes: its bytes, their summary and the audit events.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordWrite {
    /// The record's stored form.
    pub bytes: Vec<u8>,
    /// Its summary, for admin queries.
    pub summary: RecordSummary,
    /// Audit events, written in the same transaction, in this order.
    pub events: Vec<StoredEvent>,
}

impl RecordWrite {
    /// A write of `bytes` (from [`MfaRecord::encode`](crate::record::MfaRecord::encode)) with its summary and
    /// events: for tools that copy records between stores.
    pub fn new(bytes: Vec<u8>, summary: RecordSummary, events: Vec<StoredEvent>) -> Self {
        Self { bytes, summary, events }
    }
}

/// A store of MFA records, portal policies and audit events, as bytes, for
/// synchronous hosts. Implement this for your database; the driver does the
/// encoding, sealing and decoding.
///
/// ⚠️ Implementations must make [`MfaStore::commit`] atomic: the bytes, the
/// summary and every event are written together or not at all, and only if
/// the stored version equals `expected` (`None`: only if there is no record
/// yet). That is what makes replay protection and lockout counting hold across
/// app instances. Events must come back from [`MfaStore::events`] in the order
/// they were committed.
pub trait MfaStore: Send + Sync {
    /// The user's stored record; `None` if the user never had one.
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<Stored>, StorageError>;

    /// Writes `write` atomically if the version is still `expected`; the new
    /// version is `expected + 1` (1 for a first write).
    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError>;

    /// The portal's stored policy; `None` if never saved.
    fn load_policy(&self, portal: &PortalId) -> Result<Option<Stored>, StorageError>;

    /// Writes the policy's bytes and its events atomically if the version is still `expected`.
    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        bytes: &[u8],
        events: &[StoredEvent],
    ) -> Result<Commit, StorageError>;

    /// One page of audit events: up to `query.limit` of those
    /// [`EventQuery::selects`] and [`EventQuery::follows`], in commit order
    /// (newest first when `query.newest_first`), each with its position.
    fn events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError>;

    /// Deletes up to `max` of the portal's oldest events, in commit order,
    /// stopping at the first one at or after `before`: the trail is cut from
    /// its start, never with holes. Answers how many were deleted (fewer
    /// than `max`: nothing older is left to delete).
    ///
    /// ⚠️ Keep each call short (one small transaction): sign-ins wait for it.
    fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError>;

    /// How many of the portal's events of each kind (by
    /// [`EventKind::name`](crate::audit::EventKind::name)) are in `[from, until)`.
    fn count_events(&self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError>;

    /// One page of users with their record summaries: up to `listing.limit`
    /// of those [`UserListing::selects`], in user order.
    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError>;

    /// Up to `limit` of the portal's records in a stable order of the store's
    /// choosing, starting after the user `after` (the last of the previous
    /// page): how a sweep such as [`Portal::reseal`](crate::Portal::reseal)
    /// visits every record once.
    fn records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError>;

    /// The user's stored record and the portal's stored policy, as plain
    /// reads: no lock taken and no writer waited for, since an operation that
    /// only reads (`begin_sign_in`, `record`, …) answers from them and writes
    /// nothing. The default calls [`MfaStore::load`] and
    /// [`MfaStore::load_policy`]; a database may read both in one round trip.
    fn read(&self, portal: &PortalId, user: &UserId) -> Result<(Option<Stored>, Option<Stored>), StorageError> {
        Ok((self.load(portal, user)?, self.load_policy(portal)?))
    }

    /// A key of the store's own to seal records with when the host gives the
    /// portal no [`Keyring`](crate::Keyring): only for a store whose records
    /// end with the process ([`MemoryStore`]), since they could not be opened
    /// after it. `None` (the default): the portal needs the host's keyring.
    fn own_keyring(&self) -> Option<&crate::Keyring> {
        None
    }

    /// Check-and-record in one call: runs `change` on the user's current
    /// stored record and the portal's stored policy, and writes what it
    /// returns (if anything), atomically.
    ///
    /// The default loads, runs `change`, and commits with compare-and-swap,
    /// answering [`Applied::Conflict`] if another writer came first. A store
    /// that can lock the record (a database transaction) may override it to
    /// run `change` under that lock and never conflict.
    ///
    /// ⚠️ `change` is pure and fast; an override may call it while holding a
    /// lock, and must call it at most once per attempt.
    fn apply(&self, portal: &PortalId, user: &UserId, change: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        let policy = self.load_policy(portal)?;
        let current = self.load(portal, user)?;
        let Some(write) = change(current.as_ref(), policy.as_ref()) else {
            return Ok(Applied::Done);
        };
        Ok(self.commit(portal, user, current.map(|c| c.version), &write)?.into())
    }
}

/// A borrowed store, as the driver calls it (its calls are in `portal/op.rs`).
/// `pub` but never exported: that it cannot be named outside the crate is
/// what seals [`BlockingStore`] and [`AsyncStore`].
#[allow(unreachable_pub)]
#[derive(Clone, Copy)]
pub enum Backend<'s> {
    /// A blocking byte store.
    Blocking(&'s dyn MfaStore),
    /// An async byte store.
    Async(&'s dyn AsyncMfaStore),
}

/// A store an [`Op`](crate::Op) can [`run`](crate::Op::run) on, blocking the
/// calling thread: every [`MfaStore`], the [`MemoryStore`], [`OffRuntime`]
/// (feature `tokio`), and an `Arc` of any. Sealed: implement [`MfaStore`] instead.
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

/// The two traits are the same three impls apart from the trait and the kind
/// of byte store: a byte store of that kind, it as a trait object, and an
/// `Arc` of either.
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

        impl<B: $store_trait + ?Sized> $store_trait for std::sync::Arc<B> {
            fn $method(&self) -> Backend<'_> {
                (**self).$method()
            }
        }
    };
}

store_for_executor!(BlockingStore::blocking, MfaStore => Blocking);
store_for_executor!(AsyncStore::nonblocking, AsyncMfaStore => Async);

/// The memory store never waits: awaited, its calls run where they stand.
impl AsyncStore for MemoryStore {
    fn nonblocking(&self) -> Backend<'_> {
        Backend::Blocking(self)
    }
}

#[cfg(feature = "tokio")]
impl<S: MfaStore> BlockingStore for OffRuntime<S> {
    fn blocking(&self) -> Backend<'_> {
        Backend::Blocking(self.get_ref())
    }
}
