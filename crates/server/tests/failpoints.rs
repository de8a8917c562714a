//! ironcd's `fail` points, armed in a member process built with the
//! `failpoints` feature (`cargo test -p ironcd-server --features
//! failpoints --test failpoints`; without the feature this binary is
//! empty): through `FAILPOINTS` at start and through the
//! `IRONCD_FAILPOINTS_HTTP` endpoint. A `panic` action ends the member
//! (the binary's panic hook aborts, SIGABRT), and a restarted member has
//! lost nothing it acknowledged; so does a full disk (`return` at
//! `walWriteNoSpace` or `backendCommitNoSpace`), whose error is fatal; a
//! `sleep` on the watch path delays events and loses none.
#![cfg(feature = "failpoints")]

mod client;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use etcd_client::{Client, GetOptions, WatchOptions, WatchStream};
use ironcd_tests::{free_ports, ironcd, Cluster, Opts};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a member may take to die once its point is reached.
const EXIT_WAIT: Duration = Duration::from_secs(60);
/// What a write on a full disk fails with, as the OS words it.
const NO_SPACE: &str = "No space left on device (os error 28)";
/// How long the endpoint may take to answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a watch response may take, sleeps included.
const ARRIVES: Duration = Duration::from_secs(30);
/// `std::process::abort`'s signal.
const SIGABRT: i32 = 6;
/// Puts the watch test makes under its sleeping points.
const WATCHED_PUTS: usize = 10;

/// One member, started again with `env` (the harness starts members
/// without extra environment; the first run only creates the cluster).
fn member_with_env(env: &[(&str, &str)]) -> Cluster {
    let mut cluster = Cluster::start(ironcd!(), 1, Opts::default());
    stop_cleanly(&mut cluster);
    cluster.spawn_with_env(0, env);
    cluster
}

/// SIGTERM, not SIGKILL: a member killed within its first backend batch
/// interval loses the founding member records it wrote at its first start
/// (they are not committed before its identity file is), and then never
/// publishes itself. These tests crash members later, on purpose.
fn stop_cleanly(cluster: &mut Cluster) {
    let status = cluster.terminate(0);
    assert!(status.success(), "a clean stop, ended {status:?}");
}

/// A free loopback address for the endpoint.
fn endpoint_addr() -> String {
    format!("127.0.0.1:{}", free_ports(1)[0])
}

/// One HTTP/1.1 request to the failpoint endpoint: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .expect("a read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send a request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read a response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// The member ended by the abort of a panic at `point`.
fn assert_panicked_at(cluster: &Cluster, status: ExitStatus, point: &str) {
    let log = cluster.log_tail(0, 100);
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "the member should have aborted at {point}, ended {status:?}\n{log}"
    );
    assert!(
        log.contains(&format!("failpoint {point} panic")),
        "no panic at {point} in the log\n{log}"
    );
}

async fn connect(cluster: &Cluster) -> Client {
    client::connect(&[cluster.endpoint(0)], REQUEST_TIMEOUT).await
}

/// The keys under `prefix`, in order.
async fn keys(client: &mut Client, prefix: &str) -> Vec<String> {
    let got = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    got.kvs()
        .iter()
        .map(|kv| kv.key_str().expect("a UTF-8 key").to_string())
        .collect()
}

/// A single member restarted with `FAILPOINTS=raftBeforeSave=panic` dies
/// before it serves: its election's hard state is its first WAL save (a
/// member never serves before one, so the point cannot wait for a put).
/// Started again without it, it serves everything it acknowledged.
#[test]
fn raft_before_save_panic_armed_at_start_ends_the_member_and_loses_nothing() {
    let rt = client::runtime();
    let mut cluster = Cluster::start(ironcd!(), 1, Opts::default());
    let written: Vec<String> = (0..10).map(|i| format!("a/{i:02}")).collect();
    rt.block_on(async {
        let mut client = connect(&cluster).await;
        for key in &written {
            client.put(key.as_str(), "v", None).await.expect("put");
        }
    });
    stop_cleanly(&mut cluster);
    cluster.spawn_with_env(0, &[("FAILPOINTS", "raftBeforeSave=panic")]);
    let status = cluster.wait_exit(0, EXIT_WAIT);
    assert_panicked_at(&cluster, status, "raftBeforeSave");

    cluster.restart(0);
    rt.block_on(async {
        let mut client = connect(&cluster).await;
        assert_eq!(keys(&mut client, "a/").await, written);
        client.put("a/after", "v", None).await.expect("put");
    });
}

