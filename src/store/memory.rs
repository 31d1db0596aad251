//! A thread-safe in-memory store: for tests, demos and single-process hosts.
//! Nothing survives the process.
//!
//! Records, policies and the audit trail sit behind one lock, so a record and
//! its events are always written together. Transitions run under that lock on
//! the record itself: no copy, no conflict. Records stay decoded: this store
//! never writes bytes anywhere, so it needs no [`Keyring`](crate::Keyring).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use super::{
    Applied, Commit, EventPosition, EventQuery, LiveFn, RecordSummary, StorageError, StorageErrorKind, UserListing,
    Version,
};
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId, UserKind};
use crate::policy::PortalPolicy;
use crate::state::{MfaRecord, SessionState};

// foldhash: seeded per process (hash flooding is not free to plan) and several
// times faster than SipHash on short keys, which matters on the sign-in path.
type Hasher = foldhash::fast::RandomState;

/// Records, policies and the audit trail in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    portals: HashMap<PortalId, PortalState, Hasher>,
    /// Events with their positions, in commit order.
    events: VecDeque<(EventPosition, AuditEvent)>,
    next_position: EventPosition,
    keep_at_most: Option<usize>,
}

/// One portal: its policy beside its users' records, found with one lookup.
#[derive(Debug, Default)]
struct PortalState {
    policy: Option<(PortalPolicy, Version)>,
    records: HashMap<UserKey, (MfaRecord, Version), Hasher>,
}

/// A user id as a map key: short ids (emails, UUIDs) inline, so finding a
/// record reads the table and nothing behind a pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UserKey {
    Inline {
        kind: UserKind,
        len: u8,
        bytes: [u8; UserKey::INLINE],
    },
    Heap {
        kind: UserKind,
        id: Arc<str>,
    },
}

impl UserKey {
    const INLINE: usize = 38;

    fn user(&self) -> UserId {
        match self {
            Self::Inline { kind, len, bytes } => {
                UserId::new(*kind, String::from_utf8_lossy(&bytes[..usize::from(*len)]).into_owned())
            }
            Self::Heap { kind, id } => UserId::new(*kind, id.clone()),
        }
    }

    fn of(user: &UserId) -> Self {
        let id = user.id().as_bytes();
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= Self::INLINE => {
                let mut bytes = [0u8; Self::INLINE];
                bytes[..id.len()].copy_from_slice(id);
                Self::Inline {
                    kind: user.kind(),
                    len,
                    bytes,
                }
            }
            _ => Self::Heap {
                kind: user.kind(),
                id: user.id().into(),
            },
        }
    }
}

fn poisoned<T>(_: T) -> StorageError {
    // A writer panicked mid-update; refuse rather than serve possibly torn state.
    StorageError::of_kind(StorageErrorKind::Unavailable)
}

impl State {
    fn portal(&mut self, portal: &PortalId) -> &mut PortalState {
        self.portals.entry(portal.clone()).or_default()
    }

    fn append(&mut self, events: impl IntoIterator<Item = AuditEvent>) {
        for event in events {
            self.next_position += 1;
            self.events.push_back((self.next_position, event));
        }
        // Events past the limit leave in batches: dropping one per sign-in cost a
        // cache miss on the oldest each time (a third of a memory-store sign-in).
        if let Some(limit) = self.keep_at_most
            && self.events.len() >= limit.saturating_add(Self::EVICT_BATCH)
        {
            self.drop_hidden();
        }
    }

    const EVICT_BATCH: usize = 256;

    /// The events a query sees: the newest `keep_at_most`, in commit order.
    fn kept(&self) -> std::collections::vec_deque::Iter<'_, (EventPosition, AuditEvent)> {
        self.events.range(self.hidden()..)
    }

    fn hidden(&self) -> usize {
        self.keep_at_most
            .map_or(0, |limit| self.events.len().saturating_sub(limit))
    }

    fn drop_hidden(&mut self) {
        self.events.drain(..self.hidden());
    }
}

impl MemoryStore {
    /// An empty store keeping every audit event.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping only the newest `events` audit events, so a
    /// long-running process does not grow without bound. (Older ones are
    /// dropped 256 at a time; until then they take memory but no query sees them.)
    pub fn keeping_events(events: usize) -> Self {
        let state = State {
            keep_at_most: Some(events),
            ..State::default()
        };
        Self {
            state: RwLock::new(state),
        }
    }

    /// Number of user records.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .map_or(0, |s| s.portals.values().map(|p| p.records.len()).sum())
    }

    /// Whether there are no user records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the driver calls (see `portal/op.rs`).
impl MemoryStore {
    /// Runs the step under the write lock on the record itself: no copy of the
    /// record is made and no other writer can interleave, so it never conflicts.
    pub(crate) fn run_step(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut LiveFn<'_>,
    ) -> Result<Applied, StorageError> {
        let mut guard = self.state.write().map_err(poisoned)?;
        let state = &mut *guard;
        let key = UserKey::of(user);
        let portal_state = match state.portals.get_mut(portal) {
            Some(p) => p,
            None => state.portals.entry(portal.clone()).or_default(),
        };
        let policy = portal_state.policy.as_ref().map(|(p, _)| p);
        let events = match portal_state.records.get_mut(&key) {
            Some((stored, version)) => {
                let outcome = change(std::mem::take(stored), policy);
                *stored = outcome.record;
                if outcome.changed {
                    *version += 1;
                }
                outcome.events
            }
            None => {
                let outcome = change(MfaRecord::default(), policy);
                if outcome.changed {
                    portal_state.records.insert(key, (outcome.record, 1));
                }
                outcome.events
            }
        };
        state.append(events);
        Ok(Applied::Done)
    }

