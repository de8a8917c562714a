//! ironcd's storage backend: named buckets of bytes with batched, buffered
//! write transactions — the role bbolt plays under etcd.
//!
//! The backend knows nothing of keys, revisions or leases. It stores byte
//! keys and values in a fixed set of [`Bucket`]s and offers:
//!
//! * a [`BatchTx`] (one at a time, an RAII guard): its writes are buffered
//!   and become visible to every reader *at once* when the guard drops, then
//!   reach the engine in a batch every `batch_interval_ms` or `batch_limit`
//!   writes, whichever comes first;
//! * a [`ReadTx`], which sees every finished write txn (engine plus buffer)
//!   and never half of one;
//! * a concurrent read tx: a point-in-time view that holds no lock, for long
//!   reads;
//! * `force_commit`, a snapshot stream that a fresh backend can be restored
//!   from, sizes, online defragmentation and a hash of the contents.
//!
//! Two engines implement the storage under the buffering: RocksDB (a column
//! family per bucket, [`RocksBackend`]) and an in-memory one ([`MemBackend`])
//! for unit tests of the layers above. [`testkit`] is the conformance suite
//! both must pass.
//!
//! Must not depend on any other ironcd crate.
//!
//! ```
//! use ironcd_backend::{Backend, BackendConfig, Bucket, MemBackend, ReadTx, BatchTx};
//!
//! let backend = MemBackend::open_in_memory(BackendConfig::default());
//! {
//!     let mut tx = backend.batch_tx();
//!     tx.put(Bucket::META, b"consistent_index", &7u64.to_be_bytes());
//! } // dropping the guard publishes the write to readers
//! let value = backend.read_tx().get(Bucket::META, b"consistent_index").unwrap();
//! assert_eq!(value, Some(7u64.to_be_bytes().to_vec()));
//! ```

mod bucket;
mod buffer;
mod buffered;
mod error;
mod mem;
pub mod metrics;
mod rocks;
mod small_key;
mod snapshot;
pub mod testkit;

pub use bucket::Bucket;
pub use buffer::TxBuffer;
pub use buffered::{
    BatchTxGuard, BufferedBackend, ConcurrentReadTxn, Engine, EngineRead, ReadTxGuard,
};
pub use error::{Error, Result};
pub use mem::{MemBackend, MemEngine, MemView};
pub use rocks::{RocksBackend, RocksEngine, RocksView};
pub use small_key::{SmallKey, INLINE_KEY_BYTES};
pub use snapshot::{restore_snapshot, SNAPSHOT_MAGIC};

use std::io::Write;
use std::ops::ControlFlow;

/// Default interval between engine commits of the write buffer.
pub const DEFAULT_BATCH_INTERVAL_MS: u64 = 100;
/// Default number of buffered writes that forces an engine commit.
pub const DEFAULT_BATCH_LIMIT: u64 = 10_000;

/// Tunables of a backend; checked once by [`BackendConfig::validate`].
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// How often buffered writes are committed to the engine (ms, ≥ 1).
    pub batch_interval_ms: u64,
    /// Buffered writes that force a commit before the interval (≥ 1).
    pub batch_limit: u64,
    /// RocksDB block cache size in bytes (ignored by the in-memory engine).
    pub block_cache_bytes: u64,
    /// RocksDB memtable budget across all buckets, in bytes.
    pub write_buffer_bytes: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            batch_interval_ms: DEFAULT_BATCH_INTERVAL_MS,
            batch_limit: DEFAULT_BATCH_LIMIT,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

impl BackendConfig {
    /// Rejects values the backend cannot work with.
    pub fn validate(&self) -> Result<()> {
        if self.batch_interval_ms == 0 {
            return Err(Error::InvalidConfig("batch_interval_ms must be at least 1"));
        }
        if self.batch_limit == 0 {
            return Err(Error::InvalidConfig("batch_limit must be at least 1"));
        }
        if self.write_buffer_bytes < (1 << 20) {
            return Err(Error::InvalidConfig(
                "write_buffer_bytes must be at least 1 MiB",
            ));
        }
        Ok(())
    }
}

/// A callback over `(key, value)` pairs in key order; `Break` stops the scan.
pub type Visitor<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> ControlFlow<()>;

/// Receives a stored value, borrowed from the buffer or the engine.
pub type ValueReader<'a> = &'a mut dyn FnMut(&[u8]);

