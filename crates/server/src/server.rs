//! `EtcdServer`: the request side. Writes are proposed through raft and
//! answered when this member applies them; linearizable reads wait for a
//! ReadIndex to be applied, then read locally.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ironcd_api::{Admission, ApiResult, EtcdError, RequestContext};
use ironcd_proto::etcdserverpb::{InternalRaftRequest, RequestHeader, ResponseHeader};
use ironcd_raft_node::{GrpcTransport, RaftNode};
use prost::Message;
use tokio::sync::oneshot;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::state::{Applied, AppliedAs, State};

/// The server; cheap to clone.
#[derive(Clone)]
pub struct EtcdServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cfg: ServerConfig,
    pub id: u64,
    pub cluster_id: u64,
    pub node: RaftNode,
    pub transport: Arc<GrpcTransport>,
    pub state: Arc<State>,
    pub metrics: Metrics,
    /// High bits unique to this process start, low bits a counter: request
    /// ids never repeat one still in the log from an earlier run.
    pub next_request: AtomicU64,
    pub request_timeout: Duration,
    /// Dials peers' URLs (peer TLS for `https://` ones).
    pub peer_dialer: ironcd_tls::Dialer,
    /// The watchable store over `state`'s store (its observer).
    pub watchable: Arc<ironcd_watch::WatchableStore>,
    /// The channel to the leader's peer URL that keep-alives and
    /// TimeToLive are forwarded on, with the leader it goes to.
    pub lease_forward: parking_lot::Mutex<Option<(u64, tonic::transport::Channel)>>,
}

/// Committed entries the applier may trail by before new proposals are
/// refused with `etcdserver: too many requests` (etcd's
/// `maxGapBetweenApplyAndCommitIndex`).
pub const MAX_APPLY_GAP_ENTRIES: u64 = 5_000;
/// Proposals of this member waiting for their apply at once; past it new
/// ones are refused with `etcdserver: too many requests`. (Each waiting
/// client holds one; etcd bounds them only through the apply gap.)
pub const MAX_PENDING_PROPOSALS: usize = 65_536;

/// Maps a consensus error to etcd's.
pub(crate) fn raft_error(e: ironcd_raft_node::Error) -> EtcdError {
    use ironcd_raft_node::Error as E;
    match e {
        E::NoLeader => EtcdError::NoLeader,
        E::Dropped => EtcdError::TimeoutDueToLeaderFail,
        E::Stopped => EtcdError::Stopped,
        E::TooLarge { .. } => EtcdError::RequestTooLarge,
        E::Timeout => EtcdError::Timeout,
        other => EtcdError::Internal(other.to_string()),
    }
}

/// Removes a proposal's wait if the caller gives up first.
struct WaitGuard<'a> {
    state: &'a State,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.state.waits.lock().remove(&self.id);
    }
}

impl EtcdServer {
    /// This member's id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether this member is a learner, as of the applied membership.
    pub fn is_learner(&self) -> bool {
        self.state()
            .members
            .read()
            .get(self.id())
            .is_some_and(|m| m.is_learner)
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    pub(crate) fn state(&self) -> &State {
        &self.inner.state
    }

    /// A response header at `revision`.
    pub(crate) fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.inner.id,
            revision,
            raft_term: self.inner.state.term.load(Ordering::Relaxed),
        })
    }

    /// The header at the store's current revision.
    pub(crate) fn current_header(&self) -> Option<ResponseHeader> {
        let rev = self.state().store().current_rev();
        self.header(rev)
    }

    /// Fills in the cluster-wide fields of a header the applier began.
    pub(crate) fn complete(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map(|h| h.revision).unwrap_or(0);
        *header = self.header(revision);
    }

    /// Proposes `req` and waits for this member to apply it; `T` is the
    /// response the request's kind yields.
    pub(crate) async fn propose_as<T: AppliedAs>(&self, req: InternalRaftRequest) -> ApiResult<T> {
        let applied = self.propose(req).await?;
        T::from_applied(applied).ok_or_else(|| {
            EtcdError::Internal(format!(
                "the applier answered with another kind than {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Proposes `req` and waits for this member to apply it.
    pub(crate) async fn propose(&self, mut req: InternalRaftRequest) -> ApiResult<Applied> {
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        req.header = Some(RequestHeader {
            id,
            ..RequestHeader::default()
        });
        let data = req.encode_to_vec();
        if data.len() as u64 > self.inner.cfg.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        let behind = self
            .inner
            .node
            .delivered_index()
            .saturating_sub(self.state().applied_index());
        if behind > MAX_APPLY_GAP_ENTRIES {
            return Err(EtcdError::TooManyRequests);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut waits = self.state().waits.lock();
            if waits.len() >= MAX_PENDING_PROPOSALS {
                return Err(EtcdError::TooManyRequests);
            }
            waits.insert(id, tx);
        }
        let _guard = WaitGuard {
            state: self.state(),
            id,
        };
        self.inner
            .metrics
            .proposals_pending
            .fetch_add(1, Ordering::Relaxed);
        let result = self.propose_and_wait(data, rx).await;
        self.inner
            .metrics
            .proposals_pending
            .fetch_sub(1, Ordering::Relaxed);
        match &result {
            Ok(_) => self
                .inner
                .metrics
                .proposals_succeeded
                .fetch_add(1, Ordering::Relaxed),
            Err(_) => self
                .inner
                .metrics
                .proposals_failed
                .fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    async fn propose_and_wait(
        &self,
        data: Vec<u8>,
        rx: oneshot::Receiver<crate::state::Outcome>,
    ) -> ApiResult<Applied> {
        self.inner.node.propose(data).await.map_err(raft_error)?;
        match tokio::time::timeout(self.inner.request_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => Err(EtcdError::Timeout),
        }
    }

    /// Waits until this member has applied everything committed when the
    /// call began (etcd's linearizable read barrier).
    pub(crate) async fn linearize(&self) -> ApiResult<()> {
        let index = self.inner.node.read_index().await.map_err(raft_error)?;
        self.wait_applied(index).await
    }

    /// Waits until the applied index reaches `index`.
    pub(crate) async fn wait_applied(&self, index: u64) -> ApiResult<()> {
        let mut applied = self.state().applied.subscribe();
        let outcome = {
            let wait = applied.wait_for(|a| *a >= index);
            tokio::time::timeout(self.inner.request_timeout, wait)
                .await
                .map(|r| r.is_ok())
        };
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(EtcdError::Stopped),
            Err(_) => Err(EtcdError::TimeoutWaitAppliedIndex),
        }
    }

    /// The raft leader as this member knows it (0 = none).
    pub(crate) async fn leader(&self) -> u64 {
        self.inner
            .node
            .status()
            .await
            .map(|s| s.leader)
            .unwrap_or(0)
    }
}

impl Admission for EtcdServer {
    /// etcd's interceptors: a request that requires a leader (`hasleader`)
    /// is refused at once while this member knows none.
    async fn admit(&self, ctx: &RequestContext) -> ApiResult<()> {
        if ctx.require_leader && self.leader().await == 0 {
            return Err(EtcdError::NoLeader);
        }
        Ok(())
    }
}
