//! The watchable store over a real mvcc store (in memory), judged against
//! a plain model of the event history: random writes, watchers created
//! between them from random start revisions over random keys and ranges,
//! and streams that read only at the end (so their buffers fill and their
//! watchers become victims). Every watcher must receive exactly the
//! model's events for it, in order, none twice, none missing, and no
//! revision split over two responses (a catch-up response may hold
//! several revisions, as etcd's do; its revision is its last event's).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ironcd_backend::{BackendConfig, MemBackend};
use ironcd_mvcc::{Observer, Store, StoreConfig};
use ironcd_proto::mvccpb::{event::EventType, Event};
use ironcd_proto::watch_reply::SharedEvent;
use ironcd_watch::{
    History, WatchConfig, WatchRequest, WatchResponse, WatchStream, WatchableStore,
};
use proptest::prelude::*;
use tokio::sync::mpsc;

/// How long a test waits for the watchers to catch up.
const CATCH_UP: Duration = Duration::from_secs(20);

/// The observer the store holds: a weak handle, so that the store and the
/// watchable store (which reads the store) do not keep each other alive.
struct WeakObserver(Weak<WatchableStore>);

impl Observer for WeakObserver {
    fn on_commit(&self, rev: i64, events: Vec<Event>) {
        if let Some(w) = self.0.upgrade() {
            w.on_commit(rev, events);
        }
    }
}

fn setup(config: WatchConfig) -> (Arc<Store<MemBackend>>, Arc<WatchableStore>) {
    let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
    let store = Arc::new(Store::open(backend, StoreConfig::default()).unwrap());
    let history: Arc<dyn History> = store.clone();
    let watchable = WatchableStore::new(history, config);
    store.set_observer(Arc::new(WeakObserver(Arc::downgrade(&watchable))));
    (store, watchable)
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    DeleteRange(u8, u8),
    /// Several puts in one txn (one revision).
    Txn(Vec<(u8, u8)>),
    /// A watcher: key, range end (0 = none, 255 = from key), start
    /// revision offset from the current one (negative = historical,
    /// 0 = "next", positive = future), filters, on which stream.
    Watch {
        key: u8,
        end: u8,
        start: i8,
        no_put: bool,
        no_delete: bool,
        stream: u8,
    },
    /// Opens a batch of commits, or ends the open one.
    Batch,
}

fn key(k: u8) -> Vec<u8> {
    vec![b'a' + (k % 8)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => any::<u8>().prop_map(Op::Delete),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::DeleteRange(a, b)),
        1 => prop::collection::vec((any::<u8>(), any::<u8>()), 1..4).prop_map(Op::Txn),
        1 => Just(Op::Batch),
        2 => (any::<u8>(), any::<u8>(), -6i8..3, any::<bool>(), any::<bool>(), 0u8..3).prop_map(
            |(key, end, start, no_put, no_delete, stream)| Op::Watch {
                key,
                end,
                start,
                no_put,
                no_delete,
                stream,
            }
        ),
    ]
}

struct ModelWatcher {
    stream: usize,
    id: i64,
    req: WatchRequest,
    /// The first revision it must see.
    from: i64,
}

