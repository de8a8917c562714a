//! Test harness: a durable file applier, in-process members on real loopback
//! gRPC, and waiting helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ironcd_raft_node::{
    Apply, ApplyStream, CommittedKind, Config, Error, Faults, FaultyTransport, GrpcTransport,
    RaftNode, Role, SnapshotPayload, Status, TransportConfig,
};
use parking_lot::Mutex;

pub const CLUSTER_ID: u64 = 0xc1;

/// The applier's view: every entry applied, by index, kept in a file that
/// is fsynced before the index is reported durable.
#[derive(Debug, Default)]
pub struct AppliedLog {
    pub entries: BTreeMap<u64, Vec<u8>>,
    pub snapshots_restored: u64,
    pub snapshots_made: u64,
}

impl AppliedLog {
    pub fn last_index(&self) -> u64 {
        self.entries.keys().next_back().copied().unwrap_or(0)
    }

    /// The proposed payloads in log order (no empty or conf entries).
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.entries
            .values()
            .filter(|d| !d.is_empty() && d.as_slice() != CONF_MARK)
            .cloned()
            .collect()
    }
}

const CONF_MARK: &[u8] = b"#conf";

/// `[index u64 LE][len u32 LE][data]` records.
fn encode_records(entries: &BTreeMap<u64, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, data) in entries {
        push_record(&mut out, *index, data);
    }
    out
}

fn push_record(out: &mut Vec<u8>, index: u64, data: &[u8]) {
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// Whole records only: a torn tail was never reported durable.
fn decode_records(mut bytes: &[u8]) -> BTreeMap<u64, Vec<u8>> {
    let mut entries = BTreeMap::new();
    while bytes.len() >= 12 {
        let index = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        if bytes.len() < 12 + len {
            break;
        }
        entries.insert(index, bytes[12..12 + len].to_vec());
        bytes = &bytes[12 + len..];
    }
    entries
}

/// Loads the applier's file; its last index is the durable applied index.
pub fn load_applied(dir: &Path) -> AppliedLog {
    let bytes = fs::read(dir.join("applied.log")).unwrap_or_default();
    AppliedLog {
        entries: decode_records(&bytes),
        ..Default::default()
    }
}

fn replace_file(dir: &Path, bytes: &[u8]) {
    let tmp = dir.join("applied.log.tmp");
    let mut file = File::create(&tmp).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
    fs::rename(&tmp, dir.join("applied.log")).unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
}

/// Drains `stream` into the file and `log` until the node stops.
pub async fn run_applier(
    node: RaftNode,
    mut stream: ApplyStream,
    dir: PathBuf,
    log: Arc<Mutex<AppliedLog>>,
) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("applied.log"))
        .unwrap();
    while let Some(item) = stream.next().await {
        match item {
            Apply::Entries(entries) => {
                let mut buf = Vec::new();
                {
                    let mut log = log.lock();
                    for entry in &entries {
                        let data = match &entry.kind {
                            CommittedKind::Normal(data) => data.clone(),
                            CommittedKind::ConfChange(_) => CONF_MARK.to_vec(),
                        };
                        push_record(&mut buf, entry.index, &data);
                        let previous = log.last_index();
                        assert!(
                            entry.index == previous + 1 || previous == 0,
                            "applied {} after {}",
                            entry.index,
                            previous
                        );
                        log.entries.insert(entry.index, data);
                    }
                }
                file.write_all(&buf).unwrap();
                file.sync_data().unwrap();
                let last = entries.last().unwrap().index;
                node.report_durable_applied(last);
            }
            Apply::Snapshot(snapshot) => {
                let data = match &snapshot.payload {
                    SnapshotPayload::None => Vec::new(),
                    SnapshotPayload::Inline(data) => data.clone(),
                    // Kept: the transport sends it on if this member leads.
                    SnapshotPayload::File(path) => fs::read(path).unwrap(),
                };
                let mut entries = decode_records(&data);
                // The bootstrap snapshot has no data; mark its index.
                entries.entry(snapshot.index).or_default();
                replace_file(&dir, &encode_records(&entries));
                file = OpenOptions::new()
                    .append(true)
                    .open(dir.join("applied.log"))
                    .unwrap();
                {
                    let mut log = log.lock();
                    log.entries = entries;
                    log.snapshots_restored += 1;
                }
                // For tests that look from another process.
                fs::write(dir.join("restored"), snapshot.index.to_string()).unwrap();
                node.report_durable_applied(snapshot.index);
            }
            Apply::SnapshotDue { index } => {
                let data = {
                    let log = log.lock();
                    assert_eq!(
                        log.last_index(),
                        index,
                        "snapshot requested at what was applied"
                    );
                    encode_records(&log.entries)
                };
                if node.create_snapshot(index, data).await.is_ok() {
                    log.lock().snapshots_made += 1;
                }
            }
        }
    }
}

