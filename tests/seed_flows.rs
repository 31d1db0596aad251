//! One test per flow the product documents describe (shared/seeds), on the
//! in-memory store. The scenarios live in `tests/flows/mod.rs` so that every
//! store runs exactly the same ones.

mod flows;

use std::sync::Arc;

use portal_mfa::MemoryStore;
use portal_mfa::store::Backend;

fn memory_store() -> Arc<dyn Backend> {
    Arc::new(MemoryStore::new())
}

seed_flow_tests!(memory_store);
