//! Lease workloads: `lease-keepalive` and `lease-grant-revoke`.

use std::time::Instant;

use anyhow::Result;
use etcd_client::{LeaseClient, PutOptions};
use serde_json::Map;
use tokio::task::JoinSet;

use super::Ctx;
use crate::driver::{is_unimplemented, join_all, Control};
use crate::report::{Report, Stats};

/// The gRPC service these workloads need.
const SERVICE: &str = "Lease";

/// One keep-alive on an open keep-alive stream: send, then read the answer.
async fn keep_alive_once(
    keeper: &mut etcd_client::LeaseKeeper,
    answers: &mut etcd_client::LeaseKeepAliveStream,
) -> Result<(), etcd_client::Error> {
    keeper.keep_alive().await?;
    match answers.message().await? {
        Some(answer) if answer.ttl() > 0 => Ok(()),
        Some(_) => Err(etcd_client::Error::LeaseKeepAliveError(
            "the lease expired or was not found".into(),
        )),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "the keep-alive stream ended".into(),
        )),
    }
}

/// Each client grants one lease and sends keep-alives for it, one at a time,
/// over its own keep-alive stream. The leases are revoked at the end.
pub(super) async fn keepalive(ctx: &Ctx, ttl: i64) -> Result<Report> {
    let mut streams = Vec::new();
    for i in 0..ctx.global.clients {
        let mut lease = ctx.conn(i).lease_client();
        let granted = match lease.grant(ttl, None).await {
            Ok(granted) => granted,
            Err(e) if is_unimplemented(&e) => return Ok(ctx.not_served(SERVICE)),
            Err(e) => return Err(e.into()),
        };
        let (keeper, answers) = lease.keep_alive(granted.id()).await?;
        streams.push((lease, granted.id(), keeper, answers));
    }
    let control = Control::new(&ctx.global);
    let progress = ctx.progress(&control, "lease-keepalive");
    let started = control.start();
    let mut tasks = JoinSet::new();
    for (lease, id, mut keeper, mut answers) in streams {
        let control = control.clone();
        tasks.spawn(async move {
            let mut stats = Stats::default();
            while control.next_ticket().await.is_some() {
                let begun = Instant::now();
                let result = keep_alive_once(&mut keeper, &mut answers).await;
                control.finish(&mut stats, SERVICE, begun, result);
            }
            revoke_quietly(lease, id).await;
            stats
        });
    }
    let stats = join_all(tasks).await?;
    let elapsed = started.elapsed();
    progress.finish();
    Ok(ctx.report(elapsed, stats, control.not_served(), Map::new()))
}

async fn revoke_quietly(mut lease: LeaseClient, id: i64) {
    // Cleanup only: a lease left behind expires after its TTL anyway.
    let _ = lease.revoke(id).await;
}

/// Each request grants a lease, puts `keys_per_lease` keys attached to it,
/// and revokes it (which deletes the keys).
pub(super) async fn grant_revoke(ctx: &Ctx, keys_per_lease: u64, ttl: i64) -> Result<Report> {
    ctx.timed(SERVICE, |i| {
        let client = ctx.conn(i);
        let (keys, value) = (ctx.keys.clone(), ctx.value.clone());
        let mut rng = Ctx::rng();
        move |t| {
            let batch: Vec<Vec<u8>> = (0..keys_per_lease)
                .map(|_| keys.key(keys.pick(t, &mut rng)))
                .collect();
            let (mut lease, mut kv, value) =
                (client.lease_client(), client.kv_client(), value.clone());
            async move {
                let id = lease.grant(ttl, None).await?.id();
                for key in batch {
                    kv.put(key, value.clone(), Some(PutOptions::new().with_lease(id)))
                        .await?;
                }
                lease.revoke(id).await.map(drop)
            }
        }
    })
    .await
}
