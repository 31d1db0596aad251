//! The embedded default store: one SQLite database file, no server.
//!
//! - It keeps bytes: a record's stored form (secrets sealed) with its version
//!   and summary columns, a policy's stored form, and each audit event's stored
//!   form beside the columns a query filters on. It never maps a record's fields.
//! - The schema is created and migrated by the store (table `portal_mfa_schema`
//!   holds its version); a file written by a newer version is refused. A file
//!   at schema 1 (one column per field, plaintext secrets) is upgraded to the
//!   sealed stored form in one transaction when opened with a keyring
//!   ([`SqliteOptions::upgrade_with`]).
//! - WAL journal; `synchronous=NORMAL` by default: a committed sign-in survives
//!   a crash of the process, and a power cut may lose the last few commits
//!   ([`SqliteOptions::full_sync`] fsyncs every commit).
//! - A record and its audit events are written in one transaction. `apply`
//!   runs the transition inside `BEGIN IMMEDIATE`, so two processes on one file
//!   take turns and can never both accept one code; `commit` checks the version
//!   (compare-and-swap) for hosts that drive the store themselves.
//! - Audit events come back in commit order (a global sequence), whatever their times.
//!   The events table has no secondary index, so a sign-in appends one row to
//!   its end: each record (and each policy) keeps the sequence number of its
//!   newest event, and each event that of the one before it, so one user's
//!   trail is a walk back along that chain, never a scan.

mod options;
mod schema;
mod v1;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use options::SqliteOptions;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
pub use schema::SCHEMA_VERSION;

use super::columns::{SummaryColumns, int, lock_column, time, time_range, users_sql};
use super::{
    Applied, ChangeFn, Commit, EventPosition, EventQuery, MfaStore, RecordSummary, RecordWrite, StorageError,
    StorageErrorKind, Stored, StoredEvent, UserListing, Version,
};
use crate::ids::{PortalId, UserId, UserKind};

/// MFA records, policies and the audit trail in one SQLite file.
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl core::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    ///
    /// Errors: [`StorageErrorKind::Corrupt`] for a damaged or non-SQLite file,
    /// [`StorageErrorKind::IncompatibleSchema`] for a file from a newer version
    /// (or at schema 1, without [`SqliteOptions::upgrade_with`]),
    /// [`StorageErrorKind::ReadOnly`] when the file cannot be written,
    /// [`StorageErrorKind::Busy`] when another writer holds it too long.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path, SqliteOptions::new())
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StorageError> {
        refuse_foreign_file(path.as_ref())?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::setup(Connection::open_with_flags(path, flags).map_err(storage)?, options)
    }

    /// A private in-memory database (for tests): same schema and SQL, no file.
    pub fn open_in_memory() -> Result<Self, StorageError> {
        Self::setup(Connection::open_in_memory().map_err(storage)?, SqliteOptions::new())
    }

    fn setup(mut conn: Connection, options: SqliteOptions) -> Result<Self, StorageError> {
        conn.busy_timeout(options.busy_timeout.unwrap_or(Duration::from_secs(5)))
            .map_err(storage)?;
        // For a new file only (ignored once it has content): every commit writes whole pages to
        // the WAL; 2 KiB pages halve those bytes and still hold a record row without overflow.
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
        let sync = if options.full_sync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync).map_err(storage)?;
        // Checkpoint every ~20 MB of WAL rather than 4 MB: sign-ins rewrite the same few
        // pages, so a rarer checkpoint copies (and fsyncs) far less per commit.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(storage)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(storage)?;
        // While migrating, what is deleted is overwritten: an upgrade from schema 1 drops
        // plaintext secrets, which must not linger in free pages or the WAL.
        conn.pragma_update(None, "secure_delete", "ON").map_err(storage)?;
        if schema::migrate(&mut conn, &options)? == Some(1) {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(storage)?;
        }
        let secure_delete = if options.secure_delete { "ON" } else { "OFF" };
        conn.pragma_update(None, "secure_delete", secure_delete)
            .map_err(storage)?;
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
            exec(if write { "COMMIT" } else { "ROLLBACK" })?;
            Ok(value)
        });
        if outcome.is_err() && !conn.is_autocommit() {
            // Nothing of a failed attempt may stay: the error is the answer, not a rollback failure.
            let _ = exec("ROLLBACK");
        }
        outcome
    }
}

