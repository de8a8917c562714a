//! ironcd-wal: the segmented write-ahead log and the snapshot files under
//! `<data-dir>/member/{wal,snap}` — etcd's `wal` and `snap` packages.
//!
//! Every raft entry and hard state goes through [`Wal::save`], which returns
//! only after one `fdatasync` covering the whole batch; nobody is told an
//! entry is durable before that. [`Snapshotter`] keeps the snapshot files.
//!
//! Must not depend on raft-rs or on any other ironcd crate: it stores plain
//! [`HardState`], [`Entry`] (opaque `data`), [`SnapshotMarker`] and opaque
//! metadata, so it can be used from a tool as well as from raft-node.
//!
//! # Life cycle
//!
//! * [`Wal::create`] makes the first segment; the WAL is in append mode.
//! * [`Wal::open`] at a snapshot marker gives a [`WalReader`] (read mode);
//!   [`WalReader::read_all`] replays from the segment holding the marker,
//!   returns the metadata, the last hard state and the entries after the
//!   marker, repairs a torn tail and hands back the [`Wal`] in append mode.
//! * [`Wal::save`], [`Wal::save_snapshot`], [`Wal::sync`]: every `Ok` is
//!   durable. A failed write or fsync poisons the WAL: every later call
//!   returns [`Error::Poisoned`] (after a failed fsync the kernel may have
//!   dropped the pages, so retrying could acknowledge lost data).
//! * [`Wal::release_to`] deletes segments wholly before an index.
//! * One process at a time: an exclusive `flock` on `wal.lock`.
//!
//! ```
//! use ironcd_wal::{Entry, HardState, SnapshotMarker, Wal, WalConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let wal_dir = dir.path().join("member/wal");
//! let config = WalConfig::default();
//!
//! let mut wal = Wal::create(&wal_dir, b"cluster 7", &config)?;
//! let state = HardState { term: 2, vote: 1, commit: 1 };
//! let entries: Vec<Entry> =
//!     (1..=3).map(|index| Entry { index, term: 2, data: format!("put k{index}").into_bytes() }).collect();
//! wal.save(&state, &entries)?; // one fdatasync for the three entries and the state
//! drop(wal);
//!
//! let (mut wal, contents) = Wal::open(&wal_dir, SnapshotMarker::default(), &config)?.read_all()?;
//! assert_eq!(contents.metadata, b"cluster 7");
//! assert_eq!(contents.hard_state, state);
//! assert_eq!(contents.entries, entries);
//! wal.save(&state, &[Entry { index: 4, term: 2, data: b"put k4".to_vec() }])?; // append mode
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # On disk
//!
//! ```text
//! <data-dir>/member/wal/
//!     wal.lock                                 flock'ed while the WAL is open
//!     0000000000000000-0000000000000000.wal    segment: sequence, first index
//!     0000000000000001-00000000000004d2.wal
//!     0000000000000002-0000000000000a31.wal.tmp  a cut in progress (removed on open)
//! ```
//!
//! A segment is preallocated to `segment_size_bytes` (64 MiB) and filled
//! with 8-byte-aligned frames; zeros follow the last one. A save that leaves
//! the segment at or past its size cuts the next one: the full segment is
//! truncated to its last frame and synced, the new one is written under a
//! `.tmp` name, preallocated, synced, renamed into place, and the directory
//! is synced.
//!
//! ```text
//! segment
//! +-----+----------+----------------------+---------------------------+--------+
//! | crc | metadata | marker {0,0} (first) | entries, hard states,     | zeros  |
//! |     |          | or hard state (later)| snapshot markers, ...     |        |
//! +-----+----------+----------------------+---------------------------+--------+
//! ```
//!
//! Every record is one frame (integers little-endian):
//!
//! ```text
//! offset 0        4      5      6      8        12            12+len    +pad     +4       +8
//!        +--------+------+------+------+--------+---- ... ----+---------+--------+--------+
//!        |  len   | type | pad  | 0  0 |  hcrc  |   payload   |  zeros  |  crc   | A5 A5  |
//!        |  u32   |  u8  |  u8  |      |  u32   |  len bytes  |  pad B  |  u32   | A5 A5  |
//!        +--------+------+------+------+--------+---- ... ----+---------+--------+--------+
//!        pad  = (8 - (len + 20) % 8) % 8: a frame is 20 + len + pad bytes, 8-aligned
//!        hcrc = CRC-32C of bytes 0..8: a length is trusted only once it holds
//!        crc  = CRC-32C of the payload, continued from the previous frame's crc
//!               (one chain through the whole log, across segments)
//!        A5.. = end marker: a frame ending in anything else was not written to
//!               its end (or is damaged)
//! ```
//!
//! | type | record          | payload                                                    |
//! |------|-----------------|------------------------------------------------------------|
//! | 0x00 | (none)          | an all-zero header is where the data ends                  |
//! | 0x03 | metadata        | opaque bytes from `create`, repeated in every segment      |
//! | 0x05 | entry           | index u64 · term u64 · data                                |
//! | 0x06 | hard state      | term u64 · vote u64 · commit u64                           |
//! | 0x09 | crc             | the previous frame's crc u32, checked against the chain;   |
//! |      |                 | this frame's own crc starts from 0 (seeding it with its    |
//! |      |                 | own payload would cancel a flipped bit in it)              |
//! | 0x0A | snapshot marker | index u64 · term u64                                       |
//! | 0x0C | snapshot file   | index u64 · term u64 · data (only in `.snap` files)        |
//!
//! Type values have two bits set and the end marker's bytes four, so no
//! single flipped bit makes a written frame look unwritten.
//!
//! # After a crash
//!
//! The last segment may end in a torn write (one whose fsync never
//! returned). A frame there that fails its checks is torn, and it and
//! everything after it are cut off, when:
//!
//! 1. the file ends inside it; or
//! 2. it stops short — its last byte is zero (with a bad header: every byte
//!    after the header is) — and every byte after it is zero: a write that
//!    stopped part-way, at any byte, over preallocated zeros; or
//! 3. one of its pieces between 512-byte sector boundaries is all zeros: a
//!    sector that never reached the disk while a later one did.
//!
//! Every other failure — a CRC mismatch, a malformed header, a torn frame
//! in an earlier segment, a broken chain between segments, a missing
//! segment — is an error naming the file and offset; nothing is skipped and
//! nothing is changed on disk. No single flipped bit passes for a tear; only
//! damage to a payload holding 512 sector-aligned zero bytes in the last
//! segment could (rule 3). A length above `max_record_bytes` is refused
//! before anything is allocated; one beyond the end of the file is a torn
//! frame, an error outside the last segment.
//!
//! # Snapshot files
//!
//! `<data-dir>/member/snap/%016x-%016x.snap` (term, index): one 0x0C frame
//! with the marker and opaque data, written to a `.tmp` file, fsynced and
//! renamed. [`Snapshotter::load_newest_valid`] skips (logs, and renames to
//! `.broken`) files that fail their checks; [`Snapshotter::purge`] keeps the
//! newest `max_snapshots`.
//!
//! # IO
//!
//! All file access goes through [`WalIo`] / [`WalFile`]: [`StdIo`] is the
//! real filesystem, [`fault::FaultyIo`] injects failed fsyncs, short and torn
//! writes and ENOSPC for tests. [`MemIo`] is an in-memory filesystem where
//! only fsynced data and fsynced directory entries survive
//! [`MemIo::crash`], for power-loss tests without processes; [`testkit`] is
//! the conformance suite every `WalIo` implementation passes.

mod config;
mod error;
pub mod fault;
mod io;
mod mem_io;
pub mod metrics;
mod read;
mod reader;
mod record;
mod segment;
mod snap;
pub mod testkit;
mod types;
mod wal;

pub use config::{
    WalConfig, DEFAULT_MAX_ENTRY_DATA_BYTES, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_SNAPSHOTS,
    DEFAULT_MAX_SNAPSHOT_BYTES, DEFAULT_SEGMENT_SIZE_BYTES, MAX_MAX_RECORD_BYTES,
    MAX_MAX_SNAPSHOTS, MAX_MAX_SNAPSHOT_BYTES, MAX_SEGMENT_SIZE_BYTES, MIN_MAX_RECORD_BYTES,
    MIN_SEGMENT_SIZE_BYTES, RECORD_OVERHEAD_BYTES,
};
pub use error::{Error, Result};
pub use io::{OpenMode, StdIo, WalFile, WalIo};
pub use mem_io::{MemIo, MEM_MAX_FILE_BYTES};
pub use read::WalReader;
pub use snap::{Snapshot, Snapshotter};
pub use types::{Entry, HardState, SnapshotMarker, WalContents};
pub use wal::Wal;
