//! Power loss, simulated with `MemIo`: the machine stops before any chosen
//! mutating call (`cut_power_after`), then either loses everything not
//! fsynced (`crash`) or, at the other extreme, loses nothing
//! (`write_back` first). Either way a reopen must find every acknowledged
//! entry and hard state, and the log must go on.

use std::path::Path;
use std::sync::Arc;

use ironcd_wal::fault::{Fault, FaultAction, FaultOp, FaultyIo};
use ironcd_wal::testkit::{entries, entry, small_config};
use ironcd_wal::{
    Entry, Error, HardState, MemIo, SnapshotMarker, Snapshotter, Wal, WalContents, WalIo,
};
use proptest::prelude::*;

/// Under a data directory that exists durably, in a `member` directory
/// that does not: creating the WAL must make both durable.
const WAL_DIR: &str = "/data/member/wal";
const SNAP_DIR: &str = "/data/member/snap";
/// Entries in the fixed workload: with 200-byte entries and 4 KiB
/// segments, about three segment cuts.
const WORKLOAD_ENTRIES: u64 = 50;
/// Saves before giving up on a cut fault that never hits: one segment
/// holds fewer than 20 of the 200-byte entries.
const CUT_TEST_MAX_SAVES: u64 = 100;
/// Randomized cases; each runs a few dozen IO calls in memory.
const PROPTEST_CASES: u32 = 256;
/// Most operations in one randomized case.
const MAX_OPS: usize = 24;

fn machine() -> MemIo {
    let io = MemIo::new();
    io.create_dir_all(Path::new("/data")).unwrap();
    io.sync_dir(Path::new("/")).unwrap();
    io
}

fn reopen(io: &Arc<dyn WalIo>, at: SnapshotMarker) -> ironcd_wal::Result<(Wal, WalContents)> {
    Wal::open_with_io(Arc::clone(io), WAL_DIR, at, &small_config())?.read_all()
}

fn hard_state(commit: u64) -> HardState {
    HardState {
        term: 1,
        vote: 1,
        commit,
    }
}

/// Power is lost after the machine stops (or at the end); `lucky` keeps
/// everything written, otherwise only what was synced survives.
fn lose_power(io: &MemIo, lucky: bool) {
    if lucky {
        io.write_back();
    }
    io.crash();
}

/// Creates the WAL and saves entries 1..=WORKLOAD_ENTRIES in batches of
/// one to three, each with `commit` at its last index. Returns the last
/// index acknowledged and the one the failed call was saving, if any.
fn workload(io: &MemIo) -> (Option<u64>, Option<u64>) {
    let shared: Arc<dyn WalIo> = Arc::new(io.clone());
    let Ok(mut wal) = Wal::create_with_io(shared, WAL_DIR, b"meta", &small_config()) else {
        assert!(io.is_halted(), "create failed with power on");
        return (None, Some(0));
    };
    let mut acked = 0;
    while acked < WORKLOAD_ENTRIES {
        let last = (acked + 1 + acked % 3).min(WORKLOAD_ENTRIES);
        if let Err(e) = wal.save(&hard_state(last), &entries(acked + 1, last)) {
            assert!(io.is_halted(), "save failed with power on: {e}");
            return (Some(acked), Some(last));
        }
        acked = last;
    }
    (Some(acked), None)
}

