//! State shared by the applier and the request handlers: the store (which a
//! follower's snapshot restore may replace), membership, alarms, the
//! applied index, and the waits of proposals in flight.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironcd_api::EtcdError;
use ironcd_backend::{Backend, BackendConfig, BatchTx, Bucket, ReadTx, RocksBackend};
use ironcd_lease::Lessor;
use ironcd_mvcc::{CompactionWait, Observer, Store, StoreConfig};
use ironcd_proto::etcdserverpb::{
    AlarmMember, AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseCheckpointResponse,
    LeaseGrantResponse, LeaseRevokeResponse, PutResponse, TxnResponse,
};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use prost::Message;
use tokio::sync::{oneshot, watch};

use crate::error::{Error, Result};
use crate::members::Members;
use crate::storage::{RocksStorage, Storage};

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
    /// A LeaseGrant.
    LeaseGrant(LeaseGrantResponse),
    /// A LeaseRevoke.
    LeaseRevoke(LeaseRevokeResponse),
    /// A LeaseCheckpoint.
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// A membership record change.
    Done,
}

/// The answer a proposal's wait receives.
pub type Outcome = std::result::Result<Applied, EtcdError>;

/// A response one kind of proposal yields: `EtcdServer::propose_as::<T>`
/// takes it out of what the applier sent.
pub trait AppliedAs: Sized {
    /// `Some` when `applied` is this kind's.
    fn from_applied(applied: Applied) -> Option<Self>;
}

macro_rules! applied_as {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl AppliedAs for $ty {
            fn from_applied(applied: Applied) -> Option<Self> {
                match applied {
                    Applied::$variant(response) => Some(response),
                    _ => None,
                }
            }
        }
    )*};
}

applied_as!(
    PutResponse => Put,
    DeleteRangeResponse => Delete,
    TxnResponse => Txn,
    AlarmResponse => Alarm,
    LeaseGrantResponse => LeaseGrant,
    LeaseRevokeResponse => LeaseRevoke,
    LeaseCheckpointResponse => LeaseCheckpoint,
);

impl AppliedAs for (CompactionResponse, Option<CompactionWait>) {
    fn from_applied(applied: Applied) -> Option<Self> {
        match applied {
            Applied::Compact(response, wait) => Some((response, wait)),
            _ => None,
        }
    }
}

impl AppliedAs for () {
    fn from_applied(applied: Applied) -> Option<Self> {
        matches!(applied, Applied::Done).then_some(())
    }
}

/// Who follows the store: the events of its write txns, and its
/// replacement by a snapshot install (the watch layer's watchers then
/// resume against the new store).
pub trait StoreObserver: Observer {
    /// The store was replaced; the new one is in place.
    fn store_replaced(&self);
    /// The commits until [`Self::end_batch`] are one batch: they may be
    /// reported together at its end.
    fn begin_batch(&self);
    /// The batch [`Self::begin_batch`] opened is over.
    fn end_batch(&self);
}

impl StoreObserver for ironcd_watch::WatchableStore {
    fn store_replaced(&self) {
        self.resync_all();
    }
    fn begin_batch(&self) {
        ironcd_watch::WatchableStore::begin_batch(self);
    }
    fn end_batch(&self) {
        ironcd_watch::WatchableStore::end_batch(self);
    }
}

/// Shared state; see the module docs. `B` is the backend it runs on
/// (RocksDB in the server, memory in the applier's unit tests).
pub struct State<B: Backend = RocksBackend> {
    storage: Box<dyn Storage<B>>,
    store: RwLock<Option<Store<B>>>,
    /// Membership as of the applied index.
    pub members: RwLock<Members>,
    /// Raised alarms.
    pub alarms: RwLock<BTreeSet<(u64, i32)>>,
    /// Leases and their keys, as of the applied index.
    pub lessor: Arc<Lessor>,
    /// The applied index; readers wait on it.
    pub applied: watch::Sender<u64>,
    /// The term of the newest applied entry (the header's `raft_term`).
    pub term: AtomicU64,
    /// Proposals in flight, by request id.
    pub waits: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    /// Membership changes raft refused, by log index.
    pub refused: Mutex<HashMap<u64, String>>,
    /// The observer of the store's write txns (the watch layer's), kept
    /// here so that the store a snapshot install opens gets it too.
    observer: RwLock<Option<Arc<dyn StoreObserver>>>,
    /// The backend's size on disk as last measured: measuring walks the
    /// database directory, too slow for every write's quota check, so a
    /// task refreshes it (`DB_SIZE_REFRESH_MS`).
    pub db_size_bytes: AtomicU64,
}

/// How far behind the applied index a refused membership change is still
/// remembered, in entries. Its proposer looks it up as soon as the entry is
/// applied; on every other member nobody ever does, so older ones go.
pub const REFUSED_RETAIN_ENTRIES: u64 = 1024;

