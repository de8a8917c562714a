//! Recovery from damaged segments: a torn or zero-filled tail of the last
//! segment is repaired; every other kind of damage is an error that names
//! the file and offset, and leaves the files as they were.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{entry, frames, reopen, save_each, segments, small_config};
use ironcd_wal::{Error, HardState, SnapshotMarker, Wal, WalConfig};

const AT_START: SnapshotMarker = SnapshotMarker { index: 0, term: 0 };

fn entry_len(index: u64) -> usize {
    24 + (index as usize * 13) % 60
}

/// A WAL of `count` single-entry saves with varying sizes.
fn build(dir: &Path, count: u64) {
    let mut wal = Wal::create(dir, b"metadata", &small_config()).unwrap();
    for index in 1..=count {
        wal.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 0,
            },
            &[entry(index, 1, entry_len(index))],
        )
        .unwrap();
    }
}

fn expected(last: u64) -> Vec<ironcd_wal::Entry> {
    (1..=last).map(|i| entry(i, 1, entry_len(i))).collect()
}

fn location(error: &Error) -> Option<(PathBuf, u64)> {
    match error {
        Error::CrcMismatch { file, offset } | Error::Corrupt { file, offset, .. } => {
            Some((file.clone(), *offset))
        }
        _ => None,
    }
}

/// Removes segments a test's appends added after `keep`.
fn remove_extra_segments(dir: &Path, keep: &[PathBuf]) {
    for path in segments(dir) {
        if !keep.contains(&path) {
            fs::remove_file(path).unwrap();
        }
    }
}

/// Cuts the last segment at every byte offset inside its last three records
/// — by truncating the file, and by zeroing from there on (a write that
/// stopped part-way over preallocated zeros) — and reopens.
#[test]
fn a_torn_tail_anywhere_in_the_last_three_records_keeps_exactly_the_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let count = 110;
    build(dir.path(), count);
    let segs = segments(dir.path());
    assert!(segs.len() >= 2, "{segs:?}");
    let last = segs.last().unwrap();
    let original = fs::read(last).unwrap();
    let all = frames(&original);
    let tail = &all[all.len() - 3..];
    assert!(
        all.len() > 5,
        "the last segment holds its head and at least three entries"
    );
    let cuts = (tail[0].0..=tail[2].1).flat_map(|cut| [(cut, false), (cut, true)]);
    for (cut, zero_fill) in cuts {
        if zero_fill {
            let mut bytes = original.clone();
            bytes[cut..].fill(0);
            fs::write(last, &bytes).unwrap();
        } else {
            fs::write(last, &original).unwrap();
            OpenOptions::new()
                .write(true)
                .open(last)
                .unwrap()
                .set_len(cut as u64)
                .unwrap();
        }
        let whole = tail.iter().filter(|(_, end)| *end <= cut).count() as u64;
        let survivors = count - 3 + whole;
        let (mut wal, contents) = reopen(dir.path(), AT_START, &small_config())
            .unwrap_or_else(|e| panic!("cut {cut} {zero_fill}: {e}"));
        assert_eq!(
            contents.entries,
            expected(survivors),
            "cut at {cut}, zero fill {zero_fill}"
        );
        // The log goes on after the repair.
        wal.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 0,
            },
            &[entry(survivors + 1, 1, 10)],
        )
        .unwrap();
        drop(wal);
        let (_, again) = reopen(dir.path(), AT_START, &small_config()).unwrap();
        assert_eq!(again.entries.len() as u64, survivors + 1, "cut at {cut}");
        remove_extra_segments(dir.path(), &segs);
    }
}

