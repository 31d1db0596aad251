//! PostgreSQL, for hosts that run many app instances on one database server.
//!
//! One store, [`AsyncPostgresStore`], over `tokio-postgres` with a
//! `deadpool-postgres` pool (yours, if you pass one), and the statements it
//! sends ([`sql`]); [`PostgresStore`] is the same store driven by a runtime
//! of its own, for blocking hosts.
//!
//! The store creates and migrates its tables when built: versioned migrations,
//! recorded in `portal_mfa_schema`, run under an advisory lock, so app instances
//! starting together on an empty database migrate it once. Tables are named
//! `portal_mfa_…`, in the schema you name ([`PostgresOptions::schema`]) or the
//! connection's current one.
//!
//! **How one code is accepted once.** A commit is one statement that updates
//! the record only where its version is still the one read (compare-and-swap)
//! and writes its audit events in the same statement, so the record, its summary
//! columns and its events are written together or not at all. Two instances
//! racing on one user: one statement updates the row, the other finds the
//! version moved, writes nothing, and the driver re-runs the transition on the
//! fresh record, where the step is now used. No lock is held between the read
//! and the write, so nothing waits on the host. (Measured against locking the
//! row with `SELECT … FOR UPDATE` for the whole attempt: see `guide::performance`'s
//! PostgreSQL figures.) A serialization failure or a deadlock, which a server
//! configured for `SERIALIZABLE` may report, is answered as a conflict, so the
//! driver retries it the same way.
//!
//! **Audit reads.** Events come back in commit order. A portal-wide page shows
//! an event once every transaction that started before it has ended, so a page
//! never skips an event that commits later; a transaction left open elsewhere on
//! the server delays the newest events of portal-wide pages (never loses them).
//!
//! **Errors.** Every failure is a [`StorageError`] whose kind says what
//! happened: [`Unavailable`](StorageErrorKind::Unavailable) (the server could not
//! be reached, is restarting, or the connection was lost mid-call:
//! [`StorageError::is_connection_lost`]), [`AccessDenied`](StorageErrorKind::AccessDenied)
//! (user or password refused), [`MissingDatabase`](StorageErrorKind::MissingDatabase),
//! [`InvalidConfig`](StorageErrorKind::InvalidConfig) (a malformed URL),
//! [`ReadOnly`](StorageErrorKind::ReadOnly), [`Timeout`](StorageErrorKind::Timeout)
//! (`statement_timeout`), [`IncompatibleSchema`](StorageErrorKind::IncompatibleSchema)
//! (a newer version's tables) and [`Corrupt`](StorageErrorKind::Corrupt) (tables
//! with our names that this crate did not create). No error and no log line
//! carries the password.

mod blocking;
mod nonblocking;
mod sql;

use std::time::Duration;

pub use blocking::PostgresStore;
pub use nonblocking::AsyncPostgresStore;
use tokio_postgres::error::SqlState;

use super::{StorageError, StorageErrorKind};
pub use sql::SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION;
use sql::Sql;

/// How a PostgreSQL store connects and where its tables live.
#[derive(Debug, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct PostgresOptions {
    schema: Option<String>,
    max_connections: usize,
    connect_timeout: Duration,
    statement_timeout: Option<Duration>,
    read_standby: Option<StandbyUrl>,
}

/// A standby's connection string, which may hold a password: never printed.
#[derive(Clone)]
struct StandbyUrl(String);