/// The endpoint arms, lists, shows and disarms points and refuses bad
/// actions and unknown names; `beforeCommit=panic` armed through it ends
/// the member at the backend commit of its next put, which the restarted
/// member still has if it was acknowledged (raft's log replays it).
#[test]
fn the_http_endpoint_arms_points_and_before_commit_panic_ends_the_member() {
    let rt = client::runtime();
    let addr = endpoint_addr();
    let mut cluster = member_with_env(&[("IRONCD_FAILPOINTS_HTTP", addr.as_str())]);
    cluster.wait_ready(0);

    assert_eq!(http(&addr, "GET", "/", ""), (200, String::new()));
    let (status, body) = http(&addr, "PUT", "/beforeCommit", "explode");
    assert_eq!(status, 400, "a bad action: {body}");
    assert!(body.contains("beforeCommit"), "{body}");
    let (status, body) = http(&addr, "PUT", "/noSuchPoint", "panic");
    assert_eq!(status, 404, "an unknown point: {body}");
    assert_eq!(http(&addr, "PUT", "/afterCommit", "sleep(1)").0, 204);
    assert_eq!(
        http(&addr, "GET", "/afterCommit", ""),
        (200, "sleep(1)".into())
    );
    assert_eq!(http(&addr, "DELETE", "/afterCommit", "").0, 204);
    assert_eq!(http(&addr, "GET", "/afterCommit", "").0, 404);
    assert_eq!(http(&addr, "PUT", "/beforeCommit", "panic").0, 204);
    assert_eq!(
        http(&addr, "GET", "/", ""),
        (200, "beforeCommit=panic\n".into())
    );

    // Acknowledged once applied, before the backend commits it; the commit
    // then panics. Either way the member must die.
    let acknowledged = rt.block_on(async {
        let mut client = connect(&cluster).await;
        client.put("b/last", "v", None).await.is_ok()
    });
    let status = cluster.wait_exit(0, EXIT_WAIT);
    assert_panicked_at(&cluster, status, "beforeCommit");

    cluster.restart(0);
    rt.block_on(async {
        let mut client = connect(&cluster).await;
        if acknowledged {
            assert_eq!(keys(&mut client, "b/").await, ["b/last"]);
        }
        client.put("b/after", "v", None).await.expect("put");
    });
}

/// The member stopped by itself on the ENOSPC that `return` at `point`
/// raised: the error is fatal (a panic, which the binary's hook turns into
/// an abort) and the log names it.
fn assert_stopped_on_no_space(cluster: &Cluster, status: ExitStatus, point: &str) {
    let log = cluster.log_tail(0, 100);
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "the member should have stopped on the error at {point}, ended {status:?}\n{log}"
    );
    assert!(
        log.contains(NO_SPACE),
        "the log does not name the error at {point}\n{log}"
    );
}

/// A full disk at `point` (`return` fails its write with ENOSPC, the
/// robustness suite's full disk), armed through the endpoint after ten
/// acknowledged puts of keys under `prefix`: the next put's write fails, and the member stops by
/// itself, as etcd's `lg.Fatal` stops it, rather than retrying or serving
/// on. Started again with room on the disk, it has every put it
/// acknowledged (the WAL is the source of truth) and takes new ones.
/// Returns whether the put under the armed point was acknowledged.
fn a_full_disk_at(point: &str, prefix: &str) -> bool {
    let rt = client::runtime();
    let addr = endpoint_addr();
    let mut cluster = member_with_env(&[("IRONCD_FAILPOINTS_HTTP", addr.as_str())]);
    cluster.wait_ready(0);
    let mut acknowledged: Vec<String> = (0..10).map(|i| format!("{prefix}{i:02}")).collect();
    let last = format!("{prefix}last");
    let last_acknowledged = rt.block_on(async {
        let mut client = connect(&cluster).await;
        for key in &acknowledged {
            client.put(key.as_str(), "v", None).await.expect("put");
        }
        assert_eq!(http(&addr, "PUT", &format!("/{point}"), "return").0, 204);
        client.put(last.as_str(), "v", None).await.is_ok()
    });
    let status = cluster.wait_exit(0, EXIT_WAIT);
    assert_stopped_on_no_space(&cluster, status, point);

    cluster.restart(0);
    if last_acknowledged {
        acknowledged.push(last.clone());
    }
    rt.block_on(async {
        let mut client = connect(&cluster).await;
        let mut got = keys(&mut client, prefix).await;
        // One that was not acknowledged may have been applied or not.
        if !last_acknowledged {
            got.retain(|key| *key != last);
        }
        assert_eq!(got, acknowledged);
        let after = format!("{prefix}after");
        client.put(after.as_str(), "v", None).await.expect("put");
        assert_eq!(keys(&mut client, &after).await, [after]);
    });
    last_acknowledged
}