/// After the power came back: the WAL holds exactly the entries up to the
/// last acknowledged index, or up to the one being saved when it stopped,
/// and takes more.
fn check_after_crash(io: &MemIo, acked: Option<u64>, pending: Option<u64>, point: String) {
    let shared: Arc<dyn WalIo> = Arc::new(io.clone());
    let (mut wal, contents) = match (reopen(&shared, SnapshotMarker::default()), acked) {
        (Ok(opened), _) => opened,
        (Err(Error::NoSegments { .. }), None) => return,
        (Err(e), _) => panic!("{point}: reopen: {e}"),
    };
    let last = contents.entries.len() as u64;
    let allowed = [acked, pending];
    assert!(
        allowed.contains(&Some(last)),
        "{point}: found 1..={last}, acked {acked:?}, pending {pending:?}"
    );
    assert_eq!(contents.entries, entries(1, last), "{point}");
    let want_state = if last == 0 {
        HardState::default()
    } else {
        hard_state(last)
    };
    assert_eq!(contents.hard_state, want_state, "{point}");
    assert_eq!(contents.metadata, b"meta", "{point}");
    let names = io.list(Path::new(WAL_DIR)).unwrap();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "{point}: {names:?}"
    );
    for index in last + 1..=last + 20 {
        wal.save(&hard_state(index), &[entry(index, 1, 200)])
            .unwrap_or_else(|e| panic!("{point}: save after recovery: {e}"));
    }
    drop(wal);
    let (_, contents) = reopen(&shared, SnapshotMarker::default()).unwrap();
    assert_eq!(
        contents.entries,
        entries(1, last + 20),
        "{point}: second reopen"
    );
}

#[test]
fn every_acknowledged_save_survives_a_power_loss_at_every_call() {
    let calls = {
        let io = machine();
        let before = io.mutating_calls();
        assert_eq!(workload(&io), (Some(WORKLOAD_ENTRIES), None));
        let names = io.list(Path::new(WAL_DIR)).unwrap();
        let segments = names.iter().filter(|n| n.ends_with(".wal")).count();
        assert!(segments > 2, "the workload cut only {segments} segments");
        io.mutating_calls() - before
    };
    for point in 0..=calls {
        for lucky in [false, true] {
            let io = machine();
            io.cut_power_after(point);
            let (acked, pending) = workload(&io);
            lose_power(&io, lucky);
            check_after_crash(
                &io,
                acked,
                pending,
                format!("stop before call {point}, lucky {lucky}"),
            );
        }
    }
}

/// A cut whose new segment was written under its temporary name, with the
/// rename failing or not yet durable, then power lost.
#[test]
fn a_power_loss_in_the_middle_of_a_segment_cut_reopens_cleanly() {
    let cut_faults = [
        Fault::once(FaultOp::SyncAll, FaultAction::eio()).on_files_ending(".tmp"),
        Fault::once(FaultOp::Rename, FaultAction::eio()),
        Fault::once(FaultOp::SyncDir, FaultAction::eio()),
    ];
    for fault in cut_faults {
        for lucky in [false, true] {
            let io = machine();
            let faulty = FaultyIo::new(Arc::new(io.clone()));
            let mut wal =
                Wal::create_with_io(Arc::new(faulty.clone()), WAL_DIR, b"meta", &small_config())
                    .unwrap();
            faulty.arm(fault.clone());
            let mut acked = 0;
            while acked < CUT_TEST_MAX_SAVES
                && wal
                    .save(&hard_state(acked + 1), &entries(acked + 1, acked + 1))
                    .is_ok()
            {
                acked += 1;
            }
            assert!(acked < CUT_TEST_MAX_SAVES, "{fault:?} never hit");
            assert_eq!(wal.segment_count(), 1, "{fault:?}: the first cut failed");
            let names = io.list(Path::new(WAL_DIR)).unwrap();
            assert!(
                names
                    .iter()
                    .any(|n| n.ends_with(".tmp") || n.starts_with("0000000000000001-")),
                "{names:?}"
            );
            lose_power(&io, lucky);
            drop(wal);
            // The save that filled the segment was synced before the cut.
            let point = format!("{fault:?}, lucky {lucky}");
            check_after_crash(&io, Some(acked + 1), None, point);
        }
    }
}

