//! What `tests/crash.rs` and its child process (`crash_child.rs`) agree on:
//! the backend's config, the txn layout and how to read the last txn back.
//! Included by both through `#[path]`.

use ironcd_backend::{Backend, BackendConfig, Bucket, ReadTx, RocksBackend};

/// Txn `i` puts slot `i % SLOTS`.
pub const SLOTS: u64 = 50;

/// Short batches, so kills land between engine commits as well as in them.
pub fn config() -> BackendConfig {
    BackendConfig {
        batch_interval_ms: 2,
        batch_limit: 64,
        ..BackendConfig::default()
    }
}

/// The `consistent_index` meta key: the last txn applied (0 for none).
pub fn read_index(b: &RocksBackend) -> u64 {
    b.read_tx()
        .get(Bucket::META, b"consistent_index")
        .expect("read")
        .map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
}
