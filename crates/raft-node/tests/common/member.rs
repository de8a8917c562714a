//! One in-process member on real loopback gRPC and its durable file
//! applier. Shared by the harness (`mod.rs` re-exports it) and the member
//! process of `tests/processes.rs` (`tests/bin/member_process.rs` includes
//! it through `#[path]`), so it uses only the crate's normal dependencies.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironcd_raft_node::{
    Apply, ApplyStream, CommittedKind, Config, Faults, FaultyTransport, GrpcTransport, RaftNode,
    SnapshotPayload, Status, TransportConfig,
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
            Apply::Leadership(_) => {}
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
