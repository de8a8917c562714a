//! State shared by the applier and the request handlers: the store (which a
//! follower's snapshot restore may replace), membership, alarms, the
//! applied index, and the waits of proposals in flight.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironcd_api::EtcdError;
use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};
use ironcd_mvcc::{CompactionWait, Store, StoreConfig};
use ironcd_proto::etcdserverpb::{
    AlarmMember, AlarmResponse, CompactionResponse, DeleteRangeResponse, PutResponse, TxnResponse,
};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use prost::Message;
use tokio::sync::{oneshot, watch};

use crate::error::{Error, Result};
use crate::members::Members;

/// The store type the server runs.
pub type KvStore = Store<RocksBackend>;

/// `meta` key of the index of the last applied raft entry.
pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";
/// `meta` key of the term of that entry.
pub const TERM_KEY: &[u8] = b"term";

/// What applying a proposal produced, for the member that proposed it.
pub enum Applied {
    /// A Put.
    Put(PutResponse),
    /// A DeleteRange.
    Delete(DeleteRangeResponse),
    /// A Txn.
    Txn(TxnResponse),
    /// A Compaction, and the wait for its physical part.
    Compact(CompactionResponse, Option<CompactionWait>),
    /// An Alarm change.
    Alarm(AlarmResponse),
    /// A membership record change.
    Done,
}

/// The answer a proposal's wait receives.
pub type Outcome = std::result::Result<Applied, EtcdError>;

/// Shared state; see the module docs.
pub struct State {
    member_dir: PathBuf,
    backend_config: BackendConfig,
    store: RwLock<Option<KvStore>>,
    /// Membership as of the applied index.
    pub members: RwLock<Members>,
    /// Raised alarms.
    pub alarms: RwLock<BTreeSet<(u64, i32)>>,
    /// The applied index; readers wait on it.
    pub applied: watch::Sender<u64>,
    /// The term of the newest applied entry (the header's `raft_term`).
    pub term: AtomicU64,
    /// Proposals in flight, by request id.
    pub waits: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    /// Membership changes raft refused, by log index.
    pub refused: Mutex<HashMap<u64, String>>,
    /// The backend's size on disk as last measured: measuring walks the
    /// database directory, too slow for every write's quota check, so a
    /// task refreshes it (`DB_SIZE_REFRESH_MS`).
    pub db_size_bytes: AtomicU64,
}

/// How often the quota's view of the backend size is refreshed.
pub const DB_SIZE_REFRESH_MS: u64 = 250;

/// Read access to the store; holds off a snapshot restore while alive.
pub struct StoreGuard<'a>(RwLockReadGuard<'a, Option<KvStore>>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = KvStore;
    fn deref(&self) -> &KvStore {
        self.0
            .as_ref()
            .expect("the store is only absent inside a restore")
    }
}

fn db_dir(member_dir: &Path) -> PathBuf {
    member_dir.join("db")
}

fn restore_dir(member_dir: &Path) -> PathBuf {
    member_dir.join("db.restore")
}

/// Finishes or discards a restore a crash interrupted: a complete
/// `db.restore` without `db` was about to be renamed; one beside `db` was
/// never finished.
fn settle_restore(member_dir: &Path) -> Result<()> {
    let (db, restore) = (db_dir(member_dir), restore_dir(member_dir));
    if restore.exists() {
        if db.exists() {
            std::fs::remove_dir_all(&restore)?;
        } else {
            std::fs::rename(&restore, &db)?;
        }
    }
    Ok(())
}

fn read_u64(backend: &RocksBackend, key: &[u8]) -> Result<u64> {
    match backend.read_tx().get(Bucket::META, key)? {
        None => Ok(0),
        Some(v) => Ok(u64::from_be_bytes(v.as_slice().try_into().map_err(
            |_| {
                Error::Corrupt(format!(
                    "meta {:?} is {} bytes",
                    String::from_utf8_lossy(key),
                    v.len()
                ))
            },
        )?)),
    }
}

fn load_alarms(backend: &RocksBackend) -> Result<BTreeSet<(u64, i32)>> {
    let mut out = BTreeSet::new();
    for (k, _) in backend.read_tx().range(Bucket::ALARM, &[], Some(&[]), 0)? {
        let a =
            AlarmMember::decode(k.as_slice()).map_err(|e| Error::Corrupt(format!("alarm: {e}")))?;
        out.insert((a.member_id, a.alarm));
    }
    Ok(out)
}