/// Runs a borrowed read and returns a copy of what it lent.
fn copy_value(get_with: impl FnOnce(ValueReader<'_>) -> Result<bool>) -> Result<Option<Vec<u8>>> {
    let mut out = None;
    get_with(&mut |v| out = Some(v.to_vec()))?;
    Ok(out)
}

/// Reads over buckets. `end == None` reads the single key `start`;
/// otherwise the half-open range `[start, end)`, ascending by key bytes.
pub trait ReadTx {
    /// Calls `read` with the value stored under `key`, without copying it;
    /// returns whether the key exists.
    fn get_with(&self, bucket: Bucket, key: &[u8], read: ValueReader<'_>) -> Result<bool>;

    /// A copy of the value stored under `key`, if any.
    fn get(&self, bucket: Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        copy_value(|read| self.get_with(bucket, key, read))
    }

    /// Calls `visit` for each pair in `[start, end)` in key order until it
    /// breaks. With `end == None`, visits at most the pair at `start`; an
    /// empty `end` (`Some(b"")`) scans to the end of the bucket.
    fn scan(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        visit: Visitor<'_>,
    ) -> Result<()>;

    /// Up to `limit` pairs (0 = no limit) of `[start, end)`, as etcd's
    /// `UnsafeRange`.
    fn range(
        &self,
        bucket: Bucket,
        start: &[u8],
        end: Option<&[u8]>,
        limit: u64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan(bucket, start, end, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            if limit != 0 && out.len() as u64 >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }
}

/// A write transaction. Its own writes are visible to its own reads at once
/// and to everyone else when it ends (the guard drops).
pub trait BatchTx: ReadTx {
    /// Sets `key` to `value`.
    fn put(&mut self, bucket: Bucket, key: &[u8], value: &[u8]);
    /// Removes `key` (a no-op if absent).
    fn delete(&mut self, bucket: Bucket, key: &[u8]);
}

/// The storage boundary every upper layer (mvcc, lease, auth, server) uses.
pub trait Backend: Send + Sync + 'static {
    /// The exclusive write transaction guard.
    type BatchTx<'a>: BatchTx
    where
        Self: 'a;
    /// A read transaction guard over buffer and engine.
    type ReadTx<'a>: ReadTx
    where
        Self: 'a;
    /// A lock-free point-in-time read view.
    type ConcurrentReadTx<'a>: ReadTx + Send
    where
        Self: 'a;

    /// Starts the (single) write transaction; blocks while another is open.
    fn batch_tx(&self) -> Self::BatchTx<'_>;
    /// Starts a read transaction. Keep it short: a writer publishing its
    /// txn waits for open read transactions to end.
    fn read_tx(&self) -> Self::ReadTx<'_>;
    /// A read view that holds no lock: for long reads.
    fn concurrent_read_tx(&self) -> Self::ConcurrentReadTx<'_>;
    /// Commits buffered writes to the engine and makes them durable.
    fn force_commit(&self) -> Result<()>;
    /// Streams a consistent point-in-time copy of every bucket into `out`
    /// (format in the `snapshot` module); returns the bytes written. A
    /// backend can be rebuilt from the stream with [`restore_snapshot`].
    fn snapshot(&self, out: &mut dyn Write) -> Result<u64>;
    /// Like [`snapshot`](Backend::snapshot), but first passes `announce`
    /// the exact length the stream will have (a counting pass over the
    /// same point-in-time view), for senders that state a size before the
    /// data. Nothing is held in memory beyond one record at a time.
    fn snapshot_sized(
        &self,
        announce: &mut dyn FnMut(u64) -> Result<()>,
        out: &mut dyn Write,
    ) -> Result<u64>;
    /// Bytes the backend occupies on disk (or in memory).
    fn size_bytes(&self) -> u64;
    /// Bytes of live data, excluding space reclaimable by defrag.
    fn size_in_use_bytes(&self) -> u64;
    /// Reclaims space online; reads and writes keep flowing.
    fn defrag(&self) -> Result<()>;
    /// CRC-32C over every bucket's name, keys and values, skipping the
    /// `(bucket, key)` pairs that `ignore` returns true for.
    fn hash(&self, ignore: &dyn Fn(Bucket, &[u8]) -> bool) -> Result<u32>;
}
