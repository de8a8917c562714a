//! The robustness suite (`ironcd_tests::robustness`): real clusters under
//! recorded traffic and watches while faults are injected, each run
//! checked for linearizability, etcd's watch guarantees and equal
//! `HashKV`s on every member.
//!
//! `make test` runs the sample below: one test per regression scenario
//! (`regressions::all()`, which between them kill, stop, partition until
//! a snapshot and arm failpoints), the faults no regression covers
//! (partitions, peer delay, leader transfers, defrags, client blackholes
//! and delay, member replacement), each with a fixed
//! seed on ironcd, and one scenario on etcd 3.4 (the reference must pass
//! the same checks, or the checks are wrong). `make robustness` runs `matrix`: every
//! scenario over many seeds, with these variables:
//!
//! - `IRONCD_ROBUSTNESS_SEEDS`: how many seeds per scenario (default 50),
//!   from `IRONCD_ROBUSTNESS_FIRST_SEED` (default 1);
//! - `IRONCD_ROBUSTNESS_SEED`: one seed only (reproduces a failed run);
//! - `IRONCD_ROBUSTNESS_SCENARIO`: only scenarios whose name contains it;
//! - `IRONCD_ROBUSTNESS_SERVER`: `ironcd` (default) or `etcd`.
//!
//! Built with `--features failpoints` (as `make robustness` and the
//! second half of `make test` build it), the matrix also arms every point
//! of `failpoint::MATRIX`, and `with_failpoints` holds the regressions
//! that arm points.

use std::sync::Mutex;
use std::time::Instant;

use ironcd_tests::robustness::failpoint::Trigger;
use ironcd_tests::robustness::{regressions, run, Fault, Profile, Report, Scenario};
use ironcd_tests::{ironcd, Impl, Server};

/// One cluster at a time: two runs on 2 cores would starve each other's
/// members into elections that have nothing to do with the faults.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn sample(server: Server, members: usize, fault: Fault, profile: Profile, seed: u64) {
    let scenario = for_server(Scenario::new(members, fault, profile), &server);
    play(server, &scenario, seed);
}

/// The scenario as `server` can pass it: etcd 3.4.30 (the reference) has
/// etcd #18667, which txns reading at a past revision trigger, #15220,
/// which progress requests under traffic trigger, and #18089 (a watch
/// reopened at a compaction that fell on a delete misses it), which
/// compaction triggers. All three are fixed in later etcd releases, and
/// ironcd runs with all three triggers.
fn for_server(mut scenario: Scenario, server: &Server) -> Scenario {
    if server.implementation() == Impl::Etcd {
        scenario.traffic.txn_reads_at_revision = false;
        scenario.traffic.compaction_interval = None;
        scenario.progress_requests = false;
    }
    scenario
}

fn play(server: Server, scenario: &Scenario, seed: u64) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let fault = scenario.fault;
    let report = run(&server, scenario, seed);
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert!(
        report.operations > 100,
        "too little traffic to mean anything: {report}"
    );
    if fault != Fault::None && fault != Fault::PeerDelay {
        assert!(report.faults > 0, "no fault was injected: {report}");
    }
    let installs = matches!(fault, Fault::PeerPartitionUntilSnapshot)
        || matches!(fault, Fault::Failpoint(p) if p.trigger == Trigger::SnapshotInstall);
    if installs && report.implementation == Impl::Ironcd {
        assert!(
            report.snapshot_installs > 0,
            "no member installed a snapshot: {report}"
        );
    }
}

#[test]
fn partition_one_of_three() {
    sample(ironcd!(), 3, Fault::PeerPartition, Profile::EtcdLike, 4);
}

#[test]
fn delayed_peers() {
    sample(ironcd!(), 3, Fault::PeerDelay, Profile::EtcdLike, 5);
}

#[test]
fn leader_transfers() {
    sample(
        ironcd!(),
        3,
        Fault::LeaderTransfer,
        Profile::KubernetesLike,
        6,
    );
}

#[test]
fn defrag_under_load() {
    sample(ironcd!(), 3, Fault::Defrag, Profile::EtcdLike, 7);
}

#[test]
fn clients_blackholed() {
    sample(
        ironcd!(),
        3,
        Fault::ClientBlackhole,
        Profile::KubernetesLike,
        8,
    );
}

#[test]
fn delayed_clients() {
    sample(ironcd!(), 1, Fault::ClientDelay, Profile::EtcdLike, 9);
}

