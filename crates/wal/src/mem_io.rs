//! [`MemIo`]: an in-memory [`WalIo`] that models what survives a power
//! loss, so tests can crash the "machine" at any point without processes
//! or real disks — the role raft-rs's `MemStorage` plays for raft.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Component, Path};
use std::sync::Arc;

use parking_lot::Mutex;
use rustix::io::Errno;

use crate::io::{OpenMode, WalFile, WalIo};

/// Largest file [`MemIo`] holds, in bytes: the largest segment a WAL may be
/// configured with (snapshot files are smaller). Writes, truncates and
/// preallocations beyond it fail with `EFBIG`, as past a filesystem's
/// file size limit. Preallocated zeros take no memory.
pub const MEM_MAX_FILE_BYTES: u64 = crate::config::MAX_SEGMENT_SIZE_BYTES;

type Ino = u64;
const ROOT: Ino = 0;

/// An in-memory filesystem whose durability follows fsync rules. Clones
/// share one filesystem, so a test can drop a WAL,
/// [`crash`](MemIo::crash) and reopen it through a clone.
///
/// Every file and directory has a volatile state (what reads see) and a
/// durable one (what a crash leaves):
///
/// * file bytes and length become durable on `sync_data`/`sync_all`;
/// * a directory's entries — creations, renames, removals, new
///   subdirectories — become durable when the directory is fsynced
///   (`sync_dir`), and only then: a synced file whose name never was is
///   lost, as POSIX allows;
/// * [`MemIo::crash`] throws away everything not durable, releases every
///   lock and turns every open file into a dead handle whose calls fail
///   with `EIO` (the process that held it died with the machine);
/// * [`MemIo::cut_power_after`] stops the machine after a number of
///   mutating calls: every later call fails with `EIO` until `crash`;
/// * [`MemIo::write_back`] makes everything durable, as the kernel may on
///   its own, so a test can try both extremes of a crash.
///
/// The model is pessimistic about what was not synced: a crash keeps none
/// of it. Real disks may keep some of it, torn at any byte; [`FaultyIo`]
/// covers those tears. Errors carry the OS error numbers the real calls
/// would (`ENOENT`, `EISDIR`, ...), so their kinds match [`StdIo`]'s.
///
/// ```
/// use std::path::Path;
/// use ironcd_wal::{MemIo, OpenMode, WalIo};
///
/// let io = MemIo::new();
/// let dir = Path::new("/data");
/// io.create_dir_all(dir)?;
/// io.sync_dir(Path::new("/"))?;
/// let mut file = io.open(&dir.join("a"), OpenMode::CreateTruncate)?;
/// file.write_at(b"durable", 0)?;
/// file.sync_data()?;
/// io.sync_dir(dir)?;
/// file.write_at(b"lost", 7)?;
/// io.crash();
/// let file = io.open(&dir.join("a"), OpenMode::Read)?;
/// assert_eq!(file.size_bytes()?, 7);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`FaultyIo`]: crate::fault::FaultyIo
/// [`StdIo`]: crate::StdIo
#[derive(Clone, Default)]
pub struct MemIo {
    fs: Arc<Mutex<Fs>>,
}

impl fmt::Debug for MemIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fs = self.fs.lock();
        f.debug_struct("MemIo")
            .field("nodes", &fs.nodes.len())
            .field("boot", &fs.boot)
            .field("mutating_calls", &fs.mutating_calls)
            .field("halted", &fs.halted)
            .finish()
    }
}

impl MemIo {
    /// An empty filesystem: only the root directory, durable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Power loss and reboot: every file and directory goes back to its
    /// durable state, everything unreachable is freed, locks are released,
    /// files opened before fail with `EIO` from now on, and a power cut
    /// armed by [`cut_power_after`](MemIo::cut_power_after) is cleared.
    pub fn crash(&self) {
        self.fs.lock().crash();
    }

    /// Makes everything durable, as the kernel's writeback may at any time:
    /// calling it before [`crash`](MemIo::crash) models the luckiest power
    /// loss (nothing is lost; a process kill), where `crash` alone models
    /// the unluckiest. Works on a halted machine too.
    pub fn write_back(&self) {
        self.fs.lock().write_back();
    }

