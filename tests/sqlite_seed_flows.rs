//! Every product-document scenario of `tests/seed_flows.rs`, run unchanged on
//! the SQLite store (a fresh database file on disk for each), through both
//! executors.

#![cfg(feature = "sqlite")]

mod flows;

use std::sync::Arc;

use flows::TestStore;
use portal_mfa::store::SqliteStore;

fn sqlite_store() -> Arc<dyn TestStore> {
    let dir = flows::TempDir::new("flows");
    flows::bytes_in(SqliteStore::open(dir.file("mfa.db")).unwrap(), dir)
}

seed_flow_tests!(sqlite_store);