#[test]
fn a_zero_filled_tail_of_the_last_batch_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_size_bytes: 64 * 1024,
        ..small_config()
    };
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: 0,
    };
    let mut wal = Wal::create(dir.path(), b"metadata", &config).unwrap();
    save_each(&mut wal, 1, 3, 100);
    let batch: Vec<_> = (4..=20).map(|i| entry(i, 1, 300)).collect();
    wal.save(&hs, &batch).unwrap();
    drop(wal);
    let path = segments(dir.path()).pop().unwrap();
    let original = fs::read(&path).unwrap();
    let all = frames(&original);
    let batch_frames = &all[all.len() - batch.len()..];
    let (batch_start, batch_end) = (batch_frames[0].0, batch_frames.last().unwrap().1);
    let first_sector = batch_start.div_ceil(512) * 512;
    for sector in (first_sector..batch_end).step_by(512) {
        for whole_tail in [true, false] {
            let mut bytes = original.clone();
            // A prefix of the write reached the disk (the rest is zeros), or
            // one sector of it did not while later ones did.
            let end = if whole_tail {
                bytes.len()
            } else {
                sector + 512
            };
            bytes[sector..end].fill(0);
            fs::write(&path, &bytes).unwrap();
            let kept = all.iter().filter(|(_, end)| *end <= sector).count()
                - (all.len() - batch.len() - 3);
            let (mut wal, contents) = reopen(dir.path(), AT_START, &config).unwrap();
            let mut want: Vec<_> = (1..=3).map(|i| entry(i, 1, 100)).collect();
            want.extend(batch.iter().take(kept - 3).cloned());
            assert_eq!(
                contents.entries, want,
                "sector {sector} whole tail {whole_tail}"
            );
            let next = want.len() as u64 + 1;
            wal.save(&hs, &[entry(next, 1, 1000)]).unwrap();
            drop(wal);
            let (_, again) = reopen(dir.path(), AT_START, &config).unwrap();
            assert_eq!(
                again.entries.len() as u64,
                next,
                "stale bytes after the repair were discarded"
            );
        }
    }
}

#[test]
fn every_single_bit_flip_in_any_record_is_detected_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 60);
    let segs = segments(dir.path());
    assert!(segs.len() >= 2);
    let mut flips = 0;
    for path in &segs {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let original = fs::read(path).unwrap();
        for (start, end) in frames(&original) {
            for bit in start * 8..end * 8 {
                let byte = original[bit / 8] ^ (1 << (bit % 8));
                file.write_at(&[byte], (bit / 8) as u64).unwrap();
                let result = reopen(dir.path(), AT_START, &small_config());
                file.write_at(&original[bit / 8..bit / 8 + 1], (bit / 8) as u64)
                    .unwrap();
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{}: bit {bit} not detected", path.display()));
                assert_eq!(
                    location(&error),
                    Some((path.clone(), start as u64)),
                    "bit {bit}: {error}"
                );
                flips += 1;
            }
        }
        assert_eq!(
            fs::read(path).unwrap(),
            original,
            "failed opens change nothing"
        );
    }
    assert!(flips > 40_000, "{flips} flips");
    let (_, contents) = reopen(dir.path(), AT_START, &small_config()).unwrap();
    assert_eq!(contents.entries, expected(60));
}

/// A WAL of at least three segments, and its middle one.
struct Middle {
    segs: Vec<PathBuf>,
    path: PathBuf,
    bytes: Vec<u8>,
    frames: Vec<(usize, usize)>,
}

fn middle_segment(dir: &Path) -> Middle {
    build(dir, 130);
    let segs = segments(dir);
    assert!(segs.len() >= 3, "{segs:?}");
    let path = segs[1].clone();
    let bytes = fs::read(&path).unwrap();
    let frames = frames(&bytes);
    assert_eq!(
        frames.last().unwrap().1,
        bytes.len(),
        "a full segment ends at its last record"
    );
    Middle {
        segs,
        path,
        bytes,
        frames,
    }
}

fn assert_untouched(segs: &[PathBuf], before: &[Vec<u8>]) {
    let after: Vec<Vec<u8>> = segs.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(after == before, "a failed open must not repair anything");
}

