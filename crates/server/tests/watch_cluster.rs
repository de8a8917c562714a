//! Watch on 3-member clusters, etcd 3.4 and ironcd alike, through the
//! `etcd-client` crate: a watcher on a follower under concurrent writers
//! on every member while the leader is killed gets every revision once,
//! in order, each revision's events together (checked against the history
//! replayed from the start); a watcher on a follower that falls behind log
//! compaction and installs a snapshot loses and repeats nothing; a client
//! whose member is killed resumes from its last revision + 1 elsewhere; a
//! `hasleader` watch ends with `etcdserver: no leader` when its member is
//! cut off, one without it stays open.

mod client;

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchStream};
use ironcd_tests::{ironcd, Cluster, Opts, Server};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const ARRIVES: Duration = Duration::from_secs(30);
/// Txns written while a watched follower is stopped.
const STOPPED_WRITES: usize = 600;

/// (revision, key, put?) of each event.
type Seen = Vec<(i64, String, bool)>;

async fn watch_all(client: &mut Client, from: i64) -> WatchStream {
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream = client.watch("w/", Some(options)).await.expect("watch");
    let created = next(&mut stream).await.expect("created");
    assert!(created.created());
    stream
}

async fn next(stream: &mut WatchStream) -> Option<etcd_client::WatchResponse> {
    tokio::time::timeout(ARRIVES, stream.message())
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
}

/// Reads `stream` until it has seen revision `until`; every response's
/// events share one revision (the watcher is live) or are whole revisions.
async fn collect(stream: &mut WatchStream, until: i64, seen: &mut Seen) {
    while seen.last().map_or(0, |s| s.0) < until {
        let Some(resp) = next(stream).await else {
            panic!("the watch stopped at {:?} before {until}", seen.last());
        };
        for e in resp.events() {
            let kv = e.kv().expect("kv");
            seen.push((
                kv.mod_revision(),
                kv.key_str().unwrap().to_string(),
                e.event_type() == EventType::Put,
            ));
        }
    }
}

/// The history from revision 2, replayed by a fresh watch.
async fn replay(client: &mut Client, until: i64) -> Seen {
    let mut stream = watch_all(client, 2).await;
    let mut seen = Vec::new();
    collect(&mut stream, until, &mut seen).await;
    seen
}

fn check_ordered_and_atomic(seen: &Seen) {
    let mut per_rev: BTreeMap<i64, usize> = BTreeMap::new();
    for w in seen.windows(2) {
        assert!(w[0].0 <= w[1].0, "revisions go back: {w:?}");
    }
    for s in seen {
        *per_rev.entry(s.0).or_default() += 1;
    }
    // Every txn in these tests writes two keys at once.
    assert!(
        per_rev.values().all(|&n| n == 2),
        "a txn's events split or lost"
    );
}

async fn write_load(endpoints: Vec<String>, writer: usize, count: usize) {
    let mut client = client::connect(&endpoints, REQUEST_TIMEOUT).await;
    for i in 0..count {
        // Two keys per revision: a torn txn would show.
        let txn = etcd_client::Txn::new().and_then([
            etcd_client::TxnOp::put(format!("w/{writer}/{i}/a"), "v", None),
            etcd_client::TxnOp::put(format!("w/{writer}/{i}/b"), "v", None),
        ]);
        // A write that fails during the failover is simply not in the
        // history; the checks compare against what the history holds.
        let _ = client.txn(txn).await;
    }
}

/// The client URLs of every member but `skip`.
fn endpoints_except(cluster: &Cluster, skip: usize) -> Vec<String> {
    (0..cluster.len())
        .filter(|&i| i != skip)
        .map(|i| cluster.endpoint(i))
        .collect()
}

