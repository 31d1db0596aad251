//! [`PostgresStore`]: the async store, driven by a runtime of its own for blocking hosts.

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{NoTls, Socket};

use super::{AsyncPostgresStore, PostgresOptions};
use crate::ids::{PortalId, UserId};
use crate::store::{
    Applied, AsyncMfaStore, ChangeFn, Commit, EventPosition, EventQuery, MfaStore, RecordSummary, RecordWrite,
    StorageError, StorageErrorKind, Stored, StoredEvent, UserListing, Version,
};

/// MFA records, policies and the audit trail in PostgreSQL, for blocking hosts:
/// an [`AsyncPostgresStore`] (same statements, same pool) whose calls run on a
/// single-threaded tokio runtime the store owns, on the calling thread.
///
/// ⚠️ Each call blocks the calling thread on the network. In async code use
/// [`AsyncPostgresStore`]. Called on a thread that is running a tokio runtime
/// anyway (where blocking on a second runtime is forbidden), a call runs on a
/// short-lived thread of its own and blocks the caller meanwhile: it works,
/// slowly, and starves the caller's runtime under load.
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct PostgresStore {
    store: AsyncPostgresStore,
    // `Option` only so that `Drop` can shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

impl core::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("PostgresStore").field(&self.store).finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or
    /// `key=value` pairs; a Unix socket as `host=/run/postgresql`) without TLS,
    /// and creates or migrates the tables.
    ///
    /// Errors say which case it is: [`StorageErrorKind::InvalidConfig`] (a
    /// malformed URL), [`StorageErrorKind::Unavailable`] (no server there),
    /// [`StorageErrorKind::AccessDenied`] (user or password refused),
    /// [`StorageErrorKind::MissingDatabase`], [`StorageErrorKind::IncompatibleSchema`]
    /// (a newer version's tables), [`StorageErrorKind::Corrupt`] (tables with our
    /// names that are not ours).
    pub fn connect(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        Self::connect_tls(url, NoTls, options)
    }

    /// [`PostgresStore::connect`] with a TLS connector (from
    /// `postgres-native-tls` or `postgres-openssl`).
    pub fn connect_tls<T>(url: &str, tls: T, options: PostgresOptions) -> Result<Self, StorageError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                StorageError::new(StorageErrorKind::Other, e).because("the store's runtime could not start")
            })?;
        let store = on(&runtime, AsyncPostgresStore::connect_tls(url, tls, options))?;
        Ok(Self {
            store,
            runtime: Some(runtime),
        })
    }

    /// The schema version the tables are at.
    pub fn schema_version(&self) -> Result<i32, StorageError> {
        self.block_on(self.store.schema_version())
    }

    fn block_on<T: Send>(&self, call: impl Future<Output = Result<T, StorageError>> + Send) -> Result<T, StorageError> {
        match &self.runtime {
            Some(runtime) => on(runtime, call),
            None => unreachable!("the runtime is taken only when the store is dropped"),
        }
    }
}

/// Runs `call` on `runtime`, on this thread; on a thread already running a
/// runtime (where tokio forbids blocking on another), on a scoped thread.
fn on<T: Send>(
    runtime: &tokio::runtime::Runtime,
    call: impl Future<Output = Result<T, StorageError>> + Send,
) -> Result<T, StorageError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(call);
    }
    std::thread::scope(|scope| match scope.spawn(|| runtime.block_on(call)).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl Drop for PostgresStore {
    /// Without waiting: the store may be dropped inside an async task, where a blocking shutdown panics.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl MfaStore for PostgresStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<Stored>, StorageError> {
        self.block_on(self.store.load(portal, user))
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        self.block_on(self.store.commit(portal, user, expected, write))
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<Stored>, StorageError> {
        self.block_on(self.store.load_policy(portal))
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        bytes: &[u8],
        events: &[StoredEvent],
    ) -> Result<Commit, StorageError> {
        self.block_on(self.store.commit_policy(portal, expected, bytes, events))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        self.block_on(self.store.events(query))
    }

    fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        self.block_on(self.store.prune_events(portal, before, max))
    }

    fn count_events(&self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
        self.block_on(self.store.count_events(portal, from, until))
    }

    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        self.block_on(self.store.users(listing))
    }

    fn records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        self.block_on(self.store.records(portal, after, limit))
    }

    /// [`AsyncPostgresStore`]'s: one round trip reads the policy and the
    /// record, `change` runs with no lock held, and one statement writes the
    /// record and its events if the version is still the one read.
    fn read(&self, portal: &PortalId, user: &UserId) -> Result<(Option<Stored>, Option<Stored>), StorageError> {
        self.block_on(self.store.read(portal, user))
    }

    fn apply(&self, portal: &PortalId, user: &UserId, change: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        self.block_on(self.store.apply(portal, user, change))
    }
}
