//! [`AsyncPostgresStore`]: the async store, over `tokio-postgres` and a `deadpool-postgres` pool.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Socket};

use super::sql::Sql;
use super::{
    PostgresOptions, check_server, check_tables, corrupt, foreign_schema_table, is_retryable, migrations_from, storage,
    unsigned,
};
use crate::ids::UserKind;
use crate::ids::{PortalId, UserId};
use crate::store::columns::{SummaryColumns, int, lock_column, time, time_range, users_sql};
use crate::store::{
    Applied, AsyncMfaStore, ChangeFn, Commit, EventPosition, EventQuery, RecordSummary, RecordWrite, StorageError,
    StorageErrorKind, StoreFuture, Stored, StoredEvent, UserListing, Version,
};

/// MFA records, policies and the audit trail in PostgreSQL, for async hosts
/// on tokio (axum, actix-web, …).
///
/// ⚠️ Its futures need a tokio runtime (the pool's connections run as tokio tasks).
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct AsyncPostgresStore {
    pool: Pool,
    /// Where the admin's reads go, if not to the primary ([`PostgresOptions::read_standby`]).
    standby: Option<Pool>,
    sql: Arc<Sql>,
}

impl core::fmt::Debug for AsyncPostgresStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncPostgresStore")
            .field("schema", &self.sql.schema)
            .finish_non_exhaustive()
    }
}

impl AsyncPostgresStore {
    /// Connects to `url` (as [`PostgresStore::connect`](super::PostgresStore::connect))
    /// without TLS, with a pool of its own, and creates or migrates the tables.
    /// Errors as for [`PostgresStore::connect`](super::PostgresStore::connect).
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        Self::connect_tls(url, NoTls, options).await
    }

    /// [`AsyncPostgresStore::connect`] with a TLS connector (from
    /// `postgres-native-tls` or `postgres-openssl`).
    pub async fn connect_tls<T>(url: &str, tls: T, options: PostgresOptions) -> Result<Self, StorageError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let primary = pool(options.config(url)?, tls.clone(), &options)?;
        let standby = match &options.read_standby {
            Some(standby) => Some(pool(options.config(&standby.0)?, tls, &options)?),
            None => None,
        };
        Self::open(primary, standby, options).await
    }

    /// Uses the host's own pool (its TLS, its sizes and timeouts), and creates
    /// or migrates the tables. Of `options` only the schema applies; a standby
    /// for the admin's reads comes as a pool too
    /// ([`AsyncPostgresStore::with_standby_pool`]).
    pub async fn with_pool(pool: Pool, options: PostgresOptions) -> Result<Self, StorageError> {
        if options.read_standby.is_some() {
            return Err(StorageError::of_kind(StorageErrorKind::InvalidConfig)
                .because("with a pool of your own, give the standby's pool to with_standby_pool"));
        }
        Self::open(pool, None, options).await
    }

    /// Sends the admin's reads to this pool of a read-only standby, as
    /// [`PostgresOptions::read_standby`] does (read its ⚠️).
    pub fn with_standby_pool(mut self, pool: Pool) -> Self {
        self.standby = Some(pool);
        self
    }

    async fn open(pool: Pool, standby: Option<Pool>, options: PostgresOptions) -> Result<Self, StorageError> {
        let store = Self {
            pool,
            standby,
            sql: Arc::new(options.sql()?),
        };
        let mut client = store.client().await?;
        migrate(&mut client, &store.sql).await?;
        Ok(store)
    }

    /// The schema version the tables are at.
    pub async fn schema_version(&self) -> Result<i32, StorageError> {
        let rows = self.query(&self.sql.schema_version(), &[]).await?;
        get(rows.first().ok_or_else(|| corrupt("no schema version"))?, 0)
    }

    /// The pool the store draws from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A statement that only reads, on a pooled connection of the primary. A
    /// connection the server closed while it sat in the pool fails here before
    /// anything was written: the read runs again on another one, so it costs
    /// the caller nothing.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StorageError> {
        Ok(read(&self.pool, sql, params).await?.1)
    }

    /// [`Self::query`] for the admin's reads: on the standby, if there is one.
    async fn admin_query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StorageError> {
        Ok(read(self.standby.as_ref().unwrap_or(&self.pool), sql, params).await?.1)
    }

    /// The horizon of portal-wide reads, read by a statement of its own before the read.
    async fn horizon(&self) -> Result<String, StorageError> {
        horizon_of(self.query(Sql::HORIZON, &[&self.sql.events_table]).await?)
    }

    /// [`Self::horizon`] where the admin's reads go. A standby knows the
    /// primary's open transactions but not their locks: there the horizon is
    /// the oldest of them.
    async fn admin_horizon(&self) -> Result<String, StorageError> {
        match self.standby {
            Some(_) => horizon_of(self.admin_query(Sql::STANDBY_HORIZON, &[]).await?),
            None => self.horizon().await,
        }
    }

    async fn commit_record(
        &self,
        client: &Object,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        let s = &write.summary;
        let (at, kind, bytes) = event_columns(&write.events);
        let statement = match expected {
            Some(_) => &self.sql.update_record,
            None => &self.sql.insert_record,
        };
        let reset_requested_at = s.reset_requested_at.map(time);
        let params: [&(dyn ToSql + Sync); 18] = [
            &portal.as_str(),
            &user.kind().as_str(),
            &user.id(),
            &expected.map(int),
            &write.bytes,
            &i16::from(s.authenticators),
            &s.pending_enrolment,
            &s.must_enrol,
            &s.locked.map(lock_column),
            &i16::from(s.backup_codes_left),
            &s.last_verified_at.map(time),
            &i64::from(s.grace_sign_ins_used),
            &at,
            &kind,
            &bytes,
            &i16::from(s.trusted_browsers),
            &i16::from(s.passkeys),
            &reset_requested_at,
        ];
        commit_outcome(query(client, statement, &params).await, expected)
    }
}

