//! Password attempts, limited per account and per client address, so a
//! guesser can neither hammer one account nor spray many from one place.
//! Counted in memory: one app instance (a fleet would keep these in its
//! shared cache).
//!
//! An attempt is counted when it starts, in the same step that checks the
//! limit (check-and-record, as portal-mfa accepts a code once): N parallel
//! requests pass the check at most `max` times, whatever N. A right password
//! takes its attempt back (and clears the account's count), so only failures
//! stay counted.
//!
//! Memory is bounded whatever is submitted: a key is a 64-bit keyed hash of
//! the account or address (never the text itself), each key keeps at most
//! `max` times, and the table holds at most [`Limiter::MAX_KEYS`] keys; when it
//! is full of keys still inside their window, a new key is refused (waits)
//! rather than pushing another out.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Attempts allowed per key within a window.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    window: u64,
    hasher: std::collections::hash_map::RandomState,
    attempts: Mutex<HashMap<u64, VecDeque<u64>>>,
}

impl Limiter {
    /// Most keys kept (about 100 bytes each with its times): a bound in bytes.
    pub const MAX_KEYS: usize = 50_000;

    /// At most `max` attempts per key in any `window` seconds.
    pub fn new(max: usize, window: u64) -> Self {
        Limiter {
            max,
            window,
            hasher: Default::default(),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `key` now, if the limit allows one: `Ok`, or
    /// `Err` with the seconds until it may try (nothing counted).
    pub fn attempt(&self, key: &str, now: u64) -> Result<(), u64> {
        let id = self.hasher.hash_one(key);
        let mut attempts = self.lock();
        if !attempts.contains_key(&id) && attempts.len() >= Self::MAX_KEYS {
            attempts.retain(|_, times| times.back().is_some_and(|last| last + self.window > now));
            if attempts.len() >= Self::MAX_KEYS {
                return Err(self.window);
            }
        }
        let times = attempts.entry(id).or_default();
        while times.front().is_some_and(|t| t + self.window <= now) {
            times.pop_front();
        }
        if times.len() >= self.max {
            return Err(times
                .front()
                .map_or(1, |first| (first + self.window).saturating_sub(now).max(1)));
        }
        times.push_back(now);
        Ok(())
    }

    /// Takes back the newest attempt of `key` (it was not a failure).
    pub fn refund(&self, key: &str) {
        let id = self.hasher.hash_one(key);
        let mut attempts = self.lock();
        if let Some(times) = attempts.get_mut(&id) {
            times.pop_back();
            if times.is_empty() {
                attempts.remove(&id);
            }
        }
    }

    /// Forgets `key`'s attempts (after a right password).
    pub fn clear(&self, key: &str) {
        let id = self.hasher.hash_one(key);
        self.lock().remove(&id);
    }

    /// How many keys are kept now.
    pub fn keys(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, VecDeque<u64>>> {
        self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Limiter;

    #[test]
    fn a_key_waits_once_it_has_tried_max_times_in_the_window() {
        let limiter = Limiter::new(3, 60);
        for t in 0..3 {
            assert_eq!(limiter.attempt("a", 100 + t), Ok(()));
        }
        assert_eq!(
            limiter.attempt("a", 103),
            Err(57),
            "the first attempt leaves the window at 160"
        );
        assert_eq!(limiter.attempt("b", 103), Ok(()), "other keys are not affected");
        assert_eq!(
            limiter.attempt("a", 160),
            Ok(()),
            "the window slid past the first attempt"
        );
        limiter.clear("a");
        assert_eq!(limiter.attempt("a", 161), Ok(()));
        limiter.refund("a");
        assert_eq!(limiter.keys(), 1, "b is still counted; a is gone");
    }

    #[test]
    fn the_table_is_bounded_and_a_full_one_refuses_new_keys() {
        let limiter = Limiter::new(2, 60);
        for i in 0..Limiter::MAX_KEYS {
            assert_eq!(limiter.attempt(&format!("key-{i}"), 10), Ok(()));
        }
        assert!(limiter.attempt("one more", 20).is_err());
        assert_eq!(limiter.keys(), Limiter::MAX_KEYS);
        // Once their window has passed, the old keys make room.
        assert_eq!(limiter.attempt("one more", 70), Ok(()));
        assert_eq!(limiter.keys(), 1);
    }
}
