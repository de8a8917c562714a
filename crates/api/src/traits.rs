//! What the services need from a server. `ironcd-server` implements these;
//! tests may implement them in memory. Every response carries a complete
//! header (cluster id, member id, revision, raft term): the implementor
//! fills it.

use std::future::Future;
use std::pin::Pin;

use ironcd_proto::etcdserverpb::*;
use tokio_stream::Stream;

use crate::EtcdError;

/// The result of a server call.
pub type ApiResult<T> = Result<T, EtcdError>;

/// A stream of snapshot chunks.
pub type SnapshotChunks = Pin<Box<dyn Stream<Item = ApiResult<SnapshotResponse>> + Send>>;

/// etcd's KV service, on validated requests.
pub trait KvApi: Send + Sync + 'static {
    /// Range (linearizable unless `serializable`).
    fn range(&self, r: RangeRequest) -> impl Future<Output = ApiResult<RangeResponse>> + Send;
    /// Put.
    fn put(&self, r: PutRequest) -> impl Future<Output = ApiResult<PutResponse>> + Send;
    /// DeleteRange.
    fn delete_range(
        &self,
        r: DeleteRangeRequest,
    ) -> impl Future<Output = ApiResult<DeleteRangeResponse>> + Send;
    /// Txn.
    fn txn(&self, r: TxnRequest) -> impl Future<Output = ApiResult<TxnResponse>> + Send;
    /// Compact.
    fn compact(
        &self,
        r: CompactionRequest,
    ) -> impl Future<Output = ApiResult<CompactionResponse>> + Send;
}

/// etcd's Cluster service.
pub trait ClusterApi: Send + Sync + 'static {
    /// MemberAdd.
    fn member_add(
        &self,
        r: MemberAddRequest,
    ) -> impl Future<Output = ApiResult<MemberAddResponse>> + Send;
    /// MemberRemove.
    fn member_remove(
        &self,
        r: MemberRemoveRequest,
    ) -> impl Future<Output = ApiResult<MemberRemoveResponse>> + Send;
    /// MemberUpdate.
    fn member_update(
        &self,
        r: MemberUpdateRequest,
    ) -> impl Future<Output = ApiResult<MemberUpdateResponse>> + Send;
    /// MemberList.
    fn member_list(
        &self,
        r: MemberListRequest,
    ) -> impl Future<Output = ApiResult<MemberListResponse>> + Send;
    /// MemberPromote.
    fn member_promote(
        &self,
        r: MemberPromoteRequest,
    ) -> impl Future<Output = ApiResult<MemberPromoteResponse>> + Send;
}

/// etcd's Maintenance service.
pub trait MaintenanceApi: Send + Sync + 'static {
    /// Alarm get / activate / deactivate.
    fn alarm(&self, r: AlarmRequest) -> impl Future<Output = ApiResult<AlarmResponse>> + Send;
    /// Status.
    fn status(&self, r: StatusRequest) -> impl Future<Output = ApiResult<StatusResponse>> + Send;
    /// Defragment.
    fn defragment(
        &self,
        r: DefragmentRequest,
    ) -> impl Future<Output = ApiResult<DefragmentResponse>> + Send;
    /// Hash (of the whole backend).
    fn hash(&self, r: HashRequest) -> impl Future<Output = ApiResult<HashResponse>> + Send;
    /// HashKV.
    fn hash_kv(&self, r: HashKvRequest) -> impl Future<Output = ApiResult<HashKvResponse>> + Send;
    /// Snapshot: the backend, streamed in chunks; the last chunk carries
    /// `remaining_bytes == 0` and the stream ends.
    fn snapshot(&self) -> impl Future<Output = ApiResult<SnapshotChunks>> + Send;
    /// MoveLeader.
    fn move_leader(
        &self,
        r: MoveLeaderRequest,
    ) -> impl Future<Output = ApiResult<MoveLeaderResponse>> + Send;
}
