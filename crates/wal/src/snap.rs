//! Snapshot files: `<snap-dir>/%016x-%016x.snap` (term, index), as etcd names
//! them, each holding one CRC-checked record of the marker and opaque data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::io::{read_exact_at, write_all_at, OpenMode, StdIo, WalIo};
use crate::reader::corrupt;
use crate::record::{self, HeaderCheck, RecordType, HEADER_BYTES, SNAPSHOT_PREFIX_BYTES};
use crate::segment::{parse_hex_pair, TEMP_SUFFIX};
use crate::types::SnapshotMarker;
use crate::wal::{check_size, create_dir_durably};

const SNAP_SUFFIX: &str = ".snap";
/// A snapshot file that failed to load is renamed with this suffix, so it
/// is named once in the log, kept for inspection, and no longer counted.
const BROKEN_SUFFIX: &str = ".broken";

/// A snapshot as stored: where it was taken and its opaque data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Index and term the snapshot covers.
    pub marker: SnapshotMarker,
    /// Opaque data (raft-node's encoded snapshot metadata).
    pub data: Vec<u8>,
}

/// Saves, loads, lists and purges the snapshot files of one directory.
#[derive(Debug)]
pub struct Snapshotter {
    io: Arc<dyn WalIo>,
    dir: PathBuf,
    config: WalConfig,
}

impl Snapshotter {
    /// A snapshotter over `dir` (made if missing) on the real filesystem.
    pub fn new(dir: impl AsRef<Path>, config: &WalConfig) -> Result<Self> {
        Self::with_io(Arc::new(StdIo), dir, config)
    }

