//! Operating ironcd as etcd is operated: a member joins a running cluster
//! (`member add`, then `--initial-cluster-state existing`) and is promoted;
//! the NOSPACE alarm from `--quota-backend-bytes`; periodic
//! auto-compaction; the HTTP endpoints beside gRPC.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::{etcdctl, free_ports, ironcd, Cluster, Opts, Server};

const WAIT: Duration = Duration::from_secs(60);

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "command failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it returns `Some`, failing after [`WAIT`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Prints a log file if the test fails while it is alive.
struct LogOnFailure(std::path::PathBuf);

impl Drop for LogOnFailure {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- {}:\n{}",
                self.0.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Kills a member started outside the harness when the test ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_member_joins_a_running_cluster_and_is_promoted() {
    // Snapshots every 5 entries: the log before the 20 puts is gone, so the
    // new member can only catch up from a snapshot, whose data (snapshots
    // hold raft metadata only) is the leader's backend at send time.
    let cluster = Cluster::start(ironcd!(), 3, Opts::with_args(&["--snapshot-count=5"]));
    cluster.wait_for_leader();
    let eps: Vec<String> = (0..3).map(|i| cluster.host_port(i)).collect();
    for i in 0..20 {
        ok(etcdctl(&eps, &["put", &format!("before/{i}"), "x"]));
    }
    let m4_member = cluster.join("m4", true, &[]);
    let added = &m4_member.member_add_output;
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let m4 = [m4_member.host_port.clone()];
    // The learner catches up (by snapshot: it starts with an empty log).
    let m4_log = cluster.dir().join("m4.log");
    let keep = LogOnFailure(m4_log);
    eventually("the learner to hold the data", || {
        let out = etcdctl(
            &m4,
            &[
                "get",
                "--prefix",
                "before/",
                "--consistency=s",
                "-w",
                "json",
            ],
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (json["count"] == 20).then_some(())
    });
    // Logged once the restore is done, which may be just after its data is
    // served.
    eventually("m4's log to show it restored a snapshot", || {
        m4_member
            .log_tail(400)
            .contains("restored the backend from a snapshot")
            .then_some(())
    });
    let list = ok(etcdctl(&eps, &["member", "list"]));
    let id = list
        .lines()
        .find(|l| l.contains(", m4, "))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("m4 is not started in {list}"))
        .to_string();
    eventually("the promotion", || {
        etcdctl(&eps, &["member", "promote", &id])
            .status
            .success()
            .then_some(())
    });
    // etcdctl 3.4 asks for the list without `linearizable`, and with three
    // endpoints any member may answer: one that has not applied the
    // promotion yet still shows m4 as a learner, on etcd too.
    eventually("every member to list four voters", || {
        (0..3)
            .all(|i| {
                let list = ok(etcdctl(&[cluster.host_port(i)], &["member", "list"]));
                list.lines().filter(|l| l.ends_with(", false")).count() == 4
            })
            .then_some(())
    });
    // The new voter serves linearizable reads and writes.
    ok(etcdctl(&m4, &["put", "after", "y"]));
    assert_eq!(
        ok(etcdctl(&eps, &["get", "after", "--print-value-only"])).trim(),
        "y"
    );
    drop(keep);
}

#[test]
fn exceeding_the_quota_raises_nospace_until_disarmed() {
    let cluster = Cluster::start(
        ironcd!(),
        1,
        Opts::with_args(&["--quota-backend-bytes=1048576"]),
    );
    let ep = [cluster.host_port(0)];
    let value = "v".repeat(100_000);
    let refused = eventually("the NOSPACE alarm", || {
        let out = etcdctl(&ep, &["put", "big", &value]);
        (!out.status.success()).then(|| text(&out))
    });
    assert!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    let alarms = ok(etcdctl(&ep, &["alarm", "list"]));
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    let small = etcdctl(&ep, &["put", "small", "v"]);
    assert!(
        text(&small).contains("database space exceeded"),
        "every write is refused"
    );
    // Reads, deletes, compaction and disarming still work.
    ok(etcdctl(&ep, &["get", "big", "--keys-only"]));
    ok(etcdctl(&ep, &["del", "big"]));
    ok(etcdctl(&ep, &["alarm", "disarm"]));
    assert_eq!(ok(etcdctl(&ep, &["alarm", "list"])).trim(), "");
}

#[test]
fn periodic_auto_compaction_compacts_history() {
    let cluster = Cluster::start(
        ironcd!(),
        1,
        Opts::with_args(&[
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=1s",
        ]),
    );
    let ep = [cluster.host_port(0)];
    ok(etcdctl(&ep, &["put", "k", "1"]));
    ok(etcdctl(&ep, &["put", "k", "2"]));
    let first = 2.to_string();
    let compacted = eventually("auto-compaction", || {
        ok(etcdctl(&ep, &["put", "tick", "x"]));
        let out = etcdctl(&ep, &["get", "k", "--rev", &first]);
        (!out.status.success()).then(|| text(&out))
    });
    assert!(
        compacted.contains("required revision has been compacted"),
        "{compacted}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn health_version_and_metrics_share_the_client_port() {
    let cluster = Cluster::start(ironcd!(), 1, Opts::default());
    let port = cluster.client_port(0);
    ok(etcdctl(&[cluster.host_port(0)], &["put", "k", "v"]));
    let health = http_get(port, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains("{\"health\":\"true\",\"reason\":\"\"}"),
        "{health}"
    );
    let version = http_get(port, "/version");
    assert!(
        version.contains("\"etcdserver\":\"3.5.0\",\"etcdcluster\":\"3.5.0\",\"ironcd\":"),
        "{version}"
    );
    let metrics = http_get(port, "/metrics");
    for line in [
        "etcd_server_has_leader 1",
        "etcd_server_is_leader 1",
        "etcd_debugging_mvcc_current_revision 2",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

/// Member and cluster ids of a single member started with the given flags,
/// as `member list` reports them.
fn ids_for(
    implementation: Server,
    dir: &std::path::Path,
    ports: &[u16],
    token: &str,
) -> (u64, u64) {
    let client = format!("http://127.0.0.1:{}", ports[0]);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let data_dir = dir.join(implementation.name());
    let log = std::fs::File::create(dir.join(format!("{}.log", implementation.name()))).unwrap();
    let child = Command::new(implementation.binary())
        .args([
            "--name=ids".to_string(),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=ids={peer}"),
            format!("--initial-cluster-token={token}"),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _member = Process(child);
    let ep = [format!("127.0.0.1:{}", ports[0])];
    eventually("member list", || {
        let out = etcdctl(&ep, &["member", "list", "-w", "json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let cluster = json["header"]["cluster_id"].as_u64()?;
        let member = json["members"][0]["ID"].as_u64()?;
        Some((member, cluster))
    })
}

#[test]
fn member_and_cluster_ids_are_etcds_for_the_same_flags() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let token = "ids-token";
    let etcd = ids_for(Server::etcd(), dir.path(), &ports, token);
    let ironcd = ids_for(ironcd!(), dir.path(), &ports, token);
    assert_eq!(
        format!("{:x}/{:x}", ironcd.0, ironcd.1),
        format!("{:x}/{:x}", etcd.0, etcd.1),
        "member/cluster ids"
    );
}