/// A file that exists, is not empty and does not start with SQLite's header is
/// not ours to touch, whatever its size (SQLite itself would take a file
/// shorter than its header for a new database and overwrite it).
fn refuse_foreign_file(path: &Path) -> Result<(), StorageError> {
    use std::io::Read;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Permissions and the like: SQLite's own open reports them.
        Err(_) => return Ok(()),
    };
    let mut head = Vec::with_capacity(HEADER.len());
    (&mut file)
        .take(HEADER.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| StorageError::new(StorageErrorKind::Unavailable, e))?;
    if head.is_empty() || head == HEADER {
        Ok(())
    } else {
        Err(StorageError::new(StorageErrorKind::Corrupt, "not a SQLite database"))
    }
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

fn version_of(value: i64) -> Result<Version, StorageError> {
    u64::try_from(value).map_err(|_| corrupt("negative version"))
}

/// A stored value with the head of its event chain.
struct Row {
    stored: Stored,
    last_event: Option<i64>,
    /// The record's indexed summary columns as stored (none for a policy).
    indexed: Indexed,
}

/// A sweep's pages of records (`reseal`, `bulk_reset`): the first, and each
/// after a user. Two statements, not one with `?2 IS NULL OR …`, which SQLite
/// cannot turn into a range of the key: every page would scan the portal from
/// its first user, and a sweep would take time quadratic in the users.
const RECORDS_FIRST: &str = "SELECT user_kind, user_id, version, record FROM portal_mfa_records
     WHERE portal = ?1 AND ?2 IS NULL AND ?3 IS NULL ORDER BY user_kind, user_id LIMIT ?4";
const RECORDS_AFTER: &str = "SELECT user_kind, user_id, version, record FROM portal_mfa_records
     WHERE portal = ?1 AND (user_kind, user_id) > (?2, ?3) ORDER BY user_kind, user_id LIMIT ?4";

/// The summary columns the partial indexes cover: authenticators, pending
/// enrolment, must re-enrol, locked until, reset requested at.
type Indexed = [Option<i64>; 5];

fn indexed(summary: &RecordSummary) -> Indexed {
    [
        Some(summary.authenticators.into()),
        Some(summary.pending_enrolment.into()),
        Some(summary.must_enrol.into()),
        summary.locked.map(lock_column),
        summary.reset_requested_at.map(time),
    ]
}

fn read_row(tx: &Connection, sql: &str, key: impl rusqlite::Params) -> Result<Option<Row>, StorageError> {
    tx.prepare_cached(sql)
        .map_err(storage)?
        .query_row(key, |r| {
            let indexed = [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?];
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?, indexed))
        })
        .optional()
        .map_err(storage)?
        .map(|(version, bytes, last_event, indexed)| {
            Ok(Row {
                stored: Stored {
                    bytes,
                    version: version_of(version)?,
                },
                last_event,
                indexed,
            })
        })
        .transpose()
}

fn read_record(tx: &Connection, portal: &PortalId, user: &UserId) -> Result<Option<Row>, StorageError> {
    read_row(
        tx,
        "SELECT version, record, last_event, authenticators, pending_enrolment, must_enrol, locked_until,
                reset_requested_at
         FROM portal_mfa_records WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3",
        params![portal.as_str(), user.kind().as_str(), user.id()],
    )
}

fn read_policy(tx: &Connection, portal: &PortalId) -> Result<Option<Row>, StorageError> {
    read_row(
        tx,
        "SELECT version, policy, last_event, NULL, NULL, NULL, NULL, NULL FROM portal_mfa_policies WHERE portal = ?1",
        [portal.as_str()],
    )
}

