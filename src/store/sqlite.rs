//! The embedded default store: one SQLite database file, no server.
//!
//! - The schema is created and migrated by the store (table `portal_mfa_schema`
//!   holds its version); a file written by a newer version is refused.
//! - WAL journal; `synchronous=NORMAL` by default: a committed sign-in survives
//!   a crash of the process, and a power cut may lose the last few commits
//!   (choose [`SqliteStore::with_full_sync`] to fsync every commit).
//! - A record and its audit events are written in one transaction. `apply`
//!   runs the transition inside `BEGIN IMMEDIATE`, so two processes on one file
//!   take turns and can never both accept one code; `commit` checks the version
//!   (compare-and-swap) for hosts that drive the store themselves.
//! - Secrets are bound parameters, never part of SQL text or error messages.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{Applied, Change, Commit, EventQuery, MfaStore, StorageError, StorageErrorKind, Version};
use crate::backup::BackupCodes;
use crate::error::Error;
use crate::event::{Actor, AuditEvent, EventKind, Factor, RemovalCause, ResetMode, ResetReason};
use crate::ids::{AuthenticatorId, PortalId, UserId, UserKind};
use crate::otp::{Algorithm, Digits, Secret, TotpParams, Window};
use crate::policy::{Enforcement, Grace, LockoutRule, PortalPolicy, SignInMethod};
use crate::state::{AuthenticatorParts, MfaRecord, PendingParts, RecordParts, ResetRecord};

