//! Every SQL statement the PostgreSQL stores send, sync and async alike, and
//! the schema they migrate. Table names are qualified with the configured
//! schema once, when a store is built; statements are prepared once per
//! connection and cached.
//!
//! Why the statements look as they do:
//! - **A commit is one statement.** The compare-and-swap `UPDATE … WHERE
//!   version = $4` (or the `INSERT … ON CONFLICT DO NOTHING` of a first write)
//!   and the `INSERT` of the events are one `WITH` statement: PostgreSQL runs it
//!   as one transaction, the events are written only if the record was, and no
//!   lock outlives the statement. A sign-in is two round trips (read, write).
//! - **Events are ordered by `(writer, seq)`**, the writing transaction's id and
//!   then the identity column. Identity values are handed out before commit, so
//!   a reader could see seq 11 committed while seq 10 is still in flight. A
//!   portal-wide page therefore first reads a *horizon*: the oldest transaction
//!   still writing to the events table (it holds the table's `RowExclusiveLock`,
//!   taken before its transaction id), or, if none, the next id to be handed
//!   out. The page then returns only events written below it, by a later
//!   statement: whatever is still in flight then had its id when the horizon was
//!   read, and so holds it down. Nothing can later appear before a cursor, and
//!   only writers of these events (never other work on the server) hold a page
//!   back. One user's events need no horizon: their commits are serialized by the
//!   record's version.
//! - **Text keys use the `C` collation**, so user order is byte order, the order
//!   [`UserId`](crate::UserId) compares in, on every server whatever its locale.

/// The PostgreSQL schema version this build writes.
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub const SCHEMA_VERSION: i32 = 3;

/// The migrations, in order: `MIGRATIONS[n]` brings schema `n` to `n + 1`.
/// `{s}` stands for the schema qualifier (`"name".` or nothing).
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE {s}portal_mfa_policies (
    portal text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL,
    policy bytea NOT NULL
);
CREATE TABLE {s}portal_mfa_records (
    portal text COLLATE "C" NOT NULL,
    user_kind text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    record bytea NOT NULL,
    authenticators smallint NOT NULL,
    pending_enrolment boolean NOT NULL,
    must_enrol boolean NOT NULL,
    locked_until bigint,
    backup_codes_left smallint NOT NULL,
    last_verified_at bigint,
    grace_sign_ins_used bigint NOT NULL,
    PRIMARY KEY (portal, user_kind, user_id)
);
-- Admin listings by status, in user order. Partial: a sign-in of a user in none of these
-- states leaves them alone.
CREATE INDEX portal_mfa_records_locked ON {s}portal_mfa_records (portal, user_kind, user_id, locked_until)
    WHERE locked_until IS NOT NULL;
CREATE INDEX portal_mfa_records_must_enrol ON {s}portal_mfa_records (portal, user_kind, user_id) WHERE must_enrol;
CREATE INDEX portal_mfa_records_pending ON {s}portal_mfa_records (portal, user_kind, user_id) WHERE pending_enrolment;
CREATE INDEX portal_mfa_records_without_mfa ON {s}portal_mfa_records (portal, user_kind, user_id)
    WHERE authenticators = 0;
CREATE TABLE {s}portal_mfa_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    writer xid8 NOT NULL DEFAULT pg_current_xact_id(),
    portal text COLLATE "C" NOT NULL,
    user_kind text COLLATE "C",
    user_id text COLLATE "C",
    at bigint NOT NULL,
    kind text NOT NULL,
    event bytea NOT NULL
);
CREATE INDEX portal_mfa_events_portal ON {s}portal_mfa_events (portal, writer, seq);
CREATE INDEX portal_mfa_events_user ON {s}portal_mfa_events (portal, user_kind, user_id, writer, seq);
"#,
    r#"