/// The WAL write of the put's entry fails: raft cannot make it durable, so
/// it is never committed nor acknowledged, and the raft thread's fatal
/// error ends the member.
#[test]
fn a_full_disk_under_the_wal_ends_the_member_and_loses_nothing() {
    assert!(
        !a_full_disk_at("walWriteNoSpace", "wal/"),
        "a put whose entry the WAL could not write was acknowledged"
    );
}

/// The put is acknowledged once applied, before the backend commits it
/// (etcd's order); the committer's failed commit then ends the member
/// within one batch interval, with no further write to wait for, and the
/// restarted member replays the put from its WAL.
#[test]
fn a_full_disk_under_the_backend_ends_the_member_and_loses_nothing() {
    a_full_disk_at("backendCommitNoSpace", "backend/");
}

/// The next response of `stream`, bounded.
async fn next_event_keys(stream: &mut WatchStream) -> Vec<String> {
    let response = tokio::time::timeout(ARRIVES, stream.message())
        .await
        .expect("a watch response in time")
        .expect("the stream works")
        .expect("the stream is open");
    response
        .events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("an event's kv");
            kv.key_str().expect("a UTF-8 key").to_string()
        })
        .collect()
}

/// Reads `stream` until it has sent `n` events: their keys, in order.
async fn collect_keys(stream: &mut WatchStream, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(next_event_keys(stream).await);
    }
    got
}

async fn watch(client: &mut Client, prefix: &str, start_revision: i64) -> WatchStream {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start_revision);
    let mut stream = client.watch(prefix, Some(options)).await.expect("watch");
    let created = tokio::time::timeout(ARRIVES, stream.message())
        .await
        .expect("a created response in time")
        .expect("the stream works")
        .expect("the stream is open");
    assert!(created.created(), "{created:?}");
    stream
}

/// With `beforeSendWatchResponse` (a live watcher's stream) and
/// `beforeSyncWatchers` (a watcher catching up from an old revision)
/// sleeping, every event still arrives, in order. Then the points are shown
/// to be on those paths: `beforeSendWatchResponse=panic` ends the member
/// at the next event, and a member started with
/// `FAILPOINTS=beforeSyncWatchers=panic` serves until a watcher needs
/// syncing.
#[test]
fn sleeping_watch_points_delay_events_and_lose_none() {
    let rt = client::runtime();
    let addr = endpoint_addr();
    let mut cluster = member_with_env(&[("IRONCD_FAILPOINTS_HTTP", addr.as_str())]);
    cluster.wait_ready(0);
    let written: Vec<String> = (0..WATCHED_PUTS).map(|i| format!("w/{i:02}")).collect();

    // The client and its streams outlive the member: a stream cancelled
    // before its event is sent would never reach the point.
    let _open = rt.block_on(async {
        let mut client = connect(&cluster).await;
        let mut live = watch(&mut client, "w/", 0).await;
        assert_eq!(
            http(&addr, "PUT", "/beforeSendWatchResponse", "sleep(50)").0,
            204
        );
        assert_eq!(
            http(&addr, "PUT", "/beforeSyncWatchers", "sleep(50)").0,
            204
        );
        let mut first_revision = 0;
        for key in &written {
            let put = client.put(key.as_str(), "v", None).await.expect("put");
            if first_revision == 0 {
                first_revision = put.header().expect("a header").revision();
            }
        }
        // From the first put: unsynced, so it catches up through the sync
        // pass (and its stream through the send point too).
        let mut catching_up = watch(&mut client, "w/", first_revision).await;
        assert_eq!(collect_keys(&mut live, WATCHED_PUTS).await, written);
        assert_eq!(collect_keys(&mut catching_up, WATCHED_PUTS).await, written);

        assert_eq!(
            http(&addr, "PUT", "/beforeSendWatchResponse", "panic").0,
            204
        );
        // The put is answered or not; the event's send must end the member.
        let _ = client.put("w/last", "v", None).await;
        (client, live, catching_up)
    });
    let status = cluster.wait_exit(0, EXIT_WAIT);
    assert_panicked_at(&cluster, status, "beforeSendWatchResponse");

    cluster.spawn_with_env(0, &[("FAILPOINTS", "beforeSyncWatchers=panic")]);
    cluster.wait_ready(0);
    let _open = rt.block_on(async {
        let mut client = connect(&cluster).await;
        assert!(keys(&mut client, "w/").await.len() >= WATCHED_PUTS);
        let options = WatchOptions::new().with_prefix().with_start_revision(1);
        // The member may die before or after it answers the creation.
        let stream = client.watch("w/", Some(options)).await.ok();
        (client, stream)
    });
    let status = cluster.wait_exit(0, EXIT_WAIT);
    assert_panicked_at(&cluster, status, "beforeSyncWatchers");
}
