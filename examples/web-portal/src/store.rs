//! Where MFA records live: a SQLite file (the default) or a PostgreSQL
//! server, both behind one `Arc<dyn AsyncMfaStore>` so every handler is
//! written once.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use portal_mfa::Keyring;
use portal_mfa::store::{AsyncMfaStore, AsyncPostgresStore, OffRuntime, PostgresOptions, SqliteOptions, SqliteStore};

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
        Database::Sqlite(path) => Arc::new(OffRuntime::new(SqliteStore::open_with(
            path,
            SqliteOptions::new().secure_delete(true),
        )?)),
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
