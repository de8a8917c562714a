//! The etcd 3.4 state machine the checker linearizes against: mvcc's
//! revisions and key history, the lessor's key attachments, compaction.
//!
//! The state keeps every key's whole history (a linked list of changes per
//! key, shared between states), so a read of a past revision is answered
//! exactly while searching rather than checked after a linearization is
//! found (which could reject a history another order would accept).
//! Stepping copies only what a write touches: the maps sit behind `Arc`s
//! and the key histories are persistent lists. Each state carries content
//! hashes, updated per change, so the search's memo table hashes a state
//! in O(1) and compares by hash before walking the maps.

use super::request::{
    Compare, CompareOp, CompareTarget, KeyValue, Quoted, Request, Response, TxnOp, TxnResult,
    ERR_COMPACTED, ERR_DUPLICATE_KEY, ERR_FUTURE_REV, ERR_LEASE_EXISTS, ERR_LEASE_NOT_FOUND,
    ERR_LEASE_TTL_TOO_LARGE, MAX_LEASE_TTL_S,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

/// A new store's revision (etcd's `currentRev` starts at 1, so the first
/// write is revision 2).
pub const INITIAL_REVISION: i64 = 1;
/// etcd's `compactMainRev` before any compaction.
const NO_COMPACTION: i64 = -1;
/// How many live keys [`EtcdState`]'s `Display` lists before eliding.
const DISPLAY_MAX_KEYS: usize = 16;

type Key = Arc<[u8]>;

/// One revision of one key: a put's kv or a delete's tombstone (`None`),
/// linked to the key's previous change.
struct Change {
    revision: i64,
    kv: Option<KeyValue>,
    previous: Option<Arc<Change>>,
    /// Hash of this change and every earlier one.
    hash: u64,
}

impl Change {
    fn new(revision: i64, kv: Option<KeyValue>, previous: Option<Arc<Change>>) -> Arc<Change> {
        let previous_hash = previous.as_ref().map_or(0, |p| p.hash);
        let hash = hash_of(&(previous_hash, revision, &kv));
        Arc::new(Change {
            revision,
            kv,
            previous,
            hash,
        })
    }

    /// The key as of `revision`: the newest change at or before it.
    fn at(&self, revision: i64) -> Option<&KeyValue> {
        let mut change = self;
        loop {
            if change.revision <= revision {
                return change.kv.as_ref();
            }
            change = change.previous.as_deref()?;
        }
    }
}

impl PartialEq for Change {
    // Iterative: a key's history may be thousands of changes long.
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self, other);
        loop {
            if std::ptr::eq(a, b) {
                return true;
            }
            if a.hash != b.hash || a.revision != b.revision || a.kv != b.kv {
                return false;
            }
            match (&a.previous, &b.previous) {
                (None, None) => return true,
                (Some(x), Some(y)) => (a, b) = (x, y),
                _ => return false,
            }
        }
    }
}

impl Eq for Change {}

impl Drop for Change {
    // Iterative, for the same reason: dropping a long history recursively
    // would overflow the stack.
    fn drop(&mut self) {
        let mut next = self.previous.take();
        while let Some(change) = next {
            match Arc::try_unwrap(change) {
                Ok(mut change) => next = change.previous.take(),
                Err(_) => break,
            }
        }
    }
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rev {}: {:?}", self.revision, self.kv)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    ttl_s: i64,
    keys: BTreeSet<Key>,
}

/// etcd's KV and lease state: revision, compacted revision, every key's
/// history, and the leases with their attached keys. Leases never expire
/// here: a history's leases must outlive it (long TTLs), or an expiry is an
/// unrecorded revoke the model cannot explain.
#[derive(Clone)]
pub struct EtcdState {
    revision: i64,
    compact_revision: i64,
    /// Key → its newest change; deleted keys keep their tombstone.
    kvs: Arc<BTreeMap<Key, Arc<Change>>>,
    leases: Arc<BTreeMap<i64, Lease>>,
    /// Wrapping sum of `entry_hash` over `kvs`.
    kvs_hash: u64,
    /// Wrapping sum of `lease_hash` and `attachment_hash` over `leases`.
    leases_hash: u64,
}

