//! The conformance suite every [`WalIo`] implementation passes — [`StdIo`]
//! in a temporary directory and [`MemIo`] alike (TiKV's
//! `engine_traits_tests`, openraft's `Suite::test_all`).
//!
//! Each case is a function taking a factory of fresh filesystems
//! ([`TestFs`]); it panics on the first broken expectation. The cases check
//! the [`WalIo`] contract (writes read back, syncs, renames into place,
//! removals, listings, truncation, preallocated zeros, lock exclusivity,
//! errors for missing files) and then the WAL and the snapshotter running
//! on that IO. [`wal_io_conformance!`](crate::wal_io_conformance) makes one
//! `#[test]` per case:
//!
//! ```
//! mod mem_io {
//!     use std::sync::Arc;
//!     use ironcd_wal::{testkit::TestFs, MemIo};
//!     ironcd_wal::wal_io_conformance!(|| TestFs::new(Arc::new(MemIo::new()), "/"));
//! }
//! # fn main() {}
//! ```
//!
//! [`StdIo`]: crate::StdIo
//! [`MemIo`]: crate::MemIo

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::{read_exact_at, write_all_at};
use crate::{
    Entry, Error, HardState, OpenMode, Snapshot, SnapshotMarker, Snapshotter, Wal, WalConfig,
    WalContents, WalFile, WalIo, MIN_SEGMENT_SIZE_BYTES,
};

/// A fresh filesystem for one case: an IO and an existing, empty directory
/// in it that the case may fill.
pub struct TestFs {
    /// The implementation under test.
    pub io: Arc<dyn WalIo>,
    /// An existing, empty directory.
    pub root: PathBuf,
    /// Whatever must live as long as the case (a temporary directory).
    _guard: Box<dyn Any>,
}

impl TestFs {
    /// `root` must exist and be empty.
    pub fn new(io: Arc<dyn WalIo>, root: impl Into<PathBuf>) -> Self {
        TestFs {
            io,
            root: root.into(),
            _guard: Box::new(()),
        }
    }

    /// Keeps `guard` (a `tempfile::TempDir`, say) alive until the case ends.
    pub fn keeping(mut self, guard: impl Any) -> Self {
        self._guard = Box::new(guard);
        self
    }
}

/// A factory of fresh filesystems.
pub type NewFs<'a> = &'a dyn Fn() -> TestFs;

/// One `#[test]` per conformance case, for the filesystem factory given
/// (an expression of type `impl Fn() -> TestFs`), each named after its case
/// so a failure names itself. Expand it inside a module per implementation.
/// The list here is the one list of cases: a new case is added to it.
#[macro_export]
macro_rules! wal_io_conformance {
    (@cases $new_fs:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::$case(&$new_fs)
            }
        )*
    };
    ($new_fs:expr) => {
        $crate::wal_io_conformance!(@cases $new_fs;
            write_then_read_back, open_modes_and_missing_files, syncs_succeed,
            rename_replaces_and_follows_open_files, remove_leaves_open_files_readable,
            list_and_create_dir_all, set_len_truncates_and_extends,
            preallocate_leaves_zeros, lock_is_exclusive, wal_round_trip,
            wal_is_locked_while_open, wal_cuts_segments_and_releases,
            wal_repairs_a_truncated_tail, snapshots_save_load_purge);
    };
}

/// Segments of 4 KiB, so a few dozen entries cross several cuts.
pub fn small_config() -> WalConfig {
    WalConfig {
        segment_size_bytes: MIN_SEGMENT_SIZE_BYTES,
        max_record_bytes: 64 * 1024,
        max_snapshots: 2,
        ..WalConfig::default()
    }
}

/// An entry whose data has no zero byte (zeros could pass for a torn write).
pub fn entry(index: u64, term: u64, len: usize) -> Entry {
    let data = (0..len)
        .map(|i| ((index as usize * 31 + i * 7) % 255) as u8 + 1)
        .collect();
    Entry { index, term, data }
}

