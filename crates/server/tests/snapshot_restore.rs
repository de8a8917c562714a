//! `etcdctl snapshot save` from an ironcd cluster, `ironcd snapshot restore`
//! into a new data directory, and a new one-member cluster started on it
//! serves the same keys at the same revisions.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::{etcdctl, free_ports, ironcd, run_bounded, Cluster, Opts};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the restored member when the test ends, pass or fail.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_saved_snapshot_restores_into_a_new_cluster() {
    let cluster = Cluster::start(ironcd!(), 1, Opts::default());
    let source = [cluster.host_port(0)];
    for i in 0..50 {
        stdout(&etcdctl(
            &source,
            &["put", &format!("key{i:02}"), &format!("value{i}")],
        ));
    }
    stdout(&etcdctl(&source, &["del", "key07"]));
    let before = stdout(&etcdctl(&source, &["get", "--prefix", "key", "-w", "json"]));
    let file = cluster.dir().join("backup.db");
    stdout(&etcdctl(
        &source,
        &["snapshot", "save", file.to_str().unwrap()],
    ));

    let ports = free_ports(2);
    let (client, peer) = (
        format!("http://127.0.0.1:{}", ports[0]),
        format!("http://127.0.0.1:{}", ports[1]),
    );
    let data_dir = cluster.dir().join("restored");
    let flags = [
        "--name=r1".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--initial-cluster=r1={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--listen-peer-urls={peer}"),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
    ];
    let binary = env!("CARGO_BIN_EXE_ironcd");
    let mut restore = Command::new(binary);
    restore
        .args(["snapshot", "restore", file.to_str().unwrap()])
        .args(&flags[..4]);
    stdout(&run_bounded(&mut restore, None, Duration::from_secs(60)));

    let log = std::fs::File::create(cluster.dir().join("restored.log")).unwrap();
    let child = Command::new(binary)
        .args(&flags)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _member = Member(child);
    let target = [format!("127.0.0.1:{}", ports[0])];
    let deadline = Instant::now() + READY_TIMEOUT;
    let after = loop {
        let out = etcdctl(&target, &["get", "--prefix", "key", "-w", "json"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the restored member did not serve"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let kvs = |text: &str| {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        (
            json["kvs"].clone(),
            json["count"].clone(),
            json["header"]["revision"].clone(),
        )
    };
    assert_eq!(
        kvs(&after),
        kvs(&before),
        "keys, values and revisions survive the restore"
    );
    // The new cluster takes writes on top of the restored history.
    stdout(&etcdctl(&target, &["put", "key07", "again"]));
    let got = stdout(&etcdctl(&target, &["get", "key07", "--print-value-only"]));
    assert_eq!(got.trim(), "again");
}
