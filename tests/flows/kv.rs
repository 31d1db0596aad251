//! The README's "write your own store" example, kept identical: a toy
//! key-value map behind one lock, seen by the driver only through load and
//! compare-and-swap commit, as a host's database store would be. The trait's
//! default `apply` then races for real.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use portal_mfa::store::{Commit, MfaStore, RecordWrite, Stored, StoredEvent, Version};
use portal_mfa::{EventQuery, PortalId, StorageError, UserId};

/// Records, policies and audit events in maps behind one lock.
#[derive(Default)]
pub struct KvStore(Mutex<Kv>);

#[derive(Default)]
pub struct Kv {
    pub records: BTreeMap<(PortalId, UserId), Stored>,
    pub policies: BTreeMap<PortalId, Stored>,
    pub events: Vec<(PortalId, StoredEvent)>,
}

/// Compare-and-swap: stores `bytes` under `key` only if its version is still `expected`.
fn swap<K: Ord>(map: &mut BTreeMap<K, Stored>, key: K, expected: Option<Version>, bytes: &[u8]) -> Commit {
    if map.get(&key).map(|s| s.version) != expected {
        return Commit::Conflict;
    }
    let version = expected.map_or(1, |v| v + 1);
    map.insert(
        key,
        Stored {
            bytes: bytes.to_vec(),
            version,
        },
    );
    Commit::Committed(version)
}

impl KvStore {
    pub fn kv(&self) -> MutexGuard<'_, Kv> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MfaStore for KvStore {
    fn load(&self, portal: &PortalId, user: &UserId) -> Result<Option<Stored>, StorageError> {
        Ok(self.kv().records.get(&(portal.clone(), user.clone())).cloned())
    }

    fn commit(
        &self,
        portal: &PortalId,
        user: &UserId,
        expected: Option<Version>,
        write: &RecordWrite,
    ) -> Result<Commit, StorageError> {
        let mut kv = self.kv();
        let commit = swap(&mut kv.records, (portal.clone(), user.clone()), expected, &write.bytes);
        if commit != Commit::Conflict {
            kv.events
                .extend(write.events.iter().map(|e| (portal.clone(), e.clone())));
        }
        Ok(commit)
    }

    fn load_policy(&self, portal: &PortalId) -> Result<Option<Stored>, StorageError> {
        Ok(self.kv().policies.get(portal).cloned())
    }

    fn commit_policy(
        &self,
        portal: &PortalId,
        expected: Option<Version>,
        bytes: &[u8],
        events: &[StoredEvent],
    ) -> Result<Commit, StorageError> {
        let mut kv = self.kv();
        let commit = swap(&mut kv.policies, portal.clone(), expected, bytes);
        if commit != Commit::Conflict {
            kv.events.extend(events.iter().map(|e| (portal.clone(), e.clone())));
        }
        Ok(commit)
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<Vec<u8>>, StorageError> {
        let kv = self.kv();
        let selected = kv
            .events
            .iter()
            .filter(|(p, e)| query.selects(p, e.user.as_ref(), e.at));
        Ok(selected.map(|(_, e)| e.bytes.clone()).collect())
    }

    fn records(
        &self,
        portal: &PortalId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Stored)>, StorageError> {
        let kv = self.kv();
        let mine = kv
            .records
            .iter()
            .filter(|((p, u), _)| p == portal && after.is_none_or(|a| u > a));
        Ok(mine.take(limit).map(|((_, u), s)| (u.clone(), s.clone())).collect())
    }
}
