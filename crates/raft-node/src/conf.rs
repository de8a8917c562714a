//! Membership: the public [`ConfChange`] and [`Membership`] types, their
//! raft-rs forms, and the history of conf states since the last snapshot.
//!
//! Why a history: the applier's durable index (`Config.applied` on restart)
//! may lie anywhere between the snapshot and the commit index, and raft-rs
//! must restart with the conf state *at that index* — later conf changes are
//! delivered (and applied) again. [`replay`] rebuilds it from the snapshot's
//! conf state and the conf-change entries in the log, with raft-rs's own
//! `Changer`, so no conf state needs a file of its own.

use raft::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
    EntryType,
};
use raft::storage::MemStorage;
use raft::RawNode;

use crate::codec;

/// One membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChange {
    /// Add a voting member.
    AddVoter(u64),
    /// Add a non-voting member that receives the log.
    AddLearner(u64),
    /// Make a learner a voter.
    PromoteLearner(u64),
    /// Remove a member (possibly this one).
    Remove(u64),
}

impl ConfChange {
    fn to_raft(self) -> ConfChangeSingle {
        let (node_id, change_type) = match self {
            ConfChange::AddVoter(id) | ConfChange::PromoteLearner(id) => {
                (id, ConfChangeType::AddNode)
            }
            ConfChange::AddLearner(id) => (id, ConfChangeType::AddLearnerNode),
            ConfChange::Remove(id) => (id, ConfChangeType::RemoveNode),
        };
        raft_proto::new_conf_change_single(node_id, change_type)
    }

    /// A raft change back in these terms (promotion reads as `AddVoter`).
    fn from_raft(single: &ConfChangeSingle) -> ConfChange {
        match single.get_change_type() {
            ConfChangeType::AddNode => ConfChange::AddVoter(single.node_id),
            ConfChangeType::AddLearnerNode => ConfChange::AddLearner(single.node_id),
            ConfChangeType::RemoveNode => ConfChange::Remove(single.node_id),
        }
    }
}

/// A membership change to propose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfChangeRequest {
    /// The changes, applied together. More than one voter change goes
    /// through joint consensus.
    pub changes: Vec<ConfChange>,
    /// Opaque data delivered with the change (a member's addresses, say).
    pub context: Vec<u8>,
    /// Enter a joint configuration and stay there until a leader leaves it,
    /// instead of leaving it automatically. (ironcd's leaders leave any
    /// joint configuration they find; this exists to test that they do.)
    pub explicit_joint: bool,
}

impl ConfChangeRequest {
    /// A request for one change.
    pub fn single(change: ConfChange, context: Vec<u8>) -> Self {
        ConfChangeRequest {
            changes: vec![change],
            context,
            explicit_joint: false,
        }
    }

    pub(crate) fn to_raft(&self) -> ConfChangeV2 {
        let mut cc = ConfChangeV2::default();
        cc.set_changes(self.changes.iter().map(|c| c.to_raft()).collect());
        if self.explicit_joint {
            cc.set_transition(ConfChangeTransition::Explicit);
        }
        cc
    }
}

/// Voters and learners, sorted. `voters_outgoing` is non-empty while a
/// joint configuration is in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// Voters (of the incoming configuration, when joint).
    pub voters: Vec<u64>,
    /// Voters of the outgoing configuration, while joint.
    pub voters_outgoing: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// Voters that become learners when the joint configuration is left.
    pub learners_next: Vec<u64>,
}

impl Membership {
    /// Whether a joint configuration is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id)
            || self.voters_outgoing.contains(&id)
            || self.learners.contains(&id)
            || self.learners_next.contains(&id)
    }
}

impl From<&ConfState> for Membership {
    fn from(cs: &ConfState) -> Self {
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        Membership {
            voters: sorted(&cs.voters),
            voters_outgoing: sorted(&cs.voters_outgoing),
            learners: sorted(&cs.learners),
            learners_next: sorted(&cs.learners_next),
        }
    }
}

/// A conf change as the applier receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedConfChange {
    /// The changes (empty: leaving a joint configuration).
    pub changes: Vec<ConfChange>,
    /// The context given when it was proposed.
    pub context: Vec<u8>,
    /// Membership after it (unchanged when refused).
    pub membership: Membership,
    /// Why raft refused it, if it did (every member refuses alike).
    pub refused: Option<String>,
}

impl AppliedConfChange {
    pub(crate) fn new(
        cc: &ConfChangeV2,
        context: Vec<u8>,
        cs: &ConfState,
        refused: Option<String>,
    ) -> Self {
        AppliedConfChange {
            changes: cc.changes.iter().map(ConfChange::from_raft).collect(),
            context,
            membership: cs.into(),
            refused,
        }
    }
}

/// Conf states by the index they took effect at, oldest first; the first is
/// the snapshot's.
#[derive(Debug)]
pub(crate) struct ConfHistory {
    states: Vec<(u64, ConfState)>,
}