/// The schema this version writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Each entry migrates from the previous version to the next.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE portal_mfa_policies (
    portal TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    enforced INTEGER NOT NULL,
    grace_until INTEGER,
    grace_sign_ins INTEGER,
    sign_in TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    digits INTEGER NOT NULL,
    period INTEGER NOT NULL,
    t0 INTEGER NOT NULL,
    window_past INTEGER NOT NULL,
    window_future INTEGER NOT NULL,
    max_failures INTEGER NOT NULL,
    first_lock INTEGER NOT NULL,
    longest_lock INTEGER NOT NULL,
    enrolment_lifetime INTEGER NOT NULL,
    backup_codes INTEGER NOT NULL,
    backup_low_at INTEGER NOT NULL
) STRICT;
CREATE TABLE portal_mfa_records (
    portal TEXT NOT NULL,
    user_kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    must_enrol INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    locks INTEGER NOT NULL,
    locked_until INTEGER,
    grace_used INTEGER NOT NULL,
    next_authenticator INTEGER NOT NULL,
    backup_salt BLOB,
    backup_hashes BLOB,
    backup_used INTEGER NOT NULL,
    reset_by TEXT,
    reset_reason TEXT,
    reset_note TEXT,
    reset_at INTEGER,
    PRIMARY KEY (portal, user_kind, user_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE portal_mfa_authenticators (
    portal TEXT NOT NULL,
    user_kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    label TEXT NOT NULL,
    secret BLOB NOT NULL,
    algorithm TEXT NOT NULL,
    digits INTEGER NOT NULL,
    period INTEGER NOT NULL,
    t0 INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    last_used_step INTEGER,
    expires_at INTEGER,
    replaces INTEGER,
    PRIMARY KEY (portal, user_kind, user_id, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE portal_mfa_events (
    portal TEXT NOT NULL,
    user_kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    n INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    admin TEXT,
    kind TEXT NOT NULL,
    n1 INTEGER,
    n2 INTEGER,
    n3 INTEGER,
    text TEXT,
    note TEXT,
    PRIMARY KEY (portal, user_kind, user_id, version, n)
) STRICT, WITHOUT ROWID;
CREATE INDEX portal_mfa_events_by_time ON portal_mfa_events (portal, at);
"#];

/// MFA records, policies and the audit trail in one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrating its schema.
    ///
    /// Errors: [`StorageErrorKind::Corrupt`] for a damaged or non-SQLite file,
    /// [`StorageErrorKind::IncompatibleSchema`] for a file from a newer version,
    /// [`StorageErrorKind::ReadOnly`] when the file cannot be written,
    /// [`StorageErrorKind::Busy`] when another writer holds it too long.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::setup(Connection::open_with_flags(path, flags).map_err(storage)?)
    }

    /// A private in-memory database (for tests): same schema and SQL, no file.
    pub fn open_in_memory() -> Result<Self, StorageError> {
        Self::setup(Connection::open_in_memory().map_err(storage)?)
    }

    /// fsyncs every commit: survives power loss, at the cost of speed.
    pub fn with_full_sync(self) -> Result<Self, StorageError> {
        self.conn()?
            .pragma_update(None, "synchronous", "FULL")
            .map_err(storage)?;
        Ok(self)
    }

    /// How long to wait for another writer (default 5 s) before answering
    /// [`StorageErrorKind::Busy`].
    pub fn with_busy_timeout(self, timeout: Duration) -> Result<Self, StorageError> {
        self.conn()?.busy_timeout(timeout).map_err(storage)?;
        Ok(self)
    }

    fn setup(mut conn: Connection) -> Result<Self, StorageError> {
        conn.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
        // For a new file only (ignored once it has content): every commit writes whole pages to
        // the WAL, and a sign-in touches about five; 2 KiB pages halve those bytes and still
        // hold a record row without overflow pages.
        conn.pragma_update(None, "page_size", 2048).map_err(storage)?;
        // Reading the header is the first touch of the file: a foreign or damaged file fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(storage)?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(StorageError::new(
                StorageErrorKind::Unavailable,
                format!("journal mode {mode}, not WAL"),
            ));
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(storage)?;
        // Checkpoint every ~40 MB of WAL rather than 4 MB: sign-ins rewrite the same few
        // pages, so a rarer checkpoint copies (and fsyncs) far less per commit.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(storage)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(storage)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(storage)?;
        migrate(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StorageError> {
        self.conn
            .lock()
            .map_err(|_| StorageError::of_kind(StorageErrorKind::Unavailable))
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StorageError> {
        self.conn()?
            .query_row("SELECT version FROM portal_mfa_schema", [], |r| r.get(0))
            .map_err(storage)
    }

    /// Runs SQLite's own consistency check; `Ok(())` when the file is sound.
    pub fn check_integrity(&self) -> Result<(), StorageError> {
        let verdict: String = self
            .conn()?
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(storage)?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StorageError::new(StorageErrorKind::Corrupt, verdict))
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(storage)?;
    let has_schema_table: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'portal_mfa_schema'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(storage)?
        > 0;
    let current: i64 = if has_schema_table {
        tx.query_row("SELECT version FROM portal_mfa_schema", [], |r| r.get(0))
            .map_err(storage)?
    } else {
        let ours: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'portal_mfa_%'",
                [],
                |r| r.get(0),
            )
            .map_err(storage)?;
        if ours > 0 {
            return Err(StorageError::new(
                StorageErrorKind::Corrupt,
                "portal-mfa tables without a schema version",
            ));
        }
        tx.execute_batch("CREATE TABLE portal_mfa_schema (version INTEGER NOT NULL) STRICT; INSERT INTO portal_mfa_schema VALUES (0);")
            .map_err(storage)?;
        0
    };
    if current > SCHEMA_VERSION {
        return Err(StorageError::new(
            StorageErrorKind::IncompatibleSchema,
            format!("schema version {current}; this build reads up to {SCHEMA_VERSION}"),
        ));
    }
    if current < 0 {
        return Err(StorageError::new(StorageErrorKind::Corrupt, "negative schema version"));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(storage)?;
        tx.execute("UPDATE portal_mfa_schema SET version = ?1", [index as i64 + 1])
            .map_err(storage)?;
    }
    tx.commit().map_err(storage)
}

/// Maps SQLite's errors onto what a host can act on.
fn storage(error: rusqlite::Error) -> StorageError {
    use rusqlite::ErrorCode as C;
    let kind = match &error {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            C::DatabaseBusy | C::DatabaseLocked => StorageErrorKind::Busy,
            C::ReadOnly => StorageErrorKind::ReadOnly,
            C::NotADatabase | C::DatabaseCorrupt => StorageErrorKind::Corrupt,
            C::CannotOpen | C::PermissionDenied | C::SystemIoFailure | C::DiskFull => StorageErrorKind::Unavailable,
            _ => StorageErrorKind::Other,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StorageErrorKind::Corrupt,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(kind, error)
}

fn corrupt(why: &'static str) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, why)
}

fn from_record_error(error: Error) -> StorageError {
    match error {
        Error::CorruptRecord(why) => corrupt(why),
        other => StorageError::new(StorageErrorKind::Corrupt, other.to_string()),
    }
}

// u64 values are stored bit for bit in SQLite's signed 64-bit integers.
fn int(value: u64) -> i64 {
    value as i64
}

fn uint(value: i64) -> u64 {
    value as u64
}

/// A query bound on a stored time: past `i64::MAX` seconds the bit-for-bit
/// mapping would wrap negative, so bounds are clamped instead.
fn time_bound(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

fn small<T: TryFrom<i64>>(value: i64) -> Result<T, StorageError> {
    T::try_from(value).map_err(|_| corrupt("a stored number is out of range"))
}

// ----------------------------------------------------------------- policies

fn read_policy(tx: &Connection, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>, StorageError> {
    let row = tx
        .prepare_cached(
            "SELECT version, enforced, grace_until, grace_sign_ins, sign_in, algorithm, digits, period, t0,
                    window_past, window_future, max_failures, first_lock, longest_lock, enrolment_lifetime,
                    backup_codes, backup_low_at
             FROM portal_mfa_policies WHERE portal = ?1",
        )
        .map_err(storage)?
        .query_row([portal.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                [r.get::<_, i64>(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
                [
                    r.get::<_, i64>(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                    r.get(15)?,
                    r.get(16)?,
                ],
            ))
        })
        .optional()
        .map_err(storage)?;
    let Some((version, enforced, grace_until, grace_sign_ins, sign_in, algorithm, otp, rules)) = row else {
        return Ok(None);
    };
    let [digits, period, t0, past, future] = otp;
    let [
        max_failures,
        first_lock,
        longest_lock,
        lifetime,
        backup_codes,
        backup_low_at,
    ] = rules;
    let params = TotpParams::new(
        Algorithm::from_uri_name(&algorithm).ok_or_else(|| corrupt("unknown algorithm"))?,
        Digits::new(small(digits)?).ok_or_else(|| corrupt("digits out of range"))?,
        uint(period),
    )
    .map_err(from_record_error)?
    .with_t0(uint(t0));
    let enforcement = stored_enforcement(enforced, grace_until, grace_sign_ins)?;
    let policy = PortalPolicy::new()
        .with_sign_in_method(sign_in_method(&sign_in)?)
        .and_then(|p| p.with_enforcement(enforcement))
        .map(|p| p.with_otp(params))
        .and_then(|p| Ok(p.with_window(Window::new(small(past)?, small(future)?)?)))
        .and_then(|p| {
            Ok(p.with_lockout(LockoutRule::new(
                small(max_failures)?,
                uint(first_lock),
                uint(longest_lock),
            )?))
        })
        .and_then(|p| p.with_enrolment_lifetime(uint(lifetime)))
        .and_then(|p| p.with_backup_codes(small(backup_codes)?, small(backup_low_at)?))
        .map_err(from_record_error)?;
    Ok(Some((policy, uint(version))))
}

fn write_policy(tx: &Connection, portal: &PortalId, version: Version, p: &PortalPolicy) -> Result<(), StorageError> {
    let (enforced, grace) = match p.enforcement() {
        Enforcement::SelfConfigured => (false, None),
        Enforcement::Enforced { grace } => (true, grace),
    };
    let otp = p.otp();
    let lockout = p.lockout();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO portal_mfa_policies VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )
    .map_err(storage)?
    .execute(params![
        portal.as_str(),
        int(version),
        enforced,
        grace.and_then(|g| g.until).map(int),
        grace.and_then(|g| g.sign_ins),
        sign_in_name(p.sign_in_method()),
        otp.algorithm().uri_name(),
        otp.digits().get(),
        int(otp.period()),
        int(otp.t0()),
        p.window().past(),
        p.window().future(),
        lockout.max_failures(),
        int(lockout.first_lock_secs()),
        int(lockout.longest_lock_secs()),
        int(p.enrolment_lifetime_secs()),
        p.backup_code_count(),
        p.backup_codes_low_at(),
    ])
    .map_err(storage)?;
    Ok(())
}

/// Enforcement as stored: a flag, and the grace's deadline and sign-in count (a grace exists if either does).
fn stored_enforcement(enforced: bool, until: Option<i64>, sign_ins: Option<i64>) -> Result<Enforcement, StorageError> {
    if !enforced {
        return Ok(Enforcement::SelfConfigured);
    }
    let grace = match (until, sign_ins) {
        (None, None) => None,
        (until, sign_ins) => Some(Grace {
            until: until.map(uint),
            sign_ins: sign_ins.map(small).transpose()?,
        }),
    };
    Ok(Enforcement::Enforced { grace })
}

fn sign_in_name(method: SignInMethod) -> &'static str {
    match method {
        SignInMethod::Saml => "saml",
        _ => "password",
    }
}

fn sign_in_method(name: &str) -> Result<SignInMethod, StorageError> {
    match name {
        "password" => Ok(SignInMethod::Password),
        "saml" => Ok(SignInMethod::Saml),
        _ => Err(corrupt("unknown sign-in method")),
    }
}

// ----------------------------------------------------------------- records

type RecordRow = (
    i64,
    bool,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    ResetRow,
);
type ResetRow = (Option<String>, Option<String>, Option<String>, Option<i64>);

fn read_record(
    tx: &Connection,
    portal: &PortalId,
    user: &UserId,
) -> Result<Option<(MfaRecord, Version)>, StorageError> {
    let key = params![portal.as_str(), user.kind().as_str(), user.id()];
    let row: Option<RecordRow> = tx
        .prepare_cached(
            "SELECT version, must_enrol, consecutive_failures, locks, locked_until, grace_used, next_authenticator,
                    backup_salt, backup_hashes, backup_used, reset_by, reset_reason, reset_note, reset_at
             FROM portal_mfa_records WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3",
        )
        .map_err(storage)?
        .query_row(key, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                (r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?),
            ))
        })
        .optional()
        .map_err(storage)?;
    let Some((version, must_enrol, failures, locks, locked_until, grace_used, next_id, salt, hashes, used, reset)) =
        row
    else {
        return Ok(None);
    };
    let backup_codes = match (salt, hashes) {
        (Some(salt), Some(hashes)) => {
            let salt: [u8; 16] = salt.try_into().map_err(|_| corrupt("backup salt is not 16 bytes"))?;
            if hashes.len() % 16 != 0 {
                return Err(corrupt("backup hashes are not 16-byte blocks"));
            }
            let hashes = hashes
                .chunks_exact(16)
                .map(|c| c.try_into().unwrap_or([0u8; 16]))
                .collect();
            Some(BackupCodes::from_parts(salt, hashes, small(used)?).map_err(from_record_error)?)
        }
        (None, None) => None,
        _ => return Err(corrupt("backup salt without hashes")),
    };
    let last_reset = match reset {
        (Some(by), Some(reason), note, Some(at)) => Some(ResetRecord {
            by: by.into(),
            reason: reset_reason(&reason, note)?,
            at: uint(at),
        }),
        (None, None, None, None) => None,
        _ => return Err(corrupt("incomplete reset record")),
    };
    let mut parts = RecordParts {
        authenticators: Vec::new(),
        pending: None,
        backup_codes,
        consecutive_failures: small(failures)?,
        locks: small(locks)?,
        locked_until: locked_until.map(uint),
        must_enrol,
        grace_sign_ins_used: small(grace_used)?,
        next_authenticator_id: small(next_id)?,
        last_reset,
    };
    let mut statement = tx
        .prepare_cached(
            "SELECT id, pending, label, secret, algorithm, digits, period, t0, added_at, last_used_step, expires_at, replaces
             FROM portal_mfa_authenticators WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3",
        )
        .map_err(storage)?;
    let mut rows = statement.query(key).map_err(storage)?;
    while let Some(r) = rows.next().map_err(storage)? {
        let id: u32 = small(r.get::<_, i64>(0).map_err(storage)?)?;
        let pending: bool = r.get(1).map_err(storage)?;
        let label: String = r.get(2).map_err(storage)?;
        let secret_bytes = zeroize::Zeroizing::new(r.get::<_, Vec<u8>>(3).map_err(storage)?);
        let secret = Secret::from_bytes(&secret_bytes, 8).map_err(|_| corrupt("stored secret is unusable"))?;
        let algorithm: String = r.get(4).map_err(storage)?;
        let params = TotpParams::new(
            Algorithm::from_uri_name(&algorithm).ok_or_else(|| corrupt("unknown algorithm"))?,
            Digits::new(small(r.get::<_, i64>(5).map_err(storage)?)?).ok_or_else(|| corrupt("digits out of range"))?,
            uint(r.get(6).map_err(storage)?),
        )
        .map_err(from_record_error)?
        .with_t0(uint(r.get(7).map_err(storage)?));
        let added_at = uint(r.get(8).map_err(storage)?);
        let last_used_step = r.get::<_, Option<i64>>(9).map_err(storage)?.map(uint);
        if pending {
            let expires_at = r
                .get::<_, Option<i64>>(10)
                .map_err(storage)?
                .ok_or_else(|| corrupt("pending without expiry"))?;
            let replaces = r.get::<_, Option<i64>>(11).map_err(storage)?.map(small).transpose()?;
            if parts.pending.is_some() {
                return Err(corrupt("two pending enrolments"));
            }
            parts.pending = Some(PendingParts {
                id,
                label,
                secret,
                params,
                started_at: added_at,
                expires_at: uint(expires_at),
                replaces,
            });
        } else {
            parts.authenticators.push(AuthenticatorParts {
                id,
                label,
                secret,
                params,
                added_at,
                last_used_step,
            });
        }
    }
    // Sorted here, not by an ORDER BY: with one, SQLite built with STAT4 (as the bundled
    // one is) re-prepares the statement on every call: a seventh of a sign-in's time.
    parts.authenticators.sort_by_key(|a| a.id);
    let record = MfaRecord::from_parts(parts).map_err(from_record_error)?;
    Ok(Some((record, uint(version))))
}

fn write_record(
    tx: &Connection,
    portal: &PortalId,
    user: &UserId,
    version: Version,
    record: &MfaRecord,
    before: Option<&[RowState]>,
) -> Result<(), StorageError> {
    let failures = record.failures();
    let backup = record.backup_codes();
    let hashes: Option<Vec<u8>> = backup.map(|b| b.hashes().concat());
    let reset = record.last_reset();
    let (reset_reason, reset_note) = reset.map(|r| reset_reason_name(&r.reason)).unzip();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO portal_mfa_records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .map_err(storage)?
    .execute(params![
        portal.as_str(),
        user.kind().as_str(),
        user.id(),
        int(version),
        record.must_enrol(),
        failures.consecutive(),
        failures.locks(),
        failures.locked_until().map(int),
        record.grace_sign_ins_used(),
        record.next_authenticator_id(),
        backup.map(|b| b.salt().to_vec()),
        hashes,
        backup.map_or(0, |b| b.used_mask()),
        reset.map(|r| r.by.to_string()),
        reset_reason,
        reset_note.flatten(),
        reset.map(|r| int(r.at)),
    ])
    .map_err(storage)?;
    write_authenticators(tx, portal, user, record, before)
}

/// What a stored authenticator row was when read: enough to tell which rows a
/// change touched (ids are never reused, and only the last used step of an
/// active authenticator ever changes in place).
type RowState = (u32, bool, Option<u64>);

fn row_states(record: &MfaRecord) -> Vec<RowState> {
    rows(record).map(|r| (r.id, r.pending, r.last_used_step)).collect()
}

/// An authenticator or the pending enrolment, as one table row.
struct Row<'a> {
    id: u32,
    pending: bool,
    label: &'a str,
    secret: &'a [u8],
    params: &'a TotpParams,
    added_at: u64,
    last_used_step: Option<u64>,
    expires_at: Option<u64>,
    replaces: Option<u32>,
}

