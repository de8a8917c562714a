//! The multi-version store: read and write txns over the key index and the
//! backend's `key` bucket.

use std::ops::ControlFlow;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use ironcd_backend::{Backend, BatchTx, Bucket, ReadTx};
use ironcd_proto::mvccpb::{event::EventType, Event, KeyValue};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::codec;
use crate::compaction::{self, CompactionJob};
use crate::revision::{BucketKey, Revision};
use crate::tree_index::TreeIndex;
use crate::{Error, Result};

/// `meta` key of the revision a compaction was scheduled at.
pub const SCHEDULED_COMPACT_KEY: &[u8] = b"scheduledCompactRev";
/// `meta` key of the revision the last finished compaction reached.
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";
/// Compactions that may wait behind the running one.
pub const COMPACTION_QUEUE_CAPACITY: usize = 16;

/// Store tunables.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Revisions deleted per backend write txn during compaction (≥ 1).
    pub compaction_batch_limit: u64,
    /// Pause between compaction batches, in milliseconds.
    pub compaction_pause_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            compaction_batch_limit: 1_000,
            compaction_pause_ms: 0,
        }
    }
}

/// Receives the events of every committed write txn, in revision order.
/// Called while the committing txn still holds its place (the notification
/// order and the txn gate): keep it quick, and never open a txn — read or
/// write — on the store from it, or a waiting compaction deadlocks it.
pub trait Observer: Send + Sync {
    /// `events` were committed at main revision `rev`; they are the
    /// observer's to keep.
    fn on_commit(&self, rev: i64, events: Vec<Event>);
}

/// Options of a range read.
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions {
    /// Most key-values to return (0 = no limit); `count` still counts all.
    pub limit: u64,
    /// Revision to read at (0 = current).
    pub rev: i64,
    /// Return only the count.
    pub count_only: bool,
    /// Leave values out.
    pub keys_only: bool,
}

/// What a range read found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeResult {
    /// The key-values, in key order.
    pub kvs: Vec<KeyValue>,
    /// The store's current revision when the read ran.
    pub rev: i64,
    /// How many keys matched in all (ignoring `limit`).
    pub count: u64,
}

impl RangeResult {
    /// True when `limit` cut the result short.
    pub fn more(&self) -> bool {
        self.count > self.kvs.len() as u64
    }
}

/// etcd's HashKV answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// CRC-32C of the `key` bucket up to `hash_rev`.
    pub hash: u32,
    /// The store's current revision.
    pub current_rev: i64,
    /// The store's compaction revision.
    pub compact_rev: i64,
    /// The revision the hash covers.
    pub hash_rev: i64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RevState {
    pub current: i64,
    pub compact: i64,
}

pub(crate) struct Inner<B: Backend> {
    pub backend: Arc<B>,
    pub index: RwLock<TreeIndex>,
    pub revs: RwLock<RevState>,
    /// Txns hold it shared; scheduling a compaction takes it exclusively so
    /// no read that started below the new compaction point is still running.
    pub gate: RwLock<()>,
    /// Held from before a write txn publishes until its observer call ends,
    /// so observers see revisions in order.
    notify: Mutex<()>,
    observer: RwLock<Option<Arc<dyn Observer>>>,
    pub config: StoreConfig,
}

/// The mvcc store (etcd's `store`).
pub struct Store<B: Backend> {
    inner: Arc<Inner<B>>,
    compactor: Option<(SyncSender<CompactionJob>, JoinHandle<()>)>,
}

/// Waits for a scheduled compaction to finish.
pub struct CompactionWait(Receiver<Result<()>>);

impl CompactionWait {
    /// Blocks until the compaction has deleted every compacted revision.
    pub fn wait(self) -> Result<()> {
        self.0.recv().map_err(|_| Error::Closed)?
    }
}

