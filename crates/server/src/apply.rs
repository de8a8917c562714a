//! The apply loop: committed entries, in log order, into the store,
//! membership and alarms. Each entry's effects and its index
//! (`consistent_index`) land in one backend batch, so an entry is applied
//! exactly once across restarts: entries at or below the stored index are
//! skipped.

use std::sync::Arc;

use ironcd_api::EtcdError;
use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    ClusterMemberAttrSetRequest, CompactionRequest, CompactionResponse, InternalRaftRequest,
    Member, MemberUpdateRequest, PutRequest, ResponseHeader,
};
use ironcd_raft_node::{
    AppliedConfChange, Apply, ApplyStream, Committed, CommittedKind, ConfChange, GrpcTransport,
    RaftNode,
};
use prost::Message;

use crate::kv;
use crate::state::{set_alarm, write_consistent_index, Applied, Outcome, State};

/// Leases that exist. There is no lessor yet, so none do and a Put with a
/// lease is refused as etcd refuses an unknown one.
fn no_leases(_: i64) -> bool {
    false
}

/// Applies what raft delivers. Runs on a thread of its own.
pub struct Applier {
    /// Shared state.
    pub state: Arc<State>,
    /// The raft member (for snapshots).
    pub node: RaftNode,
    /// The peer transport (peers come and go with membership).
    pub transport: Arc<GrpcTransport>,
    /// Index of the last entry applied.
    pub consistent_index: u64,
}

