//! Operating ironcd as etcd is operated: a member joins a running cluster
//! (`member add`, then `--initial-cluster-state existing`) and is promoted;
//! the NOSPACE alarm from `--quota-backend-bytes`; periodic
//! auto-compaction; the HTTP endpoints beside gRPC (`/health`, `/livez`,
//! `/readyz`, `/version`, `/metrics` under etcd's names) and zap's JSON
//! log lines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::prometheus::{self, Exposition};
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
    let port = cluster.client_port(0);
    assert_eq!(
        http_get(port, "/health"),
        (
            503,
            "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n".into()
        )
    );
    assert_eq!(
        http_get(port, "/health?exclude=NOSPACE"),
        (200, "{\"health\":\"true\",\"reason\":\"\"}".into())
    );
    // A full database is not corrupt: still ready.
    assert_eq!(http_get(port, "/readyz"), (200, "ok\n".into()));
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

/// One HTTP/1.1 request; the status code, the header block and the body.
fn http(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, head.to_string(), body)
}

/// The body of a `Transfer-Encoding: chunked` response (etcd's /metrics).
fn dechunk(mut chunked: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, rest) = chunked.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&rest[..size]);
        chunked = rest[size..].strip_prefix("\r\n").expect("chunk end");
    }
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let (code, _, body) = http(port, "GET", path);
    (code, body)
}

/// `/metrics` from `port`, parsed (and checked) as Prometheus text.
fn scrape(port: u16) -> Exposition {
    let (code, body) = http_get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    prometheus::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

#[test]
fn health_version_and_metrics_share_the_client_port() {
    let cluster = Cluster::start(ironcd!(), 1, Opts::default());
    let port = cluster.client_port(0);
    ok(etcdctl(&[cluster.host_port(0)], &["put", "k", "v"]));
    assert_eq!(
        http_get(port, "/health"),
        (200, "{\"health\":\"true\",\"reason\":\"\"}".to_string())
    );
    let (_, version) = http_get(port, "/version");
    assert!(
        version.contains("\"etcdserver\":\"3.5.0\",\"etcdcluster\":\"3.5.0\",\"ironcd\":"),
        "{version}"
    );
    let metrics = scrape(port);
    assert_eq!(metrics.scalar("etcd_server_has_leader"), Some(1.0));
    assert_eq!(metrics.scalar("etcd_server_is_leader"), Some(1.0));
    assert_eq!(
        metrics.scalar("etcd_debugging_mvcc_current_revision"),
        Some(2.0)
    );
}

/// etcd 3.5's `/livez` and `/readyz` (etcd 3.4 has neither, so ironcd is
/// checked against 3.5's answers): every check's line with `?verbose`, a
/// check by name, `?exclude=`, 404 for an unknown check and 405 for a
/// method but GET; and `/health?serializable=true`.
#[test]
fn livez_and_readyz_answer_as_etcd_3_5() {
    let cluster = Cluster::start(ironcd!(), 1, Opts::default());
    let port = cluster.client_port(0);
    let plain = |path: &str| http_get(port, path);
    assert_eq!(plain("/livez"), (200, "ok\n".into()));
    assert_eq!(
        plain("/livez?verbose"),
        (200, "[+]serializable_read ok\nok\n".into())
    );
    assert_eq!(plain("/readyz"), (200, "ok\n".into()));
    assert_eq!(
        plain("/readyz?verbose"),
        (
            200,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
             [+]non_learner ok\nok\n"
                .into()
        )
    );
    assert_eq!(
        plain("/readyz?verbose&exclude=linearizable_read&exclude=no_such_check"),
        (
            200,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n".into()
        )
    );
    assert_eq!(
        plain("/readyz/linearizable_read?verbose"),
        (200, "[+]linearizable_read ok\nok\n".into())
    );
    assert_eq!(plain("/readyz/no_such_check").0, 404);
    assert_eq!(
        plain("/health?serializable=true"),
        (200, "{\"health\":\"true\",\"reason\":\"\"}".into())
    );
    for path in ["/health", "/livez", "/readyz", "/readyz/non_learner"] {
        let (code, head, body) = http(port, "POST", path);
        assert_eq!(
            (code, body.as_str()),
            (405, "Method Not Allowed\n"),
            "{path}"
        );
        assert!(
            head.to_ascii_lowercase().contains("\r\nallow: get"),
            "{head}"
        );
    }
    let metrics = scrape(port);
    let checks = metrics.family("etcd_server_healthchecks_total").unwrap();
    let passed = |kind: &str, name: &str| {
        checks
            .value(
                "etcd_server_healthchecks_total",
                &[("type", kind), ("name", name), ("status", "success")],
            )
            .unwrap()
    };
    assert_eq!(passed("livez", "serializable_read"), 2.0);
    assert_eq!(passed("readyz", "linearizable_read"), 3.0);
    assert_eq!(passed("readyz", "non_learner"), 3.0);
    assert_eq!(metrics.scalar("etcd_server_health_success"), Some(1.0));
}

/// A member that lost its quorum: `/health` says there is no leader, but
/// a serializable `/health`, `/livez` and a `/readyz` without the
/// linearizable read still pass — the probes Kubernetes points at etcd.
#[test]
fn a_member_without_quorum_is_live_but_not_ready() {
    let mut cluster = Cluster::start(ironcd!(), 3, Opts::default());
    cluster.kill(1);
    cluster.kill(2);
    let port = cluster.client_port(0);
    eventually("the leader to be lost", || {
        (scrape(port).scalar("etcd_server_has_leader") == Some(0.0)).then_some(())
    });
    assert_eq!(
        http_get(port, "/health"),
        (
            503,
            "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n".into()
        )
    );
    assert_eq!(
        http_get(port, "/health?serializable=true"),
        (200, "{\"health\":\"true\",\"reason\":\"\"}".into())
    );
    assert_eq!(http_get(port, "/livez"), (200, "ok\n".into()));
    let (code, body) = http_get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[..2],
        ["[+]data_corruption ok", "[+]serializable_read ok"],
        "{body}"
    );
    assert!(
        lines[2].starts_with("[-]linearizable_read failed: "),
        "{body}"
    );
    assert_eq!(lines[3], "[+]non_learner ok", "{body}");
    assert_eq!(
        http_get(port, "/readyz?exclude=linearizable_read"),
        (200, "ok\n".into())
    );
    let metrics = scrape(port);
    let checks = metrics.family("etcd_server_healthcheck").unwrap();
    let last = |name: &str| {
        checks
            .value(
                "etcd_server_healthcheck",
                &[("type", "readyz"), ("name", name)],
            )
            .unwrap()
    };
    // The last /readyz ran without the linearizable read: its gauge keeps
    // the failure before.
    assert_eq!(
        (last("linearizable_read"), last("serializable_read")),
        (0.0, 1.0)
    );
    assert_eq!(metrics.scalar("etcd_server_health_failures"), Some(1.0));
}