/// A snapshot whose save returned `Ok` loads after any power loss; one
/// that did not is either complete or absent, never a damaged file.
#[test]
fn a_saved_snapshot_survives_a_power_loss() {
    let save = |io: &MemIo| {
        let shared: Arc<dyn WalIo> = Arc::new(io.clone());
        Snapshotter::with_io(shared, SNAP_DIR, &small_config())
            .and_then(|snap| snap.save(SnapshotMarker { index: 7, term: 2 }, b"state"))
    };
    let calls = {
        let io = machine();
        let before = io.mutating_calls();
        save(&io).unwrap();
        io.mutating_calls() - before
    };
    for point in 0..=calls {
        for lucky in [false, true] {
            let io = machine();
            io.cut_power_after(point);
            let acked = save(&io).is_ok();
            lose_power(&io, lucky);
            let snap =
                Snapshotter::with_io(Arc::new(io.clone()), SNAP_DIR, &small_config()).unwrap();
            let loaded = snap.load_newest_valid().unwrap();
            let point = format!("stop before call {point}, lucky {lucky}");
            if acked {
                assert_eq!(loaded.map(|s| s.data), Some(b"state".to_vec()), "{point}");
            }
            assert!(
                io.list(Path::new(SNAP_DIR))
                    .unwrap()
                    .iter()
                    .all(|n| !n.ends_with(".broken")),
                "{point}: a damaged snapshot file"
            );
        }
    }
}

/// One step of a randomized run.
#[derive(Clone, Debug)]
enum Op {
    /// Save `count` entries starting `rewind` entries back from the end
    /// (never at or below the snapshot), with a new term when rewinding.
    Save { count: u64, rewind: u64 },
    /// Record a snapshot at the last index and release the segments
    /// before it.
    Snapshot,
    /// Close and reopen the WAL (no crash).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..4u64, 0..3u64).prop_map(|(count, rewind)| Op::Save { count, rewind }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
    ]
}

/// What the WAL must hold: the log, the hard state, the last snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    log: Vec<Entry>,
    hard_state: HardState,
    marker: SnapshotMarker,
}

impl Model {
    /// The log and the state as `read_all` at `at` returns them.
    fn view(&self, at: SnapshotMarker) -> (Vec<Entry>, HardState) {
        let after: Vec<Entry> = self
            .log
            .iter()
            .filter(|e| e.index > at.index)
            .cloned()
            .collect();
        (after, self.hard_state)
    }

    fn save(&self, count: u64, rewind: u64) -> (Model, Vec<Entry>) {
        let last = self.log.len() as u64;
        let first = (last + 1).saturating_sub(rewind).max(self.marker.index + 1);
        let term = self.hard_state.term + u64::from(first <= last);
        let batch: Vec<Entry> = (first..first + count)
            .map(|i| entry(i, term.max(1), 64))
            .collect();
        let mut next = self.clone();
        next.log.truncate(first as usize - 1);
        next.log.extend(batch.iter().cloned());
        next.hard_state = HardState {
            term: term.max(1),
            vote: 1,
            commit: first - 1,
        };
        (next, batch)
    }
}

