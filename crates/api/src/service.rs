//! The tonic services: validate, call the server trait, map the error.

use std::sync::Arc;

use ironcd_proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use ironcd_proto::etcdserverpb::kv_server::{Kv, KvServer};
use ironcd_proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use ironcd_proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use ironcd_proto::etcdserverpb::*;
use ironcd_proto::v3electionpb::election_server::{Election, ElectionServer};
use ironcd_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use ironcd_proto::v3lockpb::lock_server::{Lock, LockServer};
use ironcd_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::traits::{ApiResult, EtcdApi};
use crate::validate::{self, Limits};
use crate::watch_grpc::WatchService;
use crate::EtcdError;
use crate::RequestContext;

/// gRPC framing and header room etcd allows beyond `--max-request-bytes`
/// before the transport refuses a message (etcd's `grpcOverheadBytes`).
pub const GRPC_OVERHEAD_BYTES: u64 = 512 * 1024;
/// The largest response message sent (etcd: `math.MaxInt32`).
pub const MAX_SEND_BYTES: usize = i32::MAX as usize;

/// Turns a server answer into a gRPC one.
fn reply<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

/// Turns an Election or Lock answer into a gRPC one. etcd serves these
/// two services through an in-process client, whose errors reach the
/// wire as plain errors: every failure past admission is `Unknown` with
/// etcd's message, whatever code the KV or Lease call gave.
fn reply_in_process<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result
        .map(Response::new)
        .map_err(|e| Status::unknown(Status::from(e).message().to_string()))
}

/// Adapts a server to etcd's KV, Cluster and Maintenance services.
pub struct Services<S> {
    server: Arc<S>,
    limits: Limits,
}

impl<S> Clone for Services<S> {
    fn clone(&self) -> Self {
        Self {
            server: Arc::clone(&self.server),
            limits: self.limits,
        }
    }
}

impl<S: EtcdApi> Services<S> {
    /// Services over `server`, checking requests against `limits`.
    pub fn new(server: Arc<S>, limits: Limits) -> Self {
        Self { server, limits }
    }

    /// The request's context, once the server admits it.
    async fn admit<T>(&self, request: &Request<T>) -> Result<RequestContext, Status> {
        let ctx = RequestContext::of(request);
        self.server.admit(&ctx).await?;
        Ok(ctx)
    }

    /// The gRPC routes of every service ironcd serves. Services not added
    /// here (Auth) answer `Unimplemented`.
    pub fn routes(&self) -> Routes {
        let recv = (self.limits.max_request_bytes + GRPC_OVERHEAD_BYTES) as usize;
        Routes::new(
            KvServer::new(self.clone())
                .max_decoding_message_size(recv)
                .max_encoding_message_size(MAX_SEND_BYTES),
        )
        .add_service(
            ClusterServer::new(self.clone())
                .max_decoding_message_size(recv)
                .max_encoding_message_size(MAX_SEND_BYTES),
        )
        .add_service(
            MaintenanceServer::new(self.clone())
                .max_decoding_message_size(recv)
                .max_encoding_message_size(MAX_SEND_BYTES),
        )
        .add_service(WatchService::new(self.clone(), recv, MAX_SEND_BYTES))
        .add_service(self.lease_service())
        .add_service(
            ElectionServer::new(self.clone())
                .max_decoding_message_size(recv)
                .max_encoding_message_size(MAX_SEND_BYTES),
        )
        .add_service(
            LockServer::new(self.clone())
                .max_decoding_message_size(recv)
                .max_encoding_message_size(MAX_SEND_BYTES),
        )
    }

    /// The Lease service alone: members serve it on the peer port too,
    /// where followers forward keep-alives and TimeToLive to the leader.
    pub fn lease_service(&self) -> LeaseServer<Self> {
        let recv = (self.limits.max_request_bytes + GRPC_OVERHEAD_BYTES) as usize;
        LeaseServer::new(self.clone())
            .max_decoding_message_size(recv)
            .max_encoding_message_size(MAX_SEND_BYTES)
    }
}

#[tonic::async_trait]
impl<S: EtcdApi> Kv for Services<S> {
    async fn range(&self, r: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let ctx = self.admit(&r).await?;
        let r = r.into_inner();
        validate::check_range(&r)?;
        reply(self.server.range(&ctx, r).await)
    }

    async fn put(&self, r: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let ctx = self.admit(&r).await?;
        let r = r.into_inner();
        validate::check_put(&r)?;
        reply(self.server.put(&ctx, r).await)
    }

    async fn delete_range(
        &self,
        r: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let ctx = self.admit(&r).await?;
        let r = r.into_inner();
        validate::check_delete(&r)?;
        reply(self.server.delete_range(&ctx, r).await)
    }

    async fn txn(&self, r: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let ctx = self.admit(&r).await?;
        let r = r.into_inner();
        validate::check_txn(&r, &self.limits)?;
        reply(self.server.txn(&ctx, r).await)
    }

    async fn compact(
        &self,
        r: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.compact(&ctx, r.into_inner()).await)
    }
}

