//! etcd's Election service (`v3electionpb`), as etcd's `v3election` serves
//! it with the `concurrency` package's election.
//!
//! A candidate's key is `<name>/<lease hex>`, attached to its lease, with
//! its proposal as the value; the candidate with the lowest create
//! revision leads. A leader is named by its [`LeaderKey`] (name, key,
//! create revision, lease): Proclaim and Resign act only while that key
//! is still the one created at that revision.

use std::pin::Pin;
use std::sync::Arc;

use ironcd_proto::etcdserverpb::ResponseHeader;
use ironcd_proto::mvccpb::event::EventType;
use ironcd_proto::mvccpb::KeyValue;
use ironcd_proto::v3electionpb::*;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::Status;

use crate::concurrency::{
    created_at, first, first_created, get, participant_key, participants, prefix_end, put_op,
    range_in, range_op, Client, KeyWatch, OnLost, Withdraw,
};
use crate::traits::{ApiResult, KvApi, LeaseApi, WatchApi};
use crate::{EtcdError, RequestContext};

/// Leader answers queued for an Observe client before the stream's task
/// waits for it to read.
const OBSERVE_QUEUE: usize = 16;

/// What the service hands tonic for Observe.
pub type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

/// Campaign: waits until the caller leads `name`, proposing `value`.
pub(crate) async fn campaign<S: KvApi + WatchApi + LeaseApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    req: CampaignRequest,
) -> ApiResult<CampaignResponse> {
    let client = Client { server, ctx };
    let lease = client.session_lease(req.lease).await?;
    let prefix = participants(&req.name);
    let key = participant_key(&prefix, lease);
    let resp = client
        .txn(
            vec![created_at(&key, 0)],
            vec![put_op(&key, &req.value, lease)],
            vec![range_op(get(&key))],
        )
        .await?;
    let mut rev = resp.header.as_ref().map_or(0, |h| h.revision);
    if !resp.succeeded {
        // This lease already campaigns: keep its place, with the new value.
        let kv = first(range_in(&resp, 0)?)
            .ok_or_else(|| EtcdError::Internal("candidate key vanished inside its txn".into()))?;
        rev = kv.create_revision;
        if kv.value != req.value {
            if let Err(e) = proclaim_at(&client, &key, rev, lease, &req.value).await {
                Withdraw::new(server, ctx, &key, rev).now().await;
                return Err(e);
            }
        }
    }
    let withdraw = Withdraw::new(server, ctx, &key, rev);
    let waited = client
        .wait_deletes(&prefix, rev - 1, &key, OnLost::Election)
        .await;
    // Leading needs the key still there: its lease may have expired as
    // the last candidate before it went.
    let still_there = match waited {
        Ok(()) => client.range(get(&key)).await,
        Err(e) => Err(e),
    };
    match still_there {
        Ok(mine) if mine.kvs.first().map(|kv| kv.create_revision) == Some(rev) => {
            withdraw.keep();
            Ok(CampaignResponse {
                header: resp.header,
                leader: Some(LeaderKey {
                    name: req.name,
                    key,
                    rev,
                    lease,
                }),
            })
        }
        Ok(_) => {
            withdraw.keep();
            Err(EtcdError::ElectionNotLeader)
        }
        Err(e) => {
            withdraw.now().await;
            Err(e)
        }
    }
}

/// Puts `value` on the leader's key if it is still the one created at
/// `rev`.
async fn proclaim_at<S: KvApi + WatchApi + LeaseApi>(
    client: &Client<'_, S>,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: &[u8],
) -> ApiResult<Option<ResponseHeader>> {
    let resp = client
        .txn(
            vec![created_at(key, rev)],
            vec![put_op(key, value, lease)],
            Vec::new(),
        )
        .await?;
    if !resp.succeeded {
        return Err(EtcdError::ElectionNotLeader);
    }
    Ok(resp.header)
}