    /// Arms a power cut: `calls` more mutating calls (creating opens,
    /// writes, syncs, truncations, preallocations, renames, removals,
    /// directory creations and syncs) go through, then every call fails
    /// with `EIO` until [`crash`](MemIo::crash).
    pub fn cut_power_after(&self, calls: u64) {
        self.fs.lock().power_left = Some(calls);
    }

    /// Whether an armed power cut has happened (and `crash` not yet run).
    pub fn is_halted(&self) -> bool {
        self.fs.lock().halted
    }

    /// Mutating calls made so far, over all boots: a test runs a workload
    /// once to learn how many crash points it has.
    pub fn mutating_calls(&self) -> u64 {
        self.fs.lock().mutating_calls
    }
}

/// A file's bytes. Only `bytes` is stored; from its end up to `len_bytes`
/// the file reads as zeros, so preallocating a 64 MiB segment is free.
#[derive(Clone, Debug, Default)]
struct Contents {
    bytes: Vec<u8>,
    len_bytes: u64,
}

#[derive(Debug, Default)]
struct FileNode {
    live: Contents,
    durable: Contents,
    /// Lowest offset at which `live.bytes` may differ from `durable.bytes`
    /// (`None`: they are equal), so a sync copies only what changed and a
    /// WAL in one big segment does not cost a whole-file copy per save.
    dirty_from: Option<usize>,
    /// The handle holding the `flock`.
    lock: Option<u64>,
    open_handles: u64,
}

#[derive(Debug, Default)]
struct DirNode {
    live: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct Fs {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    next_handle: u64,
    /// Bumped by every crash; handles of an earlier boot are dead.
    boot: u64,
    mutating_calls: u64,
    power_left: Option<u64>,
    halted: bool,
}

impl Default for Fs {
    fn default() -> Self {
        Fs {
            nodes: HashMap::from([(ROOT, Node::Dir(DirNode::default()))]),
            next_ino: ROOT + 1,
            next_handle: 0,
            boot: 0,
            mutating_calls: 0,
            power_left: None,
            halted: false,
        }
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// The names along `path`, resolved lexically (`.` skipped, `..` pops);
/// relative paths start at the root.
fn names_of(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => {
                let name = name.to_str().ok_or_else(|| errno(Errno::INVAL))?;
                names.push(name.to_string());
            }
            Component::ParentDir => {
                names.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(names)
}

impl Fs {
    /// Fails every call once the power is cut.
    fn check_running(&self) -> io::Result<()> {
        if self.halted {
            return Err(errno(Errno::IO));
        }
        Ok(())
    }

    /// Counts a mutating call, or cuts the power before it.
    fn mutate(&mut self) -> io::Result<()> {
        self.check_running()?;
        if self.power_left == Some(0) {
            self.halted = true;
            return Err(errno(Errno::IO));
        }
        if let Some(left) = &mut self.power_left {
            *left -= 1;
        }
        self.mutating_calls += 1;
        Ok(())
    }

    fn dir(&self, ino: Ino) -> io::Result<&DirNode> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(dir)) => Ok(dir),
            Some(Node::File(_)) => Err(errno(Errno::NOTDIR)),
            None => panic!("mem io: dangling inode {ino}"),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> &mut DirNode {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(dir)) => dir,
            other => panic!("mem io: inode {ino} is not a directory: {other:?}"),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> &mut FileNode {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(file)) => file,
            other => panic!("mem io: inode {ino} is not a file: {other:?}"),
        }
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.nodes.get(&ino), Some(Node::Dir(_)))
    }