/// A read on a connection of `pool`, kept for a write that follows, past
/// connections the server closed while they sat in the pool.
async fn read(pool: &Pool, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<(Object, Vec<Row>), StorageError> {
    let mut stale = 0;
    loop {
        let client = pool.get().await.map_err(pool_error)?;
        match query(&client, sql, params).await.map_err(storage) {
            Ok(rows) => return Ok((client, rows)),
            Err(e) if e.is_connection_lost() && stale < pool.status().max_size => stale += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A pool for the connection `config`, sized and timed by `options`.
fn pool<T>(config: tokio_postgres::Config, tls: T, options: &PostgresOptions) -> Result<Pool, StorageError>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.max_connections)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.connect_timeout))
        .create_timeout(Some(options.connect_timeout))
        .build()
        .map_err(|_| {
            StorageError::of_kind(StorageErrorKind::InvalidConfig).because("the connection pool could not be built")
        })
}

async fn query(client: &Object, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

fn pool_error(error: PoolError) -> StorageError {
    use StorageErrorKind as K;
    match error {
        PoolError::Backend(e) => storage(e),
        PoolError::Timeout(TimeoutType::Wait) => {
            StorageError::of_kind(K::Busy).because("every connection of the pool stayed in use past connect_timeout")
        }
        PoolError::Timeout(TimeoutType::Create) => {
            StorageError::of_kind(K::Unavailable).because("the server could not be reached within connect_timeout")
        }
        PoolError::Timeout(TimeoutType::Recycle) | PoolError::Closed => {
            StorageError::of_kind(K::Unavailable).because("the connection pool is closed or stalled")
        }
        PoolError::NoRuntimeSpecified => {
            StorageError::of_kind(K::InvalidConfig).because("the pool has timeouts but no runtime")
        }
        PoolError::PostCreateHook(e) => StorageError::new(K::Other, e.to_string()),
    }
}

/// Creates or migrates the tables in one transaction, under the advisory lock.
async fn migrate(client: &mut Object, sql: &Sql) -> Result<(), StorageError> {
    let tx = client.transaction().await.map_err(storage)?;
    let one = async |query: &str, params: &[&(dyn ToSql + Sync)]| {
        tx.query(query, params)
            .await
            .map_err(storage)?
            .into_iter()
            .next()
            .ok_or_else(|| corrupt("a catalog query returned no row"))
    };
    check_server(get(&one(Sql::SERVER_VERSION, &[]).await?, 0)?)?;
    one(Sql::LOCK_FOR_MIGRATION, &[&sql.schema]).await?;
    if !get::<bool>(&one(Sql::SCHEMA_EXISTS, &[&sql.schema]).await?, 0)? {
        tx.batch_execute(&sql.create_schema()).await.map_err(storage)?;
    }
    let tables = tx.query(Sql::OUR_TABLES, &[&sql.schema]).await.map_err(storage)?;
    let tables = tables.iter().map(|r| get(r, 0)).collect::<Result<Vec<String>, _>>()?;
    let found = if check_tables(&tables)? {
        get(&one(&sql.schema_version(), &[]).await.map_err(foreign_schema_table)?, 0)?
    } else {
        tx.batch_execute(&sql.create_schema_table()).await.map_err(storage)?;
        0
    };
    for step in migrations_from(sql, found)? {
        tx.batch_execute(&step).await.map_err(storage)?;
    }
    tx.commit().await.map_err(storage)
}

impl AsyncMfaStore for AsyncPostgresStore {
    fn load<'a>(&'a self, portal: &'a PortalId, user: &'a UserId) -> StoreFuture<'a, Option<Stored>> {
        Box::pin(async move {
            let key: [&(dyn ToSql + Sync); 3] = [&portal.as_str(), &user.kind().as_str(), &user.id()];
            let rows = self.query(&self.sql.load_record, &key).await?;
            rows.first().map_or(Ok(None), |row| stored_at(row, 0))
        })
    }

    fn commit<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        expected: Option<Version>,
        write: &'a RecordWrite,
    ) -> StoreFuture<'a, Commit> {
        Box::pin(async move {
            let client = self.client().await?;
            self.commit_record(&client, portal, user, expected, write).await
        })
    }

    fn load_policy<'a>(&'a self, portal: &'a PortalId) -> StoreFuture<'a, Option<Stored>> {
        Box::pin(async move {
            let rows = self.query(&self.sql.load_policy, &[&portal.as_str()]).await?;
            rows.first().map_or(Ok(None), |row| stored_at(row, 0))
        })
    }

    fn commit_policy<'a>(
        &'a self,
        portal: &'a PortalId,
        expected: Option<Version>,
        bytes: &'a [u8],
        events: &'a [StoredEvent],
    ) -> StoreFuture<'a, Commit> {
        Box::pin(async move {
            let (at, kind, event_bytes) = event_columns(events);
            let statement = match expected {
                Some(_) => &self.sql.update_policy,
                None => &self.sql.insert_policy,
            };
            let params: [&(dyn ToSql + Sync); 6] =
                [&portal.as_str(), &expected.map(int), &bytes, &at, &kind, &event_bytes];
            let client = self.client().await?;
            commit_outcome(query(&client, statement, &params).await, expected)
        })
    }

    /// A portal-wide page first reads its horizon (`Sql::HORIZON`) with a statement of its own.
    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, Vec<(EventPosition, Vec<u8>)>> {
        Box::pin(async move {
            let Some((from, until)) = time_range(query.from, query.until) else {
                return Ok(Vec::new());
            };
            let user = query.user.as_ref();
            let horizon = match user {
                Some(_) => None,
                None => Some(self.admin_horizon().await?),
            };
            let statement = &self.sql.events[usize::from(user.is_some())][usize::from(query.newest_first)];
            let params: [&(dyn ToSql + Sync); 8] = [
                &query.portal.as_str(),
                &user.map(|u| u.kind().as_str()),
                &user.map(|u| u.id()),
                &query.position().map(int),
                &from,
                &until,
                &int(query.limit as u64),
                &horizon,
            ];
            event_rows(self.admin_query(statement, &params).await?)
        })
    }

    fn prune_events<'a>(&'a self, portal: &'a PortalId, before: u64, max: usize) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let (before, max) = (time(before), int(max as u64));
            let horizon = self.horizon().await?;
            let rows = self
                .query(&self.sql.prune, &[&portal.as_str(), &before, &max, &horizon])
                .await?;
            Ok(count_of(&rows)? as usize)
        })
    }

    fn count_events<'a>(&'a self, portal: &'a PortalId, from: u64, until: u64) -> StoreFuture<'a, Vec<(String, u64)>> {
        Box::pin(async move {
            let Some((from, until)) = time_range(Some(from), Some(until)) else {
                return Ok(Vec::new());
            };
            let rows = self
                .admin_query(&self.sql.count, &[&portal.as_str(), &from, &until])
                .await?;
            rows.iter()
                .map(|r| Ok((get(r, 0)?, unsigned(get(r, 1)?, "a negative count")?)))
                .collect()
        })
    }

    fn users<'a>(&'a self, listing: &'a UserListing) -> StoreFuture<'a, Vec<(UserId, RecordSummary)>> {
        Box::pin(async move {
            let (sql, bound) = users_sql(&self.sql.records_table, listing, |n| match n {
                1..=4 => format!("${n}::text"),
                _ => format!("${n}::bigint"),
            });
            let after = listing.after.as_ref();
            let params: [&(dyn ToSql + Sync); 6] = [
                &listing.portal.as_str(),
                &listing.kind.map(UserKind::as_str),
                &after.map(|u| u.kind().as_str()),
                &after.map(|u| before_nul(u.id())),
                &int(listing.limit as u64),
                &bound,
            ];
            user_rows(self.admin_query(&sql, &params).await?)
        })
    }

    fn records<'a>(
        &'a self,
        portal: &'a PortalId,
        after: Option<&'a UserId>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(UserId, Stored)>> {
        Box::pin(async move {
            let params: [&(dyn ToSql + Sync); 4] = [
                &portal.as_str(),
                &after.map(|u| u.kind().as_str()),
                &after.map(|u| before_nul(u.id())),
                &int(limit as u64),
            ];
            let rows = self
                .query(&self.sql.records[usize::from(after.is_some())], &params)
                .await?;
            rows.iter()
                .map(|r| {
                    let stored = stored_at(r, 2)?.ok_or_else(|| corrupt("a record row without its record"))?;
                    Ok((user_of(r)?, stored))
                })
                .collect()
        })
    }

    /// The policy and the record in one round trip, no lock taken.
    fn read<'a>(&'a self, portal: &'a PortalId, user: &'a UserId) -> StoreFuture<'a, (Option<Stored>, Option<Stored>)> {
        Box::pin(async move {
            let key: [&(dyn ToSql + Sync); 3] = [&portal.as_str(), &user.kind().as_str(), &user.id()];
            let (_, rows) = read(&self.pool, &self.sql.read_for_apply, &key).await?;
            let row = rows.first().ok_or_else(|| corrupt("the read returned no row"))?;
            Ok((stored_at(row, 2)?, stored_at(row, 0)?))
        })
    }

    /// One round trip reads the policy and the record, `change` runs with no
    /// lock held, and one statement writes the record and its events if the
    /// version is still the one read.
    fn apply<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        change: &'a mut ChangeFn<'_>,
    ) -> StoreFuture<'a, Applied> {
        Box::pin(async move {
            let key: [&(dyn ToSql + Sync); 3] = [&portal.as_str(), &user.kind().as_str(), &user.id()];
            let (client, rows) = read(&self.pool, &self.sql.read_for_apply, &key).await?;
            let row = rows.first().ok_or_else(|| corrupt("the read returned no row"))?;
            let (policy, current) = (stored_at(row, 0)?, stored_at(row, 2)?);
            let Some(write) = change(current.as_ref(), policy.as_ref()) else {
                return Ok(Applied::Done);
            };
            let expected = current.map(|c| c.version);
            Ok(self
                .commit_record(&client, portal, user, expected, &write)
                .await?
                .into())
        })
    }
}

