//! Servers for ironcd-bench's own tests: ironcd in this process (the KV
//! workloads), etcd 3.4 as a process through the workspace's harness,
//! `ironcd_tests` (the Watch and Lease workloads, until ironcd serves them).
//! Every wait is bounded.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use ironcd_bench::{Cli, Report};

/// How long a server may take to answer its first read.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Two free loopback ports (client, peer).
pub fn free_ports() -> (u16, u16) {
    let ports = ironcd_tests::free_ports(2);
    (ports[0], ports[1])
}

/// etcd's flags for a one-member cluster on these ports (ironcd takes the same).
fn member_flags(dir: &Path, client: u16, peer: u16) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    [
        "--name",
        "m1",
        "--data-dir",
        &dir.join("data").display().to_string(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("m1={peer_url}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Waits until a linearizable get on `endpoint` succeeds.
pub async fn wait_serving(endpoint: &str, what: &str) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        if let Ok(mut client) = etcd_client::Client::connect([endpoint], Some(options)).await {
            if client.get("ready?", None).await.is_ok() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not serve within {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// ironcd, started in this process by the server library.
pub struct Ironcd {
    pub endpoint: String,
    running: Option<ironcd_server::start::Running>,
    _dir: tempfile::TempDir,
}

impl Ironcd {
    /// A fresh member; `extra` are more of etcd's flags.
    pub async fn start(extra: &[&str]) -> Ironcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = free_ports();
        let mut args = vec!["ironcd".to_string()];
        args.extend(member_flags(dir.path(), client, peer));
        args.extend(extra.iter().map(|s| s.to_string()));
        let parsed = ironcd_server::flags::parse_from(args, Vec::<(String, String)>::new())
            .expect("valid flags");
        let ironcd_server::flags::Action::Serve(cfg) = parsed.action else {
            panic!("flags did not ask to serve");
        };
        let running = ironcd_server::start::start(*cfg)
            .await
            .expect("start ironcd");
        let endpoint = format!("127.0.0.1:{client}");
        wait_serving(&endpoint, "ironcd").await;
        Ironcd {
            endpoint,
            running: Some(running),
            _dir: dir,
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// etcd 3.4 (Debian's `etcd-server`) as a one-member harness cluster with
/// etcd's own defaults; killed on drop.
pub struct Etcd {
    pub endpoint: String,
    _cluster: ironcd_tests::Cluster,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let cluster = ironcd_tests::Cluster::start(
            ironcd_tests::Server::etcd(),
            1,
            ironcd_tests::Opts::server_defaults(),
        );
        let endpoint = cluster.host_port(0);
        wait_serving(&endpoint, "etcd").await;
        Etcd {
            endpoint,
            _cluster: cluster,
        }
    }
}

/// Parses `ironcd-bench` arguments (globals, then the workload; split at
/// whitespace) for `endpoint`.
pub fn cli(endpoint: &str, args: &str) -> Cli {
    let mut all = vec!["ironcd-bench", "--endpoints", endpoint];
    all.extend(args.split_whitespace());
    Cli::try_parse_from(all).expect("valid ironcd-bench arguments")
}

/// Runs one workload in this process.
pub async fn bench(endpoint: &str, args: &str) -> Report {
    let cli = cli(endpoint, args);
    ironcd_bench::run(&cli.global, &cli.workload)
        .await
        .unwrap_or_else(|e| panic!("ironcd-bench {args:?}: {e:#}"))
}

/// A client for checking what a workload left behind.
pub async fn client(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([endpoint], None)
        .await
        .expect("connect")
}

/// The store's current revision.
pub async fn revision(endpoint: &str) -> i64 {
    let mut c = client(endpoint).await;
    let r = c.get("any", None).await.expect("get");
    r.header().expect("a header").revision()
}

/// Asserts a clean run: `requests` successes, no errors, served.
pub fn assert_clean(report: &Report, requests: u64) {
    assert_eq!(report.not_served, None, "{}", report.to_text());
    assert_eq!(report.stats.errors(), 0, "{}", report.to_text());
    assert_eq!(report.stats.count(), requests, "{}", report.to_text());
    assert!(report.stats.fastest() > 0.0 && report.stats.slowest() >= report.stats.fastest());
}
