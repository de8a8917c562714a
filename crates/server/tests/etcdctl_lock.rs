//! `etcdctl elect` and `etcdctl lock` against etcd 3.4 and ironcd.
//!
//! etcdctl builds both on the KV, Watch and Lease services (clientv3's
//! concurrency package), so these check that those services carry etcd's
//! recipes exactly: the same commands against a one-member cluster of each
//! must print the same lines, once the lease ids in the keys (which each
//! server draws its own way) are numbered in order of appearance.
//!
//! Then the safety property people use a lock for: competing etcdctl
//! processes, each holder killed with SIGKILL (its whole process group),
//! never overlap, their fencing tokens grow, and the lock passes on once
//! the dead holder's lease expires.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::{etcdctl, ironcd, Cluster, Opts, RunningEtcdctl, Server};

/// How long a command may take to print what it should.
const PRINTED: Duration = Duration::from_secs(20);
/// How long a waiter is watched to show it does not go ahead.
const STAYS_WAITING: Duration = Duration::from_millis(1500);
/// How long an interrupted etcdctl may take to resign or unlock and exit.
const EXITS: Duration = Duration::from_secs(20);
/// The competitors' session TTL (`--ttl`), in seconds: short, so that a
/// killed holder's lease runs out quickly, and above etcd's minimum.
const COMPETITOR_TTL_S: u64 = 2;
/// How many processes compete for the lock.
const COMPETITORS: usize = 3;

/// Numbers the lease ids in `<name>/<lease hex>` keys in order of first
/// appearance, so that two servers' transcripts compare.
#[derive(Default)]
struct Leases(HashMap<String, usize>);

impl Leases {
    fn normalise(&mut self, prefix: &str, line: &str) -> String {
        match line.strip_prefix(prefix) {
            Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                let next = self.0.len() + 1;
                let n = *self.0.entry(hex.to_string()).or_insert(next);
                format!("{prefix}LEASE{n}")
            }
            _ => line.to_string(),
        }
    }

    fn all(&mut self, prefix: &str, lines: &[String]) -> Vec<String> {
        lines.iter().map(|l| self.normalise(prefix, l)).collect()
    }
}

/// What a listener and two candidates print through a handover.
fn election_transcript(server: Server) -> Vec<String> {
    let cluster = Cluster::start(server, 1, Opts::default());
    let ep = cluster.host_port(0);
    let listener = RunningEtcdctl::spawn(&ep, &["elect", "--listen", "e"], None);
    // etcdctl prints nothing until there is a leader; give it a moment
    // to be watching.
    thread::sleep(Duration::from_millis(500));
    let first = RunningEtcdctl::spawn(&ep, &["elect", "e", "v1"], None);
    first.await_lines(2, PRINTED, "the first candidate");
    listener.await_lines(2, PRINTED, "the listener, first leader");
    let second = RunningEtcdctl::spawn(&ep, &["elect", "e", "v2"], None);
    thread::sleep(STAYS_WAITING);
    assert!(second.lines().is_empty(), "{:?}", second.lines());
    let (first_status, first_lines) = first.interrupt(EXITS);
    second.await_lines(2, PRINTED, "the second candidate");
    listener.await_lines(4, PRINTED, "the listener, second leader");
    let (second_status, second_lines) = second.interrupt(EXITS);
    let (listener_status, listener_lines) = listener.interrupt(EXITS);
    let mut leases = Leases::default();
    let mut out = vec!["listener:".to_string()];
    out.extend(leases.all("e/", &listener_lines));
    out.push(format!("exit {:?}", listener_status.code()));
    out.push("first:".to_string());
    out.extend(leases.all("e/", &first_lines));
    out.push(format!("exit {:?}", first_status.code()));
    out.push("second:".to_string());
    out.extend(leases.all("e/", &second_lines));
    out.push(format!("exit {:?}", second_status.code()));
    let left = etcdctl(&[ep], &["get", "--prefix", "e/", "--keys-only"]);
    out.push(format!("left: {:?}", String::from_utf8_lossy(&left.stdout)));
    out
}

