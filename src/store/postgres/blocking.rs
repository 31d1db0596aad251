//! [`PostgresStore`]: the blocking store, over the `postgres` crate and an `r2d2` pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::{NoTls, Socket, Statement};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::sql::Sql;
use super::{
    EventPageArgs, PolicyArgs, PostgresOptions, RecordArgs, RecordPageArgs, UserListingArgs, check_server,
    check_tables, commit_outcome, count_of, count_rows, event_rows, foreign_schema_table, get, horizon_of,
    migrations_from, record_rows, storage, stored_at, user_rows,
};
use crate::ids::{PortalId, UserId};
use crate::store::{
    Applied, ChangeFn, Commit, EventPosition, EventQuery, MfaStore, RecordSummary, RecordWrite, StorageError,
    StorageErrorKind, Stored, StoredEvent, UserListing, Version,
};

/// MFA records, policies and the audit trail in PostgreSQL, for blocking hosts.
///
/// ⚠️ Each call blocks the calling thread on the network. In async code use
/// [`AsyncPostgresStore`](super::AsyncPostgresStore). Called on a thread of a
/// tokio runtime anyway (where the `postgres` crate would panic), a call runs on
/// a short-lived thread of its own and blocks the runtime's thread meanwhile:
/// it works, slowly, and starves the runtime under load.
pub struct PostgresStore {
    pool: r2d2::Pool<Connector>,
    sql: Arc<Sql>,
    last_connect_error: Arc<Mutex<Option<ConnectError>>>,
}

impl core::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.sql.schema)
            .finish_non_exhaustive()
    }
}

/// Why the last connection attempt failed, as a kind a checkout timeout can report.
#[derive(Debug, Clone, Copy)]
struct ConnectError {
    kind: StorageErrorKind,
    detail: Option<&'static str>,
}

type Connect = dyn Fn(&postgres::Config) -> Result<postgres::Client, postgres::Error> + Send + Sync;

struct Connector {
    config: postgres::Config,
    connect: Box<Connect>,
    last_error: Arc<Mutex<Option<ConnectError>>>,
}

/// A pooled connection with its prepared statements.
struct Conn {
    client: postgres::Client,
    statements: HashMap<String, Statement>,
    /// Whether this checkout sent a write (whose outcome a lost connection leaves unknown).
    wrote: bool,
}

