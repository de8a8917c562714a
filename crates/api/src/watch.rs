//! The Watch service: one state machine per client stream that takes the
//! client's create, cancel and progress requests, and sends the server's
//! watch events with `prev_kv`, fragments and progress notifications, as
//! etcd's `serverWatchStream` does.
//!
//! The machine is the response stream itself, run by whichever task polls
//! it (hyper's for the HTTP/2 stream): the watchable store's send wakes
//! that task directly, with no task and channel of its own in between. A
//! client that stops reading stops the polling, so the store's channel to
//! the stream fills and its watchers become victims, as before.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ironcd_proto::etcdserverpb::watch_request::RequestUnion;
use ironcd_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use ironcd_proto::mvccpb::{event::EventType, Event};
use ironcd_proto::watch_reply::WatchReply;
use prost::Message;
use tokio::time::Interval;
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

use crate::traits::{WatchApi, WatchEvents, WatchSession};
use crate::EtcdError;

/// The id etcd answers with when a watcher could not be created, and puts
/// on progress notifications for the whole stream (clientv3's
/// `InvalidWatchID`).
pub const INVALID_WATCH_ID: i64 = -1;

/// How often a progress request that found watchers still catching up is
/// tried again.
const PROGRESS_RETRY: Duration = Duration::from_millis(100);

/// How often a stream with `hasleader` checks that its member still knows a
/// leader.
pub(crate) const LEADER_CHECK: Duration = Duration::from_millis(500);

/// What the service hands tonic: a watcher's events go out in their
/// shared encoding ([`WatchReply::Shared`]), everything else as a message.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchReply, Status>> + Send>>;

/// Per-watcher options the stream keeps (the store does not need them).
#[derive(Default)]
struct Options {
    prev_kv: bool,
    fragment: bool,
    /// `progress_notify`: `Some(sent_events_since_last_tick)`.
    progress: Option<bool>,
}

struct ServerStream<S: WatchApi> {
    server: Arc<S>,
    session: S::Session,
    events: S::Events,
    requests: Streaming<WatchRequest>,
    require_leader: bool,
    progress: Interval,
    retry: Interval,
    leader: Interval,
    /// Responses of the last step, handed out before the next step runs:
    /// one step makes at most one request's answer or one batch's
    /// fragments.
    out: VecDeque<Result<WatchReply, Status>>,
    /// Looked up for every response: hashed with foldhash, not SipHash.
    watchers: HashMap<i64, Options, foldhash::fast::RandomState>,
    /// A progress request that found watchers behind, to retry.
    progress_due: bool,
    max_request_bytes: usize,
    /// False once the client closed its side: no more requests come, but
    /// the watchers go on until the client goes away, as in etcd.
    reading: bool,
}

/// Starts serving one Watch stream; returns what tonic sends the client.
pub(crate) fn serve<S: WatchApi>(
    server: Arc<S>,
    session: S::Session,
    events: S::Events,
    requests: Streaming<WatchRequest>,
    require_leader: bool,
    max_request_bytes: usize,
) -> WatchStream {
    let mut progress = tokio::time::interval(server.watch_progress_interval());
    progress.reset();
    // Boxed: `unfold` moves its state into and out of each step's future,
    // and a pointer is cheaper to move than the whole machine.
    let task = Box::new(ServerStream {
        server,
        session,
        events,
        requests,
        require_leader,
        progress,
        retry: tokio::time::interval(PROGRESS_RETRY),
        leader: tokio::time::interval(LEADER_CHECK),
        out: VecDeque::new(),
        watchers: HashMap::default(),
        progress_due: false,
        max_request_bytes,
        reading: true,
    });
    let responses = futures_util::stream::unfold((task, true), |(mut task, mut open)| async move {
        loop {
            if let Some(response) = task.out.pop_front() {
                return Some((response, (task, open)));
            }
            if !open {
                return None;
            }
            open = task.step().await;
        }
    });
    Box::pin(responses)
}

impl<S: WatchApi> ServerStream<S> {
    /// Waits for the next request, batch of events or timer and handles
    /// it, queueing its responses in `out`; false once the stream ends
    /// (after what is queued has been sent).
    async fn step(&mut self) -> bool {
        tokio::select! {
            // In this order, not at random: a stream woken for its events
            // (nearly every wake-up) takes them without first polling its
            // HTTP/2 body, which locks the connection's state. The request
            // stream's waker stays registered meanwhile, and the channel's
            // cooperative budget makes it yield to requests now and then.
            biased;
            Some(batch) = self.events.next() => self.events(batch).await,
            request = self.requests.message(), if self.reading => match request {
                Ok(Some(request)) => self.request(request).await,
                // The client closed its side: etcd's receive loop ends
                // without an error and its watchers keep sending until
                // the client cancels the call.
                Ok(None) => {
                    self.reading = false;
                    true
                }
                // The stream broke: etcd ends the whole stream then.
                Err(_) => false,
            },
            _ = self.progress.tick() => self.progress_tick().await,
            _ = self.retry.tick(), if self.progress_due => {
                self.progress_due = !self.session.progress_all();
                true
            }
            _ = self.leader.tick(), if self.require_leader => {
                if self.server.has_leader().await {
                    true
                } else {
                    self.out.push_back(Err(Status::from(EtcdError::NoLeader)));
                    false
                }
            }
        }
    }

    /// Queues `response`; the stream goes on.
    async fn send(&mut self, response: impl Into<WatchReply>) -> bool {
        self.out.push_back(Ok(response.into()));
        true
    }

