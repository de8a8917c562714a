//! Opening a WAL and reading it back: [`Wal::open`] gives a [`WalReader`]
//! (read mode); [`WalReader::read_all`] replays it, repairs a torn tail and
//! turns it into a [`Wal`] ready to append.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::io::{OpenMode, StdIo, WalFile, WalIo};
use crate::reader::{corrupt, FrameReader, Record, Step};
use crate::record::{self, RecordType};
use crate::segment::{self, SegmentName};
use crate::types::{Entry, HardState, SnapshotMarker, WalContents};
use crate::wal::{lock_dir, remove_temp_files, Wal};

/// A WAL opened at a snapshot marker and not yet read: the only thing to do
/// with it is [`read_all`](WalReader::read_all). It holds the WAL's lock.
#[derive(Debug)]
pub struct WalReader {
    io: Arc<dyn WalIo>,
    dir: PathBuf,
    config: WalConfig,
    lock: Box<dyn WalFile>,
    at: SnapshotMarker,
    names: Vec<String>,
    segments: Vec<SegmentName>,
    start: usize,
}

impl Wal {
    /// Opens the WAL in `dir` on the real filesystem, to be read from the
    /// snapshot marker `at` (the default marker reads from the beginning).
    pub fn open(
        dir: impl AsRef<Path>,
        at: SnapshotMarker,
        config: &WalConfig,
    ) -> Result<WalReader> {
        Self::open_with_io(Arc::new(StdIo), dir, at, config)
    }

    /// [`Wal::open`] through the given IO.
    pub fn open_with_io(
        io: Arc<dyn WalIo>,
        dir: impl AsRef<Path>,
        at: SnapshotMarker,
        config: &WalConfig,
    ) -> Result<WalReader> {
        let dir = dir.as_ref().to_path_buf();
        config.validate()?;
        match io.list(&dir) {
            Ok(names) if names.iter().any(|n| SegmentName::parse(n).is_some()) => {}
            Ok(_) => return Err(Error::NoSegments { dir }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSegments { dir })
            }
            Err(e) => return Err(Error::io("list", &dir, e)),
        }
        // Listed again under the lock: only then is the list stable.
        let lock = lock_dir(io.as_ref(), &dir)?;
        let names = io.list(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let segments = segment::segments_of(&dir, &names)?;
        let start = segment::start_for(&segments, at.index).ok_or(Error::SnapshotNotFound {
            index: at.index,
            term: at.term,
        })?;
        Ok(WalReader {
            io,
            dir,
            config: config.clone(),
            lock,
            at,
            names,
            segments,
            start,
        })
    }
}

impl WalReader {
    /// Reads every record from the segment holding the snapshot marker on,
    /// and returns the metadata, the last hard state and the entries after
    /// the marker, with later overwrites applied (an entry at index `i`
    /// replaces every entry at `i` or above read before it).
    ///
    /// A torn tail of the last segment is cut off; damage anywhere else is an
    /// error naming the file and offset. The WAL is then ready to append.
    pub fn read_all(self) -> Result<(Wal, WalContents)> {
        let mut replay = Replay::new(self.at);
        let reading = &self.segments[self.start..];
        let mut valid_end = 0;
        for (i, name) in reading.iter().enumerate() {
            let path = name.path_in(&self.dir);
            let file = self
                .io
                .open(&path, OpenMode::Read)
                .map_err(|e| Error::io("open", &path, e))?;
            let is_last = i + 1 == reading.len();
            valid_end = replay.segment(file.as_ref(), &path, &self.config, is_last)?;
        }
        let contents = replay.finish(&self.dir)?;
        let wal = self.into_wal(&replay, valid_end, &contents)?;
        Ok((wal, contents))
    }

    /// Switches to append mode: drops leftovers of interrupted cuts, cuts the
    /// torn tail (and whatever follows it) off the last segment and
    /// preallocates it again.
    fn into_wal(self, replay: &Replay, valid_end: u64, contents: &WalContents) -> Result<Wal> {
        remove_temp_files(self.io.as_ref(), &self.dir, &self.names)?;
        let tail_name = *self.segments.last().expect("open checked for segments");
        let path = tail_name.path_in(&self.dir);
        let mut tail = self
            .io
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = tail.size_bytes().map_err(|e| Error::io("stat", &path, e))?;
        if len > valid_end || len < self.config.segment_size_bytes {
            if len > valid_end {
                tail.set_len(valid_end)
                    .map_err(|e| Error::io("truncate", &path, e))?;
            }
            tail.preallocate(self.config.segment_size_bytes)
                .map_err(|e| Error::io("preallocate", &path, e))?;
            tail.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        }
        Ok(Wal {
            io: self.io,
            dir: self.dir,
            config: self.config,
            _lock: self.lock,
            metadata: contents.metadata.clone(),
            segments: self.segments,
            tail,
            offset: valid_end,
            crc: replay.crc,
            last_index: replay.last_index,
            hard_state: contents.hard_state,
            buf: Vec::new(),
            poisoned: None,
        })
    }
}