impl core::fmt::Debug for StandbyUrl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StandbyUrl(..)")
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresOptions {
    /// The defaults: the connection's current schema, up to 16 connections, 5 s
    /// to connect (and to wait for a free connection), the server's own
    /// `statement_timeout`.
    pub fn new() -> Self {
        Self {
            schema: None,
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: None,
            read_standby: None,
        }
    }

    /// Keep the tables in this schema (created if missing), not the
    /// connection's current one: several portals' data, or a test's, apart.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// At most this many connections in the store's pool (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to try to connect, and to wait for a free connection, before
    /// answering [`StorageErrorKind::Unavailable`] or [`StorageErrorKind::Busy`].
    ///
    /// Connections are made when a call first needs one, so on a busy machine
    /// (many app instances starting at once, a loaded server, a starved CPU)
    /// the first calls of a new store may spend most of this budget
    /// connecting. A call that runs out of it sent nothing, so nothing can be
    /// half-done: its error is [`StorageError::is_retryable`], and the host
    /// may retry it after a short pause or answer "try again shortly". Raise
    /// the timeout where a slow start is normal (a burst of processes on one
    /// small machine); lower it where a fast "unavailable" matters more.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Cancel any statement that runs longer than this (PostgreSQL's
    /// `statement_timeout` for the store's connections), answering
    /// [`StorageErrorKind::Timeout`]. A sign-in waits at most this long for a
    /// row another transaction holds.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Send the admin's reads, [`Portal::users`](crate::Portal::users),
    /// [`Portal::audit_events`](crate::Portal::audit_events) and
    /// [`Portal::event_counts`](crate::Portal::event_counts), to a read-only
    /// standby at `url` (a pool of its own, as large as the primary's), so
    /// that a busy admin console does not load the primary. Every other call
    /// (each sign-in, enrolment, reset and policy read) stays on the primary.
    ///
    /// ⚠️ A standby shows the state as of the WAL it has applied: an admin
    /// may not yet see a change that just committed (with `synchronous_commit
    /// = remote_apply` on the primary, a change is applied there before its
    /// commit returns). A portal-wide audit page on a standby holds back
    /// events newer than the oldest transaction still open on the primary,
    /// so it never skips one. If the standby is down, these reads answer
    /// [`StorageErrorKind::Unavailable`]; sign-ins go on.
    pub fn read_standby(mut self, url: impl Into<String>) -> Self {
        self.read_standby = Some(StandbyUrl(url.into()));
        self
    }

    /// The connection configuration for `url` (a `postgres://` URL or
    /// `key=value` pairs) with these options applied.
    fn config(&self, url: &str) -> Result<tokio_postgres::Config, StorageError> {
        // The parser's message may quote the URL, password included: say only what is wrong.
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            StorageError::of_kind(StorageErrorKind::InvalidConfig)
                .because("the connection URL is not a valid postgres:// URL or key=value list")
        })?;
        config.connect_timeout(self.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("portal-mfa");
        }
        if let Some(timeout) = self.statement_timeout {
            let ms = timeout.as_millis().max(1);
            let options = match config.get_options() {
                Some(given) => format!("{given} -c statement_timeout={ms}"),
                None => format!("-c statement_timeout={ms}"),
            };
            config.options(options);
        }
        Ok(config)
    }

    fn sql(&self) -> Result<Sql, StorageError> {
        if let Some(name) = &self.schema
            && (name.is_empty() || name.len() > 63 || name.contains('\0'))
        {
            return Err(StorageError::of_kind(StorageErrorKind::InvalidConfig)
                .because("a schema name has 1 to 63 bytes and no NUL"));
        }
        Ok(Sql::new(self.schema.as_deref()))
    }
}

/// The migrations that bring schema version `found` to this build's, each
/// one statement batch (none when it is current).
fn migrations_from(sql: &Sql, found: i32) -> Result<Vec<String>, StorageError> {
    match found {
        v if v > sql::SCHEMA_VERSION => Err(StorageError::new(
            StorageErrorKind::IncompatibleSchema,
            format!("schema version {v}; this build reads up to {}", sql::SCHEMA_VERSION),
        )),
        v if v < 0 => Err(StorageError::of_kind(StorageErrorKind::Corrupt).because("a negative schema version")),
        v => Ok((v..sql::SCHEMA_VERSION).map(|from| sql.migration(from)).collect()),
    }
}

/// Our table names in the schema before migrating: either none, or the schema
/// table among them. Tables with our names and no schema table are someone else's.
fn check_tables(tables: &[String]) -> Result<bool, StorageError> {
    let has_schema_table = tables.iter().any(|t| t == "portal_mfa_schema");
    if !has_schema_table && !tables.is_empty() {
        return Err(StorageError::new(
            StorageErrorKind::Corrupt,
            format!(
                "the schema holds {} named like portal-mfa's but no portal_mfa_schema table: not created by portal-mfa",
                tables.join(", ")
            ),
        ));
    }
    Ok(has_schema_table)
}