/// A commit's events as three arrays, one element per event, in order.
fn event_columns(events: &[StoredEvent]) -> (Vec<i64>, Vec<&str>, Vec<&[u8]>) {
    (
        events.iter().map(|e| time(e.at)).collect(),
        events.iter().map(|e| e.kind).collect(),
        events.iter().map(|e| e.bytes.as_slice()).collect(),
    )
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, StorageError> {
    row.try_get(i)
        .map_err(|_| corrupt("a column holds a value of the wrong type"))
}

/// A `(version, bytes)` pair from columns `i` and `i + 1`, if the row has one.
fn stored_at(row: &Row, i: usize) -> Result<Option<Stored>, StorageError> {
    let version: Option<i64> = get(row, i)?;
    let bytes: Option<Vec<u8>> = get(row, i + 1)?;
    match (version, bytes) {
        (Some(version), Some(bytes)) => Ok(Some(Stored {
            bytes,
            version: unsigned(version, "a negative version")?,
        })),
        _ => Ok(None),
    }
}

fn horizon_of(rows: Vec<Row>) -> Result<String, StorageError> {
    get(
        rows.first()
            .ok_or_else(|| corrupt("the horizon query returned no row"))?,
        0,
    )
}

fn count_of(rows: &[Row]) -> Result<u64, StorageError> {
    let row = rows.first().ok_or_else(|| corrupt("a count returned no row"))?;
    unsigned(get(row, 0)?, "a negative count")
}

fn event_rows(rows: Vec<Row>) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
    rows.iter()
        .map(|r| Ok((unsigned(get(r, 0)?, "a negative event position")?, get(r, 1)?)))
        .collect()
}