/// What replaying records has built up so far.
struct Replay {
    at: SnapshotMarker,
    metadata: Option<Vec<u8>>,
    hard_state: HardState,
    entries: Vec<Entry>,
    marker_found: bool,
    last_index: u64,
    /// The running chained CRC; `None` before the first segment's CRC record.
    chain: Option<u32>,
    crc: u32,
}

impl Replay {
    fn new(at: SnapshotMarker) -> Self {
        Replay {
            at,
            metadata: None,
            hard_state: HardState::default(),
            entries: Vec::new(),
            marker_found: false,
            last_index: at.index,
            chain: None,
            crc: 0,
        }
    }

    /// Replays one segment; returns the offset after its last good record.
    fn segment(
        &mut self,
        file: &dyn WalFile,
        path: &Path,
        config: &WalConfig,
        is_last: bool,
    ) -> Result<u64> {
        let mut reader = FrameReader::new(file, path, config.max_record_bytes)?;
        let file_len = reader.file_len();
        loop {
            match reader.next(self.crc)? {
                Step::Record(record) => self.apply(&record, path)?,
                Step::End { offset: 0, .. } => {
                    return Err(corrupt(path, 0, "segment holds no record"));
                }
                Step::End { offset, zeros } if is_last || !zeros => return Ok(offset),
                Step::End { offset, .. } => {
                    return Err(Error::Torn {
                        file: path.into(),
                        offset,
                    })
                }
                Step::Torn { offset } if is_last && offset > 0 => {
                    tracing::warn!(file = %path.display(), offset, file_len, "repairing torn wal tail");
                    return Ok(offset);
                }
                Step::Torn { offset } => {
                    return Err(Error::Torn {
                        file: path.into(),
                        offset,
                    })
                }
            }
        }
    }

    fn apply(&mut self, record: &Record<'_>, path: &Path) -> Result<()> {
        let offset = record.offset;
        if (offset == 0) != (record.kind == RecordType::Crc) {
            return Err(corrupt(
                path,
                offset,
                "crc records are exactly the first record of each segment",
            ));
        }
        let bad_size = || corrupt(path, offset, "payload size does not fit the record type");
        match record.kind {
            RecordType::Crc => {
                let carried = record::decode_crc(record.payload).ok_or_else(bad_size)?;
                if self.chain.is_some_and(|chain| chain != carried) {
                    return Err(Error::CrcMismatch {
                        file: path.into(),
                        offset,
                    });
                }
            }
            RecordType::Metadata => self.metadata(record.payload, path, offset)?,
            RecordType::Entry => {
                let entry = record::decode_entry(record.payload).ok_or_else(bad_size)?;
                self.entry(entry)
                    .map_err(|reason| corrupt(path, offset, &reason))?;
            }
            RecordType::HardState => {
                self.hard_state = record::decode_hard_state(record.payload).ok_or_else(bad_size)?;
            }
            RecordType::SnapshotMarker => {
                self.marker(record::decode_marker(record.payload, true).ok_or_else(bad_size)?)?;
            }
            RecordType::Snapshot => {
                return Err(corrupt(path, offset, "snapshot file record in a segment"))
            }
        }
        self.crc = record.crc;
        self.chain = Some(record.crc);
        Ok(())
    }

    fn metadata(&mut self, payload: &[u8], path: &Path, offset: u64) -> Result<()> {
        match &self.metadata {
            Some(first) if first != payload => Err(Error::MetadataConflict {
                file: path.into(),
                offset,
            }),
            Some(_) => Ok(()),
            None => {
                self.metadata = Some(payload.to_vec());
                Ok(())
            }
        }
    }

    /// Keeps entries after the marker; an entry at index `i` drops every
    /// kept entry at `i` or above first.
    fn entry(&mut self, entry: Entry) -> std::result::Result<(), String> {
        self.last_index = entry.index;
        if entry.index <= self.at.index {
            self.entries.clear();
            return Ok(());
        }
        let position = entry.index - self.at.index - 1;
        if position > self.entries.len() as u64 {
            let expected = self.at.index + self.entries.len() as u64 + 1;
            return Err(format!(
                "entry index {} skips ahead of {expected}",
                entry.index
            ));
        }
        self.entries.truncate(position as usize);
        self.entries.push(entry);
        Ok(())
    }

    fn marker(&mut self, marker: SnapshotMarker) -> Result<()> {
        if marker.index == self.at.index {
            if marker.term != self.at.term {
                return Err(Error::SnapshotMismatch {
                    index: marker.index,
                    expected: self.at.term,
                    found: marker.term,
                });
            }
            self.marker_found = true;
        }
        self.last_index = self.last_index.max(marker.index);
        Ok(())
    }

    fn finish(&mut self, dir: &Path) -> Result<WalContents> {
        if !self.marker_found {
            return Err(Error::SnapshotNotFound {
                index: self.at.index,
                term: self.at.term,
            });
        }
        let metadata = self
            .metadata
            .take()
            .ok_or_else(|| corrupt(dir, 0, "no metadata record"))?;
        Ok(WalContents {
            metadata,
            hard_state: self.hard_state,
            entries: std::mem::take(&mut self.entries),
        })
    }
}
