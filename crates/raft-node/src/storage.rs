//! [`LogStore`]: raft-rs's `Storage` over the entries since the last
//! compaction, held in memory (etcd's `MemoryStorage`). It holds only what is
//! already durable: the Ready loop appends here after the WAL's fsync.

use std::cell::Cell;
use std::collections::VecDeque;

use prost011::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

/// Raft's view of the durable log.
#[derive(Debug, Default)]
pub(crate) struct LogStore {
    hard_state: HardState,
    conf_state: ConfState,
    /// The newest snapshot, data included, for followers that need it.
    snapshot: Snapshot,
    /// Index and term of the last entry compacted away: `entries` starts
    /// right after it.
    offset_index: u64,
    offset_term: u64,
    entries: VecDeque<Entry>,
    /// Set when raft asked for a snapshot this store cannot give (none new
    /// enough, or one whose membership lacks the recipient): the applier is
    /// then asked for a fresh one.
    snapshot_wanted: Cell<bool>,
}

impl LogStore {
    /// A store starting from `snapshot` (possibly empty: index 0).
    pub(crate) fn new(snapshot: Snapshot, hard_state: HardState) -> LogStore {
        let meta = snapshot.get_metadata();
        LogStore {
            hard_state,
            conf_state: meta.get_conf_state().clone(),
            offset_index: meta.index,
            offset_term: meta.term,
            snapshot,
            entries: VecDeque::new(),
            snapshot_wanted: Cell::new(false),
        }
    }

    /// Whether raft wanted a snapshot it could not have since last asked.
    pub(crate) fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub(crate) fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    pub(crate) fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    pub(crate) fn set_conf_state(&mut self, conf_state: ConfState) {
        self.conf_state = conf_state;
    }

    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub(crate) fn snapshot_metadata(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.offset_index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.offset_index + self.entries.len() as u64
    }

    /// Entries in `[low, high)` that are held, for replay at start.
    pub(crate) fn entries_between(&self, low: u64, high: u64) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| e.index >= low && e.index < high)
    }

    /// Appends entries already durable in the WAL; entries at or after the
    /// first one's index are replaced (a new leader's log wins).
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            first.index <= self.last_index() + 1,
            "append at {} leaves a gap after {}",
            first.index,
            self.last_index()
        );
        // Entries at or below the compaction point are already agreed.
        let skip = self.first_index().saturating_sub(first.index) as usize;
        let entries = &entries[skip.min(entries.len())..];
        let Some(first) = entries.first() else { return };
        self.entries
            .truncate((first.index - self.first_index()) as usize);
        self.entries.extend(entries.iter().cloned());
    }

    /// Replaces everything with a snapshot received from the leader.
    pub(crate) fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        self.offset_index = meta.index;
        self.offset_term = meta.term;
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.entries.clear();
        self.snapshot = snapshot;
    }

    /// Records a snapshot made here at `index` (which must be held).
    pub(crate) fn set_snapshot(&mut self, index: u64, conf_state: ConfState, data: Vec<u8>) -> u64 {
        let term = raft::Storage::term(self, index).expect("snapshot index is in the log");
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        snapshot.data = data;
        self.snapshot = snapshot;
        term
    }

    /// Drops every entry up to `index` (at most the last snapshot's index).
    pub(crate) fn compact(&mut self, index: u64) {
        if index <= self.offset_index {
            return;
        }
        assert!(
            index <= self.snapshot.get_metadata().index,
            "compaction to {index} passes the snapshot at {}",
            self.snapshot.get_metadata().index
        );
        let term = raft::Storage::term(self, index).expect("compaction point is in the log");
        let drop = (index - self.offset_index) as usize;
        self.entries.drain(..drop);
        self.offset_index = index;
        self.offset_term = term;
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.offset_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index() + 1,
            "entries up to {high} asked, last is {}",
            self.last_index()
        );
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let start = (low - self.first_index()) as usize;
        let end = (high - self.first_index()) as usize;
        let mut size = 0u64;
        let mut out = Vec::with_capacity(end - start);
        for entry in self.entries.range(start..end) {
            size += entry.encoded_len() as u64;
            // At least one entry, whatever its size, or raft stalls.
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.offset_index {
            return Ok(self.offset_term);
        }
        if index < self.offset_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((index - self.first_index()) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(LogStore::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStore::last_index(self))
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let meta = self.snapshot.get_metadata();
        let cs = meta.get_conf_state();
        // raft-rs on the receiving side refuses a snapshot whose membership
        // does not include it: a member added since needs a newer one.
        let includes_recipient = [
            &cs.voters,
            &cs.learners,
            &cs.voters_outgoing,
            &cs.learners_next,
        ]
        .iter()
        .any(|ids| ids.contains(&to));
        if meta.index < request_index || !includes_recipient {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    fn store_with(last: u64) -> LogStore {
        let mut store = LogStore::default();
        store.append(&(1..=last).map(|i| entry(i, 1)).collect::<Vec<_>>());
        store
    }

    #[test]
    fn append_replaces_a_conflicting_tail() {
        let mut store = store_with(5);
        store.append(&[entry(4, 2), entry(5, 2), entry(6, 2)]);
        assert_eq!(store.last_index(), 6);
        assert_eq!(store.term(3).unwrap(), 1);
        assert_eq!(store.term(4).unwrap(), 2);
        let got = store
            .entries(1, 7, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(
            got.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]
        );
    }

    #[test]
    fn compaction_keeps_the_term_of_the_compaction_point() {
        let mut store = store_with(10);
        store.set_snapshot(8, ConfState::default(), b"state".to_vec());
        store.compact(6);
        assert_eq!(store.first_index(), 7);
        assert_eq!(store.term(6).unwrap(), 1);
        assert!(matches!(
            store.term(5),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            store.entries(6, 8, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(
            store
                .entries(7, 11, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            4
        );
        // Appending below the compaction point keeps only what is new.
        store.append(&[entry(6, 1), entry(7, 1), entry(8, 1)]);
        assert_eq!(store.last_index(), 8);
    }

    #[test]
    fn size_limit_returns_at_least_one_entry() {
        let mut store = LogStore::default();
        let mut big = entry(1, 1);
        big.data = vec![0; 1000];
        store.append(&[big.clone(), {
            let mut e = big.clone();
            e.index = 2;
            e
        }]);
        assert_eq!(
            store
                .entries(1, 3, 10, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .entries(1, 3, 5000, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn snapshot_too_old_or_without_the_recipient_is_temporarily_unavailable() {
        let mut store = store_with(4);
        let cs = ConfState {
            voters: vec![1, 2],
            ..Default::default()
        };
        store.set_snapshot(3, cs, vec![]);
        assert_eq!(
            raft::Storage::snapshot(&store, 3, 2)
                .unwrap()
                .get_metadata()
                .term,
            1
        );
        assert!(!store.take_snapshot_wanted());
        for (request_index, to) in [(4, 2), (0, 3)] {
            assert!(matches!(
                raft::Storage::snapshot(&store, request_index, to),
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable
                ))
            ));
            assert!(store.take_snapshot_wanted());
            assert!(!store.take_snapshot_wanted());
        }
    }

    #[test]
    fn applying_a_snapshot_clears_the_log() {
        let mut store = store_with(4);
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 20;
        snapshot.mut_metadata().term = 3;
        snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2];
        store.apply_snapshot(snapshot);
        assert_eq!((store.first_index(), store.last_index()), (21, 20));
        assert_eq!(store.term(20).unwrap(), 3);
        assert_eq!(store.hard_state().commit, 20);
        assert_eq!(store.initial_state().unwrap().conf_state.voters, vec![1, 2]);
    }
}
