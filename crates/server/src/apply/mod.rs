//! The apply loop: committed entries, in log order, into the store,
//! membership and alarms. Each entry's effects and its index
//! (`consistent_index`) land in one backend batch, so an entry is applied
//! exactly once across restarts: entries at or below the stored index are
//! skipped.
//!
//! Shaped as etcd's applier: [`RequestApplier`] has a method per request
//! kind; [`Domains`] implements it over the state, one module per domain
//! (`kv`, `alarm`, `cluster`; leases and auth next), and checks that
//! apply to several kinds wrap it ([`Quota`]; permissions next). The
//! applier reaches raft and the peers only through [`SnapshotSink`] and
//! [`PeerDirectory`], so it runs in tests without either.

mod alarm;
mod cluster;
mod kv;
mod lease;
pub(crate) use lease::lease_error;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use ironcd_api::EtcdError;
use ironcd_backend::{Backend, RocksBackend};
use ironcd_proto::etcdserverpb::{
    AlarmRequest, AlarmType, ClusterMemberAttrSetRequest, CompactionRequest, DeleteRangeRequest,
    InternalRaftRequest, LeaseCheckpointRequest, LeaseGrantRequest, LeaseRevokeRequest,
    MemberUpdateRequest, PutRequest, TxnRequest,
};
use ironcd_raft_node::{
    Apply, ApplyStream, Committed, CommittedKind, GrpcTransport, RaftNode, SnapshotData,
    SnapshotPayload,
};
use prost::Message;

use crate::state::{write_consistent_index, Outcome, State};

/// What the applier asks of raft: making snapshots (`RaftNode`).
pub trait SnapshotSink: Send + Sync + 'static {
    /// The state up to `index` is durable.
    fn report_durable_applied(&self, index: u64);
    /// Take a snapshot at `index` (already reported durable), without data.
    fn create_snapshot(&self, index: u64) -> impl Future<Output = Result<(), String>> + Send;
}

impl SnapshotSink for RaftNode {
    fn report_durable_applied(&self, index: u64) {
        RaftNode::report_durable_applied(self, index);
    }

    async fn create_snapshot(&self, index: u64) -> Result<(), String> {
        RaftNode::create_snapshot(self, index, Vec::new())
            .await
            .map_err(|e| e.to_string())
    }
}

/// Who the peer transport talks to; it follows membership as it is applied
/// (`GrpcTransport`).
pub trait PeerDirectory: Send + Sync + 'static {
    /// Talk to `id` at `url` (this member's own id is ignored).
    fn add_peer(&self, id: u64, url: String);
    /// Stop talking to `id`.
    fn remove_peer(&self, id: u64);
    /// The peers known, with their URLs.
    fn peers(&self) -> Vec<(u64, String)>;
}

impl PeerDirectory for GrpcTransport {
    fn add_peer(&self, id: u64, url: String) {
        GrpcTransport::add_peer(self, id, url);
    }

    fn remove_peer(&self, id: u64) {
        GrpcTransport::remove_peer(self, id);
    }

    fn peers(&self) -> Vec<(u64, String)> {
        GrpcTransport::peers(self)
    }
}

/// Where an entry sits in the log; recorded with its effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    pub index: u64,
    pub term: u64,
}

/// One method per kind of request an entry carries (etcd's `applierV3`).
/// Each writes its effects and the entry's index in one backend batch.
pub(crate) trait RequestApplier {
    fn put(&self, at: At, r: &PutRequest) -> Outcome;
    fn delete_range(&self, at: At, r: &DeleteRangeRequest) -> Outcome;
    fn txn(&self, at: At, r: &TxnRequest) -> Outcome;
    fn compaction(&self, at: At, r: &CompactionRequest) -> Outcome;
    fn alarm(&self, at: At, r: &AlarmRequest) -> Outcome;
    fn member_attr_set(&self, at: At, r: &ClusterMemberAttrSetRequest) -> Outcome;
    fn member_update(&self, at: At, r: &MemberUpdateRequest) -> Outcome;
    fn lease_grant(&self, at: At, r: &LeaseGrantRequest) -> Outcome;
    fn lease_revoke(&self, at: At, r: &LeaseRevokeRequest) -> Outcome;
    fn lease_checkpoint(&self, at: At, r: &LeaseCheckpointRequest) -> Outcome;
    /// An entry with no effect (or a refused one) still moves the index.
    fn mark_only(&self, at: At);
    /// The backend the state runs on.
    type B: Backend;
    /// The shared state, for checks that wrap the applier.
    fn state(&self) -> &State<Self::B>;
}

