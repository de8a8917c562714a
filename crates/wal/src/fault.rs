//! [`FaultyIo`]: a [`WalIo`] that wraps another and breaks chosen calls —
//! failed fsyncs, short writes, torn writes, ENOSPC — for tests of the WAL
//! and of the layers above it. It also counts calls, so a test can assert
//! how many fdatasyncs a save cost.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::io::{OpenMode, WalFile, WalIo};

/// A call a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// [`WalFile::write_at`].
    Write,
    /// [`WalFile::sync_data`].
    SyncData,
    /// [`WalFile::sync_all`].
    SyncAll,
    /// [`WalFile::preallocate`].
    Preallocate,
    /// [`WalFile::set_len`].
    SetLen,
    /// [`WalIo::open`].
    Open,
    /// [`WalIo::rename`].
    Rename,
    /// [`WalIo::remove`].
    Remove,
    /// [`WalIo::sync_dir`].
    SyncDir,
}

const OP_COUNT: usize = 9;

impl FaultOp {
    fn slot(self) -> usize {
        self as usize
    }
}

/// What an armed fault does to the call it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// The call fails with this OS error number and has no effect.
    Fail(i32),
    /// A write stores only its first `n` bytes and reports `Ok(n)`: a short
    /// write, which POSIX allows and callers must continue.
    Short(usize),
    /// A write stores only its first `n` bytes, then fails with the OS error
    /// number: what a crash or a full disk in the middle of a write leaves.
    Torn(usize, i32),
}

impl FaultAction {
    /// `EIO`: what a failed fsync reports.
    pub fn eio() -> Self {
        FaultAction::Fail(rustix::io::Errno::IO.raw_os_error())
    }

    /// `ENOSPC`: the disk is full.
    pub fn enospc() -> Self {
        FaultAction::Fail(rustix::io::Errno::NOSPC.raw_os_error())
    }

    /// A write that stores `n` bytes and then runs out of space.
    pub fn torn_enospc(n: usize) -> Self {
        FaultAction::Torn(n, rustix::io::Errno::NOSPC.raw_os_error())
    }
}

/// One fault: after `skip` matching calls go through, the next `times`
/// matching calls (every later one with `None`) get `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The call it targets.
    pub op: FaultOp,
    /// Only calls on paths whose file name ends with this (e.g. `".wal"`,
    /// `".tmp"`); every path when `None`.
    pub path_suffix: Option<String>,
    /// Matching calls let through first.
    pub skip: u64,
    /// Matching calls hit after that; `None` for all of them.
    pub times: Option<u64>,
    /// What happens to a hit call.
    pub action: FaultAction,
}

impl Fault {
    /// A fault hitting the next matching call, once.
    pub fn once(op: FaultOp, action: FaultAction) -> Self {
        Fault {
            op,
            path_suffix: None,
            skip: 0,
            times: Some(1),
            action,
        }
    }

    /// The same fault after `skip` matching calls go through.
    pub fn after(mut self, skip: u64) -> Self {
        self.skip = skip;
        self
    }

    /// The same fault hitting every matching call from then on.
    pub fn forever(mut self) -> Self {
        self.times = None;
        self
    }

    /// The same fault restricted to file names ending with `suffix`.
    pub fn on_files_ending(mut self, suffix: &str) -> Self {
        self.path_suffix = Some(suffix.to_string());
        self
    }

    fn matches(&self, op: FaultOp, path: &Path) -> bool {
        let name_ok = match &self.path_suffix {
            Some(suffix) => path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix.as_str())),
            None => true,
        };
        self.op == op && name_ok
    }
}

/// The current name of an open file, updated by renames.
type SharedPath = Arc<Mutex<PathBuf>>;

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    calls: [u64; OP_COUNT],
    injected: u64,
    open_files: Vec<Weak<Mutex<PathBuf>>>,
}

impl State {
    /// Counts the call and returns the action of the first fault it hits.
    fn hit(&mut self, op: FaultOp, path: &Path) -> Option<FaultAction> {
        self.calls[op.slot()] += 1;
        let live = |f: &&mut Fault| f.times != Some(0) && f.matches(op, path);
        let fault = self.faults.iter_mut().find(live)?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        if let Some(n) = &mut fault.times {
            *n -= 1;
        }
        self.injected += 1;
        Some(fault.action)
    }

    /// Open files renamed from `from` are called `to` from now on, so a
    /// fault aimed at `.wal` files hits a segment made as a `.tmp` file.
    fn renamed(&mut self, from: &Path, to: &Path) {
        self.open_files.retain(|file| match file.upgrade() {
            Some(path) => {
                let mut path = path.lock();
                if *path == from {
                    *path = to.to_path_buf();
                }
                true
            }
            None => false,
        });
    }
}