impl Default for EtcdState {
    fn default() -> Self {
        Self::new()
    }
}

impl EtcdState {
    /// A new cluster's state: revision 1, nothing compacted, no keys.
    pub fn new() -> Self {
        EtcdState {
            revision: INITIAL_REVISION,
            compact_revision: NO_COMPACTION,
            kvs: Arc::default(),
            leases: Arc::default(),
            kvs_hash: 0,
            leases_hash: 0,
        }
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The last compaction's revision (-1 before any).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The key's current kv, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.kvs.get(key).and_then(|change| change.kv.as_ref())
    }

    /// The key's kv as of `revision`, if it existed then.
    pub fn get_at(&self, key: &[u8], revision: i64) -> Option<&KeyValue> {
        self.kvs.get(key).and_then(|change| change.at(revision))
    }

    /// Every live kv, in key order.
    pub fn kvs(&self) -> impl Iterator<Item = &KeyValue> {
        self.kvs.values().filter_map(|change| change.kv.as_ref())
    }

    /// The keys attached to a lease, or `None` if it does not exist.
    pub fn lease_keys(&self, id: i64) -> Option<Vec<&[u8]>> {
        let lease = self.leases.get(&id)?;
        Some(lease.keys.iter().map(|key| &key[..]).collect())
    }

    /// Applies `request` as etcd 3.4 would: the next state and etcd's
    /// answer. A definite error leaves the state unchanged.
    pub fn step(&self, request: &Request) -> (EtcdState, Response) {
        let result = match request {
            Request::Range {
                key,
                range_end,
                revision,
                limit,
            } => self
                .range(self.revision, key, range_end, *revision, *limit)
                .map(|(kvs, count)| {
                    let revision = self.revision;
                    (
                        self.clone(),
                        Response::Range {
                            revision,
                            kvs,
                            count,
                        },
                    )
                }),
            Request::Put { key, value, lease } => self.put(key, value, *lease),
            Request::Delete { key, range_end } => Ok(self.delete(key, range_end)),
            Request::Txn {
                compares,
                success,
                failure,
            } => self.txn(compares, success, failure),
            Request::LeaseGrant { id, ttl_s } => self.lease_grant(*id, *ttl_s),
            Request::LeaseRevoke { id } => self.lease_revoke(*id),
            Request::LeaseKeepAlive { id } => {
                // etcd answers a keep-alive of a missing lease with TTL 0.
                let ttl_s = self.leases.get(id).map_or(0, |lease| lease.ttl_s.max(1));
                Ok((self.clone(), Response::LeaseKeepAlive { ttl_s }))
            }
            Request::Compact { revision } => self.compact(*revision),
        };
        result.unwrap_or_else(|message| (self.clone(), Response::Error(message.to_owned())))
    }

    /// A range read as mvcc's `rangeKeys` does it: `view` is the revision
    /// the read runs at (a write txn sees its own changes at view + 1).
    fn range(
        &self,
        view: i64,
        key: &[u8],
        range_end: &[u8],
        revision: i64,
        limit: i64,
    ) -> Result<(Vec<KeyValue>, i64), &'static str> {
        if revision > view {
            return Err(ERR_FUTURE_REV);
        }
        let at = if revision <= 0 { view } else { revision };
        if at < self.compact_revision {
            return Err(ERR_COMPACTED);
        }
        let mut kvs: Vec<KeyValue> = self
            .changes_in(key, range_end)
            .filter_map(|(_, change)| change.at(at).cloned())
            .collect();
        let count = i64::try_from(kvs.len()).expect("kv count fits i64");
        if limit > 0 {
            kvs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok((kvs, count))
    }

