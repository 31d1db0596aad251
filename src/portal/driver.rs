//! The one retry loop: every operation, on either executor, runs its
//! attempts here. An attempt is the pure transition run inside the store's
//! atomic call; a conflict re-runs it on the fresh record after a jittered
//! back-off; the answer and notices leave only once the store has committed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use rand::CryptoRng;

use super::Portal;
use super::op::{Driver, Pause};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::event::AuditEvent;
use crate::ids::Actor;
use crate::ids::UserId;
use crate::keyring::Keyring;
use crate::policy::PortalPolicy;
use crate::state::{Context, MfaRecord, Outcome, policy_change_events};
use crate::store::{
    Applied, Backend, Commit, RecordSummary, RecordWrite, StorageError, StorageErrorKind, Stored, StoredEvent,
};
use crate::stored::{decode_policy, decode_record, encode_record};

impl<S: Sync, C: Clock, R: CryptoRng + Send> Portal<S, C, R> {
    /// Runs `transition` on the user's stored record in one atomic store call
    /// (check-and-record), re-running it on a conflict. The answer and the
    /// notices leave only once the store has committed.
    ///
    /// With `read_first` (an operation that mostly only reads), the record
    /// and policy are first read plainly and the transition run on them; only
    /// if it changes something does the operation take the write path, where
    /// the transition runs again on the record under the store's lock.
    pub(super) async fn on_record<T: Send>(
        &self,
        driver: Driver<'_>,
        user: &UserId,
        actor: &Actor,
        read_first: bool,
        mut transition: impl FnMut(MfaRecord, &Context<'_>) -> Outcome<T> + Send,
    ) -> Result<T> {
        user.check_len()?;
        let keys = self.keyring.as_deref().or_else(|| driver.backend.own_keyring());
        if read_first {
            let (record, policy) = driver.backend.read_record_and_policy(&self.id, user).await?;
            let mut step = Attempt::new(self, keys, user, actor, &mut transition)?;
            // Nothing to write: the read's answer is the answer (and a read notifies no one).
            if step.on_bytes(record.as_ref(), policy.as_ref()).is_none()
                && let Some(result) = step.result.take()
            {
                return result;
            }
        }
        for attempt in 0..self.max_attempts {
            let mut step = Attempt::new(self, keys, user, actor, &mut transition)?;
            let id = &self.id;
            let applied = match driver.backend {
                Backend::Blocking(s) => s.apply(id, user, &mut |record, policy| step.on_bytes(record, policy))?,
                Backend::Async(s) => {
                    s.apply(id, user, &mut |record, policy| step.on_bytes(record, policy))
                        .await?
                }
            };
            if applied == Applied::Conflict {
                self.back_off(driver.pause, attempt).await;
                continue;
            }
            if let Some(notifier) = &self.notifier {
                step.notices.iter().for_each(|e| notifier.notify(e));
            }
            return step.result.unwrap_or_else(|| {
                Err(Error::Storage(
                    StorageError::of_kind(StorageErrorKind::Other)
                        .because("the store reported a commit without running the change"),
                ))
            });
        }
        Err(Error::Conflict {
            attempts: self.max_attempts,
        })
    }

    /// Applies `change` to the stored policy with compare-and-swap, re-reading on a conflict.
    pub(super) async fn on_policy(
        &self,
        driver: Driver<'_>,
        actor: &Actor,
        change: impl Fn(PortalPolicy) -> Result<PortalPolicy> + Send + Sync,
    ) -> Result<PortalPolicy> {
        for attempt in 0..self.max_attempts {
            let stored = driver.backend.read_policy(&self.id).await?;
            let (old, expected) = stored.map_or((self.default_policy, None), |(p, v)| (p, Some(v)));
            let new = change(old)?;
            let events = policy_change_events(&old, &new, &self.id, actor, self.now()?);
            if events.is_empty() && expected.is_some() {
                return Ok(new);
            }
            match driver.backend.write_policy(&self.id, expected, &new, &events).await? {
                Commit::Committed(_) => return Ok(new),
                Commit::Conflict => self.back_off(driver.pause, attempt).await,
            }
        }
        Err(Error::Conflict {
            attempts: self.max_attempts,
        })
    }

    /// Spreads out writers that keep colliding: the first retries only yield,
    /// later ones wait a random time in `[base/2, base)`, `base` doubling from
    /// 20 µs up to 5 ms, so two losers rarely collide again.
    pub(super) async fn back_off(&self, pause: Pause, attempt: u32) {
        // Every lost attempt passes here: the one place the span counts them.
        #[cfg(feature = "tracing")]
        super::trace::retried(attempt + 1);
        let wait = if attempt < 2 {
            Duration::ZERO
        } else {
            let base = 20u64 << (attempt - 2).min(8);
            let jitter = u64::from(self.rng().next_u32()) % (base / 2);
            Duration::from_micros(base / 2 + jitter)
        };
        self.wait(pause, wait).await;
    }

    /// Waits `wait` the executor's way (zero: just yield): the thread sleeps,
    /// the task awaits the host's timer or yields until it has passed.
    pub(super) async fn wait(&self, pause: Pause, wait: Duration) {
        match (pause, &self.sleep) {
            (Pause::Thread, _) if wait.is_zero() => std::thread::yield_now(),
            (Pause::Thread, _) => std::thread::sleep(wait),
            (Pause::Task, Some(sleep)) if !wait.is_zero() => sleep.sleep(wait).await,
            (Pause::Task, _) => YieldUntil::after(wait).await,
        }
    }
}

/// Without a runtime's timer: yield to the executor (at least once) until
/// `deadline`, so other tasks run while this one waits.
struct YieldUntil {
    deadline: Instant,
    yielded: bool,
}

impl YieldUntil {
    fn after(wait: Duration) -> Self {
        Self {
            deadline: Instant::now() + wait,
            yielded: false,
        }
    }
}

impl Future for YieldUntil {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.yielded && Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S, C: Clock, R> Portal<S, C, R> {
    /// The time now, refused past `i64::MAX` seconds: one rule for every time
    /// the crate stores, so SQL stores (signed 64-bit) order them as the memory store does.
    pub(super) fn now(&self) -> Result<u64> {
        let now = self.clock.now();
        if now > crate::clock::END_OF_TIME {
            return Err(Error::ClockOutOfRange);
        }
        Ok(now)
    }
}

/// One attempt of an operation, as the store runs it inside its atomic call;
/// what it produced for the caller waits here until the store commits.
struct Attempt<'a, S, C, R, T, F> {
    portal: &'a Portal<S, C, R>,
    /// What records are sealed under: the host's keyring, else the store's own.
    keys: Option<&'a Keyring>,
    user: &'a UserId,
    actor: &'a Actor,
    now: u64,
    transition: &'a mut F,
    result: Option<Result<T>>,
    notices: Vec<AuditEvent>,
}

impl<'a, S, C: Clock, R, T, F> Attempt<'a, S, C, R, T, F> {
    /// An attempt at the portal's time now.
    fn new(
        portal: &'a Portal<S, C, R>,
        keys: Option<&'a Keyring>,
        user: &'a UserId,
        actor: &'a Actor,
        transition: &'a mut F,
    ) -> Result<Self> {
        Ok(Self {
            portal,
            keys,
            user,
            actor,
            now: portal.now()?,
            transition,
            result: None,
            notices: Vec::new(),
        })
    }
}

impl<S, C, R, T, F> Attempt<'_, S, C, R, T, F>
where
    R: CryptoRng,
    F: FnMut(MfaRecord, &Context<'_>) -> Outcome<T>,
{
    /// The pure transition on the opened record: its outcome, the answer and
    /// the notices kept for after the commit.
    fn on_record(&mut self, record: MfaRecord, policy: Option<&PortalPolicy>) -> Outcome<()> {
        let portal = self.portal;
        let ctx = Context {
            portal: &portal.id,
            user: self.user,
            policy: policy.unwrap_or(&portal.default_policy),
            now: self.now,
            actor: self.actor,
            keys: &portal.stamp_keys,
            passkeys: portal.passkeys.as_deref(),
        };
        let outcome = (self.transition)(record, &ctx);
        self.result = Some(outcome.result);
        // Without a notifier nobody hears them: not worth a pass over the events.
        if portal.notifier.is_some() {
            self.notices = outcome
                .events
                .iter()
                .filter(|e| e.kind.user_must_hear())
                .cloned()
                .collect();
        }
        Outcome {
            record: outcome.record,
            result: Ok(()),
            events: outcome.events,
            changed: outcome.changed,
        }
    }

    /// Opens the stored record, runs the transition, and seals the result.
    /// A record or policy that does not decode is the answer, and nothing is written.
    fn on_bytes(&mut self, record: Option<&Stored>, policy: Option<&Stored>) -> Option<RecordWrite> {
        let portal = self.portal;
        let opened = (|| {
            let policy = policy.map(|p| decode_policy(&p.bytes)).transpose()?;
            let record = match record {
                None => MfaRecord::default(),
                Some(stored) => decode_record(&stored.bytes, &portal.id, self.user, self.keyring()?)?.record,
            };
            Ok((record, policy))
        })();
        let (record, policy) = match opened {
            Ok(opened) => opened,
            Err(e) => return self.fail(e),
        };
        let change = self.on_record(record, policy.as_ref());
        if !change.changed {
            return None;
        }
        let sealed = self
            .keyring()
            .and_then(|keyring| encode_record(&change.record, &portal.id, self.user, keyring, &mut *portal.rng()));
        match sealed {
            Ok(bytes) => Some(RecordWrite {
                bytes,
                summary: RecordSummary::of(&change.record),
                events: change.events.iter().map(StoredEvent::of).collect(),
            }),
            Err(e) => self.fail(e),
        }
    }

    fn keyring(&self) -> Result<&Keyring> {
        self.keys.ok_or(Error::NoKeyring)
    }

    /// The attempt could not run: this error is the answer, and nothing is written or notified.
    fn fail(&mut self, error: Error) -> Option<RecordWrite> {
        self.result = Some(Err(error));
        self.notices.clear();
        None
    }
}