/// Writes a record row if its version is still `expected` (`None`: only if
/// there is none): an INSERT that yields to an existing row, or an UPDATE of
/// the row at version `expected` (compare-and-swap: zero rows means another
/// writer won). All bind the same parameters. An UPDATE that leaves the
/// indexed summary columns as they are (`stored`) does not assign them, so
/// SQLite leaves the indexes alone: a sign-in touches the row and nothing else.
fn put_record(
    tx: &Connection,
    portal: &PortalId,
    user: &UserId,
    expected: Option<Version>,
    write: &RecordWrite,
    last_event: Option<i64>,
    stored: Option<&Indexed>,
) -> Result<bool, StorageError> {
    let sql = match (expected, stored) {
        (None, _) => {
            "INSERT INTO portal_mfa_records VALUES (?1, ?2, ?3, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?17, ?16)
             ON CONFLICT DO NOTHING"
        }
        (Some(_), Some(stored)) if *stored == indexed(&write.summary) => {
            "UPDATE portal_mfa_records SET version = ?5, record = ?6, backup_codes_left = ?11, last_verified_at = ?12,
                    grace_sign_ins_used = ?13, last_event = ?14, trusted_browsers = ?15, passkeys = ?17
             WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3 AND version = ?4"
        }
        (Some(_), _) => {
            "UPDATE portal_mfa_records SET version = ?5, record = ?6, authenticators = ?7, pending_enrolment = ?8,
                    must_enrol = ?9, locked_until = ?10, backup_codes_left = ?11, last_verified_at = ?12,
                    grace_sign_ins_used = ?13, last_event = ?14, trusted_browsers = ?15, passkeys = ?17,
                    reset_requested_at = ?16
             WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3 AND version = ?4"
        }
    };
    let s = &write.summary;
    let written = tx
        .prepare_cached(sql)
        .map_err(storage)?
        .execute(params![
            portal.as_str(),
            user.kind().as_str(),
            user.id(),
            expected.map(int),
            int(expected.map_or(1, |v| v + 1)),
            write.bytes,
            s.authenticators,
            s.pending_enrolment,
            s.must_enrol,
            s.locked.map(lock_column),
            s.backup_codes_left,
            s.last_verified_at.map(time),
            s.grace_sign_ins_used,
            last_event,
            s.trusted_browsers,
            // Indexed, so before the last: the UPDATE that leaves indexes alone binds up to ?17 too.
            s.reset_requested_at.map(time),
            s.passkeys,
        ])
        .map_err(storage)?;
    Ok(written == 1)
}

/// Writes the record if its version is still `expected`, with its events
/// chained after the newest of its earlier ones (`current`: the row as read).
/// On a conflict the caller rolls back, events included.
fn write_record(
    tx: &Connection,
    portal: &PortalId,
    user: &UserId,
    expected: Option<Version>,
    write: &RecordWrite,
    current: Option<&Row>,
) -> Result<Commit, StorageError> {
    let previous = current.and_then(|row| row.last_event);
    let last_event = insert_events(tx, portal, previous, &write.events)?.or(previous);
    let stored = current.map(|row| &row.indexed);
    Ok(if put_record(tx, portal, user, expected, write, last_event, stored)? {
        Commit::Committed(expected.map_or(1, |v| v + 1))
    } else {
        Commit::Conflict
    })
}

/// Appends `events`, each pointing back at the one before it (the first at
/// `prev`); answers the sequence number of the last, if any.
fn insert_events(
    tx: &Connection,
    portal: &PortalId,
    mut prev: Option<i64>,
    events: &[StoredEvent],
) -> Result<Option<i64>, StorageError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut insert = tx
        .prepare_cached("INSERT INTO portal_mfa_events (portal, at, kind, prev, event) VALUES (?1, ?2, ?3, ?4, ?5)")
        .map_err(storage)?;
    for e in events {
        insert
            .execute(params![portal.as_str(), time(e.at), e.kind, prev, e.bytes])
            .map_err(storage)?;
        prev = Some(tx.last_insert_rowid());
    }
    Ok(prev)
}

/// Where the portal's pruned history ends: every one of its events before
/// this sequence number is gone, so a chain reaching below it ends there.
fn pruned_below(tx: &Connection, portal: &PortalId) -> Result<i64, StorageError> {
    Ok(tx
        .prepare_cached("SELECT below FROM portal_mfa_pruned WHERE portal = ?1")
        .map_err(storage)?
        .query_row([portal.as_str()], |r| r.get(0))
        .optional()
        .map_err(storage)?
        .unwrap_or(0))
}