impl Applier {
    /// Runs until the raft member stops.
    pub fn run(mut self, mut stream: ApplyStream) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime for the applier");
        rt.block_on(async {
            while let Some(item) = stream.next().await {
                match item {
                    Apply::Entries(entries) => entries.iter().for_each(|e| self.apply_entry(e)),
                    Apply::Snapshot(s) => self.apply_snapshot(s.index, s.term, &s.data),
                    Apply::SnapshotDue { index } => self.snapshot(index).await,
                }
            }
        });
    }

    fn apply_entry(&mut self, e: &Committed) {
        if e.index <= self.consistent_index {
            self.state.set_applied(e.index, e.term);
            return;
        }
        match &e.kind {
            CommittedKind::Normal(data) if data.is_empty() => self.mark_only(e),
            CommittedKind::Normal(data) => match InternalRaftRequest::decode(data.as_slice()) {
                Ok(req) => self.apply_request(e, req),
                Err(err) => {
                    tracing::error!(index = e.index, %err, "undecodable entry; skipped");
                    self.mark_only(e);
                }
            },
            CommittedKind::ConfChange(cc) => self.apply_conf_change(e, cc),
        }
        self.consistent_index = e.index;
        self.state.set_applied(e.index, e.term);
    }

    /// An entry with no effect still moves the consistent index.
    fn mark_only(&self, e: &Committed) {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        write_consistent_index(&mut tx, e.index, e.term);
    }

    fn apply_request(&self, e: &Committed, req: InternalRaftRequest) {
        let id = req.header.as_ref().map(|h| h.id).unwrap_or(0);
        let outcome = if let Some(p) = req.put {
            self.put(e, &p)
        } else if let Some(d) = req.delete_range {
            self.write_kv(e, |txn| kv::delete_range(txn, &d).map(Applied::Delete))
        } else if let Some(t) = req.txn {
            self.txn(e, &t)
        } else if let Some(c) = req.compaction {
            self.compact(e, &c)
        } else if let Some(a) = req.alarm {
            self.alarm(e, &a)
        } else if let Some(attr) = req.cluster_member_attr_set {
            self.member_attr(e, &attr)
        } else if let Some(update) = req.member_update {
            self.member_update(e, &update)
        } else {
            self.mark_only(e);
            Err(EtcdError::Unimplemented("this request type"))
        };
        self.state.resolve(id, outcome);
    }

    fn nospace(&self) -> bool {
        self.state
            .alarms
            .read()
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32)
    }

    /// Runs `f` in one mvcc write txn that also records the index; on an
    /// error nothing but the index is written.
    fn write_kv(
        &self,
        e: &Committed,
        f: impl FnOnce(&mut ironcd_mvcc::TxnWrite<'_, ironcd_backend::RocksBackend>) -> Outcome,
    ) -> Outcome {
        let store = self.state.store();
        let mut txn = store.write();
        let outcome = f(&mut txn);
        write_consistent_index(txn.backend_tx(), e.index, e.term);
        outcome
    }

    fn put(&self, e: &Committed, p: &PutRequest) -> Outcome {
        if self.nospace() {
            self.mark_only(e);
            return Err(EtcdError::NoSpace);
        }
        if p.lease != 0 && !no_leases(p.lease) {
            self.mark_only(e);
            return Err(EtcdError::LeaseNotFound);
        }
        self.write_kv(e, |txn| kv::put(txn, p).map(Applied::Put))
    }

    fn txn(&self, e: &Committed, t: &ironcd_proto::etcdserverpb::TxnRequest) -> Outcome {
        if self.nospace() && has_put(t) {
            self.mark_only(e);
            return Err(EtcdError::NoSpace);
        }
        let store = self.state.store();
        let result = match kv::txn_write(&store, t, &no_leases) {
            Ok((mut txn, response)) => {
                write_consistent_index(txn.backend_tx(), e.index, e.term);
                Ok(Applied::Txn(response))
            }
            Err(err) => Err(err),
        };
        drop(store);
        if result.is_err() {
            self.mark_only(e);
        }
        result
    }

    fn compact(&self, e: &Committed, c: &CompactionRequest) -> Outcome {
        let outcome = {
            let store = self.state.store();
            store
                .compact(c.revision)
                .map_err(kv::mvcc_error)
                .map(|wait| {
                    let header = Some(ResponseHeader {
                        revision: store.current_rev(),
                        ..ResponseHeader::default()
                    });
                    Applied::Compact(CompactionResponse { header }, Some(wait))
                })
        };
        self.mark_only(e);
        outcome
    }

    fn alarm(&self, e: &Committed, a: &AlarmRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        let member = AlarmMember {
            member_id: a.member_id,
            alarm: a.alarm,
        };
        let alarms = match a.action() {
            AlarmAction::Get => Vec::new(),
            AlarmAction::Activate => {
                if self.state.members.read().get(a.member_id).is_some() {
                    tracing::warn!(member = %format!("{:x}", a.member_id), alarm = a.alarm, "alarm raised");
                    set_alarm(&self.state, &mut tx, member, true);
                    vec![member]
                } else {
                    Vec::new()
                }
            }
            AlarmAction::Deactivate => {
                let present = self.state.alarms.read().contains(&(a.member_id, a.alarm));
                set_alarm(&self.state, &mut tx, member, false);
                if present {
                    vec![member]
                } else {
                    Vec::new()
                }
            }
        };
        write_consistent_index(&mut tx, e.index, e.term);
        Ok(Applied::Alarm(AlarmResponse {
            header: None,
            alarms,
        }))
    }

    fn member_attr(&self, e: &Committed, attr: &ClusterMemberAttrSetRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        let a = attr.member_attributes.clone().unwrap_or_default();
        let found = self
            .state
            .members
            .write()
            .update(&mut tx, attr.member_id, |m| {
                m.name = a.name;
                m.client_ur_ls = a.client_urls;
            });
        write_consistent_index(&mut tx, e.index, e.term);
        if found {
            Ok(Applied::Done)
        } else {
            Err(EtcdError::MemberNotFound)
        }
    }

    fn member_update(&self, e: &Committed, u: &MemberUpdateRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        let found = self
            .state
            .members
            .write()
            .update(&mut tx, u.id, |m| m.peer_ur_ls = u.peer_ur_ls.clone());
        write_consistent_index(&mut tx, e.index, e.term);
        match self.state.members.read().get(u.id) {
            Some(m) if found => {
                self.connect(m);
                Ok(Applied::Done)
            }
            _ => Err(EtcdError::MemberNotFound),
        }
    }

    fn apply_conf_change(&self, e: &Committed, cc: &AppliedConfChange) {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        if let Some(reason) = &cc.refused {
            tracing::warn!(index = e.index, reason, "membership change refused");
            self.state.refused.lock().insert(e.index, reason.clone());
        } else {
            // The proposer's record of the member (its peer URLs).
            let record = Member::decode(cc.context.as_slice()).unwrap_or_default();
            let mut members = self.state.members.write();
            for change in &cc.changes {
                match *change {
                    ConfChange::AddVoter(id) | ConfChange::AddLearner(id) => {
                        let is_learner = matches!(change, ConfChange::AddLearner(_));
                        // A learner promoted by a joint change reads as AddVoter.
                        if !members.update(&mut tx, id, |m| m.is_learner = is_learner) {
                            let m = Member {
                                id,
                                is_learner,
                                ..record.clone()
                            };
                            self.connect(&m);
                            members.upsert(&mut tx, m);
                        }
                    }
                    ConfChange::PromoteLearner(id) => {
                        members.update(&mut tx, id, |m| m.is_learner = false);
                    }
                    ConfChange::Remove(id) => {
                        members.remove(&mut tx, id);
                        self.transport.remove_peer(id);
                    }
                }
            }
        }
        write_consistent_index(&mut tx, e.index, e.term);
    }

    /// Talks to `m` at its first peer URL (the transport skips this member).
    fn connect(&self, m: &Member) {
        if let Some(url) = m.peer_ur_ls.first() {
            self.transport.add_peer(m.id, url.clone());
        }
    }

    fn apply_snapshot(&mut self, index: u64, term: u64, data: &[u8]) {
        if data.is_empty() {
            // The bootstrap snapshot (the founding members are already on
            // disk), or one of this member's own, which hold no data: the
            // backend already holds everything up to them.
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
        match self.state.restore(data) {
            Ok(consistent_index) => {
                tracing::info!(
                    index,
                    consistent_index,
                    "restored the backend from a snapshot"
                );
                self.consistent_index = consistent_index.max(index);
                self.reconcile_peers();
                self.state.set_applied(self.consistent_index, term);
            }
            Err(err) => panic!("restoring the backend from the snapshot at {index}: {err}"),
        }
    }

    /// After a restore, the transport follows the restored membership.
    fn reconcile_peers(&self) {
        let members = self.state.members.read();
        for (peer, _) in self.transport.peers() {
            if members.get(peer).is_none() {
                self.transport.remove_peer(peer);
            }
        }
        for m in members.list() {
            self.connect(&m);
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
        if let Err(err) = self.node.create_snapshot(index, Vec::new()).await {
            tracing::warn!(index, %err, "raft refused the snapshot");
        }
    }
}

fn has_put(t: &ironcd_proto::etcdserverpb::TxnRequest) -> bool {
    use ironcd_proto::etcdserverpb::request_op::Request;
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(inner)) => has_put(inner),
            _ => false,
        })
}