/// Entries `first..=last` of term 1, 200 bytes of data each.
pub fn entries(first: u64, last: u64) -> Vec<Entry> {
    (first..=last).map(|index| entry(index, 1, 200)).collect()
}

/// The whole current contents of the file at `path`.
pub fn read_file(io: &dyn WalIo, path: &Path) -> io::Result<Vec<u8>> {
    let file = io.open(path, OpenMode::Read)?;
    let mut bytes = vec![0; usize::try_from(file.size_bytes()?).expect("file fits memory")];
    read_exact_at(file.as_ref(), &mut bytes, 0)?;
    Ok(bytes)
}

fn create(io: &dyn WalIo, path: &Path, bytes: &[u8]) -> Box<dyn WalFile> {
    let mut file = io.open(path, OpenMode::CreateTruncate).expect("create");
    write_all_at(file.as_mut(), bytes, 0).expect("write");
    file
}

fn sorted_list(io: &dyn WalIo, dir: &Path) -> Vec<String> {
    let mut names = io.list(dir).expect("list");
    names.sort();
    names
}

fn assert_kind<T: std::fmt::Debug>(result: io::Result<T>, kind: io::ErrorKind, what: &str) {
    match result {
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
    }
}

/// Writes at offsets (leaving a hole that reads as zeros) read back through
/// the same handle and another one; reads stop at the end of the file.
pub fn write_then_read_back(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let path = fs.root.join("a");
    let mut file = create(fs.io.as_ref(), &path, b"hello");
    write_all_at(file.as_mut(), b"world", 8).expect("write after a hole");
    assert_eq!(file.size_bytes().expect("size"), 13);
    assert_eq!(
        read_file(fs.io.as_ref(), &path).expect("read"),
        b"hello\0\0\0world"
    );
    let mut buf = [7u8; 8];
    assert_eq!(file.read_at(&mut buf, 10).expect("read at the end"), 3);
    assert_eq!(&buf[..3], b"rld");
    assert_eq!(file.read_at(&mut buf, 13).expect("read at EOF"), 0);
    assert_eq!(file.read_at(&mut buf, 100).expect("read past EOF"), 0);
    write_all_at(file.as_mut(), b"J", 0).expect("overwrite");
    let other = fs.io.open(&path, OpenMode::Read).expect("open again");
    let mut head = [0u8; 5];
    read_exact_at(other.as_ref(), &mut head, 0).expect("read");
    assert_eq!(&head, b"Jello", "another handle sees the write");
}

/// Each [`OpenMode`] keeps or empties the file as documented; opening a
/// missing file for reading, or in a missing directory, is `NotFound`;
/// a read-only handle refuses writes.
pub fn open_modes_and_missing_files(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let io = fs.io.as_ref();
    let path = fs.root.join("f");
    assert_kind(
        io.open(&path, OpenMode::Read),
        io::ErrorKind::NotFound,
        "read missing",
    );
    assert_kind(
        io.open(&path, OpenMode::ReadWrite),
        io::ErrorKind::NotFound,
        "rw missing",
    );
    let in_missing_dir = fs.root.join("nope").join("f");
    assert_kind(
        io.open(&in_missing_dir, OpenMode::CreateTruncate),
        io::ErrorKind::NotFound,
        "create in a missing directory",
    );
    drop(create(io, &path, b"kept"));
    drop(io.open(&path, OpenMode::CreateKeep).expect("create keep"));
    assert_eq!(read_file(io, &path).expect("read"), b"kept");
    let mut rw = io.open(&path, OpenMode::ReadWrite).expect("read write");
    write_all_at(rw.as_mut(), b"K", 0).expect("write");
    assert_eq!(read_file(io, &path).expect("read"), b"Kept");
    let mut read_only = io.open(&path, OpenMode::Read).expect("read");
    assert!(
        read_only.write_at(b"x", 0).is_err(),
        "read-only handle wrote"
    );
    drop(io.open(&path, OpenMode::CreateTruncate).expect("truncate"));
    assert_eq!(read_file(io, &path).expect("read"), b"");
}

