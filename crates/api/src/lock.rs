//! etcd's Lock service (`v3lockpb`): a distributed mutex on the KV store,
//! as etcd's `v3lock` serves it with the `concurrency` package's mutex.
//!
//! Lock puts `<name>/<lease hex>` with the caller's lease if it is not
//! there yet, and holds the lock once no key under `<name>/` was created
//! before it. The answer's header revision and key are the holder's
//! fencing token: the key's create revision only grows. Unlock deletes
//! the key.

use std::sync::Arc;

use ironcd_proto::etcdserverpb::DeleteRangeRequest;
use ironcd_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use crate::concurrency::{
    created_at, first, first_created, get, participant_key, participants, put_op, range_in,
    range_op, Client, OnLost, Withdraw,
};
use crate::traits::{ApiResult, KvApi, LeaseApi, WatchApi};
use crate::{EtcdError, RequestContext};

/// Lock: waits until the caller holds `name`.
pub(crate) async fn lock<S: KvApi + WatchApi + LeaseApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    req: LockRequest,
) -> ApiResult<LockResponse> {
    let client = Client { server, ctx };
    let lease = client.session_lease(req.lease).await?;
    let prefix = participants(&req.name);
    let key = participant_key(&prefix, lease);
    let owner_op = range_op(first_created(&prefix));
    // Join the waiters, or find the key this lease already has.
    let resp = client
        .txn(
            vec![created_at(&key, 0)],
            vec![put_op(&key, b"", lease), owner_op.clone()],
            vec![range_op(get(&key)), owner_op],
        )
        .await?;
    let my_rev = if resp.succeeded {
        resp.header.as_ref().map_or(0, |h| h.revision)
    } else {
        first(range_in(&resp, 0)?)
            .map(|kv| kv.create_revision)
            .ok_or_else(|| EtcdError::Internal("lock key vanished inside its txn".into()))?
    };
    let holder = first(range_in(&resp, 1)?).map(|kv| kv.create_revision);
    if holder.is_none_or(|rev| rev == my_rev) {
        return Ok(LockResponse {
            header: resp.header,
            key,
        });
    }
    let withdraw = Withdraw::new(server, ctx, &key, my_rev);
    if let Err(e) = client
        .wait_deletes(&prefix, my_rev - 1, &key, OnLost::Lock)
        .await
    {
        withdraw.now().await;
        return Err(e);
    }
    // The lease may have expired just as the last predecessor went
    // (etcd #11456): hold the lock only if the key is still there.
    let mine = match client.range(get(&key)).await {
        Ok(mine) => mine,
        Err(e) => {
            withdraw.now().await;
            return Err(e);
        }
    };
    if mine.kvs.first().map(|kv| kv.create_revision) != Some(my_rev) {
        withdraw.keep();
        return Err(EtcdError::SessionExpired);
    }
    withdraw.keep();
    Ok(LockResponse {
        header: mine.header,
        key,
    })
}

/// Unlock: deletes the key Lock answered with.
pub(crate) async fn unlock<S: KvApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    req: UnlockRequest,
) -> ApiResult<UnlockResponse> {
    let delete = DeleteRangeRequest {
        key: req.key,
        ..Default::default()
    };
    crate::validate::check_delete(&delete)?;
    let deleted = server.delete_range(ctx, delete).await?;
    Ok(UnlockResponse {
        header: deleted.header,
    })
}
