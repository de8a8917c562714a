//! What `tests/crash.rs` and its child process (`crash_child.rs`) agree on:
//! how the store is opened, the txn layout and how to read the last txn
//! back. Included by both through `#[path]`.

use std::sync::Arc;

use ironcd_backend::{Backend, BackendConfig, Bucket, ReadTx, RocksBackend};
use ironcd_mvcc::{Store, StoreConfig};

/// Txn `i` puts slot `i % SLOTS`.
pub const SLOTS: u64 = 20;

/// Short backend batches and small compaction batches, so kills land
/// between engine commits and inside compactions.
pub fn open(dir: &str) -> Store<RocksBackend> {
    let config = BackendConfig {
        batch_interval_ms: 2,
        batch_limit: 100,
        ..BackendConfig::default()
    };
    let backend = Arc::new(RocksBackend::open(dir, config).expect("open backend"));
    let store_config = StoreConfig {
        compaction_batch_limit: 7,
        ..StoreConfig::default()
    };
    Store::open(backend, store_config).expect("open store")
}

/// The `consistent_index` meta key: the last txn applied (0 for none).
pub fn consistent_index(store: &Store<RocksBackend>) -> u64 {
    store
        .backend()
        .read_tx()
        .get(Bucket::META, b"consistent_index")
        .expect("read")
        .map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
}