#[test]
fn a_torn_write_in_a_segment_that_is_not_the_last_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let Middle {
        segs,
        path,
        bytes: original,
        frames,
    } = middle_segment(dir.path());
    let (last_start, last_end) = *frames.last().unwrap();
    // The frame's last piece between sector boundaries, as a torn write
    // that did not reach that sector leaves it.
    let last_piece = last_start.max((last_end - 1) / 512 * 512);
    let restore = || fs::write(&path, &original).unwrap();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damage: [(&str, Damage); 3] = [
        (
            "ends inside its last record",
            Box::new(move |b| b.truncate(last_end - 5)),
        ),
        (
            "a zero sector piece",
            Box::new(move |b| b[last_piece..].fill(0)),
        ),
        ("records zeroed", Box::new(move |b| b[last_start..].fill(0))),
    ];
    let offset = last_start as u64;
    for (what, damage) in damage {
        let mut bytes = original.clone();
        damage(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let before: Vec<Vec<u8>> = segs.iter().map(|p| fs::read(p).unwrap()).collect();
        match reopen(dir.path(), AT_START, &small_config()) {
            Err(Error::Torn { file, offset: o }) => {
                assert_eq!((file, o), (path.clone(), offset), "{what}")
            }
            other => panic!("{what}: expected Torn, got {other:?}"),
        }
        assert_untouched(&segs, &before);
        restore();
    }
    // A whole record missing at the end: the chain into the next segment breaks.
    fs::write(&path, &original[..last_start]).unwrap();
    match reopen(dir.path(), AT_START, &small_config()) {
        Err(Error::CrcMismatch { file, offset: 0 }) => assert_eq!(file, segs[2]),
        other => panic!("missing record: expected a broken chain, got {other:?}"),
    }
    restore();
    reopen(dir.path(), AT_START, &small_config()).unwrap();
}

fn forge_length(bytes: &mut [u8], at: usize, len: u32) {
    bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
    bytes[at + 5] = ((8 - (len + 20) % 8) % 8) as u8;
    let header_crc = crc32c::crc32c(&bytes[at..at + 8]);
    bytes[at + 8..at + 12].copy_from_slice(&header_crc.to_le_bytes());
}

#[test]
fn a_length_beyond_the_limit_or_the_file_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let Middle {
        path,
        bytes: original,
        frames,
        ..
    } = middle_segment(dir.path());
    let (at, _) = frames[frames.len() / 2];
    let mut huge = original.clone();
    forge_length(&mut huge, at, u32::MAX - 7);
    fs::write(&path, &huge).unwrap();
    match reopen(dir.path(), AT_START, &small_config()) {
        Err(Error::RecordTooLarge {
            file,
            offset,
            len,
            max,
        }) => {
            assert_eq!(
                (file, offset, len, max),
                (path.clone(), at as u64, u64::from(u32::MAX - 7), 64 * 1024)
            );
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    let mut beyond = original.clone();
    forge_length(&mut beyond, at, (original.len() - at) as u32);
    fs::write(&path, &beyond).unwrap();
    match reopen(dir.path(), AT_START, &small_config()) {
        Err(Error::Torn { file, offset }) => assert_eq!((file, offset), (path.clone(), at as u64)),
        other => panic!("expected Torn, got {other:?}"),
    }
    fs::write(&path, &original).unwrap();
    let (_, contents) = reopen(dir.path(), AT_START, &small_config()).unwrap();
    assert_eq!(contents.entries, expected(130));
}

#[test]
fn a_missing_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let middle = middle_segment(dir.path());
    fs::remove_file(&middle.path).unwrap();
    assert!(matches!(
        reopen(dir.path(), AT_START, &small_config()),
        Err(Error::SegmentGap { expected: 1, .. })
    ));
}

#[test]
fn conflicting_metadata_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let Middle {
        path,
        mut bytes,
        frames,
        ..
    } = middle_segment(dir.path());
    // The second frame of a segment is its metadata record: rewrite it, with
    // a valid CRC chained from the first.
    let (start, end) = frames[1];
    let len = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) as usize;
    bytes[start + 12] ^= 0xff;
    let prev_crc = u32::from_le_bytes(bytes[frames[0].1 - 8..frames[0].1 - 4].try_into().unwrap());
    let crc = crc32c::crc32c_append(prev_crc, &bytes[start + 12..start + 12 + len]);
    bytes[end - 8..end - 4].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    match reopen(dir.path(), AT_START, &small_config()) {
        // The chain continues from the forged CRC, so the next record fails
        // unless the conflict is caught first — which it must be.
        Err(Error::MetadataConflict { file, offset }) => {
            assert_eq!((file, offset), (path, start as u64))
        }
        other => panic!("expected MetadataConflict, got {other:?}"),
    }
}