    /// The inode at the end of `names`, through live entries.
    fn lookup(&self, names: &[String]) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in names {
            ino = *self
                .dir(ino)?
                .live
                .get(name)
                .ok_or_else(|| errno(Errno::NOENT))?;
        }
        Ok(ino)
    }

    /// The directory holding `path`'s last name, and that name.
    fn parent_of(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut names = names_of(path)?;
        let name = names.pop().ok_or_else(|| errno(Errno::ISDIR))?;
        let parent = self.lookup(&names)?;
        self.dir(parent)?;
        Ok((parent, name))
    }

    fn add_node(&mut self, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let names = names_of(path)?;
        let mut ino = ROOT;
        for (depth, name) in names.iter().enumerate() {
            ino = match self.dir(ino)?.live.get(name).copied() {
                Some(child) if self.is_dir(child) => child,
                Some(_) if depth + 1 == names.len() => return Err(errno(Errno::EXIST)),
                Some(_) => return Err(errno(Errno::NOTDIR)),
                None => {
                    let child = self.add_node(Node::Dir(DirNode::default()));
                    self.dir_mut(ino).live.insert(name.clone(), child);
                    child
                }
            };
        }
        Ok(())
    }

    /// Opens (maybe creates) the file at `path`; returns its inode.
    fn open(&mut self, path: &Path, mode: OpenMode) -> io::Result<Ino> {
        let creates = matches!(mode, OpenMode::CreateTruncate | OpenMode::CreateKeep);
        if creates {
            self.mutate()?;
        } else {
            self.check_running()?;
        }
        let (parent, name) = self.parent_of(path)?;
        let ino = match self.dir(parent)?.live.get(&name).copied() {
            Some(ino) if self.is_dir(ino) => return Err(errno(Errno::ISDIR)),
            Some(ino) => ino,
            None if creates => {
                let ino = self.add_node(Node::File(FileNode::default()));
                self.dir_mut(parent).live.insert(name, ino);
                ino
            }
            None => return Err(errno(Errno::NOENT)),
        };
        let file = self.file_mut(ino);
        if mode == OpenMode::CreateTruncate {
            file.set_len(0);
        }
        file.open_handles += 1;
        Ok(ino)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        let moving = *self
            .dir(from_dir)?
            .live
            .get(&from_name)
            .ok_or_else(|| errno(Errno::NOENT))?;
        if let Some(&replaced) = self.dir(to_dir)?.live.get(&to_name) {
            if replaced == moving {
                return Ok(());
            }
            match (self.is_dir(moving), self.is_dir(replaced)) {
                (false, true) => return Err(errno(Errno::ISDIR)),
                (true, false) => return Err(errno(Errno::NOTDIR)),
                (true, true) if !self.dir(replaced)?.live.is_empty() => {
                    return Err(errno(Errno::NOTEMPTY))
                }
                _ => {}
            }
        }
        let (from_names, to_names) = (names_of(from)?, names_of(to)?);
        if to_names.len() > from_names.len() && to_names.starts_with(&from_names) {
            // A directory cannot move into itself.
            return Err(errno(Errno::INVAL));
        }
        self.dir_mut(from_dir).live.remove(&from_name);
        self.dir_mut(to_dir).live.insert(to_name, moving);
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(path)?;
        let ino = *self
            .dir(parent)?
            .live
            .get(&name)
            .ok_or_else(|| errno(Errno::NOENT))?;
        if self.is_dir(ino) {
            return Err(errno(Errno::ISDIR));
        }
        self.dir_mut(parent).live.remove(&name);
        Ok(())
    }

    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        let ino = self.lookup(&names_of(path)?)?;
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(dir)) => dir.durable.clone_from(&dir.live),
            // fsync through a file's name syncs the file, as on Linux.
            Some(Node::File(file)) => file.sync(),
            None => panic!("mem io: dangling inode {ino}"),
        }
        self.collect_garbage();
        Ok(())
    }

    /// Frees nodes no live or durable entry reaches and no handle holds.
    fn collect_garbage(&mut self) {
        let mut reached = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                for &child in dir.live.values().chain(dir.durable.values()) {
                    if reached.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, node| {
            reached.contains(ino) || matches!(node, Node::File(f) if f.open_handles > 0)
        });
    }

    fn write_back(&mut self) {
        for node in self.nodes.values_mut() {
            match node {
                Node::Dir(dir) => dir.durable.clone_from(&dir.live),
                Node::File(file) => file.sync(),
            }
        }
        self.collect_garbage();
    }

    fn crash(&mut self) {
        for node in self.nodes.values_mut() {
            match node {
                Node::Dir(dir) => dir.live.clone_from(&dir.durable),
                Node::File(file) => {
                    file.live.clone_from(&file.durable);
                    file.dirty_from = None;
                    file.lock = None;
                    file.open_handles = 0;
                }
            }
        }
        self.boot += 1;
        self.halted = false;
        self.power_left = None;
        self.collect_garbage();
    }
}

