//! Auto-compaction (`--auto-compaction-mode` / `--auto-compaction-retention`).
//! Every member samples its revision; only the leader proposes the
//! compaction, through raft, like a client's Compact.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ironcd_api::{KvApi, RequestContext};
use ironcd_proto::etcdserverpb::CompactionRequest;
use tokio::sync::watch;

use crate::config::AutoCompaction;
use crate::server::EtcdServer;

/// How often revision mode checks (etcd: every 5 minutes).
pub const REVISION_CHECK_MS: u64 = 5 * 60 * 1000;
/// Samples a periodic retention window is divided into (etcd: 10).
const PERIODIC_SAMPLES: u64 = 10;

/// Decides, from samples of the current revision, where to compact.
#[derive(Debug)]
pub struct Schedule {
    mode: AutoCompaction,
    /// (time in ms, revision) samples, oldest first.
    samples: VecDeque<(u64, i64)>,
    last: i64,
}

impl Schedule {
    /// A schedule for `mode`.
    pub fn new(mode: AutoCompaction) -> Self {
        Self {
            mode,
            samples: VecDeque::new(),
            last: 0,
        }
    }

    /// How long to wait between observations (None: disabled).
    pub fn interval(&self) -> Option<Duration> {
        match self.mode {
            AutoCompaction::Off => None,
            AutoCompaction::Periodic { retention_ms } => Some(Duration::from_millis(
                (retention_ms / PERIODIC_SAMPLES).max(100),
            )),
            AutoCompaction::Revision { .. } => Some(Duration::from_millis(REVISION_CHECK_MS)),
        }
    }

    /// Records the revision `rev` seen at `now_ms`; returns the revision to
    /// compact at, if one is due. Periodic mode compacts to the revision
    /// that was current one retention period ago; revision mode keeps the
    /// last `retention` revisions.
    pub fn observe(&mut self, now_ms: u64, rev: i64) -> Option<i64> {
        let target = match self.mode {
            AutoCompaction::Off => return None,
            AutoCompaction::Revision { retention } => rev - retention as i64,
            AutoCompaction::Periodic { retention_ms } => {
                self.samples.push_back((now_ms, rev));
                let mut target = 0;
                while let Some(&(at, sampled)) = self.samples.front() {
                    if now_ms.saturating_sub(at) < retention_ms {
                        break;
                    }
                    target = sampled;
                    self.samples.pop_front();
                }
                target
            }
        };
        if target > self.last && target > 0 {
            self.last = target;
            Some(target)
        } else {
            None
        }
    }
}

/// Runs the schedule until `stop` turns true.
pub async fn run(server: EtcdServer, mode: AutoCompaction, mut stop: watch::Receiver<bool>) {
    let mut schedule = Schedule::new(mode);
    let Some(interval) = schedule.interval() else {
        return;
    };
    let start = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let rev = server.state().store().current_rev();
        let Some(target) = schedule.observe(start.elapsed().as_millis() as u64, rev) else {
            continue;
        };
        if server.leader().await != server.id() {
            continue;
        }
        let request = CompactionRequest {
            revision: target,
            physical: false,
        };
        match server.compact(&RequestContext::default(), request).await {
            Ok(_) => tracing::info!(revision = target, "auto-compacted"),
            Err(e) => tracing::info!(revision = target, error = %e, "auto-compaction skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_compacts_to_the_revision_one_retention_ago() {
        let mut s = Schedule::new(AutoCompaction::Periodic { retention_ms: 1000 });
        assert_eq!(s.interval(), Some(Duration::from_millis(100)));
        assert_eq!(s.observe(0, 5), None);
        assert_eq!(s.observe(500, 9), None);
        assert_eq!(s.observe(1000, 12), Some(5));
        assert_eq!(s.observe(1200, 20), None, "nothing new a period old");
        assert_eq!(s.observe(1600, 21), Some(9));
    }

    #[test]
    fn revision_keeps_the_last_n_and_never_goes_back() {
        let mut s = Schedule::new(AutoCompaction::Revision { retention: 10 });
        assert_eq!(s.observe(0, 5), None);
        assert_eq!(s.observe(1, 30), Some(20));
        assert_eq!(s.observe(2, 30), None);
        assert_eq!(s.observe(3, 31), Some(21));
        assert!(Schedule::new(AutoCompaction::Off).interval().is_none());
    }
}
