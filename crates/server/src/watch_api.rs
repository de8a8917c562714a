//! The Watch service over this member's watchable store: the store's
//! history read through the state (a snapshot install replaces the store
//! underneath), and each client stream a `WatchStream`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ironcd_api::{ApiResult, RequestContext, WatchApi, WatchEvents, WatchSession};
use ironcd_proto::etcdserverpb::{
    watch_create_request::FilterType, ResponseHeader, WatchCreateRequest,
};
use ironcd_proto::mvccpb::{Event, KeyValue};
use ironcd_watch::{
    History, HistoryError, WatchRequest, WatchResponse, WatchStream, WatchableStore,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::server::EtcdServer;
use crate::state::State;

/// The history of whichever store the state holds now. Weak: the state
/// holds the watchable store (as its observer), which holds this.
pub struct StateHistory(pub Weak<State>);

impl History for StateHistory {
    fn current_rev(&self) -> i64 {
        self.0.upgrade().map_or(0, |s| s.store().current_rev())
    }

    fn events(
        &self,
        from: i64,
        to: i64,
        max_events: usize,
    ) -> Result<(Vec<Event>, i64), HistoryError> {
        let state = self
            .0
            .upgrade()
            .ok_or_else(|| HistoryError::Failed("the server is stopping".into()))?;
        let store = state.store();
        History::events(&*store, from, to, max_events)
    }

    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let state = self.0.upgrade()?;
        let store = state.store();
        History::kv_at(&*store, key, rev)
    }
}

/// One client stream's watchers.
pub struct Session {
    stream: WatchStream,
    watchable: Arc<WatchableStore>,
}

impl WatchSession for Session {
    fn create(&self, r: &WatchCreateRequest) -> Result<(i64, i64), String> {
        let has = |f: FilterType| r.filters.contains(&(f as i32));
        self.stream
            .watch(WatchRequest {
                watch_id: r.watch_id,
                key: r.key.clone(),
                range_end: r.range_end.clone(),
                start_revision: r.start_revision,
                no_put: has(FilterType::Noput),
                no_delete: has(FilterType::Nodelete),
            })
            .map_err(|e| e.to_string())
    }

    fn cancel(&self, id: i64) -> bool {
        self.stream.cancel(id).is_ok()
    }

    fn progress(&self, id: i64) -> bool {
        self.stream.progress(id)
    }

    fn progress_all(&self) -> bool {
        self.stream.progress_all()
    }

    fn current_rev(&self) -> i64 {
        self.watchable.current_rev()
    }

    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        self.watchable.kv_at(key, rev)
    }
}

fn to_events(r: WatchResponse) -> WatchEvents {
    WatchEvents {
        watch_id: r.watch_id,
        events: r.events,
        revision: r.revision,
        compact_revision: r.compact_revision,
    }
}

/// What a stream is sent, as the service reads it.
#[cfg(not(feature = "failpoints"))]
pub type Events =
    tokio_stream::adapters::Map<ReceiverStream<WatchResponse>, fn(WatchResponse) -> WatchEvents>;

/// What a stream is sent, as the service reads it: each response passes
/// `beforeSendWatchResponse` first (etcd's point in its `sendLoop`), so a
/// stalled point stalls this stream only and its channel fills, as a slow
/// client's does.
#[cfg(feature = "failpoints")]
pub type Events = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = WatchEvents> + Send>>;

#[cfg(not(feature = "failpoints"))]
fn events(responses: ReceiverStream<WatchResponse>) -> Events {
    responses.map(to_events as fn(WatchResponse) -> WatchEvents)
}

#[cfg(feature = "failpoints")]
fn events(responses: ReceiverStream<WatchResponse>) -> Events {
    Box::pin(responses.then(|response| async move {
        crate::failpoint::async_point("beforeSendWatchResponse").await;
        to_events(response)
    }))
}

impl WatchApi for EtcdServer {
    type Session = Session;
    type Events = Events;

    fn open_watch(&self, _ctx: &RequestContext) -> ApiResult<(Session, Events)> {
        let watchable = self.inner.watchable.clone();
        let (stream, rx) = WatchStream::new(&watchable);
        let events = events(ReceiverStream::new(rx));
        Ok((Session { stream, watchable }, events))
    }

    fn watch_header(&self, revision: i64) -> ResponseHeader {
        self.header(revision).unwrap_or_default()
    }

    fn watch_progress_interval(&self) -> Duration {
        Duration::from_millis(self.inner.cfg.watch_progress_notify_interval_ms.max(1))
    }

    async fn has_leader(&self) -> bool {
        self.leader().await != 0
    }
}