/// fsyncs of files and of a directory succeed; of a missing directory,
/// `NotFound`.
pub fn syncs_succeed(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let mut file = create(fs.io.as_ref(), &fs.root.join("a"), b"x");
    file.sync_data().expect("fdatasync");
    file.sync_all().expect("fsync");
    fs.io.sync_dir(&fs.root).expect("fsync dir");
    assert_kind(
        fs.io.sync_dir(&fs.root.join("missing")),
        io::ErrorKind::NotFound,
        "fsync missing dir",
    );
}

/// A rename replaces its target; an open handle follows the file to its
/// new name; renaming a missing file is `NotFound`.
pub fn rename_replaces_and_follows_open_files(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let io = fs.io.as_ref();
    let (temp, target) = (fs.root.join("a.tmp"), fs.root.join("a"));
    drop(create(io, &target, b"old"));
    let mut file = create(io, &temp, b"new");
    file.sync_all().expect("fsync");
    io.rename(&temp, &target).expect("rename");
    io.sync_dir(&fs.root).expect("fsync dir");
    assert_eq!(sorted_list(io, &fs.root), ["a"]);
    assert_eq!(read_file(io, &target).expect("read"), b"new");
    write_all_at(file.as_mut(), b"!", 3).expect("write through the old handle");
    assert_eq!(read_file(io, &target).expect("read"), b"new!");
    assert_kind(
        io.rename(&temp, &target),
        io::ErrorKind::NotFound,
        "rename missing",
    );
}

/// A removed file is gone from the directory, removing it again is
/// `NotFound`, and a handle opened before still reads it.
pub fn remove_leaves_open_files_readable(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let io = fs.io.as_ref();
    let path = fs.root.join("a");
    let file = create(io, &path, b"bytes");
    io.remove(&path).expect("remove");
    io.sync_dir(&fs.root).expect("fsync dir");
    assert!(sorted_list(io, &fs.root).is_empty());
    assert_kind(io.remove(&path), io::ErrorKind::NotFound, "remove twice");
    assert_kind(
        io.open(&path, OpenMode::Read),
        io::ErrorKind::NotFound,
        "open removed",
    );
    let mut buf = [0u8; 5];
    read_exact_at(file.as_ref(), &mut buf, 0).expect("read a removed file");
    assert_eq!(&buf, b"bytes");
}

/// `list` names files and directories; `create_dir_all` makes parents and
/// may be repeated; listing a missing directory is `NotFound`.
pub fn list_and_create_dir_all(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let io = fs.io.as_ref();
    let deep = fs.root.join("d").join("e");
    io.create_dir_all(&deep).expect("create dirs");
    io.create_dir_all(&deep).expect("create dirs again");
    drop(create(io, &fs.root.join("b"), b""));
    drop(create(io, &deep.join("c"), b""));
    assert_eq!(sorted_list(io, &fs.root), ["b", "d"]);
    assert_eq!(sorted_list(io, &fs.root.join("d")), ["e"]);
    assert_eq!(sorted_list(io, &deep), ["c"]);
    assert_kind(
        io.list(&fs.root.join("x")),
        io::ErrorKind::NotFound,
        "list missing",
    );
    assert!(
        io.create_dir_all(&fs.root.join("b")).is_err(),
        "a file is there"
    );
}

/// `set_len` cuts bytes off and extends with zeros.
pub fn set_len_truncates_and_extends(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let path = fs.root.join("a");
    let mut file = create(fs.io.as_ref(), &path, b"0123456789");
    file.set_len(4).expect("truncate");
    assert_eq!(read_file(fs.io.as_ref(), &path).expect("read"), b"0123");
    file.set_len(6).expect("extend");
    assert_eq!(read_file(fs.io.as_ref(), &path).expect("read"), b"0123\0\0");
    write_all_at(file.as_mut(), b"x", 7).expect("write past the end");
    assert_eq!(
        read_file(fs.io.as_ref(), &path).expect("read"),
        b"0123\0\0\0x"
    );
}