    /// Every key (live or deleted) in an etcd key range.
    fn changes_in<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Change>)> + 'a {
        let bounds = match range_end {
            [] => Some((Bound::Included(key), Bound::Included(key))),
            [0] => Some((Bound::Included(key), Bound::Unbounded)),
            end if end <= key => None,
            end => Some((Bound::Included(key), Bound::Excluded(end))),
        };
        bounds
            .into_iter()
            .flat_map(move |bounds| self.kvs.range::<[u8], _>(bounds))
    }

    fn lease_exists(&self, lease: i64) -> bool {
        lease == 0 || self.leases.contains_key(&lease)
    }

    fn put(&self, key: &[u8], value: &[u8], lease: i64) -> StepResult {
        if !self.lease_exists(lease) {
            return Err(ERR_LEASE_NOT_FOUND);
        }
        let mut txn = WriteTxn::begin(self);
        txn.put(key, value, lease);
        let state = txn.commit();
        let revision = state.revision;
        Ok((state, Response::Put { revision }))
    }

    fn delete(&self, key: &[u8], range_end: &[u8]) -> (EtcdState, Response) {
        let mut txn = WriteTxn::begin(self);
        let deleted = txn.delete_range(key, range_end);
        let state = txn.commit();
        let revision = state.revision;
        (state, Response::Delete { revision, deleted })
    }

    fn txn(&self, compares: &[Compare], success: &[TxnOp], failure: &[TxnOp]) -> StepResult {
        // The gRPC layer refuses these before raft, whatever the state.
        if has_duplicate_keys(success) || has_duplicate_keys(failure) {
            return Err(ERR_DUPLICATE_KEY);
        }
        let succeeded = compares.iter().all(|compare| self.compare(compare));
        let branch = if succeeded { success } else { failure };
        self.check_branch(branch)?;
        let mut txn = WriteTxn::begin(self);
        let results = branch.iter().map(|op| txn.apply(op)).collect();
        let state = txn.commit();
        let revision = state.revision;
        let response = Response::Txn {
            revision,
            succeeded,
            results,
        };
        Ok((state, response))
    }

    /// etcd's `checkRequests` on the branch that will run: leases of puts
    /// first, then the revisions of ranges, both against the state before
    /// the txn.
    fn check_branch(&self, branch: &[TxnOp]) -> Result<(), &'static str> {
        for op in branch {
            if let TxnOp::Put { lease, .. } = op {
                if !self.lease_exists(*lease) {
                    return Err(ERR_LEASE_NOT_FOUND);
                }
            }
        }
        for op in branch {
            if let TxnOp::Range { revision, .. } = op {
                match *revision {
                    0 => {}
                    r if r > self.revision => return Err(ERR_FUTURE_REV),
                    r if r < self.compact_revision => return Err(ERR_COMPACTED),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// etcd's `applyCompare`.
    fn compare(&self, compare: &Compare) -> bool {
        let kv = self.get(&compare.key);
        let field = |f: fn(&KeyValue) -> i64| kv.map_or(0, f);
        let ordering = match &compare.target {
            CompareTarget::Value(operand) => match kv {
                None => return false,
                Some(kv) => kv.value.as_slice().cmp(operand.as_slice()),
            },
            CompareTarget::Version(n) => field(|kv| kv.version).cmp(n),
            CompareTarget::CreateRevision(n) => field(|kv| kv.create_revision).cmp(n),
            CompareTarget::ModRevision(n) => field(|kv| kv.mod_revision).cmp(n),
            CompareTarget::Lease(n) => field(|kv| kv.lease).cmp(n),
        };
        match compare.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Less => ordering == Ordering::Less,
            CompareOp::Greater => ordering == Ordering::Greater,
        }
    }

    fn lease_grant(&self, id: i64, ttl_s: i64) -> StepResult {
        // The lessor's `Grant`, in its order of checks.
        if id == 0 {
            return Err(ERR_LEASE_NOT_FOUND);
        }
        if ttl_s > MAX_LEASE_TTL_S {
            return Err(ERR_LEASE_TTL_TOO_LARGE);
        }
        if self.leases.contains_key(&id) {
            return Err(ERR_LEASE_EXISTS);
        }
        let mut state = self.clone();
        let lease = Lease {
            ttl_s,
            keys: BTreeSet::new(),
        };
        state.leases_hash = state.leases_hash.wrapping_add(lease_hash(id, ttl_s));
        Arc::make_mut(&mut state.leases).insert(id, lease);
        let revision = state.revision;
        Ok((state, Response::LeaseGrant { revision }))
    }

    fn lease_revoke(&self, id: i64) -> StepResult {
        let Some(lease) = self.leases.get(&id) else {
            return Err(ERR_LEASE_NOT_FOUND);
        };
        // The lessor deletes the keys in key order in one write txn, so
        // they share one revision (and none is made if there are none).
        let mut txn = WriteTxn::begin(self);
        for key in &lease.keys {
            txn.delete_range(key, &[]);
        }
        let mut state = txn.commit();
        state.remove_lease(id);
        let revision = state.revision;
        Ok((state, Response::LeaseRevoke { revision }))
    }

    fn compact(&self, revision: i64) -> StepResult {
        if revision <= self.compact_revision {
            return Err(ERR_COMPACTED);
        }
        if revision > self.revision {
            return Err(ERR_FUTURE_REV);
        }
        let mut state = self.clone();
        state.compact_revision = revision;
        let current = state.revision;
        Ok((state, Response::Compact { revision: current }))
    }

    /// Appends a change to the key's history. A second change in the same
    /// revision replaces the first, as a read of that revision sees the
    /// last one.
    fn record(&mut self, key: Key, kv: Option<KeyValue>, revision: i64) {
        let kvs = Arc::make_mut(&mut self.kvs);
        let previous = kvs.get(&key[..]).cloned();
        if let Some(previous) = &previous {
            self.kvs_hash = self.kvs_hash.wrapping_sub(entry_hash(&key, previous));
        }
        let previous = match previous {
            Some(change) if change.revision == revision => change.previous.clone(),
            other => other,
        };
        let change = Change::new(revision, kv, previous);
        self.kvs_hash = self.kvs_hash.wrapping_add(entry_hash(&key, &change));
        kvs.insert(key, change);
    }

    fn attach(&mut self, id: i64, key: &Key) {
        let lease = Arc::make_mut(&mut self.leases)
            .get_mut(&id)
            .unwrap_or_else(|| panic!("attach to lease {id}, which put checked exists"));
        if lease.keys.insert(key.clone()) {
            self.leases_hash = self.leases_hash.wrapping_add(attachment_hash(id, key));
        }
    }

    fn detach(&mut self, id: i64, key: &Key) {
        if let Some(lease) = Arc::make_mut(&mut self.leases).get_mut(&id) {
            if lease.keys.remove(key) {
                self.leases_hash = self.leases_hash.wrapping_sub(attachment_hash(id, key));
            }
        }
    }

    fn remove_lease(&mut self, id: i64) {
        if let Some(lease) = Arc::make_mut(&mut self.leases).remove(&id) {
            let mut hash = lease_hash(id, lease.ttl_s);
            for key in &lease.keys {
                hash = hash.wrapping_add(attachment_hash(id, key));
            }
            self.leases_hash = self.leases_hash.wrapping_sub(hash);
        }
    }

    /// The content hashes recomputed from scratch (tests compare them with
    /// the incremental ones).
    #[cfg(test)]
    pub(super) fn recomputed_hashes(&self) -> (u64, u64) {
        let kvs = self.kvs.iter().fold(0u64, |sum, (key, change)| {
            sum.wrapping_add(entry_hash(key, change))
        });
        let leases = self.leases.iter().fold(0u64, |sum, (id, lease)| {
            let attachments = lease
                .keys
                .iter()
                .fold(0u64, |s, key| s.wrapping_add(attachment_hash(*id, key)));
            sum.wrapping_add(lease_hash(*id, lease.ttl_s))
                .wrapping_add(attachments)
        });
        (kvs, leases)
    }

    #[cfg(test)]
    pub(super) fn incremental_hashes(&self) -> (u64, u64) {
        (self.kvs_hash, self.leases_hash)
    }
}

type StepResult = Result<(EtcdState, Response), &'static str>;

/// A write transaction on a copy of the state: every change gets revision
/// `revision`, which becomes the store's only if something changed (etcd's
/// `storeTxnWrite.End`).
struct WriteTxn {
    state: EtcdState,
    revision: i64,
    changed: bool,
}

impl WriteTxn {
    fn begin(state: &EtcdState) -> Self {
        WriteTxn {
            state: state.clone(),
            revision: state.revision + 1,
            changed: false,
        }
    }

    /// mvcc's `put`: create revision and version carry over from a live
    /// key; the old lease is detached, the new one attached.
    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) {
        let (key, old) = match self.state.kvs.get_key_value(key) {
            Some((key, change)) => (key.clone(), change.kv.clone()),
            None => (Key::from(key), None),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: old.as_ref().map_or(self.revision, |o| o.create_revision),
            mod_revision: self.revision,
            version: old.as_ref().map_or(0, |o| o.version) + 1,
            lease,
        };
        if let Some(old_lease) = old.map(|o| o.lease).filter(|&l| l != 0) {
            self.state.detach(old_lease, &key);
        }
        if lease != 0 {
            self.state.attach(lease, &key);
        }
        self.state.record(key, Some(kv), self.revision);
        self.changed = true;
    }

    /// mvcc's `deleteRange`: tombstones every live key in the range (in
    /// this txn's view) and detaches their leases.
    fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> i64 {
        let doomed: Vec<(Key, i64)> = self
            .state
            .changes_in(key, range_end)
            .filter_map(|(key, change)| change.kv.as_ref().map(|kv| (key.clone(), kv.lease)))
            .collect();
        for (key, lease) in &doomed {
            if *lease != 0 {
                self.state.detach(*lease, key);
            }
            self.state.record(key.clone(), None, self.revision);
        }
        self.changed |= !doomed.is_empty();
        i64::try_from(doomed.len()).expect("deleted count fits i64")
    }

    fn apply(&mut self, op: &TxnOp) -> TxnResult {
        match op {
            TxnOp::Range {
                key,
                range_end,
                revision,
                limit,
            } => {
                let view = if self.changed {
                    self.revision
                } else {
                    self.revision - 1
                };
                let (kvs, count) = self
                    .state
                    .range(view, key, range_end, *revision, *limit)
                    .expect("check_branch accepted this range's revision");
                TxnResult::Range { kvs, count }
            }
            TxnOp::Put { key, value, lease } => {
                self.put(key, value, *lease);
                TxnResult::Put
            }
            TxnOp::Delete { key, range_end } => TxnResult::Delete {
                deleted: self.delete_range(key, range_end),
            },
        }
    }

    fn commit(mut self) -> EtcdState {
        if self.changed {
            self.state.revision = self.revision;
        }
        self.state
    }
}