/// Member ids are 1..=n.
pub fn ids(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// A config with fast ticks for tests (20 ms, election after 10 ticks).
pub fn test_config(id: u64, voters: &[u64]) -> Config {
    let mut config = Config::new(id, CLUSTER_ID);
    config.initial_voters = voters.to_vec();
    config.tick_ms = 20;
    config.request_timeout_ms = 3_000;
    config
}

/// One in-process member: its node, transport, peer server and applier.
pub struct Member {
    pub id: u64,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub node: RaftNode,
    pub transport: GrpcTransport,
    pub log: Arc<Mutex<AppliedLog>>,
    server: ironcd_raft_node::PeerServerHandle,
    applier: tokio::task::JoinHandle<()>,
}

impl Member {
    /// Starts member `config.id` in `dir`, serving on `addr` (port 0 picks
    /// one), knowing `peers`.
    pub async fn start(
        config: Config,
        dir: &Path,
        addr: SocketAddr,
        peers: &[(u64, String)],
        faults: &Arc<Faults>,
    ) -> Member {
        let id = config.id;
        fs::create_dir_all(dir).unwrap();
        let transport = GrpcTransport::new(
            id,
            CLUSTER_ID,
            peers.iter().cloned(),
            TransportConfig::default(),
        );
        let (addr, server) = transport.serve_on(addr).await.unwrap();
        let log = Arc::new(Mutex::new(load_applied(dir)));
        let applied = log.lock().last_index();
        let wrapped = FaultyTransport::new(id, Arc::new(transport.clone()), faults.clone());
        let (node, stream) =
            RaftNode::start(config, &dir.join("member"), Arc::new(wrapped), applied).unwrap();
        let applier = tokio::spawn(run_applier(
            node.clone(),
            stream,
            dir.to_path_buf(),
            log.clone(),
        ));
        Member {
            id,
            dir: dir.to_path_buf(),
            addr,
            node,
            transport,
            log,
            server,
            applier,
        }
    }

    /// Stops everything; the directory stays for a restart.
    pub async fn stop(self) {
        self.node.stop().await;
        self.transport.close();
        self.server.stop().await;
        let _ = self.applier.await;
    }

    pub async fn status(&self) -> Status {
        self.node.status().await.unwrap()
    }
}

/// Members on loopback with a shared fault switchboard.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub members: BTreeMap<u64, Member>,
    pub addrs: BTreeMap<u64, SocketAddr>,
    pub faults: Arc<Faults>,
    pub configure: fn(&mut Config),
}

