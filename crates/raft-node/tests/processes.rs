//! Members as separate OS processes on loopback, killed with SIGKILL: the
//! leader under write load, then every member at once. Nothing acknowledged
//! may be lost, and every member comes back from its own disk.
//!
//! Each member is a `raft-member` process (`tests/bin/member_process.rs`),
//! driven by lines on stdin (`propose <payload>`, `status`, …) and
//! answering on stdout.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use ironcd_raft_node::Role;

/// The members' `snapshot_count`: small, so a member killed for a while
/// catches up by snapshot.
const SNAPSHOT_COUNT: u64 = 100;

struct Process {
    child: Child,
    stdin: ChildStdin,
}

/// The parent's side: the children and one channel of their output lines.
struct Processes {
    root: tempfile::TempDir,
    addrs: BTreeMap<u64, String>,
    running: BTreeMap<u64, Process>,
    lines_tx: mpsc::Sender<(u64, String)>,
    lines: mpsc::Receiver<(u64, String)>,
}

impl Processes {
    fn new(n: u64) -> Processes {
        let mut addrs = BTreeMap::new();
        let listeners: Vec<_> = (1..=n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, listener) in listeners.iter().enumerate() {
            addrs.insert(i as u64 + 1, listener.local_addr().unwrap().to_string());
        }
        drop(listeners);
        let (lines_tx, lines) = mpsc::channel();
        Processes {
            root: tempfile::tempdir().unwrap(),
            addrs,
            running: BTreeMap::new(),
            lines_tx,
            lines,
        }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("m{id}"))
    }

    fn start(&mut self, id: u64) {
        self.start_as(id, "new");
    }

    /// Starts member `id`; `mode` is `new` (a member of the initial
    /// cluster, or one restarting) or `join`.
    fn start_as(&mut self, id: u64, mode: &str) {
        self.addrs.entry(id).or_insert_with(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        });
        let addrs = self
            .addrs
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut child = Command::new(env!("CARGO_BIN_EXE_raft-member"))
            .arg(id.to_string())
            .arg(self.dir(id))
            .args([addrs, mode.to_string(), SNAPSHOT_COUNT.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let tx = self.lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((id, line)).is_err() {
                    break;
                }
            }
        });
        self.running.insert(id, Process { child, stdin });
    }

    /// SIGKILL: no chance to flush or close anything.
    fn kill(&mut self, id: u64) {
        let mut process = self.running.remove(&id).unwrap();
        process.child.kill().unwrap();
        process.child.wait().unwrap();
    }

    fn send(&mut self, id: u64, line: &str) {
        if let Some(process) = self.running.get_mut(&id) {
            // A child that just died closes its pipe: the caller retries.
            let _ = writeln!(process.stdin, "{line}").and_then(|_| process.stdin.flush());
        }
    }

    /// Asks every running member for its status, a round every 200 ms,
    /// handing each status line (the sender's id and the line's words) to
    /// `on_status` until it answers true. False if 30 s pass first.
    fn status_rounds(&mut self, mut on_status: impl FnMut(u64, &[&str]) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for id in self.running.keys().copied().collect::<Vec<_>>() {
                self.send(id, "status");
            }
            let until = Instant::now() + Duration::from_millis(200);
            while let Ok((id, line)) = self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                let words: Vec<&str> = line.split(' ').collect();
                if words[0] == "status" && on_status(id, &words) {
                    return true;
                }
            }
        }
        false
    }

    /// Asks every running member for its status until one leads.
    fn leader(&mut self) -> u64 {
        let mut leader = None;
        let found = self.status_rounds(|_, words| {
            if words[2] == format!("{:?}", Role::Leader) {
                leader = Some(words[1].parse().unwrap());
            }
            leader.is_some()
        });
        assert!(found, "no leader among the processes");
        leader.unwrap()
    }

    /// Waits until every running member's log starts past `index`: a
    /// member behind it can only catch up by snapshot. The snapshot and the
    /// compaction after it trail the apply, on a loaded machine by a while.
    fn wait_compacted_past(&mut self, index: u64) {
        let members = self.running.len();
        let mut compacted = BTreeSet::new();
        let done = self.status_rounds(|id, words| {
            if words[4].parse::<u64>().unwrap() > index + 1 {
                compacted.insert(id);
            }
            compacted.len() == members
        });
        assert!(
            done,
            "only members {:?} of {:?} compacted their logs past {index}",
            compacted,
            self.running.keys().collect::<Vec<_>>()
        );
    }

    /// Has the leader make a membership change, retrying until it commits.
    fn conf(&mut self, kind: &str, target: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let leader = self.leader();
            self.send(leader, &format!("conf {kind} {target}"));
            let until = Instant::now() + Duration::from_secs(5);
            while let Ok((_, line)) = self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                if line == format!("conf-ok {kind} {target}") {
                    return;
                }
                if line.starts_with(&format!("conf-err {kind} {target}")) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "conf {kind} {target} never committed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Proposes `payloads` through whichever member leads, resending what
    /// fails, until all are acknowledged. Kills the leader once `kill_after`
    /// acknowledgements have arrived, if given.
    fn propose_all(
        &mut self,
        payloads: &[String],
        mut kill_after: Option<usize>,
        acked: &mut BTreeSet<String>,
    ) {
        let mut pending: Vec<String> = payloads.to_vec();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "proposals not acknowledged: {}",
                pending.len()
            );
            let leader = self.leader();
            for payload in &pending {
                self.send(leader, &format!("propose {payload}"));
            }
            let mut answered = 0;
            let until = Instant::now() + Duration::from_secs(5);
            while answered < pending.len() {
                let Ok((_, line)) = self
                    .lines
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                else {
                    break;
                };
                let mut words = line.splitn(3, ' ');
                match (words.next(), words.next()) {
                    (Some("ack"), Some(payload)) => {
                        acked.insert(payload.to_string());
                        answered += 1;
                    }
                    (Some("err"), Some(_)) => answered += 1,
                    _ => {}
                }
                if kill_after.is_some_and(|n| acked.len() >= n) {
                    kill_after = None;
                    self.kill(leader);
                    break;
                }
            }
            pending.retain(|p| !acked.contains(p));
        }
    }

    /// Waits until each running member's applier file holds every payload.
    fn wait_applied(&self, acked: &BTreeSet<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in self.running.keys() {
            loop {
                let applied: BTreeSet<String> = applied_payloads(&self.dir(*id));
                let missing: Vec<&String> =
                    acked.iter().filter(|p| !applied.contains(*p)).collect();
                if missing.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "member {id} misses {} acknowledged entries, such as {:?}; it applied up to {}",
                    missing.len(),
                    &missing[..missing.len().min(3)],
                    load_applied(&self.dir(*id)).last_index()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // And they agree index by index.
        let logs: Vec<_> = self
            .running
            .keys()
            .map(|id| load_applied(&self.dir(*id)).entries)
            .collect();
        for a in &logs {
            for b in &logs {
                for (index, data) in a {
                    if let Some(other) = b.get(index) {
                        assert_eq!(data, other, "members differ at index {index}");
                    }
                }
            }
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for process in self.running.values_mut() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}

fn applied_payloads(dir: &Path) -> BTreeSet<String> {
    load_applied(dir)
        .payloads()
        .into_iter()
        .map(|p| String::from_utf8(p).unwrap())
        .collect()
}

/// `n` running member processes.
fn cluster_of(n: u64) -> Processes {
    let mut cluster = Processes::new(n);
    for id in 1..=n {
        cluster.start(id);
    }
    cluster
}

fn batch(tag: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{tag}-{i}")).collect()
}

#[test]
fn sigkilled_members_lose_nothing_acknowledged_and_rejoin_from_disk() {
    let mut cluster = cluster_of(3);
    let mut acked = BTreeSet::new();
    cluster.propose_all(&batch("warm", 50), None, &mut acked);

    // SIGKILL the leader in the middle of a load; the others go on.
    let leader = cluster.leader();
    cluster.propose_all(&batch("load", 300), Some(acked.len() + 100), &mut acked);
    assert!(
        !cluster.running.contains_key(&leader),
        "the leader was killed"
    );
    cluster.wait_applied(&acked);

    // It comes back from its own WAL and applier file.
    cluster.start(leader);
    cluster.propose_all(&batch("rejoined", 50), None, &mut acked);
    cluster.wait_applied(&acked);

    // A follower killed while the others write past several snapshots
    // comes back to a compacted log: it catches up by snapshot (the
    // applier notes each snapshot it restores in `restored`).
    let leader = cluster.leader();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    let restored = cluster.dir(follower).join("restored");
    let _ = std::fs::remove_file(&restored);
    cluster.propose_all(
        &batch("while-dead", 4 * SNAPSHOT_COUNT as usize),
        None,
        &mut acked,
    );
    // With a margin: its WAL may hold a few entries past what it applied.
    cluster.wait_compacted_past(load_applied(&cluster.dir(follower)).last_index() + SNAPSHOT_COUNT);
    cluster.start(follower);
    cluster.wait_applied(&acked);
    let index: u64 = std::fs::read_to_string(&restored)
        .expect("a snapshot was restored")
        .trim()
        .parse()
        .unwrap();
    assert!(index > 150, "restored the snapshot at {index}");

    // Every member at once, mid-load.
    cluster.propose_all(&batch("final", 100), None, &mut acked);
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.start(id);
    }
    cluster.propose_all(&batch("after-all", 50), None, &mut acked);
    cluster.wait_applied(&acked);
    assert_eq!(acked.len(), 550 + 4 * SNAPSHOT_COUNT as usize);
    for id in 1..=3 {
        let log = load_applied(&cluster.dir(id));
        assert!(
            log.payloads().len() >= acked.len(),
            "member {id} applied {}",
            log.payloads().len()
        );
    }
}

#[test]
fn processes_partitioned_and_reconfigured() {
    let mut cluster = cluster_of(3);
    let mut acked = BTreeSet::new();
    cluster.propose_all(&batch("warm", 30), None, &mut acked);

    // Cut the leader off both ways: the other two elect a leader and commit;
    // the old one applies none of it until the partition heals.
    let isolated = cluster.leader();
    for other in (1..=3).filter(|id| *id != isolated) {
        cluster.send(isolated, &format!("block {other}"));
        cluster.send(other, &format!("block {isolated}"));
    }
    cluster.propose_all(&batch("partitioned", 50), None, &mut acked);
    let minority = applied_payloads(&cluster.dir(isolated));
    assert!(
        !minority.iter().any(|p| p.starts_with("partitioned-")),
        "the isolated member applied a majority write"
    );
    for id in 1..=3 {
        cluster.send(id, "heal");
    }
    cluster.wait_applied(&acked);

    // A fourth process joins as a learner, is promoted, and a founding
    // follower is removed and killed; writes go on throughout.
    cluster.start_as(4, "join");
    let addr = cluster.addrs[&4].clone();
    for id in 1..=3 {
        cluster.send(id, &format!("add-peer 4 {addr}"));
    }
    cluster.conf("add-learner", 4);
    cluster.propose_all(&batch("with-learner", 50), None, &mut acked);
    cluster.wait_applied(&acked);
    cluster.conf("promote", 4);
    let leader = cluster.leader();
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    cluster.conf("remove", removed);
    cluster.kill(removed);
    cluster.propose_all(&batch("after-remove", 50), None, &mut acked);
    cluster.wait_applied(&acked);
    assert_eq!(acked.len(), 180);
    assert!(!cluster.running.contains_key(&removed));
}
