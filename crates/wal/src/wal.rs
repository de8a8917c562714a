//! The WAL in append mode: create, save, snapshot markers, segment cuts,
//! release. Opening and reading back live in `read.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::io::{write_all_at, OpenMode, StdIo, WalFile, WalIo};
use crate::record::{self, RecordType};
use crate::segment::{self, SegmentName, TEMP_SUFFIX};
use crate::types::{Entry, HardState, SnapshotMarker};

/// File in the WAL directory whose `flock` makes the WAL single-user.
pub(crate) const LOCK_FILE_NAME: &str = "wal.lock";
/// A save buffer that grew past this for a large batch is released after
/// it, so one burst does not pin memory for the life of the WAL.
const RETAINED_BUFFER_BYTES: usize = 4 << 20;

/// A write-ahead log open for appending. Made by [`Wal::create`], or by
/// [`WalReader::read_all`](crate::WalReader::read_all) after
/// [`Wal::open`](crate::Wal::open).
///
/// Every `Ok` from [`save`](Wal::save), [`save_snapshot`](Wal::save_snapshot)
/// and [`sync`](Wal::sync) means the data is on disk (fdatasync returned).
/// After any write or fsync fails the WAL is poisoned: the kernel may have
/// dropped the dirty pages, so nothing later can be acknowledged and every
/// call returns [`Error::Poisoned`] until the WAL is reopened.
#[derive(Debug)]
pub struct Wal {
    pub(crate) io: Arc<dyn WalIo>,
    pub(crate) dir: PathBuf,
    pub(crate) config: WalConfig,
    /// Held open for its `flock`; closing it releases the WAL.
    pub(crate) _lock: Box<dyn WalFile>,
    pub(crate) metadata: Vec<u8>,
    /// Every segment on disk, oldest first; the last one is `tail`.
    pub(crate) segments: Vec<SegmentName>,
    pub(crate) tail: Box<dyn WalFile>,
    /// Where the next record of `tail` goes.
    pub(crate) offset: u64,
    /// CRC of the last record: the next record chains from it.
    pub(crate) crc: u32,
    pub(crate) last_index: u64,
    pub(crate) hard_state: HardState,
    pub(crate) buf: Vec<u8>,
    pub(crate) poisoned: Option<String>,
}

impl Wal {
    /// Creates a WAL in `dir` (made if missing) on the real filesystem.
    /// `metadata` is opaque and returned by every `read_all`.
    pub fn create(dir: impl AsRef<Path>, metadata: &[u8], config: &WalConfig) -> Result<Wal> {
        Self::create_with_io(Arc::new(StdIo), dir, metadata, config)
    }