fn rows(record: &MfaRecord) -> impl Iterator<Item = Row<'_>> {
    let active = record.authenticators().iter().map(|a| Row {
        id: a.id().0,
        pending: false,
        label: a.label(),
        secret: a.secret().expose_bytes(),
        params: a.params(),
        added_at: a.added_at(),
        last_used_step: a.last_used_step(),
        expires_at: None,
        replaces: None,
    });
    let pending = record.pending().map(|p| Row {
        id: p.id().0,
        pending: true,
        label: p.label(),
        secret: p.secret().expose_bytes(),
        params: p.params(),
        added_at: p.started_at(),
        last_used_step: None,
        expires_at: Some(p.expires_at()),
        replaces: p.replaces().map(|r| r.0),
    });
    active.chain(pending)
}

/// Writes the authenticator rows: only what changed when the rows as read are
/// known (`before`), all of them otherwise.
fn write_authenticators(
    tx: &Connection,
    portal: &PortalId,
    user: &UserId,
    record: &MfaRecord,
    before: Option<&[RowState]>,
) -> Result<(), StorageError> {
    let key = (portal.as_str(), user.kind().as_str(), user.id());
    let new: Vec<Row<'_>> = rows(record).collect();
    let mut delete = tx
        .prepare_cached(
            "DELETE FROM portal_mfa_authenticators WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3 AND (?4 IS NULL OR id = ?4)",
        )
        .map_err(storage)?;
    match before {
        None => {
            delete
                .execute(params![key.0, key.1, key.2, None::<i64>])
                .map_err(storage)?;
        }
        Some(before) => {
            for (id, _, _) in before.iter().filter(|(id, ..)| !new.iter().any(|r| r.id == *id)) {
                delete.execute(params![key.0, key.1, key.2, id]).map_err(storage)?;
            }
        }
    }
    let mut upsert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO portal_mfa_authenticators VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .map_err(storage)?;
    let mut step = tx
        .prepare_cached(
            "UPDATE portal_mfa_authenticators SET last_used_step = ?5
             WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3 AND id = ?4",
        )
        .map_err(storage)?;
    for row in &new {
        let was = before.and_then(|b| {
            b.iter()
                .find(|(id, pending, _)| *id == row.id && *pending == row.pending)
        });
        match was {
            Some((_, _, last)) if *last == row.last_used_step => {}
            Some(_) => {
                step.execute(params![key.0, key.1, key.2, row.id, row.last_used_step.map(int)])
                    .map_err(storage)?;
            }
            None => {
                upsert
                    .execute(params![
                        key.0,
                        key.1,
                        key.2,
                        row.id,
                        row.pending,
                        row.label,
                        row.secret,
                        row.params.algorithm().uri_name(),
                        row.params.digits().get(),
                        int(row.params.period()),
                        int(row.params.t0()),
                        int(row.added_at),
                        row.last_used_step.map(int),
                        row.expires_at.map(int),
                        row.replaces,
                    ])
                    .map_err(storage)?;
            }
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- events

fn reset_reason_name(reason: &ResetReason) -> (String, Option<String>) {
    let name = match reason {
        ResetReason::LostDevice => "lost_device",
        ResetReason::NewDevice => "new_device",
        ResetReason::LockedOut => "locked_out",
        ResetReason::SecurityIncident => "security_incident",
        ResetReason::Other(note) => return ("other".to_owned(), Some(note.to_string())),
    };
    (name.to_owned(), None)
}

fn reset_reason(name: &str, note: Option<String>) -> Result<ResetReason, StorageError> {
    Ok(match (name, note) {
        ("lost_device", None) => ResetReason::LostDevice,
        ("new_device", None) => ResetReason::NewDevice,
        ("locked_out", None) => ResetReason::LockedOut,
        ("security_incident", None) => ResetReason::SecurityIncident,
        ("other", Some(note)) => ResetReason::Other(note.into()),
        _ => return Err(corrupt("unknown reset reason")),
    })
}

fn removal_name(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Replaced => "replaced",
        RemovalCause::AdminReset => "admin_reset",
        _ => "deleted",
    }
}

/// An event as columns: kind, three numbers, a text and a note.
type EventColumns = (
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);
/// The same columns as read back.
type StoredEventColumns = (
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn event_columns(kind: &EventKind) -> EventColumns {
    let n = |v: u64| Some(int(v));
    match kind {
        EventKind::EnforcementChanged { enforcement } => match enforcement {
            Enforcement::SelfConfigured => ("enforcement_changed", Some(0), None, None, None, None),
            Enforcement::Enforced { grace } => (
                "enforcement_changed",
                Some(1),
                grace.and_then(|g| g.until).map(int),
                grace.and_then(|g| g.sign_ins).map(i64::from),
                None,
                None,
            ),
        },
        EventKind::SignInMethodChanged { method } => (
            "sign_in_method_changed",
            None,
            None,
            None,
            Some(sign_in_name(*method).to_owned()),
            None,
        ),
        EventKind::PolicySettingsChanged => ("policy_settings_changed", None, None, None, None, None),
        EventKind::GraceSignIn { remaining } => ("grace_sign_in", remaining.map(i64::from), None, None, None, None),
        EventKind::EnrolmentStarted { replaces } => (
            "enrolment_started",
            replaces.map(|r| i64::from(r.0)),
            None,
            None,
            None,
            None,
        ),
        EventKind::EnrolmentCancelled => ("enrolment_cancelled", None, None, None, None, None),
        EventKind::AuthenticatorAdded { authenticator, label } => (
            "authenticator_added",
            n(authenticator.0.into()),
            None,
            None,
            Some(label.to_string()),
            None,
        ),
        EventKind::AuthenticatorRemoved { authenticator, cause } => (
            "authenticator_removed",
            n(authenticator.0.into()),
            None,
            None,
            Some(removal_name(*cause).to_owned()),
            None,
        ),
        EventKind::BackupCodesIssued { count, regenerated } => (
            "backup_codes_issued",
            n((*count).into()),
            n((*regenerated).into()),
            None,
            None,
            None,
        ),
        EventKind::BackupCodeUsed { remaining } => ("backup_code_used", n((*remaining).into()), None, None, None, None),
        EventKind::Verified { factor } => match factor {
            Factor::Totp(id) => ("verified", n(id.0.into()), None, None, Some("totp".to_owned()), None),
            _ => ("verified", None, None, None, Some("backup_code".to_owned()), None),
        },
        EventKind::VerificationFailed { consecutive_failures } => (
            "verification_failed",
            n((*consecutive_failures).into()),
            None,
            None,
            None,
            None,
        ),
        EventKind::ReplayRejected { authenticator } => {
            ("replay_rejected", n(authenticator.0.into()), None, None, None, None)
        }
        EventKind::LockedOut { until } => ("locked_out", until.map(int), None, None, None, None),
        EventKind::MfaReset {
            reason,
            mode,
            authenticators_removed,
            backup_codes_removed,
        } => {
            let (name, note) = reset_reason_name(reason);
            let mode = if *mode == ResetMode::RemoveOnly { 1 } else { 0 };
            (
                "mfa_reset",
                n((*authenticators_removed).into()),
                n((*backup_codes_removed).into()),
                Some(mode),
                Some(name),
                note,
            )
        }
    }
}

fn event_kind(columns: StoredEventColumns) -> Result<EventKind, StorageError> {
    let (kind, n1, n2, n3, text, note) = columns;
    let need = |v: Option<i64>| v.ok_or_else(|| corrupt("event field missing"));
    let id = |v: Option<i64>| -> Result<AuthenticatorId, StorageError> { Ok(AuthenticatorId(small(need(v)?)?)) };
    Ok(match kind.as_str() {
        "enforcement_changed" => EventKind::EnforcementChanged {
            enforcement: stored_enforcement(need(n1)? != 0, n2, n3)?,
        },
        "sign_in_method_changed" => EventKind::SignInMethodChanged {
            method: sign_in_method(text.as_deref().unwrap_or_default())?,
        },
        "policy_settings_changed" => EventKind::PolicySettingsChanged,
        "grace_sign_in" => EventKind::GraceSignIn {
            remaining: n1.map(small).transpose()?,
        },
        "enrolment_started" => EventKind::EnrolmentStarted {
            replaces: n1.map(|v| id(Some(v))).transpose()?,
        },
        "enrolment_cancelled" => EventKind::EnrolmentCancelled,
        "authenticator_added" => EventKind::AuthenticatorAdded {
            authenticator: id(n1)?,
            label: text.ok_or_else(|| corrupt("event field missing"))?.into(),
        },
        "authenticator_removed" => EventKind::AuthenticatorRemoved {
            authenticator: id(n1)?,
            cause: match text.as_deref() {
                Some("replaced") => RemovalCause::Replaced,
                Some("admin_reset") => RemovalCause::AdminReset,
                Some("deleted") => RemovalCause::Deleted,
                _ => return Err(corrupt("unknown removal cause")),
            },
        },
        "backup_codes_issued" => EventKind::BackupCodesIssued {
            count: small(need(n1)?)?,
            regenerated: need(n2)? != 0,
        },
        "backup_code_used" => EventKind::BackupCodeUsed {
            remaining: small(need(n1)?)?,
        },
        "verified" => EventKind::Verified {
            factor: match text.as_deref() {
                Some("totp") => Factor::Totp(id(n1)?),
                Some("backup_code") => Factor::BackupCode,
                _ => return Err(corrupt("unknown factor")),
            },
        },
        "verification_failed" => EventKind::VerificationFailed {
            consecutive_failures: small(need(n1)?)?,
        },
        "replay_rejected" => EventKind::ReplayRejected { authenticator: id(n1)? },
        "locked_out" => EventKind::LockedOut { until: n1.map(uint) },
        "mfa_reset" => EventKind::MfaReset {
            reason: reset_reason(text.as_deref().unwrap_or_default(), note)?,
            mode: if need(n3)? == 1 {
                ResetMode::RemoveOnly
            } else {
                ResetMode::ForceReenrolment
            },
            authenticators_removed: small(need(n1)?)?,
            backup_codes_removed: small(need(n2)?)?,
        },
        _ => return Err(corrupt("unknown event kind")),
    })
}

/// Events are stored clustered by user, keyed by the version of the commit
/// that wrote them (the record's, or the policy's for portal-wide events, whose
/// user columns are empty) and their place in it: one b-tree page per commit
/// for a user's events, plus the time index.
fn write_events(tx: &Connection, version: Version, events: &[AuditEvent]) -> Result<(), StorageError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO portal_mfa_events (portal, user_kind, user_id, version, n, at, actor, admin, kind, n1, n2, n3, text, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .map_err(storage)?;
    for (n, e) in events.iter().enumerate() {
        let (actor, admin) = match &e.actor {
            Actor::User => ("user", None),
            Actor::Admin(name) => ("admin", Some(name.to_string())),
            _ => ("system", None),
        };
        let (kind, n1, n2, n3, text, note) = event_columns(&e.kind);
        insert
            .execute(params![
                e.portal.as_str(),
                e.user.as_ref().map_or("", |u| u.kind().as_str()),
                e.user.as_ref().map_or("", |u| u.id()),
                int(version),
                n as i64,
                int(e.at),
                actor,
                admin,
                kind,
                n1,
                n2,
                n3,
                text,
                note,
            ])
            .map_err(storage)?;
    }
    Ok(())
}

type EventRow = (String, String, i64, String, Option<String>, StoredEventColumns);

impl SqliteStore {
    /// Runs `run` inside `BEGIN IMMEDIATE … COMMIT` (or rolls back when it
    /// fails or has nothing to write). IMMEDIATE takes the write lock before
    /// reading, so nothing read can change before the write. The three
    /// statements are cached like every other: no SQL is parsed per call.
    fn transaction<T>(
        &self,
        run: impl FnOnce(&Connection) -> Result<(T, bool), StorageError>,
    ) -> Result<T, StorageError> {
        let conn = self.conn()?;
        let exec = |sql: &str| {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map_err(storage)
        };
        exec("BEGIN IMMEDIATE")?;
        let outcome = run(&conn).and_then(|(value, write)| {
            if write {
                exec("COMMIT")?;
            } else {
                exec("ROLLBACK")?;
            }
            Ok(value)
        });
        if outcome.is_err() && !conn.is_autocommit() {
            // Nothing of a failed attempt may stay: the error is the answer, not a rollback failure.
            let _ = exec("ROLLBACK");
        }
        outcome
    }
}

impl MfaStore for SqliteStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<(MfaRecord, Version)>, StorageError> {
        read_record(&*self.conn()?, portal, user)
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        self.transaction(|tx| {
            let current: Option<i64> = tx
                .prepare_cached(
                    "SELECT version FROM portal_mfa_records WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3",
                )
                .map_err(storage)?
                .query_row(params![portal.as_str(), user.kind().as_str(), user.id()], |r| r.get(0))
                .optional()
                .map_err(storage)?;
            if current.map(uint) != expected {
                return Ok((Commit::Conflict, false));
            }
            let version = expected.map_or(1, |v| v + 1);
            write_record(tx, portal, user, version, record, None)?;
            write_events(tx, version, events)?;
            Ok((Commit::Committed(version), true))
        })
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>, StorageError> {
        read_policy(&*self.conn()?, portal)
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        self.transaction(|tx| {
            let current = read_policy(tx, portal)?.map(|(_, v)| v);
            if current != expected {
                return Ok((Commit::Conflict, false));
            }
            let version = expected.map_or(1, |v| v + 1);
            write_policy(tx, portal, version, policy)?;
            write_events(tx, version, events)?;
            Ok((Commit::Committed(version), true))
        })
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, StorageError> {
        let conn = self.conn()?;
        const COLUMNS: &str =
            "SELECT user_kind, user_id, at, actor, admin, kind, n1, n2, n3, text, note FROM portal_mfa_events";
        // One user's events come from the primary key in commit order; a portal's from the time index.
        let sql = if query.user.is_some() {
            format!(
                "{COLUMNS} WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3
                 AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) ORDER BY version, n"
            )
        } else {
            format!(
                "{COLUMNS} WHERE portal = ?1 AND ?2 IS NULL AND ?3 IS NULL AND at >= coalesce(?4, -9223372036854775808)
                 AND at < coalesce(?5, 9223372036854775807) ORDER BY at, user_kind, user_id, version, n"
            )
        };
        let mut statement = conn.prepare_cached(&sql).map_err(storage)?;
        let rows = statement
            .query_map(
                params![
                    query.portal.as_str(),
                    query.user.as_ref().map(|u| u.kind().as_str()),
                    query.user.as_ref().map(|u| u.id()),
                    query.from.map(time_bound),
                    query.until.map(time_bound),
                ],
                |r| -> rusqlite::Result<EventRow> {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
                    ))
                },
            )
            .map_err(storage)?;
        let mut events = Vec::new();
        for row in rows {
            let (kind, id, at, actor, admin, columns) = row.map_err(storage)?;
            let user = match (kind.as_str(), id) {
                ("", id) if id.is_empty() => None,
                (kind, id) => Some(UserId::new(
                    UserKind::from_name(kind).ok_or_else(|| corrupt("unknown user kind"))?,
                    id,
                )),
            };
            let actor = match (actor.as_str(), admin) {
                ("user", None) => Actor::User,
                ("admin", Some(name)) => Actor::Admin(Arc::from(name)),
                ("system", None) => Actor::System,
                _ => return Err(corrupt("unknown actor")),
            };
            events.push(AuditEvent {
                at: uint(at),
                portal: query.portal.clone(),
                user,
                actor,
                kind: event_kind(columns)?,
            });
        }
        Ok(events)
    }

    /// Reads the policy and the record, runs `change` and writes the result in
    /// one `BEGIN IMMEDIATE` transaction: other connections and processes wait
    /// (up to the busy timeout), so this never conflicts.
    fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut dyn FnMut(MfaRecord, Option<PortalPolicy>) -> Change,
    ) -> Result<Applied, StorageError> {
        self.transaction(|tx| {
            let policy = read_policy(tx, portal)?.map(|(p, _)| p);
            let (record, version) = super::split_loaded(read_record(tx, portal, user)?);
            let before = row_states(&record);
            let outcome = change(record, policy);
            if !outcome.changed {
                return Ok((Applied::Done, false));
            }
            let version = version.map_or(1, |v| v + 1);
            write_record(tx, portal, user, version, &outcome.record, Some(&before))?;
            write_events(tx, version, &outcome.events)?;
            Ok((Applied::Done, true))
        })
    }
}
