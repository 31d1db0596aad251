//! A thread-safe in-memory store: for tests, demos and single-process hosts.
//! Nothing survives the process.
//!
//! It keeps what every other store keeps, the records' and policies' stored
//! bytes and the audit events' stored form, behind the same
//! [`MfaStore`] contract, so the memory store runs the decode, open, seal
//! and commit path production runs. Records, policies and the audit trail sit
//! behind one lock: a record and its events are always written together, and
//! [`MfaStore::apply`] runs the change under that lock, so it never conflicts.
//! Records are sealed under the host's [`Keyring`] or, without one, under a
//! random key of the store's own (gone with the process, like the records).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use super::{
    Applied, ChangeFn, Commit, EventPosition, EventQuery, MfaStore, RecordSummary, RecordWrite, StorageError,
    StorageErrorKind, Stored, StoredEvent, UserListing, Version,
};
use crate::ids::{PortalId, UserId, UserKind};
use crate::keyring::Keyring;

// foldhash: seeded per process (hash flooding is not free to plan) and several
// times faster than SipHash on short keys, which matters on the sign-in path.
type Hasher = foldhash::fast::RandomState;

/// Records, policies and the audit trail in memory.
#[derive(Debug)]
pub struct MemoryStore {
    state: RwLock<State>,
    /// What seals records when the host gives the portal no keyring.
    own_keys: Keyring,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let key = Keyring::generate_key(&mut rand::rng());
        Self {
            state: RwLock::default(),
            own_keys: Keyring::new("memory", key.as_slice())
                .unwrap_or_else(|_| unreachable!("a 32-byte key under a valid id")),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    portals: HashMap<PortalId, PortalState, Hasher>,
    /// Events with their positions and portals, in commit order.
    events: VecDeque<(EventPosition, PortalId, StoredEvent)>,
    next_position: EventPosition,
    keep_at_most: Option<usize>,
}

/// One portal: its policy beside its users' records, found with one lookup.
#[derive(Debug, Default)]
struct PortalState {
    policy: Option<Stored>,
    records: HashMap<UserKey, (Stored, RecordSummary), Hasher>,
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

/// The next version after `current` (1 for a first write).
fn next(current: Option<Version>) -> Version {
    current.map_or(1, |v| v + 1)
}

impl State {
    fn portal(&mut self, portal: &PortalId) -> &mut PortalState {
        if !self.portals.contains_key(portal) {
            self.portals.insert(portal.clone(), PortalState::default());
        }
        self.portals
            .get_mut(portal)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn append(&mut self, portal: &PortalId, events: impl IntoIterator<Item = StoredEvent>) {
        for event in events {
            self.next_position += 1;
            self.events.push_back((self.next_position, portal.clone(), event));
        }
        // Events past the limit leave in batches: dropping one per sign-in cost a
        // cache miss on the oldest each time.
        if let Some(limit) = self.keep_at_most
            && self.events.len() >= limit.saturating_add(Self::EVICT_BATCH)
        {
            self.drop_hidden();
        }
    }

    const EVICT_BATCH: usize = 256;

    /// The events a query sees: the newest `keep_at_most`, in commit order.
    fn kept(&self) -> std::collections::vec_deque::Iter<'_, (EventPosition, PortalId, StoredEvent)> {
        self.events.range(self.hidden()..)
    }

    fn hidden(&self) -> usize {
        self.keep_at_most
            .map_or(0, |limit| self.events.len().saturating_sub(limit))
    }

    fn drop_hidden(&mut self) {
        self.events.drain(..self.hidden());
    }

    /// Writes `write` as `user`'s record if its version is still `expected`.
    fn commit(&mut self, portal: &PortalId, user: &UserId, expected: Option<Version>, write: RecordWrite) -> Commit {
        let records = &mut self.portal(portal).records;
        let key = UserKey::of(user);
        if records.get(&key).map(|(s, _)| s.version) != expected {
            return Commit::Conflict;
        }
        let version = next(expected);
        let stored = Stored {
            bytes: write.bytes,
            version,
        };
        records.insert(key, (stored, write.summary));
        self.append(portal, write.events);
        Commit::Committed(version)
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
        let store = Self::default();
        if let Ok(mut state) = store.state.write() {
            state.keep_at_most = Some(events);
        }
        store
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

    fn read<T>(&self, read: impl FnOnce(&State) -> T) -> Result<T, StorageError> {
        Ok(read(&*self.state.read().map_err(poisoned)?))
    }

    fn write<T>(&self, write: impl FnOnce(&mut State) -> T) -> Result<T, StorageError> {
        Ok(write(&mut *self.state.write().map_err(poisoned)?))
    }
}

impl MfaStore for MemoryStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<Stored>, StorageError> {
        self.read(|s| {
            let portal = s.portals.get(portal)?;
            portal.records.get(&UserKey::of(user)).map(|(stored, _)| stored.clone())
        })
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        self.write(|s| s.commit(portal, user, expected, write.clone()))
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<Stored>, StorageError> {
        self.read(|s| s.portals.get(portal).and_then(|p| p.policy.clone()))
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        bytes: &[u8],
        events: &[StoredEvent],
    ) -> Result<Commit, StorageError> {
        self.write(|s| {
            let stored = &mut s.portal(portal).policy;
            if stored.as_ref().map(|p| p.version) != expected {
                return Commit::Conflict;
            }
            let version = next(expected);
            *stored = Some(Stored {
                bytes: bytes.to_vec(),
                version,
            });
            s.append(portal, events.iter().cloned());
            Commit::Committed(version)
        })
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        self.read(|s| {
            let selected = |(position, portal, event): &&(EventPosition, PortalId, StoredEvent)| {
                query.follows(*position) && query.selects(portal, event.user.as_ref(), event.at)
            };
            let row = |(position, _, event): &(EventPosition, PortalId, StoredEvent)| (*position, event.bytes.clone());
            if query.newest_first {
                s.kept().rev().filter(selected).take(query.limit).map(row).collect()
            } else {
                s.kept().filter(selected).take(query.limit).map(row).collect()
            }
        })
    }

    fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        self.write(|s| {
            // The portal's oldest events up to its first at or after `before`: a prefix of its trail.
            s.drop_hidden();
            let mut deleted = 0;
            let mut done = false;
            s.events.retain(|(_, p, event)| {
                if done || p != portal {
                    return true;
                }
                if deleted == max || event.at >= before {
                    done = true;
                    return true;
                }
                deleted += 1;
                false
            });
            deleted
        })
    }

    fn count_events(&self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
        self.read(|s| {
            let mut counts = std::collections::BTreeMap::<&str, u64>::new();
            for (_, p, event) in s.kept() {
                if p == portal && (from..until).contains(&event.at) {
                    *counts.entry(event.kind).or_default() += 1;
                }
            }
            counts.into_iter().map(|(kind, n)| (kind.to_owned(), n)).collect()
        })
    }

    /// Users are kept unordered (for sign-in speed), so each page sorts the
    /// matching ones: fine for tests and demos, not for a million users.
    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        self.read(|s| {
            let Some(portal) = s.portals.get(&listing.portal) else {
                return Vec::new();
            };
            let mut page: Vec<(UserId, RecordSummary)> = portal
                .records
                .iter()
                .map(|(key, (_, summary))| (key.user(), *summary))
                .filter(|(user, summary)| listing.selects(user, summary))
                .collect();
            page.sort_by(|a, b| a.0.cmp(&b.0));
            page.truncate(listing.limit);
            page
        })
    }

    fn records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        self.read(|s| {
            let Some(portal) = s.portals.get(portal) else {
                return Vec::new();
            };
            let mut page: Vec<(UserId, Stored)> = portal
                .records
                .iter()
                .map(|(key, (stored, _))| (key.user(), stored.clone()))
                .filter(|(user, _)| after.is_none_or(|a| user > a))
                .collect();
            page.sort_by(|a, b| a.0.cmp(&b.0));
            page.truncate(limit);
            page
        })
    }

    /// Runs `change` under the write lock on the stored record: no other
    /// writer can interleave, so it never conflicts.
    fn apply(&self, portal: &PortalId, user: &UserId, change: &mut ChangeFn<'_>) -> Result<Applied, StorageError> {
        self.write(|s| {
            let state = s.portals.get(portal);
            let policy = state.and_then(|p| p.policy.as_ref());
            let current = state
                .and_then(|p| p.records.get(&UserKey::of(user)))
                .map(|(stored, _)| stored);
            let expected = current.map(|c| c.version);
            let Some(write) = change(current, policy) else {
                return Applied::Done;
            };
            // The write is the store's now: its bytes and events move in, uncopied.
            s.commit(portal, user, expected, write).into()
        })
    }

    fn own_keyring(&self) -> Option<&Keyring> {
        Some(&self.own_keys)
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
        let event = |at| StoredEvent {
            at,
            user: None,
            kind: "policy_settings_changed",
            bytes: Vec::new(),
        };
        let portal = PortalId::new("p");
        let store = MemoryStore::keeping_events(2);
        let mut state = store.state.write().unwrap();
        state.append(&portal, [event(1), event(2), event(3)]);
        state.append(&portal, [event(4)]);
        let kept: Vec<u64> = state.kept().map(|(_, _, e)| e.at).collect();
        assert_eq!(kept, [3, 4]);
        // The hidden ones leave in a batch, never more than one batch past the limit.
        for at in 5..(5 + 3 * State::EVICT_BATCH as u64) {
            state.append(&portal, [event(at)]);
            assert!(state.events.len() < 2 + State::EVICT_BATCH);
            let kept: Vec<u64> = state.kept().map(|(_, _, e)| e.at).collect();
            assert_eq!(kept, [at - 1, at]);
        }
        let none = MemoryStore::keeping_events(0);
        let mut state = none.state.write().unwrap();
        state.append(&portal, [event(5)]);
        assert_eq!(state.kept().count(), 0);
    }
}