async fn current(client: &mut Client) -> i64 {
    client
        .get("w/", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

fn guarantees_under_failover(server: Server) {
    let mut cluster = Cluster::start(server, 3, Opts::default());
    let rt = client::runtime();
    let leader = cluster.wait_for_leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    rt.block_on(async {
        let mut watcher = client::connect(&[cluster.endpoint(follower)], REQUEST_TIMEOUT).await;
        let mut stream = watch_all(&mut watcher, 0).await;
        let endpoints = endpoints_except(&cluster, leader);
        let writers: Vec<_> = (0..3)
            .map(|w| tokio::spawn(write_load(endpoints.clone(), w, 60)))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.kill(leader);
        for w in writers {
            w.await.unwrap();
        }
        cluster.wait_for_leader();
        let last = current(&mut watcher).await;
        let mut seen = Vec::new();
        collect(&mut stream, last, &mut seen).await;
        check_ordered_and_atomic(&seen);
        let history = replay(&mut watcher, last).await;
        assert_eq!(seen, history, "reliable: exactly the history, once each");
        // Bookmarkable: a progress notification after all that is at the
        // current revision.
        stream.request_progress().await.unwrap();
        let p = next(&mut stream).await.expect("progress");
        assert!(p.events().is_empty());
        assert_eq!(p.header().unwrap().revision(), last);
    });
}

#[test]
fn etcd_guarantees_under_failover() {
    guarantees_under_failover(Server::etcd());
}

#[test]
fn ironcd_guarantees_under_failover() {
    guarantees_under_failover(ironcd!());
}

/// A watched follower is stopped while the others write far past its log
/// (snapshots every 20 entries, 5 kept behind), then resumed: it catches
/// up by snapshot (ironcd logs the restore) and its watcher gets every
/// revision once.
#[test]
fn ironcd_watch_on_a_follower_that_installs_a_snapshot() {
    let opts = Opts::with_args(&[
        "--snapshot-count=20",
        "--experimental-snapshot-catchup-entries=5",
    ]);
    let cluster = Cluster::start(ironcd!(), 3, opts);
    let rt = client::runtime();
    let leader = cluster.wait_for_leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    rt.block_on(async {
        let mut watcher = client::connect(&[cluster.endpoint(follower)], REQUEST_TIMEOUT).await;
        let mut stream = watch_all(&mut watcher, 0).await;
        let others = endpoints_except(&cluster, follower);
        write_load(others.clone(), 0, 5).await;
        cluster.signal(follower, "STOP");
        // More than raft lets fly to a silent follower (and than the
        // transport queues for it): the rest must come by snapshot.
        write_load(others.clone(), 1, STOPPED_WRITES).await;
        cluster.signal(follower, "CONT");
        let mut writer = client::connect(&others, REQUEST_TIMEOUT).await;
        let last = current(&mut writer).await;
        let mut seen = Vec::new();
        collect(&mut stream, last, &mut seen).await;
        check_ordered_and_atomic(&seen);
        assert_eq!(seen, replay(&mut writer, last).await);
        assert_eq!(seen.len(), 2 * (5 + STOPPED_WRITES));
    });
    assert!(
        cluster
            .log_tail(follower, 400)
            .contains("restored the backend from a snapshot"),
        "the follower caught up by snapshot:\n{}",
        cluster.log_tail(follower, 40)
    );
}

/// The member serving a watch is killed; the client watches again on
/// another member from its last revision + 1 and misses nothing.
fn resume_after_a_kill(server: Server) {
    let mut cluster = Cluster::start(server, 3, Opts::default());
    let rt = client::runtime();
    let leader = cluster.wait_for_leader();
    // A follower serves the watch, so every write succeeds once it is gone.
    let served = (0..3).find(|&i| i != leader).unwrap();
    rt.block_on(async {
        let mut first = client::connect(&[cluster.endpoint(served)], REQUEST_TIMEOUT).await;
        let mut stream = watch_all(&mut first, 0).await;
        let rest = endpoints_except(&cluster, served);
        write_load(rest.clone(), 0, 10).await;
        let mut writer = client::connect(&rest, REQUEST_TIMEOUT).await;
        let mid = current(&mut writer).await;
        let mut seen = Vec::new();
        collect(&mut stream, mid, &mut seen).await;
        cluster.kill(served);
        write_load(rest.clone(), 1, 10).await;
        let last = current(&mut writer).await;
        let mut again = watch_all(&mut writer, mid + 1).await;
        collect(&mut again, last, &mut seen).await;
        assert_eq!(seen, replay(&mut writer, last).await);
        assert_eq!(seen.len(), 2 * 20);
    });
}

#[test]
fn etcd_resume_after_a_kill() {
    resume_after_a_kill(Server::etcd());
}

#[test]
fn ironcd_resume_after_a_kill() {
    resume_after_a_kill(ironcd!());
}

/// How long a member that lost its peers may take to stop knowing a
/// leader and end its `hasleader` streams (election timeouts, the
/// stream's leader check, two slow cores).
const LOSES_LEADER: Duration = Duration::from_secs(30);

/// A watch opened with `hasleader` (clientv3's `WithRequireLeader`) on a
/// follower ends with `etcdserver: no leader` once that follower is cut
/// off from the others; one opened without it stays open.
fn hasleader_watch_ends_without_a_leader(server: Server) {
    let mut cluster = Cluster::start(server, 3, Opts::default());
    let rt = client::runtime();
    let leader = cluster.wait_for_leader();
    let served = (0..3).find(|&i| i != leader).unwrap();
    rt.block_on(async {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(REQUEST_TIMEOUT)
            .with_require_leader(true);
        let mut strict = Client::connect([cluster.endpoint(served)], Some(options))
            .await
            .expect("connect");
        let mut strict_stream = watch_all(&mut strict, 0).await;
        let mut lenient = client::connect(&[cluster.endpoint(served)], REQUEST_TIMEOUT).await;
        let mut lenient_stream = watch_all(&mut lenient, 0).await;
        for i in (0..3).filter(|&i| i != served) {
            cluster.kill(i);
        }
        let ended = tokio::time::timeout(LOSES_LEADER, async {
            loop {
                match strict_stream.message().await {
                    Ok(Some(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("the hasleader watch still open {LOSES_LEADER:?} after the peers died")
        });
        match ended {
            Err(etcd_client::Error::GRpcStatus(status)) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert_eq!(status.message(), "etcdserver: no leader");
            }
            other => panic!("the hasleader watch should end with no leader, got {other:?}"),
        }
        // The other stream is still open: nothing ends it.
        let quiet = tokio::time::timeout(Duration::from_secs(2), lenient_stream.message()).await;
        assert!(
            quiet.is_err(),
            "the watch without hasleader ended: {quiet:?}"
        );
    });
}

#[test]
fn etcd_hasleader_watch_ends_without_a_leader() {
    hasleader_watch_ends_without_a_leader(Server::etcd());
}

#[test]
fn ironcd_hasleader_watch_ends_without_a_leader() {
    hasleader_watch_ends_without_a_leader(ironcd!());
}
