//! The Watch service through the real `etcd-client` crate, each area run
//! against etcd 3.4 (proving the expectations are etcd's) and ironcd on a
//! fresh one-member cluster (`--max-request-bytes=1024`, so fragments are
//! easy to provoke): created responses, events of every write path, txn
//! atomicity, prefixes and ranges, historical starts, `prev_kv`, filters,
//! cancel, duplicate ids, compaction, progress, fragments, many watchers.

mod client;

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchFilterType, WatchOptions,
    WatchResponse, WatchStream,
};
use ironcd_tests::{Cluster, Opts, Server};

const MAX_REQUEST_BYTES: usize = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a response may take to arrive.
const ARRIVES: Duration = Duration::from_secs(10);
/// How long the tests wait to see that nothing more arrives.
const QUIET: Duration = Duration::from_millis(500);

macro_rules! on_both_implementations {
    ($($area:ident),* $(,)?) => {
        mod etcd {
            $(
                #[test]
                fn $area() {
                    super::run(super::Server::etcd(), stringify!($area), super::$area);
                }
            )*
        }
        mod ironcd {
            $(
                #[test]
                fn $area() {
                    super::run(ironcd_tests::ironcd!(), stringify!($area), super::$area);
                }
            )*
        }
    };
}

on_both_implementations!(
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
);

fn run<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let opts = Opts::with_args(&[&format!("--max-request-bytes={MAX_REQUEST_BYTES}")]);
    let cluster = Cluster::start(server, 1, opts);
    let rt = client::runtime();
    rt.block_on(async {
        let client = client::connect(&[cluster.endpoint(0)], REQUEST_TIMEOUT).await;
        if let Err(e) = tokio::spawn(area(client)).await {
            panic!(
                "{area_name} on {} failed: {e}\n{}",
                cluster.implementation().name(),
                cluster.log_tail(0, 30)
            );
        }
    });
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
