//! The Cluster service on `EtcdServer`: membership changes go through raft
//! as configuration changes carrying the member's record; etcd's strict
//! reconfiguration checks guard the quorum.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ironcd_api::{ApiResult, ClusterApi, EtcdError, RequestContext};
use ironcd_proto::etcdserverpb::cluster_client::ClusterClient;
use ironcd_proto::etcdserverpb::{
    InternalRaftRequest, Member, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use ironcd_raft_node::{ConfChange, ConfChangeRequest, Role};
use prost::Message;

use crate::flags::is_peer_url;
use crate::members::member_id;
use crate::server::{raft_error, EtcdServer};

// etcd's Cluster responses carry no revision: `header(0)` below.

/// etcd promotes a learner once it has 90 % of the leader's log.
const LEARNER_READY_PERCENT: f64 = 0.9;

/// How long a peer's link must have been up for the strict
/// reconfiguration check to count it as connected (etcd's
/// `HealthInterval`).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

impl EtcdServer {
    /// The voters (this member counted) that this member has been connected
    /// to for [`HEALTH_INTERVAL`], and how many voters there are: etcd's
    /// `numConnectedSince`.
    fn connected_voters(&self) -> (usize, usize) {
        let me = self.inner.node.id();
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        let voters: Vec<u64> = self
            .state()
            .members
            .read()
            .list()
            .into_iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect();
        let connected = voters
            .iter()
            .filter(|&&id| {
                id == me
                    || self
                        .inner
                        .transport
                        .active_since(id)
                        .zip(since)
                        .is_some_and(|(up, since)| up <= since)
            })
            .count();
        (connected, voters.len())
    }

    fn started_voters(&self, except: u64) -> (usize, usize) {
        let members = self.state().members.read();
        let voters: Vec<Member> = members
            .list()
            .into_iter()
            .filter(|m| !m.is_learner && m.id != except)
            .collect();
        let started = voters.iter().filter(|m| !m.name.is_empty()).count();
        (voters.len(), started)
    }

    /// Proposes a membership change and waits until it is applied here.
    async fn change_membership(&self, change: ConfChange, record: &Member) -> ApiResult<()> {
        let request = ConfChangeRequest::single(change, record.encode_to_vec());
        let index = self
            .inner
            .node
            .propose_conf_change(request)
            .await
            .map_err(raft_error)?;
        self.wait_applied(index).await?;
        if let Some(reason) = self.state().refused.lock().remove(&index) {
            return Err(EtcdError::Internal(format!(
                "membership change refused: {reason}"
            )));
        }
        Ok(())
    }

    /// etcd's order: the URLs, the strict reconfiguration check (enough
    /// started voters for a new voter; this member connected to every
    /// voter for a while, for any member), then the URL in use.
    fn check_add(&self, r: &MemberAddRequest) -> ApiResult<()> {
        if r.peer_ur_ls.is_empty() || !r.peer_ur_ls.iter().all(|u| is_peer_url(u)) {
            return Err(EtcdError::MemberBadUrls);
        }
        if !r.is_learner {
            let (voters, started) = self.started_voters(0);
            let (n, s) = (voters + 1, started);
            if !(s == 1 && n == 2) && s < n / 2 + 1 {
                return Err(EtcdError::MemberNotEnoughStarted);
            }
        }
        let (connected, voters) = self.connected_voters();
        if connected < voters {
            return Err(EtcdError::Unhealthy);
        }
        if self
            .state()
            .members
            .read()
            .with_peer_url(&r.peer_ur_ls, 0)
            .is_some()
        {
            return Err(EtcdError::PeerUrlExist);
        }
        Ok(())
    }

    /// etcd's strict reconfiguration check for removing voter `id`: enough
    /// started voters remain, and, unless `id` is another member this one
    /// is not connected to (a member down is not part of the active
    /// quorum), the voters connected for a while stay a quorum without it.
    fn check_remove_voter(&self, id: u64) -> ApiResult<()> {
        let (voters, started) = self.started_voters(id);
        if started < voters / 2 + 1 {
            return Err(EtcdError::MemberNotEnoughStarted);
        }
        if id != self.inner.node.id() && self.inner.transport.active_since(id).is_none() {
            return Ok(());
        }
        let (connected, voters) = self.connected_voters();
        if connected.saturating_sub(1) < (voters - 1) / 2 + 1 {
            return Err(EtcdError::Unhealthy);
        }
        Ok(())
    }

    /// etcd answers a promote on the leader: only it knows how far the
    /// learner has caught up.
    async fn promote_on_leader(&self, id: u64) -> ApiResult<()> {
        let status = self.inner.node.status().await.map_err(raft_error)?;
        if status.role != Role::Leader {
            return Err(EtcdError::NotLeader);
        }
        let member = self.state().members.read().get(id).cloned();
        let Some(member) = member else {
            return Err(EtcdError::MemberNotFound);
        };
        if !member.is_learner {
            return Err(EtcdError::MemberNotLearner);
        }
        let matched = |peer: u64| {
            status
                .progress
                .iter()
                .find(|p| p.id == peer)
                .map(|p| p.matched)
        };
        let leader_match = matched(status.id).unwrap_or(status.last_index);
        if let Some(learner_match) = matched(id) {
            if (learner_match as f64) < (leader_match as f64) * LEARNER_READY_PERCENT {
                return Err(EtcdError::LearnerNotReady);
            }
        }
        // The learner counts as a started voter of the future configuration.
        let (voters, started) = self.started_voters(0);
        let (n, s) = (voters + 1, started + 1);
        if s < n / 2 + 1 {
            return Err(EtcdError::MemberNotEnoughStarted);
        }
        self.change_membership(ConfChange::PromoteLearner(id), &member)
            .await
    }

    /// Sends a promote to the leader's peer listener.
    async fn forward_promote(&self, r: MemberPromoteRequest) -> ApiResult<()> {
        let leader = self.leader().await;
        if leader == 0 {
            return Err(EtcdError::NoLeader);
        }
        let url = self
            .state()
            .members
            .read()
            .get(leader)
            .and_then(|m| m.peer_ur_ls.first().cloned());
        let Some(url) = url else {
            return Err(EtcdError::NoLeader);
        };
        let channel = self
            .inner
            .peer_dialer
            .connect(&url, |e| e)
            .await
            .map_err(|e| EtcdError::Internal(format!("reaching the leader: {e}")))?;
        let mut client = ClusterClient::new(channel);
        client
            .member_promote(r)
            .await
            .map_err(|status| EtcdError::from_status(&status))?;
        Ok(())
    }

    fn member_list_now(&self) -> Vec<Member> {
        self.state().members.read().list()
    }
}

impl ClusterApi for EtcdServer {
    async fn member_add(
        &self,
        _ctx: &RequestContext,
        r: MemberAddRequest,
    ) -> ApiResult<MemberAddResponse> {
        self.check_add(&r)?;
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // etcd names no cluster for a member added at run time.
        let id = member_id(&r.peer_ur_ls, "", Some(now_s));
        let member = Member {
            id,
            name: String::new(),
            peer_ur_ls: r.peer_ur_ls.clone(),
            client_ur_ls: Vec::new(),
            is_learner: r.is_learner,
        };
        let change = if r.is_learner {
            ConfChange::AddLearner(id)
        } else {
            ConfChange::AddVoter(id)
        };
        self.change_membership(change, &member).await?;
        Ok(MemberAddResponse {
            header: self.header(0),
            member: Some(member),
            members: self.member_list_now(),
        })
    }

    async fn member_remove(
        &self,
        _ctx: &RequestContext,
        r: MemberRemoveRequest,
    ) -> ApiResult<MemberRemoveResponse> {
        let member = self.state().members.read().get(r.id).cloned();
        let Some(member) = member else {
            return Err(EtcdError::MemberNotFound);
        };
        if !member.is_learner {
            self.check_remove_voter(r.id)?;
        }
        self.change_membership(ConfChange::Remove(r.id), &member)
            .await?;
        Ok(MemberRemoveResponse {
            header: self.header(0),
            members: self.member_list_now(),
        })
    }

    async fn member_update(
        &self,
        _ctx: &RequestContext,
        r: MemberUpdateRequest,
    ) -> ApiResult<MemberUpdateResponse> {
        if r.peer_ur_ls.is_empty() || !r.peer_ur_ls.iter().all(|u| is_peer_url(u)) {
            return Err(EtcdError::MemberBadUrls);
        }
        if self.state().members.read().get(r.id).is_none() {
            return Err(EtcdError::MemberNotFound);
        }
        if self
            .state()
            .members
            .read()
            .with_peer_url(&r.peer_ur_ls, r.id)
            .is_some()
        {
            return Err(EtcdError::PeerUrlExist);
        }
        let req = InternalRaftRequest {
            member_update: Some(r),
            ..Default::default()
        };
        self.propose_as::<()>(req).await?;
        Ok(MemberUpdateResponse {
            header: self.header(0),
            members: self.member_list_now(),
        })
    }

    async fn member_list(
        &self,
        _ctx: &RequestContext,
        r: MemberListRequest,
    ) -> ApiResult<MemberListResponse> {
        if r.linearizable {
            self.linearize().await?;
        }
        Ok(MemberListResponse {
            header: self.header(0),
            members: self.member_list_now(),
        })
    }

    async fn member_promote(
        &self,
        _ctx: &RequestContext,
        r: MemberPromoteRequest,
    ) -> ApiResult<MemberPromoteResponse> {
        match self.promote_on_leader(r.id).await {
            Err(EtcdError::NotLeader) => {
                self.forward_promote(r).await?;
                // The leader answered once it applied the change; wait
                // until this member has too, so the list below shows it.
                self.linearize().await?;
            }
            other => other?,
        }
        Ok(MemberPromoteResponse {
            header: self.header(0),
            members: self.member_list_now(),
        })
    }
}
