//! Where time comes from. Transitions never read the clock: the driver asks a
//! [`Clock`] once per operation and passes the answer in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The last second an operation's clock may show (`i64::MAX`): past it the
/// driver answers [`Error::ClockOutOfRange`](crate::Error::ClockOutOfRange),
/// so every time a store keeps fits a signed 64-bit column. A lock that would
/// end at or after it never ends by time: it lasts until an admin reset.
pub(crate) const END_OF_TIME: u64 = i64::MAX as u64;

/// A source of Unix time in seconds.
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        // A clock before 1970 is broken; 0 then makes every TOTP check fail rather than panic.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that moves only when told to: for tests, demos and simulations.
/// Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `unix_time`.
    pub fn at(unix_time: u64) -> Self {
        Self(Arc::new(AtomicU64::new(unix_time)))
    }

    /// Sets the time.
    pub fn set(&self, unix_time: u64) {
        self.0.store(unix_time, Ordering::SeqCst);
    }

    /// Moves the time forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// How the async executor sleeps between retries: a runtime's timer, such as
/// `tokio::time::sleep` (any `Fn(Duration) -> impl Future<Output = ()>`).
/// See [`Portal::with_async_sleep`](crate::Portal::with_async_sleep).
pub trait AsyncSleep: Send + Sync {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<F, Fut> AsyncSleep for F
where
    F: Fn(Duration) -> Fut + Send + Sync,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self(duration))
    }
}
