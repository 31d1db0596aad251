//! The README's "write your own store" example, kept identical: a toy
//! key-value map behind one lock, seen by the driver only through load and
//! compare-and-swap commit, as a host's database store would be. The trait's
//! default `apply` then races for real.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use portal_mfa::store::{
    Commit, EventPosition, MfaStore, RecordSummary, RecordWrite, Stored, StoredEvent, UserListing, Version,
};
use portal_mfa::{PortalId, StorageError, UserId, audit::EventQuery};

/// Records (with their summaries), policies and audit events in maps behind one lock.
#[derive(Default)]
pub struct KvStore(Mutex<Kv>);

#[derive(Default)]
pub struct Kv {
    pub records: BTreeMap<(PortalId, UserId), Stored>,
    pub summaries: BTreeMap<(PortalId, UserId), RecordSummary>,
    pub policies: BTreeMap<PortalId, Stored>,
    pub events: BTreeMap<EventPosition, (PortalId, StoredEvent)>,
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

impl Kv {
    fn append(&mut self, portal: &PortalId, events: &[StoredEvent]) {
        for event in events {
            let position = self.events.last_key_value().map_or(1, |(p, _)| p + 1);
            self.events.insert(position, (portal.clone(), event.clone()));
        }
    }
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
        let key = (portal.clone(), user.clone());
        let commit = swap(&mut kv.records, key.clone(), expected, &write.bytes);
        if commit != Commit::Conflict {
            kv.summaries.insert(key, write.summary);
            kv.append(portal, &write.events);
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
            kv.append(portal, events);
        }
        Ok(commit)
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<(EventPosition, Vec<u8>)>, StorageError> {
        let kv = self.kv();
        let selected = |(position, (p, e)): &(&EventPosition, &(PortalId, StoredEvent))| {
            query.follows(**position) && query.selects(p, e.user.as_ref(), e.at)
        };
        let page = |events: &mut dyn Iterator<Item = (&EventPosition, &(PortalId, StoredEvent))>| {
            events
                .filter(selected)
                .take(query.limit)
                .map(|(n, (_, e))| (*n, e.bytes.clone()))
                .collect()
        };
        Ok(if query.newest_first {
            page(&mut kv.events.iter().rev())
        } else {
            page(&mut kv.events.iter())
        })
    }

    fn prune_events(&self, portal: &PortalId, before: u64, max: usize) -> Result<usize, StorageError> {
        let mut kv = self.kv();
        let oldest: Vec<EventPosition> = kv
            .events
            .iter()
            .filter(|(_, (p, _))| p == portal)
            .take_while(|(_, (_, e))| e.at < before)
            .take(max)
            .map(|(n, _)| *n)
            .collect();
        oldest.iter().for_each(|n| drop(kv.events.remove(n)));
        Ok(oldest.len())
    }

    fn count_events(&self, portal: &PortalId, from: u64, until: u64) -> Result<Vec<(String, u64)>, StorageError> {
        let mut counts = BTreeMap::<String, u64>::new();
        for (p, e) in self.kv().events.values() {
            if p == portal && (from..until).contains(&e.at) {
                *counts.entry(e.kind.to_owned()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    fn users(&self, listing: &UserListing) -> Result<Vec<(UserId, RecordSummary)>, StorageError> {
        let kv = self.kv();
        let mine = kv
            .summaries
            .iter()
            .filter(|((p, u), s)| *p == listing.portal && listing.selects(u, s));
        Ok(mine.take(listing.limit).map(|((_, u), s)| (u.clone(), *s)).collect())
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
