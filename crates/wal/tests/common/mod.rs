//! Helpers shared by the integration suites.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironcd_wal::{
    HardState, OpenMode, Result, SnapshotMarker, StdIo, Wal, WalConfig, WalContents, WalFile,
    WalIo, MIN_SEGMENT_SIZE_BYTES,
};

/// Small segments, so a few dozen entries cross several cuts.
pub fn small_config() -> WalConfig {
    WalConfig {
        segment_size_bytes: MIN_SEGMENT_SIZE_BYTES,
        max_record_bytes: 64 * 1024,
        ..WalConfig::default()
    }
}

/// An entry whose data has no zero byte (a zero-free payload cannot look
/// like a torn write; see the crate docs).
pub use ironcd_wal::testkit::entry;

pub fn reopen(dir: &Path, at: SnapshotMarker, config: &WalConfig) -> Result<(Wal, WalContents)> {
    Wal::open(dir, at, config)?.read_all()
}

/// Segment files in `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    names
}

/// `[start, end)` of every frame in a segment, walking the documented
/// layout: u32 LE length at offset 0, frame = 12 + len + padding + 8,
/// padded to a multiple of 8.
pub fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() && bytes[at..at + 12].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + (20 + len).div_ceil(8) * 8;
        out.push((at, end));
        at = end;
    }
    out
}

/// Saves entries `first..=last` one per save (one record each), with a
/// fixed hard state.
pub fn save_each(wal: &mut Wal, first: u64, last: u64, len: usize) {
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: 0,
    };
    for index in first..=last {
        wal.save(&hs, &[entry(index, 1, len)]).unwrap();
    }
}

/// The real filesystem without any fsync: for tests of logic, not
/// durability, so they stay fast.
#[derive(Debug)]
pub struct NoSyncIo;

#[derive(Debug)]
struct NoSyncFile(Box<dyn WalFile>);

impl WalIo for NoSyncIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdIo.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdIo.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(NoSyncFile(StdIo.open(path, mode)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdIo.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdIo.remove(path)
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl WalFile for NoSyncFile {
    fn size_bytes(&self) -> io::Result<u64> {
        self.0.size_bytes()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn sync_all(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.0.preallocate(len)
    }
    fn try_lock_exclusive(&self) -> io::Result<bool> {
        self.0.try_lock_exclusive()
    }
}

pub fn no_sync() -> Arc<dyn WalIo> {
    Arc::new(NoSyncIo)
}