-- How many browsers each user trusts, for the admin listing (0 until the record's next write).
ALTER TABLE {s}portal_mfa_records ADD COLUMN trusted_browsers smallint NOT NULL DEFAULT 0;
"#,
    r#"
-- How many of each user's factors are passkeys, and when the user asked for a reset, for the admin
-- listing (0 and NULL are right for every row an earlier version wrote: only stored form 4 holds
-- passkeys and requests).
ALTER TABLE {s}portal_mfa_records ADD COLUMN passkeys smallint NOT NULL DEFAULT 0;
ALTER TABLE {s}portal_mfa_records ADD COLUMN reset_requested_at bigint;
CREATE INDEX portal_mfa_records_reset_requested ON {s}portal_mfa_records (portal, user_kind, user_id)
    WHERE reset_requested_at IS NOT NULL;
"#,
];

/// The events a commit writes, in order, from three arrays ($13–$15 for a
/// record, $4–$6 for a policy), and only if the commit's first part wrote a row.
const LOG_EVENTS: &str = r#"
logged AS (
    INSERT INTO {s}portal_mfa_events (portal, user_kind, user_id, at, kind, event)
    SELECT $1, {user}, e.at, e.kind, e.event
    FROM written, unnest({at}::bigint[], {kind}::text[], {event}::bytea[]) WITH ORDINALITY AS e (at, kind, event, n)
    ORDER BY e.n
    RETURNING 1
)
SELECT count(*) FROM written"#;

/// Every statement, qualified for one schema.
#[derive(Debug)]
pub(super) struct Sql {
    /// The schema's name, for the catalog queries (`None`: the connection's current schema).
    pub(super) schema: Option<String>,
    prefix: String,
    pub(super) read_for_apply: String,
    pub(super) load_record: String,
    pub(super) load_policy: String,
    pub(super) insert_record: String,
    pub(super) update_record: String,
    pub(super) insert_policy: String,
    pub(super) update_policy: String,
    /// `[user trail?][newest first?]`
    pub(super) events: [[String; 2]; 2],
    pub(super) prune: String,
    /// The events table's name, qualified, for the horizon (`$1`).
    pub(super) events_table: String,
    /// The records table's name, qualified, for user listings.
    pub(super) records_table: String,
    pub(super) count: String,
    /// `[after a user?]`
    pub(super) records: [String; 2],
}

