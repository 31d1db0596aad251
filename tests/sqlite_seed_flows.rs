//! Every product-document scenario of `tests/seed_flows.rs`, run unchanged on
//! the SQLite store (a fresh database file on disk for each).

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;

use portal_mfa::SqliteStore;
use portal_mfa::store::Backend;

fn sqlite_store() -> Arc<dyn Backend> {
    let dir = flows::TempDir::new("flows");
    Arc::new(flows::InTempDir(SqliteStore::open(dir.file("mfa.db")).unwrap(), dir))
}

seed_flow_tests!(sqlite_store);
