//! Three ironcd processes on loopback: SIGKILL the leader while clients
//! write; every acknowledged write must be readable from every member, and
//! the killed member rejoins from its own data directory. Each phase waits
//! for its event (a count of acknowledged writes, a new leader), bounded.

mod client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use ironcd_tests::{ironcd, Cluster, Opts};

const WRITERS: usize = 8;
/// Each writer stops after this many acknowledged writes, or when told to.
const MAX_WRITES_PER_WRITER: usize = 5_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Acknowledged writes before the leader is killed: past
/// `--snapshot-count=2000`, so the killed member has normally taken a raft
/// snapshot and restarts from it.
const WRITES_BEFORE_KILL: usize = 2_500;
/// Writes acknowledged after the new leader is reported: the cluster goes on
/// without the killed member.
const WRITES_AFTER_FAILOVER: usize = 500;
/// The bound on each wait for acknowledged writes (they usually take a few
/// seconds).
const ACK_TIMEOUT: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Every write the test waits for; the writers' cap must not stop them
/// first.
const WRITES_AWAITED: usize = WRITES_BEFORE_KILL + WRITES_AFTER_FAILOVER;
const _: () = assert!(WRITES_AWAITED < WRITERS * MAX_WRITES_PER_WRITER);

/// Writes `w/<writer>/<n>` = `n` until `stop`, counting each acknowledged
/// write in `acks`; returns what was acknowledged (key → value). A failed
/// write is retried under a new key, so an unacknowledged one may or may not
/// exist afterwards.
async fn writer(
    endpoints: Vec<String>,
    id: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> BTreeMap<String, String> {
    let mut client = client::connect(&endpoints, REQUEST_TIMEOUT).await;
    let mut acked = BTreeMap::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && acked.len() < MAX_WRITES_PER_WRITER {
        let (key, value) = (format!("w/{id:02}/{n:06}"), n.to_string());
        n += 1;
        if client.put(key.as_str(), value.as_str(), None).await.is_ok() {
            acked.insert(key, value);
            acks.fetch_add(1, Ordering::Relaxed);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    acked
}

/// Waits until the writers have `target` acknowledged writes in all; fails
/// the test, with the members' log tails, if they do not within
/// `ACK_TIMEOUT`.
fn wait_for_acks(cluster: &Cluster, acks: &AtomicUsize, target: usize, what: &str) {
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        let n = acks.load(Ordering::Relaxed);
        if n >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: only {n} of {target} writes acknowledged within {ACK_TIMEOUT:?}\n{}",
            cluster.all_log_tails(20)
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Every key under `w/` on `endpoint`, read linearizably there.
fn read_all(rt: &tokio::runtime::Runtime, endpoint: String) -> BTreeMap<String, String> {
    rt.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut client =
                client::connect(std::slice::from_ref(&endpoint), REQUEST_TIMEOUT).await;
            match client
                .get("w/", Some(GetOptions::new().with_prefix()))
                .await
            {
                Ok(resp) => {
                    return resp
                        .kvs()
                        .iter()
                        .map(|kv| {
                            (
                                kv.key_str().unwrap().to_string(),
                                kv.value_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("reading from {endpoint}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("reading from {endpoint}: {e}"),
            }
        }
    })
}

fn assert_has_all(
    member: usize,
    found: &BTreeMap<String, String>,
    acked: &BTreeMap<String, String>,
) {
    let missing: Vec<&String> = acked
        .keys()
        .filter(|k| found.get(*k) != acked.get(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "member {member} lost {} of {} acknowledged writes, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn sigkill_the_leader_under_write_load_loses_nothing() {
    // Snapshots every 2000 entries, so the restarted member also recovers
    // across a raft snapshot and a compacted log.
    let mut cluster = Cluster::start(ironcd!(), 3, Opts::with_args(&["--snapshot-count=2000"]));
    let leader = cluster.wait_for_leader();
    let endpoints = cluster.endpoints();
    let rt = client::runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| rt.spawn(writer(endpoints.clone(), id, stop.clone(), acks.clone())))
        .collect();

    wait_for_acks(&cluster, &acks, WRITES_BEFORE_KILL, "before the kill");
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, leader, "a live member must take over");
    let at_failover = acks.load(Ordering::Relaxed);
    wait_for_acks(
        &cluster,
        &acks,
        at_failover + WRITES_AFTER_FAILOVER,
        "after the failover",
    );
    stop.store(true, Ordering::Relaxed);

    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(rt.block_on(w).expect("writer task"));
    }
    assert_eq!(
        acked.len(),
        acks.load(Ordering::Relaxed),
        "every acknowledged write is returned once"
    );
    assert!(
        acked.len() >= WRITES_AWAITED,
        "too few writes were acknowledged: {}",
        acked.len()
    );

    for i in (0..3).filter(|&i| i != leader) {
        assert_has_all(i, &read_all(&rt, cluster.endpoint(i)), &acked);
    }
    cluster.restart(leader);
    cluster.wait_for_leader();
    let restarted = read_all(&rt, cluster.endpoint(leader));
    assert_has_all(leader, &restarted, &acked);
    // Every member holds the same history, not just the acknowledged part.
    for i in 0..3 {
        assert_eq!(
            read_all(&rt, cluster.endpoint(i)),
            restarted,
            "member {i} differs"
        );
    }
}

/// A new member SIGKILLed right after it first serves, before its backend
/// has committed on its own timer, restarts and serves: what it wrote when
/// it was founded (the cluster's members) was durable before it ran.
#[test]
fn a_member_killed_right_after_its_first_start_restarts() {
    for members in [1, 3] {
        let mut cluster = Cluster::start(ironcd!(), members, Opts::default());
        for i in 0..members {
            cluster.kill(i);
        }
        cluster.restart_many(&(0..members).collect::<Vec<_>>());
        let leader = cluster.wait_for_leader();
        let out = ironcd_tests::etcdctl(&[cluster.host_port(leader)], &["put", "k", "v"]);
        assert!(
            out.status.success(),
            "{members} member(s): put after the restart: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.all_log_tails(20)
        );
    }
}