/// etcd's `checkIntervals` for one branch: a key put twice, or put inside
/// a deleted range. (Like etcd 3.4, a `[0]` delete end is taken
/// literally here.)
fn has_duplicate_keys(ops: &[TxnOp]) -> bool {
    let deletes: Vec<(&[u8], &[u8])> = ops
        .iter()
        .filter_map(|op| match op {
            TxnOp::Delete { key, range_end } => Some((key.as_slice(), range_end.as_slice())),
            _ => None,
        })
        .collect();
    let mut puts = BTreeSet::new();
    for op in ops {
        let TxnOp::Put { key, .. } = op else { continue };
        let deleted = deletes.iter().any(|&(start, end)| {
            if end.is_empty() {
                key.as_slice() == start
            } else {
                start <= key.as_slice() && key.as_slice() < end
            }
        });
        if deleted || !puts.insert(key.as_slice()) {
            return true;
        }
    }
    false
}

/// Whether an observed response is what the model answered. Exact, except
/// that a keep-alive's TTL only has to agree on whether the lease lives
/// (the model keeps no clock).
pub fn response_matches(expected: &Response, observed: &Response) -> bool {
    match (expected, observed) {
        (
            Response::LeaseKeepAlive { ttl_s: expected },
            Response::LeaseKeepAlive { ttl_s: observed },
        ) => (*expected > 0) == (*observed > 0),
        (
            Response::Txn {
                revision,
                succeeded,
                ..
            },
            Response::TxnOutcome {
                revision: r,
                succeeded: s,
            },
        ) => revision == r && succeeded == s,
        _ => expected == observed,
    }
}

