//! Where the state's backend lives, and how a snapshot install replaces
//! it: [`Storage`]. The server runs on [`RocksStorage`] (the member
//! directory's `db`); unit tests of the applier run on an in-memory one.

use std::path::{Path, PathBuf};

use ironcd_backend::{Backend, BackendConfig, RocksBackend};

use crate::error::{Error, Result};
use crate::failpoint;

/// Opens the backend a member runs on, and swaps in a replacement filled
/// from a peer's snapshot.
pub trait Storage<B: Backend>: Send + Sync + 'static {
    /// The backend to run on, after finishing or rolling back a
    /// replacement a crash interrupted.
    fn open(&self) -> Result<B>;
    /// An empty backend beside the running one, for a snapshot's data.
    fn open_staging(&self) -> Result<B>;
    /// Makes `staged` (filled, and committed durably) the backend to run
    /// on, and returns it. The running backend has been dropped; when this
    /// returns, a restart opens the new one.
    fn install(&self, staged: B) -> Result<B>;
}

/// The backend in `<member dir>/db`, replaced through `db.restore` and
/// `db.old` so that a crash at any step leaves one complete database.
pub struct RocksStorage {
    member_dir: PathBuf,
    config: BackendConfig,
}

impl RocksStorage {
    /// The storage under `member_dir` (created if missing).
    pub fn new(member_dir: &Path, config: BackendConfig) -> Result<RocksStorage> {
        std::fs::create_dir_all(member_dir)?;
        Ok(RocksStorage {
            member_dir: member_dir.to_path_buf(),
            config,
        })
    }

    fn db(&self) -> PathBuf {
        self.member_dir.join("db")
    }

    fn restore(&self) -> PathBuf {
        self.member_dir.join("db.restore")
    }

    fn old(&self) -> PathBuf {
        self.member_dir.join("db.old")
    }

    fn sync_member_dir(&self) -> Result<()> {
        std::fs::File::open(&self.member_dir)?.sync_all()?;
        Ok(())
    }

    /// Finishes or rolls back a restore a crash interrupted, by the names
    /// present (the order [`Storage::install`] renames in):
    ///
    /// | present                  | the crash came            | so                        |
    /// |--------------------------|---------------------------|---------------------------|
    /// | `db`, `db.restore`       | before the swap           | drop `db.restore`         |
    /// | `db.old`, `db.restore`   | between the two renames   | `db.restore` → `db`       |
    /// | `db`, `db.old`           | before `db.old` was gone  | drop `db.old`             |
    /// | `db.restore` alone       | before any `db` existed   | drop `db.restore`         |
    /// | `db.old` alone           | never, by this order      | refuse to start           |
    ///
    /// `db.old` exists only once `db.restore` is complete and durable, so a
    /// `db.restore` beside it is whole; without `db.old` it may be partial.
    /// A dropped restore is redone: raft delivers the snapshot again, its
    /// data file still under `snap/`.
    fn settle(&self) -> Result<()> {
        let (db, restore, old) = (self.db(), self.restore(), self.old());
        let dir = self.member_dir.display();
        match (db.exists(), restore.exists(), old.exists()) {
            (false, true, true) => {
                tracing::info!(%dir, "finishing a restore a crash interrupted");
                std::fs::rename(&restore, &db)?;
                self.sync_member_dir()?;
                std::fs::remove_dir_all(&old)?;
            }
            (false, false, true) => {
                return Err(Error::Corrupt(format!(
                    "{dir} holds db.old but neither db nor db.restore"
                )))
            }
            (_, restore_present, old_present) => {
                if restore_present {
                    tracing::info!(%dir, "dropping an unfinished restore");
                    std::fs::remove_dir_all(&restore)?;
                }
                if old_present {
                    std::fs::remove_dir_all(&old)?;
                }
            }
        }
        self.sync_member_dir()
    }
}

impl Storage<RocksBackend> for RocksStorage {
    fn open(&self) -> Result<RocksBackend> {
        self.settle()?;
        Ok(RocksBackend::open(self.db(), self.config.clone())?)
    }

    fn open_staging(&self) -> Result<RocksBackend> {
        let restore = self.restore();
        if restore.exists() {
            std::fs::remove_dir_all(&restore)?;
        }
        Ok(RocksBackend::open(&restore, self.config.clone())?)
    }

    /// `db.restore` is closed and made durable; then `db` → `db.old`,
    /// `db.restore` → `db`, `db.old` removed, the member directory fsynced
    /// after each step ([`RocksStorage::settle`] reads the names a crash
    /// leaves).
    fn install(&self, staged: RocksBackend) -> Result<RocksBackend> {
        let (db, restore, old) = (self.db(), self.restore(), self.old());
        // Closed before its directory is renamed: RocksDB names its files
        // by the path it was opened at.
        drop(staged);
        self.sync_member_dir()?;
        failpoint::crash_point("restore_before_swap");
        std::fs::rename(&db, &old)?;
        self.sync_member_dir()?;
        failpoint::crash_point("restore_after_set_aside");
        std::fs::rename(&restore, &db)?;
        self.sync_member_dir()?;
        failpoint::crash_point("restore_after_swap");
        std::fs::remove_dir_all(&old)?;
        self.sync_member_dir()?;
        Ok(RocksBackend::open(&db, self.config.clone())?)
    }
}

#[cfg(test)]
pub use mem::MemStorage;

#[cfg(test)]
mod mem {
    use std::sync::Arc;

    use ironcd_backend::{BackendConfig, MemBackend, MemEngine};
    use parking_lot::Mutex;

    use super::Storage;
    use crate::error::Result;

    /// Backends in memory, for unit tests of the applier. A backend is
    /// opened over an engine ([`MemEngine`]), the "disk": clones of a
    /// `MemStorage` share it, so one opened again after the first state is
    /// dropped is a restart that finds what was committed; an install
    /// makes the staged engine the disk.
    #[derive(Clone, Default)]
    pub struct MemStorage {
        disks: Arc<Mutex<Disks>>,
    }

    #[derive(Default)]
    struct Disks {
        current: MemEngine,
        staging: Option<MemEngine>,
    }

    fn open_over(disk: MemEngine) -> Result<MemBackend> {
        Ok(MemBackend::over(disk, BackendConfig::default())?)
    }

    impl Storage<MemBackend> for MemStorage {
        fn open(&self) -> Result<MemBackend> {
            open_over(self.disks.lock().current.clone())
        }

        fn open_staging(&self) -> Result<MemBackend> {
            let disk = MemEngine::default();
            self.disks.lock().staging = Some(disk.clone());
            open_over(disk)
        }

        fn install(&self, staged: MemBackend) -> Result<MemBackend> {
            drop(staged);
            let mut disks = self.disks.lock();
            let staged = disks.staging.take().expect("install follows open_staging");
            disks.current = staged.clone();
            drop(disks);
            open_over(staged)
        }
    }
}
