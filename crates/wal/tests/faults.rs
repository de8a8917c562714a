//! Failed fsyncs, short and torn writes, ENOSPC: the failing call returns
//! an error, the WAL is poisoned so nothing later is acknowledged, and a
//! reopen finds every acknowledged entry.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{entry, reopen, small_config};
use ironcd_wal::fault::{Fault, FaultAction, FaultOp, FaultyIo};
use ironcd_wal::{Entry, Error, HardState, SnapshotMarker, StdIo, Wal, WalConfig};
use proptest::prelude::*;

const HS: HardState = HardState {
    term: 1,
    vote: 1,
    commit: 0,
};
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn faulty_wal(dir: &Path, config: &WalConfig) -> (FaultyIo, Wal) {
    let io = FaultyIo::new(Arc::new(StdIo));
    let wal = Wal::create_with_io(Arc::new(io.clone()), dir, b"m", config).unwrap();
    (io, wal)
}

/// Saves one entry per call until one fails; returns the acknowledged ones
/// and the error.
fn save_until_error(
    wal: &mut Wal,
    first: u64,
    max: u64,
    len: usize,
) -> (Vec<Entry>, Option<Error>) {
    let mut acked = Vec::new();
    for index in first..first + max {
        let e = entry(index, 1, len);
        match wal.save(&HS, std::slice::from_ref(&e)) {
            Ok(()) => acked.push(e),
            Err(error) => return (acked, Some(error)),
        }
    }
    (acked, None)
}

