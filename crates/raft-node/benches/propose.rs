//! The raft-node benchmark of issue 4: committed proposals per second and
//! latency of `ironcd-raft-node`, next to the puts per second etcd 3.4 serves
//! in the same shapes.
//!
//! Everything runs on loopback, with 256-byte payloads, a real WAL (fsync)
//! in fresh temporary directories and the real [`GrpcTransport`] between
//! members. Four clusters run one after another: ironcd with 1 member, etcd
//! with 1 member, ironcd with 3 members, etcd with 3 members; each is driven
//! by 1 and then 256 concurrent proposers for a warm-up and a measured
//! window. ironcd's proposers call [`RaftNode::propose`] on the leader;
//! etcd's are `etcd-client` puts of distinct keys sent to the leader's client
//! URL (256 clients share 16 connections).
//!
//! Knobs (environment):
//! * `IRONCD_BENCH_SECS` — measured seconds per run (default 5);
//! * `IRONCD_BENCH_WARMUP_SECS` — warm-up seconds per run (default 1);
//! * `IRONCD_BENCH_MEMBERS` — cluster sizes, comma-separated (default
//!   `1,3`);
//! * `IRONCD_BENCH_PROPOSERS` — concurrency levels, comma-separated
//!   (default `1,256`);
//! * `IRONCD_BENCH_DIR` — where data directories go (default the system
//!   temporary directory; it should not be a tmpfs);
//! * `IRONCD_BENCH_ETCD` — the etcd binary (default `/usr/bin/etcd`; when it
//!   is missing the etcd rows are skipped).
//!
//! Run with `cargo bench -p ironcd-raft-node --bench propose`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use etcd_client::{Client, ConnectOptions, KvClient};
use hdrhistogram::Histogram;
use ironcd_raft_node::{
    Apply, Config, GrpcTransport, PeerServerHandle, RaftNode, Role, TransportConfig,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes per proposal (ironcd) and per value (etcd).
const PAYLOAD_BYTES: usize = 256;
/// Connections the etcd clients share at most.
const ETCD_CONNECTIONS: usize = 16;
/// Cluster id of the ironcd clusters.
const CLUSTER_ID: u64 = 0x1c0d;
/// Longest wait for a cluster to elect a leader.
const ELECTION_WAIT: Duration = Duration::from_secs(30);

struct Settings {
    warmup: Duration,
    measure: Duration,
    members: Vec<usize>,
    proposers: Vec<usize>,
    base_dir: PathBuf,
    etcd: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let secs = |name: &str, default: f64| -> anyhow::Result<Duration> {
            let value = match std::env::var(name) {
                Ok(text) => text
                    .trim()
                    .parse::<f64>()
                    .with_context(|| format!("{name}={text:?} is not a number of seconds"))?,
                Err(_) => default,
            };
            if !(value.is_finite() && value >= 0.0) {
                bail!("{name} must be a non-negative number of seconds");
            }
            Ok(Duration::from_secs_f64(value))
        };
        let measure = secs("IRONCD_BENCH_SECS", 5.0)?;
        if measure.is_zero() {
            bail!("IRONCD_BENCH_SECS must be more than 0");
        }
        let warmup = secs("IRONCD_BENCH_WARMUP_SECS", 1.0)?;
        let list = |name: &str, default: &[usize]| -> anyhow::Result<Vec<usize>> {
            let Ok(text) = std::env::var(name) else {
                return Ok(default.to_vec());
            };
            let values = text
                .split(',')
                .map(|item| item.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{name}={text:?} is not a list of numbers"))?;
            if values.is_empty() || values.contains(&0) {
                bail!("{name} must list numbers above 0");
            }
            Ok(values)
        };
        let members = list("IRONCD_BENCH_MEMBERS", &[1, 3])?;
        let proposers = list("IRONCD_BENCH_PROPOSERS", &[1, 256])?;
        let base_dir = std::env::var_os("IRONCD_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base_dir)
            .with_context(|| format!("creating {}", base_dir.display()))?;
        let etcd = PathBuf::from(
            std::env::var_os("IRONCD_BENCH_ETCD").unwrap_or_else(|| "/usr/bin/etcd".into()),
        );
        let etcd = if etcd.is_file() {
            Some(etcd)
        } else {
            println!(
                "etcd not found at {} (install Debian's etcd-server): etcd rows skipped",
                etcd.display()
            );
            None
        };
        Ok(Settings {
            warmup,
            measure,
            members,
            proposers,
            base_dir,
            etcd,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&settings))
}

async fn run(settings: &Settings) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "raft-node propose bench: {PAYLOAD_BYTES}-byte payloads, {:.1} s warm-up + {:.1} s measured per run, {cpus} CPUs",
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64(),
    );
    println!(
        "data under {} (filesystem: {})",
        settings.base_dir.display(),
        filesystem_of(&settings.base_dir)
    );
    if let Some(etcd) = &settings.etcd {
        println!("etcd: {} ({})", etcd.display(), etcd_version(etcd));
    }
    println!();

    let mut rows = Vec::new();
    for &members in &settings.members {
        let ironcd = {
            let cluster = IroncdCluster::start(members, &settings.base_dir).await?;
            let mut results = Vec::new();
            for &proposers in &settings.proposers {
                let target = Target::Ironcd(cluster.leader.clone());
                let result = drive(&target, proposers, settings).await;
                eprintln!(
                    "ironcd {members} node(s), {proposers} proposer(s): {}",
                    result.summary()
                );
                results.push(result);
            }
            cluster.stop().await;
            results
        };
        let etcd = match &settings.etcd {
            None => vec![None; settings.proposers.len()],
            Some(binary) => {
                let cluster = EtcdCluster::start(binary, members, &settings.base_dir).await?;
                let mut results = Vec::new();
                for &proposers in &settings.proposers {
                    let target = cluster.target(proposers).await?;
                    let result = drive(&target, proposers, settings).await;
                    eprintln!(
                        "etcd {members} node(s), {proposers} client(s): {}",
                        result.summary()
                    );
                    results.push(Some(result));
                }
                drop(cluster);
                results
            }
        };
        for ((&proposers, ironcd), etcd) in settings.proposers.iter().zip(ironcd).zip(etcd) {
            rows.push(Row {
                members,
                proposers,
                ironcd,
                etcd,
            });
        }
    }
    println!();
    print_table(&rows);
    Ok(())
}

// ---------------------------------------------------------------------------
// Load

/// What the proposers talk to.
enum Target {
    Ironcd(RaftNode),
    /// One client per connection, all to the leader.
    Etcd(Vec<Client>),
}

/// One proposer's handle.
enum Worker {
    Ironcd(RaftNode),
    Etcd(Box<KvClient>),
}

impl Target {
    fn worker(&self, index: usize) -> Worker {
        match self {
            Target::Ironcd(node) => Worker::Ironcd(node.clone()),
            Target::Etcd(clients) => {
                Worker::Etcd(Box::new(clients[index % clients.len()].kv_client()))
            }
        }
    }
}

impl Worker {
    async fn op(&mut self, worker: usize, seq: u64, payload: &[u8]) -> Result<(), String> {
        match self {
            Worker::Ironcd(node) => node
                .propose(payload.to_vec())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Worker::Etcd(kv) => {
                let key = format!("bench/{worker:04}/{seq:012}");
                kv.put(key, payload.to_vec(), None)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// What one run measured.
#[derive(Clone)]
struct RunResult {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    /// Latency of the operations counted, in microseconds.
    latency: Histogram<u64>,
}

impl RunResult {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return f64::NAN;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn summary(&self) -> String {
        let mut text = format!(
            "{:.0} ops/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} ops",
            self.ops_per_sec(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.9),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.ops,
        );
        if self.errors > 0 {
            text.push_str(&format!(
                ", {} errors, first: {}",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        text.push(')');
        text
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Runs `proposers` concurrent proposers against `target` for the warm-up
/// and the measured window. An operation counts when it starts after the
/// warm-up and completes within the window.
async fn drive(target: &Target, proposers: usize, settings: &Settings) -> RunResult {
    let payload: Arc<[u8]> = (0..PAYLOAD_BYTES)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into();
    let begin = Instant::now();
    let measure_from = begin + settings.warmup;
    let end = measure_from + settings.measure;
    let tasks: Vec<JoinHandle<RunResult>> = (0..proposers)
        .map(|index| {
            let mut worker = target.worker(index);
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut result = RunResult {
                    ops: 0,
                    errors: 0,
                    first_error: None,
                    secs: 0.0,
                    latency: new_histogram(),
                };
                let mut seq = 0u64;
                loop {
                    let started = Instant::now();
                    if started >= end {
                        break;
                    }
                    seq += 1;
                    let outcome = worker.op(index, seq, &payload).await;
                    let done = Instant::now();
                    let counted = started >= measure_from && done <= end;
                    match outcome {
                        Ok(()) => {
                            if counted {
                                result.ops += 1;
                                let micros = (done - started).as_micros() as u64;
                                result.latency.saturating_record(micros.max(1));
                            }
                        }
                        Err(error) => {
                            if counted {
                                result.errors += 1;
                            }
                            result.first_error.get_or_insert(error);
                            // Do not spin on a cluster that refuses.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                result
            })
        })
        .collect();
    let mut total = RunResult {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: settings.measure.as_secs_f64(),
        latency: new_histogram(),
    };
    for task in tasks {
        let part = task.await.expect("a proposer panicked");
        total.ops += part.ops;
        total.errors += part.errors;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
        total
            .latency
            .add(&part.latency)
            .expect("histograms of equal bounds");
    }
    total
}

// ---------------------------------------------------------------------------
// ironcd

struct IroncdCluster {
    nodes: Vec<RaftNode>,
    transports: Vec<GrpcTransport>,
    leader: RaftNode,
    servers: Vec<PeerServerHandle>,
    appliers: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl IroncdCluster {
    async fn start(members: usize, base: &Path) -> anyhow::Result<IroncdCluster> {
        let dir = tempfile::Builder::new()
            .prefix("ironcd-bench-raft-")
            .tempdir_in(base)?;
        let ids: Vec<u64> = (1..=members as u64).collect();
        let transports: Vec<GrpcTransport> = ids
            .iter()
            .map(|&id| GrpcTransport::new(id, CLUSTER_ID, [], TransportConfig::default()))
            .collect();
        let mut servers = Vec::new();
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for transport in &transports {
            let (addr, server) = transport.serve_on("127.0.0.1:0".parse()?).await?;
            addrs.push(addr);
            servers.push(server);
        }
        for (transport, &me) in transports.iter().zip(&ids) {
            for (&peer, addr) in ids.iter().zip(&addrs) {
                if peer != me {
                    transport.add_peer(peer, format!("http://{addr}"));
                }
            }
        }
        let mut nodes = Vec::new();
        let mut appliers = Vec::new();
        for (transport, &id) in transports.iter().zip(&ids) {
            let mut config = Config::new(id, CLUSTER_ID);
            config.initial_voters = ids.clone();
            let member_dir = dir.path().join(format!("member-{id}"));
            let (node, stream) =
                RaftNode::start(config, &member_dir, Arc::new(transport.clone()), 0)
                    .with_context(|| format!("starting member {id}"))?;
            appliers.push(spawn_applier(node.clone(), stream));
            nodes.push(node);
        }
        let leader = wait_for_leader(&nodes).await?;
        Ok(IroncdCluster {
            nodes,
            transports,
            leader,
            servers,
            appliers,
            _dir: dir,
        })
    }

    async fn stop(self) {
        for node in &self.nodes {
            node.stop().await;
        }
        // The per-peer tasks hold their transport: only this ends them.
        for transport in &self.transports {
            transport.close();
        }
        for server in self.servers {
            server.stop().await;
        }
        for applier in self.appliers {
            let _ = applier.await;
        }
    }
}

async fn wait_for_leader(nodes: &[RaftNode]) -> anyhow::Result<RaftNode> {
    let deadline = Instant::now() + ELECTION_WAIT;
    loop {
        for node in nodes {
            let status = node.status().await?;
            if status.role == Role::Leader {
                return Ok(node.clone());
            }
        }
        if Instant::now() >= deadline {
            bail!("no leader elected within {ELECTION_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drains a member's apply stream. The applier has no state of its own, so
/// whatever it receives is durable at once; it reports that, and answers
/// snapshot requests with an empty snapshot.
fn spawn_applier(node: RaftNode, mut stream: ironcd_raft_node::ApplyStream) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Apply::Entries(entries) => {
                    if let Some(last) = entries.last() {
                        node.report_durable_applied(last.index);
                    }
                }
                Apply::Snapshot(snapshot) => node.report_durable_applied(snapshot.index),
                Apply::Leadership(_) => {}
                Apply::SnapshotDue { index } => {
                    if let Err(e) = node.create_snapshot(index, Vec::new()).await {
                        eprintln!("member {}: snapshot at {index} failed: {e}", node.id());
                    }
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------
// etcd

/// etcd members running as child processes; killed when dropped.
struct EtcdCluster {
    children: Vec<Child>,
    client_urls: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl EtcdCluster {
    async fn start(binary: &Path, members: usize, base: &Path) -> anyhow::Result<EtcdCluster> {
        let dir = tempfile::Builder::new()
            .prefix("ironcd-bench-etcd-")
            .tempdir_in(base)?;
        let ports = free_ports(members * 2)?;
        let names: Vec<String> = (1..=members).map(|i| format!("m{i}")).collect();
        let peer_urls: Vec<String> = (0..members)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let client_urls: Vec<String> = (0..members)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i]))
            .collect();
        let initial_cluster = names
            .iter()
            .zip(&peer_urls)
            .map(|(name, url)| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "ironcd-bench-{}",
            dir.path().file_name().unwrap_or_default().to_string_lossy()
        );
        let mut cluster = EtcdCluster {
            children: Vec::new(),
            client_urls: client_urls.clone(),
            dir,
        };
        for i in 0..members {
            let data_dir = cluster.dir.path().join(&names[i]);
            let log = std::fs::File::create(cluster.log_path(i))?;
            let child = Command::new(binary)
                .arg("--name")
                .arg(&names[i])
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--listen-client-urls")
                .arg(&client_urls[i])
                .arg("--advertise-client-urls")
                .arg(&client_urls[i])
                .arg("--listen-peer-urls")
                .arg(&peer_urls[i])
                .arg("--initial-advertise-peer-urls")
                .arg(&peer_urls[i])
                .arg("--initial-cluster")
                .arg(&initial_cluster)
                .arg("--initial-cluster-token")
                .arg(&token)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--logger")
                .arg("zap")
                .arg("--log-level")
                .arg("warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            cluster.children.push(child);
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    fn log_path(&self, member: usize) -> PathBuf {
        self.dir.path().join(format!("m{}.log", member + 1))
    }

    /// The client URL of the leader, once every member knows it.
    async fn leader_url(&self) -> anyhow::Result<Option<String>> {
        let mut leader_url = None;
        for url in &self.client_urls {
            let options = ConnectOptions::default()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(2));
            let Ok(mut client) = Client::connect([url.as_str()], Some(options)).await else {
                return Ok(None);
            };
            let Ok(status) = client.status().await else {
                return Ok(None);
            };
            let member = status.header().map_or(0, |h| h.member_id());
            if status.leader() == 0 {
                return Ok(None);
            }
            if status.leader() == member {
                leader_url = Some(url.clone());
            }
        }
        Ok(leader_url)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + ELECTION_WAIT;
        loop {
            for (i, child) in self.children.iter_mut().enumerate() {
                if let Some(exit) = child.try_wait()? {
                    let log =
                        std::fs::read_to_string(self.dir.path().join(format!("m{}.log", i + 1)))
                            .unwrap_or_default();
                    bail!("etcd member m{} exited ({exit}):\n{log}", i + 1);
                }
            }
            if self.leader_url().await?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("etcd elected no leader within {ELECTION_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clients for `proposers` proposers: connections to the leader, at
    /// most [`ETCD_CONNECTIONS`].
    async fn target(&self, proposers: usize) -> anyhow::Result<Target> {
        let url = self.leader_url().await?.context("etcd has no leader")?;
        let mut clients = Vec::new();
        for _ in 0..proposers.clamp(1, ETCD_CONNECTIONS) {
            let options = ConnectOptions::default()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(10));
            clients.push(Client::connect([url.as_str()], Some(options)).await?);
        }
        Ok(Target::Etcd(clients))
    }
}

/// `count` distinct loopback ports free at the time of asking.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

fn etcd_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "version unknown".into())
}

/// The type of the filesystem `path` lives on, from `/proc/mounts`.
fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| {
                (
                    point.len(),
                    format!("{kind} on {device}, mounted at {point}"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".into(), |(_, text)| text)
}

// ---------------------------------------------------------------------------
// Report

struct Row {
    members: usize,
    proposers: usize,
    ironcd: RunResult,
    etcd: Option<RunResult>,
}

fn print_table(rows: &[Row]) {
    let header = [
        "shape",
        "proposers",
        "ironcd ops/s",
        "etcd ops/s",
        "ratio",
        "ironcd p50/p99 ms",
        "etcd p50/p99 ms",
        "p50 ratio",
    ];
    let mut lines = vec![header.map(String::from).to_vec()];
    for row in rows {
        let latency =
            |r: &RunResult| format!("{:.2} / {:.2}", r.quantile_ms(0.5), r.quantile_ms(0.99));
        let (etcd_ops, ratio, etcd_latency, p50_ratio) = match &row.etcd {
            Some(etcd) => (
                format!("{:.0}", etcd.ops_per_sec()),
                format!("{:.2}x", row.ironcd.ops_per_sec() / etcd.ops_per_sec()),
                latency(etcd),
                format!(
                    "{:.2}x",
                    row.ironcd.quantile_ms(0.5) / etcd.quantile_ms(0.5)
                ),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        lines.push(vec![
            format!(
                "{} node{}",
                row.members,
                if row.members == 1 { "" } else { "s" }
            ),
            row.proposers.to_string(),
            format!("{:.0}", row.ironcd.ops_per_sec()),
            etcd_ops,
            ratio,
            latency(&row.ironcd),
            etcd_latency,
            p50_ratio,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, width))| {
                if c < 2 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("|-{}-|", rule.join("-|-"));
        }
    }
    let errors: u64 = rows
        .iter()
        .map(|r| r.ironcd.errors + r.etcd.as_ref().map_or(0, |e| e.errors))
        .sum();
    if errors > 0 {
        println!("\n{errors} operations failed in the measured windows (see the lines above)");
    }

    println!("\nTargets of issue 4 (reported, not asserted):");
    let find = |members: usize, proposers: usize| {
        rows.iter()
            .find(|r| r.members == members && r.proposers == proposers)
    };
    match find(3, 256).map(|r| (r, r.etcd.as_ref())) {
        None => println!("  3 nodes, 256 proposers: not run"),
        Some((row, Some(etcd))) => {
            let ratio = row.ironcd.ops_per_sec() / etcd.ops_per_sec();
            println!(
                "  3 nodes, 256 proposers: ironcd commits {ratio:.2}x etcd's puts/s (target >= 2x): {}",
                verdict(ratio >= 2.0)
            );
        }
        Some((_, None)) => println!("  3 nodes, 256 proposers: no etcd result"),
    }
    for members in [1, 3] {
        match find(members, 1).map(|r| (r, r.etcd.as_ref())) {
            None => println!("  {members} node(s), 1 proposer: not run"),
            Some((row, Some(etcd))) => {
                let p50 = row.ironcd.quantile_ms(0.5) / etcd.quantile_ms(0.5);
                let p99 = row.ironcd.quantile_ms(0.99) / etcd.quantile_ms(0.99);
                println!(
                    "  {members} node(s), 1 proposer: ironcd latency p50 {p50:.2}x, p99 {p99:.2}x etcd's (target <= 1.2x): {}",
                    verdict(p50 <= 1.2 && p99 <= 1.2)
                );
            }
            Some((_, None)) => println!("  {members} node(s), 1 proposer: no etcd result"),
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}
