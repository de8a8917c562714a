//! The buffering layer shared by every engine: one write txn at a time, its
//! writes published to readers atomically when it ends, and committed to
//! the engine in batches.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::buffer::{get_layered, scan_layered, TxBuffer};
use crate::{Backend, BackendConfig, BatchTx, Bucket, Error, ReadTx, Result, ValueReader, Visitor};

/// Read access to committed engine data (live, or a point-in-time view).
pub trait EngineRead {
    /// Calls `read` with the value of `key` in `bucket`, borrowed; returns
    /// whether the key exists.
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool>;

    /// A copy of the value of `key` in `bucket`.
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::copy_value(|read| self.get_with(bucket, key, read))
    }
    /// Visits `[start, end)` of `bucket` in key order until `visit` breaks;
    /// an empty `end` means the end of the bucket.
    fn scan(&self, bucket: Bucket, start: &[u8], end: &[u8], visit: Visitor<'_>) -> Result<()>;
}

/// A storage engine under the buffering layer.
pub trait Engine: EngineRead + Send + Sync + 'static {
    /// A consistent point-in-time view.
    type View<'a>: EngineRead + Send
    where
        Self: 'a;
    /// Takes a point-in-time view.
    fn view(&self) -> Self::View<'_>;
    /// Applies every entry of `buf` atomically (not necessarily durably).
    fn write(&self, buf: &TxBuffer) -> Result<()>;
    /// Makes every applied write durable.
    fn sync(&self) -> Result<()>;
    /// Bytes occupied.
    fn size_bytes(&self) -> u64;
    /// Bytes of live data.
    fn size_in_use_bytes(&self) -> u64;
    /// Reclaims space online.
    fn defrag(&self) -> Result<()>;
}

struct BatchState {
    /// Writes of the open write txn, published when its guard drops.
    txn: TxBuffer,
    last_commit: Instant,
}

struct Shared<E> {
    engine: E,
    config: BackendConfig,
    /// Writes of finished txns that the engine does not hold yet.
    published: RwLock<TxBuffer>,
    /// Bumped whenever `published` changes; keys the concurrent-read cache.
    version: AtomicU64,
    concurrent_cache: Mutex<(u64, Arc<TxBuffer>)>,
    batch: Mutex<BatchState>,
    /// Set when an engine commit failed: the backend then refuses writes.
    failure: Mutex<Option<String>>,
    stop: Mutex<bool>,
    stop_signal: Condvar,
}