/// One link of an event chain: the event before it, its time, its bytes.
type Link = (Option<i64>, u64, Vec<u8>);

/// The link at `seq`, if that event is still there.
fn chain_link(tx: &Connection, seq: i64) -> Result<Option<Link>, StorageError> {
    let link = tx
        .prepare_cached("SELECT prev, at, event FROM portal_mfa_events WHERE seq = ?1")
        .map_err(storage)?
        .query_row([seq], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
        })
        .optional()
        .map_err(storage)?;
    link.map(|(prev, at, event)| {
        if prev.is_some_and(|p| p >= seq) {
            return Err(corrupt("an event chain does not run backwards"));
        }
        Ok((
            prev,
            u64::try_from(at).map_err(|_| corrupt("negative event time"))?,
            event,
        ))
    })
    .transpose()
}

/// A page of one user's events: a walk back along their chain from `last`
/// (their newest), which never leaves their own events. Newest first, the walk
/// stops once the page is full; oldest first, it walks back to the start of the
/// retained history and then reads the page from there.
fn user_page(
    tx: &Connection,
    last: Option<i64>,
    query: &EventQuery,
) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
    let below = pruned_below(tx, &query.portal)?;
    let mut next = last;
    // Newest first after a cursor: start at the cursor's event when it is
    // this user's (not pruned since, not edited to point elsewhere).
    if let (true, Some(after)) = (query.newest_first, query.position()) {
        next = match chain_link(tx, int(after))? {
            Some((prev, _, bytes)) if is_of(&bytes, query) => prev,
            _ => next,
        };
    }
    let mut page = Vec::new();
    let mut oldest_first = Vec::new();
    while let Some(seq) = next.filter(|&seq| seq >= below) {
        let (prev, at, event) =
            chain_link(tx, seq)?.ok_or_else(|| corrupt("an event chain points at a missing event"))?;
        next = prev;
        let position = seq as EventPosition;
        if !(query.follows(position) && query.selects(&query.portal, query.user.as_ref(), at)) {
            continue;
        }
        if query.newest_first {
            page.push((position, event));
            if page.len() >= query.limit {
                break;
            }
        } else {
            oldest_first.push(position);
        }
    }
    if query.newest_first {
        return Ok(page);
    }
    oldest_first
        .iter()
        .rev()
        .take(query.limit)
        .map(|&position| {
            let (_, _, event) = chain_link(tx, int(position))?.ok_or_else(|| corrupt("an event vanished mid-read"))?;
            Ok((position, event))
        })
        .collect()
}

/// Whether stored event `bytes` belong to the query's portal and user.
fn is_of(bytes: &[u8], query: &EventQuery) -> bool {
    crate::stored::decode_event(bytes).is_ok_and(|e| e.portal == query.portal && e.user == query.user)
}

