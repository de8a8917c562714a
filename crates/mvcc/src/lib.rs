//! ironcd's multi-version key-value store (etcd's `mvcc` package).
//!
//! Every write txn gets one main revision; each change in it a sub revision.
//! History lives in the backend's `key` bucket keyed by revision (see
//! [`revision`]); the in-memory [`TreeIndex`] maps each key to its
//! [`KeyIndex`] (generations of revisions), so a range read at any revision
//! finds its revisions without scanning history.
//!
//! * [`Store::read`] — a [`TxnRead`] at the current revision: range with
//!   limit, rev, count-only and keys-only.
//! * [`Store::write`] — a [`TxnWrite`]: puts (with lease ids) and range
//!   deletes under one main revision; published atomically when it drops,
//!   when its events go to the [`Observer`] (the watch layer).
//! * [`Store::compact`] — drops history below a revision in the background,
//!   in batches; crash-safe through `scheduledCompactRev` /
//!   `finishedCompactRev` in the `meta` bucket.
//! * [`Store::hash_by_rev`] — etcd's HashKV.
//!
//! mvcc knows nothing of watchers, leases, raft or gRPC: a lease is just a
//! number stored with the key. Depends on `ironcd-backend` and the
//! `mvccpb` types of `ironcd-proto`.
//!
//! ```
//! use std::sync::Arc;
//! use ironcd_backend::{BackendConfig, MemBackend};
//! use ironcd_mvcc::{RangeOptions, Store, StoreConfig};
//!
//! let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
//! let store = Store::open(backend, StoreConfig::default()).unwrap();
//! {
//!     let mut txn = store.write();
//!     txn.put(b"foo", b"bar", 0);
//! }
//! assert_eq!(store.current_rev(), 2); // an empty store is at revision 1
//! let r = store.range(b"foo", None, RangeOptions::default()).unwrap();
//! assert_eq!(r.kvs[0].value, b"bar");
//! assert_eq!(r.kvs[0].mod_revision, 2);
//! ```

mod codec;
mod compaction;
mod error;
pub mod key_index;
pub mod revision;
pub mod small;
mod store;
pub mod tree_index;

pub use error::{Error, Result};
pub use key_index::{KeyAt, KeyIndex};
pub use revision::{BucketKey, Revision};
pub use store::{
    CompactionWait, KvHash, Observer, RangeOptions, RangeResult, ReadView, Store, StoreConfig,
    TxnRead, TxnWrite, COMPACTION_QUEUE_CAPACITY, FINISHED_COMPACT_KEY, SCHEDULED_COMPACT_KEY,
};
pub use tree_index::TreeIndex;