impl FileNode {
    /// Marks `live.bytes` from `offset` on as changed since the last sync.
    fn touch(&mut self, offset: u64) {
        // Bytes past the stored ones change too when the store grows.
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.live.bytes.len());
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> usize {
        let Some(left) = self.live.len_bytes.checked_sub(offset) else {
            return 0;
        };
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let start = usize::try_from(offset).expect("offset below len_bytes fits memory");
        let stored = self.live.bytes.len().saturating_sub(start).min(n);
        buf[..stored].copy_from_slice(&self.live.bytes[start..start + stored]);
        buf[stored..n].fill(0);
        n
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= MEM_MAX_FILE_BYTES)
            .ok_or_else(|| errno(Errno::FBIG))?;
        self.touch(offset);
        let (start, end_usize) = (offset as usize, end as usize);
        if self.live.bytes.len() < end_usize {
            self.live.bytes.resize(end_usize, 0);
        }
        self.live.bytes[start..end_usize].copy_from_slice(buf);
        self.live.len_bytes = self.live.len_bytes.max(end);
        Ok(buf.len())
    }

    fn set_len(&mut self, len: u64) {
        assert!(len <= MEM_MAX_FILE_BYTES, "callers check the file limit");
        self.touch(len);
        self.live.bytes.truncate(len as usize);
        self.live.len_bytes = len;
    }

    fn sync(&mut self) {
        if let Some(from) = self.dirty_from.take() {
            self.durable.bytes.truncate(from);
            self.durable
                .bytes
                .extend_from_slice(&self.live.bytes[from..]);
        }
        self.durable.len_bytes = self.live.len_bytes;
        debug_assert_eq!(self.durable.bytes.len(), self.live.bytes.len());
    }
}

fn check_len(len: u64) -> io::Result<()> {
    if len > MEM_MAX_FILE_BYTES {
        return Err(errno(Errno::FBIG));
    }
    Ok(())
}