impl<B: Backend> Store<B> {
    /// Opens the store over `backend`, rebuilding the index from the `key`
    /// bucket and resuming a compaction that a crash interrupted.
    pub fn open(backend: Arc<B>, config: StoreConfig) -> Result<Self> {
        if config.compaction_batch_limit == 0 {
            return Err(Error::InvalidConfig(
                "compaction_batch_limit must be at least 1",
            ));
        }
        let (index, revs, resume) = restore(&*backend)?;
        let inner = Arc::new(Inner {
            backend,
            index: RwLock::new(index),
            revs: RwLock::new(revs),
            gate: RwLock::new(()),
            notify: Mutex::new(()),
            observer: RwLock::new(None),
            config,
        });
        let (tx, rx) = sync_channel(COMPACTION_QUEUE_CAPACITY);
        let worker_inner = Arc::clone(&inner);
        let worker = std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || compaction::run_worker(&worker_inner, rx))
            .map_err(|e| Error::Backend(ironcd_backend::Error::Io(e)))?;
        let store = Self {
            inner,
            compactor: Some((tx, worker)),
        };
        if let Some(rev) = resume {
            tracing::info!(rev, "resuming interrupted compaction");
            store.enqueue_compaction(rev)?;
        }
        Ok(store)
    }

    /// Sets who receives committed events (the watch layer).
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        *self.inner.observer.write() = Some(observer);
    }

    /// The backend underneath.
    pub fn backend(&self) -> &Arc<B> {
        &self.inner.backend
    }

    /// The revision of the last committed write txn (1 for an empty store).
    pub fn current_rev(&self) -> i64 {
        self.inner.revs.read().current
    }

    /// The revision of the last scheduled compaction (0 if none).
    pub fn compact_rev(&self) -> i64 {
        self.inner.revs.read().compact
    }

    /// Starts a read txn at the current revision.
    pub fn read(&self) -> TxnRead<'_, B> {
        let gate = self.inner.gate.read();
        let revs = *self.inner.revs.read();
        TxnRead {
            inner: &self.inner,
            _gate: gate,
            revs,
            tx: self.inner.backend.read_tx(),
        }
    }

    /// Starts a write txn; blocks while another one is open.
    pub fn write(&self) -> TxnWrite<'_, B> {
        let gate = self.inner.gate.read();
        let tx = self.inner.backend.batch_tx();
        let begin = self.inner.revs.read().current;
        TxnWrite {
            inner: &self.inner,
            _gate: gate,
            tx: Some(tx),
            begin_rev: begin,
            changes: Vec::new(),
        }
    }

    /// Reads a range in its own read txn.
    pub fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        self.read().range(key, end, opts)
    }

    /// Schedules a compaction at `rev`: reads below it fail from now on, and
    /// the history they needed is deleted in the background.
    pub fn compact(&self, rev: i64) -> Result<CompactionWait> {
        {
            let _exclusive = self.inner.gate.write();
            let mut revs = self.inner.revs.write();
            revs.compact = revs.check(rev, Purpose::Compact)?;
            let mut tx = self.inner.backend.batch_tx();
            tx.put(
                Bucket::META,
                SCHEDULED_COMPACT_KEY,
                &Revision::new(rev, 0).to_bytes(),
            );
        }
        // etcd's points: a crash before the commit loses the schedule with
        // the rest of the uncommitted batch; one after it leaves a
        // compaction that `open` resumes.
        fail::fail_point!("compactBeforeCommitScheduledCompact");
        self.inner.backend.force_commit()?;
        fail::fail_point!("compactAfterCommitScheduledCompact");
        self.enqueue_compaction(rev)
    }

    fn enqueue_compaction(&self, rev: i64) -> Result<CompactionWait> {
        let (done_tx, done_rx) = sync_channel(1);
        let (queue, _) = self.compactor.as_ref().ok_or(Error::Closed)?;
        queue
            .send(CompactionJob { rev, done: done_tx })
            .map_err(|_| Error::Closed)?;
        Ok(CompactionWait(done_rx))
    }

    /// etcd's HashKV: a CRC-32C over the `key` bucket up to `rev` (0 =
    /// current), skipping revisions that compaction is about to delete.
    pub fn hash_by_rev(&self, rev: i64) -> Result<KvHash> {
        let _gate = self.inner.gate.read();
        let revs = *self.inner.revs.read();
        let hash_rev = revs.check(rev, Purpose::Hash)?;
        let keep = self.inner.index.read().keep(revs.compact);
        let tx = self.inner.backend.concurrent_read_tx();
        let upper = Revision::new(hash_rev + 1, 0);
        let lower = Revision::new(revs.compact + 1, 0);
        let mut crc = crc32c::crc32c(Bucket::KEY.name().as_bytes());
        let mut corrupt = None;
        tx.scan(Bucket::KEY, &[], Some(&upper.to_bytes()), &mut |k, v| {
            let Some(bk) = BucketKey::decode(k) else {
                corrupt = Some(k.to_vec());
                return ControlFlow::Break(());
            };
            if bk.rev < lower && !keep.is_empty() && !keep.contains(&bk.rev) {
                return ControlFlow::Continue(());
            }
            // A tombstone at the compaction revision is kept for watchers
            // but, as releases before etcd 3.5.16 deleted it, not hashed.
            if bk.tombstone && bk.rev.main == revs.compact {
                return ControlFlow::Continue(());
            }
            crc = crc32c::crc32c_append(crc, k);
            crc = crc32c::crc32c_append(crc, v);
            ControlFlow::Continue(())
        })?;
        if let Some(k) = corrupt {
            return Err(Error::Corrupt(format!("bad key-bucket key {k:?}")));
        }
        Ok(KvHash {
            hash: crc,
            current_rev: revs.current,
            compact_rev: revs.compact,
            hash_rev,
        })
    }
}