/// After a failure: everything refuses with `Poisoned`.
fn assert_poisoned(wal: &mut Wal, next: u64) {
    assert!(wal.is_poisoned());
    assert!(matches!(
        wal.save(&HS, &[entry(next, 1, 8)]),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(
        wal.save(&HardState { commit: 1, ..HS }, &[]),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(
        wal.save_snapshot(SnapshotMarker { index: 1, term: 1 }),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(wal.release_to(1), Err(Error::Poisoned { .. })));
}

/// Reopens on the real filesystem; the acknowledged entries are a prefix of
/// what is there, and at most `unacked` more entries made it.
fn assert_acked_survive(
    dir: &Path,
    config: &WalConfig,
    acked: &[Entry],
    unacked: usize,
) -> Vec<Entry> {
    let (_, contents) =
        reopen(dir, SnapshotMarker::default(), config).expect("reopen after a fault");
    assert!(
        contents.entries.len() >= acked.len(),
        "lost acknowledged entries"
    );
    assert!(
        contents.entries.len() <= acked.len() + unacked,
        "entries nobody saved"
    );
    assert_eq!(&contents.entries[..acked.len()], acked);
    contents.entries
}

fn os_error(error: &Error) -> Option<i32> {
    match error {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[test]
fn a_failed_fdatasync_poisons_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (io, mut wal) = faulty_wal(dir.path(), &small_config());
    io.arm(Fault::once(FaultOp::SyncData, FaultAction::eio()).after(5));
    let (acked, error) = save_until_error(&mut wal, 1, 20, 64);
    assert_eq!(acked.len(), 5);
    let error = error.expect("the sixth save fails");
    assert!(
        matches!(
            &error,
            Error::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(os_error(&error), Some(EIO));
    // The fault fired once; the WAL still refuses: it cannot know whether
    // the kernel kept the pages.
    assert_poisoned(&mut wal, 7);
    drop(wal);
    assert_acked_survive(dir.path(), &small_config(), &acked, 1);
}

#[test]
fn short_writes_are_continued_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (io, mut wal) = faulty_wal(dir.path(), &small_config());
    io.arm(Fault::once(FaultOp::Write, FaultAction::Short(7)).forever());
    let batch: Vec<Entry> = (1..=40).map(|i| entry(i, 1, 100)).collect();
    for chunk in batch.chunks(8) {
        wal.save(&HS, chunk).unwrap();
    }
    assert!(
        io.injected() > 100,
        "writes were cut short {} times",
        io.injected()
    );
    assert!(
        wal.segment_count() > 1,
        "segment cuts also survived short writes"
    );
    drop(wal);
    assert_eq!(
        assert_acked_survive(dir.path(), &small_config(), &batch, 0),
        batch
    );
}

#[test]
fn a_torn_write_is_not_acknowledged_and_is_repaired() {
    // Torn within the first record of the batch, and after one whole record.
    for (torn_bytes, may_survive) in [(10, 0), (150, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            segment_size_bytes: 1 << 20,
            ..small_config()
        };
        let (io, mut wal) = faulty_wal(dir.path(), &config);
        let (acked, _) = save_until_error(&mut wal, 1, 3, 100);
        io.arm(Fault::once(
            FaultOp::Write,
            FaultAction::Torn(torn_bytes, EIO),
        ));
        let batch: Vec<Entry> = (4..=8).map(|i| entry(i, 1, 100)).collect();
        let error = wal.save(&HS, &batch).unwrap_err();
        assert!(matches!(&error, Error::Io { op: "write", .. }), "{error}");
        assert_poisoned(&mut wal, 9);
        drop(wal);
        let found = assert_acked_survive(dir.path(), &config, &acked, may_survive);
        assert_eq!(
            found.len(),
            acked.len() + may_survive,
            "torn after {torn_bytes} bytes"
        );
        // And the log goes on where the repair left it.
        let (mut wal, _) = reopen(dir.path(), SnapshotMarker::default(), &config).unwrap();
        wal.save(&HS, &[entry(found.len() as u64 + 1, 1, 100)])
            .unwrap();
    }
}

#[test]
fn enospc_on_write_is_an_error_and_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let (io, mut wal) = faulty_wal(dir.path(), &small_config());
    io.arm(
        Fault::once(FaultOp::Write, FaultAction::enospc())
            .after(3)
            .on_files_ending(".wal"),
    );
    let (acked, error) = save_until_error(&mut wal, 1, 10, 64);
    assert_eq!(acked.len(), 3);
    assert_eq!(os_error(&error.unwrap()), Some(ENOSPC));
    assert_poisoned(&mut wal, 5);
    drop(wal);
    assert_acked_survive(dir.path(), &small_config(), &acked, 0);
}

#[test]
fn faults_during_a_segment_cut_poison_and_reopen_cleans_up() {
    let cut_faults = [
        Fault::once(FaultOp::Preallocate, FaultAction::enospc()).on_files_ending(".tmp"),
        Fault::once(FaultOp::Write, FaultAction::torn_enospc(8)).on_files_ending(".tmp"),
        Fault::once(FaultOp::SyncAll, FaultAction::eio()).on_files_ending(".tmp"),
        Fault::once(FaultOp::Rename, FaultAction::eio()),
        Fault::once(FaultOp::SyncDir, FaultAction::eio()),
    ];
    for fault in cut_faults {
        let dir = tempfile::tempdir().unwrap();
        let (io, mut wal) = faulty_wal(dir.path(), &small_config());
        io.arm(fault.clone());
        let (acked, error) = save_until_error(&mut wal, 1, 100, 200);
        let error = error.unwrap_or_else(|| panic!("{fault:?} never hit"));
        assert!(matches!(error, Error::Io { .. }), "{fault:?}: {error}");
        assert_eq!(wal.segment_count(), 1, "{fault:?}: the first cut failed");
        assert_poisoned(&mut wal, acked.len() as u64 + 2);
        drop(wal);
        // The batch that filled the segment was synced before the cut began.
        let found = assert_acked_survive(dir.path(), &small_config(), &acked, 1);
        assert_eq!(found.len(), acked.len() + 1, "{fault:?}");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "{fault:?}: {names:?}"
        );
        let (mut wal, _) = reopen(dir.path(), SnapshotMarker::default(), &small_config()).unwrap();
        let (more, error) = save_until_error(&mut wal, found.len() as u64 + 1, 40, 200);
        assert!(
            error.is_none() && more.len() == 40 && wal.segment_count() > 1,
            "{fault:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever call fails and whenever: every `Ok` save survives a reopen,
    /// and nothing after the first error is acknowledged.
    #[test]
    fn nothing_is_acknowledged_after_a_fault(
        op in prop::sample::select(vec![FaultOp::Write, FaultOp::SyncData, FaultOp::SyncAll, FaultOp::Preallocate]),
        action in prop::sample::select(vec![FaultAction::eio(), FaultAction::enospc(), FaultAction::Torn(5, EIO)]),
        skip in 0u64..30,
        batch in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (io, mut wal) = faulty_wal(dir.path(), &small_config());
        io.arm(Fault::once(op, action).after(skip));
        let mut acked = Vec::new();
        let mut failed_batch = 0;
        for round in 0..25u64 {
            let first = acked.len() as u64 + 1;
            let entries: Vec<Entry> = (first..first + batch as u64).map(|i| entry(i, 1, 90)).collect();
            match wal.save(&HardState { commit: round, ..HS }, &entries) {
                Ok(()) => {
                    prop_assert!(failed_batch == 0, "acknowledged after a failure");
                    acked.extend(entries);
                }
                Err(Error::Poisoned { .. }) => prop_assert!(failed_batch > 0),
                Err(_) => {
                    prop_assert_eq!(failed_batch, 0);
                    failed_batch = batch;
                }
            }
        }
        drop(wal);
        assert_acked_survive(dir.path(), &small_config(), &acked, failed_batch);
    }
}