    /// [`Wal::create`] through the given IO.
    pub fn create_with_io(
        io: Arc<dyn WalIo>,
        dir: impl AsRef<Path>,
        metadata: &[u8],
        config: &WalConfig,
    ) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        config.validate()?;
        check_size("metadata", metadata.len() as u64, config.max_record_bytes)?;
        create_dir_durably(io.as_ref(), &dir)?;
        let lock = lock_dir(io.as_ref(), &dir)?;
        let names = io.list(&dir).map_err(|e| Error::io("list", &dir, e))?;
        if names.iter().any(|n| SegmentName::parse(n).is_some()) {
            return Err(Error::AlreadyExists { dir });
        }
        remove_temp_files(io.as_ref(), &dir, &names)?;
        let name = SegmentName {
            seq: 0,
            first_index: 0,
        };
        let mut head = Vec::new();
        let crc = record::put_crc(&mut head, 0);
        let crc = record::put_bytes(&mut head, crc, RecordType::Metadata, metadata);
        let crc = record::put_marker(
            &mut head,
            crc,
            RecordType::SnapshotMarker,
            &SnapshotMarker::default(),
        );
        let tail = install_segment(io.as_ref(), &dir, name, &head, config.segment_size_bytes)?;
        Ok(Wal {
            io,
            dir,
            config: config.clone(),
            _lock: lock,
            metadata: metadata.to_vec(),
            segments: vec![name],
            tail,
            offset: head.len() as u64,
            crc,
            last_index: 0,
            hard_state: HardState::default(),
            buf: Vec::new(),
            poisoned: None,
        })
    }

    /// Whether `dir` holds a WAL (at least one segment) on the real filesystem.
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        StdIo
            .list(dir.as_ref())
            .is_ok_and(|names| names.iter().any(|n| SegmentName::parse(n).is_some()))
    }

    /// Appends `entries` and, when it differs from the last one saved,
    /// `hard_state`, then fdatasyncs once for the whole batch. Saving an
    /// unchanged hard state and no entries does no IO at all.
    ///
    /// `entries` must be consecutive and may start at any index up to
    /// `last_index() + 1`; starting lower rewrites the log from there (raft
    /// truncating an uncommitted tail after a leader change). Input errors
    /// write nothing and leave the WAL usable.
    ///
    /// When the batch fills the segment, the next one is cut before
    /// returning; if that fails, the batch is on disk but the error is
    /// returned and the WAL is poisoned.
    pub fn save(&mut self, hard_state: &HardState, entries: &[Entry]) -> Result<()> {
        self.check_poisoned()?;
        let state_changed = *hard_state != self.hard_state;
        if entries.is_empty() && !state_changed {
            return Ok(());
        }
        self.check_entries(entries)?;
        self.buf.clear();
        let mut crc = self.crc;
        for entry in entries {
            crc = record::put_entry(&mut self.buf, crc, entry);
        }
        if state_changed {
            crc = record::put_hard_state(&mut self.buf, crc, hard_state);
        }
        self.append_and_sync(crc)?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        self.hard_state = *hard_state;
        self.cut_if_full()
    }

    /// Like [`Wal::save`] with no entries, but without the fsync: for a
    /// hard state whose term and vote are unchanged (only the commit index
    /// moved), which raft does not need durable — etcd's `MustSync` rule.
    /// The record becomes durable with the next synced write or segment cut
    /// (both sync the whole tail); a crash before then loses at most this
    /// record, and a torn tail is cut off on open.
    pub fn save_state_unsynced(&mut self, hard_state: &HardState) -> Result<()> {
        self.check_poisoned()?;
        if *hard_state == self.hard_state {
            return Ok(());
        }
        self.buf.clear();
        let crc = record::put_hard_state(&mut self.buf, self.crc, hard_state);
        self.append(crc, false)?;
        self.hard_state = *hard_state;
        self.cut_if_full()
    }

    /// Records that a snapshot was taken at `marker`, durably. Reopening at
    /// `marker` needs this record.
    pub fn save_snapshot(&mut self, marker: SnapshotMarker) -> Result<()> {
        self.check_poisoned()?;
        self.buf.clear();
        let crc = record::put_marker(&mut self.buf, self.crc, RecordType::SnapshotMarker, &marker);
        self.append_and_sync(crc)?;
        // A follower that installs a leader's snapshot jumps past its log.
        self.last_index = self.last_index.max(marker.index);
        self.cut_if_full()
    }

    /// fdatasyncs the current segment.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let started = std::time::Instant::now();
        let result = self
            .tail
            .sync_data()
            .map_err(|e| Error::io("fdatasync", self.tail_path(), e));
        crate::metrics::FSYNC_SECONDS.observe_duration(started.elapsed());
        self.poison_on_error(result)
    }

    /// Deletes the segments wholly before `index`: every one followed by a
    /// segment whose first index is at most `index`. The segment that
    /// [`Wal::open`](crate::Wal::open) at a snapshot of `index` starts
    /// reading from, and all after it, stay.
    pub fn release_to(&mut self, index: u64) -> Result<()> {
        self.check_poisoned()?;
        let keep_from = segment::start_for(&self.segments, index).unwrap_or(0);
        // Oldest first, so that a crash part-way leaves a gap-free sequence.
        for _ in 0..keep_from {
            let path = self.segments[0].path_in(&self.dir);
            self.io
                .remove(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            self.segments.remove(0);
        }
        if keep_from > 0 {
            tracing::debug!(dir = %self.dir.display(), index, removed = keep_from, "released wal segments");
            self.io
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync dir", &self.dir, e))?;
        }
        Ok(())
    }

    /// Index of the last entry saved (or of a later snapshot marker).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The last hard state saved.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segment files the WAL holds.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether an earlier failure poisoned the WAL.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if self.poisoned.is_none() {
                tracing::error!(dir = %self.dir.display(), error = %e, "wal poisoned");
                self.poisoned = Some(e.to_string());
            }
        }
        result
    }

    /// Input errors leave the WAL usable: nothing was written.
    fn check_entries(&self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index == 0 || first.index > self.last_index + 1 {
            return Err(Error::EntryGap {
                expected: self.last_index + 1,
                found: first.index,
            });
        }
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(Error::EntryGap {
                    expected: pair[0].index + 1,
                    found: pair[1].index,
                });
            }
        }
        entries.iter().try_for_each(|e| {
            check_size(
                "entry",
                record::entry_payload_bytes(e),
                self.config.max_record_bytes,
            )
        })
    }

    /// Writes `self.buf` at the end of the tail and fdatasyncs; on success
    /// the chain continues from `crc`.
    fn append_and_sync(&mut self, crc: u32) -> Result<()> {
        self.append(crc, true)
    }

    /// Writes `buf` at the tail, then fdatasyncs it when `sync`.
    fn append(&mut self, crc: u32, sync: bool) -> Result<()> {
        // The path is for an error's message only: made when one happens.
        let result = self
            .write_buf()
            .map_err(|e| Error::io("write", self.tail_path(), e))
            .and_then(|()| {
                crate::metrics::WRITE_BYTES.add(self.buf.len() as u64);
                if !sync {
                    return Ok(());
                }
                let started = std::time::Instant::now();
                let synced = self
                    .tail
                    .sync_data()
                    .map_err(|e| Error::io("fdatasync", self.tail_path(), e));
                crate::metrics::FSYNC_SECONDS.observe_duration(started.elapsed());
                synced
            });
        self.poison_on_error(result)?;
        self.offset += self.buf.len() as u64;
        self.crc = crc;
        if self.buf.capacity() > RETAINED_BUFFER_BYTES {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Writes `self.buf` at the end of the tail.
    fn write_buf(&mut self) -> std::io::Result<()> {
        // The `failpoints` feature's full disk (the robustness suite's): the
        // write fails as `pwrite(2)` fails on a full filesystem, with
        // nothing written.
        fail::fail_point!("walWriteNoSpace", |_| Err(
            std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())
        ));
        write_all_at(self.tail.as_mut(), &self.buf, self.offset)
    }

    fn cut_if_full(&mut self) -> Result<()> {
        if self.offset < self.config.segment_size_bytes {
            return Ok(());
        }
        let result = self.cut();
        self.poison_on_error(result)
    }

    /// Closes the full tail and starts the next segment. The new segment is
    /// written and synced under a temporary name and renamed into place, so
    /// a crash leaves either no new segment or a complete one.
    fn cut(&mut self) -> Result<()> {
        let path = self.tail_path();
        // A segment that is not the last must end exactly at its last record:
        // then zeros or an early EOF in it can only mean damage.
        self.tail
            .set_len(self.offset)
            .map_err(|e| Error::io("truncate", &path, e))?;
        self.tail
            .sync_all()
            .map_err(|e| Error::io("fsync", &path, e))?;
        let name = SegmentName {
            seq: self.tail_name().seq + 1,
            first_index: self.last_index + 1,
        };
        let mut head = Vec::new();
        let mut crc = record::put_crc(&mut head, self.crc);
        crc = record::put_bytes(&mut head, crc, RecordType::Metadata, &self.metadata);
        if self.hard_state != HardState::default() {
            crc = record::put_hard_state(&mut head, crc, &self.hard_state);
        }
        self.tail = install_segment(
            self.io.as_ref(),
            &self.dir,
            name,
            &head,
            self.config.segment_size_bytes,
        )?;
        self.segments.push(name);
        self.offset = head.len() as u64;
        self.crc = crc;
        tracing::debug!(segment = %name, "cut wal segment");
        Ok(())
    }

    fn tail_name(&self) -> SegmentName {
        *self.segments.last().expect("a wal always has a segment")
    }

    fn tail_path(&self) -> PathBuf {
        self.tail_name().path_in(&self.dir)
    }
}

