//! ironcd-watch: etcd's watchable store over the mvcc store's history.
//!
//! The mvcc store knows nothing of watchers: it reports the events of each
//! committed write txn, in revision order, to its observer, which is a
//! [`WatchableStore`] here, and it lets the past be read back
//! ([`History`]). Watchers live in one of three groups, as in etcd:
//!
//! * **synced**: caught up with the store. Each committed txn's events are
//!   matched against them when it ends — single-key watchers through a
//!   hash map, range watchers through an interval tree of half-open key
//!   ranges (an empty range end, "every key from `key`", is unbounded;
//!   each subtree keeps its largest end, so a key visits only the ranges
//!   that can hold it) — and sent at once, or, inside a batch
//!   ([`WatchableStore::begin_batch`]), together with the batch's others
//!   at its end.
//! * **unsynced**: starting behind the current revision (a historical
//!   start, or back from being a victim, or after the store was replaced by
//!   a snapshot install). A background loop, every
//!   [`SYNC_INTERVAL`] and at once when a watcher is added, reads the
//!   history from the group's lowest next revision in bounded batches,
//!   delivers, and moves caught-up watchers to synced. A watcher whose next
//!   revision was compacted away is cancelled with the compaction revision.
//! * **victim**: watchers whose stream's buffer was full when a response
//!   was due. The response is kept, retried by the same loop, then the
//!   watcher catches up through unsynced: nothing is dropped, reordered or
//!   sent twice, and a writer never waits for a slow reader.
//!
//! [`WatchStream`] is one client stream's view: watchers with ids (chosen
//! or assigned), cancel, progress, and one bounded channel of responses.
//!
//! `prev_kv` is not looked up while matching (that runs inside the
//! store's commit); the server reads it from the history when it sends a
//! response ([`WatchableStore::prev_kv`]).

mod group;
mod history;
mod interval;
mod store;
mod stream;

pub use history::{History, HistoryError};
pub use store::{WatchConfig, WatchableStore, SYNC_INTERVAL};
pub use stream::{WatchError, WatchRequest, WatchResponse, WatchStream, PROGRESS_WATCH_ID};

/// A watcher's id within its stream.
pub type WatchId = i64;

/// The id a client sends to have the server choose one (clientv3's
/// `AutoWatchID`).
pub const AUTO_WATCH_ID: WatchId = 0;
