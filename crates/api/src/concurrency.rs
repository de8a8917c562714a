//! The recipes the Election and Lock services share, built on the server's
//! KV, Watch and Lease calls as etcd's `concurrency` package builds them on
//! a client: a key per participant under `<name>/`, named by its lease in
//! hex and attached to it; the lowest create revision holds; a waiter
//! watches only the participant just before it, and its own key.
//!
//! Where ironcd goes past etcd 3.5 (the issue asks for it): a waiter also
//! watches its own key, so a wait ends as soon as its lease expires or its
//! key is deleted (etcd waits on), and a wait the client gives up on
//! deletes its key, guarded by the key's create revision, so a later
//! participant on the same lease is never removed.

use std::sync::Arc;

use ironcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ironcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use ironcd_proto::etcdserverpb::request_op::Request as Op;
use ironcd_proto::etcdserverpb::response_op::Response as OpResponse;
use ironcd_proto::etcdserverpb::*;
use ironcd_proto::mvccpb::event::EventType;
use ironcd_proto::mvccpb::KeyValue;
use tokio_stream::StreamExt;

use crate::traits::{ApiResult, KvApi, LeaseApi, WatchApi, WatchSession};
use crate::{EtcdError, RequestContext};

/// The TTL of the lease a Campaign or Lock without one is given (etcd's
/// `defaultSessionTTL`); the service does not keep it alive, as etcd's
/// does not.
pub(crate) const DEFAULT_SESSION_TTL: i64 = 60;

/// What a call needs: the server and the caller's context.
pub(crate) struct Client<'a, S> {
    pub server: &'a Arc<S>,
    pub ctx: &'a RequestContext,
}

/// The end of every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`): `[0]`, every key, when nothing can follow it.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `<name>/`, the prefix every participant's key is under.
pub(crate) fn participants(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// A participant's key: the prefix and its lease in lower-case hex.
pub(crate) fn participant_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// `create_revision(key) == rev`.
pub(crate) fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

pub(crate) fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

/// A read of one key.
pub(crate) fn get(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(range)),
    }
}

/// The participant with the lowest create revision under `prefix` (etcd's
/// `WithFirstCreate`).
pub(crate) fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The range answer in a txn's `i`th response.
pub(crate) fn range_in(resp: &TxnResponse, i: usize) -> ApiResult<&RangeResponse> {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(range)) => Ok(range),
        _ => Err(EtcdError::Internal(format!(
            "txn response {i} is not the range it asked for"
        ))),
    }
}

/// What ended a wait for a predecessor's deletion.
enum Waited {
    /// The predecessor's key was deleted.
    Deleted,
    /// The waiter's own key was deleted (its lease expired, or someone
    /// removed it): it can no longer win.
    Lost,
}

/// The error a wait ends with when the waiter's own key is gone.
pub(crate) enum OnLost {
    /// A lock: `mutex: session is expired`.
    Lock,
    /// An election: `election: not leader`.
    Election,
}

impl<S: KvApi + WatchApi + LeaseApi> Client<'_, S> {
    /// The lease a participant uses: the caller's, or a new one of
    /// [`DEFAULT_SESSION_TTL`] for lease 0 (as etcd's session does).
    pub async fn session_lease(&self, lease: i64) -> ApiResult<i64> {
        if lease != 0 {
            return Ok(lease);
        }
        let granted = self
            .server
            .lease_grant(
                self.ctx,
                LeaseGrantRequest {
                    ttl: DEFAULT_SESSION_TTL,
                    id: 0,
                },
            )
            .await?;
        Ok(granted.id)
    }

    pub async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<RequestOp>,
        failure: Vec<RequestOp>,
    ) -> ApiResult<TxnResponse> {
        let request = TxnRequest {
            compare,
            success,
            failure,
        };
        self.server.txn(self.ctx, request).await
    }

    pub async fn range(&self, request: RangeRequest) -> ApiResult<RangeResponse> {
        self.server.range(self.ctx, request).await
    }

    /// Deletes `key` if it is still the one created at `rev`.
    pub async fn delete_if_created_at(&self, key: &[u8], rev: i64) -> ApiResult<TxnResponse> {
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        };
        self.txn(vec![created_at(key, rev)], vec![delete], Vec::new())
            .await
    }

    /// Waits until no key under `prefix` created at or before
    /// `max_create_rev` is left (etcd's `waitDeletes`), watching one
    /// predecessor at a time, the newest first; it ends early, with the
    /// error `on_lost` names, when `own` (the waiter's key) is deleted.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
        own: &[u8],
        on_lost: OnLost,
    ) -> ApiResult<()> {
        loop {
            let newest_before = RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Create as i32,
                max_create_revision: max_create_rev,
                ..Default::default()
            };
            let found = self.range(newest_before).await?;
            let Some(predecessor) = found.kvs.first() else {
                return Ok(());
            };
            let rev = found.header.as_ref().map_or(0, |h| h.revision);
            match self.wait_delete(&predecessor.key, own, rev).await? {
                Waited::Deleted => continue,
                Waited::Lost => {
                    return Err(match on_lost {
                        OnLost::Lock => EtcdError::SessionExpired,
                        OnLost::Election => EtcdError::ElectionNotLeader,
                    })
                }
            }
        }
    }

    /// Watches `key` and `own` from `rev` until one of them is deleted.
    async fn wait_delete(&self, key: &[u8], own: &[u8], rev: i64) -> ApiResult<Waited> {
        let mut watch = KeyWatch::open(self.server, self.ctx)?;
        let predecessor = watch.add(key, &[], rev)?;
        let mine = watch.add(own, &[], rev)?;
        loop {
            let batch = watch.next().await?;
            let deleted = |id| {
                batch.watch_id == id
                    && batch
                        .events
                        .iter()
                        .any(|e| e.event().r#type == EventType::Delete as i32)
            };
            if deleted(mine) {
                return Ok(Waited::Lost);
            }
            if deleted(predecessor) {
                return Ok(Waited::Deleted);
            }
        }
    }
}

