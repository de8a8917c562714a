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

/// What a server's watchable store sends one Watch stream: events of one
/// revision for one watcher, a progress notification (no events; watch id
/// -1 for the whole stream), or, with `compact_revision` set, the end of a
/// watcher whose history was compacted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchEvents {
    /// The watcher, or -1.
    pub watch_id: i64,
    /// The events (without `prev_kv`; the service adds it), each shared
    /// with the other watchers it reached.
    pub events: Vec<std::sync::Arc<ironcd_proto::watch_reply::SharedEvent>>,
    /// The revision the response speaks for.
    pub revision: i64,
    /// Non-zero: compacted at this revision, the watcher is gone.
    pub compact_revision: i64,
}

/// One Watch stream's watchers on the server; dropped when the stream
/// ends, which cancels them all.
pub trait WatchSession: Send + Sync + 'static {
    /// Creates a watcher from a create request (key "\0" for an empty
    /// one already; `range_end` `[0]` means every key from `key`;
    /// `start_revision` 0 the next revision; filters; a chosen or
    /// automatic id): its id and the revision the store was at, or the
    /// reason etcd gives for refusing it.
    fn create(&self, r: &WatchCreateRequest) -> Result<(i64, i64), String>;
    /// Cancels watcher `id`; `false` if there was none.
    fn cancel(&self, id: i64) -> bool;
    /// Sends a progress notification for `id` if it is synced.
    fn progress(&self, id: i64) -> bool;
    /// Sends one for the whole stream (watch id -1) if every watcher is
    /// synced; `false` if not (the caller asks again later).
    fn progress_all(&self) -> bool;
    /// The store's current revision.
    fn current_rev(&self) -> i64;
    /// `key` as it was at `rev`, for `prev_kv`.
    fn kv_at(&self, key: &[u8], rev: i64) -> Option<ironcd_proto::mvccpb::KeyValue>;
}

/// etcd's Watch service.
pub trait WatchApi: Send + Sync + 'static {
    /// A stream's watchers.
    type Session: WatchSession;
    /// What a stream's watchers are sent (bounded by the server).
    type Events: Stream<Item = WatchEvents> + Send + Unpin + 'static;
    /// Opens a stream: its session and what it is sent.
    fn open_watch(&self, ctx: &RequestContext) -> ApiResult<(Self::Session, Self::Events)>;
    /// The header of a watch response at `revision`.
    fn watch_header(&self, revision: i64) -> ResponseHeader;
    /// `--experimental-watch-progress-notify-interval`.
    fn watch_progress_interval(&self) -> std::time::Duration;
    /// Whether this member knows a leader (a `hasleader` stream ends when
    /// it does not).
    fn has_leader(&self) -> impl Future<Output = bool> + Send;
}

/// etcd's Lease service. Grant and revoke go through the log; a renewal
/// and TimeToLive are answered by the leader's lessor (a follower forwards
/// them); the lease list is this member's.
pub trait LeaseApi: Send + Sync + 'static {
    /// LeaseGrant (id 0: the server picks one).
    fn lease_grant(
        &self,
        ctx: &RequestContext,
        r: LeaseGrantRequest,
    ) -> impl Future<Output = ApiResult<LeaseGrantResponse>> + Send;
    /// LeaseRevoke: the lease and every key attached to it.
    fn lease_revoke(
        &self,
        ctx: &RequestContext,
        r: LeaseRevokeRequest,
    ) -> impl Future<Output = ApiResult<LeaseRevokeResponse>> + Send;
    /// One keep-alive: renews lease `id`; its TTL, or `LeaseNotFound` for
    /// a lease that is gone or expired (the stream answers TTL 0).
    fn lease_renew(
        &self,
        ctx: &RequestContext,
        id: i64,
    ) -> impl Future<Output = ApiResult<i64>> + Send;
    /// LeaseTimeToLive; `LeaseNotFound` for an unknown lease (the service
    /// answers TTL -1).
    fn lease_time_to_live(
        &self,
        ctx: &RequestContext,
        r: LeaseTimeToLiveRequest,
    ) -> impl Future<Output = ApiResult<LeaseTimeToLiveResponse>> + Send;
    /// LeaseLeases.
    fn lease_leases(
        &self,
        ctx: &RequestContext,
    ) -> impl Future<Output = ApiResult<LeaseLeasesResponse>> + Send;
    /// The header of a response made now (keep-alives, TimeToLive).
    fn lease_header(&self) -> ResponseHeader;
}

/// Every service trait a server implements to be served by
/// [`crate::Services`].
pub trait EtcdApi: Admission + KvApi + ClusterApi + MaintenanceApi + WatchApi + LeaseApi {}

impl<T: Admission + KvApi + ClusterApi + MaintenanceApi + WatchApi + LeaseApi> EtcdApi for T {}
