//! Snapshot files: save, list, load the newest valid one (skipping and
//! naming corrupt ones), purge down to `max_snapshots`.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use ironcd_wal::fault::{Fault, FaultAction, FaultOp, FaultyIo};
use ironcd_wal::{Error, Snapshot, SnapshotMarker, Snapshotter, StdIo, WalConfig};
use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

fn marker(term: u64, index: u64) -> SnapshotMarker {
    SnapshotMarker { index, term }
}

fn data_of(m: SnapshotMarker) -> Vec<u8> {
    format!("snapshot at {}/{}", m.term, m.index).into_bytes()
}

fn file_of(dir: &Path, m: SnapshotMarker) -> std::path::PathBuf {
    dir.join(format!("{:016x}-{:016x}.snap", m.term, m.index))
}

fn snapshotter_with(dir: &Path, markers: &[SnapshotMarker]) -> Snapshotter {
    let snap = Snapshotter::new(
        dir,
        &WalConfig {
            max_snapshots: 3,
            ..WalConfig::default()
        },
    )
    .unwrap();
    for &m in markers {
        snap.save(m, &data_of(m)).unwrap();
    }
    snap
}

/// Collects every event's fields as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_corrupt_newest_snapshot_is_skipped_and_named_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (old, middle, newest) = (marker(1, 10), marker(1, 20), marker(2, 15));
    let snap = snapshotter_with(dir.path(), &[old, newest, middle]);
    assert_eq!(
        snap.list().unwrap(),
        vec![newest, middle, old],
        "newest first: by term, then index"
    );
    let newest_file = file_of(dir.path(), newest);
    let mut bytes = fs::read(&newest_file).unwrap();
    bytes[30] ^= 0x10;
    fs::write(&newest_file, bytes).unwrap();

    let capture = Capture::default();
    let loaded =
        tracing::subscriber::with_default(capture.clone(), || snap.load_newest_valid()).unwrap();
    assert_eq!(
        loaded,
        Some(Snapshot {
            marker: middle,
            data: data_of(middle)
        })
    );
    let logs = capture.0.lock().join("\n");
    assert!(
        logs.contains("WARN") && logs.contains(&newest_file.display().to_string()),
        "{logs}"
    );
    assert!(!newest_file.exists(), "set aside");
    assert!(dir
        .path()
        .join(format!(
            "{}.broken",
            newest_file.file_name().unwrap().to_string_lossy()
        ))
        .exists());
    assert_eq!(snap.list().unwrap(), vec![middle, old]);
}

#[test]
fn truncated_empty_or_misnamed_files_are_skipped_too() {
    let dir = tempfile::tempdir().unwrap();
    let good = marker(1, 1);
    let snap = snapshotter_with(dir.path(), &[good]);
    fs::write(file_of(dir.path(), marker(3, 3)), b"").unwrap();
    let full = fs::read(file_of(dir.path(), good)).unwrap();
    fs::write(file_of(dir.path(), marker(2, 9)), &full[..full.len() - 3]).unwrap();
    // A valid file under another snapshot's name.
    fs::write(file_of(dir.path(), marker(2, 8)), &full).unwrap();
    assert!(matches!(
        snap.load(marker(2, 8)),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(snap.load_newest_valid().unwrap().unwrap().marker, good);
}

#[test]
fn no_valid_snapshot_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshotter_with(dir.path(), &[]);
    assert_eq!(snap.load_newest_valid().unwrap(), None);
    fs::write(file_of(dir.path(), marker(1, 1)), b"garbage!").unwrap();
    assert_eq!(snap.load_newest_valid().unwrap(), None);
}

#[test]
fn only_snapshots_the_wal_recorded_are_considered() {
    let dir = tempfile::tempdir().unwrap();
    let snap = snapshotter_with(dir.path(), &[marker(1, 10), marker(1, 20), marker(1, 30)]);
    let recorded = [marker(1, 10), marker(1, 20)];
    assert_eq!(
        snap.load_newest_valid_among(&recorded)
            .unwrap()
            .unwrap()
            .marker,
        marker(1, 20)
    );
    assert_eq!(snap.load_newest_valid_among(&[]).unwrap(), None);
}

#[test]
fn purge_keeps_the_newest_max_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<_> = (1..=6).map(|i| marker(1 + i / 4, i * 10)).collect();
    let snap = snapshotter_with(dir.path(), &all);
    fs::write(
        dir.path()
            .join("0000000000000009-0000000000000009.snap.tmp"),
        b"half",
    )
    .unwrap();
    assert_eq!(snap.purge().unwrap(), 3);
    assert_eq!(
        snap.list().unwrap(),
        vec![marker(2, 60), marker(2, 50), marker(2, 40)]
    );
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(snap.purge().unwrap(), 0);
}

#[test]
fn a_failed_save_leaves_no_snapshot_file() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new(Arc::new(StdIo));
    io.arm(Fault::once(FaultOp::SyncAll, FaultAction::eio()));
    let snap = Snapshotter::with_io(Arc::new(io), dir.path(), &WalConfig::default()).unwrap();
    let m = marker(1, 5);
    assert!(matches!(
        snap.save(m, b"data"),
        Err(Error::Io { op: "fsync", .. })
    ));
    assert_eq!(snap.list().unwrap(), vec![]);
    assert_eq!(snap.load_newest_valid().unwrap(), None);
    snap.purge().unwrap();
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "purge removed the temporary file"
    );
    snap.save(m, b"data").unwrap();
    assert_eq!(snap.load(m).unwrap().data, b"data");
}

#[test]
fn an_oversized_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        max_snapshot_bytes: 1024,
        ..WalConfig::default()
    };
    let snap = Snapshotter::new(dir.path(), &config).unwrap();
    let m = marker(1, 1);
    let file = fs::File::create(file_of(dir.path(), m)).unwrap();
    file.set_len(1 << 30).unwrap();
    assert!(matches!(snap.load(m), Err(Error::RecordTooLarge { len, .. }) if len == 1 << 30));
}