/// Preallocation extends with zeros, keeps the data and never shrinks.
pub fn preallocate_leaves_zeros(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let path = fs.root.join("a");
    let mut file = create(fs.io.as_ref(), &path, b"abc");
    let size = MIN_SEGMENT_SIZE_BYTES;
    file.preallocate(size).expect("preallocate");
    assert_eq!(file.size_bytes().expect("size"), size);
    let bytes = read_file(fs.io.as_ref(), &path).expect("read");
    assert_eq!(&bytes[..3], b"abc");
    assert!(
        bytes[3..].iter().all(|&b| b == 0),
        "preallocated bytes are zeros"
    );
    file.preallocate(2).expect("preallocate less");
    assert_eq!(
        file.size_bytes().expect("size"),
        size,
        "preallocate never shrinks"
    );
}

/// The lock is exclusive between handles, may be taken again by its
/// holder, and is released when the holder closes.
pub fn lock_is_exclusive(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let path = fs.root.join("lock");
    let first = fs.io.open(&path, OpenMode::CreateKeep).expect("open");
    let second = fs.io.open(&path, OpenMode::CreateKeep).expect("open");
    assert!(first.try_lock_exclusive().expect("lock"));
    assert!(
        first.try_lock_exclusive().expect("relock"),
        "the holder may relock"
    );
    assert!(
        !second.try_lock_exclusive().expect("lock"),
        "held by the first"
    );
    drop(first);
    assert!(
        second.try_lock_exclusive().expect("lock"),
        "closing releases it"
    );
}

fn create_wal(fs: &TestFs, metadata: &[u8]) -> Wal {
    Wal::create_with_io(
        Arc::clone(&fs.io),
        fs.root.join("wal"),
        metadata,
        &small_config(),
    )
    .expect("create wal")
}

fn open_wal(fs: &TestFs, at: SnapshotMarker) -> crate::Result<(Wal, WalContents)> {
    Wal::open_with_io(Arc::clone(&fs.io), fs.root.join("wal"), at, &small_config())?.read_all()
}

const HS: HardState = HardState {
    term: 1,
    vote: 1,
    commit: 0,
};

/// Saved entries and hard state come back after a reopen, which appends.
pub fn wal_round_trip(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let mut wal = create_wal(&fs, b"meta");
    wal.save(&HS, &entries(1, 3)).expect("save");
    drop(wal);
    let (mut wal, contents) = open_wal(&fs, SnapshotMarker::default()).expect("reopen");
    assert_eq!(contents.metadata, b"meta");
    assert_eq!(contents.hard_state, HS);
    assert_eq!(contents.entries, entries(1, 3));
    let hs = HardState { commit: 3, ..HS };
    wal.save(&hs, &entries(4, 4)).expect("append after reopen");
    drop(wal);
    let (_, contents) = open_wal(&fs, SnapshotMarker::default()).expect("reopen");
    assert_eq!(contents.hard_state, hs);
    assert_eq!(contents.entries, entries(1, 4));
    let again = Wal::create_with_io(
        Arc::clone(&fs.io),
        fs.root.join("wal"),
        b"m",
        &small_config(),
    );
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
}

/// A second open of a WAL that is open fails with [`Error::Locked`].
pub fn wal_is_locked_while_open(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let wal = create_wal(&fs, b"m");
    let second = open_wal(&fs, SnapshotMarker::default());
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    drop(wal);
    let (wal, _) = open_wal(&fs, SnapshotMarker::default()).expect("open after close");
    let third = open_wal(&fs, SnapshotMarker::default());
    assert!(matches!(third, Err(Error::Locked { .. })), "{third:?}");
    drop(wal);
}

fn segment_files(io: &dyn WalIo, dir: &Path) -> usize {
    sorted_list(io, dir)
        .iter()
        .filter(|n| n.ends_with(".wal"))
        .count()
}