/// What `etcdctl lock` prints, with and without a command to run.
fn lock_transcript(server: Server) -> Vec<String> {
    let cluster = Cluster::start(server, 1, Opts::default());
    let ep = vec![cluster.host_port(0)];
    let mut leases = Leases::default();
    let mut out = Vec::new();
    let script = "echo rev=$ETCD_LOCK_REV; echo $ETCD_LOCK_KEY; exit 3";
    for args in [
        &["lock", "--ttl=5", "l", "--", "sh", "-c", script][..],
        &["lock", "l", "--", "true"][..],
    ] {
        let run = etcdctl(&ep, args);
        out.push(format!("{args:?}:"));
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        out.extend(leases.all("l/", &lines));
        out.push(format!("stderr {:?}", String::from_utf8_lossy(&run.stderr)));
        out.push(format!("exit {:?}", run.status.code()));
    }
    // Without a command: prints the key, holds the lock until interrupted.
    let holder = RunningEtcdctl::spawn(&ep[0], &["lock", "l"], None);
    holder.await_lines(1, PRINTED, "the holder");
    let waiter = RunningEtcdctl::spawn(&ep[0], &["lock", "l"], None);
    thread::sleep(STAYS_WAITING);
    assert!(waiter.lines().is_empty(), "{:?}", waiter.lines());
    let (status, lines) = holder.interrupt(EXITS);
    out.push("holder:".to_string());
    out.extend(leases.all("l/", &lines));
    out.push(format!("exit {:?}", status.code()));
    waiter.await_lines(1, PRINTED, "the waiter");
    let (status, lines) = waiter.interrupt(EXITS);
    out.push("waiter:".to_string());
    out.extend(leases.all("l/", &lines));
    out.push(format!("exit {:?}", status.code()));
    let left = etcdctl(&ep, &["get", "--prefix", "l/", "--keys-only"]);
    out.push(format!("left: {:?}", String::from_utf8_lossy(&left.stdout)));
    out
}

/// Runs `transcript` against etcd and ironcd at once; they must agree.
fn differential(name: &str, transcript: fn(Server) -> Vec<String>) {
    let (etcd, ours) = thread::scope(|s| {
        let etcd = s.spawn(|| transcript(Server::etcd()));
        let ours = s.spawn(|| transcript(ironcd!()));
        (etcd.join().unwrap(), ours.join().unwrap())
    });
    assert_eq!(
        ours, etcd,
        "{name}: ironcd (left) differs from etcd (right)"
    );
}

#[test]
fn etcdctl_elect_prints_what_etcd_prints() {
    differential("elect", election_transcript);
}

#[test]
fn etcdctl_lock_prints_what_etcd_prints() {
    differential("lock", lock_transcript);
}

/// The fencing token a competitor printed once it held the lock.
fn token(competitor: &RunningEtcdctl) -> Option<i64> {
    competitor
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix("acquired ")?.parse().ok())
}

/// Competitors take the lock one at a time as each holder is SIGKILLed.
/// Returns the fencing tokens in the order the lock was held.
fn competing_holders(server: Server) -> Vec<i64> {
    let cluster = Cluster::start(server, 1, Opts::default());
    let ep = cluster.host_port(0);
    let ttl = format!("--ttl={COMPETITOR_TTL_S}");
    let script = "echo acquired $ETCD_LOCK_REV; exec sleep 600";
    let mut waiting: Vec<RunningEtcdctl> = (0..COMPETITORS)
        .map(|_| {
            RunningEtcdctl::spawn(
                &ep,
                &["lock", &ttl, "fence", "--", "sh", "-c", script],
                None,
            )
        })
        .collect();
    let mut tokens = Vec::new();
    while !waiting.is_empty() {
        // Exactly one of those still running takes the lock…
        let deadline = Instant::now() + PRINTED;
        let holder = loop {
            if let Some(i) = waiting.iter().position(|c| token(c).is_some()) {
                break i;
            }
            assert!(
                Instant::now() < deadline,
                "nobody took the lock after {tokens:?}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        let holder = waiting.swap_remove(holder);
        // …and keeps it alone while it lives.
        thread::sleep(STAYS_WAITING);
        for other in &waiting {
            assert_eq!(token(other), None, "two holders at once after {tokens:?}");
        }
        tokens.push(token(&holder).unwrap());
        holder.kill();
    }
    // Every dead holder's key goes with its lease.
    let deadline = Instant::now() + PRINTED;
    loop {
        let left = etcdctl(
            std::slice::from_ref(&ep),
            &["get", "--prefix", "fence/", "--keys-only"],
        );
        if left.stdout.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys outlive their leases: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        thread::sleep(Duration::from_millis(100));
    }
    tokens
}

#[test]
fn a_killed_holder_passes_the_lock_on_once_its_lease_expires() {
    let (etcd, ours) = thread::scope(|s| {
        let etcd = s.spawn(|| competing_holders(Server::etcd()));
        let ours = s.spawn(|| competing_holders(ironcd!()));
        (etcd.join().unwrap(), ours.join().unwrap())
    });
    for (name, tokens) in [("etcd", &etcd), ("ironcd", &ours)] {
        assert_eq!(tokens.len(), COMPETITORS, "{name}: {tokens:?}");
        assert!(
            tokens.windows(2).all(|w| w[0] < w[1]),
            "{name}: fencing tokens must grow: {tokens:?}"
        );
    }
}
