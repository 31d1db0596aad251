//! [`AsyncPostgresStore`]: the async store, over `tokio-postgres` and a `deadpool-postgres` pool.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Socket};

use super::sql::Sql;
use super::{
    EventPageArgs, PolicyArgs, PostgresOptions, RecordArgs, RecordPageArgs, UserListingArgs, check_server,
    check_tables, commit_outcome, count_of, count_rows, event_rows, foreign_schema_table, get, horizon_of,
    migrations_from, record_rows, storage, stored_at, user_rows,
};
use crate::ids::{PortalId, UserId};
use crate::store::{
    Applied, AsyncMfaStore, ChangeFn, Commit, EventPosition, EventQuery, RecordSummary, RecordWrite, StorageError,
    StorageErrorKind, StoreFuture, Stored, StoredEvent, UserListing, Version,
};

/// MFA records, policies and the audit trail in PostgreSQL, for async hosts
/// on tokio (axum, actix-web, …).
///
/// ⚠️ Its futures need a tokio runtime (the pool's connections run as tokio tasks).
#[derive(Clone)]
pub struct AsyncPostgresStore {
    pool: Pool,
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
        let config = options.config(url)?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|_| {
                StorageError::of_kind(StorageErrorKind::InvalidConfig).because("the connection pool could not be built")
            })?;
        Self::with_pool(pool, options).await
    }

    /// Uses the host's own pool (its TLS, its sizes and timeouts), and creates
    /// or migrates the tables. Of `options` only the schema applies.
    pub async fn with_pool(pool: Pool, options: PostgresOptions) -> Result<Self, StorageError> {
        let store = Self {
            pool,
            sql: Arc::new(options.sql()?),
        };
        let mut client = store.client().await?;
        migrate(&mut client, &store.sql).await?;
        Ok(store)
    }

    /// The schema version the tables are at.
    pub async fn schema_version(&self) -> Result<i32, StorageError> {
        let rows = self.query(&self.sql.schema_version(), &[]).await?;
        get(rows.first().ok_or_else(|| super::corrupt("no schema version"))?, 0)
    }

    /// The pool the store draws from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A statement that only reads, on a pooled connection. A connection the
    /// server closed while it sat in the pool fails here before anything was
    /// written: the read runs again on another one, so it costs the caller nothing.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StorageError> {
        Ok(self.read(sql, params).await?.1)
    }

    /// [`Self::query`], keeping the connection for a write that follows.
    async fn read(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<(Object, Vec<Row>), StorageError> {
        let mut stale = 0;
        loop {
            let client = self.client().await?;
            match query(&client, sql, params).await.map_err(storage) {
                Ok(rows) => return Ok((client, rows)),
                Err(e) if e.is_connection_lost() && stale < self.pool.status().max_size => stale += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The horizon of portal-wide reads, read by a statement of its own before the read.
    async fn horizon(&self) -> Result<String, StorageError> {
        horizon_of(&self.query(Sql::HORIZON, &[&self.sql.events_table]).await?)
    }

    async fn commit_record(
        &self,
        client: &Object,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        let args = RecordArgs::new(portal, user, expected, write);
        commit_outcome(query(client, args.statement(&self.sql), &args.params()).await, expected)
    }
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
            .ok_or_else(|| super::corrupt("a catalog query returned no row"))
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
            let rows = self
                .query(
                    &self.sql.load_record,
                    &[&portal.as_str(), &user.kind().as_str(), &user.id()],
                )
                .await?;
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
            let args = PolicyArgs::new(portal, expected, bytes, events);
            let client = self.client().await?;
            commit_outcome(
                query(&client, args.statement(&self.sql), &args.params()).await,
                expected,
            )
        })
    }

    fn events<'a>(&'a self, query: &'a EventQuery) -> StoreFuture<'a, Vec<(EventPosition, Vec<u8>)>> {
        Box::pin(async move {
            let Some(mut args) = EventPageArgs::new(query) else {
                return Ok(Vec::new());
            };
            if args.needs_horizon() {
                args.horizon = Some(self.horizon().await?);
            }
            event_rows(
                self.query(args.statement(&self.sql, query.newest_first), &args.params())
                    .await?,
            )
        })
    }

    fn prune_events<'a>(&'a self, portal: &'a PortalId, before: u64, max: usize) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let (before, max) = (super::time(before), super::int(max as u64));
            let horizon = self.horizon().await?;
            let rows = self
                .query(&self.sql.prune, &[&portal.as_str(), &before, &max, &horizon])
                .await?;
            Ok(count_of(&rows)? as usize)
        })
    }

    fn count_events<'a>(&'a self, portal: &'a PortalId, from: u64, until: u64) -> StoreFuture<'a, Vec<(String, u64)>> {
        Box::pin(async move {
            let Some((from, until)) = super::time_range(Some(from), Some(until)) else {
                return Ok(Vec::new());
            };
            count_rows(self.query(&self.sql.count, &[&portal.as_str(), &from, &until]).await?)
        })
    }

    fn users<'a>(&'a self, listing: &'a UserListing) -> StoreFuture<'a, Vec<(UserId, RecordSummary)>> {
        Box::pin(async move {
            let args = UserListingArgs::new(&self.sql, listing);
            user_rows(self.query(&args.sql, &args.params()).await?)
        })
    }

    fn records<'a>(
        &'a self,
        portal: &'a PortalId,
        after: Option<&'a UserId>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(UserId, Stored)>> {
        Box::pin(async move {
            let args = RecordPageArgs::new(portal, after, limit);
            record_rows(self.query(args.statement(&self.sql), &args.params()).await?)
        })
    }

    /// As [`PostgresStore::apply`](super::PostgresStore): one read, `change`
    /// with no lock held, one compare-and-swap statement.
    fn apply<'a>(
        &'a self,
        portal: &'a PortalId,
        user: &'a UserId,
        change: &'a mut ChangeFn<'_>,
    ) -> StoreFuture<'a, Applied> {
        Box::pin(async move {
            let (client, rows) = self
                .read(
                    &self.sql.read_for_apply,
                    &[&portal.as_str(), &user.kind().as_str(), &user.id()],
                )
                .await?;
            let row = rows.first().ok_or_else(|| super::corrupt("the read returned no row"))?;
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
