//! How a [`SqliteStore`](super::SqliteStore) is opened.

use std::sync::Arc;
use std::time::Duration;

use crate::keyring::Keyring;

/// How to open a [`SqliteStore`](super::SqliteStore).
#[derive(Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub struct SqliteOptions {
    pub(super) busy_timeout: Option<Duration>,
    pub(super) full_sync: bool,
    pub(super) secure_delete: bool,
    pub(super) upgrade_keyring: Option<Arc<Keyring>>,
    pub(super) progress: Option<Box<dyn Fn(usize, usize) + Send>>,
}

impl core::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("busy_timeout", &self.busy_timeout)
            .field("full_sync", &self.full_sync)
            .field("secure_delete", &self.secure_delete)
            .field("upgrade_keyring", &self.upgrade_keyring)
            .finish_non_exhaustive()
    }
}

impl SqliteOptions {
    /// The defaults: wait 5 s for another writer, `synchronous=NORMAL`, no upgrade keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for another writer, from the first statement on,
    /// before answering [`StorageErrorKind::Busy`](crate::StorageErrorKind::Busy).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = Some(timeout);
        self
    }

    /// fsync every commit: survives power loss, at the cost of speed.
    #[must_use]
    pub fn full_sync(mut self, on: bool) -> Self {
        self.full_sync = on;
        self
    }

    /// Overwrite deleted content with zeros (SQLite's `secure_delete`): a
    /// replaced record (a sealed secret, a backup-code hash) leaves nothing in
    /// the file's free pages or its WAL. It costs writes where rows shrink or
    /// move; the secrets are sealed either way, so it is off by default.
    #[must_use]
    pub fn secure_delete(mut self, on: bool) -> Self {
        self.secure_delete = on;
        self
    }

    /// The keyring that seals the plaintext secrets of a file at schema 1
    /// while it is upgraded. Use the same keyring as the
    /// [`Portal`](crate::Portal). Without it such a file is refused, untouched.
    #[must_use]
    pub fn upgrade_with(mut self, keyring: impl Into<Arc<Keyring>>) -> Self {
        self.upgrade_keyring = Some(keyring.into());
        self
    }

    /// Called during an upgrade with (records done, records in all), for a
    /// host that logs the progress of a long one.
    #[must_use]
    pub fn on_upgrade_progress(mut self, progress: impl Fn(usize, usize) + Send + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }
}