    async fn request(&mut self, request: WatchRequest) -> bool {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                let id = cancel.watch_id;
                if !self.session.cancel(id) {
                    // etcd answers nothing for an unknown id.
                    return true;
                }
                self.watchers.remove(&id);
                let header = self.server.watch_header(self.session.current_rev());
                self.send(WatchResponse {
                    header: Some(header),
                    watch_id: id,
                    canceled: true,
                    ..WatchResponse::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Answered when every watcher of the stream is synced (now,
                // or once they catch up): a notification at revision R
                // promises every event up to R was sent.
                self.progress_due = !self.session.progress_all();
                true
            }
            None => true,
        }
    }

    async fn create(&mut self, mut create: WatchCreateRequest) -> bool {
        if create.key.is_empty() {
            // etcd watches "\0" for an empty key.
            create.key = vec![0];
        }
        let response = match self.session.create(&create) {
            Ok((id, rev)) => {
                self.watchers.insert(
                    id,
                    Options {
                        prev_kv: create.prev_kv,
                        fragment: create.fragment,
                        progress: create.progress_notify.then_some(true),
                    },
                );
                WatchResponse {
                    header: Some(self.server.watch_header(rev)),
                    watch_id: id,
                    created: true,
                    ..WatchResponse::default()
                }
            }
            Err(reason) => WatchResponse {
                header: Some(self.server.watch_header(self.session.current_rev())),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..WatchResponse::default()
            },
        };
        self.send(response).await
    }

    async fn events(&mut self, batch: WatchEvents) -> bool {
        let Some(options) = self.watchers.get_mut(&batch.watch_id) else {
            // A progress notification for the whole stream, or events of a
            // watcher cancelled since: the latter are not wanted.
            if batch.watch_id == INVALID_WATCH_ID {
                let header = self.server.watch_header(batch.revision);
                return self
                    .send(WatchResponse {
                        header: Some(header),
                        watch_id: INVALID_WATCH_ID,
                        ..WatchResponse::default()
                    })
                    .await;
            }
            return true;
        };
        if !batch.events.is_empty() {
            if let Some(sent) = options.progress.as_mut() {
                *sent = false;
            }
        }
        let header = self.server.watch_header(batch.revision);
        let canceled = batch.compact_revision != 0;
        if !options.prev_kv && !options.fragment && !canceled {
            // The common case: the events as they are shared by every
            // watcher they reached, encoded once for all of them.
            return self
                .send(WatchReply::Shared {
                    header,
                    watch_id: batch.watch_id,
                    events: batch.events,
                })
                .await;
        }
        let mut events: Vec<Event> = batch.events.iter().map(|e| e.event().clone()).collect();
        if options.prev_kv {
            for e in &mut events {
                let Some(kv) = &e.kv else { continue };
                let created = e.r#type == EventType::Put as i32 && kv.version == 1;
                if !created {
                    e.prev_kv = self.session.kv_at(&kv.key, kv.mod_revision - 1);
                }
            }
        }
        let fragment = options.fragment;
        if canceled {
            self.watchers.remove(&batch.watch_id);
        }
        let response = WatchResponse {
            header: Some(header),
            watch_id: batch.watch_id,
            compact_revision: batch.compact_revision,
            canceled,
            events,
            ..WatchResponse::default()
        };
        if fragment {
            for piece in fragments(response, self.max_request_bytes) {
                if !self.send(piece).await {
                    return false;
                }
            }
            true
        } else {
            self.send(response).await
        }
    }

    /// etcd's progress ticker: a watcher with `progress_notify` that was
    /// sent no events since the last tick gets a notification (if synced).
    async fn progress_tick(&mut self) -> bool {
        for (id, options) in &mut self.watchers {
            if let Some(quiet) = options.progress.as_mut() {
                if *quiet {
                    self.session.progress(*id);
                }
                *quiet = true;
            }
        }
        true
    }
}

/// etcd's `sendFragments`: a response larger than `max_bytes` with more
/// than one event goes out in pieces, each as large as fits (at least one
/// event), all but the last marked `fragment`.
fn fragments(response: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < max_bytes || response.events.len() < 2 {
        return vec![response];
    }
    let mut template = response.clone();
    template.events.clear();
    template.fragment = true;
    let mut out = Vec::new();
    let mut current = template.clone();
    for event in response.events {
        current.events.push(event);
        if current.events.len() > 1 && current.encoded_len() >= max_bytes {
            let last = current.events.pop().expect("just pushed");
            out.push(std::mem::replace(&mut current, template.clone()));
            current.events.push(last);
        }
    }
    current.fragment = false;
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcd_proto::mvccpb::KeyValue;

    fn event(size: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: vec![7; size],
                ..KeyValue::default()
            }),
            ..Event::default()
        }
    }

    #[test]
    fn fragments_as_etcd_cuts_them() {
        let response = WatchResponse {
            watch_id: 3,
            events: (0..10).map(|_| event(100)).collect(),
            ..WatchResponse::default()
        };
        assert_eq!(
            fragments(response.clone(), 1 << 20).len(),
            1,
            "small: whole"
        );
        let pieces = fragments(response.clone(), 350);
        assert!(pieces.len() > 1);
        let (last, rest) = pieces.split_last().unwrap();
        assert!(rest
            .iter()
            .all(|p| p.fragment && p.encoded_len() < 350 + 120));
        assert!(!last.fragment);
        let events: Vec<Event> = pieces.iter().flat_map(|p| p.events.clone()).collect();
        assert_eq!(events, response.events, "every event once, in order");
        let one = WatchResponse {
            events: vec![event(1000)],
            ..WatchResponse::default()
        };
        assert_eq!(fragments(one, 10).len(), 1, "a single event is never split");
    }
}