/// Applies `req` through `applier`: the one place that tells request kinds
/// apart.
pub(crate) fn dispatch(
    applier: &impl RequestApplier,
    at: At,
    req: &InternalRaftRequest,
) -> Outcome {
    if let Some(r) = &req.put {
        applier.put(at, r)
    } else if let Some(r) = &req.delete_range {
        applier.delete_range(at, r)
    } else if let Some(r) = &req.txn {
        applier.txn(at, r)
    } else if let Some(r) = &req.compaction {
        applier.compaction(at, r)
    } else if let Some(r) = &req.alarm {
        applier.alarm(at, r)
    } else if let Some(r) = &req.cluster_member_attr_set {
        applier.member_attr_set(at, r)
    } else if let Some(r) = &req.member_update {
        applier.member_update(at, r)
    } else if let Some(r) = &req.lease_grant {
        applier.lease_grant(at, r)
    } else if let Some(r) = &req.lease_revoke {
        applier.lease_revoke(at, r)
    } else if let Some(r) = &req.lease_checkpoint {
        applier.lease_checkpoint(at, r)
    } else {
        applier.mark_only(at);
        Err(EtcdError::Unimplemented("this request type"))
    }
}

/// The applier of the state's domains.
pub(crate) struct Domains<'a, B: Backend> {
    state: &'a State<B>,
    peers: &'a dyn PeerDirectory,
}

impl<B: Backend> Domains<'_, B> {
    fn mark_only(&self, at: At) {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        write_consistent_index(&mut tx, at.index, at.term);
    }
}

impl<B: Backend> RequestApplier for Domains<'_, B> {
    type B = B;
    fn put(&self, at: At, r: &PutRequest) -> Outcome {
        Domains::put(self, at, r)
    }
    fn delete_range(&self, at: At, r: &DeleteRangeRequest) -> Outcome {
        Domains::delete_range(self, at, r)
    }
    fn txn(&self, at: At, r: &TxnRequest) -> Outcome {
        Domains::txn(self, at, r)
    }
    fn compaction(&self, at: At, r: &CompactionRequest) -> Outcome {
        Domains::compaction(self, at, r)
    }
    fn alarm(&self, at: At, r: &AlarmRequest) -> Outcome {
        Domains::alarm(self, at, r)
    }
    fn member_attr_set(&self, at: At, r: &ClusterMemberAttrSetRequest) -> Outcome {
        Domains::member_attr_set(self, at, r)
    }
    fn member_update(&self, at: At, r: &MemberUpdateRequest) -> Outcome {
        Domains::member_update(self, at, r)
    }
    fn lease_grant(&self, at: At, r: &LeaseGrantRequest) -> Outcome {
        Domains::lease_grant(self, at, r)
    }
    fn lease_revoke(&self, at: At, r: &LeaseRevokeRequest) -> Outcome {
        Domains::lease_revoke(self, at, r)
    }
    fn lease_checkpoint(&self, at: At, r: &LeaseCheckpointRequest) -> Outcome {
        Domains::lease_checkpoint(self, at, r)
    }
    fn mark_only(&self, at: At) {
        Domains::mark_only(self, at)
    }
    fn state(&self) -> &State<B> {
        self.state
    }
}

/// etcd's quota applier: while NOSPACE is raised, writes that can grow the
/// store (a Put, a Txn with a put) are refused at apply time, on every
/// member alike.
pub(crate) struct Quota<A>(pub A);

