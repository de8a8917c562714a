//! Model-based round trips: random saves (with raft-style tail rewrites),
//! snapshot markers, releases and reopens across many segment cuts, checked
//! against a plain in-memory log.

mod common;

use std::path::Path;

use common::{entry, no_sync, small_config};
use ironcd_wal::{Entry, HardState, SnapshotMarker, Wal};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Save `count` entries starting `back` entries before the end (a
    /// rewrite after a leader change when `back > 0`), with the commit index
    /// moved forward by up to `commit_step`.
    Save {
        count: u64,
        back: u64,
        len: usize,
        commit_step: u64,
    },
    /// Save a snapshot marker at the commit index.
    Snapshot,
    /// Release segments before the latest snapshot.
    Release,
    /// Close, reopen at the latest snapshot and compare.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..6, 0u64..4, 0usize..300, 0u64..4)
            .prop_map(|(count, back, len, commit_step)| Op::Save { count, back, len, commit_step }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Release),
        1 => Just(Op::Reopen),
    ]
}

/// What the WAL should hold.
#[derive(Default)]
struct Model {
    /// `log[i]` has index `i + 1`.
    log: Vec<Entry>,
    hard_state: HardState,
    snapshot: SnapshotMarker,
}

impl Model {
    fn last(&self) -> u64 {
        self.log.len() as u64
    }

    /// The entries a save of `op` writes, applied to the model.
    fn save(&mut self, count: u64, back: u64, len: usize, commit_step: u64) -> Vec<Entry> {
        // Committed entries (and so the snapshot) are never rewritten.
        let floor = self.hard_state.commit.max(self.snapshot.index) + 1;
        // Raft only rewrites the tail by appending: no entries, no rewrite.
        let back = if count == 0 { 0 } else { back };
        let first = (self.last() + 1).saturating_sub(back).max(floor);
        let mut term = self.hard_state.term.max(1);
        if first <= self.last() {
            term += 1;
        }
        let entries: Vec<Entry> = (first..first + count)
            .map(|i| entry(i, term, len))
            .collect();
        self.log.truncate(first as usize - 1);
        self.log.extend(entries.iter().cloned());
        let commit = (self.hard_state.commit + commit_step).min(self.last());
        self.hard_state = HardState {
            term,
            vote: 1,
            commit,
        };
        entries
    }

    fn snapshot(&mut self) -> Option<SnapshotMarker> {
        let index = self.hard_state.commit;
        if index <= self.snapshot.index {
            return None;
        }
        self.snapshot = SnapshotMarker {
            index,
            term: self.log[index as usize - 1].term,
        };
        Some(self.snapshot)
    }
}

fn reopen_and_check(dir: &Path, model: &Model) -> Result<Wal, TestCaseError> {
    let (wal, contents) = Wal::open_with_io(no_sync(), dir, model.snapshot, &small_config())
        .and_then(|reader| reader.read_all())
        .map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?;
    prop_assert_eq!(&contents.metadata, b"meta");
    prop_assert_eq!(contents.hard_state, model.hard_state);
    prop_assert_eq!(
        &contents.entries[..],
        &model.log[model.snapshot.index as usize..]
    );
    prop_assert_eq!(wal.last_index(), model.last());
    Ok(wal)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn save_read_release_reopen_round_trip(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create_with_io(no_sync(), dir.path(), b"meta", &small_config()).unwrap();
        let mut model = Model::default();
        let mut max_segments = 1;
        for op in ops {
            match op {
                Op::Save { count, back, len, commit_step } => {
                    let entries = model.save(count, back, len, commit_step);
                    wal.save(&model.hard_state, &entries).unwrap();
                    prop_assert_eq!(wal.last_index(), model.last());
                }
                Op::Snapshot => {
                    if let Some(marker) = model.snapshot() {
                        wal.save_snapshot(marker).unwrap();
                    }
                }
                Op::Release => wal.release_to(model.snapshot.index).unwrap(),
                Op::Reopen => {
                    drop(wal);
                    wal = reopen_and_check(dir.path(), &model)?;
                }
            }
            max_segments = max_segments.max(wal.segment_count());
        }
        drop(wal);
        let wal = reopen_and_check(dir.path(), &model)?;
        prop_assert!(wal.segment_count() <= max_segments);
    }
}

/// The property above must actually cross cuts and releases; make sure a
/// typical long run does.
#[test]
fn long_runs_cross_many_cuts_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::create_with_io(no_sync(), dir.path(), b"meta", &small_config()).unwrap();
    let mut model = Model::default();
    let (mut released, mut max_segments) = (0, 0);
    for round in 0..400u64 {
        let entries = model.save(3, round % 3, 150, 2);
        wal.save(&model.hard_state, &entries).unwrap();
        max_segments = max_segments.max(wal.segment_count());
        if round % 25 == 24 {
            let marker = model.snapshot().unwrap();
            wal.save_snapshot(marker).unwrap();
            let before = wal.segment_count();
            wal.release_to(marker.index).unwrap();
            released += before - wal.segment_count();
        }
    }
    assert!(released > 20, "released {released} segments");
    assert!(max_segments > 3, "at most {max_segments} segments at once");
    drop(wal);
    reopen_and_check(dir.path(), &model).unwrap();
}