impl ConfHistory {
    pub(crate) fn new(index: u64, cs: ConfState) -> Self {
        ConfHistory {
            states: vec![(index, cs)],
        }
    }

    pub(crate) fn push(&mut self, index: u64, cs: ConfState) {
        debug_assert!(self.states.last().is_none_or(|(last, _)| *last <= index));
        self.states.push((index, cs));
    }

    /// The conf state in force at `index`.
    pub(crate) fn at(&self, index: u64) -> &ConfState {
        let at = self.states.partition_point(|(i, _)| *i <= index);
        &self.states[at.max(1) - 1].1
    }

    /// Forgets what is no longer needed once a snapshot is at `index`.
    pub(crate) fn prune_to(&mut self, index: u64) {
        let keep_from = self.states.partition_point(|(i, _)| *i <= index).max(1) - 1;
        self.states.drain(..keep_from);
    }

    pub(crate) fn latest(&self) -> &ConfState {
        &self.states.last().expect("history is never empty").1
    }
}

/// The conf-state history from a snapshot's conf state (at `base_index`)
/// through every conf-change entry up to `upto`, as raft-rs applies them:
/// a change raft refuses changes nothing, on every member alike. The changes
/// are applied by a scratch raft-rs node, so the rules are raft-rs's own.
pub(crate) fn replay<'a>(
    base_index: u64,
    base: &ConfState,
    entries: impl Iterator<Item = &'a Entry>,
    upto: u64,
) -> Result<ConfHistory, String> {
    let mut history = ConfHistory::new(base_index, base.clone());
    let storage = MemStorage::new_with_conf_state(base.clone());
    // Any non-zero id: the scratch node only tracks the configuration.
    let config = raft::Config {
        id: u64::MAX,
        ..raft::Config::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut scratch = RawNode::new(&config, storage, &logger)
        .map_err(|e| format!("conf state at {base_index}: {e}"))?;
    for entry in entries.filter(|e| e.index > base_index && e.index <= upto) {
        if entry.get_entry_type() == EntryType::EntryNormal {
            continue;
        }
        let cc = codec::conf_change_of(entry)?;
        if let Ok(cs) = scratch.apply_conf_change(&cc) {
            history.push(entry.index, cs);
        }
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf_entry(index: u64, request: &ConfChangeRequest) -> Entry {
        let mut entry = Entry {
            index,
            term: 2,
            data: codec::encode(&request.to_raft()),
            ..Entry::default()
        };
        entry.set_entry_type(EntryType::EntryConfChangeV2);
        entry
    }

    #[test]
    fn replay_follows_simple_joint_and_refused_changes() {
        let base = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let joint = ConfChangeRequest {
            changes: vec![ConfChange::AddVoter(4), ConfChange::Remove(3)],
            explicit_joint: true,
            ..Default::default()
        };
        let entries = [
            conf_entry(
                3,
                &ConfChangeRequest::single(ConfChange::AddLearner(5), vec![]),
            ),
            conf_entry(
                5,
                &ConfChangeRequest::single(ConfChange::PromoteLearner(5), vec![]),
            ),
            conf_entry(6, &joint),
            // Refused: a simple change while joint.
            conf_entry(
                7,
                &ConfChangeRequest::single(ConfChange::AddVoter(9), vec![]),
            ),
            conf_entry(8, &ConfChangeRequest::default()), // leave joint
        ];
        let history = replay(2, &base, entries.iter(), 8).unwrap();
        let at = |i| Membership::from(history.at(i));
        assert_eq!(at(2).voters, vec![1, 2, 3]);
        assert_eq!(at(4).learners, vec![5]);
        assert_eq!(at(5).voters, vec![1, 2, 3, 5]);
        assert_eq!(
            at(6),
            Membership {
                voters: vec![1, 2, 4, 5],
                voters_outgoing: vec![1, 2, 3, 5],
                ..Default::default()
            }
        );
        assert_eq!(at(7), at(6));
        assert_eq!(
            at(8),
            Membership {
                voters: vec![1, 2, 4, 5],
                ..Default::default()
            }
        );
        // Only up to the given index.
        let partial = replay(2, &base, entries.iter(), 5).unwrap();
        assert_eq!(Membership::from(partial.latest()).voters, vec![1, 2, 3, 5]);
    }

    #[test]
    fn pruning_keeps_the_state_in_force_at_the_snapshot() {
        let mut history = ConfHistory::new(
            1,
            ConfState {
                voters: vec![1],
                ..Default::default()
            },
        );
        history.push(
            10,
            ConfState {
                voters: vec![1, 2],
                ..Default::default()
            },
        );
        history.push(
            20,
            ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            },
        );
        history.prune_to(15);
        assert_eq!(history.at(15).voters, vec![1, 2]);
        assert_eq!(history.at(25).voters, vec![1, 2, 3]);
        assert_eq!(history.states.len(), 2);
    }
}
