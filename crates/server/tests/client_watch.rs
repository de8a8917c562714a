//! The Watch service through the real `etcd-client` crate, each area run
//! against etcd 3.4 (proving the expectations are etcd's) and ironcd on a
//! fresh one-member cluster (`--max-request-bytes=1024`, so fragments are
//! easy to provoke): created responses, events of every write path, txn
//! atomicity, prefixes and ranges, historical starts, `prev_kv`, filters,
//! cancel, duplicate ids, compaction, progress, fragments, many watchers;
//! then the server-level areas: progress notifications on the
//! `--experimental-watch-progress-notify-interval` ticker, a slow consumer
//! of 100 000 events, and 10 000 watchers on one stream and on 100.

#[macro_use]
mod areas;
mod client;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchFilterType, WatchOptions,
    WatchRequestSender, WatchResponse, WatchResponseStream, WatchStream,
};
use ironcd_tests::{Cluster, Opts, Server};

const MAX_REQUEST_BYTES: usize = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a response may take to arrive.
const ARRIVES: Duration = Duration::from_secs(10);
/// How long the tests wait to see that nothing more arrives.
const QUIET: Duration = Duration::from_millis(500);
/// `--experimental-watch-progress-notify-interval` of the progress area.
const PROGRESS_NOTIFY_INTERVAL: &str = "1s";
/// Long enough for several ticks of [`PROGRESS_NOTIFY_INTERVAL`].
const SEVERAL_TICKS: Duration = Duration::from_secs(3);
/// The value of every put of the many-write areas. A watch response
/// carrying one event then fills a DATA frame of at least 256 bytes: the
/// `h2` crate (0.4.20) ends a connection on which the application leaves
/// too many smaller DATA frames unread (GOAWAY ENHANCE_YOUR_CALM
/// "too_many_data_frames"), which the areas that do not read while writing
/// would provoke from the client's side, on etcd as on ironcd.
const MANY_WRITES_VALUE_BYTES: usize = 256;
/// Concurrent writer tasks of the many-write areas, each with its own client.
const WRITERS: usize = 32;
/// Puts the slow consumer leaves unread until they are all written.
const SLOW_CONSUMER_PUTS: usize = 100_000;
/// Watchers of each half of the ten-thousand-watcher area.
const MANY_WATCHERS: usize = 10_000;
/// Streams the second half spreads [`MANY_WATCHERS`] over.
const MANY_STREAMS: usize = 100;
/// Watch streams on one client connection: more than hyper's default
/// limit of 200 concurrent HTTP/2 streams (etcd sets none).
const STREAMS_ON_ONE_CONNECTION: usize = 300;
/// `--max-concurrent-streams` for the area that checks the limit holds.
const STREAM_LIMIT: usize = 2;

on_both_implementations!(
    run: [
        created_then_events_of_every_write,
        a_txn_is_one_response_in_txn_order,
        prefixes_ranges_and_from_key,
        historical_start_with_prev_kv,
        filters_leave_out_puts_or_deletes,
        cancel_and_duplicate_ids,
        compacted_start_revision,
        progress_requests,
        fragments_split_a_large_revision,
        many_watchers_on_one_stream,
        a_half_closed_stream_keeps_watching,
    ],
    run_with_progress_ticks: [progress_notify_on_the_interval],
    run_with_endpoint: [
        slow_consumer_gets_every_event,
        ten_thousand_watchers_one_stream_and_across_100_streams,
        three_hundred_streams_on_one_connection,
    ],
    run_with_stream_limit: [max_concurrent_streams_is_honoured],
);

fn run<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with_args(server, area_name, &[], move |client, _| area(client));
}

/// [`run`] on a cluster that ticks progress every
/// [`PROGRESS_NOTIFY_INTERVAL`].
fn run_with_progress_ticks<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let interval =
        format!("--experimental-watch-progress-notify-interval={PROGRESS_NOTIFY_INTERVAL}");
    run_with_args(server, area_name, &[&interval], move |client, _| {
        area(client)
    });
}

/// [`run`] on a cluster with `--max-concurrent-streams` [`STREAM_LIMIT`].
fn run_with_stream_limit<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = format!("--max-concurrent-streams={STREAM_LIMIT}");
    run_with_args(server, area_name, &[&limit], area);
}

