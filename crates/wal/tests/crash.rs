//! A crash in the middle of a segment cut: a child process (this test binary
//! re-run in child mode) saves entries until a cut has written and synced
//! the new segment under its temporary name, and is killed with SIGKILL
//! before the rename. Reopening must find every acknowledged entry, drop the
//! temporary file, and carry on.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{entry, segments, small_config};
use ironcd_wal::{HardState, OpenMode, SnapshotMarker, StdIo, Wal, WalFile, WalIo};

const CHILD_ENV: &str = "IRONCD_WAL_CRASH_DIR";
const HS: HardState = HardState {
    term: 1,
    vote: 1,
    commit: 0,
};
const ROUNDS: usize = 3;

/// The real filesystem, except that renaming a temporary segment other than
/// the first announces it and then waits to be killed.
#[derive(Debug)]
struct StopBeforeRename;

impl WalIo for StopBeforeRename {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        StdIo.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        StdIo.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn WalFile>> {
        StdIo.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let first_segment = to
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("0000000000000000-"));
        if from.extension().is_some_and(|x| x == "tmp") && !first_segment {
            let mut out = std::io::stdout().lock();
            writeln!(out, "renaming {}", from.display())?;
            out.flush()?;
            loop {
                std::thread::park();
            }
        }
        StdIo.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        StdIo.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        StdIo.sync_dir(dir)
    }
}

/// The child's body: runs only when the parent sets `CHILD_ENV`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let io: Arc<dyn WalIo> = Arc::new(StopBeforeRename);
    let mut wal = if Wal::exists(&dir) {
        Wal::open_with_io(io, &dir, SnapshotMarker::default(), &small_config())
            .unwrap()
            .read_all()
            .unwrap()
            .0
    } else {
        Wal::create_with_io(io, &dir, b"crash", &small_config()).unwrap()
    };
    let mut out = std::io::stdout().lock();
    for index in wal.last_index() + 1.. {
        wal.save(&HS, &[entry(index, 1, 200)]).expect("child save");
        writeln!(out, "saved {index}").expect("stdout");
        out.flush().expect("flush");
    }
}

/// Runs a child until it announces a rename; returns the last entry it
/// acknowledged (if any) and the temporary file it was about to rename.
fn run_child_until_rename(dir: &Path) -> (Option<u64>, String) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut acked = None;
    let mut temp = None;
    // The harness prints "test crash_child ... " in front of the first line.
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("line");
        if let Some((_, n)) = line.split_once("saved ") {
            acked = Some(n.parse().expect("index"));
        } else if let Some((_, path)) = line.split_once("renaming ") {
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
