//! A database larger than a gigabyte replicates by snapshot: a follower
//! cut off (SIGSTOP) while the leader writes past its log compaction, and a
//! member that joins afterwards, both catch up from the leader's backend
//! streamed to them — with the peak memory of every process involved far
//! below the database's size, since neither side ever holds it whole.
//!
//! `IRONCD_LARGE_SNAPSHOT_MIB` sets the size (default 2 GiB of 1 MiB
//! incompressible values); the peak RSS of each member is printed for
//! BENCHMARKS.md. A member's peak is mostly a fixed cost of its queues
//! and caches (~300–600 MiB with 1 MiB values, measured at 300 MiB and at
//! 1.1 GiB alike), so the size must be well past it for "under half the
//! database" to say that no copy of the database was held.

mod client;

use std::thread;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use ironcd_tests::{ironcd, Cluster, Opts};

const DEFAULT_MIB: usize = 2048;
const VALUE_BYTES: usize = 1 << 20;
const WRITERS: usize = 4;
const WAIT: Duration = Duration::from_secs(600);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// What a member logs once it has restored its backend from a snapshot.
const RESTORED_LINE: &str = "restored the backend from a snapshot";

fn size_mib() -> usize {
    match std::env::var("IRONCD_LARGE_SNAPSHOT_MIB") {
        Ok(v) => v.parse().expect("IRONCD_LARGE_SNAPSHOT_MIB is a number"),
        Err(_) => DEFAULT_MIB,
    }
}

/// An incompressible value for key `n` (xorshift64*, seeded by `n`).
fn value(n: usize) -> Vec<u8> {
    let mut x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(VALUE_BYTES);
    while out.len() < VALUE_BYTES {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

fn key(n: usize) -> String {
    format!("big/{n:06}")
}

/// Writes `count` values of [`VALUE_BYTES`], `WRITERS` at a time.
fn fill(rt: &tokio::runtime::Runtime, endpoints: &[String], count: usize) {
    rt.block_on(async {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let endpoints = endpoints.to_vec();
            writers.push(tokio::spawn(async move {
                let mut client = client::connect(&endpoints, Duration::from_secs(60)).await;
                for n in (w..count).step_by(WRITERS) {
                    client
                        .put(key(n), value(n), None)
                        .await
                        .unwrap_or_else(|e| panic!("put {}: {e}", key(n)));
                }
            }));
        }
        for w in writers {
            w.await.expect("a writer");
        }
    });
}

/// Keys under `big/` and the revision, as `endpoint` serves them locally.
fn local_view(rt: &tokio::runtime::Runtime, endpoint: &str) -> Option<(i64, i64)> {
    rt.block_on(async {
        let mut client = client::connect(&[endpoint.to_string()], Duration::from_secs(60)).await;
        let options = GetOptions::new()
            .with_prefix()
            .with_count_only()
            .with_serializable();
        let response = client.get("big/", Some(options)).await.ok()?;
        Some((response.count(), response.header()?.revision()))
    })
}

fn wait_for(cluster: &Cluster, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            cluster.all_log_tails(30)
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Peak resident memory of process `pid` so far (`VmHWM`), in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

#[test]
fn a_database_of_gigabytes_replicates_by_snapshot_in_bounded_memory() {
    let mib = size_mib();
    let data_bytes = (mib * VALUE_BYTES) as u64;
    let args = [
        "--snapshot-count=20",
        "--experimental-snapshot-catchup-entries=5",
        "--quota-backend-bytes=8589934592",
    ];
    let rt = client::runtime();
    let cluster = Cluster::start(ironcd!(), 3, Opts::with_args(&args));
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let writable: Vec<String> = (0..3)
        .filter(|&i| i != follower)
        .map(|i| cluster.endpoint(i))
        .collect();

    // Cut the follower off while the leader writes the database and
    // compacts its log far past what the follower holds.
    cluster.signal(follower, "STOP");
    let started = Instant::now();
    fill(&rt, &writable, mib);
    eprintln!("filled {mib} MiB in {:?}", started.elapsed());
    // Serializable: the leader's own applied state, which may trail by
    // the last entries a follower applied and acknowledged first.
    let mut want = (0, 0);
    wait_for(&cluster, "the leader to apply every put", || {
        want = local_view(&rt, &cluster.endpoint(leader)).unwrap_or((0, 0));
        want.0 == mib as i64
    });
    cluster.signal(follower, "CONT");
    let started = Instant::now();
    wait_for(&cluster, "the partitioned follower to catch up", || {
        local_view(&rt, &cluster.endpoint(follower)) == Some(want)
    });
    eprintln!("the follower caught up in {:?}", started.elapsed());
    // The restore is logged once it is done, which may be just after its
    // data is served: wait for the line rather than read the log once.
    wait_for(&cluster, "the follower's log to show the restore", || {
        cluster.log_tail(follower, 400).contains(RESTORED_LINE)
    });

    let mut m4 = cluster.join("m4", true, &args);
    let m4_endpoint = m4.client_url.clone();
    let started = Instant::now();
    wait_for(&cluster, "the new member to catch up", || {
        if let Some(status) = m4.exited() {
            panic!("the new member exited ({status}):\n{}", m4.log_tail(40));
        }
        local_view(&rt, &m4_endpoint) == Some(want)
    });
    eprintln!("the new member caught up in {:?}", started.elapsed());
    wait_for(&cluster, "the new member's log to show the restore", || {
        m4.log_tail(400).contains(RESTORED_LINE)
    });

    let peaks = [
        ("leader", peak_rss_bytes(cluster.pid(leader))),
        (
            "partitioned follower",
            peak_rss_bytes(cluster.pid(follower)),
        ),
        ("joined member", peak_rss_bytes(m4.pid())),
    ];
    for (who, peak) in peaks {
        eprintln!(
            "peak RSS of the {who}: {} MiB for a {mib} MiB database",
            peak >> 20
        );
    }
    for (who, peak) in peaks {
        assert!(
            peak < data_bytes / 2,
            "the {who} peaked at {} MiB for a {mib} MiB database: a copy of it was held in memory",
            peak >> 20
        );
    }
}