impl<E: Engine> Shared<E> {
    /// Moves published writes into the engine. Callers hold the batch lock,
    /// so `published` cannot change underneath.
    fn commit_locked(&self, state: &mut BatchState) -> Result<()> {
        state.last_commit = Instant::now();
        {
            let published = self.published.read();
            if published.is_empty() {
                return Ok(());
            }
            // Readers keep reading buffer-over-engine while this runs: the
            // engine gains exactly the values the buffer already shows.
            fail::fail_point!("beforeCommit");
            let started = Instant::now();
            let written = self.write_engine(&published);
            crate::metrics::COMMIT_SECONDS.observe_duration(started.elapsed());
            if let Err(e) = written {
                *self.failure.lock() = Some(e.to_string());
                return Err(e);
            }
            fail::fail_point!("afterCommit");
        }
        self.published.write().clear();
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Applies `published` to the engine.
    fn write_engine(&self, published: &TxBuffer) -> Result<()> {
        // The `failpoints` feature's full disk (the robustness suite's): the
        // engine refuses the batch as RocksDB does when its log cannot grow
        // (28 is ENOSPC on Linux and the BSDs).
        fail::fail_point!("backendCommitNoSpace", |_| {
            let no_space = std::io::Error::from_raw_os_error(28);
            Err(Error::Engine(format!("IO error: {no_space}")))
        });
        self.engine.write(published)
    }

    fn check_failure(&self) -> Result<()> {
        match &*self.failure.lock() {
            Some(reason) => Err(Error::Engine(format!("backend failed earlier: {reason}"))),
            None => Ok(()),
        }
    }
}

/// The backend over engine `E`: see the crate docs.
pub struct BufferedBackend<E: Engine> {
    shared: Arc<Shared<E>>,
    committer: Option<JoinHandle<()>>,
}

impl<E: Engine> BufferedBackend<E> {
    /// Wraps `engine`, starting the periodic committer thread.
    pub fn new(engine: E, config: BackendConfig) -> Result<Self> {
        config.validate()?;
        let shared = Arc::new(Shared {
            engine,
            config,
            published: RwLock::new(TxBuffer::default()),
            version: AtomicU64::new(0),
            concurrent_cache: Mutex::new((u64::MAX, Arc::default())),
            batch: Mutex::new(BatchState {
                txn: TxBuffer::default(),
                last_commit: Instant::now(),
            }),
            failure: Mutex::new(None),
            stop: Mutex::new(false),
            stop_signal: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let committer = std::thread::Builder::new()
            .name("backend-commit".into())
            .spawn(move || commit_loop(&for_thread))
            .map_err(crate::Error::Io)?;
        Ok(Self {
            shared,
            committer: Some(committer),
        })
    }

    /// The engine underneath (for engine-specific operations such as
    /// RocksDB properties).
    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// Writes published but not yet committed to the engine.
    pub fn pending_writes(&self) -> u64 {
        self.shared.published.read().writes()
    }
}

fn commit_loop<E: Engine>(shared: &Shared<E>) {
    let interval = Duration::from_millis(shared.config.batch_interval_ms);
    loop {
        {
            let mut stop = shared.stop.lock();
            if *stop {
                return;
            }
            shared.stop_signal.wait_for(&mut stop, interval);
            if *stop {
                return;
            }
        }
        let mut state = shared.batch.lock();
        // A failed commit of `force_commit` (a snapshot, a compaction) ends
        // the member too, within one interval, if no write does first.
        let failed = shared.check_failure();
        if failed.is_ok() && state.last_commit.elapsed() < interval {
            continue;
        }
        if let Err(e) = failed.and_then(|()| shared.commit_locked(&mut state)) {
            fatal_commit_failure(&e);
        }
    }
}

/// etcd's `lg.Fatal("failed to commit tx")`: the writes the engine refused
/// were acknowledged from the buffer and are in raft's log, so the member
/// must stop (`ironcd`'s panic hook aborts) and replay them at restart. A
/// member that went on would serve, and a clean shutdown would exit 0, with
/// the engine behind what it answered.
fn fatal_commit_failure(e: &Error) -> ! {
    tracing::error!(error = %e, "backend commit failed; stopping the member");
    panic!("backend: commit failed: {e}");
}

impl<E: Engine> Drop for BufferedBackend<E> {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.stop_signal.notify_all();
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
        if let Err(e) = self.force_commit() {
            tracing::error!(error = %e, "final backend commit failed");
        }
    }
}

/// The exclusive write transaction of a [`BufferedBackend`].
pub struct BatchTxGuard<'a, E: Engine> {
    shared: &'a Shared<E>,
    state: MutexGuard<'a, BatchState>,
}

impl<E: Engine> ReadTx for BatchTxGuard<'_, E> {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        let published = self.shared.published.read();
        let layers = [&self.state.txn, &*published];
        get_layered(&layers, &self.shared.engine, bucket, key, read)
    }

    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        visit: Visitor<'_>,
    ) -> Result<()> {
        let published = self.shared.published.read();
        let layers = [&self.state.txn, &*published];
        scan_layered(&layers, &self.shared.engine, bucket, start, end, visit)
    }
}

impl<E: Engine> BatchTx for BatchTxGuard<'_, E> {
    fn put(&mut self, bucket: Bucket, key: &[u8], value: &[u8]) {
        self.state.txn.put(bucket, key, value);
    }

    fn delete(&mut self, bucket: Bucket, key: &[u8]) {
        self.state.txn.delete(bucket, key);
    }
}

impl<E: Engine> Drop for BatchTxGuard<'_, E> {
    fn drop(&mut self) {
        if self.state.txn.is_empty() {
            return;
        }
        let pending = {
            let mut published = self.shared.published.write();
            published.absorb(&mut self.state.txn);
            published.writes()
        };
        self.shared.version.fetch_add(1, Ordering::Release);
        if pending >= self.shared.config.batch_limit {
            if let Err(e) = self.shared.commit_locked(&mut self.state) {
                // Like etcd's failed bolt commit: continuing could acknowledge
                // writes that never reach disk.
                panic!("backend: committing a full batch failed: {e}");
            }
        }
    }
}

/// A read transaction: published buffer over the live engine.
pub struct ReadTxGuard<'a, E: Engine> {
    shared: &'a Shared<E>,
    published: RwLockReadGuard<'a, TxBuffer>,
}

