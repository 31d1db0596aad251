//! The SQLite schema, its migrations, and the upgrade from schema 1 (plaintext columns).

use rusqlite::{Connection, TransactionBehavior, params};

use super::{SqliteOptions, insert_events, int, put_record, storage, v1};
use crate::ids::{PortalId, UserId};
use crate::store::{RecordSummary, RecordWrite, StorageError, StorageErrorKind, StoredEvent};
use crate::stored::{encode_policy, encode_record};

/// The schema this version writes.
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub const SCHEMA_VERSION: i64 = 5;

/// Schema 5: bytes, versions, summary columns (see `guide::stored_form`),
/// status indexes keyed by user, and where each portal's pruned history ends.
const SCHEMA: &str = r#"
CREATE TABLE portal_mfa_policies (
    portal TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    policy BLOB NOT NULL,
    last_event INTEGER
) STRICT;
CREATE TABLE portal_mfa_records (
    portal TEXT NOT NULL,
    user_kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    record BLOB NOT NULL,
    authenticators INTEGER NOT NULL,
    pending_enrolment INTEGER NOT NULL,
    must_enrol INTEGER NOT NULL,
    locked_until INTEGER,
    backup_codes_left INTEGER NOT NULL,
    last_verified_at INTEGER,
    grace_sign_ins_used INTEGER NOT NULL,
    last_event INTEGER,
    trusted_browsers INTEGER NOT NULL DEFAULT 0,
    passkeys INTEGER NOT NULL DEFAULT 0,
    reset_requested_at INTEGER,
    PRIMARY KEY (portal, user_kind, user_id)
) STRICT, WITHOUT ROWID;
-- Admin queries by status, each in user order (a WITHOUT ROWID index ends with the key), so
-- a page of a listing starts at its cursor. Partial: a sign-in of a user in none of these
-- states touches no index.
CREATE INDEX portal_mfa_records_locked ON portal_mfa_records (portal, user_kind, user_id, locked_until)
    WHERE locked_until IS NOT NULL;
CREATE INDEX portal_mfa_records_must_enrol ON portal_mfa_records (portal) WHERE must_enrol;
CREATE INDEX portal_mfa_records_pending ON portal_mfa_records (portal) WHERE pending_enrolment;
CREATE INDEX portal_mfa_records_without_mfa ON portal_mfa_records (portal) WHERE authenticators = 0;
CREATE INDEX portal_mfa_records_reset_requested ON portal_mfa_records (portal) WHERE reset_requested_at IS NOT NULL;
CREATE TABLE portal_mfa_events (
    seq INTEGER PRIMARY KEY,
    portal TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    prev INTEGER,
    event BLOB NOT NULL
) STRICT;
CREATE TABLE portal_mfa_pruned (
    portal TEXT PRIMARY KEY,
    below INTEGER NOT NULL
) STRICT;
"#;

/// Schema 2 → 3: the locked-users index in user order, and the prune mark.
const UPGRADE_FROM_V2: &str = r#"
DROP INDEX portal_mfa_records_locked;
CREATE INDEX portal_mfa_records_locked ON portal_mfa_records (portal, user_kind, user_id, locked_until)
    WHERE locked_until IS NOT NULL;
CREATE TABLE portal_mfa_pruned (
    portal TEXT PRIMARY KEY,
    below INTEGER NOT NULL
) STRICT;
"#;

/// Schema 3 → 4: how many browsers each user trusts, for the admin listing
/// (0 until the record's next write; no record before it trusted one).
const UPGRADE_FROM_V3: &str = r#"
ALTER TABLE portal_mfa_records ADD COLUMN trusted_browsers INTEGER NOT NULL DEFAULT 0;
"#;

/// Schema 4 → 5: how many of each user's factors are passkeys, and when
/// the user asked for a reset, for the admin listing (0 and NULL are right
/// for every row an earlier version wrote: only stored form 4 holds passkeys
/// and requests).
const UPGRADE_FROM_V4: &str = r#"
ALTER TABLE portal_mfa_records ADD COLUMN passkeys INTEGER NOT NULL DEFAULT 0;
ALTER TABLE portal_mfa_records ADD COLUMN reset_requested_at INTEGER;
CREATE INDEX portal_mfa_records_reset_requested ON portal_mfa_records (portal) WHERE reset_requested_at IS NOT NULL;
"#;