impl<B: Backend> Drop for Store<B> {
    fn drop(&mut self) {
        if let Some((queue, worker)) = self.compactor.take() {
            drop(queue);
            let _ = worker.join();
        }
    }
}

/// Records of the key bucket a restore batch carries.
const RESTORE_BATCH_RECORDS: usize = 4096;
/// Batches in flight between the scanning and the indexing thread.
const RESTORE_QUEUE_BATCHES: usize = 4;

/// One record of the key bucket, decoded for the index; its key is
/// `bytes[key_start..key_end]` of its batch.
struct RestoreRecord {
    key_start: usize,
    key_end: usize,
    rev: Revision,
    tombstone: bool,
    created: i64,
    version: i64,
}

/// Decoded records, their keys packed into one buffer.
#[derive(Default)]
struct RestoreBatch {
    bytes: Vec<u8>,
    records: Vec<RestoreRecord>,
}

impl RestoreBatch {
    fn push(&mut self, k: &[u8], v: &[u8]) -> Result<()> {
        let bk =
            BucketKey::decode(k).ok_or_else(|| Error::Corrupt(format!("key-bucket key {k:?}")))?;
        let fields = codec::decode_key_fields(v)?;
        let key_start = self.bytes.len();
        self.bytes.extend_from_slice(fields.key);
        self.records.push(RestoreRecord {
            key_start,
            key_end: self.bytes.len(),
            rev: bk.rev,
            tombstone: bk.tombstone,
            created: fields.create_revision,
            version: fields.version,
        });
        Ok(())
    }
}

