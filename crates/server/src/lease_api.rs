//! The Lease service on `EtcdServer`. Grants and revokes are proposed
//! through raft; renewals and TimeToLive are the leader's lessor's, so a
//! follower forwards them to the leader's peer URL (the Lease service is
//! served there too), marked as forwarded so that they never travel on.

use std::time::{Duration, Instant};

use ironcd_api::{ApiResult, EtcdError, LeaseApi, RequestContext, FORWARDED_METADATA_KEY};
use ironcd_proto::etcdserverpb::lease_client::LeaseClient;
use ironcd_proto::etcdserverpb::{
    InternalRaftRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    ResponseHeader,
};
use tonic::transport::Channel;

use crate::apply::lease_error;
use crate::server::EtcdServer;

/// How long a renewal or TimeToLive that found no leader to answer it
/// waits before it tries again (until the request timeout).
pub const FORWARD_RETRY: Duration = Duration::from_millis(50);

/// Why a forward did not answer.
enum Forward {
    /// The leader says the lease is gone.
    NotFound,
    /// No leader, or it did not answer: try again.
    Retry(String),
}

fn forwarded<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED_METADATA_KEY, "true".parse().expect("ascii"));
    request
}

impl EtcdServer {
    /// A channel to the leader's peer URL (kept while it leads).
    async fn leader_channel(&self) -> Result<Channel, Forward> {
        let leader = self.leader().await;
        if leader == 0 || leader == self.id() {
            return Err(Forward::Retry("no other member leads".into()));
        }
        if let Some((id, channel)) = self.inner.lease_forward.lock().clone() {
            if id == leader {
                return Ok(channel);
            }
        }
        let url = self
            .state()
            .members
            .read()
            .get(leader)
            .and_then(|m| m.peer_ur_ls.first().cloned())
            .ok_or_else(|| Forward::Retry(format!("leader {leader:x} has no peer URL")))?;
        let timeout = self.inner.request_timeout;
        let channel = self
            .inner
            .peer_dialer
            .connect(&url, |e| e.connect_timeout(timeout))
            .await
            .map_err(Forward::Retry)?;
        *self.inner.lease_forward.lock() = Some((leader, channel.clone()));
        Ok(channel)
    }

    async fn forward_renew(&self, id: i64) -> Result<i64, Forward> {
        let mut client = LeaseClient::new(self.leader_channel().await?);
        let once = tokio_stream::once(LeaseKeepAliveRequest { id });
        let mut answers = client
            .lease_keep_alive(forwarded(once))
            .await
            .map_err(|s| Forward::Retry(s.to_string()))?
            .into_inner();
        match answers.message().await {
            Ok(Some(resp)) if resp.ttl > 0 => Ok(resp.ttl),
            Ok(Some(_)) => Err(Forward::NotFound),
            Ok(None) => Err(Forward::Retry("the leader closed the stream".into())),
            Err(s) => Err(Forward::Retry(s.to_string())),
        }
    }

    async fn forward_time_to_live(
        &self,
        r: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Forward> {
        let mut client = LeaseClient::new(self.leader_channel().await?);
        client
            .lease_time_to_live(forwarded(*r))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| Forward::Retry(s.to_string()))
    }

    /// Proposes `(lease, remaining TTL)` checkpoints.
    pub(crate) async fn propose_checkpoints(&self, checkpoints: Vec<(i64, i64)>) -> ApiResult<()> {
        let req = InternalRaftRequest {
            lease_checkpoint: Some(LeaseCheckpointRequest {
                checkpoints: checkpoints
                    .into_iter()
                    .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
                    .collect(),
            }),
            ..Default::default()
        };
        self.propose(req).await.map(|_| ())
    }

    /// Waits [`FORWARD_RETRY`] before another try, or gives up at
    /// `deadline` (the request timeout) with etcd's timeout error.
    async fn retry_before(&self, deadline: Instant, what: &str) -> ApiResult<()> {
        if Instant::now() >= deadline {
            tracing::debug!(what, "no leader answered before the request timeout");
            return Err(EtcdError::Timeout);
        }
        tokio::time::sleep(FORWARD_RETRY).await;
        Ok(())
    }
}