/// Runs `ops` until the first failure; returns the acknowledged model (or
/// `None` if not even the create was) and the one the failed call aimed at.
fn run(io: &MemIo, ops: &[Op]) -> (Option<Model>, Option<Model>) {
    let shared: Arc<dyn WalIo> = Arc::new(io.clone());
    let halted = |e: &Error| assert!(io.is_halted(), "failed with power on: {e}");
    let mut wal = match Wal::create_with_io(Arc::clone(&shared), WAL_DIR, b"meta", &small_config())
    {
        Ok(wal) => wal,
        Err(e) => {
            halted(&e);
            return (None, Some(Model::default()));
        }
    };
    let mut model = Model::default();
    for op in ops {
        let (next, result) = match op {
            Op::Save { count, rewind } => {
                let (next, batch) = model.save(*count, *rewind);
                let result = wal.save(&next.hard_state, &batch);
                (next, result)
            }
            Op::Snapshot => {
                let last = model.log.last().map_or(model.marker, |e| SnapshotMarker {
                    index: e.index,
                    term: e.term,
                });
                let next = Model {
                    marker: last,
                    ..model.clone()
                };
                let result = wal.save_snapshot(last);
                if let Err(e) = result {
                    halted(&e);
                    return (Some(model), Some(next));
                }
                // The marker is acknowledged; a failed release loses nothing.
                (next, wal.release_to(last.index))
            }
            Op::Reopen => {
                drop(wal);
                match reopen(&shared, model.marker) {
                    Ok((reopened, contents)) => {
                        assert_eq!(
                            (contents.entries, contents.hard_state),
                            model.view(model.marker)
                        );
                        wal = reopened;
                        continue;
                    }
                    Err(e) => {
                        halted(&e);
                        return (Some(model), None);
                    }
                }
            }
        };
        if let Err(e) = result {
            halted(&e);
            // A failed release follows an acknowledged marker: `next` is
            // acknowledged. Otherwise `next` is what the failed save aimed at.
            let released = next.marker != model.marker;
            return if released {
                (Some(next), None)
            } else {
                (Some(model), Some(next))
            };
        }
        model = next;
    }
    (Some(model), None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: PROPTEST_CASES, ..ProptestConfig::default() })]

    /// Random saves (some rewriting the tail), snapshots with releases and
    /// clean reopens, the power lost before a random call of the run: the reopened WAL
    /// holds the acknowledged state or the one being saved, and goes on.
    #[test]
    fn random_runs_survive_a_power_loss(
        ops in prop::collection::vec(op(), 1..MAX_OPS),
        stop_seed in any::<u64>(),
        lucky in any::<bool>(),
    ) {
        // A dry run counts the calls, so the stop lands inside the run.
        let calls = {
            let io = machine();
            let before = io.mutating_calls();
            let (acked, pending) = run(&io, &ops);
            prop_assert!(acked.is_some() && pending.is_none());
            io.mutating_calls() - before
        };
        let io = machine();
        io.cut_power_after(stop_seed % (calls + 1));
        let (acked, pending) = run(&io, &ops);
        lose_power(&io, lucky);
        let shared: Arc<dyn WalIo> = Arc::new(io.clone());
        let Some(acked) = acked else {
            // The create was not acknowledged: the WAL may or may not exist.
            match reopen(&shared, SnapshotMarker::default()) {
                Ok(_) | Err(Error::NoSegments { .. }) => return Ok(()),
                Err(e) => panic!("reopen after a failed create: {e}"),
            }
        };
        let (mut wal, contents) = reopen(&shared, acked.marker)
            .unwrap_or_else(|e| panic!("reopen at {:?}: {e}", acked.marker));
        let found = (contents.entries, contents.hard_state);
        let candidates: Vec<_> = [Some(&acked), pending.as_ref()]
            .into_iter()
            .flatten()
            .map(|m| m.view(acked.marker))
            .collect();
        prop_assert!(candidates.contains(&found), "found {found:?}\nacked {acked:?}\npending {pending:?}");
        let next = wal.last_index() + 1;
        wal.save(&HardState { commit: next, ..found.1 }, &[entry(next, found.1.term.max(1), 64)])
            .expect("save after recovery");
    }
}

/// A commit index saved unsynced is lost with the power unless a later
/// synced save (or a cut) made it durable; the entries before it never are.
#[test]
fn an_unsynced_commit_index_is_durable_only_after_the_next_sync() {
    for lucky in [false, true] {
        let io = machine();
        let shared: Arc<dyn WalIo> = Arc::new(io.clone());
        let mut wal =
            Wal::create_with_io(Arc::clone(&shared), WAL_DIR, b"meta", &small_config()).unwrap();
        wal.save(&hard_state(0), &entries(1, 3)).unwrap();
        wal.save_state_unsynced(&hard_state(3)).unwrap();
        assert_eq!(wal.hard_state(), hard_state(3));
        drop(wal);
        lose_power(&io, lucky);
        let (mut wal, contents) = reopen(&shared, SnapshotMarker::default()).unwrap();
        assert_eq!(contents.entries.last().map(|e| e.index), Some(3));
        let expected = if lucky { 3 } else { 0 };
        assert_eq!(contents.hard_state.commit, expected, "lucky={lucky}");

        // Unsynced, then synced with the next batch: both survive.
        wal.save_state_unsynced(&hard_state(3)).unwrap();
        wal.save(&hard_state(3), &entries(4, 5)).unwrap();
        drop(wal);
        lose_power(&io, false);
        let (_wal, contents) = reopen(&shared, SnapshotMarker::default()).unwrap();
        assert_eq!(contents.hard_state.commit, 3);
        assert_eq!(contents.entries.last().map(|e| e.index), Some(5));
    }
}