/// Reads the whole key bucket in revision order and sends it on in batches.
fn scan_key_bucket<B: Backend>(backend: &B, out: &SyncSender<RestoreBatch>) -> Result<()> {
    let tx = backend.concurrent_read_tx();
    let mut batch = RestoreBatch::default();
    let mut failure = None;
    tx.scan(Bucket::KEY, &[], Some(&[]), &mut |k, v| {
        if let Err(e) = batch.push(k, v) {
            failure = Some(e);
            return ControlFlow::Break(());
        }
        if batch.records.len() == RESTORE_BATCH_RECORDS
            && out.send(std::mem::take(&mut batch)).is_err()
        {
            return ControlFlow::Break(()); // the indexing side stopped
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if !batch.records.is_empty() {
        let _ = out.send(batch);
    }
    Ok(())
}

/// Rebuilds the index; returns it, the revisions, and a compaction to resume.
///
/// One thread scans and decodes the key bucket (RocksDB iteration and
/// decompression) while this one builds the index, so a restart over a
/// large store uses both halves of the work at once.
fn restore<B: Backend>(backend: &B) -> Result<(TreeIndex, RevState, Option<i64>)> {
    let tx = backend.concurrent_read_tx();
    let meta_rev = |key: &[u8]| -> Result<i64> {
        match tx.get(Bucket::META, key)? {
            None => Ok(0),
            Some(v) => BucketKey::decode(&v)
                .map(|bk| bk.rev.main)
                .ok_or_else(|| Error::Corrupt(format!("meta {}", String::from_utf8_lossy(key)))),
        }
    };
    let finished = meta_rev(FINISHED_COMPACT_KEY)?;
    let scheduled = meta_rev(SCHEDULED_COMPACT_KEY)?;
    drop(tx);
    let mut index = TreeIndex::default();
    let mut current = 1;
    std::thread::scope(|scope| -> Result<()> {
        let (batches, received) = sync_channel::<RestoreBatch>(RESTORE_QUEUE_BATCHES);
        let scanner = std::thread::Builder::new()
            .name("index-restore".into())
            .spawn_scoped(scope, move || scan_key_bucket(backend, &batches))
            .map_err(|e| Error::Backend(ironcd_backend::Error::Io(e)))?;
        for batch in received {
            for r in &batch.records {
                index.restore(
                    &batch.bytes[r.key_start..r.key_end],
                    r.rev,
                    r.tombstone,
                    r.created,
                    r.version,
                );
                current = current.max(r.rev.main);
            }
        }
        scanner
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    let compact = finished.max(scheduled);
    let revs = RevState {
        current: current.max(compact),
        compact,
    };
    // After a finished compaction the backend holds exactly the revisions
    // that compaction keeps, so the rebuilt index needs no trimming; an
    // interrupted one is resumed, which compacts the index too.
    let resume = (scheduled > finished).then_some(scheduled);
    Ok((index, revs, resume))
}

/// What a revision is asked for: the three differ at the edges, as in etcd.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A range read: ≤ 0 means current; the compaction revision itself is
    /// still readable.
    Read,
    /// HashKV: ≤ 0 means current; the compaction revision is refused.
    Hash,
    /// Compaction: must lie above the last compaction, so ≤ 0 is refused.
    Compact,
}

impl RevState {
    /// Resolves `requested` against the window of revisions the store holds.
    fn check(self, requested: i64, purpose: Purpose) -> Result<i64> {
        if requested <= 0 && purpose != Purpose::Compact {
            return Ok(self.current);
        }
        let compacted = match purpose {
            Purpose::Read => requested < self.compact,
            Purpose::Hash | Purpose::Compact => requested <= self.compact,
        };
        if compacted {
            return Err(Error::Compacted {
                requested,
                compacted: self.compact,
            });
        }
        if requested > self.current {
            return Err(Error::FutureRevision {
                requested,
                current: self.current,
            });
        }
        Ok(requested)
    }
}

/// Reads key-values at `at_rev` through any backend read tx.
fn range_at<B: Backend>(
    inner: &Inner<B>,
    tx: &impl ReadTx,
    key: &[u8],
    end: Option<&[u8]>,
    at_rev: i64,
    current_rev: i64,
    opts: RangeOptions,
) -> Result<RangeResult> {
    if opts.count_only {
        let count = inner.index.read().count(key, end, at_rev);
        return Ok(RangeResult {
            kvs: Vec::new(),
            rev: current_rev,
            count,
        });
    }
    let (revs, count) = match end {
        // The common point read: no intermediate list of revisions.
        None => {
            let found = inner.index.read().get(key, at_rev).map(|at| at.modified);
            (found.into_iter().collect(), u64::from(found.is_some()))
        }
        Some(_) => inner.index.read().revisions(key, end, at_rev, opts.limit),
    };
    let mut kvs = Vec::with_capacity(revs.len());
    for rev in revs {
        let mut decoded = None;
        tx.get_with(Bucket::KEY, &rev.to_bytes(), &mut |bytes| {
            decoded = Some(codec::decode(bytes));
        })?;
        let mut kv = decoded.ok_or_else(|| {
            Error::Corrupt(format!("index names revision {rev:?} missing from backend"))
        })??;
        if opts.keys_only {
            kv.value.clear();
        }
        kvs.push(kv);
    }
    Ok(RangeResult {
        kvs,
        rev: current_rev,
        count,
    })
}

/// What both kinds of txn read through (etcd's `ReadView`): a read txn's
/// fixed view, or a write txn's, which sees its own changes. Code that only
/// reads takes `&dyn ReadView` and serves both.
pub trait ReadView {
    /// The revision reads see by default.
    fn rev(&self) -> i64;
    /// Range read: `end == None` reads `key` alone; an empty `end` reads
    /// every key ≥ `key`; otherwise `[key, end)`.
    fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult>;
}

impl<B: Backend> ReadView for TxnRead<'_, B> {
    fn rev(&self) -> i64 {
        TxnRead::rev(self)
    }
    fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        TxnRead::range(self, key, end, opts)
    }
}

impl<B: Backend> ReadView for TxnWrite<'_, B> {
    fn rev(&self) -> i64 {
        TxnWrite::rev(self)
    }
    fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        TxnWrite::range(self, key, end, opts)
    }
}