/// The metrics ironcd exports under etcd's names, each with etcd 3.4's
/// type and label names, and the same values for the same requests.
const ETCD_METRICS: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_is_learner",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_quota_backend_bytes",
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_debugging_server_lease_expired_total",
    "etcd_cluster_version",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_wal_write_bytes_total",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_current_revision",
    "etcd_debugging_mvcc_compact_revision",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_revoked_total",
    "etcd_debugging_lease_renewed_total",
    "etcd_debugging_lease_ttl_total",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "process_resident_memory_bytes",
    "process_open_fds",
];

/// Runs the same requests on a fresh single member of `server` (metrics
/// also on their own `--listen-metrics-urls` port) and scrapes it while
/// an `etcdctl watch` is open.
fn metrics_after_requests(server: Server) -> Exposition {
    let metrics_port = free_ports(1)[0];
    let url = format!("--listen-metrics-urls=http://127.0.0.1:{metrics_port}");
    let cluster = Cluster::start(server, 1, Opts::with_args(&[&url]));
    let ep = [cluster.host_port(0)];
    for i in 0..3 {
        ok(etcdctl(&ep, &["put", &format!("k{i}"), "v"]));
    }
    ok(etcdctl(&ep, &["del", "k2"]));
    let future = etcdctl(&ep, &["get", "k0", "--rev=1000"]);
    assert!(
        text(&future).contains("future revision"),
        "{}",
        text(&future)
    );
    ok(etcdctl(&ep, &["lease", "grant", "600"]));
    let watch = Command::new(ironcd_tests::ETCDCTL_BIN)
        .args(["--endpoints", &ep[0], "watch", "w"])
        .env("ETCDCTL_API", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _watch = Process(watch);
    // The metrics port answers /health as the client port does.
    assert_eq!(http_get(metrics_port, "/health").0, 200);
    eventually("the watcher to be counted", || {
        let metrics = scrape(metrics_port);
        (metrics.scalar("etcd_debugging_mvcc_watcher_total") == Some(1.0)).then_some(metrics)
    })
}

#[test]
fn metrics_have_etcds_names_types_labels_and_values() {
    let etcd = metrics_after_requests(Server::etcd());
    let ironcd = metrics_after_requests(ironcd!());
    for name in ETCD_METRICS {
        let theirs = etcd
            .family(name)
            .unwrap_or_else(|| panic!("etcd 3.4 has no {name}"));
        let ours = ironcd
            .family(name)
            .unwrap_or_else(|| panic!("ironcd has no {name}"));
        assert_eq!(ours.kind, theirs.kind, "type of {name}");
        assert_eq!(ours.label_names(), theirs.label_names(), "labels of {name}");
    }
    // The same requests give the same counts.
    let same = [
        "etcd_server_has_leader",
        "etcd_server_is_leader",
        "etcd_server_is_learner",
        "etcd_server_leader_changes_seen_total",
        "etcd_debugging_mvcc_keys_total",
        "etcd_debugging_mvcc_current_revision",
        "etcd_debugging_mvcc_watcher_total",
        "etcd_debugging_mvcc_watch_stream_total",
        "etcd_debugging_mvcc_slow_watcher_total",
        "etcd_debugging_lease_granted_total",
        "etcd_server_proposals_failed_total",
    ];
    for name in same {
        assert_eq!(ironcd.scalar(name), etcd.scalar(name), "{name}");
    }
    assert_eq!(ironcd.scalar("etcd_debugging_mvcc_keys_total"), Some(2.0));
    let grpc = |e: &Exposition, family: &str, labels: &[(&str, &str)]| {
        e.family(family).and_then(|f| f.value(family, labels))
    };
    for labels in [
        vec![("grpc_method", "Put"), ("grpc_code", "OK")],
        vec![("grpc_method", "DeleteRange"), ("grpc_code", "OK")],
        vec![("grpc_method", "Range"), ("grpc_code", "OutOfRange")],
        vec![("grpc_method", "LeaseGrant"), ("grpc_code", "OK")],
    ] {
        let handled = "grpc_server_handled_total";
        assert_eq!(
            grpc(&ironcd, handled, &labels),
            grpc(&etcd, handled, &labels),
            "{labels:?}"
        );
    }
    let put = [("grpc_method", "Put"), ("grpc_type", "unary")];
    assert_eq!(grpc(&ironcd, "grpc_server_started_total", &put), Some(3.0));
    let watch = [("grpc_method", "Watch"), ("grpc_type", "bidi_stream")];
    assert_eq!(
        grpc(&ironcd, "grpc_server_started_total", &watch),
        Some(1.0)
    );
    // Every write was fsynced by the WAL and committed by the backend.
    for e in [&etcd, &ironcd] {
        for family in [
            "etcd_disk_wal_fsync_duration_seconds",
            "etcd_disk_backend_commit_duration_seconds",
        ] {
            let count = e
                .family(family)
                .unwrap()
                .value(&format!("{family}_count"), &[]);
            assert!(count.is_some_and(|c| c >= 1.0), "{family}: {count:?}");
        }
    }
    let ttl = ironcd.family("etcd_debugging_lease_ttl_total").unwrap();
    assert_eq!(
        ttl.value("etcd_debugging_lease_ttl_total_bucket", &[("le", "512")]),
        Some(0.0)
    );
    assert_eq!(
        ttl.value("etcd_debugging_lease_ttl_total_bucket", &[("le", "1024")]),
        Some(1.0)
    );
}

/// Each member probes the round trip to each peer, on etcd 3.4 and
/// ironcd alike: one `etcd_network_peer_round_trip_time_seconds`
/// histogram per peer, labelled by its hex id.
#[test]
fn peer_round_trips_are_probed() {
    for server in [Server::etcd(), ironcd!()] {
        let cluster = Cluster::start(server, 3, Opts::default());
        let name = cluster.server().name();
        let family = "etcd_network_peer_round_trip_time_seconds";
        let rtt = eventually("a probe of both peers", || {
            let metrics = scrape(cluster.client_port(0));
            let f = metrics.family(family)?.clone();
            let probed = f
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_count") && s.value >= 1.0)
                .count();
            (probed == 2).then_some(f)
        });
        assert_eq!(rtt.kind, "histogram", "{name}");
        assert_eq!(rtt.label_names(), ["To", "le"], "{name}");
        for sample in rtt.samples.iter().filter(|s| s.name.ends_with("_count")) {
            let to = &sample.labels["To"];
            assert!(u64::from_str_radix(to, 16).is_ok(), "{name}: To={to}");
        }
    }
}

/// Starts a single member outside the harness with `args` added, waits
/// until it serves, and stops it; returns what it wrote to stderr.
fn run_member(server: &Server, dir: &std::path::Path, args: &[String]) -> String {
    let ports = free_ports(2);
    let client = format!("http://127.0.0.1:{}", ports[0]);
    let peer = format!("http://127.0.0.1:{}", ports[1]);
    let stderr = dir.join(format!("{}.stderr", server.name()));
    let child = Command::new(server.binary())
        .args([
            format!("--data-dir={}", dir.join(server.name()).display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let member = Process(child);
    let ep = [format!("127.0.0.1:{}", ports[0])];
    eventually("the member to serve", || {
        etcdctl(&ep, &["put", "k", "v"])
            .status
            .success()
            .then_some(())
    });
    drop(member);
    std::fs::read_to_string(&stderr).unwrap()
}

/// Checks a zap line's first members, in zap's order.
fn assert_zap_line(line: &str) {
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    for key in ["level", "ts", "caller", "msg"] {
        assert!(json[key].is_string(), "{key} in {line}");
    }
    let at = |key: &str| line.find(&format!("\"{key}\":")).unwrap();
    assert!(line.starts_with("{\"level\":"), "{line}");
    assert!(
        at("level") < at("ts") && at("ts") < at("caller") && at("caller") < at("msg"),
        "{line}"
    );
}

/// `--logger=zap` writes JSON lines with zap's leading members to every
/// `--log-outputs` target, on etcd 3.4 and ironcd alike; `--logger=capnslog`
/// writes text.
#[test]
fn zap_json_logs_go_to_every_log_output() {
    let dir = tempfile::tempdir().unwrap();
    for server in [Server::etcd(), ironcd!()] {
        let file = dir.path().join(format!("{}.log", server.name()));
        let args = [
            "--logger=zap".to_string(),
            format!("--log-outputs=stderr,{}", file.display()),
        ];
        let stderr = run_member(&server, dir.path(), &args);
        let logged = std::fs::read_to_string(&file).unwrap();
        assert!(logged.lines().count() >= 3, "{}: {logged}", server.name());
        for line in logged.lines() {
            assert_zap_line(line);
        }
        assert!(
            // etcd 3.4 adds "; this is strongly discouraged!".
            logged
                .lines()
                .any(|l| l.contains("\"msg\":\"serving client traffic insecurely")),
            "{}: {logged}",
            server.name()
        );
        // stderr has the same lines (a kill may cut the last one short).
        let first = logged.lines().next().unwrap();
        assert!(stderr.starts_with(first), "{}: {stderr}", server.name());
    }
    let text = run_member(&ironcd!(), dir.path(), &["--logger=capnslog".to_string()]);
    assert!(text.contains("ready to serve client requests"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with('{')), "{text}");
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

/// The hex id of the member named `name`, from `member list` through `eps`.
fn member_id(eps: &[String], name: &str) -> String {
    let list = ok(etcdctl(eps, &["member", "list"]));
    list.lines()
        .find(|l| l.split(", ").nth(2) == Some(name))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("{name} is not in {list}"))
        .to_string()
}

/// etcd's strict reconfiguration check (`--strict-reconfig-check`, on by
/// default), on etcd and on ironcd: with one of three members down, the
/// member asked refuses to remove another live voter or to add a member
/// ("unhealthy cluster": the change would leave the connected members
/// short of a quorum), but removes the member that is down; with the two
/// left connected, it adds a member again.
#[test]
fn reconfiguration_that_breaks_the_active_quorum_is_refused() {
    for server in [Server::etcd(), ironcd!()] {
        let name = server.name();
        let mut cluster = Cluster::start(server, 3, Opts::default());
        cluster.wait_for_leader();
        let via = [cluster.host_port(0)];
        let all: Vec<String> = (0..3).map(|i| cluster.host_port(i)).collect();
        let (second, third) = (
            member_id(&all, cluster.name(1)),
            member_id(&all, cluster.name(2)),
        );
        cluster.kill(2);
        // The killed member's sockets are closed by its kernel: the member
        // asked sees that link go down within moments.
        thread::sleep(Duration::from_secs(1));
        let spare = cluster.opts().peer_scheme.loopback_url(free_ports(1)[0]);
        let unhealthy = |out: Output| {
            assert!(!out.status.success(), "{name}: accepted: {}", text(&out));
            assert!(
                text(&out).contains("etcdserver: unhealthy cluster"),
                "{name}: {}",
                text(&out)
            );
        };
        unhealthy(etcdctl(&via, &["member", "remove", &second]));
        let add_learner = [
            "member",
            "add",
            "m4",
            "--learner",
            &format!("--peer-urls={spare}"),
        ];
        unhealthy(etcdctl(&via, &add_learner));
        // Once the member asked sees the link to the killed one down, that
        // one is not part of the active quorum and may go.
        eventually(&format!("{name}: removing the member that is down"), || {
            etcdctl(&via, &["member", "remove", &third])
                .status
                .success()
                .then_some(())
        });
        eventually(&format!("{name}: adding a learner to the two left"), || {
            etcdctl(&via, &add_learner).status.success().then_some(())
        });
        let list = ok(etcdctl(&via, &["member", "list"]));
        assert_eq!(list.lines().count(), 3, "{name}: {list}");
        assert!(list.contains(&spare), "{name}: {list}");
    }
}