impl MfaStore for SqliteStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<Stored>, StorageError> {
        Ok(read_record(&*self.conn()?, portal, user)?.map(|row| row.stored))
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        self.transaction(|tx| {
            let current = read_record(tx, portal, user)?;
            let commit = write_record(tx, portal, user, expected, write, current.as_ref())?;
            Ok((commit, commit != Commit::Conflict))
        })
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<Stored>, StorageError> {
        Ok(read_policy(&*self.conn()?, portal)?.map(|row| row.stored))
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        bytes: &[u8],
        events: &[StoredEvent],
    ) -> Result<Commit, StorageError> {
        self.transaction(|tx| {
            let last_event = read_policy(tx, portal)?.and_then(|row| row.last_event);
            let last_event = insert_events(tx, portal, last_event, events)?.or(last_event);
            let written = match expected {
                None => tx
                    .prepare_cached("INSERT INTO portal_mfa_policies VALUES (?1, 1, ?2, ?3) ON CONFLICT DO NOTHING")
                    .and_then(|mut s| s.execute(params![portal.as_str(), bytes, last_event])),
                Some(v) => tx
                    .prepare_cached(
                        "UPDATE portal_mfa_policies SET version = ?3, policy = ?4, last_event = ?5
                         WHERE portal = ?1 AND version = ?2",
                    )
                    .and_then(|mut s| s.execute(params![portal.as_str(), int(v), int(v + 1), bytes, last_event])),
            }
            .map_err(storage)?;
            if written != 1 {
                return Ok((Commit::Conflict, false));
            }
            Ok((Commit::Committed(expected.map_or(1, |v| v + 1)), true))
        })
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        let conn = self.conn()?;
        if let Some(user) = &query.user {
            let last = read_record(&conn, &query.portal, user)?.and_then(|row| row.last_event);
            return user_page(&conn, last, query);
        }
        let Some((from, until)) = time_range(query.from, query.until) else {
            return Ok(Vec::new());
        };
        let sql = if query.newest_first {
            "SELECT seq, event FROM portal_mfa_events WHERE portal = ?1 AND seq < coalesce(?2, 9223372036854775807)
             AND at >= ?3 AND (?4 IS NULL OR at < ?4) ORDER BY seq DESC LIMIT ?5"
        } else {
            "SELECT seq, event FROM portal_mfa_events WHERE portal = ?1 AND seq > coalesce(?2, 0)
             AND at >= ?3 AND (?4 IS NULL OR at < ?4) ORDER BY seq LIMIT ?5"
        };
        let mut statement = conn.prepare_cached(sql).map_err(storage)?;
        let rows = statement
            .query_map(
                params![
                    query.portal.as_str(),
                    query.position().map(int),
                    from,
                    until,
                    int(query.limit as u64)
                ],
                |r| Ok((r.get::<_, i64>(0)? as EventPosition, r.get::<_, Vec<u8>>(1)?)),
            )
            .map_err(storage)?;
        rows.map(|r| r.map_err(storage)).collect()
    }