/// A [`WalIo`] that forwards to `inner` except where an armed [`Fault`]
/// says otherwise. Clones share their faults and counters.
#[derive(Clone)]
pub struct FaultyIo {
    inner: Arc<dyn WalIo>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FaultyIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyIo")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FaultyIo {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: Arc<dyn WalIo>) -> Self {
        FaultyIo {
            inner,
            state: Arc::default(),
        }
    }

    /// Arms a fault. A call is counted against the first armed fault that
    /// matches it and is not used up.
    pub fn arm(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Disarms every fault.
    pub fn disarm_all(&self) {
        self.state.lock().faults.clear();
    }

    /// How many calls of `op` were made, faulty or not.
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.state.lock().calls[op.slot()]
    }

    /// How many calls were hit by a fault.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    fn hit(&self, op: FaultOp, path: &Path) -> Option<FaultAction> {
        self.state.lock().hit(op, path)
    }

    /// Runs `call` unless a fault hits it (non-write calls only fail).
    fn guard<T>(
        &self,
        op: FaultOp,
        path: &Path,
        call: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        match self.hit(op, path) {
            None => call(),
            Some(FaultAction::Fail(errno) | FaultAction::Torn(_, errno)) => Err(injected(errno)),
            Some(FaultAction::Short(_)) => call(),
        }
    }
}

fn injected(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl WalIo for FaultyIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn WalFile>> {
        let inner = self.guard(FaultOp::Open, path, || self.inner.open(path, mode))?;
        let shared: SharedPath = Arc::new(Mutex::new(path.to_path_buf()));
        self.state.lock().open_files.push(Arc::downgrade(&shared));
        Ok(Box::new(FaultyFile {
            inner,
            path: shared,
            io: self.clone(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.guard(FaultOp::Rename, from, || self.inner.rename(from, to))?;
        self.state.lock().renamed(from, to);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.guard(FaultOp::Remove, path, || self.inner.remove(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.guard(FaultOp::SyncDir, dir, || self.inner.sync_dir(dir))
    }
}

/// A file opened through [`FaultyIo`], known by its current name.
#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn WalFile>,
    path: SharedPath,
    io: FaultyIo,
}

impl FaultyFile {
    fn hit(&self, op: FaultOp) -> Option<FaultAction> {
        let path = self.path.lock().clone();
        self.io.hit(op, &path)
    }

    fn guard(
        &mut self,
        op: FaultOp,
        call: impl FnOnce(&mut dyn WalFile) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.hit(op) {
            None | Some(FaultAction::Short(_)) => call(self.inner.as_mut()),
            Some(FaultAction::Fail(errno) | FaultAction::Torn(_, errno)) => Err(injected(errno)),
        }
    }
}

impl WalFile for FaultyFile {
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        match self.hit(FaultOp::Write) {
            None => self.inner.write_at(buf, offset),
            Some(FaultAction::Fail(errno)) => Err(injected(errno)),
            Some(FaultAction::Short(n)) => self.inner.write_at(&buf[..n.min(buf.len())], offset),
            Some(FaultAction::Torn(n, errno)) => {
                crate::io::write_all_at(self.inner.as_mut(), &buf[..n.min(buf.len())], offset)?;
                Err(injected(errno))
            }
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.guard(FaultOp::SyncData, |f| f.sync_data())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.guard(FaultOp::SyncAll, |f| f.sync_all())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.guard(FaultOp::SetLen, |f| f.set_len(len))
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.guard(FaultOp::Preallocate, |f| f.preallocate(len))
    }

    fn try_lock_exclusive(&self) -> io::Result<bool> {
        self.inner.try_lock_exclusive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StdIo;

    #[test]
    fn faults_skip_then_hit_then_stop() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new(Arc::new(StdIo));
        io.arm(Fault::once(FaultOp::SyncData, FaultAction::eio()).after(1));
        let mut file = io
            .open(&dir.path().join("a.wal"), OpenMode::CreateTruncate)
            .unwrap();
        assert!(file.sync_data().is_ok());
        let err = file.sync_data().unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::IO.raw_os_error())
        );
        assert!(file.sync_data().is_ok());
        assert_eq!(io.calls(FaultOp::SyncData), 3);
        assert_eq!(io.injected(), 1);
    }

    #[test]
    fn faults_follow_a_file_through_renames() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new(Arc::new(StdIo));
        io.arm(Fault::once(FaultOp::SyncData, FaultAction::eio()).on_files_ending(".wal"));
        let (tmp, wal) = (dir.path().join("a.tmp"), dir.path().join("a.wal"));
        let mut file = io.open(&tmp, OpenMode::CreateTruncate).unwrap();
        assert!(file.sync_data().is_ok(), "still a .tmp file");
        io.rename(&tmp, &wal).unwrap();
        assert!(file.sync_data().is_err(), "now a .wal file");
    }

    #[test]
    fn short_and_torn_writes_store_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new(Arc::new(StdIo));
        io.arm(Fault::once(FaultOp::Write, FaultAction::Short(3)));
        io.arm(Fault::once(FaultOp::Write, FaultAction::torn_enospc(2)).on_files_ending(".tmp"));
        let mut file = io
            .open(&dir.path().join("a.wal"), OpenMode::CreateTruncate)
            .unwrap();
        assert_eq!(file.write_at(b"abcdef", 0).unwrap(), 3);
        let mut tmp = io
            .open(&dir.path().join("b.tmp"), OpenMode::CreateTruncate)
            .unwrap();
        let err = tmp.write_at(b"abcdef", 0).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::NOSPC.raw_os_error())
        );
        assert_eq!(std::fs::read(dir.path().join("a.wal")).unwrap(), b"abc");
        assert_eq!(std::fs::read(dir.path().join("b.tmp")).unwrap(), b"ab");
    }
}
