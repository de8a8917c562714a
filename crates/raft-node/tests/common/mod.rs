//! Test harness: in-process members on real loopback gRPC with a durable
//! file applier (`member.rs`, which the member process shares), clusters of
//! them, and waiting helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ironcd_raft_node::{Config, Error, Faults, RaftNode, Role, Status};

mod member;
pub use member::*;

/// Member ids are 1..=n.
pub fn ids(n: u64) -> Vec<u64> {
    (1..=n).collect()
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