/// An id as an exclusive lower bound PostgreSQL text can hold. Stored ids
/// never contain NUL (text cannot), so for each of them `id > "ab\0…"` exactly
/// when `id > "ab"`: a bound cut at its first NUL selects the same rows.
fn before_nul(id: &str) -> &str {
    id.split('\0').next().unwrap_or(id)
}

fn user_rows(rows: Vec<Row>) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
    rows.iter()
        .map(|r| {
            let summary = SummaryColumns {
                authenticators: get::<i16>(r, 2)?.into(),
                pending_enrolment: get(r, 3)?,
                must_enrol: get(r, 4)?,
                locked_until: get(r, 5)?,
                backup_codes_left: get::<i16>(r, 6)?.into(),
                last_verified_at: get(r, 7)?,
                grace_sign_ins_used: get(r, 8)?,
                trusted_browsers: get::<i16>(r, 9)?.into(),
                passkeys: get::<i16>(r, 10)?.into(),
                reset_requested_at: get(r, 11)?,
            }
            .summary()?;
            Ok((user_of(r)?, summary))
        })
        .collect()
}

/// The user in columns 0 and 1.
fn user_of(row: &Row) -> Result<UserId, StorageError> {
    let kind: String = get(row, 0)?;
    let kind = UserKind::from_name(&kind).ok_or_else(|| corrupt("an unknown user kind"))?;
    Ok(UserId::new(kind, get::<String>(row, 1)?))
}

/// How a commit statement ended: one row written, none (another writer moved
/// the version first), or a serialization failure or deadlock, which wrote
/// nothing and is retried like a lost compare-and-swap.
fn commit_outcome(
    result: Result<Vec<Row>, tokio_postgres::Error>,
    expected: Option<Version>,
) -> Result<Commit, StorageError> {
    match result {
        Ok(rows) if count_of(&rows)? == 1 => Ok(Commit::Committed(expected.map_or(1, |v| v + 1))),
        Ok(_) => Ok(Commit::Conflict),
        Err(e) if is_retryable(&e) => Ok(Commit::Conflict),
        Err(e) => Err(storage(e)),
    }
}
