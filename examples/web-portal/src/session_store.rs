//! Sessions kept in the same database as the MFA records (the SQLite file, or
//! PostgreSQL with `--postgres`), so they survive a restart and every
//! instance behind a load balancer shares them. Each session is one row: its
//! id, its record as JSON, when it expires, and whose it is once a password
//! was right (`<area>:<email>`); an expired row is never read, and a task
//! deletes expired rows every minute. A user keeps at most so many sessions:
//! saving a new one deletes their oldest past the cap, so knowing one password
//! cannot fill the table.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

/// A `tower_sessions` store on the portal's database.
#[derive(Clone)]
pub struct DbSessions {
    backend: Backend,
    per_user: i64,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(deadpool_postgres::Pool),
}

impl std::fmt::Debug for DbSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessions")
    }
}

/// A statement parameter either database can bind.
trait Param: rusqlite::ToSql + tokio_postgres::types::ToSql + Send + Sync {}

impl<T: rusqlite::ToSql + tokio_postgres::types::ToSql + Send + Sync> Param for T {}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

impl DbSessions {
    /// On the SQLite file at `path` (its own connection, beside the MFA store's).
    pub fn sqlite(path: &std::path::Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON;
             CREATE TABLE IF NOT EXISTS portal_sessions (
                 id TEXT PRIMARY KEY, record BLOB NOT NULL, expires_at INTEGER NOT NULL
             ) STRICT;",
        )
        .map_err(backend)?;
        // Tables of an older portal gain the owner columns.
        let has_owner: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('portal_sessions') WHERE name = 'owner'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(backend)?
            > 0;
        if !has_owner {
            conn.execute_batch(
                "ALTER TABLE portal_sessions ADD COLUMN owner TEXT;
                 ALTER TABLE portal_sessions ADD COLUMN born INTEGER NOT NULL DEFAULT 0;",
            )
            .map_err(backend)?;
        }
        conn.execute_batch("CREATE INDEX IF NOT EXISTS portal_sessions_owner ON portal_sessions (owner, born)")
            .map_err(backend)?;
        Ok(Self::on(Backend::Sqlite(Arc::new(Mutex::new(conn)))))
    }

    /// On the PostgreSQL server at `url`.
    pub async fn postgres(url: &str) -> Result<Self> {
        let config: tokio_postgres::Config = url.parse().map_err(backend)?;
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(backend)?;
        let client = pool.get().await.map_err(backend)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS portal_sessions (
                     id text PRIMARY KEY, record bytea NOT NULL, expires_at bigint NOT NULL
                 );
                 ALTER TABLE portal_sessions ADD COLUMN IF NOT EXISTS owner text;
                 ALTER TABLE portal_sessions ADD COLUMN IF NOT EXISTS born bigint NOT NULL DEFAULT 0;
                 CREATE INDEX IF NOT EXISTS portal_sessions_owner ON portal_sessions (owner, born);",
            )
            .await
            .map_err(backend)?;
        Ok(Self::on(Backend::Postgres(pool)))
    }

    fn on(backend: Backend) -> Self {
        Self { backend, per_user: 10 }
    }

    /// The same, keeping at most `sessions` sessions per user (at least one).
    pub fn keeping_per_user(mut self, sessions: usize) -> Self {
        self.per_user = i64::try_from(sessions.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// How many sessions `owner` (`<area>:<email>`) has kept.
    pub async fn count_of(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_owned();
        match &self.backend {
            Backend::Sqlite(conn) => {
                on_sqlite(conn, move |c| {
                    c.query_row("SELECT count(*) FROM portal_sessions WHERE owner = ?1", [owner], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map(|n| n as u64)
                })
                .await
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await.map_err(backend)?;
                let row = client
                    .query_one("SELECT count(*) FROM portal_sessions WHERE owner = $1", &[&owner])
                    .await
                    .map_err(backend)?;
                Ok(row.get::<_, i64>(0) as u64)
            }
        }
    }

    /// Deletes every session expired at `now` (Unix time); answers how many.
    pub async fn delete_expired(&self, now: i64) -> Result<u64> {
        self.execute(
            "DELETE FROM portal_sessions WHERE expires_at <= $1",
            vec![Box::new(now)],
        )
        .await
    }

    /// Runs a write on either database; answers the rows it changed. Both
    /// take `$1`, `$2`, … (SQLite numbers them in order of appearance).
    async fn execute(&self, sql: &'static str, params: Vec<Box<dyn Param>>) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                on_sqlite(conn, move |c| {
                    let params = params.iter().map(|p| &**p as &dyn rusqlite::ToSql);
                    c.execute(sql, rusqlite::params_from_iter(params)).map(|n| n as u64)
                })
                .await
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await.map_err(backend)?;
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                client.execute(sql, &params).await.map_err(backend)
            }
        }
    }

    /// How many sessions are kept (expired ones until they are deleted).
    pub async fn count(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                on_sqlite(conn, |c| {
                    c.query_row("SELECT count(*) FROM portal_sessions", [], |r| r.get::<_, i64>(0))
                        .map(|n| n as u64)
                })
                .await
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await.map_err(backend)?;
                let row = client
                    .query_one("SELECT count(*) FROM portal_sessions", &[])
                    .await
                    .map_err(backend)?;
                Ok(row.get::<_, i64>(0) as u64)
            }
        }
    }

    /// Deletes expired sessions every minute, for as long as the process runs.
    pub fn delete_expired_continuously(&self) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                let _ = store
                    .delete_expired(time::OffsetDateTime::now_utc().unix_timestamp())
                    .await;
            }
        });
    }
}