/// Proclaim: a new value from the leader, without another election.
pub(crate) async fn proclaim<S: KvApi + WatchApi + LeaseApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    req: ProclaimRequest,
) -> ApiResult<ProclaimResponse> {
    let leader = req.leader.ok_or(EtcdError::MissingLeaderKey)?;
    let client = Client { server, ctx };
    let header = proclaim_at(&client, &leader.key, leader.rev, leader.lease, &req.value).await?;
    Ok(ProclaimResponse { header })
}

/// Resign: the leader steps down (nothing happens if it no longer leads).
pub(crate) async fn resign<S: KvApi + WatchApi + LeaseApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    req: ResignRequest,
) -> ApiResult<ResignResponse> {
    let leader = req.leader.ok_or(EtcdError::MissingLeaderKey)?;
    let client = Client { server, ctx };
    let resp = client.delete_if_created_at(&leader.key, leader.rev).await?;
    Ok(ResignResponse {
        header: resp.header,
    })
}

/// Leader: the current leader's key value.
pub(crate) async fn leader<S: KvApi + WatchApi + LeaseApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    req: LeaderRequest,
) -> ApiResult<LeaderResponse> {
    let client = Client { server, ctx };
    let found = client
        .range(first_created(&participants(&req.name)))
        .await?;
    let kv = found.kvs.into_iter().next();
    if kv.is_none() {
        return Err(EtcdError::ElectionNoLeader);
    }
    Ok(LeaderResponse {
        header: found.header,
        kv,
    })
}

/// Observe: every value the leaders of `name` proclaim, from the current
/// leader on, as etcd's `observe` (values a leader put while this stream
/// was between leaders may be skipped; the newest is always sent).
pub(crate) fn observe<S: KvApi + WatchApi + LeaseApi>(
    server: Arc<S>,
    ctx: RequestContext,
    req: LeaderRequest,
) -> ObserveStream {
    let (out, rx) = mpsc::channel(OBSERVE_QUEUE);
    tokio::spawn(async move {
        // As etcd's, the stream ends without an error when following the
        // leader fails (a read or a watch failed, history compacted).
        tokio::select! {
            result = observe_loop(&server, &ctx, &req.name, &out) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "election observe ended");
                }
            }
            _ = out.closed() => {}
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

type Observed = mpsc::Sender<Result<LeaderResponse, Status>>;

async fn send(out: &Observed, header: ResponseHeader, kv: KeyValue) -> ApiResult<()> {
    out.send(Ok(LeaderResponse {
        header: Some(header),
        kv: Some(kv),
    }))
    .await
    .map_err(|_| EtcdError::Internal("the observer went away".into()))
}

/// Follows leader after leader until the client goes or a watch fails.
async fn observe_loop<S: KvApi + WatchApi + LeaseApi>(
    server: &Arc<S>,
    ctx: &RequestContext,
    name: &[u8],
    out: &Observed,
) -> ApiResult<()> {
    let client = Client { server, ctx };
    let prefix = participants(name);
    loop {
        let found = client.range(first_created(&prefix)).await?;
        let mut header = found.header.unwrap_or_default();
        let kv = match found.kvs.into_iter().next() {
            Some(kv) => kv,
            None => {
                // No leader: wait for the first candidate's put.
                let mut watch = KeyWatch::open(server, ctx)?;
                watch.add(&prefix, &prefix_end(&prefix), header.revision)?;
                loop {
                    let batch = watch.next().await?;
                    let put = batch
                        .events
                        .iter()
                        .find(|e| e.event().r#type == EventType::Put as i32)
                        .and_then(|e| e.event().kv.clone());
                    if let Some(kv) = put {
                        header = server.watch_header(kv.mod_revision);
                        break kv;
                    }
                }
            }
        };
        let key = kv.key.clone();
        send(out, header, kv).await?;
        // Every value this leader proclaims, until its key goes.
        let mut watch = KeyWatch::open(server, ctx)?;
        watch.add(&key, &[], header.revision + 1)?;
        'leader: loop {
            let batch = watch.next().await?;
            let header = server.watch_header(batch.revision);
            for event in &batch.events {
                let event = event.event();
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                if let Some(kv) = &event.kv {
                    send(out, header, kv.clone()).await?;
                }
            }
        }
    }
}