/// PostgreSQL 13 brought the 64-bit transaction ids events are ordered by.
fn check_server(version_num: i32) -> Result<(), StorageError> {
    if version_num < 130_000 {
        return Err(StorageError::new(
            StorageErrorKind::InvalidConfig,
            format!(
                "PostgreSQL {} is too old; portal-mfa needs 13 or newer",
                version_num / 10_000
            ),
        ));
    }
    Ok(())
}

/// A foreign `portal_mfa_schema` (no `version` column) fails its first read.
fn foreign_schema_table(error: StorageError) -> StorageError {
    if error.kind() == StorageErrorKind::Corrupt {
        StorageError::of_kind(StorageErrorKind::Corrupt)
            .because("a table named portal_mfa_schema exists but was not created by portal-mfa")
    } else {
        error
    }
}

/// Maps the driver's errors onto what a host can act on. The password never
/// reaches an error: the server's messages name the user at most, and a
/// malformed URL is reported without its text.
fn storage(error: tokio_postgres::Error) -> StorageError {
    use StorageErrorKind as K;
    if let Some(code) = error.code() {
        let (kind, detail, lost) = match code {
            c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => (
                K::Busy,
                "a serialization failure or deadlock; nothing was written",
                false,
            ),
            c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
                (K::ReadOnly, "the server or the role only allows reading", false)
            }
            c if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                (K::AccessDenied, "the server refused the user name or password", false)
            }
            c if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                (K::AccessDenied, "the role lacks a privilege this needs", false)
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => (
                K::MissingDatabase,
                "the database named in the URL does not exist",
                false,
            ),
            c if *c == SqlState::QUERY_CANCELED => (K::Timeout, "a statement ran past statement_timeout", false),
            c if *c == SqlState::LOCK_NOT_AVAILABLE => (K::Busy, "a lock was not granted within lock_timeout", false),
            c if *c == SqlState::TOO_MANY_CONNECTIONS => (K::Busy, "the server has no connection slot free", false),
            c if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN => (
                K::Unavailable,
                "the server ended the connection (shutdown or restart)",
                true,
            ),
            c if *c == SqlState::CANNOT_CONNECT_NOW => (K::Unavailable, "the server is starting or stopping", false),
            c if *c == SqlState::IDLE_SESSION_TIMEOUT || *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => {
                (K::Unavailable, "the server closed an idle connection", true)
            }
            c if c.code().starts_with("08") => (K::Unavailable, "the connection failed", true),
            c if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
                (K::Unavailable, "the server is out of disk or memory", false)
            }
            c if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *c == SqlState::UNTRANSLATABLE_CHARACTER => (
                K::Other,
                "a portal or user id holds a character PostgreSQL text cannot (NUL)",
                false,
            ),
            c if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::UNDEFINED_COLUMN => (
                K::Corrupt,
                "portal-mfa's tables are missing or not as it created them",
                false,
            ),
            _ => (K::Other, "the server refused a statement", false),
        };
        let error = StorageError::new(kind, error).because(detail);
        return if lost { error.lost_connection() } else { error };
    }
    // The driver's own error kinds are private; their messages are stable and name them.
    let text = error.to_string();
    match text.as_str() {
        "invalid connection string" | "invalid configuration" => {
            StorageError::of_kind(K::InvalidConfig).because("the connection configuration is not usable")
        }
        "error connecting to server" => {
            StorageError::new(K::Unavailable, error).because("the server could not be reached")
        }
        // A connect that timed out is the pool's create timeout by another road: the same answer.
        "timeout waiting for server" => {
            StorageError::new(K::Unavailable, error).because("the server did not answer within connect_timeout")
        }
        "connection closed" | "error communicating with the server" => StorageError::new(K::Unavailable, error)
            .because("the connection to the server was lost")
            .lost_connection(),
        "authentication error" => StorageError::new(K::AccessDenied, error).because("authentication failed"),
        _ => StorageError::new(K::Other, error),
    }
}

/// A failed commit that wrote nothing and may simply be run again: the driver
/// treats it as a lost compare-and-swap.
fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

fn corrupt(why: &'static str) -> StorageError {
    StorageError::of_kind(StorageErrorKind::Corrupt).because(why)
}

fn unsigned(value: i64, why: &'static str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| corrupt(why))
}