/// Saves cut segments; `release_to` deletes the ones wholly before a
/// snapshot; a reopen at that snapshot reads the entries after it.
pub fn wal_cuts_segments_and_releases(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let dir = fs.root.join("wal");
    let mut wal = create_wal(&fs, b"m");
    for index in 1..=60 {
        wal.save(&HS, &entries(index, index)).expect("save");
    }
    let cut = wal.segment_count();
    assert!(cut > 2, "60 entries of 200 bytes cut {cut} segments");
    assert_eq!(segment_files(fs.io.as_ref(), &dir), cut);
    let marker = SnapshotMarker { index: 40, term: 1 };
    wal.save_snapshot(marker).expect("save snapshot marker");
    wal.release_to(40).expect("release");
    let kept = wal.segment_count();
    assert!(kept < cut, "released nothing of {cut}");
    assert_eq!(segment_files(fs.io.as_ref(), &dir), kept);
    drop(wal);
    let from_start = open_wal(&fs, SnapshotMarker::default());
    assert!(
        matches!(from_start, Err(Error::SnapshotNotFound { .. })),
        "{from_start:?}"
    );
    let (wal, contents) = open_wal(&fs, marker).expect("reopen at the snapshot");
    assert_eq!(contents.entries, entries(41, 60));
    assert_eq!(wal.last_index(), 60);
}

/// A last segment cut off inside its last record reopens without it.
pub fn wal_repairs_a_truncated_tail(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let mut wal = create_wal(&fs, b"m");
    for index in 1..=5 {
        wal.save(&HS, &entries(index, index)).expect("save");
    }
    drop(wal);
    let dir = fs.root.join("wal");
    let names = sorted_list(fs.io.as_ref(), &dir);
    let last = dir.join(
        names
            .iter()
            .rfind(|n| n.ends_with(".wal"))
            .expect("a segment"),
    );
    let bytes = read_file(fs.io.as_ref(), &last).expect("read segment");
    let end = bytes.iter().rposition(|&b| b != 0).expect("records") + 1;
    let mut file = fs
        .io
        .open(&last, OpenMode::ReadWrite)
        .expect("open segment");
    file.set_len(end as u64 - 3).expect("tear the last record");
    file.sync_all().expect("fsync");
    drop(file);
    let (mut wal, contents) = open_wal(&fs, SnapshotMarker::default()).expect("repairing reopen");
    assert_eq!(contents.entries, entries(1, 4));
    wal.save(&HS, &entries(5, 5))
        .expect("save over the repaired tail");
    drop(wal);
    let (_, contents) = open_wal(&fs, SnapshotMarker::default()).expect("reopen");
    assert_eq!(contents.entries, entries(1, 5));
}

/// Snapshot files save, list newest first, load, and purge down to
/// `max_snapshots` along with leftover temporary files.
pub fn snapshots_save_load_purge(new_fs: NewFs<'_>) {
    let fs = new_fs();
    let dir = fs.root.join("snap");
    let snap = Snapshotter::with_io(Arc::clone(&fs.io), &dir, &small_config()).expect("snap dir");
    let marker = |term, index| SnapshotMarker { index, term };
    for (term, index) in [(1, 10), (1, 20), (2, 30)] {
        snap.save(marker(term, index), format!("state at {index}").as_bytes())
            .expect("save snapshot");
    }
    assert_eq!(
        snap.list().expect("list"),
        [marker(2, 30), marker(1, 20), marker(1, 10)]
    );
    let loaded = snap.load(marker(1, 20)).expect("load");
    let want = Snapshot {
        marker: marker(1, 20),
        data: b"state at 20".to_vec(),
    };
    assert_eq!(loaded, want);
    let newest = snap.load_newest_valid().expect("load newest");
    assert_eq!(newest.map(|s| s.marker), Some(marker(2, 30)));
    match snap.load(marker(9, 9)) {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::NotFound),
        other => panic!("loading a missing snapshot: {other:?}"),
    }
    drop(create(fs.io.as_ref(), &dir.join("leftover.snap.tmp"), b"x"));
    assert_eq!(snap.purge().expect("purge"), 1);
    assert_eq!(snap.list().expect("list"), [marker(2, 30), marker(1, 20)]);
    assert_eq!(
        sorted_list(fs.io.as_ref(), &dir).len(),
        2,
        "temporary file purged"
    );
}
