//! One test per flow the product documents describe (customer-portal MFA help pages and two Reset MFA requests), on the
//! in-memory store, through both executors (`blocking::*` runs each operation
//! with `Op::run`, `nonblocking::*` awaits it). The scenarios live in
//! `tests/flows/mod.rs` so that every store runs exactly the same ones.

mod flows;

use std::sync::Arc;

use flows::TestStore;

fn memory_store() -> Arc<dyn TestStore> {
    flows::memory()
}

seed_flow_tests!(memory_store);