    /// `read` of the portal's state under the read lock (`None`: the store has nothing of the portal).
    fn read_portal<T>(
        &self,
        portal: &PortalId,
        read: impl FnOnce(&PortalState) -> T,
    ) -> Result<Option<T>, StorageError> {
        Ok(self.state.read().map_err(poisoned)?.portals.get(portal).map(read))
    }

    pub(crate) fn session_state(
        &self,
        portal: &PortalId,
        user: &UserId,
        with_browsers: bool,
    ) -> Result<SessionState, StorageError> {
        let state = |r: &MfaRecord| {
            if with_browsers {
                r.session_state()
            } else {
                SessionState {
                    generation: r.session_generation(),
                    browsers: Vec::new(),
                }
            }
        };
        let record = |p: &PortalState| p.records.get(&UserKey::of(user)).map(|(r, _)| state(r));
        Ok(self.read_portal(portal, record)?.flatten().unwrap_or_default())
    }

    pub(crate) fn read_policy(&self, portal: &PortalId) -> crate::error::Result<Option<(PortalPolicy, Version)>> {
        Ok(self.read_portal(portal, |p| p.policy)?.flatten())
    }

    pub(crate) fn write_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> crate::error::Result<Commit> {
        let mut state = self.state.write().map_err(poisoned)?;
        let stored = &mut state.portal(portal).policy;
        let current = stored.map(|(_, v)| v);
        if current != expected {
            return Ok(Commit::Conflict);
        }
        let version = current.map_or(1, |v| v + 1);
        *stored = Some((*policy, version));
        state.append(events.iter().cloned());
        Ok(Commit::Committed(version))
    }

    pub(crate) fn read_events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, AuditEvent)>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let selected =
            |(position, event): &&(EventPosition, AuditEvent)| query.follows(*position) && query.matches(event);
        let page: Vec<_> = if query.newest_first {
            state.kept().rev().filter(selected).take(query.limit).cloned().collect()
        } else {
            state.kept().filter(selected).take(query.limit).cloned().collect()
        };
        Ok(page)
    }

    pub(crate) fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        let mut state = self.state.write().map_err(poisoned)?;
        // The portal's oldest events up to its first at or after `before`: a prefix of its trail.
        state.drop_hidden();
        let mut deleted = 0;
        let mut done = false;
        state.events.retain(|(_, event)| {
            if done || event.portal != *portal {
                return true;
            }
            if deleted == max || event.at >= before {
                done = true;
                return true;
            }
            deleted += 1;
            false
        });
        Ok(deleted)
    }

    pub(crate) fn count_events(
        &self,
        portal: &PortalId,
        from: u64,
        until: u64,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let mut counts = std::collections::BTreeMap::<&str, u64>::new();
        for (_, event) in state.kept() {
            if event.portal == *portal && (from..until).contains(&event.at) {
                *counts.entry(event.kind.name()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().map(|(kind, n)| (kind.to_owned(), n)).collect())
    }

    /// Users are kept unordered (for sign-in speed), so each page sorts the
    /// matching ones: fine for tests and demos, not for a million users.
    pub(crate) fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let Some(portal) = state.portals.get(&listing.portal) else {
            return Ok(Vec::new());
        };
        let mut page: Vec<(UserId, RecordSummary)> = portal
            .records
            .iter()
            .map(|(key, (record, _))| (key.user(), RecordSummary::of(record)))
            .filter(|(user, summary)| listing.selects(user, summary))
            .collect();
        page.sort_by(|a, b| a.0.cmp(&b.0));
        page.truncate(listing.limit);
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_are_distinct_keys_of_their_own() {
        let short = UserId::customer("a".repeat(UserKey::INLINE));
        let long = UserId::customer("a".repeat(UserKey::INLINE + 1));
        assert!(matches!(UserKey::of(&short), UserKey::Inline { .. }));
        assert!(matches!(UserKey::of(&long), UserKey::Heap { .. }));
        assert_ne!(UserKey::of(&short), UserKey::of(&long));
        assert_eq!(
            UserKey::of(&long),
            UserKey::of(&UserId::customer("a".repeat(UserKey::INLINE + 1)))
        );
        // Kind is part of the key; trailing zero bytes in the inline buffer never collide ids.
        assert_ne!(UserKey::of(&UserId::customer("x")), UserKey::of(&UserId::vendor("x")));
        assert_ne!(
            UserKey::of(&UserId::customer("x")),
            UserKey::of(&UserId::customer("x\0"))
        );
    }

    #[test]
    fn a_store_keeping_n_events_keeps_the_newest_n_in_order() {
        let event = |at| AuditEvent {
            at,
            portal: PortalId::new("p"),
            user: None,
            actor: crate::ids::Actor::System,
            kind: crate::event::EventKind::PolicySettingsChanged,
        };
        let store = MemoryStore::keeping_events(2);
        let mut state = store.state.write().unwrap();
        state.append((1..=3).map(event));
        state.append([event(4)]);
        let kept: Vec<u64> = state.kept().map(|(_, e)| e.at).collect();
        assert_eq!(kept, [3, 4]);
        // The hidden ones leave in a batch, never more than one batch past the limit.
        for at in 5..(5 + 3 * State::EVICT_BATCH as u64) {
            state.append([event(at)]);
            assert!(state.events.len() < 2 + State::EVICT_BATCH);
            let kept: Vec<u64> = state.kept().map(|(_, e)| e.at).collect();
            assert_eq!(kept, [at - 1, at]);
        }
        let none = MemoryStore::keeping_events(0);
        let mut state = none.state.write().unwrap();
        state.append([event(5)]);
        assert_eq!(state.kept().count(), 0);
    }
}