/// How often the quota's view of the backend size is refreshed.
pub const DB_SIZE_REFRESH_MS: u64 = 250;

/// Read access to the store; holds off a snapshot restore while alive.
pub struct StoreGuard<'a, B: Backend = RocksBackend>(RwLockReadGuard<'a, Option<Store<B>>>);

impl<B: Backend> std::ops::Deref for StoreGuard<'_, B> {
    type Target = Store<B>;
    fn deref(&self) -> &Store<B> {
        self.0
            .as_ref()
            .expect("the store is only absent inside a restore")
    }
}

fn read_u64<B: Backend>(backend: &B, key: &[u8]) -> Result<u64> {
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

/// The raised alarms as the `alarm` bucket holds them.
fn recover_alarms<B: Backend>(backend: &B) -> Result<BTreeSet<(u64, i32)>> {
    let mut out = BTreeSet::new();
    for (k, _) in backend.read_tx().range(Bucket::ALARM, &[], Some(&[]), 0)? {
        let a =
            AlarmMember::decode(k.as_slice()).map_err(|e| Error::Corrupt(format!("alarm: {e}")))?;
        out.insert((a.member_id, a.alarm));
    }
    Ok(out)
}

/// Everything the state derives from a backend. A start and a snapshot
/// install both build it the same way, each component recovering itself
/// from the backend (etcd's `kv.Restore`, `cluster.Recover`, the alarm
/// store's restore; the lessor through [`recover_leases`]; the auth store
/// joins here).
struct Recovered<B: Backend> {
    consistent_index: u64,
    term: u64,
    members: Members,
    alarms: BTreeSet<(u64, i32)>,
    store: Store<B>,
}

impl<B: Backend> Recovered<B> {
    fn from_backend(backend: B) -> Result<Recovered<B>> {
        Ok(Recovered {
            consistent_index: read_u64(&backend, CONSISTENT_INDEX_KEY)?,
            term: read_u64(&backend, TERM_KEY)?,
            members: Members::recover(&backend)?,
            alarms: recover_alarms(&backend)?,
            store: Store::open(Arc::new(backend), StoreConfig::default())?,
        })
    }
}

/// Loads `lessor` from the `lease` bucket, then attaches every live key
/// that names a lease to it (the store holds the attachments; etcd's mvcc
/// restore does the same).
fn recover_leases<B: Backend>(lessor: &Lessor, store: &Store<B>) -> Result<()> {
    lessor
        .recover(&store.backend().read_tx())
        .map_err(|e| Error::Corrupt(format!("lease bucket: {e}")))?;
    if lessor.is_empty() {
        // No lease, so no key names one: a start need not read the store.
        return Ok(());
    }
    // In batches, so that a large store is not read into memory at once.
    let opts = ironcd_mvcc::RangeOptions {
        limit: RECOVER_LEASES_BATCH_KEYS,
        ..ironcd_mvcc::RangeOptions::default()
    };
    let mut from = Vec::new();
    loop {
        let batch = store.range(&from, Some(&[]), opts)?;
        for kv in batch
            .kvs
            .iter()
            .filter(|kv| kv.lease != ironcd_lease::NO_LEASE)
        {
            if !lessor.exists(kv.lease) {
                return Err(Error::Corrupt(format!(
                    "key {:?} is bound to lease {:x}, which the lease bucket does not hold",
                    String::from_utf8_lossy(&kv.key),
                    kv.lease
                )));
            }
            lessor.attach_key(&kv.key, kv.lease);
        }
        match batch.kvs.last() {
            Some(last) if batch.more() => {
                from = last.key.clone();
                from.push(0);
            }
            _ => return Ok(()),
        }
    }
}

/// Keys read at a time when the lessor's attachments are rebuilt.
pub const RECOVER_LEASES_BATCH_KEYS: u64 = 10_000;

impl State {
    /// Opens the backend and store under `member_dir` (RocksDB) with
    /// `lessor`; returns the state and the consistent index it is at.
    pub fn open(
        member_dir: &Path,
        backend_config: BackendConfig,
        lessor: Lessor,
    ) -> Result<(Arc<State>, u64)> {
        State::with_storage(
            Box::new(RocksStorage::new(member_dir, backend_config)?),
            lessor,
        )
    }
}

impl<B: Backend> State<B> {
    /// Opens the backend `storage` holds and the store over it; returns the
    /// state and the consistent index it is at.
    pub fn with_storage(
        storage: Box<dyn Storage<B>>,
        lessor: Lessor,
    ) -> Result<(Arc<State<B>>, u64)> {
        let recovered = Recovered::from_backend(storage.open()?)?;
        recover_leases(&lessor, &recovered.store)?;
        let consistent_index = recovered.consistent_index;
        let state = State {
            storage,
            store: RwLock::new(Some(recovered.store)),
            members: RwLock::new(recovered.members),
            alarms: RwLock::new(recovered.alarms),
            lessor: Arc::new(lessor),
            applied: watch::channel(consistent_index).0,
            term: AtomicU64::new(recovered.term),
            waits: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            observer: RwLock::new(None),
            db_size_bytes: AtomicU64::new(0),
        };
        state.refresh_db_size();
        Ok((Arc::new(state), consistent_index))
    }

    /// Sends the events of every write txn to `observer` from now on, on
    /// this store and on any a snapshot install replaces it with (and
    /// tells it of each replacement).
    pub fn set_observer(&self, observer: Arc<dyn StoreObserver>) {
        let store = self.store();
        *self.observer.write() = Some(observer.clone());
        store.set_observer(observer);
    }

    /// Runs `apply`, the writes of one batch of raft entries, with the
    /// observer told they are one batch: watchers then hear of the whole
    /// batch at its end, each stream woken once for it.
    pub fn batch_commits<R>(&self, apply: impl FnOnce() -> R) -> R {
        let observer = self.observer.read().clone();
        if let Some(observer) = &observer {
            observer.begin_batch();
        }
        let applied = apply();
        if let Some(observer) = &observer {
            observer.end_batch();
        }
        applied
    }

    /// The store, for a read or a write.
    pub fn store(&self) -> StoreGuard<'_, B> {
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

    /// Remembers that raft refused the membership change at `index`, and
    /// forgets those more than [`REFUSED_RETAIN_ENTRIES`] behind it.
    pub fn record_refused(&self, index: u64, reason: String) {
        let mut refused = self.refused.lock();
        refused.retain(|&i, _| i + REFUSED_RETAIN_ENTRIES > index);
        refused.insert(index, reason);
    }

    /// Resolves the wait of request `id`, if this member proposed it.
    pub fn resolve(&self, id: u64, outcome: Outcome) {
        if let Some(wait) = self.waits.lock().remove(&id) {
            let _ = wait.send(outcome);
        }
    }

    /// Writes the backend as it is now, as one snapshot stream (buffered
    /// writes committed first), into `out` as it reads it: `Maintenance.
    /// Snapshot` and peers that need a raft snapshot both send this.
    /// `announce` learns the stream's exact length before any data.
    pub fn write_backend_snapshot(
        &self,
        announce: &mut dyn FnMut(u64) -> ironcd_backend::Result<()>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let store = self.store();
        let backend = store.backend();
        backend.force_commit()?;
        Ok(backend.snapshot_sized(announce, out)?)
    }

    /// Replaces the whole backend with the snapshot stream in `file` (a
    /// leader's data, received under `snap/`), then reloads everything
    /// derived from it. Returns the new consistent index.
    ///
    /// The stream is restored into a staging backend and made durable
    /// while reads go on; then the store is closed and the storage swaps
    /// the staged backend in, so that a crash at any point leaves one
    /// complete database for the next start ([`Storage::install`]).
    pub fn restore_from(&self, file: &Path) -> Result<u64> {
        let fresh = self.storage.open_staging()?;
        let mut input = std::io::BufReader::new(std::fs::File::open(file)?);
        // Force-committed (fsynced) before it returns.
        ironcd_backend::restore_snapshot(&fresh, &mut input)?;
        let mut slot = self.store.write();
        drop(slot.take());
        let recovered = Recovered::from_backend(self.storage.install(fresh)?)?;
        recover_leases(&self.lessor, &recovered.store)?;
        self.term.fetch_max(recovered.term, Ordering::Relaxed);
        *self.members.write() = recovered.members;
        *self.alarms.write() = recovered.alarms;
        let observer = self.observer.read().clone();
        if let Some(observer) = &observer {
            recovered.store.set_observer(observer.clone());
        }
        *slot = Some(recovered.store);
        drop(slot);
        if let Some(observer) = observer {
            observer.store_replaced();
        }
        self.refresh_db_size();
        Ok(recovered.consistent_index)
    }
}

/// Writes the consistent index (and its term) into `tx`, the batch that
/// carries the entry's own effects.
pub fn write_consistent_index(tx: &mut impl BatchTx, index: u64, term: u64) {
    tx.put(Bucket::META, CONSISTENT_INDEX_KEY, &index.to_be_bytes());
    tx.put(Bucket::META, TERM_KEY, &term.to_be_bytes());
}

/// Raises or clears an alarm in memory and in `tx`.
pub fn set_alarm<B: Backend>(
    state: &State<B>,
    tx: &mut impl BatchTx,
    alarm: AlarmMember,
    raise: bool,
) {
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