impl Conn {
    /// Sends a statement that writes: from here on, a lost connection is the caller's to hear about.
    fn write(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error> {
        self.wrote = true;
        self.query(sql, params)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error> {
        let statement = match self.statements.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql)?;
                self.statements.insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        self.client.query(&statement, params)
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let client = (self.connect)(&self.config)?;
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
            wrote: false,
        })
    }

    /// Reads whatever the server sent while the connection sat idle, without
    /// waiting: a server that restarted or ended the session closed it, and the
    /// pool then opens a new one instead of failing the caller's first statement.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        use postgres::fallible_iterator::FallibleIterator;
        conn.client.notifications().iter().next()?;
        if conn.client.is_closed() {
            // Closed without an error message: the next statement reports it.
            return conn.client.simple_query("").map(drop);
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// Keeps the last connection failure, so a checkout that times out can say
/// what is wrong (a password, a missing database, no server) instead of "timed out".
#[derive(Debug)]
struct RememberError(Arc<Mutex<Option<ConnectError>>>);

impl r2d2::HandleError<postgres::Error> for RememberError {
    fn handle_error(&self, error: postgres::Error) {
        let error = storage(error);
        if let Ok(mut last) = self.0.lock() {
            *last = Some(ConnectError {
                kind: error.kind(),
                detail: error.detail(),
            });
        }
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
        T::TlsConnect: Send,
        T::Stream: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let config = postgres::Config::from(options.config(url)?);
        let sql = Arc::new(options.sql()?);
        let connect = Box::new(move |config: &postgres::Config| config.connect(tls.clone()));
        in_a_plain_thread(|| {
            // The first connection reports its own error, typed; it then migrates.
            let mut first = connect(&config).map_err(storage)?;
            migrate(&mut first, &sql)?;
            let last_error = Arc::new(Mutex::new(None));
            let connector = Connector {
                config,
                connect,
                last_error: last_error.clone(),
            };
            let pool = r2d2::Pool::builder()
                .max_size(u32::try_from(options.max_connections).unwrap_or(u32::MAX))
                .min_idle(Some(0))
                .test_on_check_out(true)
                .connection_timeout(options.connect_timeout)
                .error_handler(Box::new(RememberError(last_error.clone())))
                .build_unchecked(connector);
            Ok(Self {
                pool,
                sql,
                last_connect_error: last_error,
            })
        })
    }

    /// The schema version the tables are at.
    pub fn schema_version(&self) -> Result<i32, StorageError> {
        self.run(|conn| {
            let rows = conn.query(&self.sql.schema_version(), &[]).map_err(storage)?;
            get(rows.first().ok_or_else(|| super::corrupt("no schema version"))?, 0)
        })
    }

    /// Runs `op` on a pooled connection, on a thread where the `postgres`
    /// crate may block. A connection the server closed while it sat in the
    /// pool (a restart, an idle timeout) fails at its first statement; when
    /// nothing was written yet, `op` runs again on another connection, so
    /// such a connection costs the caller nothing.
    fn run<T: Send>(&self, mut op: impl FnMut(&mut Conn) -> Result<T, StorageError> + Send) -> Result<T, StorageError> {
        in_a_plain_thread(|| {
            let mut stale = 0;
            loop {
                let mut conn = self.pool.get().map_err(|e| self.checkout_error(e))?;
                conn.wrote = false;
                match op(&mut conn) {
                    Err(e) if e.is_connection_lost() && !conn.wrote && stale < self.pool.max_size() => stale += 1,
                    outcome => return outcome,
                }
            }
        })
    }

    fn checkout_error(&self, error: r2d2::Error) -> StorageError {
        let last = self.last_connect_error.lock().ok().and_then(|last| *last);
        match last {
            Some(ConnectError { kind, detail }) => {
                let error = StorageError::new(kind, error.to_string());
                match detail {
                    Some(detail) => error.because(detail),
                    None => error,
                }
            }
            None => StorageError::new(StorageErrorKind::Busy, error.to_string())
                .because("every connection of the pool stayed in use past connect_timeout"),
        }
    }
}

/// The `postgres` crate blocks on a runtime of its own, which tokio forbids on
/// a thread already running a runtime: there, `run` moves to a scoped thread.
fn in_a_plain_thread<T: Send>(run: impl FnOnce() -> Result<T, StorageError> + Send) -> Result<T, StorageError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|scope| match scope.spawn(run).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Creates or migrates the tables in one transaction, under the advisory lock.
fn migrate(client: &mut postgres::Client, sql: &Sql) -> Result<(), StorageError> {
    let mut tx = client.transaction().map_err(storage)?;
    let one = |tx: &mut postgres::Transaction<'_>, query: &str, params: &[&(dyn ToSql + Sync)]| {
        tx.query(query, params)
            .map_err(storage)?
            .into_iter()
            .next()
            .ok_or_else(|| super::corrupt("a catalog query returned no row"))
    };
    check_server(get(&one(&mut tx, Sql::SERVER_VERSION, &[])?, 0)?)?;
    tx.query(Sql::LOCK_FOR_MIGRATION, &[&sql.schema]).map_err(storage)?;
    if !get::<bool>(&one(&mut tx, Sql::SCHEMA_EXISTS, &[&sql.schema])?, 0)? {
        tx.batch_execute(&sql.create_schema()).map_err(storage)?;
    }
    let tables = tx.query(Sql::OUR_TABLES, &[&sql.schema]).map_err(storage)?;
    let tables = tables.iter().map(|r| get(r, 0)).collect::<Result<Vec<String>, _>>()?;
    let found = if check_tables(&tables)? {
        get(
            &one(&mut tx, &sql.schema_version(), &[]).map_err(foreign_schema_table)?,
            0,
        )?
    } else {
        tx.batch_execute(&sql.create_schema_table()).map_err(storage)?;
        0
    };
    for step in migrations_from(sql, found)? {
        tx.batch_execute(&step).map_err(storage)?;
    }
    tx.commit().map_err(storage)
}

