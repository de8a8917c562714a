//! etcd's robustness regressions, and this project's own, as named
//! scenarios: each is the run that would have caught that bug here. The
//! server's tests play each with a fixed seed in `make test`; those that
//! need failpoints only in the `failpoints` build.

use super::failpoint::{Failpoint as Point, Trigger};
use super::{Fault, Profile, Scenario};

/// One regression scenario.
#[derive(Clone, Debug)]
pub struct Regression {
    /// Its test name: `issue<etcd issue>` or what it is about.
    pub name: &'static str,
    /// The bug it would catch.
    pub about: &'static str,
    /// The run.
    pub scenario: Scenario,
    /// The seed `make test` plays it with.
    pub seed: u64,
}

impl Regression {
    /// Whether it arms failpoints (an ironcd built with `failpoints`).
    pub fn needs_failpoints(&self) -> bool {
        matches!(self.scenario.fault, Fault::Failpoint(_))
    }
}

fn regression(
    name: &'static str,
    about: &'static str,
    members: usize,
    fault: Fault,
    profile: Profile,
    seed: u64,
) -> Regression {
    let mut scenario = Scenario::new(members, fault, profile);
    scenario.name = name.to_owned();
    Regression {
        name,
        about,
        scenario,
        seed,
    }
}

/// Every regression scenario.
pub fn all() -> Vec<Regression> {
    use Fault::*;
    use Profile::{EtcdLike as Etcd, KubernetesLike as K8s};
    let mut list = vec![
        regression(
            "issue13766",
            "inconsistent revision after a crash under load (3.5): kills with snapshots every 100 entries, HashKV compared",
            3,
            Kill,
            Etcd,
            13766,
        ),
        regression(
            "issue14370",
            "a single member loses an acknowledged write on a crash before its WAL save",
            1,
            Failpoint(Point::crash("raftBeforeSave")),
            Etcd,
            14370,
        ),
        regression(
            "issue14685",
            "inconsistent revision after a crash during defrag",
            1,
            Failpoint(Point::crash("defragBeforeCopy").reached_by(Trigger::Defrag)),
            Etcd,
            14685,
        ),
        regression(
            "issue15220",
            "a progress notification not in step with the stream's events: bookmarks checked under kills",
            1,
            Kill,
            Etcd,
            15220,
        ),
        regression(
            "issue15271",
            "a watch travelling back in time after a partition and a snapshot install",
            3,
            PeerPartitionUntilSnapshot,
            Etcd,
            15271,
        ),
        regression(
            "issue17247",
            "a duplicated watch event from a cached txn: txn-heavy traffic, every event checked once",
            3,
            Stop,
            K8s,
            17247,
        ),
        regression(
            "issue17529",
            "watch events lost while a stream is starved: its sends stall for a second",
            1,
            Failpoint(Point::stall("beforeSendWatchResponse")),
            K8s,
            17529,
        ),
        regression(
            "issue17780",
            "the revision going back after a crash during compaction",
            1,
            Failpoint(Point::crash("compactBeforeSetFinishedCompact")),
            K8s,
            17780,
        ),
        regression(
            "issue18055",
            "a panic when two snapshots arrive close together: repeated partitions until a snapshot",
            3,
            PeerPartitionUntilSnapshot,
            K8s,
            18055,
        ),
        regression(
            "issue18089",
            "a delete event dropped when compacting at its revision (found here too): kills, deletes, compaction every 100 ms",
            1,
            Kill,
            K8s,
            18089,
        ),
        regression(
            "issue18667",
            "members disagreeing on a txn that reads a compacted revision: HashKV compared",
            3,
            None,
            Etcd,
            18667,
        ),
        regression(
            "issue19179",
            "a delete event lost when a crash interrupts a compaction at its revision",
            1,
            Failpoint(Point::crash("compactBeforeSetFinishedCompact")),
            K8s,
            19179,
        ),
        regression(
            "issue20221",
            "a watch from a future revision answered with old events or early notifications, on a member that installs a snapshot",
            3,
            PeerPartitionUntilSnapshot,
            Etcd,
            20221,
        ),
        regression(
            "issue20418",
            "stale reads from a paused member",
            3,
            Stop,
            Etcd,
            20418,
        ),
        regression(
            "kill_between_snapshot_file_and_wal_marker",
            "a crash after a snapshot file is written and before the WAL records it",
            1,
            Failpoint(Point::crash("raftBeforeWALSaveSnaphot")),
            Etcd,
            1,
        ),
        regression(
            "kill_inside_snapshot_restore",
            "a crash between the renames that swap in a received snapshot's backend",
            3,
            Failpoint(Point::crash("restore_after_set_aside").reached_by(Trigger::SnapshotInstall)),
            Etcd,
            2,
        ),
        regression(
            "large_snapshot_install_while_watched",
            "a follower installing a snapshot of many large values while watched",
            3,
            PeerPartitionUntilSnapshot,
            Etcd,
            3,
        ),
    ];
    for r in &mut list {
        match r.name {
            // etcd's scenario: a snapshot every 100 entries.
            "issue13766" => r.scenario.snapshot_count = Some(100),
            // Snapshots often, so the point is reached.
            "kill_between_snapshot_file_and_wal_marker" => r.scenario.snapshot_count = Some(50),
            "large_snapshot_install_while_watched" => {
                r.scenario.traffic.keys = 200;
                r.scenario.traffic.value_bytes = 8 * 1024;
            }
            _ => {}
        }
    }
    list
}

/// The regression called `name`.
///
/// # Panics
/// When there is none.
pub fn named(name: &str) -> Regression {
    all()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no regression scenario is called {name}"))
}
