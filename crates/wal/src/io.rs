//! All file IO of the crate goes through [`WalIo`] and [`WalFile`], so tests
//! can tear writes, shorten them and fail fsyncs ([`FaultyIo`]) — the way
//! raft-engine's `FileSystem` and redb's `StorageBackend` do.
//!
//! [`FaultyIo`]: crate::fault::FaultyIo

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How [`WalIo::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file is created empty, replacing any old one.
    CreateTruncate,
    /// Read and write; created if missing, kept as is otherwise (lock files).
    CreateKeep,
}

/// A directory-level filesystem: the operations the WAL and the snapshotter
/// need, nothing more.
pub trait WalIo: Send + Sync + fmt::Debug {
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir` (names that are not UTF-8 are skipped:
    /// the WAL never makes them).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn WalFile>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes `dir`'s entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file, addressed by offset (no cursor, so no seek state to lose).
pub trait WalFile: Send + fmt::Debug {
    /// Current length of the file.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at EOF).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `offset`; returns how many. A short
    /// count is legal, as for `pwrite(2)`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fdatasync(2)`: the data, and the metadata needed to read it, are durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync(2)`: data and all metadata are durable.
    fn sync_all(&mut self) -> io::Result<()>;
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Reserves blocks for the first `len` bytes, extending the file with
    /// zeros if it is shorter, so that appends do not allocate.
    fn preallocate(&mut self, len: u64) -> io::Result<()>;
    /// Takes an exclusive advisory lock without blocking; `Ok(false)` when
    /// someone else holds it. Released when the file is closed.
    fn try_lock_exclusive(&self) -> io::Result<bool>;
}

/// Reads exactly `buf.len()` bytes at `offset`, retrying short reads;
/// `UnexpectedEof` if the file ends first.
pub(crate) fn read_exact_at(
    file: &dyn WalFile,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`, continuing after short writes.
pub(crate) fn write_all_at(
    file: &mut dyn WalFile,
    mut buf: &[u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The real filesystem, through `std::fs` (and `fallocate`/`flock` through
/// rustix where std has no call for them).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdIo;

impl WalIo for StdIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn WalFile>> {
        let mut options = OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                options.write(true);
            }
            OpenMode::CreateTruncate => {
                options.write(true).create(true).truncate(true);
            }
            OpenMode::CreateKeep => {
                options.write(true).create(true).truncate(false);
            }
        }
        Ok(Box::new(StdFile(options.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A `std::fs::File` as a [`WalFile`].
#[derive(Debug)]
struct StdFile(File);

impl WalFile for StdFile {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(&self.0, buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        preallocate(&self.0, len)
    }

    fn try_lock_exclusive(&self) -> io::Result<bool> {
        use rustix::fs::{flock, FlockOperation};
        match flock(&self.0, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// `fallocate(2)` reserves the blocks up front so that fdatasync after an
/// append need not allocate; filesystems without it get a sparse extension.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    use rustix::io::Errno;
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => extend(file, len),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    extend(file, len)
}

fn extend(file: &File, len: u64) -> io::Result<()> {
    if file.metadata()?.len() < len {
        file.set_len(len)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_file_reads_writes_and_preallocates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = StdIo.open(&path, OpenMode::CreateTruncate).unwrap();
        write_all_at(file.as_mut(), b"hello", 3).unwrap();
        file.preallocate(4096).unwrap();
        assert_eq!(file.size_bytes().unwrap(), 4096);
        let mut buf = [1u8; 8];
        read_exact_at(file.as_ref(), &mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0hello");
        file.preallocate(16).unwrap();
        assert_eq!(
            file.size_bytes().unwrap(),
            4096,
            "preallocate never shrinks"
        );
        file.set_len(2).unwrap();
        let err = read_exact_at(file.as_ref(), &mut buf, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(StdIo.list(dir.path()).unwrap(), vec!["f".to_string()]);
        StdIo.sync_dir(dir.path()).unwrap();
    }

    #[test]
    fn lock_is_exclusive_across_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = StdIo.open(&path, OpenMode::CreateKeep).unwrap();
        let second = StdIo.open(&path, OpenMode::CreateKeep).unwrap();
        assert!(first.try_lock_exclusive().unwrap());
        assert!(!second.try_lock_exclusive().unwrap());
        drop(first);
        assert!(
            second.try_lock_exclusive().unwrap(),
            "closing releases the lock"
        );
    }
}