/// A read txn: a fixed view at the revision current when it started.
pub struct TxnRead<'a, B: Backend> {
    inner: &'a Inner<B>,
    _gate: RwLockReadGuard<'a, ()>,
    revs: RevState,
    tx: B::ReadTx<'a>,
}

impl<B: Backend> TxnRead<'_, B> {
    /// The revision this txn reads at by default.
    pub fn rev(&self) -> i64 {
        self.revs.current
    }

    /// The compaction revision when the txn started.
    pub fn compact_rev(&self) -> i64 {
        self.revs.compact
    }

    /// Range read: `end == None` reads `key` alone; an empty `end` reads
    /// every key ≥ `key`; otherwise `[key, end)`.
    pub fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        let at = self.revs.check(opts.rev, Purpose::Read)?;
        range_at(self.inner, &self.tx, key, end, at, self.revs.current, opts)
    }

    /// The events of main revisions `from..=to` (capped at this txn's
    /// revision), in revision order, as the write txns reported them
    /// (without `prev_kv`): what a watcher that fell behind replays. Stops
    /// after the revision during which the events reached `max_events`
    /// (a revision is never split); returns the events and the last
    /// revision read in full. `from` below the compaction revision is
    /// [`Error::Compacted`]: that history is gone.
    pub fn events(&self, from: i64, to: i64, max_events: usize) -> Result<(Vec<Event>, i64)> {
        if from < self.revs.compact {
            return Err(Error::Compacted {
                requested: from,
                compacted: self.revs.compact,
            });
        }
        let to = to.min(self.revs.current);
        let mut events: Vec<Event> = Vec::new();
        if from > to {
            return Ok((events, to));
        }
        let start = Revision::new(from, 0).to_bytes();
        let end = Revision::new(to + 1, 0).to_bytes();
        let mut last = to;
        let mut failure = None;
        self.tx.scan(Bucket::KEY, &start, Some(&end), &mut |k, v| {
            let Some(bk) = BucketKey::decode(k) else {
                failure = Some(Error::Corrupt(format!("bad key-bucket key {k:?}")));
                return ControlFlow::Break(());
            };
            if events.len() >= max_events.max(1)
                && events
                    .last()
                    .and_then(|e| e.kv.as_ref())
                    .map(|kv| kv.mod_revision)
                    != Some(bk.rev.main)
            {
                last = bk.rev.main - 1;
                return ControlFlow::Break(());
            }
            let mut kv = match codec::decode(v) {
                Ok(kv) => kv,
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            };
            let r#type = if bk.tombstone {
                // A tombstone stores the key alone; its event carries the
                // key and the deleting revision, as a live delete's does.
                kv = KeyValue {
                    key: kv.key,
                    mod_revision: bk.rev.main,
                    ..KeyValue::default()
                };
                EventType::Delete
            } else {
                EventType::Put
            };
            events.push(Event {
                r#type: r#type as i32,
                kv: Some(kv),
                prev_kv: None,
            });
            ControlFlow::Continue(())
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok((events, last)),
        }
    }
}

