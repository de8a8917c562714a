//! Raft snapshots between ironcd processes: a follower that fell behind
//! log compaction, and a member that joins, catch up from the leader's
//! backend streamed to them; a member killed at every step of installing
//! one comes back with one complete database.

mod client;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use ironcd_tests::{etcdctl, ironcd, Cluster, Opts};

const WAIT: Duration = Duration::from_secs(180);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Snapshots every few entries, and few entries kept behind one: a member
/// that misses a few dozen writes can only catch up from a snapshot.
const SNAPSHOT_ARGS: [&str; 2] = [
    "--snapshot-count=20",
    "--experimental-snapshot-catchup-entries=5",
];

/// Polls `f` until it returns `Some`, failing after [`WAIT`] with `what`
/// and the cluster's logs.
fn eventually<T>(cluster: &Cluster, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            cluster.all_log_tails(30)
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Keys under `prefix` and the store revision member `i` serves locally
/// (serializable), if it answers.
fn local_view(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    i: usize,
    prefix: &str,
) -> Option<(i64, i64)> {
    rt.block_on(async {
        let mut client = client::connect(&[cluster.endpoint(i)], Duration::from_secs(30)).await;
        let options = GetOptions::new()
            .with_prefix()
            .with_count_only()
            .with_serializable();
        let response = client.get(prefix, Some(options)).await.ok()?;
        Some((response.count(), response.header()?.revision()))
    })
}

/// Waits until member `i` serves exactly what the leader serves under
/// `prefix` (count and revision).
fn wait_caught_up(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    i: usize,
    leader: usize,
    prefix: &str,
) {
    let want = local_view(rt, cluster, leader, prefix).expect("the leader answers");
    eventually(
        cluster,
        &format!("member {i} to serve {want:?} under {prefix}"),
        || (local_view(rt, cluster, i, prefix)? == want).then_some(()),
    );
}

/// Every name in the member directory that a finished restore leaves
/// behind must be gone: `db.old`, `db.restore`, received snapshot data.
fn assert_no_restore_leftovers(data_dir: &Path) {
    let member = data_dir.join("member");
    for name in ["db.old", "db.restore"] {
        assert!(
            !member.join(name).exists(),
            "{name} is left in {}",
            member.display()
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(member.join("snap"))
        .expect("list snap/")
        .map(|e| {
            e.expect("a dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.contains(".snap.db"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "received snapshot data left: {leftovers:?}"
    );
}

fn put_many(rt: &tokio::runtime::Runtime, endpoints: &[String], prefix: &str, n: usize) {
    rt.block_on(async {
        let mut client = client::connect(endpoints, Duration::from_secs(30)).await;
        for k in 0..n {
            client
                .put(format!("{prefix}{k:04}"), format!("v{k}"), None)
                .await
                .unwrap_or_else(|e| panic!("put {prefix}{k:04}: {e}"));
        }
    });
}

#[test]
fn a_member_killed_at_every_step_of_a_snapshot_install_comes_back_whole() {
    let rt = client::runtime();
    let mut cluster = Cluster::start(ironcd!(), 3, Opts::with_args(&SNAPSHOT_ARGS));
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let others: Vec<String> = (0..3)
        .filter(|&i| i != follower)
        .map(|i| cluster.endpoint(i))
        .collect();
    for point in [
        "restore_before_swap",
        "restore_after_set_aside",
        "restore_after_swap",
    ] {
        cluster.kill(follower);
        // Past several snapshots and their compaction: the follower's log
        // ends before the leader's first entry.
        put_many(&rt, &others, &format!("{point}/"), 60);
        cluster.spawn_with_env(follower, &[("IRONCD_FAILPOINTS", point)]);
        let status = cluster.wait_exit(follower, WAIT);
        assert_eq!(
            status.signal(),
            Some(6),
            "member {follower} should have aborted at {point}, ended {status:?}\n{}",
            cluster.log_tail(follower, 40)
        );
        let log = cluster.log_tail(follower, 200);
        assert!(log.contains(&format!("crashing at {point}")), "{log}");
        cluster.restart(follower);
        wait_caught_up(&rt, &cluster, follower, leader, "");
        assert_eq!(
            local_view(&rt, &cluster, follower, &format!("{point}/")).map(|v| v.0),
            Some(60),
            "member {follower} after a crash at {point}"
        );
        assert_no_restore_leftovers(cluster.data_dir(follower));
    }
    // The restored members agree byte for byte with the others.
    let all: Vec<String> = (0..3).map(|i| cluster.host_port(i)).collect();
    let hashes = etcdctl(&all, &["endpoint", "hashkv", "-w", "json"]);
    assert!(hashes.status.success(), "{hashes:?}");
    let json: serde_json::Value = serde_json::from_slice(&hashes.stdout).expect("hashkv json");
    let values: Vec<u64> = json
        .as_array()
        .expect("one answer per endpoint")
        .iter()
        .map(|e| e["HashKV"]["hash"].as_u64().expect("a hash"))
        .collect();
    assert_eq!(values.len(), 3);
    assert!(
        values.iter().all(|h| *h == values[0]),
        "hashes differ: {values:?}"
    );
}
