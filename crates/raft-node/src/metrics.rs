//! Raft's counters under etcd's names, for the server's `/metrics`.
//! Process-wide, as etcd's are.

use std::sync::{Arc, Mutex};

use ironcd_metrics::{exponential_buckets, Counter, Histogram};

/// `etcd_server_leader_changes_seen_total`: times this member saw a new
/// leader (a different, known one).
pub static LEADER_CHANGES: Counter = Counter::new();

/// The WAL's, which the server reaches through this crate.
pub use ironcd_wal::metrics::{FSYNC_SECONDS as WAL_FSYNC_SECONDS, WRITE_BYTES as WAL_WRITE_BYTES};

/// etcd's round-trip buckets: 0.1 ms doubling to about 0.8 s.
pub static RTT_BUCKETS: [f64; 14] = exponential_buckets(0.0001, 2.0);

/// Peers whose round trips are kept at most (etcd clusters have a handful
/// of members; a member replaced many times must not grow this forever).
pub const MAX_PROBED_PEERS: usize = 64;

/// `etcd_network_peer_round_trip_time_seconds{To}`, by peer id, in order
/// of first probe.
static PEER_RTT: Mutex<Vec<(u64, Arc<Histogram>)>> = Mutex::new(Vec::new());

/// The round-trip histogram of `peer`: its own, or a new one while fewer
/// than [`MAX_PROBED_PEERS`] are kept (`None` past that).
pub fn peer_rtt(peer: u64) -> Option<Arc<Histogram>> {
    let mut all = PEER_RTT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, h)) = all.iter().find(|(id, _)| *id == peer) {
        return Some(h.clone());
    }
    if all.len() >= MAX_PROBED_PEERS {
        return None;
    }
    let h = Arc::new(Histogram::new(&RTT_BUCKETS));
    all.push((peer, h.clone()));
    Some(h)
}

/// Every peer's round-trip histogram.
pub fn peer_rtts() -> Vec<(u64, Arc<Histogram>)> {
    PEER_RTT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
