//! How long a test waits for what only the machine's speed decides: a child
//! process to start and connect, a server to start, stop or stream, a lock
//! another process holds, a browser to quit. One figure for the whole suite
//! (the web portal's tests include this file too), generous enough for a
//! loaded one-core machine: a wait that runs out is a broken component, never
//! a slow one, and no verdict follows from how fast a wait ended.

use std::time::{Duration, Instant};

/// The longest any test waits for the machine before failing.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `ready` every 10 ms until it answers `Some`, and answers that; after
/// [`PATIENCE`], panics saying `what` never happened.
pub fn wait_for<T>(mut ready: impl FnMut() -> Option<T>, what: &str) -> T {
    let began = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(began.elapsed() < PATIENCE, "not within {PATIENCE:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`wait_for`] a condition.
pub fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    wait_for(|| done().then_some(()), what)
}
