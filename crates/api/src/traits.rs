//! What the services need from a server. `ironcd-server` implements these;
//! tests may implement them in memory. Every response carries a complete
//! header (cluster id, member id, revision, raft term): the implementor
//! fills it. Every call gets the caller's [`RequestContext`] (already
//! admitted by [`Admission`]).

use std::future::Future;
use std::pin::Pin;

use ironcd_proto::etcdserverpb::*;
use tokio_stream::Stream;

use crate::{EtcdError, RequestContext};

/// The result of a server call.
pub type ApiResult<T> = Result<T, EtcdError>;

/// A stream of snapshot chunks.
pub type SnapshotChunks = Pin<Box<dyn Stream<Item = ApiResult<SnapshotResponse>> + Send>>;

/// Checks each request's [`RequestContext`] before its service runs, as
/// etcd's gRPC interceptors do: `hasleader` now, authentication later.
pub trait Admission: Send + Sync + 'static {
    /// `Ok` to go on, or the error to answer at once.
    fn admit(&self, ctx: &RequestContext) -> impl Future<Output = ApiResult<()>> + Send;
}

/// etcd's KV service, on validated requests.
pub trait KvApi: Send + Sync + 'static {
    /// Range (linearizable unless `serializable`).
    fn range(
        &self,
        ctx: &RequestContext,
        r: RangeRequest,
    ) -> impl Future<Output = ApiResult<RangeResponse>> + Send;
    /// Put.
    fn put(
        &self,
        ctx: &RequestContext,
        r: PutRequest,
    ) -> impl Future<Output = ApiResult<PutResponse>> + Send;
    /// DeleteRange.
    fn delete_range(
        &self,
        ctx: &RequestContext,
        r: DeleteRangeRequest,
    ) -> impl Future<Output = ApiResult<DeleteRangeResponse>> + Send;
    /// Txn.
    fn txn(
        &self,
        ctx: &RequestContext,
        r: TxnRequest,
    ) -> impl Future<Output = ApiResult<TxnResponse>> + Send;
    /// Compact.
    fn compact(
        &self,
        ctx: &RequestContext,
        r: CompactionRequest,
    ) -> impl Future<Output = ApiResult<CompactionResponse>> + Send;
}

/// etcd's Cluster service.
pub trait ClusterApi: Send + Sync + 'static {
    /// MemberAdd.
    fn member_add(
        &self,
        ctx: &RequestContext,
        r: MemberAddRequest,
    ) -> impl Future<Output = ApiResult<MemberAddResponse>> + Send;
    /// MemberRemove.
    fn member_remove(
        &self,
        ctx: &RequestContext,
        r: MemberRemoveRequest,
    ) -> impl Future<Output = ApiResult<MemberRemoveResponse>> + Send;
    /// MemberUpdate.
    fn member_update(
        &self,
        ctx: &RequestContext,
        r: MemberUpdateRequest,
    ) -> impl Future<Output = ApiResult<MemberUpdateResponse>> + Send;
    /// MemberList.
    fn member_list(
        &self,
        ctx: &RequestContext,
        r: MemberListRequest,
    ) -> impl Future<Output = ApiResult<MemberListResponse>> + Send;
    /// MemberPromote.
    fn member_promote(
        &self,
        ctx: &RequestContext,
        r: MemberPromoteRequest,
    ) -> impl Future<Output = ApiResult<MemberPromoteResponse>> + Send;
}

/// etcd's Maintenance service.
pub trait MaintenanceApi: Send + Sync + 'static {
    /// Alarm get / activate / deactivate.
    fn alarm(
        &self,
        ctx: &RequestContext,
        r: AlarmRequest,
    ) -> impl Future<Output = ApiResult<AlarmResponse>> + Send;
    /// Status.
    fn status(
        &self,
        ctx: &RequestContext,
        r: StatusRequest,
    ) -> impl Future<Output = ApiResult<StatusResponse>> + Send;
    /// Defragment.
    fn defragment(
        &self,
        ctx: &RequestContext,
        r: DefragmentRequest,
    ) -> impl Future<Output = ApiResult<DefragmentResponse>> + Send;
    /// Hash (of the whole backend).
    fn hash(
        &self,
        ctx: &RequestContext,
        r: HashRequest,
    ) -> impl Future<Output = ApiResult<HashResponse>> + Send;
    /// HashKV.
    fn hash_kv(
        &self,
        ctx: &RequestContext,
        r: HashKvRequest,
    ) -> impl Future<Output = ApiResult<HashKvResponse>> + Send;
    /// Snapshot: the backend, streamed in chunks; the last chunk carries
    /// `remaining_bytes == 0` and the stream ends.
    fn snapshot(
        &self,
        ctx: &RequestContext,
    ) -> impl Future<Output = ApiResult<SnapshotChunks>> + Send;
    /// MoveLeader.
    fn move_leader(
        &self,
        ctx: &RequestContext,
        r: MoveLeaderRequest,
    ) -> impl Future<Output = ApiResult<MoveLeaderResponse>> + Send;
}