impl LeaseApi for EtcdServer {
    async fn lease_grant(
        &self,
        _ctx: &RequestContext,
        mut r: LeaseGrantRequest,
    ) -> ApiResult<LeaseGrantResponse> {
        // No id given: pick a positive one, as etcd does.
        while r.id == ironcd_lease::NO_LEASE {
            r.id = rand::random::<i64>() & i64::MAX;
        }
        let req = InternalRaftRequest {
            lease_grant: Some(r),
            ..Default::default()
        };
        let mut resp: LeaseGrantResponse = self.propose_as(req).await?;
        self.complete(&mut resp.header);
        Ok(resp)
    }

    async fn lease_revoke(
        &self,
        _ctx: &RequestContext,
        r: LeaseRevokeRequest,
    ) -> ApiResult<LeaseRevokeResponse> {
        let req = InternalRaftRequest {
            lease_revoke: Some(r),
            ..Default::default()
        };
        let mut resp: LeaseRevokeResponse = self.propose_as(req).await?;
        self.complete(&mut resp.header);
        Ok(resp)
    }

    async fn lease_renew(&self, ctx: &RequestContext, id: i64) -> ApiResult<i64> {
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            match self.state().lessor.renew(id) {
                Ok(renewed) => {
                    if renewed.clear_checkpoint {
                        let server = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = server.propose_checkpoints(vec![(id, 0)]).await {
                                tracing::debug!(lease = %format!("{id:x}"), error = %e, "clearing a lease checkpoint");
                            }
                        });
                    }
                    return Ok(renewed.ttl_s);
                }
                Err(ironcd_lease::Error::NotPrimary) => {}
                Err(e) => return Err(lease_error(e)),
            }
            if ctx.forwarded {
                return Err(EtcdError::NotLeader);
            }
            match self.forward_renew(id).await {
                Ok(ttl) => return Ok(ttl),
                Err(Forward::NotFound) => return Err(EtcdError::LeaseNotFound),
                Err(Forward::Retry(why)) => {
                    tracing::debug!(lease = %format!("{id:x}"), why, "forwarding a keep-alive");
                }
            }
            self.retry_before(deadline, "keep-alive").await?;
        }
    }

    async fn lease_time_to_live(
        &self,
        ctx: &RequestContext,
        r: LeaseTimeToLiveRequest,
    ) -> ApiResult<LeaseTimeToLiveResponse> {
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            let lessor = &self.state().lessor;
            if lessor.is_primary() {
                // Everything committed before the call is applied first,
                // as etcd's leader waits for its applied index.
                self.linearize().await?;
                let answer = lessor
                    .time_to_live(r.id, r.keys)
                    .map(|t| LeaseTimeToLiveResponse {
                        header: None,
                        id: t.id,
                        ttl: t.remaining_s,
                        granted_ttl: t.granted_ttl_s,
                        keys: t.keys,
                    });
                return answer.ok_or(EtcdError::LeaseNotFound);
            }
            if ctx.forwarded {
                return Err(EtcdError::NotLeader);
            }
            match self.forward_time_to_live(&r).await {
                Ok(resp) => return Ok(resp),
                Err(Forward::NotFound) => return Err(EtcdError::LeaseNotFound),
                Err(Forward::Retry(why)) => {
                    tracing::debug!(lease = %format!("{:x}", r.id), why, "forwarding a TimeToLive");
                }
            }
            self.retry_before(deadline, "time-to-live").await?;
        }
    }

    async fn lease_leases(&self, _ctx: &RequestContext) -> ApiResult<LeaseLeasesResponse> {
        let leases = self.state().lessor.leases();
        Ok(LeaseLeasesResponse {
            header: self.current_header(),
            leases: leases.into_iter().map(|id| LeaseStatus { id }).collect(),
        })
    }

    fn lease_header(&self) -> ResponseHeader {
        self.current_header().unwrap_or_default()
    }
}
