//! The robustness suite's runner: a real cluster under recorded client
//! traffic and watchers while faults are injected, then the checks —
//! linearizability of the history, etcd's watch guarantees against the
//! linearized history, and equal `HashKV` on every member at the end.
//!
//! A [`Scenario`] names a cluster size, a [`Fault`] and a traffic
//! [`Profile`]; [`run`] plays it with a seed. Everything random in a run
//! (the members' `--snapshot-count`, which member a fault hits and when,
//! every client's choice of request, the proxies' delay jitter) is drawn
//! from that seed, so a seed replays the same run up to timing.
//!
//! The cluster's members reach each other through fault-injecting
//! [`crate::Proxy`]s ([`crate::Opts::peer_proxy_seed`]); clients dial the
//! members directly, each client one member, so a fault on a member shows
//! in its clients' histories.
//!
//! A run that fails keeps the cluster's scratch directory (every member's
//! data dir and log) and writes `history.json` (as recorded),
//! `patched.json` (what was checked), `watch.json` (what every watcher
//! received) and `report.txt` into it; the panic message names the
//! directory, the problems and the seed.

pub mod failpoint;
pub mod regressions;
mod traffic;
mod watch;

pub use traffic::{Profile, TrafficConfig, KEY_PREFIX, LEASE_TTL_S, REQUEST_TIMEOUT};
pub use watch::{expected_events, Received, Session, WatchEvent, WatchLog};

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{Cluster, Impl, Opts, Server};
use crate::linearizability::{
    self, check, patch, CheckLimits, CheckResult, History, Operation, Persisted, Recorder, Request,
    Response,
};
use crate::proxy::Direction;
use failpoint::{Failpoint, Trigger};

/// How long watchers may take, after the traffic stopped, to receive the
/// final revision.
const WATCH_CATCH_UP: Duration = Duration::from_secs(20);
/// How long the members may take, after the traffic stopped and the last
/// fault healed, to answer a linearizable read each.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The range `--snapshot-count` is drawn from: low, so that members make
/// snapshots (and followers install them) during a run.
const SNAPSHOT_COUNTS: std::ops::RangeInclusive<u64> = 50..=1000;
/// The range ironcd's `--experimental-snapshot-catchup-entries` is drawn
/// from, so a lagging follower gets a snapshot rather than entries.
const CATCHUP_ENTRIES: std::ops::RangeInclusive<u64> = 10..=200;
/// [`Fault::PeerPartitionUntilSnapshot`]'s smaller ranges, so that a
/// snapshot is due within a second or two of traffic.
const SNAPSHOT_COUNTS_FOR_INSTALL: std::ops::RangeInclusive<u64> = 20..=100;
const CATCHUP_ENTRIES_FOR_INSTALL: std::ops::RangeInclusive<u64> = 10..=40;
/// etcd 3.4's fixed number of entries kept behind a snapshot.
const ETCD_34_CATCHUP_ENTRIES: u64 = 5000;
/// The longest [`Fault::PeerPartitionUntilSnapshot`] partition.
const UNTIL_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an armed crash point may take to end its member.
const CRASH_WAIT: Duration = Duration::from_secs(10);
/// How long a stall point stays armed, in ms.
const STALL_MS: std::ops::RangeInclusive<u64> = 1000..=3000;
/// How long a replaced member may take to catch up with the leader
/// ([`Fault::MemberReplace`]).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// The link delay of [`Fault::PeerDelay`] and [`Fault::ClientDelay`]:
/// 75 ± 50 ms.
const LINK_DELAY: Duration = Duration::from_millis(75);
const LINK_DELAY_JITTER: Duration = Duration::from_millis(50);

/// What goes wrong during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: the traffic alone.
    None,
    /// SIGKILL a member (the leader half the time), restart it 0.2–1 s
    /// later; again and again.
    Kill,
    /// SIGSTOP a member for 0.5–2 s, then SIGCONT.
    Stop,
    /// Partition a member from its peers for 0.5–2 s: both directions of
    /// its peer proxy pause, as TCP sees a partition (nothing crosses,
    /// nothing is lost; senders block once the buffers fill). Not the
    /// proxy's blackhole, which drops bytes from the middle of a stream
    /// (no TCP connection can): that can wedge an HTTP/2 stream whose
    /// flow-control window the dropped bytes used up.
    PeerPartition,
    /// Partition a follower (as [`Fault::PeerPartition`]) until the
    /// leader's log has moved past a snapshot and the entries it keeps
    /// behind one, so that healing makes the follower install a snapshot
    /// while it is watched (etcd #15271, #18055, #20221).
    PeerPartitionUntilSnapshot,
    /// Delay every peer link 75 ± 50 ms for the whole run.
    PeerDelay,
    /// Move the leadership to another member, again and again.
    LeaderTransfer,
    /// Defragment a member's backend under load, again and again.
    Defrag,
    /// Cut a member off from its clients for 0.5–2 s: its client proxy
    /// blackholes what they send, what it answers, or both; then its
    /// connections are dropped (as the clients' TCP would give up on
    /// them) and it heals, so clients and watchers reconnect and resume.
    ClientBlackhole,
    /// Delay every client link 75 ± 50 ms each way for the whole run.
    ClientDelay,
    /// Replace a member (the leader half the time), as etcd's runbook
    /// has it: member remove, its data wiped, member add with the same
    /// name and URLs, the new member started with
    /// `--initial-cluster-state=existing`; again and again.
    MemberReplace,
    /// Arm a failpoint on a member (the leader half the time, a follower
    /// for a snapshot install) through its failpoint endpoint, drive the
    /// member to it; a crashed member is restarted, a stall disarmed after
    /// 1–3 s; again and again. Needs ironcd built with `failpoints`.
    Failpoint(Failpoint),
}

