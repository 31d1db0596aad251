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
//! `max` times, and the table holds at most [`Limiter::MAX_KEYS`] keys. When it
//! is full of keys still inside their window, a new key pushes out the key
//! with the fewest attempts (the oldest of those): a flood of new keys only
//! pushes out its own kind, never refuses everyone else, and an account with
//! several failures keeps its count until every single-attempt key has gone.
//!
//! An address is counted by its client: an IPv4 address, or an IPv6 address's
//! /64 (one subscriber's network), so rotating addresses within it buys nothing.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Attempts allowed per key within a window.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    window: u64,
    capacity: usize,
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
            capacity: Self::MAX_KEYS,
            hasher: Default::default(),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The same, keeping at most `keys` keys (tests use a small table).
    pub fn with_keys(mut self, keys: usize) -> Self {
        self.capacity = keys.max(1);
        self
    }

    /// Counts an attempt for `key` now, if the limit allows one: `Ok`, or
    /// `Err` with the seconds until it may try (nothing counted).
    pub fn attempt(&self, key: &str, now: u64) -> Result<(), u64> {
        let id = self.hasher.hash_one(key);
        let mut attempts = self.lock();
        if !attempts.contains_key(&id) && attempts.len() >= self.capacity {
            attempts.retain(|_, times| times.back().is_some_and(|last| last + self.window > now));
            if attempts.len() >= self.capacity {
                // The key that says least: fewest attempts, then the oldest last one.
                let weakest = attempts
                    .iter()
                    .min_by_key(|(_, times)| (times.len(), times.back().copied()))
                    .map(|(id, _)| *id);
                if let Some(weakest) = weakest {
                    attempts.remove(&weakest);
                }
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

/// How many of something are under way now, and the most there ever were:
/// what the tests of a bound read (hashes running, connections open).
#[derive(Debug, Default)]
pub struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Gauge {
    /// Counts one in until the answer is dropped.
    pub fn enter(&self) -> GaugeGuard<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        GaugeGuard(self)
    }

    /// How many now.
    pub fn now(&self) -> usize {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most at once so far.
    pub fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One counted in a [`Gauge`], until dropped.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The key an address is counted under: IPv4 as it is (an IPv4-mapped IPv6
/// address too), IPv6 by its /64.
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{Limiter, address_key};

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
    fn a_full_table_lets_new_keys_in_and_keeps_the_counts_that_matter() {
        const KEYS: usize = 100;
        let limiter = Limiter::new(3, 60).with_keys(KEYS);
        // A victim account with two failures, then a flood of new keys, one attempt each.
        assert_eq!(limiter.attempt("victim", 10), Ok(()));
        assert_eq!(limiter.attempt("victim", 10), Ok(()));
        for i in 0..30 * KEYS {
            assert_eq!(limiter.attempt(&format!("flood-{i}"), 11), Ok(()), "key {i}");
        }
        assert_eq!(limiter.keys(), KEYS);
        // Someone else still gets in, and the victim's count survived the flood.
        assert_eq!(limiter.attempt("someone else", 12), Ok(()));
        assert_eq!(limiter.attempt("victim", 12), Ok(()));
        assert!(limiter.attempt("victim", 12).is_err());
        // Once their window has passed, the old keys go first.
        assert_eq!(limiter.attempt("one more", 80), Ok(()));
        assert_eq!(limiter.keys(), 1);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(address_key(ip("192.0.2.7")), "192.0.2.7");
        assert_ne!(address_key(ip("192.0.2.7")), address_key(ip("192.0.2.8")));
    }
}