    /// One short `BEGIN IMMEDIATE` transaction: reads up to `max` of the
    /// portal's events from where the last prune stopped, deletes those
    /// before `before` up to the first that is not, and moves the mark.
    fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        self.transaction(|tx| {
            let below = pruned_below(tx, portal)?;
            let mut oldest = tx
                .prepare_cached(
                    "SELECT seq, at FROM portal_mfa_events WHERE portal = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(storage)?;
            let rows = oldest
                .query_map(params![portal.as_str(), below, int(max as u64)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(storage)?;
            let mut last = None;
            let mut deleted = 0;
            for row in rows {
                let (seq, at) = row.map_err(storage)?;
                if u64::try_from(at).map_or(true, |at| at >= before) {
                    break;
                }
                last = Some(seq);
                deleted += 1;
            }
            let Some(last) = last else {
                return Ok((0, false));
            };
            tx.prepare_cached("DELETE FROM portal_mfa_events WHERE portal = ?1 AND seq >= ?2 AND seq <= ?3")
                .and_then(|mut s| s.execute(params![portal.as_str(), below, last]))
                .map_err(storage)?;
            tx.prepare_cached(
                "INSERT INTO portal_mfa_pruned VALUES (?1, ?2) ON CONFLICT (portal) DO UPDATE SET below = excluded.below",
            )
            .and_then(|mut s| s.execute(params![portal.as_str(), last + 1]))
            .map_err(storage)?;
            Ok((deleted, true))
        })
    }

    /// A scan of the portal's events (the table has no index on time, so
    /// sign-ins append without one): a dashboard query, not a hot path.
    fn count_events(&self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
        let Some((from, until)) = time_range(Some(from), Some(until)) else {
            return Ok(Vec::new());
        };
        let conn = self.conn()?;
        let mut statement = conn
            .prepare_cached(
                "SELECT kind, count(*) FROM portal_mfa_events WHERE portal = ?1 AND at >= ?2 AND (?3 IS NULL OR at < ?3)
                 GROUP BY kind ORDER BY kind",
            )
            .map_err(storage)?;
        let rows = statement
            .query_map(params![portal.as_str(), from, until], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(storage)?;
        rows.map(|r| {
            let (kind, n) = r.map_err(storage)?;
            Ok((kind, u64::try_from(n).map_err(|_| corrupt("negative count"))?))
        })
        .collect()
    }

    /// From the summary columns, in primary-key order from the cursor: each
    /// status filter has a partial index keyed by user, so a page reads its
    /// rows and nothing before them, however deep it is.
    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        let (sql, bound) = users_sql("portal_mfa_records", listing, |n| format!("?{n}"));
        let conn = self.conn()?;
        let mut statement = conn.prepare_cached(&sql).map_err(storage)?;
        let after = listing.after.as_ref();
        let mut rows = statement
            .query(params![
                listing.portal.as_str(),
                listing.kind.map(UserKind::as_str),
                after.map(|u| u.kind().as_str()),
                after.map(|u| u.id()),
                int(listing.limit as u64),
                bound,
            ])
            .map_err(storage)?;
        let mut page = Vec::new();
        while let Some(r) = rows.next().map_err(storage)? {
            let kind: String = r.get(0).map_err(storage)?;
            let kind = UserKind::from_name(&kind).ok_or_else(|| corrupt("unknown user kind"))?;
            let summary = SummaryColumns {
                authenticators: r.get(2).map_err(storage)?,
                pending_enrolment: r.get(3).map_err(storage)?,
                must_enrol: r.get(4).map_err(storage)?,
                locked_until: r.get(5).map_err(storage)?,
                backup_codes_left: r.get(6).map_err(storage)?,
                last_verified_at: r.get(7).map_err(storage)?,
                grace_sign_ins_used: r.get(8).map_err(storage)?,
                trusted_browsers: r.get(9).map_err(storage)?,
                passkeys: r.get(10).map_err(storage)?,
                reset_requested_at: r.get(11).map_err(storage)?,
            }
            .summary()?;
            page.push((UserId::new(kind, r.get::<_, String>(1).map_err(storage)?), summary));
        }
        Ok(page)
    }

    fn records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        let conn = self.conn()?;
        let sql = if after.is_some() { RECORDS_AFTER } else { RECORDS_FIRST };
        let mut statement = conn.prepare_cached(sql).map_err(storage)?;
        let rows = statement
            .query_map(
                params![
                    portal.as_str(),
                    after.map(|u| u.kind().as_str()),
                    after.map(|u| u.id()),
                    int(limit as u64),
                ],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get(3)?,
                    ))
                },
            )
            .map_err(storage)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, id, version, bytes) = row.map_err(storage)?;
            let kind = UserKind::from_name(&kind).ok_or_else(|| corrupt("unknown user kind"))?;
            out.push((
                UserId::new(kind, id),
                Stored {
                    bytes,
                    version: version_of(version)?,
                },
            ));
        }
        Ok(out)
    }

    /// Reads the policy and the record, runs `change` and writes the result in
    /// one `BEGIN IMMEDIATE` transaction: other connections and processes wait
    /// (up to the busy timeout), so this never conflicts.
    fn apply(&self, portal: &PortalId, user: &UserId, change: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        self.transaction(|tx| {
            let policy = read_policy(tx, portal)?.map(|row| row.stored);
            let current = read_record(tx, portal, user)?;
            let Some(write) = change(current.as_ref().map(|row| &row.stored), policy.as_ref()) else {
                return Ok((Applied::Done, false));
            };
            let version = current.as_ref().map(|row| row.stored.version);
            let commit = write_record(tx, portal, user, version, &write, current.as_ref())?;
            Ok((commit.into(), commit != Commit::Conflict))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep's page after a user is a range of the primary key, not a
    /// scan from the portal's first user (which made a sweep quadratic).
    #[test]
    fn a_sweeps_next_page_starts_at_its_cursor_in_the_key() {
        let store = SqliteStore::open_in_memory().unwrap();
        let conn = store.conn().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {RECORDS_AFTER}"))
            .unwrap()
            .query_map(params!["acme", "customer", "c-1", 10], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains("PRIMARY KEY (portal=? AND (user_kind,user_id)>(?,?))"),
            "{plan}"
        );
    }
}