/// A write txn: every change takes the same main revision (`rev()`); the
/// changes become visible, and reach the observer, when it drops.
pub struct TxnWrite<'a, B: Backend> {
    inner: &'a Inner<B>,
    _gate: RwLockReadGuard<'a, ()>,
    tx: Option<B::BatchTx<'a>>,
    begin_rev: i64,
    changes: Vec<Event>,
}

impl<'a, B: Backend> TxnWrite<'a, B> {
    fn tx(&mut self) -> &mut B::BatchTx<'a> {
        self.tx.as_mut().expect("batch tx lives until drop")
    }

    /// The revision reads inside this txn see: its own changes included.
    pub fn rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    /// Range read that sees this txn's own changes.
    pub fn range(&self, key: &[u8], end: Option<&[u8]>, opts: RangeOptions) -> Result<RangeResult> {
        let revs = RevState {
            current: self.rev(),
            compact: self.inner.revs.read().compact,
        };
        let at = revs.check(opts.rev, Purpose::Read)?;
        let tx = self.tx.as_ref().expect("batch tx lives until drop");
        range_at(self.inner, tx, key, end, at, revs.current, opts)
    }

    /// Puts `key = value` with `lease` (0 = none).
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) {
        let rev = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
        let prior = self.inner.index.write().put(key, rev);
        let (create_revision, version) = match prior {
            Some(at) => (at.created, at.version + 1),
            None => (rev.main, 1),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev.main,
            version,
            value: value.to_vec(),
            lease,
        };
        self.tx()
            .put(Bucket::KEY, &rev.to_bytes(), &codec::encode(&kv));
        self.changes.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        });
    }

    /// Deletes every live key in the range (same bounds as
    /// [`TxnRead::range`]); returns how many.
    pub fn delete_range(&mut self, key: &[u8], end: Option<&[u8]>) -> u64 {
        let keys = self.inner.index.read().live_keys(key, end, self.rev());
        for k in &keys {
            self.delete(k);
        }
        keys.len() as u64
    }

    fn delete(&mut self, key: &[u8]) {
        let rev = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
        let stored = KeyValue {
            key: key.to_vec(),
            ..KeyValue::default()
        };
        self.tx().put(
            Bucket::KEY,
            &rev.to_tombstone_bytes(),
            &codec::encode(&stored),
        );
        let live = self.inner.index.write().tombstone(key, rev);
        assert!(live, "deleting key {key:?} that the index listed as live");
        self.changes.push(Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                mod_revision: rev.main,
                ..stored
            }),
            prev_kv: None,
        });
    }

    /// The events of this txn so far.
    pub fn changes(&self) -> &[Event] {
        &self.changes
    }

    /// The backend write txn underneath, for state that must commit
    /// atomically with this txn (the server's `consistent_index`). Writing
    /// the `key` bucket through it corrupts the store.
    pub fn backend_tx(&mut self) -> &mut B::BatchTx<'a> {
        self.tx()
    }
}

impl<B: Backend> Drop for TxnWrite<'_, B> {
    fn drop(&mut self) {
        let tx = self.tx.take();
        if self.changes.is_empty() {
            drop(tx);
            return;
        }
        let _order = self.inner.notify.lock();
        let rev = self.begin_rev + 1;
        {
            let mut revs = self.inner.revs.write();
            revs.current = rev;
            // Publish while readers cannot yet learn the new revision.
            drop(tx);
        }
        if let Some(observer) = self.inner.observer.read().clone() {
            observer.on_commit(rev, std::mem::take(&mut self.changes));
        }
    }
}
