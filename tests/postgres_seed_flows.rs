//! Every product-document scenario of `tests/seed_flows.rs`, run unchanged on
//! PostgreSQL (a fresh schema of a throwaway server for each store): through
//! `Op::run` on [`PostgresStore`](portal_mfa::store::PostgresStore), and through
//! `.await` on [`AsyncPostgresStore`](portal_mfa::store::AsyncPostgresStore).

#![cfg(feature = "postgres")]

mod flows;

use std::sync::Arc;

use flows::TestStore;

fn postgres_store() -> Arc<dyn TestStore> {
    flows::pair().expect("the server checked by `available`")
}

seed_flow_tests!(postgres_store, when crate::flows::pg::available);