impl<A: RequestApplier> Quota<A> {
    fn nospace(&self) -> bool {
        self.0
            .state()
            .alarms
            .read()
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32)
    }

    fn refuse(&self, at: At) -> Outcome {
        self.0.mark_only(at);
        Err(EtcdError::NoSpace)
    }
}

impl<A: RequestApplier> RequestApplier for Quota<A> {
    type B = A::B;
    fn put(&self, at: At, r: &PutRequest) -> Outcome {
        if self.nospace() {
            return self.refuse(at);
        }
        self.0.put(at, r)
    }
    fn txn(&self, at: At, r: &TxnRequest) -> Outcome {
        if self.nospace() && kv::has_put(r) {
            return self.refuse(at);
        }
        self.0.txn(at, r)
    }
    fn delete_range(&self, at: At, r: &DeleteRangeRequest) -> Outcome {
        self.0.delete_range(at, r)
    }
    fn compaction(&self, at: At, r: &CompactionRequest) -> Outcome {
        self.0.compaction(at, r)
    }
    fn alarm(&self, at: At, r: &AlarmRequest) -> Outcome {
        self.0.alarm(at, r)
    }
    fn member_attr_set(&self, at: At, r: &ClusterMemberAttrSetRequest) -> Outcome {
        self.0.member_attr_set(at, r)
    }
    fn member_update(&self, at: At, r: &MemberUpdateRequest) -> Outcome {
        self.0.member_update(at, r)
    }
    /// etcd's quota applier grants the lease, then answers NOSPACE.
    fn lease_grant(&self, at: At, r: &LeaseGrantRequest) -> Outcome {
        let nospace = self.nospace();
        let outcome = self.0.lease_grant(at, r);
        match outcome {
            Ok(_) if nospace => Err(EtcdError::NoSpace),
            other => other,
        }
    }
    fn lease_revoke(&self, at: At, r: &LeaseRevokeRequest) -> Outcome {
        self.0.lease_revoke(at, r)
    }
    fn lease_checkpoint(&self, at: At, r: &LeaseCheckpointRequest) -> Outcome {
        self.0.lease_checkpoint(at, r)
    }
    fn mark_only(&self, at: At) {
        self.0.mark_only(at)
    }
    fn state(&self) -> &State<A::B> {
        self.0.state()
    }
}

/// Applies what raft delivers. Runs on a thread of its own.
pub struct Applier<S = RaftNode, P = GrpcTransport, B: Backend = RocksBackend> {
    /// Shared state.
    pub state: Arc<State<B>>,
    /// Where snapshots are made (the raft member).
    pub node: S,
    /// The peer transport (peers come and go with membership).
    pub peers: Arc<P>,
    /// Index of the last entry applied.
    pub consistent_index: u64,
    /// What every lease is extended by when this member becomes leader
    /// (the election timeout, as etcd).
    pub lease_extend: std::time::Duration,
}