impl Fault {
    /// Every fault, for the full matrix.
    pub const ALL: [Fault; 11] = [
        Fault::None,
        Fault::Kill,
        Fault::Stop,
        Fault::PeerPartition,
        Fault::PeerPartitionUntilSnapshot,
        Fault::PeerDelay,
        Fault::LeaderTransfer,
        Fault::Defrag,
        Fault::ClientBlackhole,
        Fault::ClientDelay,
        Fault::MemberReplace,
    ];

    /// Whether the fault needs more than one member.
    pub fn needs_peers(self) -> bool {
        match self {
            Fault::PeerPartition
            | Fault::PeerPartitionUntilSnapshot
            | Fault::PeerDelay
            | Fault::LeaderTransfer
            | Fault::MemberReplace => true,
            Fault::Failpoint(point) => point.trigger == Trigger::SnapshotInstall,
            Fault::None
            | Fault::Kill
            | Fault::Stop
            | Fault::Defrag
            | Fault::ClientBlackhole
            | Fault::ClientDelay => false,
        }
    }

    /// Whether the clients reach the members through client proxies.
    fn proxies_clients(self) -> bool {
        matches!(self, Fault::ClientBlackhole | Fault::ClientDelay)
    }

    /// Whether a follower must install snapshots during the run.
    fn installs_snapshots(self) -> bool {
        match self {
            Fault::PeerPartitionUntilSnapshot => true,
            Fault::Failpoint(point) => point.trigger == Trigger::SnapshotInstall,
            _ => false,
        }
    }

    /// Its name in scenario names.
    pub fn label(self) -> String {
        match self {
            Fault::Failpoint(point) => format!("failpoint-{}", point.name).to_lowercase(),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

/// One named run shape.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (file names, reports).
    pub name: String,
    /// Members.
    pub members: usize,
    /// The fault injected.
    pub fault: Fault,
    /// The traffic.
    pub traffic: TrafficConfig,
    /// How long the traffic runs.
    pub duration: Duration,
    /// Whether watchers ask for progress notifications, every 300 ms.
    /// etcd 3.4.30 can send one ahead of the events it covers (etcd
    /// #15220): the reference is run without them.
    pub progress_requests: bool,
    /// Fixes `--snapshot-count` instead of drawing it from the seed.
    pub snapshot_count: Option<u64>,
}

impl Scenario {
    /// `fault` on `members` members under `profile` traffic at a CI
    /// sample's size: 6 clients, 200 requests/s, 10 keys, a compaction
    /// every 100–200 ms, 6 s.
    pub fn new(members: usize, fault: Fault, profile: Profile) -> Scenario {
        let profile_name = match profile {
            Profile::EtcdLike => "etcd",
            Profile::KubernetesLike => "kubernetes",
        };
        Scenario {
            name: format!("{members}m-{}-{profile_name}", fault.label()),
            members,
            fault,
            traffic: TrafficConfig {
                profile,
                clients: 6,
                rate_per_s: 200,
                keys: 10,
                compaction_interval: Some(Duration::from_millis(100)),
                txn_reads_at_revision: true,
                value_bytes: 0,
            },
            duration: Duration::from_secs(6),
            progress_requests: true,
            snapshot_count: None,
        }
    }

    /// Every fault × profile on 3 members, and the faults one member can
    /// have on 1: the matrix `make robustness` runs; with `failpoints`
    /// (an ironcd built with the feature), every point of
    /// [`failpoint::MATRIX`] too.
    pub fn matrix(failpoints: bool) -> Vec<Scenario> {
        let points = failpoint::MATRIX.iter().map(|&p| Fault::Failpoint(p));
        let faults: Vec<Fault> = if failpoints {
            Fault::ALL.into_iter().chain(points).collect()
        } else {
            Fault::ALL.to_vec()
        };
        let mut all = Vec::new();
        for profile in [Profile::EtcdLike, Profile::KubernetesLike] {
            for &fault in &faults {
                all.push(Scenario::new(3, fault, profile));
                if !fault.needs_peers() {
                    all.push(Scenario::new(1, fault, profile));
                }
            }
        }
        all
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The server.
    pub implementation: Impl,
    /// The seed.
    pub seed: u64,
    /// Operations recorded.
    pub operations: usize,
    /// Of them, failed (outcome unknown) before patching.
    pub failed: usize,
    /// Faults injected.
    pub faults: usize,
    /// The revision the run ended at.
    pub final_revision: i64,
    /// Watch events received over every long-lived watcher.
    pub watch_events: usize,
    /// Short-lived watches opened around the current revision.
    pub short_watches: usize,
    /// Snapshots members installed from a leader, as their logs tell
    /// (ironcd's log line; 0 for etcd, whose lines are not counted).
    pub snapshot_installs: usize,
    /// Watchers that saw every revision of the run without a compaction
    /// cutting their history (one is enough to patch failed writes with
    /// what was persisted).
    pub complete_watchers: usize,
    /// What the checks found; empty when the run passed.
    pub problems: Vec<String>,
    /// Where a failed run's files are.
    pub kept: Option<PathBuf>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} on {}, seed {}: {} operations ({} failed), {} faults, final revision {}, {} watch events ({} of the watchers complete), {} short watches, {} snapshot installs",
            self.scenario,
            self.implementation.name(),
            self.seed,
            self.operations,
            self.failed,
            self.faults,
            self.final_revision,
            self.watch_events,
            self.complete_watchers,
            self.short_watches,
            self.snapshot_installs
        )?;
        if self.passed() {
            return write!(f, "passed");
        }
        for problem in &self.problems {
            writeln!(f, "PROBLEM: {problem}")?;
        }
        if let Some(dir) = &self.kept {
            writeln!(f, "kept: {}", dir.display())?;
        }
        write!(
            f,
            "reproduce: IRONCD_ROBUSTNESS_SCENARIO={} IRONCD_ROBUSTNESS_SEED={} make robustness",
            self.scenario, self.seed
        )
    }
}