/// [`run`] for an area that also connects clients of its own to the
/// member's endpoint.
fn run_with_endpoint<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with_args(server, area_name, &[], area);
}

/// `area` on a fresh one-member cluster with `--max-request-bytes` and
/// `extra_args`, given a client and the member's endpoint.
fn run_with_args<F, Fut>(server: Server, area_name: &str, extra_args: &[&str], area: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max_request_bytes = format!("--max-request-bytes={MAX_REQUEST_BYTES}");
    let mut args = vec![max_request_bytes.as_str()];
    args.extend_from_slice(extra_args);
    let cluster = Cluster::start(server, 1, Opts::with_args(&args));
    areas::drive(&cluster, area_name, REQUEST_TIMEOUT, area);
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(ARRIVES, stream.message())
        .await
        .expect("a watch response in time")
        .expect("the stream works")
        .expect("the stream is open")
}

/// Nothing more arrives for a while.
async fn quiet(stream: &mut WatchStream) {
    if let Ok(got) = tokio::time::timeout(QUIET, stream.message()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

async fn watch(client: &mut Client, key: &str, options: WatchOptions) -> (WatchStream, i64) {
    let mut stream = client.watch(key, Some(options)).await.expect("watch");
    let created = next(&mut stream).await;
    assert!(created.created() && !created.canceled(), "{created:?}");
    (stream, created.watch_id())
}

async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    client
        .put(key, value, None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision()
}

async fn current(client: &mut Client) -> i64 {
    client
        .get("nothing", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

/// (type, key, value) of each event.
fn summary(resp: &WatchResponse) -> Vec<(EventType, String, String)> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("an event's kv");
            (
                e.event_type(),
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ev(t: EventType, k: &str, v: &str) -> (EventType, String, String) {
    (t, k.to_string(), v.to_string())
}

async fn created_then_events_of_every_write(mut client: Client) {
    let before = current(&mut client).await;
    let mut stream = client.watch("k", None).await.expect("watch");
    let created = next(&mut stream).await;
    assert!(created.created());
    assert_eq!(created.watch_id(), 0, "the first automatic id is 0");
    assert_eq!(created.header().unwrap().revision(), before);
    assert!(created.events().is_empty());

    let rev = put(&mut client, "k", "1").await;
    put(&mut client, "other", "x").await;
    let r = next(&mut stream).await;
    assert_eq!(r.watch_id(), 0);
    assert_eq!(r.header().unwrap().revision(), rev);
    assert_eq!(summary(&r), vec![ev(EventType::Put, "k", "1")]);
    let kv = r.events()[0].kv().unwrap();
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (rev, rev, 1)
    );

    client.delete("k", None).await.expect("delete");
    let r = next(&mut stream).await;
    assert_eq!(summary(&r), vec![ev(EventType::Delete, "k", "")]);
    let kv = r.events()[0].kv().unwrap();
    assert_eq!(
        (kv.mod_revision(), kv.create_revision(), kv.version()),
        (rev + 2, 0, 0)
    );

    let txn = Txn::new().and_then([TxnOp::put("k", "2", None)]);
    client.txn(txn).await.expect("txn");
    assert_eq!(
        summary(&next(&mut stream).await),
        vec![ev(EventType::Put, "k", "2")]
    );
    quiet(&mut stream).await;
}

/// A client that closes its side of the stream (no more requests) still
/// gets its watchers' events: etcd's receive loop ends quietly and the
/// stream lives until the call is cancelled. (The JSON gateway relies on
/// this: a body's requests end long before the watch does.)
async fn a_half_closed_stream_keeps_watching(mut client: Client) {
    let (stream, _) = watch(&mut client, "h", WatchOptions::new()).await;
    let (sender, mut responses) = stream.split();
    drop(sender);
    let rev = put(&mut client, "h", "1").await;
    let r = tokio::time::timeout(ARRIVES, responses.message())
        .await
        .expect("a watch response in time")
        .expect("the stream works")
        .expect("the stream is open");
    assert_eq!(summary(&r), vec![ev(EventType::Put, "h", "1")]);
    assert_eq!(r.header().unwrap().revision(), rev);
}

async fn a_txn_is_one_response_in_txn_order(mut client: Client) {
    let (mut stream, _) = watch(&mut client, "t/", WatchOptions::new().with_prefix()).await;
    put(&mut client, "t/b", "0").await;
    next(&mut stream).await;
    let txn = Txn::new().and_then([
        TxnOp::put("t/c", "1", None),
        TxnOp::delete("t/b", None),
        TxnOp::put("t/a", "2", None),
    ]);
    let rev = client
        .txn(txn)
        .await
        .expect("txn")
        .header()
        .unwrap()
        .revision();
    let r = next(&mut stream).await;
    assert_eq!(r.header().unwrap().revision(), rev);
    assert_eq!(
        summary(&r),
        vec![
            ev(EventType::Put, "t/c", "1"),
            ev(EventType::Delete, "t/b", ""),
            ev(EventType::Put, "t/a", "2"),
        ]
    );
    // A delete of a range: every key in one response.
    client
        .delete("t/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .expect("delete prefix");
    let r = next(&mut stream).await;
    assert_eq!(
        summary(&r),
        vec![
            ev(EventType::Delete, "t/a", ""),
            ev(EventType::Delete, "t/c", "")
        ]
    );
    quiet(&mut stream).await;
}

async fn prefixes_ranges_and_from_key(mut client: Client) {
    let (mut range, _) = watch(&mut client, "b", WatchOptions::new().with_range("d")).await;
    let (mut from, _) = watch(&mut client, "c", WatchOptions::new().with_from_key()).await;
    let (mut all, _) = watch(&mut client, "", WatchOptions::new().with_all_keys()).await;
    for k in ["a", "b", "c", "d", "zz"] {
        put(&mut client, k, "v").await;
    }
    let keys = |r: &WatchResponse| summary(r)[0].1.clone();
    for want in ["b", "c"] {
        assert_eq!(keys(&next(&mut range).await), want);
    }
    quiet(&mut range).await;
    for want in ["c", "d", "zz"] {
        assert_eq!(keys(&next(&mut from).await), want);
    }
    for want in ["a", "b", "c", "d", "zz"] {
        assert_eq!(keys(&next(&mut all).await), want);
    }
    // An empty range is refused on the stream, which lives on.
    let mut stream = client
        .watch("z", Some(WatchOptions::new().with_range("a")))
        .await
        .expect("watch");
    let r = next(&mut stream).await;
    assert!(r.created() && r.canceled(), "{r:?}");
    assert_eq!(r.watch_id(), -1);
    assert_eq!(r.cancel_reason(), "mvcc: watcher range is empty");
}

async fn historical_start_with_prev_kv(mut client: Client) {
    let first = put(&mut client, "h", "1").await;
    put(&mut client, "h", "2").await;
    client.delete("h", None).await.expect("delete");
    put(&mut client, "h", "3").await;
    let options = WatchOptions::new()
        .with_start_revision(first)
        .with_prev_key();
    let (mut stream, _) = watch(&mut client, "h", options).await;
    // Caught up in as few responses as the server likes (etcd sends its
    // backlog together); the events are what counts.
    let mut got = Vec::new();
    while got.len() < 4 {
        let r = next(&mut stream).await;
        for (e, s) in r.events().iter().zip(summary(&r)) {
            got.push((s, e.prev_kv().map(|p| p.value_str().unwrap().to_string())));
        }
    }
    assert_eq!(
        got,
        vec![
            (ev(EventType::Put, "h", "1"), None),
            (ev(EventType::Put, "h", "2"), Some("1".to_string())),
            (ev(EventType::Delete, "h", ""), Some("2".to_string())),
            (ev(EventType::Put, "h", "3"), None),
        ]
    );
    // And live, with prev_kv too.
    put(&mut client, "h", "4").await;
    let r = next(&mut stream).await;
    assert_eq!(r.events()[0].prev_kv().unwrap().value_str().unwrap(), "3");
}

async fn filters_leave_out_puts_or_deletes(mut client: Client) {
    let no_put = WatchOptions::new().with_filters([WatchFilterType::NoPut]);
    let no_delete = WatchOptions::new().with_filters([WatchFilterType::NoDelete]);
    let (mut deletes, _) = watch(&mut client, "f", no_put).await;
    let (mut puts, _) = watch(&mut client, "f", no_delete).await;
    put(&mut client, "f", "1").await;
    client.delete("f", None).await.expect("delete");
    put(&mut client, "f", "2").await;
    assert_eq!(
        summary(&next(&mut deletes).await),
        vec![ev(EventType::Delete, "f", "")]
    );
    quiet(&mut deletes).await;
    assert_eq!(
        summary(&next(&mut puts).await),
        vec![ev(EventType::Put, "f", "1")]
    );
    assert_eq!(
        summary(&next(&mut puts).await),
        vec![ev(EventType::Put, "f", "2")]
    );
}

async fn cancel_and_duplicate_ids(mut client: Client) {
    let options = WatchOptions::new().with_watch_id(7);
    let (mut stream, id) = watch(&mut client, "c", options.clone()).await;
    assert_eq!(id, 7, "the client's id is kept");
    // The same id again on the same stream: refused, the stream lives on.
    stream.watch("c", Some(options)).await.expect("send");
    let r = next(&mut stream).await;
    assert!(r.created() && r.canceled(), "{r:?}");
    assert_eq!(r.watch_id(), -1);
    assert_eq!(
        r.cancel_reason(),
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    // An automatic one next to it.
    stream.watch("d", None).await.expect("send");
    let r = next(&mut stream).await;
    assert!(r.created());
    assert_eq!(r.watch_id(), 0);

    stream.cancel(7).await.expect("cancel");
    let r = next(&mut stream).await;
    assert!(r.canceled() && !r.created(), "{r:?}");
    assert_eq!(r.watch_id(), 7);
    put(&mut client, "c", "after-cancel").await;
    put(&mut client, "d", "still-watched").await;
    let r = next(&mut stream).await;
    assert_eq!(
        (r.watch_id(), summary(&r)),
        (0, vec![ev(EventType::Put, "d", "still-watched")])
    );
    // Cancelling an id that is not there: no answer.
    stream.cancel(99).await.expect("cancel");
    quiet(&mut stream).await;
}

async fn compacted_start_revision(mut client: Client) {
    let first = put(&mut client, "x", "1").await;
    for v in 2..6 {
        put(&mut client, "x", &v.to_string()).await;
    }
    let compact_at = first + 3;
    client.compact(compact_at, None).await.expect("compact");
    let mut stream = client
        .watch("x", Some(WatchOptions::new().with_start_revision(first)))
        .await
        .expect("watch");
    let created = next(&mut stream).await;
    assert!(created.created() && !created.canceled());
    let r = next(&mut stream).await;
    assert!(r.canceled(), "{r:?}");
    assert_eq!(r.compact_revision(), compact_at);
    assert!(r.events().is_empty());
    // From the compaction revision itself: served.
    let (mut stream, _) = watch(
        &mut client,
        "x",
        WatchOptions::new().with_start_revision(compact_at),
    )
    .await;
    let r = next(&mut stream).await;
    assert_eq!(summary(&r)[0], ev(EventType::Put, "x", "4"));
    assert_eq!(r.events()[0].kv().unwrap().mod_revision(), compact_at);
}

async fn progress_requests(mut client: Client) {
    let (mut stream, _) = watch(&mut client, "p", WatchOptions::new()).await;
    let rev = put(&mut client, "elsewhere", "v").await;
    stream.request_progress().await.expect("progress");
    let r = next(&mut stream).await;
    assert!(
        r.events().is_empty() && !r.created() && !r.canceled(),
        "{r:?}"
    );
    assert_eq!(r.watch_id(), -1, "a progress response names no watcher");
    assert_eq!(r.header().unwrap().revision(), rev);
}

async fn fragments_split_a_large_revision(mut client: Client) {
    // etcd cuts at --max-request-bytes plus gRPC's 512 KiB overhead: one
    // revision deleting 640 keys with 900-byte previous values is more.
    let value = "v".repeat(900);
    for i in 0..640 {
        put(&mut client, &format!("frag/{i:03}"), &value).await;
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_fragment();
    let (mut stream, _) = watch(&mut client, "frag/", options).await;
    let (mut whole, _) = watch(
        &mut client,
        "frag/",
        WatchOptions::new().with_prefix().with_prev_key(),
    )
    .await;
    client
        .delete(
            "frag/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete");
    // Over the limit, so cut.
    let mut events = 0;
    let mut pieces = 0;
    loop {
        let r = next(&mut stream).await;
        pieces += 1;
        events += r.events().len();
        assert!(r.events().iter().all(|e| e.prev_kv().is_some()));
        if !r.0.fragment {
            break;
        }
    }
    assert_eq!(events, 640);
    assert!(pieces > 1, "fragmented");
    // Without `fragment`, one response.
    assert_eq!(next(&mut whole).await.events().len(), 640);
}

async fn many_watchers_on_one_stream(mut client: Client) {
    let mut stream = client.watch("m/0", None).await.expect("watch");
    next(&mut stream).await;
    for i in 1..200 {
        stream.watch(format!("m/{i}"), None).await.expect("send");
    }
    for _ in 1..200 {
        assert!(next(&mut stream).await.created());
    }
    let txn_keys: Vec<String> = (0..200).map(|i| format!("m/{i}")).collect();
    for key in &txn_keys {
        client
            .put(key.as_str(), "v", Some(PutOptions::new()))
            .await
            .expect("put");
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let r = next(&mut stream).await;
        assert_eq!(r.events().len(), 1);
        seen.insert(r.watch_id());
    }
    assert_eq!(seen.len(), 200, "each watcher saw its key once");
    let count = client
        .get(
            "m/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("get")
        .count();
    assert_eq!(count, 200);
}

async fn progress_notify_on_the_interval(mut client: Client) {
    let notified_options = WatchOptions::new().with_progress_notify();
    let (mut notified, id) = watch(&mut client, "idle", notified_options).await;
    let (mut plain, _) = watch(&mut client, "idle", WatchOptions::new()).await;
    let rev = current(&mut client).await;
    // An idle watcher hears of the revision on every tick, more than once.
    for _ in 0..2 {
        let r = next(&mut notified).await;
        assert_progress_notification(&r, id);
        assert_eq!(r.header().unwrap().revision(), rev, "{r:?}");
    }
    // A write elsewhere moves the notified revision on (a notification
    // already on its way may still carry the old one).
    let moved = put(&mut client, "elsewhere", "v").await;
    let mut revisions = Vec::new();
    while revisions.last() != Some(&moved) {
        assert!(
            revisions.len() < 5,
            "never notified of {moved}: {revisions:?}"
        );
        let r = next(&mut notified).await;
        assert_progress_notification(&r, id);
        revisions.push(r.header().unwrap().revision());
    }
    assert!(
        revisions.iter().all(|&r| r == rev || r == moved),
        "{revisions:?}"
    );
    // Several ticks have passed: one without progress_notify heard nothing.
    quiet_for(&mut plain, SEVERAL_TICKS).await;
}

/// A ticker's notification to watcher `id`: no events, nothing else.
fn assert_progress_notification(r: &WatchResponse, id: i64) {
    assert!(
        r.events().is_empty() && !r.created() && !r.canceled(),
        "{r:?}"
    );
    assert_eq!(r.watch_id(), id, "the ticker names the watcher: {r:?}");
}

/// Nothing arrives for `quiet`.
async fn quiet_for(stream: &mut WatchStream, quiet: Duration) {
    if let Ok(got) = tokio::time::timeout(quiet, stream.message()).await {
        panic!("expected nothing for {quiet:?}, got {got:?}");
    }
}

async fn slow_consumer_gets_every_event(mut client: Client, endpoint: String) {
    let (mut stream, id) = watch(&mut client, "slow/", WatchOptions::new().with_prefix()).await;
    let before = current(&mut client).await;
    let keys = (0..SLOW_CONSUMER_PUTS)
        .map(|i| format!("slow/{i:06}"))
        .collect();
    // Nothing reads the stream while all of it is written.
    let written = put_all(&endpoint, keys).await;
    let first = before + 1;
    let last = before + i64::try_from(SLOW_CONSUMER_PUTS).unwrap();
    assert_eq!(
        (written.len(), written.keys().next(), written.keys().last()),
        (SLOW_CONSUMER_PUTS, Some(&first), Some(&last)),
        "the puts are revisions {first}..={last}, nothing else wrote"
    );
    let mut got = Vec::with_capacity(SLOW_CONSUMER_PUTS);
    while got.len() < SLOW_CONSUMER_PUTS {
        let r = next(&mut stream).await;
        assert_eq!(r.watch_id(), id, "{r:?}");
        assert!(!r.canceled() && !r.events().is_empty(), "{r:?}");
        for e in r.events() {
            assert_eq!(e.event_type(), EventType::Put);
            let kv = e.kv().expect("an event's kv");
            got.push((kv.mod_revision(), kv.key_str().unwrap().to_string()));
        }
    }
    if let Some(gap) = got.windows(2).find(|pair| pair[1].0 != pair[0].0 + 1) {
        panic!("events out of order or with a gap: {gap:?}");
    }
    let expected: Vec<(i64, String)> = written.into_iter().collect();
    if let Some(i) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i)) {
        panic!(
            "event {i} of every event exactly once, in revision order: got {:?}, want {:?}",
            got.get(i),
            expected.get(i)
        );
    }
    quiet(&mut stream).await;
}

async fn ten_thousand_watchers_one_stream_and_across_100_streams(
    mut client: Client,
    endpoint: String,
) {
    let keys: Vec<String> = (0..MANY_WATCHERS).map(|i| format!("one/{i:05}")).collect();
    let mut stream = open_watchers(&mut client, &keys).await;
    let written = put_all(&endpoint, keys.clone()).await;
    let revisions = revisions_of(written);
    expect_one_event_each(&mut stream, &keys, &revisions).await;

    let per_stream = MANY_WATCHERS / MANY_STREAMS;
    let mut streams = Vec::with_capacity(MANY_STREAMS);
    let mut all_keys = Vec::with_capacity(MANY_WATCHERS);
    for s in 0..MANY_STREAMS {
        let keys: Vec<String> = (0..per_stream)
            .map(|j| format!("many/{s:03}/{j:03}"))
            .collect();
        streams.push((open_watchers(&mut client, &keys).await, keys.clone()));
        all_keys.extend(keys);
    }
    let revisions = revisions_of(put_all(&endpoint, all_keys).await);
    expect_one_event_on_every_stream(streams, revisions).await;
}

/// [`expect_one_event_each`] on every stream at once, so their waits for
/// nothing more overlap.
async fn expect_one_event_on_every_stream(
    streams: Vec<(Watchers, Vec<String>)>,
    revisions: BTreeMap<String, i64>,
) {
    let revisions = std::sync::Arc::new(revisions);
    let mut readers = tokio::task::JoinSet::new();
    for (mut stream, keys) in streams {
        let revisions = revisions.clone();
        readers.spawn(async move { expect_one_event_each(&mut stream, &keys, &revisions).await });
    }
    while let Some(read) = readers.join_next().await {
        read.expect("a stream's watchers each got their event");
    }
}

/// Many watch streams multiplexed over the one connection a client has
/// (as Kubernetes' API server watches): every stream is created and gets
/// its event.
async fn three_hundred_streams_on_one_connection(mut client: Client, endpoint: String) {
    let mut streams = Vec::with_capacity(STREAMS_ON_ONE_CONNECTION);
    let mut keys = Vec::with_capacity(STREAMS_ON_ONE_CONNECTION);
    for s in 0..STREAMS_ON_ONE_CONNECTION {
        let key = vec![format!("conn/{s:03}")];
        streams.push((open_watchers(&mut client, &key).await, key.clone()));
        keys.extend(key);
    }
    let revisions = revisions_of(put_all(&endpoint, keys).await);
    expect_one_event_on_every_stream(streams, revisions).await;
}

/// With `--max-concurrent-streams` at [`STREAM_LIMIT`], a connection holds
/// that many open streams; the next one waits (the client queues it) until
/// one of them ends, then opens. (Puts go over a connection of their own:
/// a unary call is a stream too.)
async fn max_concurrent_streams_is_honoured(mut client: Client, endpoint: String) {
    let mut open = Vec::new();
    for s in 0..STREAM_LIMIT {
        open.push(open_watchers(&mut client, &[format!("limit/{s}")]).await);
    }
    let mut waiting_client = client.clone();
    let mut waiting = tokio::spawn(async move {
        open_watchers(&mut waiting_client, &["limit/next".to_string()]).await
    });
    assert!(
        tokio::time::timeout(QUIET, &mut waiting).await.is_err(),
        "a stream past the limit was opened at once"
    );
    drop(open.pop());
    let mut next = tokio::time::timeout(ARRIVES, waiting)
        .await
        .expect("the waiting stream opens once another ends")
        .expect("opening the waiting stream");
    let keys = vec!["limit/next".to_string()];
    let revisions = revisions_of(put_all(&endpoint, keys.clone()).await);
    expect_one_event_each(&mut next, &keys, &revisions).await;
}

/// A stream with a watcher on each of `keys`, the i-th with id i, all
/// created. The creates are sent while the created responses are read:
/// a server stops reading requests once its unread responses back up.
async fn open_watchers(client: &mut Client, keys: &[String]) -> Watchers {
    let ids = |i: usize| WatchOptions::new().with_watch_id(i64::try_from(i).unwrap());
    let stream = client
        .watch(keys[0].as_str(), Some(ids(0)))
        .await
        .expect("watch");
    let (mut sender, mut responses) = stream.split();
    let rest: Vec<String> = keys[1..].to_vec();
    let sending = tokio::spawn(async move {
        for (i, key) in rest.into_iter().enumerate() {
            sender
                .watch(key, Some(ids(i + 1)))
                .await
                .expect("send a create");
        }
        sender
    });
    let mut created = Vec::with_capacity(keys.len());
    while created.len() < keys.len() {
        let r = next_response(&mut responses).await;
        assert!(
            r.created() && !r.canceled() && r.events().is_empty(),
            "{r:?}"
        );
        created.push(r.watch_id());
    }
    created.sort_unstable();
    let want: Vec<i64> = (0..keys.len()).map(|i| i64::try_from(i).unwrap()).collect();
    assert!(
        created == want,
        "each watcher created once, with its own id"
    );
    Watchers {
        _requests: sending.await.expect("sending creates"),
        responses,
    }
}

/// A stream of watchers: the request side is kept, since dropping it ends
/// the stream.
struct Watchers {
    _requests: WatchRequestSender,
    responses: WatchResponseStream,
}

async fn next_response(responses: &mut WatchResponseStream) -> WatchResponse {
    tokio::time::timeout(ARRIVES, responses.message())
        .await
        .expect("a watch response in time")
        .expect("the stream works")
        .expect("the stream is open")
}

/// Watcher i of `keys` (id i) gets the one put of `keys[i]`, at the
/// revision it was written, and nothing else arrives.
async fn expect_one_event_each(
    watchers: &mut Watchers,
    keys: &[String],
    revisions: &BTreeMap<String, i64>,
) {
    let responses = &mut watchers.responses;
    let mut seen = vec![0_u32; keys.len()];
    let mut events = 0;
    while events < keys.len() {
        let r = next_response(responses).await;
        let id = usize::try_from(r.watch_id()).expect("an event names its watcher");
        let key = keys
            .get(id)
            .unwrap_or_else(|| panic!("no watcher {id}: {r:?}"));
        assert!(!r.canceled() && !r.created(), "{r:?}");
        for e in r.events() {
            let kv = e.kv().expect("an event's kv");
            assert_eq!(
                (e.event_type(), kv.key_str().unwrap(), kv.mod_revision()),
                (EventType::Put, key.as_str(), revisions[key]),
                "watcher {id}"
            );
            seen[id] += 1;
            events += 1;
        }
    }
    let wrong: Vec<(usize, u32)> = seen
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "(watcher, events) not exactly one: {wrong:?}"
    );
    if let Ok(got) = tokio::time::timeout(QUIET, responses.message()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

fn revisions_of(written: BTreeMap<i64, String>) -> BTreeMap<String, i64> {
    written.into_iter().map(|(rev, key)| (key, rev)).collect()
}

/// Puts a [`MANY_WRITES_VALUE_BYTES`] value at every one of `keys` from [`WRITERS`] concurrent tasks, each
/// with its own client of `endpoint`: the key written at each revision.
async fn put_all(endpoint: &str, keys: Vec<String>) -> BTreeMap<i64, String> {
    let mut writers = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let mine: Vec<String> = keys.iter().skip(w).step_by(WRITERS).cloned().collect();
        let endpoint = endpoint.to_string();
        writers.push(tokio::spawn(async move {
            let mut client = client::connect(&[endpoint], REQUEST_TIMEOUT).await;
            let mut written = Vec::with_capacity(mine.len());
            let value = "v".repeat(MANY_WRITES_VALUE_BYTES);
            for key in mine {
                written.push((put(&mut client, &key, &value).await, key));
            }
            written
        }));
    }
    let mut written = BTreeMap::new();
    for writer in writers {
        for (rev, key) in writer.await.expect("a writer") {
            assert!(written.insert(rev, key).is_none(), "one put per revision");
        }
    }
    assert_eq!(written.len(), keys.len());
    written
}
