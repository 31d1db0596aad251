//! One test per flow the product documents describe (customer-portal MFA help
//! pages and two Reset MFA requests) and per thing a sign-in grants past the
//! code check (session stamps, trusted browsers), on the in-memory store and
//! the README's key-value store, through both executors (`blocking::*` runs
//! each operation with `Op::run`, `nonblocking::*` awaits it). The scenarios
//! live in `tests/flows/` so that every store runs exactly the same ones.

mod flows;

use std::sync::Arc;

use flows::TestStore;

fn memory_store() -> Arc<dyn TestStore> {
    flows::memory()
}

seed_flow_tests!(memory_store);

/// The same scenarios on the README's compare-and-swap key-value store
/// (`tests/flows/kv.rs`), which keeps nothing but bytes and versions.
mod readme_store {
    use super::*;

    fn kv_store() -> Arc<dyn TestStore> {
        flows::bytes(flows::kv::KvStore::default())
    }

    seed_flow_tests!(kv_store);
}