pub(crate) fn check_size(what: &'static str, len: u64, max: u64) -> Result<()> {
    if len > max {
        return Err(Error::TooLarge { what, len, max });
    }
    Ok(())
}

/// Takes the WAL's exclusive lock; the returned file holds it.
pub(crate) fn lock_dir(io: &dyn WalIo, dir: &Path) -> Result<Box<dyn WalFile>> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = io
        .open(&path, OpenMode::CreateKeep)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock_exclusive() {
        Ok(true) => Ok(file),
        Ok(false) => Err(Error::Locked { path }),
        Err(e) => Err(Error::io("lock", &path, e)),
    }
}

/// Removes segments a crash left half-made; they were never renamed into
/// place, so nothing in them was acknowledged.
pub(crate) fn remove_temp_files(io: &dyn WalIo, dir: &Path, names: &[String]) -> Result<()> {
    let temps: Vec<&String> = names.iter().filter(|n| n.ends_with(TEMP_SUFFIX)).collect();
    for name in &temps {
        let path = dir.join(name);
        tracing::info!(file = %path.display(), "removing unfinished temporary file");
        io.remove(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
    }
    if !temps.is_empty() {
        io.sync_dir(dir)
            .map_err(|e| Error::io("fsync dir", dir, e))?;
    }
    Ok(())
}

/// Writes a new segment's `head` under a temporary name, preallocates and
/// syncs it, then renames it into place and syncs the directory.
fn install_segment(
    io: &dyn WalIo,
    dir: &Path,
    name: SegmentName,
    head: &[u8],
    segment_size_bytes: u64,
) -> Result<Box<dyn WalFile>> {
    let temp = name.temp_path_in(dir);
    let mut file = io
        .open(&temp, OpenMode::CreateTruncate)
        .map_err(|e| Error::io("create", &temp, e))?;
    file.preallocate(segment_size_bytes)
        .map_err(|e| Error::io("preallocate", &temp, e))?;
    write_all_at(file.as_mut(), head, 0).map_err(|e| Error::io("write", &temp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &temp, e))?;
    let path = name.path_in(dir);
    io.rename(&temp, &path)
        .map_err(|e| Error::io("rename", &temp, e))?;
    io.sync_dir(dir)
        .map_err(|e| Error::io("fsync dir", dir, e))?;
    Ok(file)
}

/// Creates `dir` and its missing ancestors so that they survive a crash:
/// a directory's entry lives in its parent, so the parent of every
/// directory made is fsynced — and `dir`'s parent always, in case an
/// earlier attempt made `dir` and crashed before syncing.
pub(crate) fn create_dir_durably(io: &dyn WalIo, dir: &Path) -> Result<()> {
    let mut made = missing_ancestors(io, dir);
    io.create_dir_all(dir)
        .map_err(|e| Error::io("create dir", dir, e))?;
    if made.is_empty() {
        made.push(dir);
    }
    // Outermost first: each entry is durable once its parent's is.
    for made in made.iter().rev() {
        sync_parent(io, made)?;
    }
    Ok(())
}

/// `dir` and those of its ancestors that do not exist yet, innermost first.
fn missing_ancestors<'a>(io: &dyn WalIo, dir: &'a Path) -> Vec<&'a Path> {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| {
            io.list(a)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        })
        .collect()
}