impl WalIo for MemIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.mutate()?;
        fs.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let fs = self.fs.lock();
        fs.check_running()?;
        let ino = fs.lookup(&names_of(dir)?)?;
        Ok(fs.dir(ino)?.live.keys().cloned().collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn WalFile>> {
        let mut fs = self.fs.lock();
        let ino = fs.open(path, mode)?;
        let handle = fs.next_handle;
        fs.next_handle += 1;
        Ok(Box::new(MemFile {
            fs: Arc::clone(&self.fs),
            ino,
            handle,
            boot: fs.boot,
            writable: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.mutate()?;
        fs.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.mutate()?;
        fs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.mutate()?;
        fs.sync_dir(dir)
    }
}

/// A file open in a [`MemIo`]: an inode, which stays readable after its
/// name is removed or replaced, as on Unix.
struct MemFile {
    fs: Arc<Mutex<Fs>>,
    ino: Ino,
    handle: u64,
    /// The boot it was opened in; dead after a crash.
    boot: u64,
    writable: bool,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("ino", &self.ino)
            .field("handle", &self.handle)
            .field("boot", &self.boot)
            .field("writable", &self.writable)
            .finish()
    }
}

impl MemFile {
    /// Runs a read-only call on the file, if the machine still runs.
    fn with<T>(&self, call: impl FnOnce(&mut FileNode) -> T) -> io::Result<T> {
        let mut fs = self.fs.lock();
        fs.check_running()?;
        self.alive(&fs)?;
        Ok(call(fs.file_mut(self.ino)))
    }

    /// Runs a mutating call on the file: counted, and refused on a
    /// read-only handle with `EBADF` as `pwrite(2)` does.
    fn mutate<T>(
        &mut self,
        needs_write: bool,
        call: impl FnOnce(&mut FileNode) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut fs = self.fs.lock();
        fs.mutate()?;
        self.alive(&fs)?;
        if needs_write && !self.writable {
            return Err(errno(Errno::BADF));
        }
        call(fs.file_mut(self.ino))
    }

    fn alive(&self, fs: &Fs) -> io::Result<()> {
        if fs.boot != self.boot {
            return Err(errno(Errno::IO));
        }
        Ok(())
    }
}

impl WalFile for MemFile {
    fn size_bytes(&self) -> io::Result<u64> {
        self.with(|file| file.live.len_bytes)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|file| file.read_at(buf, offset))
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.mutate(true, |file| file.write_at(buf, offset))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.mutate(false, |file| {
            file.sync();
            Ok(())
        })
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.mutate(true, |file| {
            check_len(len)?;
            file.set_len(len);
            Ok(())
        })
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.mutate(true, |file| {
            check_len(len)?;
            file.live.len_bytes = file.live.len_bytes.max(len);
            Ok(())
        })
    }

    fn try_lock_exclusive(&self) -> io::Result<bool> {
        let handle = self.handle;
        self.with(|file| match file.lock {
            Some(holder) if holder != handle => false,
            _ => {
                file.lock = Some(handle);
                true
            }
        })
    }
}

impl Drop for MemFile {
    /// Closing releases the lock, as closing the last descriptor of an
    /// open file description does for `flock`.
    fn drop(&mut self) {
        let mut fs = self.fs.lock();
        if fs.boot != self.boot {
            return;
        }
        let file = fs.file_mut(self.ino);
        file.open_handles -= 1;
        if file.lock == Some(self.handle) {
            file.lock = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{read_exact_at, write_all_at};

    fn read_all(io: &MemIo, path: &str) -> io::Result<Vec<u8>> {
        let file = io.open(Path::new(path), OpenMode::Read)?;
        let mut buf = vec![0; file.size_bytes()? as usize];
        read_exact_at(file.as_ref(), &mut buf, 0)?;
        Ok(buf)
    }

    fn write_file(io: &MemIo, path: &str, bytes: &[u8], sync: bool) -> Box<dyn WalFile> {
        let mut file = io.open(Path::new(path), OpenMode::CreateTruncate).unwrap();
        write_all_at(file.as_mut(), bytes, 0).unwrap();
        if sync {
            file.sync_data().unwrap();
        }
        file
    }

    #[test]
    fn only_synced_bytes_survive_a_crash() {
        let io = MemIo::new();
        let mut file = write_file(&io, "/a", b"hello", true);
        io.sync_dir(Path::new("/")).unwrap();
        write_all_at(file.as_mut(), b" world", 5).unwrap();
        file.set_len(2).unwrap();
        assert_eq!(read_all(&io, "/a").unwrap(), b"he");
        io.crash();
        assert_eq!(read_all(&io, "/a").unwrap(), b"hello");
        let err = file.write_at(b"x", 0).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(Errno::IO.raw_os_error()),
            "dead handle"
        );
    }

    #[test]
    fn names_survive_only_once_the_directory_is_synced() {
        let io = MemIo::new();
        io.create_dir_all(Path::new("/d/e")).unwrap();
        drop(write_file(&io, "/d/e/f", b"x", true));
        io.crash();
        assert!(
            io.list(Path::new("/")).unwrap().is_empty(),
            "d was never synced"
        );
        io.create_dir_all(Path::new("/d")).unwrap();
        drop(write_file(&io, "/d/f.tmp", b"x", true));
        io.sync_dir(Path::new("/d")).unwrap();
        io.sync_dir(Path::new("/")).unwrap();
        io.rename(Path::new("/d/f.tmp"), Path::new("/d/f")).unwrap();
        io.crash();
        assert_eq!(
            io.list(Path::new("/d")).unwrap(),
            ["f.tmp"],
            "rename not synced"
        );
        io.rename(Path::new("/d/f.tmp"), Path::new("/d/f")).unwrap();
        io.sync_dir(Path::new("/d")).unwrap();
        io.remove(Path::new("/d/f")).unwrap();
        io.crash();
        assert_eq!(read_all(&io, "/d/f").unwrap(), b"x", "removal not synced");
    }

    #[test]
    fn a_removed_file_stays_open_and_is_freed_once_closed() {
        let io = MemIo::new();
        let file = write_file(&io, "/a", b"abc", false);
        io.remove(Path::new("/a")).unwrap();
        io.sync_dir(Path::new("/")).unwrap();
        let mut buf = [0; 3];
        read_exact_at(file.as_ref(), &mut buf, 0).unwrap();
        assert_eq!(&buf, b"abc");
        drop(file);
        io.sync_dir(Path::new("/")).unwrap();
        assert_eq!(io.fs.lock().nodes.len(), 1, "only the root is left");
    }

    #[test]
    fn a_crash_releases_locks() {
        let io = MemIo::new();
        let first = io.open(Path::new("/lock"), OpenMode::CreateKeep).unwrap();
        assert!(first.try_lock_exclusive().unwrap());
        io.sync_dir(Path::new("/")).unwrap();
        io.crash();
        let second = io.open(Path::new("/lock"), OpenMode::CreateKeep).unwrap();
        assert!(second.try_lock_exclusive().unwrap());
        drop(first);
        let third = io.open(Path::new("/lock"), OpenMode::CreateKeep).unwrap();
        assert!(
            !third.try_lock_exclusive().unwrap(),
            "a dead handle frees nothing"
        );
    }

    #[test]
    fn a_power_cut_fails_everything_until_the_crash() {
        let io = MemIo::new();
        io.cut_power_after(2);
        let mut file = write_file(&io, "/a", b"abc", false);
        assert!(!io.is_halted());
        assert!(file.sync_data().is_err());
        assert!(io.is_halted());
        assert!(io.list(Path::new("/")).is_err());
        assert!(file.size_bytes().is_err());
        io.crash();
        assert!(io.list(Path::new("/")).unwrap().is_empty());
        assert_eq!(io.mutating_calls(), 2);
    }

    #[test]
    fn preallocation_is_sparse_and_limited() {
        let io = MemIo::new();
        let mut file = write_file(&io, "/a", b"ab", true);
        file.preallocate(crate::config::DEFAULT_SEGMENT_SIZE_BYTES)
            .unwrap();
        write_all_at(file.as_mut(), b"z", 100).unwrap();
        let mut buf = [9; 4];
        read_exact_at(file.as_ref(), &mut buf, 98).unwrap();
        assert_eq!(buf, [0, 0, b'z', 0]);
        let err = file.preallocate(MEM_MAX_FILE_BYTES + 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::FBIG.raw_os_error()));
        let err = file.write_at(b"x", MEM_MAX_FILE_BYTES).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::FBIG.raw_os_error()));
        file.sync_all().unwrap();
        io.sync_dir(Path::new("/")).unwrap();
        io.crash();
        let file = io.open(Path::new("/a"), OpenMode::Read).unwrap();
        assert_eq!(
            file.size_bytes().unwrap(),
            crate::config::DEFAULT_SEGMENT_SIZE_BYTES
        );
    }

    #[test]
    fn incremental_sync_matches_the_live_bytes() {
        let io = MemIo::new();
        let mut file = write_file(&io, "/a", b"0123456789", true);
        file.preallocate(64).unwrap();
        write_all_at(file.as_mut(), b"xy", 30).unwrap();
        file.set_len(12).unwrap();
        write_all_at(file.as_mut(), b"Q", 3).unwrap();
        file.sync_data().unwrap();
        io.sync_dir(Path::new("/")).unwrap();
        let before = read_all(&io, "/a").unwrap();
        io.crash();
        assert_eq!(read_all(&io, "/a").unwrap(), before);
        assert_eq!(before, b"012Q456789\0\0");
    }
}
