//! The `WalIo` conformance suite (`ironcd_wal::testkit`) against every
//! implementation: the real filesystem in a temporary directory, and the
//! in-memory one; one test per case and implementation
//! (`std_io::wal_round_trip`, `mem_io::wal_round_trip`, …).

use std::path::Path;
use std::sync::Arc;

use ironcd_wal::testkit::TestFs;
use ironcd_wal::{MemIo, StdIo, WalIo};

fn std_fs() -> TestFs {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    TestFs::new(Arc::new(StdIo), root).keeping(dir)
}

/// A data directory that already exists durably, as a real one would.
fn mem_fs() -> TestFs {
    let io = MemIo::new();
    io.create_dir_all(Path::new("/data")).expect("mkdir");
    io.sync_dir(Path::new("/")).expect("fsync /");
    TestFs::new(Arc::new(io), "/data")
}

mod std_io {
    ironcd_wal::wal_io_conformance!(super::std_fs);
}

mod mem_io {
    ironcd_wal::wal_io_conformance!(super::mem_fs);
}