impl<E: Engine> ReadTx for ReadTxGuard<'_, E> {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        get_layered(&[&*self.published], &self.shared.engine, bucket, key, read)
    }

    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        visit: Visitor<'_>,
    ) -> Result<()> {
        scan_layered(
            &[&*self.published],
            &self.shared.engine,
            bucket,
            start,
            end,
            visit,
        )
    }
}

/// A point-in-time read view holding no lock.
pub struct ConcurrentReadTxn<'a, E: Engine> {
    published: Arc<TxBuffer>,
    view: E::View<'a>,
}

impl<E: Engine> ReadTx for ConcurrentReadTxn<'_, E> {
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool> {
        get_layered(&[&*self.published], &self.view, bucket, key, read)
    }

    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        visit: Visitor<'_>,
    ) -> Result<()> {
        scan_layered(&[&*self.published], &self.view, bucket, start, end, visit)
    }
}

impl<E: Engine> Backend for BufferedBackend<E> {
    type BatchTx<'a> = BatchTxGuard<'a, E>;
    type ReadTx<'a> = ReadTxGuard<'a, E>;
    type ConcurrentReadTx<'a> = ConcurrentReadTxn<'a, E>;

    fn batch_tx(&self) -> BatchTxGuard<'_, E> {
        if let Err(e) = self.shared.check_failure() {
            panic!("backend: write txn after a failed commit: {e}");
        }
        BatchTxGuard {
            shared: &self.shared,
            state: self.shared.batch.lock(),
        }
    }

    fn read_tx(&self) -> ReadTxGuard<'_, E> {
        ReadTxGuard {
            shared: &self.shared,
            published: self.shared.published.read(),
        }
    }

    fn concurrent_read_tx(&self) -> ConcurrentReadTxn<'_, E> {
        let published = self.shared.published.read();
        let version = self.shared.version.load(Ordering::Acquire);
        let buffer = {
            let mut cache = self.shared.concurrent_cache.lock();
            if cache.0 != version {
                *cache = (version, Arc::new(published.clone()));
            }
            Arc::clone(&cache.1)
        };
        // Taken while `published` is read-locked, so buffer and view agree.
        let view = self.shared.engine.view();
        drop(published);
        ConcurrentReadTxn {
            published: buffer,
            view,
        }
    }

    fn force_commit(&self) -> Result<()> {
        self.shared.check_failure()?;
        let mut state = self.shared.batch.lock();
        self.shared.commit_locked(&mut state)?;
        self.shared.engine.sync()
    }

    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        crate::snapshot::write_stream(&self.concurrent_read_tx(), out)
    }

    fn snapshot_sized(
        &self,
        announce: &mut dyn FnMut(u64) -> Result<()>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let view = self.concurrent_read_tx();
        let len = crate::snapshot::stream_len(&view)?;
        announce(len)?;
        let written = crate::snapshot::write_stream(&view, out)?;
        assert_eq!(
            written, len,
            "a point-in-time view changed between two passes"
        );
        Ok(written)
    }

    fn size_bytes(&self) -> u64 {
        self.shared.engine.size_bytes()
    }

    fn size_in_use_bytes(&self) -> u64 {
        self.shared.engine.size_in_use_bytes()
    }

    fn defrag(&self) -> Result<()> {
        self.force_commit()?;
        // etcd's defrag copies bbolt into a new file and renames it over
        // the old one; an engine's defrag rewrites in place (RocksDB: a
        // full compaction, whose output each compaction installs
        // atomically). Its points sit at the equivalent steps: before the
        // rewrite starts, and once it is done, before defrag answers.
        fail::fail_point!("defragBeforeCopy");
        self.shared.engine.defrag()?;
        fail::fail_point!("defragBeforeRename");
        Ok(())
    }

    fn hash(&self, ignore: &dyn Fn(Bucket, &[u8]) -> bool) -> Result<u32> {
        let view = self.concurrent_read_tx();
        let mut crc = 0u32;
        for bucket in Bucket::all() {
            crc = crc32c::crc32c_append(crc, bucket.name().as_bytes());
            view.scan(bucket, &[], Some(&[]), &mut |k, v| {
                if !ignore(bucket, k) {
                    crc = crc32c::crc32c_append(crc, k);
                    crc = crc32c::crc32c_append(crc, v);
                }
                ControlFlow::Continue(())
            })?;
        }
        Ok(crc)
    }
}