/// Watchers on single keys over one in-process watch stream.
pub(crate) struct KeyWatch<S: WatchApi> {
    session: S::Session,
    events: S::Events,
}

impl<S: WatchApi> KeyWatch<S> {
    pub fn open(server: &Arc<S>, ctx: &RequestContext) -> ApiResult<Self> {
        let (session, events) = server.open_watch(ctx)?;
        Ok(Self { session, events })
    }

    /// Watches `[key, range_end)` (`key` alone for an empty end) from
    /// revision `rev`; the watcher's id.
    pub fn add(&self, key: &[u8], range_end: &[u8], rev: i64) -> ApiResult<i64> {
        let create = WatchCreateRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            start_revision: rev,
            ..Default::default()
        };
        self.session
            .create(&create)
            .map(|(id, _)| id)
            .map_err(EtcdError::Internal)
    }

    /// The next batch with events; a compacted start revision is
    /// `Compacted`, the stream's end etcd's "lost watcher" error.
    pub async fn next(&mut self) -> ApiResult<crate::traits::WatchEvents> {
        loop {
            let Some(batch) = self.events.next().await else {
                return Err(EtcdError::LostWatcher);
            };
            if batch.compact_revision != 0 {
                return Err(EtcdError::Compacted);
            }
            if !batch.events.is_empty() {
                return Ok(batch);
            }
        }
    }
}

/// Deletes a participant's key if the call that made it is dropped before
/// it finished (the client cancelled, or its connection broke): a wait
/// that ends without an answer leaves no key behind.
pub(crate) struct Withdraw<S: KvApi + WatchApi + LeaseApi> {
    armed: Option<(Arc<S>, RequestContext, Vec<u8>, i64)>,
}

impl<S: KvApi + WatchApi + LeaseApi> Withdraw<S> {
    pub fn new(server: &Arc<S>, ctx: &RequestContext, key: &[u8], rev: i64) -> Self {
        Self {
            armed: Some((Arc::clone(server), ctx.clone(), key.to_vec(), rev)),
        }
    }

    /// Withdraws now (the wait failed) and waits for it.
    pub async fn now(mut self) {
        if let Some((server, ctx, key, rev)) = self.armed.take() {
            withdraw(server, ctx, key, rev).await;
        }
    }

    /// The call succeeded: the key stays.
    pub fn keep(mut self) {
        self.armed = None;
    }
}

impl<S: KvApi + WatchApi + LeaseApi> Drop for Withdraw<S> {
    fn drop(&mut self) {
        if let Some((server, ctx, key, rev)) = self.armed.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(withdraw(server, ctx, key, rev));
            }
        }
    }
}

async fn withdraw<S: KvApi + WatchApi + LeaseApi>(
    server: Arc<S>,
    ctx: RequestContext,
    key: Vec<u8>,
    rev: i64,
) {
    let client = Client {
        server: &server,
        ctx: &ctx,
    };
    if let Err(e) = client.delete_if_created_at(&key, rev).await {
        tracing::warn!(error = %e, key = %String::from_utf8_lossy(&key), "could not withdraw a participant's key");
    }
}

/// The first key value of a range, if any.
pub(crate) fn first(range: &RangeResponse) -> Option<&KeyValue> {
    range.kvs.first()
}
