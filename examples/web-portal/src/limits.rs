//! Password attempts, limited per account and per client address, so a
//! guesser can neither hammer one account nor spray many from one place.
//! Counted in memory: one app instance (a fleet would keep these in its
//! shared cache).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Failed attempts allowed per key within a window.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    window: u64,
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl Limiter {
    /// At most `max` failures per key in any `window` seconds.
    pub fn new(max: usize, window: u64) -> Self {
        Limiter {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `None` if `key` may try now, or the seconds until it may.
    pub fn wait(&self, key: &str, now: u64) -> Option<u64> {
        let mut failures = self.lock();
        let times = failures.get_mut(key)?;
        self.forget_old(times, now);
        (times.len() >= self.max).then(|| {
            times
                .front()
                .map_or(1, |first| (first + self.window).saturating_sub(now).max(1))
        })
    }

    /// Counts a failure for `key`.
    pub fn fail(&self, key: &str, now: u64) {
        let mut failures = self.lock();
        // Bound the memory a flood of distinct keys can take.
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.back().is_some_and(|last| last + self.window > now));
        }
        let times = failures.entry(key.to_owned()).or_default();
        self.forget_old(times, now);
        times.push_back(now);
    }

    /// Forgets `key`'s failures (after a right password).
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    fn forget_old(&self, times: &mut VecDeque<u64>, now: u64) {
        while times.front().is_some_and(|t| t + self.window <= now) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<u64>>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Limiter;

    #[test]
    fn a_key_waits_once_it_has_failed_max_times_in_the_window() {
        let limiter = Limiter::new(3, 60);
        for t in 0..3 {
            assert_eq!(limiter.wait("a", 100 + t), None);
            limiter.fail("a", 100 + t);
        }
        assert_eq!(
            limiter.wait("a", 103),
            Some(57),
            "the first failure leaves the window at 160"
        );
        assert_eq!(limiter.wait("b", 103), None, "other keys are not affected");
        assert_eq!(limiter.wait("a", 160), None, "the window slid past the first failure");
        limiter.clear("a");
        limiter.fail("a", 161);
        assert_eq!(limiter.wait("a", 161), None);
    }
}