/// Makes a newly created directory's own entry durable.
fn sync_parent(io: &dyn WalIo, dir: &Path) -> Result<()> {
    let parent = match dir.parent() {
        None => return Ok(()),
        // A relative path of one name lives in the working directory.
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
    };
    io.sync_dir(parent)
        .map_err(|e| Error::io("fsync dir", parent, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{FaultOp, FaultyIo};

    fn config() -> WalConfig {
        WalConfig {
            segment_size_bytes: crate::config::MIN_SEGMENT_SIZE_BYTES,
            ..WalConfig::default()
        }
    }

    fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                index,
                term,
                data: vec![index as u8 | 1; 100],
            })
            .collect()
    }

    fn reopen(dir: &Path, at: SnapshotMarker) -> Result<(Wal, crate::WalContents)> {
        Wal::open(dir, at, &config())?.read_all()
    }

    #[test]
    fn one_fdatasync_per_batch_and_none_when_nothing_changed() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new(Arc::new(StdIo));
        let mut wal = Wal::create_with_io(
            Arc::new(io.clone()),
            dir.path(),
            b"m",
            &WalConfig::default(),
        )
        .unwrap();
        let (writes, syncs) = (io.calls(FaultOp::Write), io.calls(FaultOp::SyncData));
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 0,
        };
        wal.save(&hs, &entries(1, 16, 1)).unwrap();
        assert_eq!(
            io.calls(FaultOp::Write) - writes,
            1,
            "one write for the batch"
        );
        assert_eq!(
            io.calls(FaultOp::SyncData) - syncs,
            1,
            "one fdatasync for the batch"
        );
        wal.save(&hs, &[]).unwrap();
        assert_eq!(
            io.calls(FaultOp::Write) - writes,
            1,
            "nothing changed: no write"
        );
        assert_eq!(
            io.calls(FaultOp::SyncData) - syncs,
            1,
            "nothing changed: no fdatasync"
        );
        wal.save(&HardState { commit: 16, ..hs }, &[]).unwrap();
        assert_eq!(
            io.calls(FaultOp::SyncData) - syncs,
            2,
            "save makes a new commit index durable"
        );
        wal.save_state_unsynced(&HardState { commit: 17, ..hs })
            .unwrap();
        assert_eq!(io.calls(FaultOp::Write) - writes, 3, "written");
        assert_eq!(io.calls(FaultOp::SyncData) - syncs, 2, "but not synced");
    }

    #[test]
    fn a_second_user_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(dir.path(), b"m", &config()).unwrap();
        let second = Wal::open(dir.path(), SnapshotMarker::default(), &config());
        assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
        assert!(matches!(
            Wal::create(dir.path(), b"m", &config()),
            Err(Error::Locked { .. })
        ));
        drop(wal);
        let (_wal, contents) = reopen(dir.path(), SnapshotMarker::default()).unwrap();
        assert_eq!(contents.metadata, b"m");
        assert!(matches!(
            Wal::create(dir.path(), b"m", &config()),
            Err(Error::Locked { .. })
        ));
    }

    #[test]
    fn create_refuses_an_existing_wal_and_open_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Wal::exists(dir.path()));
        assert!(matches!(
            Wal::open(
                dir.path().join("nope"),
                SnapshotMarker::default(),
                &config()
            ),
            Err(Error::NoSegments { .. })
        ));
        drop(Wal::create(dir.path(), b"m", &config()).unwrap());
        assert!(Wal::exists(dir.path()));
        assert!(matches!(
            Wal::create(dir.path(), b"m", &config()),
            Err(Error::AlreadyExists { .. })
        ));
    }

    #[test]
    fn bad_input_is_refused_and_leaves_the_wal_usable() {
        let dir = tempfile::tempdir().unwrap();
        let small = WalConfig {
            max_record_bytes: 1024,
            ..config()
        };
        let big = vec![0u8; 1025];
        assert!(matches!(
            Wal::create(dir.path(), &big, &small),
            Err(Error::TooLarge {
                what: "metadata",
                ..
            })
        ));
        let mut wal = Wal::create(dir.path(), b"m", &small).unwrap();
        let hs = HardState::default();
        assert!(matches!(
            wal.save(&hs, &entries(2, 3, 1)),
            Err(Error::EntryGap {
                expected: 1,
                found: 2
            })
        ));
        assert!(matches!(
            wal.save(&hs, &entries(0, 1, 1)),
            Err(Error::EntryGap { .. })
        ));
        let mut gap = entries(1, 3, 1);
        gap.remove(1);
        assert!(matches!(
            wal.save(&hs, &gap),
            Err(Error::EntryGap {
                expected: 2,
                found: 3
            })
        ));
        let too_big = Entry {
            index: 1,
            term: 1,
            data: vec![1; 1024 - 15],
        };
        assert!(matches!(
            wal.save(&hs, &[too_big]),
            Err(Error::TooLarge {
                what: "entry",
                len: 1025,
                ..
            })
        ));
        assert!(!wal.is_poisoned());
        let fits = Entry {
            index: 1,
            term: 1,
            data: vec![1; 1024 - 16],
        };
        wal.save(&hs, std::slice::from_ref(&fits)).unwrap();
        drop(wal);
        let (_, contents) = Wal::open(dir.path(), SnapshotMarker::default(), &small)
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(contents.entries, vec![fits]);
    }

    #[test]
    fn a_rewritten_tail_replaces_what_it_overlaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), b"m", &config()).unwrap();
        wal.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 2,
            },
            &entries(1, 5, 1),
        )
        .unwrap();
        let hs = HardState {
            term: 2,
            vote: 2,
            commit: 2,
        };
        wal.save(&hs, &entries(3, 4, 2)).unwrap();
        assert_eq!(wal.last_index(), 4);
        drop(wal);
        let (wal, contents) = reopen(dir.path(), SnapshotMarker::default()).unwrap();
        let mut expected = entries(1, 2, 1);
        expected.extend(entries(3, 4, 2));
        assert_eq!(contents.entries, expected);
        assert_eq!(contents.hard_state, hs);
        assert_eq!(wal.last_index(), 4);
    }

    #[test]
    fn segments_cut_release_and_reopen_at_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), b"meta", &config()).unwrap();
        for index in 1..=200 {
            wal.save(
                &HardState {
                    term: 1,
                    vote: 1,
                    commit: index,
                },
                &entries(index, index, 1),
            )
            .unwrap();
        }
        let cut = wal.segment_count();
        assert!(cut > 5, "{cut} segments");
        let marker = SnapshotMarker {
            index: 150,
            term: 1,
        };
        wal.save_snapshot(marker).unwrap();
        wal.release_to(150).unwrap();
        assert!(wal.segment_count() < cut);
        drop(wal);
        let files = StdIo.list(dir.path()).unwrap();
        assert_eq!(
            files.iter().filter(|n| n.ends_with(".wal")).count(),
            files.len() - 1,
            "{files:?}"
        );
        assert!(matches!(
            reopen(dir.path(), SnapshotMarker::default()),
            Err(Error::SnapshotNotFound { .. })
        ));
        let wrong_term = SnapshotMarker { term: 2, ..marker };
        assert!(matches!(
            reopen(dir.path(), wrong_term),
            Err(Error::SnapshotMismatch { found: 1, .. })
        ));
        let (wal, contents) = reopen(dir.path(), marker).unwrap();
        assert_eq!(contents.entries, entries(151, 200, 1));
        assert_eq!(contents.hard_state.commit, 200);
        assert_eq!(contents.metadata, b"meta");
        assert_eq!(wal.last_index(), 200);
    }

    #[test]
    fn a_snapshot_beyond_the_log_moves_last_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), b"m", &config()).unwrap();
        wal.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 3,
            },
            &entries(1, 3, 1),
        )
        .unwrap();
        let marker = SnapshotMarker { index: 50, term: 4 };
        wal.save_snapshot(marker).unwrap();
        assert_eq!(wal.last_index(), 50);
        wal.save(
            &HardState {
                term: 4,
                vote: 0,
                commit: 50,
            },
            &entries(51, 52, 4),
        )
        .unwrap();
        drop(wal);
        let (wal, contents) = reopen(dir.path(), marker).unwrap();
        assert_eq!(contents.entries, entries(51, 52, 4));
        assert_eq!(wal.last_index(), 52);
    }
}