#[test]
fn members_replaced() {
    sample(ironcd!(), 3, Fault::MemberReplace, Profile::EtcdLike, 10);
}

/// The reference passes the checks the sample applies to ironcd.
#[test]
fn etcd_passes_the_same_checks() {
    sample(Server::etcd(), 3, Fault::Kill, Profile::EtcdLike, 1);
}

/// Plays the regression scenario `name` with its seed on ironcd.
fn regression(name: &str) {
    let regression = regressions::named(name);
    assert!(
        !regression.needs_failpoints() || cfg!(feature = "failpoints"),
        "{name} arms failpoints: its test belongs in `with_failpoints`"
    );
    eprintln!("{name}: {}", regression.about);
    play(ironcd!(), &regression.scenario, regression.seed);
}

/// One test per regression scenario, named as it.
macro_rules! regression_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::regression(stringify!($name));
            }
        )*
    };
}

/// etcd's regressions and this project's own that need no failpoints.
mod regression {
    regression_tests!(
        issue13766,
        issue15220,
        issue15271,
        issue17247,
        issue18055,
        issue18089,
        issue18667,
        issue20221,
        issue20418,
        large_snapshot_install_while_watched,
    );
}

/// The regressions that arm failpoints: built only with the feature
/// (`make test` runs them with `--features failpoints`).
#[cfg(feature = "failpoints")]
mod with_failpoints {
    regression_tests!(
        issue14370,
        issue14685,
        issue17529,
        issue17780,
        issue19179,
        kill_between_snapshot_file_and_wal_marker,
        kill_inside_snapshot_restore,
    );
}

/// Every regression scenario has its test above (in one build or the
/// other).
#[test]
fn every_regression_has_a_test() {
    let tested = [
        "issue13766",
        "issue15220",
        "issue15271",
        "issue17247",
        "issue18055",
        "issue18089",
        "issue18667",
        "issue20221",
        "issue20418",
        "large_snapshot_install_while_watched",
        "issue14370",
        "issue14685",
        "issue17529",
        "issue17780",
        "issue19179",
        "kill_between_snapshot_file_and_wal_marker",
        "kill_inside_snapshot_restore",
    ];
    let mut listed: Vec<&str> = regressions::all().iter().map(|r| r.name).collect();
    let mut tested = tested.to_vec();
    listed.sort_unstable();
    tested.sort_unstable();
    assert_eq!(listed, tested);
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// Every scenario over many seeds (`make robustness`).
#[test]
#[ignore = "the full matrix takes hours: make robustness"]
fn matrix() {
    let server = match std::env::var("IRONCD_ROBUSTNESS_SERVER").as_deref() {
        Ok("etcd") => Server::etcd(),
        Ok("ironcd") | Err(_) => ironcd!(),
        Ok(other) => panic!("IRONCD_ROBUSTNESS_SERVER={other}: etcd or ironcd"),
    };
    let seeds: Vec<u64> = match env_u64("IRONCD_ROBUSTNESS_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("IRONCD_ROBUSTNESS_FIRST_SEED").unwrap_or(1);
            let count = env_u64("IRONCD_ROBUSTNESS_SEEDS").unwrap_or(50);
            (first..first + count).collect()
        }
    };
    let filter = std::env::var("IRONCD_ROBUSTNESS_SCENARIO").unwrap_or_default();
    let scenarios: Vec<Scenario> = Scenario::matrix(cfg!(feature = "failpoints"))
        .into_iter()
        .filter(|s| s.name.contains(&filter))
        .collect();
    assert!(!scenarios.is_empty(), "no scenario matches {filter:?}");
    let started = Instant::now();
    let mut failed: Vec<Report> = Vec::new();
    let mut runs = 0;
    for seed in &seeds {
        for scenario in &scenarios {
            let report = run(&server, &for_server(scenario.clone(), &server), *seed);
            runs += 1;
            eprintln!("[{:?}] {report}", started.elapsed());
            if !report.passed() {
                failed.push(report);
            }
        }
    }
    eprintln!(
        "{runs} runs ({} scenarios x {} seeds) in {:?}, {} failed",
        scenarios.len(),
        seeds.len(),
        started.elapsed(),
        failed.len()
    );
    let failures: Vec<String> = failed.iter().map(Report::to_string).collect();
    assert!(failed.is_empty(), "{}", failures.join("\n\n"));
}