impl State {
    /// Opens the backend and store under `member_dir`; returns the state and
    /// the consistent index it is at.
    pub fn open(member_dir: &Path, backend_config: BackendConfig) -> Result<(Arc<State>, u64)> {
        std::fs::create_dir_all(member_dir)?;
        settle_restore(member_dir)?;
        let backend = RocksBackend::open(db_dir(member_dir), backend_config.clone())?;
        let consistent_index = read_u64(&backend, CONSISTENT_INDEX_KEY)?;
        let term = read_u64(&backend, TERM_KEY)?;
        let members = Members::load(&backend)?;
        let alarms = load_alarms(&backend)?;
        let store = Store::open(Arc::new(backend), StoreConfig::default())?;
        let state = State {
            member_dir: member_dir.to_path_buf(),
            backend_config,
            store: RwLock::new(Some(store)),
            members: RwLock::new(members),
            alarms: RwLock::new(alarms),
            applied: watch::channel(consistent_index).0,
            term: AtomicU64::new(term),
            waits: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            db_size_bytes: AtomicU64::new(0),
        };
        state.refresh_db_size();
        Ok((Arc::new(state), consistent_index))
    }

    /// The store, for a read or a write.
    pub fn store(&self) -> StoreGuard<'_> {
        StoreGuard(self.store.read())
    }

    /// Measures the backend's size again.
    pub fn refresh_db_size(&self) {
        let size = self.store().backend().size_bytes();
        self.db_size_bytes.store(size, Ordering::Relaxed);
    }

    /// The applied index.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Records that entries up to `index` (of `term`) are applied.
    pub fn set_applied(&self, index: u64, term: u64) {
        self.term.fetch_max(term, Ordering::Relaxed);
        self.applied.send_if_modified(|applied| {
            let moved = index > *applied;
            *applied = (*applied).max(index);
            moved
        });
    }

    /// Resolves the wait of request `id`, if this member proposed it.
    pub fn resolve(&self, id: u64, outcome: Outcome) {
        if let Some(wait) = self.waits.lock().remove(&id) {
            let _ = wait.send(outcome);
        }
    }

    /// The backend as it is now, as one snapshot stream (buffered writes
    /// committed first): `Maintenance.Snapshot` and peers that need a raft
    /// snapshot both send this.
    pub fn backend_snapshot(&self) -> Result<Vec<u8>> {
        let store = self.store();
        let backend = store.backend();
        let mut data = Vec::new();
        backend.force_commit()?;
        backend.snapshot(&mut data)?;
        Ok(data)
    }

    /// Replaces the whole backend with a snapshot stream's contents, then
    /// reloads everything derived from it. Returns the new consistent index.
    pub fn restore(&self, data: &[u8]) -> Result<u64> {
        let restore = restore_dir(&self.member_dir);
        if restore.exists() {
            std::fs::remove_dir_all(&restore)?;
        }
        {
            let fresh = RocksBackend::open(&restore, self.backend_config.clone())?;
            ironcd_backend::restore_snapshot(&fresh, &mut &data[..])?;
        }
        let mut slot = self.store.write();
        drop(slot.take());
        std::fs::remove_dir_all(db_dir(&self.member_dir))?;
        std::fs::rename(&restore, db_dir(&self.member_dir))?;
        let backend = RocksBackend::open(db_dir(&self.member_dir), self.backend_config.clone())?;
        let consistent_index = read_u64(&backend, CONSISTENT_INDEX_KEY)?;
        self.term
            .fetch_max(read_u64(&backend, TERM_KEY)?, Ordering::Relaxed);
        *self.members.write() = Members::load(&backend)?;
        *self.alarms.write() = load_alarms(&backend)?;
        *slot = Some(Store::open(Arc::new(backend), StoreConfig::default())?);
        Ok(consistent_index)
    }
}

/// Writes the consistent index (and its term) into `tx`, the batch that
/// carries the entry's own effects.
pub fn write_consistent_index(tx: &mut impl BatchTx, index: u64, term: u64) {
    tx.put(Bucket::META, CONSISTENT_INDEX_KEY, &index.to_be_bytes());
    tx.put(Bucket::META, TERM_KEY, &term.to_be_bytes());
}

/// Raises or clears an alarm in memory and in `tx`.
pub fn set_alarm(state: &State, tx: &mut impl BatchTx, alarm: AlarmMember, raise: bool) {
    let key = alarm.encode_to_vec();
    let mut alarms = state.alarms.write();
    if raise {
        tx.put(Bucket::ALARM, &key, &[]);
        alarms.insert((alarm.member_id, alarm.alarm));
    } else {
        tx.delete(Bucket::ALARM, &key);
        alarms.remove(&(alarm.member_id, alarm.alarm));
    }
}