impl<S: SnapshotSink, P: PeerDirectory, B: Backend> Applier<S, P, B> {
    /// Runs until the raft member stops.
    pub fn run(mut self, mut stream: ApplyStream) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime for the applier");
        rt.block_on(async {
            while let Some(item) = stream.next().await {
                self.apply(item).await;
            }
        });
    }

    /// Applies one item of raft's stream.
    pub async fn apply(&mut self, item: Apply) {
        match item {
            Apply::Entries(entries) => {
                // Answered once the watchers have heard of the batch, as
                // etcd answers a write after its events went to them.
                let state = self.state.clone();
                let answers: Vec<(u64, Outcome)> = state
                    .batch_commits(|| entries.iter().filter_map(|e| self.apply_entry(e)).collect());
                for (id, outcome) in answers {
                    state.resolve(id, outcome);
                }
            }
            Apply::Snapshot(s) => self.apply_snapshot(s),
            Apply::SnapshotDue { index } => self.snapshot(index).await,
            // In order with the entries, so that no lease granted in this
            // member's term is extended as if it predated the election.
            Apply::Leadership(true) => {
                tracing::info!("leading: the lessor expires leases from now on");
                self.state.lessor.promote(self.lease_extend);
            }
            Apply::Leadership(false) => {
                tracing::info!("no longer leading: the lessor stops expiring leases");
                self.state.lessor.demote();
            }
        }
    }

    fn domains(&self) -> Domains<'_, B> {
        Domains {
            state: &self.state,
            peers: self.peers.as_ref(),
        }
    }

    /// Applies one entry; a request's id and outcome, for its proposer.
    fn apply_entry(&mut self, e: &Committed) -> Option<(u64, Outcome)> {
        let at = At {
            index: e.index,
            term: e.term,
        };
        if e.index <= self.consistent_index {
            self.state.set_applied(e.index, e.term);
            return None;
        }
        let mut answer = None;
        match &e.kind {
            CommittedKind::Normal(data) if data.is_empty() => self.domains().mark_only(at),
            CommittedKind::Normal(data) => match InternalRaftRequest::decode(data.as_slice()) {
                Ok(req) => {
                    let id = req.header.as_ref().map(|h| h.id).unwrap_or(0);
                    answer = Some((id, dispatch(&Quota(self.domains()), at, &req)));
                }
                // Every member must apply the same log: one that skipped an
                // entry would serve a different state from then on.
                Err(err) => panic!(
                    "committed entry {} (term {}) does not decode as a request: {err}; \
                     the log is corrupt, stopping this member",
                    e.index, e.term
                ),
            },
            CommittedKind::ConfChange(cc) => {
                // etcd 3.6's point (its robustness suite sleeps here), and
                // the same step under the name ironcd's suite asked for.
                fail::fail_point!("beforeApplyOneConfChange");
                fail::fail_point!("applyBeforeConfChange");
                self.domains().conf_change(at, cc)
            }
        }
        self.consistent_index = e.index;
        self.state.set_applied(e.index, e.term);
        answer
    }

    fn apply_snapshot(&mut self, snapshot: SnapshotData) {
        let (index, term) = (snapshot.index, snapshot.term);
        let file = match snapshot.payload {
            SnapshotPayload::File(file) => file,
            SnapshotPayload::None => {
                // The bootstrap snapshot (the founding members are already
                // on disk), or one of this member's own, which hold no
                // data: the backend already holds everything up to them.
                if index > self.consistent_index.max(1) {
                    panic!(
                        "a snapshot at {index} without data, but the backend holds only up to {}",
                        self.consistent_index
                    );
                }
                self.state
                    .set_applied(self.consistent_index.max(index), term);
                return;
            }
            SnapshotPayload::Inline(_) => {
                panic!("a snapshot at {index} with inline data: this server never makes one")
            }
        };
        match self.state.restore_from(&file) {
            Ok(consistent_index) => {
                tracing::info!(
                    index,
                    consistent_index,
                    "restored the backend from a snapshot"
                );
                // The restored backend is durable: the file is not needed
                // again (a crash before this line restores it again).
                if let Err(err) = std::fs::remove_file(&file) {
                    tracing::warn!(file = %file.display(), %err, "removing restored snapshot data");
                }
                self.consistent_index = consistent_index.max(index);
                self.domains().reconcile_peers();
                self.state.set_applied(self.consistent_index, term);
            }
            Err(err) => panic!(
                "restoring the backend from the snapshot at {index} ({}): {err}",
                file.display()
            ),
        }
    }

    /// Makes the state at `index` durable, then lets raft take a snapshot
    /// there without data (etcd's way): the backend is the state, so the
    /// snapshot file holds raft's metadata only, and the WAL before `index`
    /// can go. A peer that needs the snapshot gets the backend as it is when
    /// it is sent (the transport's snapshot source, set at start).
    async fn snapshot(&self, index: u64) {
        if let Err(err) = self.state.store().backend().force_commit() {
            tracing::error!(index, %err, "committing the backend for a snapshot failed");
            return;
        }
        self.node.report_durable_applied(index);
        if let Err(err) = self.node.create_snapshot(index).await {
            tracing::warn!(index, %err, "raft refused the snapshot");
        }
    }
}
