//! A thread-safe in-memory store: for tests, demos and single-process hosts
//! that keep MFA state elsewhere. Nothing survives the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

use super::{Applied, Change, Commit, EventQuery, MfaStore, StorageError, StorageErrorKind, Version};
use crate::event::AuditEvent;
use crate::ids::{PortalId, UserId};
use crate::policy::PortalPolicy;
use crate::state::MfaRecord;

type Records = HashMap<(PortalId, UserId), (MfaRecord, Version)>;

/// Records, policies and the audit trail in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: RwLock<Records>,
    policies: RwLock<HashMap<PortalId, (PortalPolicy, Version)>>,
    events: Mutex<EventLog>,
}

#[derive(Debug, Default)]
struct EventLog {
    events: VecDeque<AuditEvent>,
    keep_at_most: Option<usize>,
}

fn poisoned<T>(_: T) -> StorageError {
    // A writer panicked mid-update; refuse rather than serve possibly torn state.
    StorageError::of_kind(StorageErrorKind::Unavailable)
}

impl MemoryStore {
    /// An empty store keeping every audit event.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping only the newest `events` audit events, so a
    /// long-running process does not grow without bound.
    pub fn keeping_events(events: usize) -> Self {
        let store = Self::default();
        if let Ok(mut log) = store.events.lock() {
            log.keep_at_most = Some(events);
        }
        store
    }

    /// Number of user records.
    pub fn len(&self) -> usize {
        self.records.read().map_or(0, |r| r.len())
    }

    /// Whether there are no user records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append(&self, events: impl IntoIterator<Item = AuditEvent>) -> Result<(), StorageError> {
        let mut log = self.events.lock().map_err(poisoned)?;
        log.events.extend(events);
        if let Some(limit) = log.keep_at_most {
            let excess = log.events.len().saturating_sub(limit);
            log.events.drain(..excess);
        }
        Ok(())
    }
}

impl MfaStore for MemoryStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<(MfaRecord, Version)>, StorageError> {
        let records = self.records.read().map_err(poisoned)?;
        Ok(records.get(&(portal.clone(), user.clone())).cloned())
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        record: &MfaRecord,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        let mut records = self.records.write().map_err(poisoned)?;
        let key = (portal.clone(), user.clone());
        let current = records.get(&key).map(|(_, v)| *v);
        if current != expected {
            return Ok(Commit::Conflict);
        }
        let version = current.map_or(1, |v| v + 1);
        // Events first while the record lock is held: both land, or (on a poisoned log) neither.
        self.append(events.iter().cloned())?;
        records.insert(key, (record.clone(), version));
        Ok(Commit::Committed(version))
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<(PortalPolicy, Version)>, StorageError> {
        Ok(self.policies.read().map_err(poisoned)?.get(portal).copied())
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        policy: &PortalPolicy,
        events: &[AuditEvent],
    ) -> Result<Commit, StorageError> {
        let mut policies = self.policies.write().map_err(poisoned)?;
        let current = policies.get(portal).map(|(_, v)| *v);
        if current != expected {
            return Ok(Commit::Conflict);
        }
        let version = current.map_or(1, |v| v + 1);
        self.append(events.iter().cloned())?;
        policies.insert(portal.clone(), (*policy, version));
        Ok(Commit::Committed(version))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, StorageError> {
        let log = self.events.lock().map_err(poisoned)?;
        Ok(log.events.iter().filter(|e| query.matches(e)).cloned().collect())
    }

    /// Runs `change` under the write lock on the record itself: no copy of the
    /// record is made and no other writer can interleave, so it never conflicts.
    fn apply(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut dyn FnMut(MfaRecord) -> Change,
    ) -> Result<Applied, StorageError> {
        let mut records = self.records.write().map_err(poisoned)?;
        let key = (portal.clone(), user.clone());
        match records.get_mut(&key) {
            Some((stored, version)) => {
                let outcome = change(std::mem::take(stored));
                *stored = outcome.record;
                if outcome.changed {
                    *version += 1;
                    self.append(outcome.events)?;
                }
            }
            None => {
                let outcome = change(MfaRecord::default());
                if outcome.changed {
                    self.append(outcome.events)?;
                    records.insert(key, (outcome.record, 1));
                }
            }
        }
        Ok(Applied::Done)
    }
}