fn matches(req: &WatchRequest, e: &Event) -> bool {
    let k = &e.kv.as_ref().unwrap().key;
    let in_range = if req.range_end.is_empty() {
        *k == req.key
    } else if req.range_end == [0] {
        *k >= req.key
    } else {
        *k >= req.key && *k < req.range_end
    };
    let kind = EventType::try_from(e.r#type).unwrap();
    in_range
        && !(kind == EventType::Put && req.no_put)
        && !(kind == EventType::Delete && req.no_delete)
}

/// Runs `ops`; returns, per watcher, what the model expects and what the
/// watcher received.
/// A watcher's responses: (revision, events) each.
type Responses = Vec<(i64, Vec<Event>)>;

fn run(ops: &[Op], buffer: usize) -> Vec<(Responses, Responses)> {
    let (store, watchable) = setup(WatchConfig {
        stream_buffer: buffer,
        max_events_per_sync: 7,
        max_watchers_per_sync: 3,
        ..WatchConfig::default()
    });
    let mut streams: Vec<(WatchStream, mpsc::Receiver<WatchResponse>)> =
        (0..3).map(|_| WatchStream::new(&watchable)).collect();
    let mut history: Vec<(i64, Vec<Event>)> = Vec::new();
    let mut watchers: Vec<ModelWatcher> = Vec::new();
    let mut batching = false;
    for op in ops {
        let mut txn = match op {
            Op::Watch { .. } | Op::Batch => None,
            _ => Some(store.write()),
        };
        match op {
            Op::Put(k, v) => txn.as_mut().unwrap().put(&key(*k), &[*v], 0),
            Op::Delete(k) => {
                txn.as_mut().unwrap().delete_range(&key(*k), None);
            }
            Op::DeleteRange(a, b) => {
                let (a, b) = (key(*a.min(b)), key(*a.max(b)));
                txn.as_mut().unwrap().delete_range(&a, Some(&b));
            }
            Op::Txn(puts) => {
                for (k, v) in puts {
                    txn.as_mut().unwrap().put(&key(*k), &[*v], 0);
                }
            }
            Op::Watch {
                key: k,
                end,
                start,
                no_put,
                no_delete,
                stream,
            } => {
                let current = store.current_rev();
                let start_revision = match *start {
                    0 => 0,
                    s => (current + i64::from(s)).max(1),
                };
                let range_end = match end % 4 {
                    0 => Vec::new(),
                    1 => vec![0],
                    _ => {
                        let e = key(*end);
                        if e > key(*k) {
                            e
                        } else {
                            Vec::new()
                        }
                    }
                };
                let req = WatchRequest {
                    key: key(*k),
                    range_end,
                    start_revision,
                    no_put: *no_put,
                    no_delete: *no_delete,
                    ..WatchRequest::default()
                };
                let stream = usize::from(*stream);
                let (id, at) = streams[stream].0.watch(req.clone()).unwrap();
                let from = if start_revision == 0 {
                    at + 1
                } else {
                    start_revision
                };
                watchers.push(ModelWatcher {
                    stream,
                    id,
                    req,
                    from,
                });
            }
            Op::Batch if batching => watchable.end_batch(),
            Op::Batch => watchable.begin_batch(),
        }
        if matches!(op, Op::Batch) {
            batching = !batching;
        }
        if let Some(txn) = txn {
            let changes = txn.changes().to_vec();
            let rev = txn.rev();
            drop(txn);
            if !changes.is_empty() {
                history.push((rev, changes));
            }
        }
    }
    if batching {
        watchable.end_batch();
    }
    // Reads only now: every stream's buffer may have filled long ago.
    let final_rev = store.current_rev();
    let mut got: Vec<Responses> = watchers.iter().map(|_| Vec::new()).collect();
    let deadline = Instant::now() + CATCH_UP;
    let expected: Vec<Responses> = watchers
        .iter()
        .map(|w| {
            history
                .iter()
                .filter(|(rev, _)| *rev >= w.from)
                .map(|(rev, evs)| {
                    (
                        *rev,
                        evs.iter()
                            .filter(|e| matches(&w.req, e))
                            .cloned()
                            .collect::<Vec<_>>(),
                    )
                })
                .filter(|(_, evs)| !evs.is_empty())
                .collect()
        })
        .collect();
    let count =
        |responses: &Responses| -> usize { responses.iter().map(|(_, evs)| evs.len()).sum() };
    let done = |got: &Vec<Responses>| got.iter().zip(&expected).all(|(g, e)| count(g) >= count(e));
    while !done(&got) && Instant::now() < deadline {
        let mut any = false;
        for (s, (_, rx)) in streams.iter_mut().enumerate() {
            while let Ok(resp) = rx.try_recv() {
                any = true;
                assert_eq!(resp.compact_revision, 0);
                assert!(resp.revision <= final_rev);
                let i = watchers
                    .iter()
                    .position(|w| w.stream == s && w.id == resp.watch_id)
                    .expect("a response for a known watcher");
                got[i].push((resp.revision, plain(resp.events)));
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Nothing more arrives: no duplicates after the expected ones.
    std::thread::sleep(Duration::from_millis(150));
    for (s, (_, rx)) in streams.iter_mut().enumerate() {
        while let Ok(resp) = rx.try_recv() {
            let i = watchers
                .iter()
                .position(|w| w.stream == s && w.id == resp.watch_id)
                .unwrap();
            got[i].push((resp.revision, plain(resp.events)));
        }
    }
    expected.into_iter().zip(got).collect()
}

/// The events of a watcher's responses, in order, after checking that
/// each response's revision is its last event's and that no revision is
/// split between responses.
fn flatten(responses: &[(i64, Vec<Event>)]) -> Vec<Event> {
    let rev = |e: &Event| e.kv.as_ref().unwrap().mod_revision;
    let mut last = 0;
    let mut out = Vec::new();
    for (revision, events) in responses {
        assert!(!events.is_empty(), "an empty event response");
        assert_eq!(
            *revision,
            rev(events.last().unwrap()),
            "a response's revision"
        );
        assert!(
            rev(&events[0]) > last,
            "a revision split over responses, or out of order"
        );
        last = *revision;
        out.extend(events.iter().cloned());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_watcher_gets_exactly_its_events(
        ops in prop::collection::vec(op(), 1..80),
        buffer in 1usize..4,
    ) {
        for (i, (expected, got)) in run(&ops, buffer).into_iter().enumerate() {
            prop_assert_eq!(flatten(&got), flatten(&expected), "watcher {}", i);
        }
    }
}

#[test]
fn a_slow_stream_gets_every_event_and_writers_never_wait() {
    let (store, watchable) = setup(WatchConfig {
        stream_buffer: 4,
        ..WatchConfig::default()
    });
    let (stream, mut rx) = WatchStream::new(&watchable);
    stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            range_end: vec![0],
            ..WatchRequest::default()
        })
        .unwrap();
    let writes = 20_000;
    for i in 0..writes {
        let mut txn = store.write();
        txn.put(format!("k{i}").as_bytes(), b"v", 0);
    }
    assert!(watchable.group_sizes().2 <= 1, "one victim at most");
    let mut next = 2;
    let deadline = Instant::now() + CATCH_UP;
    while next < writes + 2 && Instant::now() < deadline {
        match rx.try_recv() {
            Ok(resp) => {
                for e in plain(resp.events) {
                    let rev = e.kv.as_ref().unwrap().mod_revision;
                    assert_eq!(rev, next, "in order, no gap, no repeat");
                    next += 1;
                }
                assert_eq!(resp.revision, next - 1);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    assert_eq!(next, writes + 2, "every event arrived");
    assert_eq!(watchable.group_sizes(), (1, 0, 0), "back in synced");
}

#[test]
fn a_watcher_from_a_compacted_revision_is_cancelled_with_it() {
    let (store, watchable) = setup(WatchConfig::default());
    for i in 0..10 {
        store.write().put(b"k", &[i], 0);
    }
    store.compact(6).unwrap().wait().unwrap();
    let (stream, mut rx) = WatchStream::new(&watchable);
    let (id, _) = stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            start_revision: 3,
            ..WatchRequest::default()
        })
        .unwrap();
    let resp = recv(&mut rx);
    assert_eq!((resp.watch_id, resp.compact_revision), (id, 6));
    assert_eq!(watchable.watcher_count(), 0);
    // From the compaction revision itself: served, as etcd does.
    let (_, _) = stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            start_revision: 6,
            ..WatchRequest::default()
        })
        .unwrap();
    assert_eq!(revisions(&events(&mut rx, 6)), vec![6, 7, 8, 9, 10, 11]);
}

/// The next `n` events `rx` is sent (however they are batched).
fn events(rx: &mut mpsc::Receiver<WatchResponse>, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        let resp = recv(rx);
        assert_eq!(resp.compact_revision, 0);
        out.extend(plain(resp.events));
    }
    assert_eq!(out.len(), n, "no more than asked for");
    out
}

/// A response's events, out of their shared form.
fn plain(events: Vec<Arc<SharedEvent>>) -> Vec<Event> {
    events.iter().map(|e| e.event().clone()).collect()
}

fn revisions(events: &[Event]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect()
}

fn recv(rx: &mut mpsc::Receiver<WatchResponse>) -> WatchResponse {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        if let Ok(resp) = rx.try_recv() {
            return resp;
        }
        assert!(Instant::now() < deadline, "no response");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn ids_progress_and_cancel_as_etcd() {
    let (store, watchable) = setup(WatchConfig::default());
    let (stream, mut rx) = WatchStream::new(&watchable);
    let req = |id| WatchRequest {
        watch_id: id,
        key: b"k".to_vec(),
        ..WatchRequest::default()
    };
    assert_eq!(stream.watch(req(0)).unwrap().0, 0);
    assert_eq!(stream.watch(req(5)).unwrap().0, 5);
    assert_eq!(stream.watch(req(0)).unwrap().0, 1);
    assert_eq!(
        stream.watch(req(5)).unwrap_err().to_string(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    let empty = WatchRequest {
        range_end: b"a".to_vec(),
        ..req(0)
    };
    assert_eq!(
        stream.watch(empty).unwrap_err().to_string(),
        "mvcc: watcher range is empty"
    );
    store.write().put(b"k", b"v", 0);
    for _ in 0..3 {
        assert_eq!(recv(&mut rx).revision, 2);
    }
    assert!(stream.progress_all());
    let p = recv(&mut rx);
    assert_eq!((p.watch_id, p.revision, p.events.len()), (-1, 2, 0));
    stream.cancel(5).unwrap();
    assert_eq!(
        stream.cancel(5).unwrap_err().to_string(),
        "mvcc: watcher does not exist"
    );
    assert_eq!(watchable.watcher_count(), 2);
    drop(stream);
    assert_eq!(watchable.watcher_count(), 0);
}

/// A batch's commits reach the streams at its end, one response per
/// watcher and revision, in revision order; until then progress speaks
/// only for the revisions before it.
#[test]
fn a_batch_is_matched_and_sent_at_its_end() {
    let (store, watchable) = setup(WatchConfig::default());
    let mut streams: Vec<_> = (0..2).map(|_| WatchStream::new(&watchable)).collect();
    for (stream, _) in &streams {
        stream
            .watch(WatchRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                ..WatchRequest::default()
            })
            .unwrap();
    }
    watchable.begin_batch();
    store.write().put(b"k1", b"a", 0);
    {
        let mut txn = store.write();
        txn.put(b"k2", b"b", 0);
        txn.put(b"k3", b"c", 0);
    }
    store.write().put(b"x", b"d", 0);
    for (stream, rx) in &mut streams {
        assert!(rx.try_recv().is_err(), "nothing before the batch ends");
        assert!(stream.progress_all());
        let p = recv(rx);
        assert_eq!((p.revision, p.events.len()), (1, 0));
    }
    watchable.end_batch();
    for (_, rx) in &mut streams {
        let first = recv(rx);
        assert_eq!(
            (first.revision, revisions(&plain(first.events))),
            (2, vec![2])
        );
        let second = recv(rx);
        assert_eq!(
            (second.revision, revisions(&plain(second.events))),
            (3, vec![3, 3])
        );
        assert!(rx.try_recv().is_err(), "`x` matched no one");
    }
    // Out of a batch, a commit goes at once.
    store.write().put(b"k4", b"e", 0);
    for (_, rx) in &mut streams {
        assert_eq!(recv(rx).revision, 5);
    }
}

/// A watcher that catches up while a batch holds a commit is not sent
/// that commit by the catch-up: a progress notification at the revision
/// before the batch would then come after an event past it. It gets the
/// commit when the batch ends.
#[test]
fn catch_up_stops_at_what_was_matched() {
    let (store, watchable) = setup(WatchConfig::default());
    store.write().put(b"k", b"a", 0);
    let (stream, mut rx) = WatchStream::new(&watchable);
    // A synced watcher, so that the batch holds its commit.
    stream
        .watch(WatchRequest {
            key: b"other".to_vec(),
            ..WatchRequest::default()
        })
        .unwrap();
    watchable.begin_batch();
    store.write().put(b"k", b"b", 0);
    // From revision 2: behind the store (at 3), so it starts unsynced.
    stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            start_revision: 2,
            ..WatchRequest::default()
        })
        .unwrap();
    assert_eq!(revisions(&plain(recv(&mut rx).events)), vec![2]);
    let deadline = Instant::now() + CATCH_UP;
    while !stream.progress_all() {
        assert!(Instant::now() < deadline, "the watcher never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    let progress = recv(&mut rx);
    assert_eq!((progress.revision, progress.events.len()), (2, 0));
    assert!(rx.try_recv().is_err(), "revision 3 is held by the batch");
    watchable.end_batch();
    assert_eq!(revisions(&plain(recv(&mut rx).events)), vec![3]);
}

/// A history whose store can be replaced, as a snapshot install does.
struct Swappable(parking_lot::RwLock<Arc<Store<MemBackend>>>);

impl History for Swappable {
    fn current_rev(&self) -> i64 {
        self.0.read().current_rev()
    }
    fn events(
        &self,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<(Vec<Event>, i64), ironcd_watch::HistoryError> {
        History::events(&**self.0.read(), from, to, max)
    }
    fn kv_at(&self, key: &[u8], rev: i64) -> Option<ironcd_proto::mvccpb::KeyValue> {
        self.0.read().kv_at(key, rev)
    }
}

fn mem_store() -> Arc<Store<MemBackend>> {
    let backend = Arc::new(MemBackend::open_in_memory(BackendConfig::default()));
    Arc::new(Store::open(backend, StoreConfig::default()).unwrap())
}

#[test]
fn watchers_resume_against_a_replaced_store() {
    // The follower's store and the leader's, identical up to revision 6;
    // the leader's goes on to 11.
    let (mine, theirs) = (mem_store(), mem_store());
    for i in 0..5u8 {
        mine.write().put(b"k", &[i], 0);
        theirs.write().put(b"k", &[i], 0);
    }
    for i in 5..10u8 {
        theirs.write().put(b"k", &[i], 0);
    }
    let history = Arc::new(Swappable(parking_lot::RwLock::new(mine.clone())));
    let watchable = WatchableStore::new(history.clone(), WatchConfig::default());
    mine.set_observer(Arc::new(WeakObserver(Arc::downgrade(&watchable))));
    let (stream, mut rx) = WatchStream::new(&watchable);
    stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            start_revision: 4,
            ..WatchRequest::default()
        })
        .unwrap();
    assert_eq!(revisions(&events(&mut rx, 3)), vec![4, 5, 6]);
    // The install: the leader's store replaces the follower's.
    theirs.set_observer(Arc::new(WeakObserver(Arc::downgrade(&watchable))));
    *history.0.write() = theirs.clone();
    watchable.resync_all();
    assert_eq!(
        revisions(&events(&mut rx, 5)),
        vec![7, 8, 9, 10, 11],
        "each once, none lost"
    );
    theirs.write().put(b"k", b"after", 0);
    assert_eq!(recv(&mut rx).revision, 12);
    std::thread::sleep(Duration::from_millis(150));
    assert!(rx.try_recv().is_err(), "nothing twice");
}

/// A stream read slowly while a writer runs and the reader keeps asking
/// for progress: every event arrives once, in order, and a progress
/// notification at revision R comes only after every event up to R (the
/// robustness suite's `beforeSendWatchResponse` stall found a gap here).
#[test]
fn progress_on_a_slow_stream_never_runs_ahead_of_its_events() {
    let (store, watchable) = setup(WatchConfig {
        stream_buffer: 4,
        ..WatchConfig::default()
    });
    let (stream, mut rx) = WatchStream::new(&watchable);
    stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            range_end: vec![0],
            ..WatchRequest::default()
        })
        .unwrap();
    let writes: i64 = 3_000;
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..writes {
                store.write().put(format!("k{}", i % 7).as_bytes(), b"v", 0);
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    let mut next = 2;
    let deadline = Instant::now() + CATCH_UP;
    let mut asked = 0u64;
    while next < writes + 2 {
        assert!(Instant::now() < deadline, "stuck at revision {next}");
        asked += 1;
        if asked.is_multiple_of(3) {
            let _ = stream.progress_all();
        }
        match rx.try_recv() {
            Ok(resp) if resp.events.is_empty() => {
                assert!(
                    resp.revision < next,
                    "progress at {} before the event of revision {next}",
                    resp.revision
                );
            }
            Ok(resp) => {
                for e in plain(resp.events) {
                    let rev = e.kv.as_ref().unwrap().mod_revision;
                    assert_eq!(rev, next, "in order, no gap, no repeat");
                    next += 1;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
        if asked.is_multiple_of(5) {
            // A slow reader.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    writer.join().unwrap();
}

/// A watcher that must be cancelled by a compaction while its stream's
/// buffer is full is told once there is room (the robustness suite found
/// the cancellation dropped: the stream then waited for events that never
/// came, and its progress notifications counted the gone watcher synced).
#[test]
fn a_compaction_cancel_waits_for_room_in_a_full_buffer() {
    let (store, watchable) = setup(WatchConfig {
        stream_buffer: 1,
        ..WatchConfig::default()
    });
    let (stream, mut rx) = WatchStream::new(&watchable);
    let (id, _) = stream
        .watch(WatchRequest {
            key: b"k".to_vec(),
            ..WatchRequest::default()
        })
        .unwrap();
    // Revision 2 fills the buffer; 3 is held by the victim; 4..=10 wait.
    for i in 0..9u8 {
        store.write().put(b"k", &[i], 0);
    }
    store.compact(8).unwrap().wait().unwrap();
    // Room for the held response; the watcher then needs 4.., compacted.
    assert_eq!(revisions(&plain(recv(&mut rx).events)), vec![2]);
    assert_eq!(revisions(&plain(recv(&mut rx).events)), vec![3]);
    let cancel = recv(&mut rx);
    assert_eq!((cancel.watch_id, cancel.compact_revision), (id, 8));
    assert_eq!(watchable.watcher_count(), 0);
}