impl Cluster {
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, |_| {}).await
    }

    /// `n` voters, each config passed through `configure`.
    pub async fn start_with(n: u64, configure: fn(&mut Config)) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        // Bind first so every member knows every address.
        let mut addrs = BTreeMap::new();
        let mut listeners = Vec::new();
        for id in ids(n) {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addrs.insert(id, listener.local_addr().unwrap());
            listeners.push(listener);
        }
        drop(listeners);
        let mut cluster = Cluster {
            root,
            members: BTreeMap::new(),
            addrs,
            faults,
            configure,
        };
        for id in ids(n) {
            cluster.start_member(id, &ids(n), false).await;
        }
        cluster
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("m{id}"))
    }

    pub fn peer_urls(&self) -> Vec<(u64, String)> {
        self.addrs
            .iter()
            .map(|(id, addr)| (*id, format!("http://{addr}")))
            .collect()
    }

    /// Starts (or restarts) member `id`; `join` for a member new to a
    /// running cluster.
    pub async fn start_member(&mut self, id: u64, voters: &[u64], join: bool) {
        let addr = match self.addrs.get(&id) {
            Some(addr) => *addr,
            None => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                self.addrs.insert(id, addr);
                addr
            }
        };
        let mut config = test_config(id, voters);
        if join {
            config.join = true;
            config.initial_voters.clear();
        }
        (self.configure)(&mut config);
        let member =
            Member::start(config, &self.dir(id), addr, &self.peer_urls(), &self.faults).await;
        self.members.insert(id, member);
    }

    pub async fn stop_member(&mut self, id: u64) {
        if let Some(member) = self.members.remove(&id) {
            member.stop().await;
        }
    }

    pub async fn stop_all(&mut self) {
        for id in self.members.keys().copied().collect::<Vec<_>>() {
            self.stop_member(id).await;
        }
    }

    pub fn node(&self, id: u64) -> RaftNode {
        self.members[&id].node.clone()
    }

    pub async fn statuses(&self) -> Vec<Status> {
        let mut out = Vec::new();
        for member in self.members.values() {
            out.push(member.status().await);
        }
        out
    }

    /// Fails if two members lead in one term.
    pub async fn check_one_leader_per_term(&self) {
        let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
        for status in self.statuses().await {
            if status.role == Role::Leader {
                if let Some(other) = leaders.insert(status.term, status.id) {
                    panic!(
                        "members {other} and {} both lead term {}",
                        status.id, status.term
                    );
                }
            }
        }
    }

    /// Waits for a leader among `among` that they all agree on.
    pub async fn wait_leader_among(&self, among: &[u64]) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(leader) = self.agreed_leader(among).await {
                self.check_one_leader_per_term().await;
                return leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader among {among:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn agreed_leader(&self, among: &[u64]) -> Option<u64> {
        let mut leader = None;
        for id in among {
            let status = self.members[id].status().await;
            if status.role == Role::Leader {
                leader = Some(status.id);
            }
        }
        let leader = leader?;
        for id in among {
            if self.members[id].status().await.leader != leader {
                return None;
            }
        }
        Some(leader)
    }

    pub async fn wait_leader(&self) -> u64 {
        let among: Vec<u64> = self.members.keys().copied().collect();
        self.wait_leader_among(&among).await
    }

    /// Waits until every member in `among` has applied every payload in
    /// `acked`, then checks they applied the same entries in the same order.
    pub async fn wait_applied(&self, among: &[u64], acked: &[Vec<u8>]) {
        wait_until(
            "every acknowledged entry applied everywhere",
            Duration::from_secs(30),
            || async move {
                among.iter().all(|id| {
                    let payloads = self.members[id].log.lock().payloads();
                    acked.iter().all(|a| payloads.contains(a))
                })
            },
        )
        .await;
        self.check_same_order(among);
    }

    /// Every pair of members agrees on every index both have applied.
    pub fn check_same_order(&self, among: &[u64]) {
        let logs: Vec<(u64, BTreeMap<u64, Vec<u8>>)> = among
            .iter()
            .map(|id| (*id, self.members[id].log.lock().entries.clone()))
            .collect();
        for (a, log_a) in &logs {
            for (b, log_b) in &logs {
                for (index, data) in log_a {
                    if let Some(other) = log_b.get(index) {
                        assert_eq!(data, other, "members {a} and {b} differ at index {index}");
                    }
                }
            }
        }
    }
}

/// Polls `condition` every 10 ms until it holds; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Proposes `data` through `node`, retrying while there is no leader or the
/// outcome is unknown (retries may commit it twice; tests use distinct
/// payloads and look for presence).
pub async fn propose_retrying(node: &RaftNode, data: Vec<u8>) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match node.propose(data.clone()).await {
            Ok(index) => return index,
            Err(Error::NoLeader | Error::Dropped | Error::Timeout)
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
}

pub fn payload(tag: &str, i: u64) -> Vec<u8> {
    format!("{tag}-{i}").into_bytes()
}