/// Plays `scenario` on `server` with `seed` and checks the outcome.
pub fn run(server: &Server, scenario: &Scenario, seed: u64) -> Report {
    let mut rng = StdRng::seed_from_u64(seed);
    let install = scenario.fault.installs_snapshots();
    let snapshot_count = rng.gen_range(if install {
        SNAPSHOT_COUNTS_FOR_INSTALL
    } else {
        SNAPSHOT_COUNTS
    });
    let snapshot_count = scenario.snapshot_count.unwrap_or(snapshot_count);
    let catchup = rng.gen_range(if install {
        CATCHUP_ENTRIES_FOR_INSTALL
    } else {
        CATCHUP_ENTRIES
    });
    let mut args = vec![format!("--snapshot-count={snapshot_count}")];
    let catchup = if server.implementation() == Impl::Ironcd {
        args.push(format!("--experimental-snapshot-catchup-entries={catchup}"));
        catchup
    } else {
        ETCD_34_CATCHUP_ENTRIES
    };
    let opts = Opts {
        extra_args: args,
        peer_proxy_seed: (scenario.members > 1).then_some(seed),
        client_proxy_seed: scenario.fault.proxies_clients().then_some(seed),
        failpoint_http: matches!(scenario.fault, Fault::Failpoint(_)),
        ..Opts::default()
    };
    let mut cluster = Cluster::start(server.clone(), scenario.members, opts);
    cluster.wait_for_leader();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let origin = Instant::now();
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let final_revision = Arc::new(AtomicI64::new(0));

    // One watcher per member, created before any traffic.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(scenario.members);
    let watch_run = Arc::new(watch::WatchRun {
        origin,
        stop: stop.clone(),
        final_revision: final_revision.clone(),
        deadline_after_stop: WATCH_CATCH_UP,
        progress_requests: scenario.progress_requests,
    });
    let watchers: Vec<_> = (0..scenario.members)
        .map(|member| {
            runtime.spawn(watch::watch(
                member,
                cluster.proxied_endpoint(member),
                watch_run.clone(),
                ready_tx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    runtime.block_on(async {
        for _ in 0..scenario.members {
            tokio::time::timeout(SETTLE_TIMEOUT, ready_rx.recv())
                .await
                .expect("every watcher is created")
                .expect("a watcher ended before it was created");
        }
    });

    let short_watches = runtime.spawn(watch::short_watches(
        cluster.proxied_endpoints(),
        origin,
        seed,
        stop.clone(),
        scenario.progress_requests,
    ));
    let traffic = runtime.spawn(traffic::run(
        scenario.traffic.clone(),
        cluster.proxied_endpoints(),
        seed,
        recorder.clone(),
        stop.clone(),
    ));
    let faults = inject(
        &mut cluster,
        scenario,
        &mut rng,
        origin,
        snapshot_count + catchup,
    );
    stop.store(true, Ordering::Relaxed);
    runtime
        .block_on(traffic)
        .expect("the traffic task panicked");

    heal(&mut cluster);
    let settled = runtime.block_on(settle(&cluster));
    let mut problems = Vec::new();
    let final_rev = match settled {
        Ok(revision) => revision,
        Err(problem) => {
            problems.push(problem);
            0
        }
    };
    // Watchers stop at the final revision (or when their deadline passes).
    final_revision.store(final_rev.max(1), Ordering::Relaxed);
    let logs: Vec<WatchLog> = watchers
        .into_iter()
        .map(|w| runtime.block_on(w).expect("a watcher panicked"))
        .collect();
    let short_logs = runtime
        .block_on(short_watches)
        .expect("the short watches panicked");
    if final_rev > 0 {
        problems.extend(runtime.block_on(compare_hashes(&cluster, final_rev)));
    }
    drop(runtime);

    let recorded = recorder.history();
    let failed = recorded
        .operations
        .iter()
        .filter(|op| op.is_failed())
        .count();
    let (patched, complete_watchers) = patch_from_watches(&recorded, &logs, final_rev);
    let compactions: Vec<i64> = patched
        .operations
        .iter()
        .filter_map(|op| match op.request {
            Request::Compact { revision } => Some(revision),
            _ => None,
        })
        .collect();
    match check(&patched, &CheckLimits::default()) {
        CheckResult::Linearizable { order } => {
            let expected = expected_events(&patched, &order);
            problems.extend(watch::validate(&logs, &expected, &compactions));
            problems.extend(watch::validate(&short_logs, &expected, &compactions));
        }
        CheckResult::Violation(violation) => problems.push(violation.to_string()),
        CheckResult::Unknown { states_explored } => problems.push(format!(
            "the linearizability check gave up after {states_explored} model steps"
        )),
    }

    let mut report = Report {
        scenario: scenario.name.clone(),
        implementation: server.implementation(),
        seed,
        operations: recorded.operations.len(),
        failed,
        faults,
        final_revision: final_rev,
        watch_events: logs.iter().map(|l| l.puts().count()).sum(),
        complete_watchers,
        short_watches: short_logs.len(),
        snapshot_installs: count_in_logs(&cluster, IRONCD_INSTALL_LINE),
        problems,
        kept: None,
    };
    if !report.passed() {
        let dir = cluster.keep_dir();
        let _ = fs::write(dir.join("history.json"), recorded.to_json());
        let _ = fs::write(dir.join("patched.json"), patched.to_json());
        let _ = fs::write(
            dir.join("watch.json"),
            serde_json::to_string_pretty(&logs).unwrap_or_default(),
        );
        let _ = fs::write(
            dir.join("short-watches.json"),
            serde_json::to_string_pretty(&short_logs).unwrap_or_default(),
        );
        report.kept = Some(dir.clone());
        let _ = fs::write(dir.join("report.txt"), report.to_string());
    }
    report
}

/// Injects the scenario's fault until its duration has passed; returns
/// how many times. Every fault is healed before the next one.
/// `snapshot_distance`: how many raft entries past a follower's index the
/// leader must be before the follower needs a snapshot.
fn inject(
    cluster: &mut Cluster,
    scenario: &Scenario,
    rng: &mut StdRng,
    origin: Instant,
    snapshot_distance: u64,
) -> usize {
    let end = origin + scenario.duration;
    let members = cluster.len();
    let pause = |rng: &mut StdRng, range: std::ops::RangeInclusive<u64>| {
        thread::sleep(Duration::from_millis(rng.gen_range(range)));
    };
    // Let the traffic start first.
    pause(rng, 300..=700);
    let mut injected = 0;
    if matches!(scenario.fault, Fault::PeerDelay | Fault::ClientDelay) {
        for i in 0..members {
            let proxy = if scenario.fault == Fault::PeerDelay {
                cluster.peer_proxy(i)
            } else {
                cluster.client_proxy(i)
            };
            let proxy = proxy.expect("the scenario's members have proxies");
            for direction in Direction::ALL {
                proxy.delay(direction, LINK_DELAY, LINK_DELAY_JITTER);
            }
        }
        thread::sleep(end.saturating_duration_since(Instant::now()));
        return 1;
    }
    while Instant::now() + Duration::from_millis(500) < end {
        let target = if rng.gen_bool(0.5) {
            cluster
                .leader_index()
                .unwrap_or_else(|| rng.gen_range(0..members))
        } else {
            rng.gen_range(0..members)
        };
        match scenario.fault {
            Fault::None | Fault::PeerDelay | Fault::ClientDelay => {
                thread::sleep(end.saturating_duration_since(Instant::now()));
                return 0;
            }
            Fault::Kill => {
                cluster.kill(target);
                pause(rng, 200..=1000);
                cluster.restart(target);
            }
            Fault::Stop => {
                cluster.signal(target, "STOP");
                pause(rng, 500..=2000);
                cluster.signal(target, "CONT");
            }
            Fault::PeerPartition => {
                let proxy = cluster.peer_proxy(target).expect("peer proxies");
                proxy.pause(Direction::ToUpstream);
                proxy.pause(Direction::ToClient);
                pause(rng, 500..=2000);
                proxy.heal();
            }
            Fault::PeerPartitionUntilSnapshot => {
                let leader = cluster.wait_for_leader();
                let follower = (leader + rng.gen_range(1..members)) % members;
                partition_until_snapshot(cluster, follower, snapshot_distance);
            }
            Fault::Failpoint(point) => {
                let target = match point.trigger {
                    Trigger::SnapshotInstall => {
                        let leader = cluster.wait_for_leader();
                        (leader + rng.gen_range(1..members)) % members
                    }
                    Trigger::Traffic | Trigger::Defrag => target,
                };
                let addr = cluster
                    .failpoint_addr(target)
                    .expect("a failpoint scenario's members have endpoints");
                failpoint::arm(addr, &point).unwrap_or_else(|e| panic!("{e}"));
                match point.trigger {
                    Trigger::Traffic => {}
                    Trigger::Defrag => {
                        // Fails when the point ends the member mid-defrag.
                        let _ = cluster.etcdctl(&[cluster.host_port(target)], &["defrag"]);
                    }
                    Trigger::SnapshotInstall => {
                        partition_until_snapshot(cluster, target, snapshot_distance);
                    }
                }
                if point.crashes() {
                    if wait_for_exit(cluster, target, CRASH_WAIT) {
                        cluster.restart(target);
                    } else {
                        // Not reached this time.
                        let _ = failpoint::disarm(addr, point.name);
                    }
                } else {
                    pause(rng, STALL_MS);
                    failpoint::disarm(addr, point.name).unwrap_or_else(|e| panic!("{e}"));
                }
            }
            Fault::LeaderTransfer => {
                let leader = cluster.wait_for_leader();
                let to = (leader + rng.gen_range(1..members)) % members;
                cluster.ensure_leader(to);
            }
            Fault::ClientBlackhole => {
                let proxy = cluster.client_proxy(target).expect("client proxies");
                let cut: &[Direction] = match rng.gen_range(0..3) {
                    0 => &[Direction::ToUpstream],
                    1 => &[Direction::ToClient],
                    _ => &Direction::ALL,
                };
                for &direction in cut {
                    proxy.blackhole(direction);
                }
                pause(rng, 500..=2000);
                proxy.drop_connections();
                proxy.heal();
            }
            Fault::MemberReplace => {
                cluster
                    .replace(target)
                    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.all_log_tails(30)));
                // The new member catches up before the next replacement,
                // which could otherwise take the quorum's second copy.
                wait_caught_up(cluster, target);
            }
            Fault::Defrag => {
                let out = cluster.etcdctl(&[cluster.host_port(target)], &["defrag"]);
                assert!(
                    out.status.success(),
                    "defrag of member {target}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        injected += 1;
        pause(rng, 300..=800);
    }
    injected
}

/// Pauses both directions of `follower`'s peer proxy until the other
/// members' raft logs are two snapshots' distance past where it was (the
/// leader snapshots only every `--snapshot-count` entries, and keeps the
/// catch-up entries behind it), or [`UNTIL_SNAPSHOT_TIMEOUT`]; then drops
/// its connections and heals it, so it catches up from a snapshot.
fn partition_until_snapshot(cluster: &Cluster, follower: usize, snapshot_distance: u64) {
    let others = |cluster: &Cluster| {
        cluster
            .live()
            .into_iter()
            .filter(|&i| i != follower)
            .filter_map(|i| cluster.status(i))
            .map(|s| s.raft_index)
            .max()
            .unwrap_or(0)
    };
    let from = others(cluster);
    let proxy = cluster.peer_proxy(follower).expect("peer proxies");
    proxy.pause(Direction::ToUpstream);
    proxy.pause(Direction::ToClient);
    let deadline = Instant::now() + UNTIL_SNAPSHOT_TIMEOUT;
    while Instant::now() < deadline && others(cluster) < from + 2 * snapshot_distance {
        thread::sleep(Duration::from_millis(50));
    }
    // The partition outlived the connections (as a long one does when TCP
    // gives up): what they held is lost, and the leader, which would
    // otherwise go on from the appends still queued in them, has to probe
    // the follower and finds the entries it needs compacted away.
    proxy.drop_connections();
    proxy.heal();
}

/// Waits (bounded by [`CATCH_UP_TIMEOUT`]) until member `i` has applied
/// as far as the leader had committed when the wait began.
fn wait_caught_up(cluster: &Cluster, i: usize) {
    let leader = cluster.wait_for_leader();
    let Some(target) = cluster.status(leader).map(|s| s.raft_index) else {
        return;
    };
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while Instant::now() < deadline {
        if cluster.status(i).is_some_and(|s| s.raft_index >= target) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// What ironcd logs when it installs a snapshot sent by the leader.
const IRONCD_INSTALL_LINE: &str = "installing snapshot from the leader";

/// How many lines of the members' logs contain `needle`.
fn count_in_logs(cluster: &Cluster, needle: &str) -> usize {
    (0..cluster.len())
        .map(|i| {
            let log = fs::read_to_string(cluster.dir().join(format!("{}.log", cluster.name(i))));
            log.map_or(0, |text| {
                text.lines().filter(|l| l.contains(needle)).count()
            })
        })
        .sum()
}

/// Waits (bounded) for member `i` to exit by itself; whether it did (it
/// is reaped then).
fn wait_for_exit(cluster: &mut Cluster, i: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cluster.check_alive(i).is_err() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Undoes whatever may still be wrong: stopped members go on, proxies
/// heal, members down are restarted.
fn heal(cluster: &mut Cluster) {
    for i in 0..cluster.len() {
        if let Some(proxy) = cluster.peer_proxy(i) {
            proxy.heal();
        }
        if cluster.is_running(i) {
            cluster.signal(i, "CONT");
        } else {
            cluster.restart(i);
        }
    }
}

/// Waits until every member answers a linearizable read; the highest
/// revision they answered with (each has applied at least that much of
/// what it answered).
async fn settle(cluster: &Cluster) -> Result<i64, String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut highest = 0;
    for i in 0..cluster.len() {
        let mut client = traffic::connect(&[cluster.endpoint(i)]).await;
        loop {
            match client.get(KEY_PREFIX, None).await {
                Ok(got) => {
                    highest = highest.max(got.header().map_or(0, |h| h.revision()));
                    break;
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "member {i} answered no linearizable read within {SETTLE_TIMEOUT:?} of the end: {e}"
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    // A member that answered first may have been behind the last one:
    // read again until every member is at the highest revision.
    for i in 0..cluster.len() {
        let mut client = traffic::connect(&[cluster.endpoint(i)]).await;
        loop {
            let at = client
                .get(KEY_PREFIX, None)
                .await
                .ok()
                .and_then(|got| got.header().map(|h| h.revision()));
            if at.is_some_and(|at| at >= highest) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("member {i} did not reach revision {highest}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(highest)
}

/// Every member's `HashKV` of its current revision, which [`settle`] made
/// `revision` on all of them (a hash *at* `revision` fails once a
/// compaction reached it); a problem if they differ.
async fn compare_hashes(cluster: &Cluster, revision: i64) -> Vec<String> {
    let mut hashes = Vec::new();
    for i in 0..cluster.len() {
        let mut client = traffic::connect(&[cluster.endpoint(i)]).await;
        match client.hash_kv(0).await {
            Ok(answer) => {
                let at = answer.header().map_or(0, |h| h.revision());
                if at != revision {
                    return vec![format!(
                        "member {i}: HashKV at revision {at}, not the final {revision}"
                    )];
                }
                hashes.push((i, answer.hash(), answer.compact_version()));
            }
            Err(e) => return vec![format!("member {i}: HashKV: {e}")],
        }
    }
    let first = hashes[0];
    hashes
        .iter()
        .filter(|h| (h.1, h.2) != (first.1, first.2))
        .map(|h| {
            format!(
                "members disagree at revision {revision}: member {} has HashKV {:#x} (compacted at {}), member {} has {:#x} (compacted at {})",
                first.0, first.1, first.2, h.0, h.1, h.2
            )
        })
        .collect()
}

/// The history with what the watchers saw applied: a failed put whose
/// value a watcher received happened, at that event's revision, before
/// the event arrived; and when some watcher saw every revision up to the
/// end, its puts are everything that was persisted ([`patch`]'s
/// `persisted`). Also returns how many watchers were complete.
fn patch_from_watches(
    history: &History,
    logs: &[WatchLog],
    final_revision: i64,
) -> (History, usize) {
    // (key, value) → (its put's revision, when a watcher first saw it).
    let mut seen: HashMap<Persisted, (i64, u64)> = HashMap::new();
    for log in logs {
        for (kv, at_ns) in log.written() {
            let entry = seen
                .entry((kv.key.clone(), kv.value.clone()))
                .or_insert((kv.mod_revision, at_ns));
            entry.1 = entry.1.min(at_ns);
        }
    }
    let mut operations: Vec<Operation> = history
        .operations
        .iter()
        .map(|op| {
            if !op.is_failed() {
                return op.clone();
            }
            let first_seen = op
                .request
                .puts()
                .into_iter()
                .filter_map(|(k, v)| seen.get(&(k.to_vec(), v.to_vec())))
                .filter(|&&(_, at_ns)| at_ns >= op.call_ns)
                .min_by_key(|&&(_, at_ns)| at_ns);
            match (&op.request, first_seen) {
                // Its revision is the event's.
                (Request::Put { .. }, Some(&(revision, at_ns))) => Operation {
                    return_ns: Some(at_ns),
                    response: Some(Response::Put { revision }),
                    ..op.clone()
                },
                // A txn: its revision is the event's, and the branch that
                // ran is the one with that put; its results stay unknown.
                (
                    Request::Txn {
                        success, failure, ..
                    },
                    Some(&(revision, at_ns)),
                ) if branch_puts_seen(success, &seen) != branch_puts_seen(failure, &seen) => {
                    Operation {
                        return_ns: Some(at_ns),
                        response: Some(Response::TxnOutcome {
                            revision,
                            succeeded: branch_puts_seen(success, &seen),
                        }),
                        ..op.clone()
                    }
                }
                // It happened before the event arrived; its answer stays
                // unknown.
                (_, Some(&(_, at_ns))) => Operation {
                    return_ns: Some(at_ns),
                    ..op.clone()
                },
                (_, None) => op.clone(),
            }
        })
        .collect();
    let complete: Vec<&WatchLog> = logs
        .iter()
        .filter(|log| final_revision > 0 && is_complete(log, final_revision))
        .collect();
    if let Some(log) = complete.first() {
        operations = pin_failed_deletes(operations, log);
        // A failed txn whose one putting branch put nothing that was
        // persisted ran the other branch if it ran at all; when that one
        // only reads, it changed nothing and answered no one: drop it.
        operations.retain(|op| match &op.request {
            Request::Txn {
                success, failure, ..
            } if op.is_failed() => {
                let read_only = |ops: &[linearizability::TxnOp]| {
                    ops.iter()
                        .all(|o| matches!(o, linearizability::TxnOp::Range { .. }))
                };
                let unseen_puts = |ops: &[linearizability::TxnOp]| {
                    ops.iter()
                        .any(|o| matches!(o, linearizability::TxnOp::Put { .. }))
                        && !branch_puts_seen(ops, &seen)
                };
                let never_changed = (unseen_puts(success) && read_only(failure))
                    || (unseen_puts(failure) && read_only(success));
                !never_changed
            }
            _ => true,
        });
    }
    let persisted: Option<Vec<Persisted>> = complete.first().map(|log| {
        log.puts()
            .map(|(e, _)| (e.kv.key.clone(), e.kv.value.clone()))
            .collect()
    });
    let patched = patch(&History::new(operations), persisted.as_deref());
    (patched, complete.len())
}

/// Whether a watcher saw one of the branch's puts.
fn branch_puts_seen(ops: &[linearizability::TxnOp], seen: &HashMap<Persisted, (i64, u64)>) -> bool {
    ops.iter().any(|op| match op {
        linearizability::TxnOp::Put { key, value, .. } => {
            seen.contains_key(&(key.clone(), value.clone()))
        }
        _ => false,
    })
}

/// Failed single-key deletes (plain, or a txn's lone delete beside a
/// read-only branch) narrowed by a complete watcher's delete events (each
/// revision comes from one request): one whose key has no
/// delete event after its call deleted nothing, so it had no effect and
/// is dropped; one with exactly one delete event of its key after its call
/// that no completed request answered with, and that no other failed
/// delete of the key could have made, made that event.
fn pin_failed_deletes(operations: Vec<Operation>, complete: &WatchLog) -> Vec<Operation> {
    // (key, revision, arrival) of every delete event.
    let deletes: Vec<(&[u8], i64, u64)> = complete
        .sessions
        .iter()
        .flat_map(|s| &s.responses)
        .flat_map(|r| r.events.iter().map(move |e| (e, r.at_ns)))
        .filter(|(e, _)| !e.put)
        .map(|(e, at_ns)| (e.kv.key.as_slice(), e.kv.mod_revision, at_ns))
        .collect();
    // Revisions some answered write may have made. Claiming too many only
    // pins fewer deletes; claiming too few pins a delete to another
    // request's event (a lease revocation's deletes, say).
    let claimed: std::collections::HashSet<i64> = operations
        .iter()
        .filter(|op| !op.request.is_read_only())
        .filter_map(|op| op.response.as_ref()?.revision())
        .collect();
    // A failed write whose only change is one single-key delete: a plain
    // Delete, or a txn with that delete as one branch and reads as the
    // other (the Kubernetes-like traffic's guarded delete), with the
    // branch it is in.
    let single_key = |op: &Operation| -> Option<(Vec<u8>, Option<bool>)> {
        if !op.is_failed() {
            return None;
        }
        let lone_delete = |ops: &[linearizability::TxnOp]| match ops {
            [linearizability::TxnOp::Delete { key, range_end }] if range_end.is_empty() => {
                Some(key.clone())
            }
            _ => None,
        };
        let reads_only = |ops: &[linearizability::TxnOp]| {
            ops.iter()
                .all(|o| matches!(o, linearizability::TxnOp::Range { .. }))
        };
        match &op.request {
            Request::Delete { key, range_end } if range_end.is_empty() => Some((key.clone(), None)),
            Request::Txn {
                success, failure, ..
            } => match (lone_delete(success), lone_delete(failure)) {
                (Some(key), None) if reads_only(failure) => Some((key, Some(true))),
                (None, Some(key)) if reads_only(success) => Some((key, Some(false))),
                _ => None,
            },
            _ => None,
        }
    };
    // Each failed delete's candidate events: (any event after its call,
    // the unclaimed ones as (revision, arrival)).
    type Candidates = Option<(bool, Vec<(i64, u64)>)>;
    let candidates: Vec<Candidates> = operations
        .iter()
        .map(|op| {
            let (key, _) = single_key(op)?;
            let after: Vec<(i64, u64)> = deletes
                .iter()
                .filter(|(k, _, at_ns)| *k == key.as_slice() && *at_ns >= op.call_ns)
                .map(|&(_, revision, at_ns)| (revision, at_ns))
                .collect();
            let unclaimed = after
                .iter()
                .copied()
                .filter(|(revision, _)| !claimed.contains(revision))
                .collect();
            Some((!after.is_empty(), unclaimed))
        })
        .collect();
    let mut wanted: HashMap<i64, usize> = HashMap::new();
    for (_, unclaimed) in candidates.iter().flatten() {
        for (revision, _) in unclaimed {
            *wanted.entry(*revision).or_default() += 1;
        }
    }
    operations
        .into_iter()
        .zip(candidates)
        .filter_map(|(op, candidates)| match candidates {
            None => Some(op),
            // No delete of its key came after it: it changed nothing (it
            // did not run, ran its read-only branch, or found no key).
            Some((false, _)) => None,
            Some((true, unclaimed)) => match unclaimed[..] {
                [(revision, at_ns)] if wanted.get(&revision) == Some(&1) => {
                    let response = match single_key(&op) {
                        Some((_, Some(succeeded))) => Response::TxnOutcome {
                            revision,
                            succeeded,
                        },
                        _ => Response::Delete {
                            revision,
                            deleted: 1,
                        },
                    };
                    Some(Operation {
                        return_ns: Some(at_ns),
                        response: Some(response),
                        ..op
                    })
                }
                _ => Some(op),
            },
        })
        .collect()
}

/// Whether a watcher saw everything from revision 1 to `final_revision`
/// without a compaction cutting its history.
fn is_complete(log: &WatchLog, final_revision: i64) -> bool {
    let compacted = log
        .sessions
        .iter()
        .flat_map(|s| &s.responses)
        .any(|r| r.compact_revision > 0);
    !compacted && log.last_revision() >= final_revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::TxnOp;

    /// A failed Kubernetes-style delete: compare the mod revision, delete
    /// on success, read on failure.
    fn guarded_delete(client: u64, call_ns: u64, key: &str) -> Operation {
        Operation::failed(
            client,
            call_ns,
            Request::Txn {
                compares: Vec::new(),
                success: vec![TxnOp::Delete {
                    key: key.into(),
                    range_end: Vec::new(),
                }],
                failure: vec![TxnOp::Range {
                    key: key.into(),
                    range_end: Vec::new(),
                    revision: 0,
                    limit: 0,
                }],
            },
        )
    }

    fn delete_event(key: &str, revision: i64, at_ns: u64) -> Received {
        Received {
            revision,
            events: vec![WatchEvent {
                put: false,
                kv: linearizability::KeyValue {
                    key: key.into(),
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: revision,
                    version: 0,
                    lease: 0,
                },
                prev_kv: None,
            }],
            compact_revision: 0,
            canceled: false,
            at_ns,
        }
    }

    /// Two guarded deletes fail at a crash; the complete watcher shows
    /// only `b`'s: `b`'s ran its delete at that event's revision, `a`'s
    /// changed nothing — so the checker cannot give `b`'s revision to `a`.
    #[test]
    fn failed_guarded_deletes_are_pinned_by_the_complete_watcher() {
        let operations = vec![guarded_delete(1, 10, "a"), guarded_delete(2, 11, "b")];
        let log = WatchLog {
            member: 0,
            sessions: vec![Session {
                start_revision: 1,
                responses: vec![delete_event("b", 5, 100)],
            }],
        };
        let pinned = pin_failed_deletes(operations, &log);
        assert_eq!(pinned.len(), 1, "{pinned:?}");
        assert_eq!(pinned[0].client, 2);
        assert_eq!(pinned[0].return_ns, Some(100));
        assert_eq!(
            pinned[0].response,
            Some(Response::TxnOutcome {
                revision: 5,
                succeeded: true
            })
        );
    }

    fn kv(key: &str, value: &str, mod_revision: i64) -> linearizability::KeyValue {
        linearizability::KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: 1,
            mod_revision,
            version: 1,
            lease: 0,
        }
    }

    /// Two puts fail at a crash and both were persisted, at 5 and 6; the
    /// first was overwritten before anyone read it, so only the later
    /// put's event shows it, as `prev_kv`. That pins it to 5: the
    /// checker may not give 5 to the other.
    #[test]
    fn a_failed_put_is_pinned_by_a_later_events_prev_kv() {
        let put = |client, call_ns, key: &str, value: &str| {
            Operation::failed(
                client,
                call_ns,
                Request::Put {
                    key: key.into(),
                    value: value.into(),
                    lease: 0,
                },
            )
        };
        let history = History::new(vec![put(1, 10, "a", "x"), put(2, 11, "b", "y")]);
        let log = WatchLog {
            member: 0,
            sessions: vec![Session {
                start_revision: 7,
                responses: vec![Received {
                    revision: 7,
                    events: vec![WatchEvent {
                        put: true,
                        kv: kv("a", "z", 7),
                        prev_kv: Some(kv("a", "x", 5)),
                    }],
                    compact_revision: 0,
                    canceled: false,
                    at_ns: 200,
                }],
            }],
        };
        let (patched, complete) = patch_from_watches(&history, &[log], 0);
        assert_eq!(complete, 0);
        let first = patched
            .operations
            .iter()
            .find(|op| op.client == 1)
            .expect("the put shown by prev_kv stays");
        assert_eq!(first.return_ns, Some(200));
        assert_eq!(first.response, Some(Response::Put { revision: 5 }));
        let second = patched.operations.iter().find(|op| op.client == 2);
        assert!(
            second.is_none_or(|op| op.response.is_none()),
            "nothing shows the other put's revision: {second:?}"
        );
    }
}
