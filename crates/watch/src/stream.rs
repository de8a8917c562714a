//! One client stream's watchers and its channel of responses.

use std::collections::BTreeSet;
use std::sync::Arc;

use ironcd_proto::watch_reply::SharedEvent;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::group::{KeyRange, WatcherKey};
use crate::store::WatchableStore;
use crate::{WatchId, AUTO_WATCH_ID};

/// The watch id a progress notification for the whole stream carries
/// (clientv3's `InvalidWatchID`), as etcd answers a progress request.
pub const PROGRESS_WATCH_ID: WatchId = -1;

/// What the store sends a stream: events of one revision for one watcher,
/// a progress notification, or a cancellation because of compaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchResponse {
    /// The watcher (or [`PROGRESS_WATCH_ID`]).
    pub watch_id: WatchId,
    /// The events, in revision order: those of one revision when the
    /// watcher is synced; of up to 1 000 whole revisions when it catches
    /// up (as etcd batches them); none for progress. Each is shared with
    /// the other watchers it reached.
    pub events: Vec<Arc<SharedEvent>>,
    /// The revision the response speaks for (its header's revision): its
    /// last event's.
    pub revision: i64,
    /// Non-zero: the watcher's history was compacted at this revision and
    /// the watcher is gone.
    pub compact_revision: i64,
}

impl WatchResponse {
    pub(crate) fn events(watch_id: WatchId, revision: i64, events: Vec<Arc<SharedEvent>>) -> Self {
        WatchResponse {
            watch_id,
            events,
            revision,
            compact_revision: 0,
        }
    }

    pub(crate) fn compacted(watch_id: WatchId, compact_revision: i64) -> Self {
        WatchResponse {
            watch_id,
            compact_revision,
            ..WatchResponse::default()
        }
    }

    pub(crate) fn progress(watch_id: WatchId, revision: i64) -> Self {
        WatchResponse {
            watch_id,
            revision,
            ..WatchResponse::default()
        }
    }
}

/// A watcher to create, in etcd's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// The client's id for it, or [`AUTO_WATCH_ID`].
    pub watch_id: WatchId,
    /// The key, or the start of the range.
    pub key: Vec<u8>,
    /// Empty: `key` alone; `[0]`: every key from `key`; else the range's
    /// exclusive end.
    pub range_end: Vec<u8>,
    /// The first revision wanted; 0 is the next one.
    pub start_revision: i64,
    /// Leave out puts.
    pub no_put: bool,
    /// Leave out deletes.
    pub no_delete: bool,
}

/// Why a watcher could not be created or cancelled; the message is etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// `range_end` is not after `key`.
    #[error("mvcc: watcher range is empty")]
    EmptyRange,
    /// The id is in use on this stream.
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId,
    /// No watcher has this id on this stream.
    #[error("mvcc: watcher does not exist")]
    NotExist,
    /// The store holds [`WatchConfig::max_watchers`](crate::WatchConfig).
    #[error("etcdserver: too many watchers")]
    TooMany,
}

struct Ids {
    live: BTreeSet<WatchId>,
    next: WatchId,
}

/// One client stream: its watchers share one bounded channel of
/// responses ([`WatchConfig::stream_buffer`](crate::WatchConfig)).
/// Dropping the stream cancels every watcher on it.
pub struct WatchStream {
    store: Arc<WatchableStore>,
    id: u64,
    tx: mpsc::Sender<WatchResponse>,
    ids: Mutex<Ids>,
}

impl WatchStream {
    /// A new stream on `store` and the receiving end of its responses.
    pub fn new(store: &Arc<WatchableStore>) -> (WatchStream, mpsc::Receiver<WatchResponse>) {
        let (tx, rx) = mpsc::channel(store.config().stream_buffer.max(1));
        let stream = WatchStream {
            store: store.clone(),
            id: store.new_stream_id(),
            tx,
            ids: Mutex::new(Ids {
                live: BTreeSet::new(),
                next: 0,
            }),
        };
        (stream, rx)
    }

    fn key(&self, id: WatchId) -> WatcherKey {
        WatcherKey {
            stream: self.id,
            id,
        }
    }

    /// Creates a watcher; returns its id and the revision the store was
    /// at (the `created` response's header revision).
    pub fn watch(&self, req: WatchRequest) -> Result<(WatchId, i64), WatchError> {
        let range = KeyRange::new(&req.key, &req.range_end).ok_or(WatchError::EmptyRange)?;
        let mut ids = self.ids.lock();
        let id = if req.watch_id == AUTO_WATCH_ID {
            while ids.live.contains(&ids.next) {
                ids.next += 1;
            }
            let id = ids.next;
            ids.next += 1;
            id
        } else if ids.live.contains(&req.watch_id) {
            return Err(WatchError::DuplicateId);
        } else {
            req.watch_id
        };
        let rev = self
            .store
            .watch(
                self.key(id),
                range,
                req.start_revision,
                req.no_put,
                req.no_delete,
                self.tx.clone(),
            )
            .ok_or(WatchError::TooMany)?;
        ids.live.insert(id);
        Ok((id, rev))
    }

    /// Cancels watcher `id`.
    pub fn cancel(&self, id: WatchId) -> Result<(), WatchError> {
        if !self.ids.lock().live.remove(&id) {
            return Err(WatchError::NotExist);
        }
        self.store.cancel(self.key(id));
        Ok(())
    }

    /// The ids of the live watchers.
    pub fn ids(&self) -> Vec<WatchId> {
        self.ids.lock().live.iter().copied().collect()
    }

    /// A progress notification for watcher `id` (empty, at the current
    /// revision), sent only if it is synced: then every event up to that
    /// revision has been sent. Whether one was sent.
    pub fn progress(&self, id: WatchId) -> bool {
        if !self.ids.lock().live.contains(&id) {
            return false;
        }
        self.notify_progress(&[self.key(id)], id)
    }

    /// etcd's answer to a progress request: one notification with
    /// [`PROGRESS_WATCH_ID`] at the current revision, if every watcher of
    /// the stream is synced (if not, none: one comes with their events).
    pub fn progress_all(&self) -> bool {
        let keys: Vec<WatcherKey> = self.ids().into_iter().map(|id| self.key(id)).collect();
        self.notify_progress(&keys, PROGRESS_WATCH_ID)
    }

    fn notify_progress(&self, keys: &[WatcherKey], watch_id: WatchId) -> bool {
        self.store.progress(keys, watch_id, &self.tx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.ids.lock().live) {
            self.store.cancel(self.key(id));
        }
        self.store.stream_closed();
    }
}
