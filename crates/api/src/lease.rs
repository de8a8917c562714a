//! The LeaseKeepAlive stream: one task per client stream that renews each
//! lease the client names, in order, and answers with its TTL (0 for a
//! lease that is gone), as etcd's `leaseKeepAlive` does.

use std::pin::Pin;
use std::sync::Arc;

use ironcd_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Status, Streaming};

use crate::traits::{LeaseApi, WatchApi};
use crate::{EtcdError, RequestContext};

/// Answers queued for the client before the stream's task waits for it to
/// read.
const SEND_QUEUE: usize = 16;

/// What the service hands tonic.
pub type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

/// Starts serving one LeaseKeepAlive stream.
pub(crate) fn serve<S: LeaseApi + WatchApi>(
    server: Arc<S>,
    ctx: RequestContext,
    requests: Streaming<LeaseKeepAliveRequest>,
) -> KeepAliveStream {
    let (out, rx) = mpsc::channel(SEND_QUEUE);
    tokio::spawn(run(server, ctx, requests, out));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn run<S: LeaseApi + WatchApi>(
    server: Arc<S>,
    ctx: RequestContext,
    mut requests: Streaming<LeaseKeepAliveRequest>,
    out: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) {
    let mut leader = tokio::time::interval(crate::watch::LEADER_CHECK);
    loop {
        let request = tokio::select! {
            request = requests.message() => request,
            _ = leader.tick(), if ctx.require_leader => {
                if WatchApi::has_leader(&*server).await {
                    continue;
                }
                let _ = out.send(Err(Status::from(EtcdError::NoLeader))).await;
                return;
            }
            _ = out.closed() => return,
        };
        // The client closed its side (or the stream broke): done.
        let Ok(Some(request)) = request else { return };
        // The header is taken before the renewal, as etcd does, so its
        // revision is never past a revoke the renewal raced with.
        let header = Some(server.lease_header());
        let ttl = match server.lease_renew(&ctx, request.id).await {
            Ok(ttl) => ttl,
            Err(EtcdError::LeaseNotFound) => 0,
            Err(e) => {
                let _ = out.send(Err(Status::from(e))).await;
                return;
            }
        };
        let response = LeaseKeepAliveResponse {
            header,
            id: request.id,
            ttl,
        };
        if out.send(Ok(response)).await.is_err() {
            return;
        }
    }
}