/// Brings the schema to [`SCHEMA_VERSION`]; answers the version it migrated from, if any.
pub(super) fn migrate(conn: &mut Connection, options: &SqliteOptions) -> Result<Option<i64>, StorageError> {
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
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'portal\\_mfa\\_%' ESCAPE '\\'",
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
    match current {
        0 => tx.execute_batch(SCHEMA).map_err(storage)?,
        1 => upgrade_from_v1(&tx, options)?,
        2..=4 => [UPGRADE_FROM_V2, UPGRADE_FROM_V3, UPGRADE_FROM_V4]
            .iter()
            .skip(usize::try_from(current - 2).unwrap_or_default())
            .try_for_each(|step| tx.execute_batch(step))
            .map_err(storage)?,
        SCHEMA_VERSION => return tx.commit().map(|()| None).map_err(storage),
        v if v > SCHEMA_VERSION => {
            return Err(StorageError::new(
                StorageErrorKind::IncompatibleSchema,
                format!("schema version {v}; this build reads up to {SCHEMA_VERSION}"),
            ));
        }
        _ => return Err(StorageError::new(StorageErrorKind::Corrupt, "negative schema version")),
    }
    tx.execute("UPDATE portal_mfa_schema SET version = ?1", [SCHEMA_VERSION])
        .map_err(storage)?;
    tx.commit().map_err(storage)?;
    Ok(Some(current))
}

/// Schema 1 → 4 inside the caller's transaction: every record re-written in
/// its stored form with its secrets sealed, every policy and event likewise.
/// A crash before the commit leaves schema 1 as it was.
fn upgrade_from_v1(tx: &Connection, options: &SqliteOptions) -> Result<(), StorageError> {
    let Some(keyring) = options.upgrade_keyring.as_deref() else {
        return Err(StorageError::new(
            StorageErrorKind::IncompatibleSchema,
            "schema 1 keeps secrets in plaintext; open it with SqliteOptions::upgrade_with(keyring) to seal them",
        ));
    };
    tx.execute_batch(
        "ALTER TABLE portal_mfa_policies RENAME TO portal_mfa_v1_policies;
         ALTER TABLE portal_mfa_records RENAME TO portal_mfa_v1_records;
         ALTER TABLE portal_mfa_authenticators RENAME TO portal_mfa_v1_authenticators;
         ALTER TABLE portal_mfa_events RENAME TO portal_mfa_v1_events;
         DROP INDEX IF EXISTS portal_mfa_events_by_time;",
    )
    .map_err(storage)?;
    tx.execute_batch(SCHEMA).map_err(storage)?;
    for (portal, version, policy) in v1::policies(tx)? {
        tx.execute(
            "INSERT INTO portal_mfa_policies (portal, version, policy) VALUES (?1, ?2, ?3)",
            params![portal.as_str(), int(version), encode_policy(&policy)],
        )
        .map_err(storage)?;
    }
    let records = v1::records(tx)?;
    let total = records.len();
    let mut rng = rand::rng();
    // Versions restart at 1: they are compare-and-swap tokens, and no writer holds one across an upgrade.
    for (done, (portal, user, _, record)) in records.into_iter().enumerate() {
        let bytes = encode_record(&record, &portal, &user, keyring, &mut rng)
            .map_err(|e| StorageError::new(StorageErrorKind::Other, e.to_string()))?;
        let write = RecordWrite {
            bytes,
            summary: RecordSummary::of(&record),
            events: Vec::new(),
        };
        put_record(tx, &portal, &user, None, &write, None, None)?;
        if let Some(progress) = &options.progress {
            progress(done + 1, total);
        }
    }
    // Each user's (and each portal's) chain runs through its events in schema 1's order.
    let mut last: std::collections::HashMap<(PortalId, Option<UserId>), i64> = Default::default();
    v1::events(tx, |event| {
        let owner = (event.portal.clone(), event.user.clone());
        let prev = last.get(&owner).copied();
        if let Some(seq) = insert_events(tx, &owner.0, prev, &[StoredEvent::of(&event)])? {
            last.insert(owner, seq);
        }
        Ok(())
    })?;
    for ((portal, user), seq) in last {
        match user {
            Some(user) => tx.execute(
                "UPDATE portal_mfa_records SET last_event = ?4 WHERE portal = ?1 AND user_kind = ?2 AND user_id = ?3",
                params![portal.as_str(), user.kind().as_str(), user.id(), seq],
            ),
            None => tx.execute(
                "UPDATE portal_mfa_policies SET last_event = ?2 WHERE portal = ?1",
                params![portal.as_str(), seq],
            ),
        }
        .map_err(storage)?;
    }
    tx.execute_batch(
        "DROP TABLE portal_mfa_v1_policies;
         DROP TABLE portal_mfa_v1_records;
         DROP TABLE portal_mfa_v1_authenticators;
         DROP TABLE portal_mfa_v1_events;",
    )
    .map_err(storage)
}
