//! Where MFA records live: a SQLite file (the default) or a PostgreSQL
//! server, both behind one `Arc<dyn AsyncMfaStore>` so every handler is
//! written once.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use portal_mfa::store::{
    Applied, AsyncMfaStore, ChangeFn, Commit, EventPosition, MfaStore, RecordSummary, RecordWrite, StoreFuture, Stored,
    StoredEvent, UserListing, Version,
};
use portal_mfa::{
    AsyncPostgresStore, EventQuery, Keyring, PortalId, PostgresOptions, SqliteOptions, SqliteStore, StorageError,
    UserId,
};

/// A boxed error for start-up failures (printed, then the process exits).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Which database keeps the MFA records.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file (created if missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL server, by URL or key=value connection string.
    Postgres(String),
}

/// Opens the store, migrating its schema.
pub async fn open(database: &Database) -> Result<Arc<dyn AsyncMfaStore>, StartError> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(OffRuntime(SqliteStore::open_with(path, SqliteOptions::new())?)),
        Database::Postgres(url) => Arc::new(AsyncPostgresStore::connect(url, PostgresOptions::new()).await?),
    })
}

/// The sealing key, read from `path` or created there (mode 0600) on the
/// first run.
///
/// ⚠️ A stand-in for a secret store: a real deployment keeps the key in its
/// secret manager, never beside the database it protects.
pub fn load_or_create_keyring(path: &Path) -> Result<Keyring, StartError> {
    const TAG: &str = "portal-mfa-key";
    if let Ok(text) = std::fs::read_to_string(path) {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let bad = || format!("{}: not a portal-mfa key file", path.display());
        let [tag, id, hex] = fields.as_slice() else {
            return Err(bad().into());
        };
        let key: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<_>>()
            .filter(|_| *tag == TAG)
            .ok_or_else(bad)?;
        return Ok(Keyring::new(id, &zeroize::Zeroizing::new(key))?);
    }
    let key = Keyring::generate_key(&mut rand::rng());
    let id = "web-portal-1";
    let hex = zeroize::Zeroizing::new(key.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)?
        .write_all(format!("{TAG} {id} {}\n", hex.as_str()).as_bytes())?;
    Ok(Keyring::new(id, key.as_slice())?)
}

/// A blocking store served to async handlers: each call runs in
/// `tokio::task::block_in_place`, so the runtime moves its other tasks off
/// this worker while SQLite works (a SQLite call is short: one local
/// transaction).
///
/// ⚠️ Needs tokio's multi-thread runtime (`block_in_place` panics on a
/// current-thread one); `#[tokio::main]` is multi-thread by default.
struct OffRuntime<S>(S);

impl<S: MfaStore> OffRuntime<S> {
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: impl FnOnce(&S) -> Result<T, StorageError> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move { tokio::task::block_in_place(|| call(&self.0)) })
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

    // SQLite's own apply checks and records in one transaction.
    fn apply<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        change: &'a mut ChangeFn<'_>,
    ) -> StoreFuture<'a, Applied> {
        Box::pin(async move { tokio::task::block_in_place(|| self.0.apply(portal, user, change)) })
    }
}
