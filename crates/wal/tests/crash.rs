//! A crash in the middle of a segment cut: a child process (the
//! `wal-crash-child` binary, `tests/bin/crash_child.rs`) saves entries until
//! a cut has written and synced the new segment under its temporary name,
//! and is killed with SIGKILL before the rename. Reopening must find every
//! acknowledged entry, drop the temporary file, and carry on.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{entry, segments, small_config};
use ironcd_wal::{HardState, SnapshotMarker, Wal};

const HS: HardState = HardState {
    term: 1,
    vote: 1,
    commit: 0,
};
const ROUNDS: usize = 3;

/// Runs a child until it announces a rename; returns the last entry it
/// acknowledged (if any) and the temporary file it was about to rename.
fn run_child_until_rename(dir: &Path) -> (Option<u64>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wal-crash-child"))
        .arg(dir)
        .stdout(Stdio::piped())
        // A child that fails says why.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut acked = None;
    let mut temp = None;
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("saved ") {
            acked = Some(n.parse().expect("index"));
        } else if let Some(path) = line.strip_prefix("renaming ") {
            temp = Some(path.to_string());
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    (acked, temp.expect("the child reached a cut"))
}

#[test]
fn a_crash_between_writing_the_next_segment_and_renaming_it_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut previous = 0;
    for round in 0..ROUNDS {
        let segments_before = segments(dir.path()).len();
        let (acked, temp) = run_child_until_rename(dir.path());
        assert!(
            Path::new(&temp).exists(),
            "round {round}: the temporary segment was written"
        );
        // A child reopening a full segment cuts on its first save, before it
        // acknowledges anything.
        let acked = acked.unwrap_or(previous);

        let (wal, contents) = Wal::open(dir.path(), SnapshotMarker::default(), &small_config())
            .and_then(|r| r.read_all())
            .unwrap_or_else(|e| panic!("round {round}: reopen after the crash: {e}"));
        // The save that filled the segment was synced before the cut began;
        // its caller never heard back, but it is on disk.
        let last = acked + 1;
        let want: Vec<_> = (1..=last).map(|i| entry(i, 1, 200)).collect();
        assert_eq!(contents.entries, want, "round {round}");
        assert_eq!(contents.metadata, b"crash");
        assert!(
            !Path::new(&temp).exists(),
            "round {round}: the temporary segment was removed"
        );
        assert_eq!(
            segments(dir.path()).len(),
            segments_before.max(1),
            "round {round}: no new segment"
        );
        drop(wal);
        previous = last;
    }
    // The log goes on, through cuts, without the child's IO.
    let (mut wal, _) = Wal::open(dir.path(), SnapshotMarker::default(), &small_config())
        .unwrap()
        .read_all()
        .unwrap();
    let before = wal.segment_count();
    for index in previous + 1..=previous + 60 {
        wal.save(&HS, &[entry(index, 1, 200)]).unwrap();
    }
    assert!(wal.segment_count() > before + 1);
    drop(wal);
    let (_, contents) = Wal::open(dir.path(), SnapshotMarker::default(), &small_config())
        .unwrap()
        .read_all()
        .unwrap();
    assert_eq!(contents.entries.len() as u64, previous + 60);
}