/// Whose session `record` is, once a password was right: `<area>:<email>`
/// of the signed-in user or of the sign-in in progress.
fn owner(record: &Record) -> Option<String> {
    ["signed_in", "pending"].iter().find_map(|key| {
        let value = record.data.get(*key)?;
        let area = value.get("area")?.as_str()?;
        let email = value.get("email")?.as_str()?;
        Some(format!("{area}:{email}"))
    })
}

/// When a row was first saved, in nanoseconds: orders a user's sessions, oldest first.
fn born() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

/// Runs `call` on the SQLite connection, off the async worker.
async fn on_sqlite<T: Send + 'static>(
    conn: &Arc<Mutex<rusqlite::Connection>>,
    call: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || call(&*conn.lock().map_err(backend)?).map_err(backend))
        .await
        .map_err(backend)?
}

#[async_trait]
impl SessionStore for DbSessions {
    async fn save(&self, record: &Record) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        let (id, expires) = (record.id.to_string(), record.expiry_date.unix_timestamp());
        let owner = owner(record);
        self.execute(
            "INSERT INTO portal_sessions (id, record, expires_at, owner, born) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record, expires_at = excluded.expires_at,
                 owner = excluded.owner",
            vec![
                Box::new(id.clone()),
                Box::new(json),
                Box::new(expires),
                Box::new(owner.clone()),
                Box::new(born()),
            ],
        )
        .await?;
        // The user's oldest sessions past the cap end (never the one just saved).
        if let Some(owner) = owner {
            self.execute(
                "DELETE FROM portal_sessions WHERE owner = $1 AND id <> $2 AND id NOT IN (
                     SELECT id FROM portal_sessions WHERE owner = $1 ORDER BY born DESC LIMIT $3
                 )",
                vec![Box::new(owner), Box::new(id), Box::new(self.per_user)],
            )
            .await?;
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let (id, now) = (id.to_string(), time::OffsetDateTime::now_utc().unix_timestamp());
        let json: Option<Vec<u8>> = match &self.backend {
            Backend::Sqlite(conn) => {
                on_sqlite(conn, move |c| {
                    let mut statement =
                        c.prepare_cached("SELECT record FROM portal_sessions WHERE id = ?1 AND expires_at > ?2")?;
                    let mut rows = statement.query(rusqlite::params![id, now])?;
                    rows.next()?.map(|r| r.get::<_, Vec<u8>>(0)).transpose()
                })
                .await?
            }
            Backend::Postgres(pool) => {
                let client = pool.get().await.map_err(backend)?;
                client
                    .query_opt(
                        "SELECT record FROM portal_sessions WHERE id = $1 AND expires_at > $2",
                        &[&id, &now],
                    )
                    .await
                    .map_err(backend)?
                    .map(|row| row.get(0))
            }
        };
        json.map(|json| serde_json::from_slice(&json).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.execute(
            "DELETE FROM portal_sessions WHERE id = $1",
            vec![Box::new(id.to_string())],
        )
        .await
        .map(drop)
    }
}