    /// [`Snapshotter::new`] through the given IO.
    pub fn with_io(io: Arc<dyn WalIo>, dir: impl AsRef<Path>, config: &WalConfig) -> Result<Self> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        // A snapshot saved durably into a directory whose own entry is not
        // would vanish with it.
        create_dir_durably(io.as_ref(), &dir)?;
        Ok(Snapshotter {
            io,
            dir,
            config: config.clone(),
        })
    }

    /// Writes a snapshot file durably: temporary file, fsync, rename, fsync
    /// of the directory. A crash leaves the old set of files or the new one.
    pub fn save(&self, marker: SnapshotMarker, data: &[u8]) -> Result<()> {
        check_size(
            "snapshot",
            data.len() as u64,
            self.config.max_snapshot_bytes,
        )?;
        let mut bytes = Vec::with_capacity(record::frame_bytes(
            (SNAPSHOT_PREFIX_BYTES + data.len()) as u64,
        ) as usize);
        let start = record::begin(&mut bytes);
        bytes.extend_from_slice(&marker.index.to_le_bytes());
        bytes.extend_from_slice(&marker.term.to_le_bytes());
        bytes.extend_from_slice(data);
        record::finish(&mut bytes, start, RecordType::Snapshot, 0);
        let path = self.path_of(marker);
        let temp = self.dir.join(format!("{}{TEMP_SUFFIX}", file_name(marker)));
        let mut file = self
            .io
            .open(&temp, OpenMode::CreateTruncate)
            .map_err(|e| Error::io("create", &temp, e))?;
        write_all_at(file.as_mut(), &bytes, 0).map_err(|e| Error::io("write", &temp, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", &temp, e))?;
        drop(file);
        self.io
            .rename(&temp, &path)
            .map_err(|e| Error::io("rename", &temp, e))?;
        self.io
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync dir", &self.dir, e))
    }

    /// Markers of the snapshot files present, newest first (by term, then
    /// index), valid or not.
    pub fn list(&self) -> Result<Vec<SnapshotMarker>> {
        let names = self
            .io
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?;
        let mut markers: Vec<SnapshotMarker> = names.iter().filter_map(|n| parse_name(n)).collect();
        markers.sort_by_key(|m| std::cmp::Reverse((m.term, m.index)));
        Ok(markers)
    }

    /// Loads the snapshot file of `marker`, checking its CRC and that its
    /// contents match its name.
    pub fn load(&self, marker: SnapshotMarker) -> Result<Snapshot> {
        let path = self.path_of(marker);
        let file = self
            .io
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = file.size_bytes().map_err(|e| Error::io("stat", &path, e))?;
        let max_frame =
            record::frame_bytes(SNAPSHOT_PREFIX_BYTES as u64 + self.config.max_snapshot_bytes);
        if len > max_frame {
            let max = self.config.max_snapshot_bytes;
            return Err(Error::RecordTooLarge {
                file: path,
                offset: 0,
                len,
                max,
            });
        }
        let mut bytes = vec![0; len as usize];
        read_exact_at(file.as_ref(), &mut bytes, 0).map_err(|e| Error::io("read", &path, e))?;
        let snapshot = decode_file(&bytes, &path)?;
        if snapshot.marker != marker {
            return Err(corrupt(&path, 0, "contents do not match the file name"));
        }
        Ok(snapshot)
    }

    /// The newest snapshot that loads, or `None` when there is none. Each
    /// newer file that fails to load is named in a warning and renamed to
    /// `*.snap.broken`.
    pub fn load_newest_valid(&self) -> Result<Option<Snapshot>> {
        self.load_newest_where(|_| true)
    }

    /// Like [`load_newest_valid`](Self::load_newest_valid), considering only
    /// snapshots whose marker is in `markers` — the ones the WAL recorded,
    /// so that a snapshot file saved just before a crash, whose WAL marker
    /// never made it, is not used.
    pub fn load_newest_valid_among(&self, markers: &[SnapshotMarker]) -> Result<Option<Snapshot>> {
        self.load_newest_where(|m| markers.contains(m))
    }

    fn load_newest_where(
        &self,
        wanted: impl Fn(&SnapshotMarker) -> bool,
    ) -> Result<Option<Snapshot>> {
        for marker in self.list()?.into_iter().filter(|m| wanted(m)) {
            match self.load(marker) {
                Ok(snapshot) => return Ok(Some(snapshot)),
                Err(error) => self.set_aside(marker, &error),
            }
        }
        Ok(None)
    }

    fn set_aside(&self, marker: SnapshotMarker, error: &Error) {
        let path = self.path_of(marker);
        tracing::warn!(file = %path.display(), %error, "skipping corrupt snapshot file");
        let broken = self
            .dir
            .join(format!("{}{BROKEN_SUFFIX}", file_name(marker)));
        if let Err(e) = self.io.rename(&path, &broken) {
            tracing::warn!(file = %path.display(), error = %e, "cannot rename corrupt snapshot file");
        }
    }

    /// Deletes all but the newest `max_snapshots` snapshot files, and any
    /// temporary file a crash left. Returns how many snapshot files went.
    pub fn purge(&self) -> Result<usize> {
        let names = self
            .io
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?;
        let mut doomed: Vec<PathBuf> = names
            .iter()
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .map(|n| self.dir.join(n))
            .collect();
        let old = self.list()?.into_iter().skip(self.config.max_snapshots);
        let purged = old.len();
        doomed.extend(old.map(|m| self.path_of(m)));
        for path in &doomed {
            self.io
                .remove(path)
                .map_err(|e| Error::io("remove", path, e))?;
        }
        if !doomed.is_empty() {
            self.io
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync dir", &self.dir, e))?;
        }
        Ok(purged)
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, marker: SnapshotMarker) -> PathBuf {
        self.dir.join(file_name(marker))
    }
}

fn file_name(marker: SnapshotMarker) -> String {
    format!("{:016x}-{:016x}{SNAP_SUFFIX}", marker.term, marker.index)
}

fn parse_name(name: &str) -> Option<SnapshotMarker> {
    let (term, index) = parse_hex_pair(name.strip_suffix(SNAP_SUFFIX)?)?;
    Some(SnapshotMarker { index, term })
}

/// Decodes a whole snapshot file: exactly one frame, nothing after it.
fn decode_file(bytes: &[u8], path: &Path) -> Result<Snapshot> {
    let header_bytes: [u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .ok_or_else(|| corrupt(path, 0, "file is shorter than a header"))?
        .try_into()
        .expect("12");
    let header = match record::check_header(&header_bytes) {
        HeaderCheck::Valid(h) if h.kind == RecordType::Snapshot => h,
        HeaderCheck::Valid(_) => return Err(corrupt(path, 0, "not a snapshot record")),
        HeaderCheck::Zero => return Err(corrupt(path, 0, "zeros where the header should be")),
        HeaderCheck::BadCrc => {
            return Err(Error::CrcMismatch {
                file: path.into(),
                offset: 0,
            })
        }
        HeaderCheck::Malformed(reason) => return Err(corrupt(path, 0, reason)),
    };
    if header.frame_bytes() != bytes.len() as u64 {
        return Err(corrupt(
            path,
            0,
            "file length does not match the record length",
        ));
    }
    let (payload, padding) = record::split_frame(bytes, &header);
    if crc32c::crc32c(payload) != record::stored_crc(bytes) {
        return Err(Error::CrcMismatch {
            file: path.into(),
            offset: 0,
        });
    }
    if padding.iter().any(|&b| b != 0) || !record::has_end_marker(bytes) {
        return Err(corrupt(path, 0, "padding or end marker is damaged"));
    }
    let marker = record::decode_marker(payload, false)
        .ok_or_else(|| corrupt(path, 0, "payload too short"))?;
    Ok(Snapshot {
        marker,
        data: payload[SNAPSHOT_PREFIX_BYTES..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(term: u64, index: u64) -> SnapshotMarker {
        SnapshotMarker { index, term }
    }

    #[test]
    fn names_order_by_term_then_index() {
        assert_eq!(
            file_name(marker(2, 0x10)),
            "0000000000000002-0000000000000010.snap"
        );
        assert_eq!(
            parse_name("0000000000000002-0000000000000010.snap"),
            Some(marker(2, 0x10))
        );
        assert_eq!(
            parse_name("0000000000000002-0000000000000010.snap.broken"),
            None
        );
        assert_eq!(
            parse_name("0000000000000002-0000000000000010.snap.tmp"),
            None
        );
    }

    #[test]
    fn save_load_round_trip_and_every_bit_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let snap = Snapshotter::new(dir.path(), &WalConfig::default()).unwrap();
        snap.save(marker(3, 42), b"state of the world").unwrap();
        let loaded = snap.load(marker(3, 42)).unwrap();
        assert_eq!(
            loaded,
            Snapshot {
                marker: marker(3, 42),
                data: b"state of the world".to_vec()
            }
        );
        let path = dir.path().join(file_name(marker(3, 42)));
        let bytes = std::fs::read(&path).unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_file(&flipped, &path).is_err(),
                "bit {bit} not detected"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                decode_file(&bytes[..len], &path).is_err(),
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn oversized_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            max_snapshot_bytes: 1024,
            ..WalConfig::default()
        };
        let snap = Snapshotter::new(dir.path(), &config).unwrap();
        assert!(matches!(
            snap.save(marker(1, 1), &[0; 1025]),
            Err(Error::TooLarge { .. })
        ));
        snap.save(marker(1, 1), &[0; 1024]).unwrap();
    }
}
