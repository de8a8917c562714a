//! Membership: a member's published attributes, its peer URLs, and raft's
//! configuration changes with the member records they carry. The peer
//! directory follows every change.

use ironcd_api::EtcdError;
use ironcd_backend::Backend;
use ironcd_proto::etcdserverpb::{ClusterMemberAttrSetRequest, Member, MemberUpdateRequest};
use ironcd_raft_node::{AppliedConfChange, ConfChange};
use prost::Message;

use super::{At, Domains};
use crate::state::{write_consistent_index, Applied, Outcome};

impl<B: Backend> Domains<'_, B> {
    pub(super) fn member_attr_set(&self, at: At, attr: &ClusterMemberAttrSetRequest) -> Outcome {
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
        write_consistent_index(&mut tx, at.index, at.term);
        if found {
            Ok(Applied::Done)
        } else {
            Err(EtcdError::MemberNotFound)
        }
    }

    pub(super) fn member_update(&self, at: At, u: &MemberUpdateRequest) -> Outcome {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        let found = self
            .state
            .members
            .write()
            .update(&mut tx, u.id, |m| m.peer_ur_ls = u.peer_ur_ls.clone());
        write_consistent_index(&mut tx, at.index, at.term);
        match self.state.members.read().get(u.id) {
            Some(m) if found => {
                self.connect(m);
                Ok(Applied::Done)
            }
            _ => Err(EtcdError::MemberNotFound),
        }
    }

    /// A configuration change raft applied (or refused): the member
    /// records follow it in the entry's batch.
    pub(super) fn conf_change(&self, at: At, cc: &AppliedConfChange) {
        let store = self.state.store();
        let mut tx = store.backend().batch_tx();
        if let Some(reason) = &cc.refused {
            tracing::warn!(index = at.index, reason, "membership change refused");
            self.state.record_refused(at.index, reason.clone());
        } else {
            // The proposer's record of the member (its peer URLs).
            let record = Member::decode(cc.context.as_slice()).unwrap_or_else(|err| {
                panic!(
                    "the member record of membership change {} does not decode: {err}; \
                     the log is corrupt, stopping this member",
                    at.index
                )
            });
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
                        self.peers.remove_peer(id);
                    }
                }
            }
        }
        write_consistent_index(&mut tx, at.index, at.term);
    }

    /// Talks to `m` at its first peer URL (the directory skips this member).
    pub(super) fn connect(&self, m: &Member) {
        if let Some(url) = m.peer_ur_ls.first() {
            self.peers.add_peer(m.id, url.clone());
        }
    }

    /// After a restore, the directory follows the restored membership.
    pub(super) fn reconcile_peers(&self) {
        let members = self.state.members.read();
        for (peer, _) in self.peers.peers() {
            if members.get(peer).is_none() {
                self.peers.remove_peer(peer);
            }
        }
        for m in members.list() {
            self.connect(&m);
        }
    }
}
