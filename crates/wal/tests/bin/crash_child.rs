//! The child process of `tests/crash.rs`: `wal-crash-child <dir>` opens (or
//! creates) the WAL in `dir` and saves one entry after another, printing
//! `saved <index>` once each save returns. Renaming a temporary segment
//! other than the first prints `renaming <path>` instead and waits, forever,
//! to be killed: the parent SIGKILLs it between writing the next segment and
//! renaming it into place.
//!
//! A binary of its own, not a test, so the test count stays honest; it uses
//! only the crate and std (the parent makes the temporary directory).

#[path = "../common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::{entry, small_config};
use ironcd_wal::{HardState, OpenMode, SnapshotMarker, StdIo, Wal, WalFile, WalIo};

/// The hard state of every save (the parent does not look at it).
const HS: HardState = HardState {
    term: 1,
    vote: 1,
    commit: 0,
};

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

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: wal-crash-child <dir>");
        std::process::exit(2);
    };
    let io: Arc<dyn WalIo> = Arc::new(StopBeforeRename);
    let mut wal = if Wal::exists(&dir) {
        Wal::open_with_io(io, &dir, SnapshotMarker::default(), &small_config())
            .expect("open the WAL")
            .read_all()
            .expect("read the WAL")
            .0
    } else {
        Wal::create_with_io(io, &dir, b"crash", &small_config()).expect("create the WAL")
    };
    let mut out = std::io::stdout().lock();
    for index in wal.last_index() + 1.. {
        wal.save(&HS, &[entry(index, 1, 200)]).expect("child save");
        writeln!(out, "saved {index}").expect("stdout");
        out.flush().expect("flush");
    }
}