impl PartialEq for EtcdState {
    fn eq(&self, other: &Self) -> bool {
        // Hashes first: the memo table compares many unequal states. The
        // maps' `Arc`s compare by pointer before content.
        self.revision == other.revision
            && self.compact_revision == other.compact_revision
            && self.kvs_hash == other.kvs_hash
            && self.leases_hash == other.leases_hash
            && self.kvs == other.kvs
            && self.leases == other.leases
    }
}

impl Eq for EtcdState {}

impl Hash for EtcdState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.revision.hash(state);
        self.compact_revision.hash(state);
        self.kvs_hash.hash(state);
        self.leases_hash.hash(state);
    }
}

impl fmt::Debug for EtcdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for EtcdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revision {}, compacted at {}, keys [",
            self.revision, self.compact_revision
        )?;
        let live: Vec<&KeyValue> = self.kvs().collect();
        for (i, kv) in live.iter().take(DISPLAY_MAX_KEYS).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{kv}")?;
        }
        if live.len() > DISPLAY_MAX_KEYS {
            write!(f, ", … {} more", live.len() - DISPLAY_MAX_KEYS)?;
        }
        write!(f, "], leases [")?;
        for (i, (id, lease)) in self.leases.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{id}: {{")?;
            for (j, key) in lease.keys.iter().enumerate() {
                let sep = if j > 0 { ", " } else { "" };
                write!(f, "{sep}{}", Quoted(key))?;
            }
            write!(f, "}}")?;
        }
        write!(f, "]")
    }
}

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