#[tonic::async_trait]
impl<S: EtcdApi> Cluster for Services<S> {
    async fn member_add(
        &self,
        r: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.member_add(&ctx, r.into_inner()).await)
    }

    async fn member_remove(
        &self,
        r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.member_remove(&ctx, r.into_inner()).await)
    }

    async fn member_update(
        &self,
        r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.member_update(&ctx, r.into_inner()).await)
    }

    async fn member_list(
        &self,
        r: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.member_list(&ctx, r.into_inner()).await)
    }

    async fn member_promote(
        &self,
        r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.member_promote(&ctx, r.into_inner()).await)
    }
}

type SnapshotStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: EtcdApi> Maintenance for Services<S> {
    async fn alarm(&self, r: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.alarm(&ctx, r.into_inner()).await)
    }

    async fn status(&self, r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.status(&ctx, r.into_inner()).await)
    }

    async fn defragment(
        &self,
        r: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.defragment(&ctx, r.into_inner()).await)
    }

    async fn hash(&self, r: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.hash(&ctx, r.into_inner()).await)
    }

    async fn hash_kv(&self, r: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.hash_kv(&ctx, r.into_inner()).await)
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        r: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let ctx = self.admit(&r).await?;
        let chunks = self.server.snapshot(&ctx).await?;
        let stream: SnapshotStream = Box::pin(chunks.map(|c| c.map_err(Status::from)));
        Ok(Response::new(stream))
    }

    async fn move_leader(
        &self,
        r: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.move_leader(&ctx, r.into_inner()).await)
    }

    async fn downgrade(
        &self,
        _r: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(EtcdError::Unimplemented("Maintenance.Downgrade").into())
    }
}

impl<S: EtcdApi> Services<S> {
    /// etcd's `Watch.Watch` (routed by [`WatchService`]).
    pub(crate) async fn watch(
        &self,
        r: Request<tonic::Streaming<WatchRequest>>,
    ) -> Result<Response<crate::watch::WatchStream>, Status> {
        let ctx = self.admit(&r).await?;
        let (session, events) = self.server.open_watch(&ctx)?;
        Ok(Response::new(crate::watch::serve(
            self.server.clone(),
            session,
            events,
            r.into_inner(),
            ctx.require_leader,
            // etcd cuts fragments at the request limit plus gRPC's overhead.
            (self.limits.max_request_bytes + GRPC_OVERHEAD_BYTES) as usize,
        )))
    }
}

#[tonic::async_trait]
impl<S: EtcdApi> Lease for Services<S> {
    async fn lease_grant(
        &self,
        r: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.lease_grant(&ctx, r.into_inner()).await)
    }

    async fn lease_revoke(
        &self,
        r: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.lease_revoke(&ctx, r.into_inner()).await)
    }

    type LeaseKeepAliveStream = crate::lease::KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        r: Request<tonic::Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let ctx = self.admit(&r).await?;
        Ok(Response::new(crate::lease::serve(
            self.server.clone(),
            ctx,
            r.into_inner(),
        )))
    }

    /// An unknown lease is an answer, not an error: TTL -1 (etcd's).
    async fn lease_time_to_live(
        &self,
        r: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let ctx = self.admit(&r).await?;
        let r = r.into_inner();
        let id = r.id;
        let mut resp = match self.server.lease_time_to_live(&ctx, r).await {
            Err(EtcdError::LeaseNotFound) => LeaseTimeToLiveResponse {
                id,
                ttl: -1,
                ..LeaseTimeToLiveResponse::default()
            },
            other => other?,
        };
        resp.header = Some(self.server.lease_header());
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        r: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply(self.server.lease_leases(&ctx).await)
    }
}

#[tonic::async_trait]
impl<S: EtcdApi> Election for Services<S> {
    async fn campaign(
        &self,
        r: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply_in_process(crate::election::campaign(&self.server, &ctx, r.into_inner()).await)
    }

    async fn proclaim(
        &self,
        r: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply_in_process(crate::election::proclaim(&self.server, &ctx, r.into_inner()).await)
    }

    async fn leader(&self, r: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply_in_process(crate::election::leader(&self.server, &ctx, r.into_inner()).await)
    }

    type ObserveStream = crate::election::ObserveStream;

    async fn observe(
        &self,
        r: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let ctx = self.admit(&r).await?;
        Ok(Response::new(crate::election::observe(
            self.server.clone(),
            ctx,
            r.into_inner(),
        )))
    }

    async fn resign(&self, r: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply_in_process(crate::election::resign(&self.server, &ctx, r.into_inner()).await)
    }
}

#[tonic::async_trait]
impl<S: EtcdApi> Lock for Services<S> {
    async fn lock(&self, r: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply_in_process(crate::lock::lock(&self.server, &ctx, r.into_inner()).await)
    }

    async fn unlock(&self, r: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let ctx = self.admit(&r).await?;
        reply_in_process(crate::lock::unlock(&self.server, &ctx, r.into_inner()).await)
    }
}
