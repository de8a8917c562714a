//! The leader's side of leases. The applier promotes the lessor when raft
//! makes this member leader (every lease extended by an election timeout)
//! and demotes it when it stops; while it is primary, every
//! [`TICK_INTERVAL`] the lessor hands out expired leases, which go over a bounded channel to a
//! revoker that proposes their revokes at most `revoke_rate_per_s` a
//! second, and due checkpoints, which are proposed at once.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironcd_lease::{LeaseId, EXPIRED_CHANNEL_CAPACITY, TICK_INTERVAL};
use ironcd_proto::etcdserverpb::{InternalRaftRequest, LeaseRevokeRequest};
use tokio::sync::{mpsc, Semaphore};

use crate::server::EtcdServer;

/// How often the expiry task looks whether its lessor is primary and a
/// tick is due.
pub const TICK_POLL: Duration = Duration::from_millis(100);
/// Revoke proposals of expired leases in flight at once, at most.
pub const MAX_REVOKES_IN_FLIGHT: usize = 1024;
/// The revoker spends its rate in slots of this length.
const REVOKE_SLOT: Duration = Duration::from_millis(100);

/// Runs until the member stops (the task is aborted).
pub(crate) async fn run(server: EtcdServer) {
    let (expired_tx, expired_rx) = mpsc::channel(EXPIRED_CHANNEL_CAPACITY);
    tokio::join!(
        tick_while_leading(server.clone(), expired_tx),
        revoke_expired(server, expired_rx)
    );
}

async fn tick_while_leading(server: EtcdServer, expired: mpsc::Sender<Vec<LeaseId>>) {
    let lessor = server.state().lessor.clone();
    let rate = f64::from(lessor.config().revoke_rate_per_s);
    let mut poll = tokio::time::interval(TICK_POLL);
    let mut last_tick = Instant::now();
    loop {
        poll.tick().await;
        let since = last_tick.elapsed();
        // The applier promotes the lessor when raft makes this member
        // leader, and demotes it when it stops being leader.
        if !lessor.is_primary() || since < TICK_INTERVAL {
            continue;
        }
        last_tick = Instant::now();
        // The rate's share of the time since the last tick (polls make
        // ticks a little over the interval apart), at most a second's.
        let max_expired = (rate * since.as_secs_f64()).round().clamp(1.0, rate) as usize;
        let tick = lessor.tick(max_expired);
        if !tick.expired.is_empty() && expired.try_send(tick.expired).is_err() {
            // Handed out again after the expiry retry.
            tracing::debug!("expired leases wait: the revoker is behind");
        }
        if !tick.checkpoints.is_empty() {
            let server = server.clone();
            tokio::spawn(async move {
                if let Err(e) = server.propose_checkpoints(tick.checkpoints).await {
                    tracing::debug!(error = %e, "proposing lease checkpoints");
                }
            });
        }
    }
}

async fn revoke_expired(server: EtcdServer, mut expired: mpsc::Receiver<Vec<LeaseId>>) {
    let rate = server.state().lessor.config().revoke_rate_per_s;
    let per_slot = ((u64::from(rate) * REVOKE_SLOT.as_millis() as u64) / 1000).max(1) as usize;
    let in_flight = Arc::new(Semaphore::new(MAX_REVOKES_IN_FLIGHT));
    let mut slot = tokio::time::interval(REVOKE_SLOT);
    // Holds one batch at most: the next is taken only when it is empty.
    let mut pending: VecDeque<LeaseId> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match expired.recv().await {
                Some(batch) => pending.extend(batch),
                None => return,
            }
        }
        slot.tick().await;
        let take = per_slot.min(pending.len());
        for id in pending.drain(..take) {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let req = InternalRaftRequest {
                    lease_revoke: Some(LeaseRevokeRequest { id }),
                    ..Default::default()
                };
                match server.propose(req).await {
                    Ok(_) => {
                        server
                            .inner
                            .metrics
                            .leases_expired
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(lease = %format!("{id:x}"), "revoked an expired lease")
                    }
                    Err(e) => {
                        tracing::debug!(lease = %format!("{id:x}"), error = %e, "revoking an expired lease")
                    }
                }
            });
        }
    }
}