fn entry_hash(key: &[u8], change: &Change) -> u64 {
    hash_of(&(key, change.hash))
}

fn lease_hash(id: i64, ttl_s: i64) -> u64 {
    hash_of(&(0u8, id, ttl_s))
}

fn attachment_hash(id: i64, key: &[u8]) -> u64 {
    hash_of(&(1u8, id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &EtcdState, requests: &[Request]) -> (EtcdState, Vec<Response>) {
        let mut state = state.clone();
        let mut responses = Vec::new();
        for request in requests {
            let (next, response) = state.step(request);
            state = next;
            responses.push(response);
        }
        (state, responses)
    }

    fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: create,
            mod_revision: modified,
            version,
            lease: 0,
        }
    }

    fn error(message: &str) -> Response {
        Response::Error(message.to_owned())
    }

    #[test]
    fn puts_count_versions_and_keep_create_revision() {
        let requests = [
            Request::put("a", "1"),
            Request::put("a", "2"),
            Request::get("a"),
        ];
        let (state, responses) = run(&EtcdState::new(), &requests);
        assert_eq!(responses[0], Response::Put { revision: 2 });
        assert_eq!(responses[1], Response::Put { revision: 3 });
        let expected = Response::Range {
            revision: 3,
            kvs: vec![kv("a", "2", 2, 3, 2)],
            count: 1,
        };
        assert_eq!(responses[2], expected);
        assert_eq!(state.revision(), 3);
    }

    #[test]
    fn delete_removes_and_recreate_restarts_version() {
        let requests = [
            Request::put("a", "1"),
            Request::delete("a"),
            Request::delete("a"),
            Request::put("a", "2"),
        ];
        let (state, responses) = run(&EtcdState::new(), &requests);
        assert_eq!(
            responses[1],
            Response::Delete {
                revision: 3,
                deleted: 1
            }
        );
        // Deleting nothing makes no revision.
        assert_eq!(
            responses[2],
            Response::Delete {
                revision: 3,
                deleted: 0
            }
        );
        assert_eq!(state.get(b"a"), Some(&kv("a", "2", 4, 4, 1)));
    }

    #[test]
    fn ranges_follow_range_end_rules_limit_and_count() {
        let puts: Vec<Request> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| Request::put(*k, "v"))
            .collect();
        let (state, _) = run(&EtcdState::new(), &puts);
        let keys = |request: &Request| match state.step(request).1 {
            Response::Range { kvs, count, .. } => {
                let keys: Vec<String> = kvs
                    .iter()
                    .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
                    .collect();
                (keys, count)
            }
            other => panic!("{other}"),
        };
        assert_eq!(
            keys(&Request::range("b", "d")),
            (vec!["b".into(), "c".into()], 2)
        );
        assert_eq!(keys(&Request::range("c", [0])).1, 2);
        assert_eq!(keys(&Request::range("d", "a")).1, 0);
        let limited = Request::Range {
            key: b"a".to_vec(),
            range_end: vec![0],
            revision: 0,
            limit: 1,
        };
        assert_eq!(keys(&limited), (vec!["a".into()], 4));
    }

    #[test]
    fn stale_reads_see_the_past_and_compaction_bounds_them() {
        let requests = [Request::put("a", "1"), Request::put("a", "2")];
        let (state, _) = run(&EtcdState::new(), &requests);
        let at = |revision| Request::Range {
            key: b"a".to_vec(),
            range_end: vec![],
            revision,
            limit: 0,
        };
        let expected = Response::Range {
            revision: 3,
            kvs: vec![kv("a", "1", 2, 2, 1)],
            count: 1,
        };
        assert_eq!(state.step(&at(2)).1, expected);
        assert_eq!(state.step(&at(4)).1, error(ERR_FUTURE_REV));
        let (compacted, response) = state.step(&Request::Compact { revision: 3 });
        assert_eq!(response, Response::Compact { revision: 3 });
        assert_eq!(compacted.step(&at(2)).1, error(ERR_COMPACTED));
        // The compacted revision itself is still readable.
        assert!(matches!(compacted.step(&at(3)).1, Response::Range { .. }));
        let again = compacted.step(&Request::Compact { revision: 3 }).1;
        assert_eq!(again, error(ERR_COMPACTED));
        let future = compacted.step(&Request::Compact { revision: 9 }).1;
        assert_eq!(future, error(ERR_FUTURE_REV));
    }

    #[test]
    fn txn_runs_one_branch_and_read_only_branches_make_no_revision() {
        let (state, _) = run(&EtcdState::new(), &[Request::put("a", "1")]);
        let cas = |expected_mod| Request::Txn {
            compares: vec![Compare::new(
                "a",
                CompareTarget::ModRevision(expected_mod),
                CompareOp::Equal,
            )],
            success: vec![TxnOp::put("a", "2"), TxnOp::get("a")],
            failure: vec![TxnOp::get("a")],
        };
        let (after, won) = state.step(&cas(2));
        let expected = Response::Txn {
            revision: 3,
            succeeded: true,
            // The txn's own range sees its put.
            results: vec![
                TxnResult::Put,
                TxnResult::Range {
                    kvs: vec![kv("a", "2", 2, 3, 2)],
                    count: 1,
                },
            ],
        };
        assert_eq!(won, expected);
        let (unchanged, lost) = after.step(&cas(2));
        let expected = Response::Txn {
            revision: 3,
            succeeded: false,
            results: vec![TxnResult::Range {
                kvs: vec![kv("a", "2", 2, 3, 2)],
                count: 1,
            }],
        };
        assert_eq!(lost, expected);
        assert_eq!(unchanged, after);
    }

    #[test]
    fn compares_on_missing_keys_use_zero_and_fail_on_value() {
        let state = EtcdState::new();
        let holds = |target, op| state.compare(&Compare::new("x", target, op));
        assert!(holds(CompareTarget::Version(0), CompareOp::Equal));
        assert!(holds(CompareTarget::CreateRevision(1), CompareOp::Less));
        assert!(!holds(CompareTarget::Value(vec![]), CompareOp::Equal));
        assert!(!holds(CompareTarget::Value(vec![]), CompareOp::NotEqual));
    }

    #[test]
    fn txn_errors_leave_the_state_alone() {
        let (state, _) = run(&EtcdState::new(), &[Request::put("a", "1")]);
        let duplicate = Request::Txn {
            compares: vec![],
            success: vec![TxnOp::delete("a")],
            failure: vec![TxnOp::put("b", "1"), TxnOp::put("b", "2")],
        };
        assert_eq!(
            state.step(&duplicate),
            (state.clone(), error(ERR_DUPLICATE_KEY))
        );
        let put_in_delete = Request::Txn {
            compares: vec![],
            success: vec![
                TxnOp::Delete {
                    key: b"a".to_vec(),
                    range_end: b"c".to_vec(),
                },
                TxnOp::put("b", "1"),
            ],
            failure: vec![],
        };
        assert_eq!(state.step(&put_in_delete).1, error(ERR_DUPLICATE_KEY));
        let missing_lease = Request::Txn {
            compares: vec![],
            success: vec![TxnOp::Put {
                key: b"a".to_vec(),
                value: b"2".to_vec(),
                lease: 7,
            }],
            failure: vec![],
        };
        assert_eq!(
            state.step(&missing_lease),
            (state.clone(), error(ERR_LEASE_NOT_FOUND))
        );
    }

    #[test]
    fn leases_attach_move_and_revoke_in_one_revision() {
        let with_lease = |key: &str, lease| Request::Put {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
        };
        let requests = [
            Request::LeaseGrant { id: 1, ttl_s: 60 },
            Request::LeaseGrant { id: 2, ttl_s: 60 },
            with_lease("a", 1),
            with_lease("b", 1),
            with_lease("c", 1),
            with_lease("c", 2),
            with_lease("b", 0),
            Request::LeaseRevoke { id: 1 },
        ];
        let (state, responses) = run(&EtcdState::new(), &requests);
        assert_eq!(responses[0], Response::LeaseGrant { revision: 1 });
        // a, b, c, c, b make revisions 2..=6; the revoke deletes only a.
        assert_eq!(responses[7], Response::LeaseRevoke { revision: 7 });
        let live: Vec<&[u8]> = state.kvs().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(live, vec![b"b".as_slice(), b"c"]);
        assert_eq!(state.lease_keys(1), None);
        assert_eq!(state.lease_keys(2), Some(vec![b"c".as_slice()]));
        let (_, again) = state.step(&Request::LeaseRevoke { id: 1 });
        assert_eq!(again, error(ERR_LEASE_NOT_FOUND));
        let (_, empty) = state.step(&Request::LeaseGrant { id: 2, ttl_s: 5 });
        assert_eq!(empty, error(ERR_LEASE_EXISTS));
        assert_eq!(
            state.step(&with_lease("d", 9)).1,
            error(ERR_LEASE_NOT_FOUND)
        );
    }

    #[test]
    fn revoking_a_lease_without_keys_makes_no_revision() {
        let requests = [
            Request::LeaseGrant { id: 5, ttl_s: 60 },
            Request::LeaseKeepAlive { id: 5 },
            Request::LeaseRevoke { id: 5 },
            Request::LeaseKeepAlive { id: 5 },
        ];
        let (_, responses) = run(&EtcdState::new(), &requests);
        assert_eq!(responses[1], Response::LeaseKeepAlive { ttl_s: 60 });
        assert_eq!(responses[2], Response::LeaseRevoke { revision: 1 });
        assert_eq!(responses[3], Response::LeaseKeepAlive { ttl_s: 0 });
        let any_ttl = Response::LeaseKeepAlive { ttl_s: 3 };
        assert!(response_matches(&responses[1], &any_ttl));
        assert!(!response_matches(&responses[3], &any_ttl));
    }

    #[test]
    fn incremental_hashes_match_a_full_recompute_and_equal_states_hash_equal() {
        let requests = [
            Request::LeaseGrant { id: 1, ttl_s: 60 },
            Request::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                lease: 1,
            },
            Request::put("b", "1"),
            Request::delete("b"),
            Request::LeaseRevoke { id: 1 },
            Request::put("a", "2"),
        ];
        let (state, _) = run(&EtcdState::new(), &requests);
        assert_eq!(state.incremental_hashes(), state.recomputed_hashes());
        let (same, _) = run(&EtcdState::new(), &requests);
        assert_eq!(state, same);
        assert_eq!(hash_of(&state), hash_of(&same));
        let (other, _) = state.step(&Request::put("a", "3"));
        assert_ne!(state, other);
    }

    #[test]
    fn a_long_key_history_drops_and_compares_without_recursion() {
        // Built twice, so equality walks both chains rather than
        // stopping at a shared pointer.
        let build = || {
            let mut state = EtcdState::new();
            for i in 0..100_000 {
                state = state.step(&Request::put("k", i.to_string())).0;
            }
            state
        };
        let (a, b) = (build(), build());
        assert_eq!(a, b);
        let (c, _) = b.step(&Request::put("k", "other"));
        assert_ne!(a, c);
        assert_eq!(
            a.get_at(b"k", 2).map(|kv| kv.value.clone()),
            Some(b"0".to_vec())
        );
        drop((a, b, c));
    }
}