impl Sql {
    pub(super) fn new(schema: Option<&str>) -> Self {
        let prefix = schema.map(|s| format!("{}.", quote_identifier(s))).unwrap_or_default();
        let q = |sql: &str| sql.replace("{s}", &prefix);
        let log = |user: &str, at: u8| {
            LOG_EVENTS
                .replace("{user}", user)
                .replace("{at}", &format!("${at}"))
                .replace("{kind}", &format!("${}", at + 1))
                .replace("{event}", &format!("${}", at + 2))
        };
        let record_events = log("$2, $3", 13);
        let policy_events = log("NULL, NULL", 4);
        let summary = "authenticators = $6::smallint, pending_enrolment = $7::boolean, must_enrol = $8::boolean,
            locked_until = $9::bigint, backup_codes_left = $10::smallint, last_verified_at = $11::bigint,
            grace_sign_ins_used = $12::bigint, trusted_browsers = $16::smallint, passkeys = $17::smallint,
            reset_requested_at = $18::bigint";
        let events = |user: bool, newest: bool| {
            let cursor = if newest {
                "SELECT writer, seq FROM {s}portal_mfa_events WHERE seq = $4::bigint
                 UNION ALL SELECT '18446744073709551615'::xid8, 9223372036854775807 WHERE $4::bigint IS NULL"
            } else {
                "SELECT writer, seq FROM {s}portal_mfa_events WHERE seq = $4::bigint
                 UNION ALL SELECT '0'::xid8, 0 ORDER BY seq DESC LIMIT 1"
            };
            let (whose, horizon) = if user {
                (
                    "e.user_kind = $2::text AND e.user_id = $3::text",
                    "AND $8::text IS NULL",
                )
            } else {
                ("$2::text IS NULL AND $3::text IS NULL", "AND e.writer < $8::text::xid8")
            };
            let (after, order) = if newest { ("<", "DESC") } else { (">", "") };
            q(&format!(
                "WITH c AS ({cursor})
                 SELECT e.seq, e.event FROM {{s}}portal_mfa_events e
                 WHERE e.portal = $1::text AND {whose}
                   AND (e.writer, e.seq) {after} ((SELECT writer FROM c), (SELECT seq FROM c))
                   AND e.at >= $5::bigint AND ($6::bigint IS NULL OR e.at < $6::bigint) {horizon}
                 ORDER BY e.writer {order}, e.seq {order} LIMIT $7::bigint"
            ))
        };
        Self {
            schema: schema.map(str::to_owned),
            read_for_apply: q("SELECT p.version, p.policy, r.version, r.record
                 FROM (SELECT 1) AS one
                 LEFT JOIN {s}portal_mfa_policies p ON p.portal = $1::text
                 LEFT JOIN {s}portal_mfa_records r ON r.portal = $1::text AND r.user_kind = $2::text
                     AND r.user_id = $3::text"),
            load_record: q("SELECT version, record FROM {s}portal_mfa_records
                 WHERE portal = $1::text AND user_kind = $2::text AND user_id = $3::text"),
            load_policy: q("SELECT version, policy FROM {s}portal_mfa_policies WHERE portal = $1::text"),
            insert_record: q(&format!(
                "WITH written AS (
                    INSERT INTO {{s}}portal_mfa_records
                    VALUES ($1::text, $2::text, $3::text, coalesce($4::bigint, 0) + 1, $5::bytea, $6::smallint,
                        $7::boolean, $8::boolean, $9::bigint, $10::smallint, $11::bigint, $12::bigint, $16::smallint,
                        $17::smallint, $18::bigint)
                    ON CONFLICT DO NOTHING
                    RETURNING 1
                 ), {record_events}"
            )),
            update_record: q(&format!(
                "WITH written AS (
                    UPDATE {{s}}portal_mfa_records SET version = $4::bigint + 1, record = $5::bytea, {summary}
                    WHERE portal = $1::text AND user_kind = $2::text AND user_id = $3::text AND version = $4::bigint
                    RETURNING 1
                 ), {record_events}"
            )),
            insert_policy: q(&format!(
                "WITH written AS (
                    INSERT INTO {{s}}portal_mfa_policies
                    VALUES ($1::text, coalesce($2::bigint, 0) + 1, $3::bytea)
                    ON CONFLICT DO NOTHING
                    RETURNING 1
                 ), {policy_events}"
            )),
            update_policy: q(&format!(
                "WITH written AS (
                    UPDATE {{s}}portal_mfa_policies SET version = $2::bigint + 1, policy = $3::bytea
                    WHERE portal = $1::text AND version = $2::bigint
                    RETURNING 1
                 ), {policy_events}"
            )),
            events: [
                [events(false, false), events(false, true)],
                [events(true, false), events(true, true)],
            ],
            // The portal's oldest events below the horizon, in order, up to the first at or
            // after `before`: the trail is cut from its start and never gets a hole.
            prune: q("WITH head AS (
                    SELECT seq, at, row_number() OVER (ORDER BY writer, seq) AS n FROM (
                        SELECT writer, seq, at FROM {s}portal_mfa_events
                        WHERE portal = $1::text AND writer < $4::text::xid8
                        ORDER BY writer, seq LIMIT $3::bigint
                    ) oldest
                 ), stop AS (
                    SELECT coalesce(min(n), $3::bigint + 1) AS n FROM head WHERE at >= $2::bigint
                 ), gone AS (
                    DELETE FROM {s}portal_mfa_events WHERE seq IN (SELECT seq FROM head, stop WHERE head.n < stop.n)
                    RETURNING 1
                 )
                 SELECT count(*) FROM gone"),
            count: q("SELECT kind, count(*) FROM {s}portal_mfa_events
                 WHERE portal = $1::text AND at >= $2::bigint AND ($3::bigint IS NULL OR at < $3::bigint)
                 GROUP BY kind ORDER BY kind"),
            records: [
                q("SELECT user_kind, user_id, version, record FROM {s}portal_mfa_records
                   WHERE portal = $1::text AND $2::text IS NULL AND $3::text IS NULL
                   ORDER BY user_kind, user_id LIMIT $4::bigint"),
                q("SELECT user_kind, user_id, version, record FROM {s}portal_mfa_records
                   WHERE portal = $1::text AND (user_kind, user_id) > ($2::text, $3::text)
                   ORDER BY user_kind, user_id LIMIT $4::bigint"),
            ],
            events_table: format!("{prefix}portal_mfa_events"),
            records_table: format!("{prefix}portal_mfa_records"),
            prefix,
        }
    }

    /// The horizon of portal-wide reads (see the module notes), as text: the
    /// oldest in-flight transaction holding a write lock on the events table
    /// (`$1`), else the next transaction id. `pg_locks` shows 32-bit ids; the
    /// snapshot's in-progress list gives them in full.
    pub(super) const HORIZON: &'static str = "WITH snap AS (SELECT pg_current_snapshot() AS s)
        SELECT coalesce(
            (SELECT x FROM snap, pg_snapshot_xip(snap.s) AS x
             WHERE x::text::numeric % 4294967296 IN (
                 SELECT own.transactionid::text::numeric FROM pg_locks l
                 JOIN pg_locks own ON own.virtualtransaction = l.virtualtransaction
                     AND own.locktype = 'transactionid' AND own.mode = 'ExclusiveLock' AND own.granted
                 WHERE l.locktype = 'relation' AND l.relation = to_regclass($1::text) AND l.mode = 'RowExclusiveLock')
             ORDER BY x LIMIT 1),
            (SELECT pg_snapshot_xmax(s) FROM snap))::text";

    /// The horizon on a standby: the oldest transaction the primary still has open.
    pub(super) const STANDBY_HORIZON: &'static str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";

    /// Serializes migrations of this schema across every process: a lock on a
    /// key derived from the schema's name, held until the transaction ends.
    pub(super) const LOCK_FOR_MIGRATION: &'static str = "SELECT pg_advisory_xact_lock(hashtextextended('portal_mfa migrate ' || coalesce($1::text, current_schema()), 0))";

    /// Whether the named schema exists (`$1` NULL: the current one, which always does).
    pub(super) const SCHEMA_EXISTS: &'static str =
        "SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text)";

    /// Our tables (by name) in the schema: what is there before migrating.
    pub(super) const OUR_TABLES: &'static str = r"SELECT c.relname::text FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = coalesce($1::text, current_schema()) AND c.relname LIKE 'portal\_mfa\_%'";

    /// The server's version, as a number (150004 for 15.4).
    pub(super) const SERVER_VERSION: &'static str = "SELECT current_setting('server_version_num')::integer";

    pub(super) fn create_schema(&self) -> String {
        format!("CREATE SCHEMA {}", self.prefix.trim_end_matches('.'))
    }

    pub(super) fn create_schema_table(&self) -> String {
        format!(
            "CREATE TABLE {}portal_mfa_schema (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
            self.prefix
        )
    }

    pub(super) fn schema_version(&self) -> String {
        format!("SELECT coalesce(max(version), 0) FROM {}portal_mfa_schema", self.prefix)
    }

    /// The statements that bring schema `from` to the next version, and record it.
    pub(super) fn migration(&self, from: i32) -> String {
        let to = from + 1;
        format!(
            "{}\nINSERT INTO {}portal_mfa_schema (version) VALUES ({to});",
            MIGRATIONS[from as usize].replace("{s}", &self.prefix),
            self.prefix
        )
    }
}

/// A schema name as a quoted identifier: any name PostgreSQL allows, quotes doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