/// The horizon of portal-wide reads, read by a statement of its own before the read.
fn horizon(conn: &mut Conn, sql: &Sql) -> Result<String, StorageError> {
    horizon_of(&conn.query(Sql::HORIZON, &[&sql.events_table]).map_err(storage)?)
}

fn commit_record(
    conn: &mut Conn,
    sql: &Sql,
    portal: &PortalId,
    user: &UserId,
    expected: Option<Version>,
    write: &RecordWrite,
) -> Result<Commit, StorageError> {
    let args = RecordArgs::new(portal, user, expected, write);
    commit_outcome(conn.write(args.statement(sql), &args.params()), expected)
}

impl MfaStore for PostgresStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<Stored>, StorageError> {
        self.run(|conn| {
            let rows = conn
                .query(
                    &self.sql.load_record,
                    &[&portal.as_str(), &user.kind().as_str(), &user.id()],
                )
                .map_err(storage)?;
            rows.first().map_or(Ok(None), |row| stored_at(row, 0))
        })
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        self.run(|conn| commit_record(conn, &self.sql, portal, user, expected, write))
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<Stored>, StorageError> {
        self.run(|conn| {
            let rows = conn
                .query(&self.sql.load_policy, &[&portal.as_str()])
                .map_err(storage)?;
            rows.first().map_or(Ok(None), |row| stored_at(row, 0))
        })
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        bytes: &[u8],
        events: &[StoredEvent],
    ) -> Result<Commit, StorageError> {
        let args = PolicyArgs::new(portal, expected, bytes, events);
        self.run(|conn| commit_outcome(conn.write(args.statement(&self.sql), &args.params()), expected))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        let Some(mut args) = EventPageArgs::new(query) else {
            return Ok(Vec::new());
        };
        self.run(|conn| {
            if args.needs_horizon() {
                args.horizon = Some(horizon(conn, &self.sql)?);
            }
            event_rows(
                conn.query(args.statement(&self.sql, query.newest_first), &args.params())
                    .map_err(storage)?,
            )
        })
    }

    fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        let (before, max) = (super::time(before), super::int(max as u64));
        self.run(|conn| {
            let horizon = horizon(conn, &self.sql)?;
            let rows = conn
                .write(&self.sql.prune, &[&portal.as_str(), &before, &max, &horizon])
                .map_err(storage)?;
            Ok(count_of(&rows)? as usize)
        })
    }

    fn count_events(&self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
        let Some((from, until)) = super::time_range(Some(from), Some(until)) else {
            return Ok(Vec::new());
        };
        self.run(|conn| {
            count_rows(
                conn.query(&self.sql.count, &[&portal.as_str(), &from, &until])
                    .map_err(storage)?,
            )
        })
    }

    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        let args = UserListingArgs::new(&self.sql, listing);
        self.run(|conn| user_rows(conn.query(&args.sql, &args.params()).map_err(storage)?))
    }

    fn records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        let args = RecordPageArgs::new(portal, after, limit);
        self.run(|conn| record_rows(conn.query(args.statement(&self.sql), &args.params()).map_err(storage)?))
    }

    /// One round trip reads the policy and the record, `change` runs with no
    /// lock held, and one statement writes the record and its events if the
    /// version is still the one read.
    fn apply(&self, portal: &PortalId, user: &UserId, change: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        self.run(|conn| {
            let rows = conn
                .query(
                    &self.sql.read_for_apply,
                    &[&portal.as_str(), &user.kind().as_str(), &user.id()],
                )
                .map_err(storage)?;
            let row = rows.first().ok_or_else(|| super::corrupt("the read returned no row"))?;
            let (policy, current) = (stored_at(row, 0)?, stored_at(row, 2)?);
            let Some(write) = change(current.as_ref(), policy.as_ref()) else {
                return Ok(Applied::Done);
            };
            let expected = current.map(|c| c.version);
            Ok(commit_record(conn, &self.sql, portal, user, expected, &write)?.into())
        })
    }
}
