//! A few of etcd's Prometheus metrics, kept as atomics and rendered as
//! Prometheus text on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the request path bumps.
#[derive(Debug, Default)]
pub struct Metrics {
    /// This member's proposals that were applied.
    pub proposals_succeeded: AtomicU64,
    /// Proposals that failed (timeout, no leader, refused).
    pub proposals_failed: AtomicU64,
    /// Proposals waiting to be applied.
    pub proposals_pending: AtomicU64,
    /// Range requests served.
    pub ranges: AtomicU64,
}

/// Values read at scrape time.
pub struct Gauges {
    /// 1 when a leader is known.
    pub has_leader: bool,
    /// 1 when this member leads.
    pub is_leader: bool,
    /// Applied raft index.
    pub applied_index: u64,
    /// Committed raft index.
    pub committed_index: u64,
    /// Current raft term.
    pub term: u64,
    /// Backend size on disk.
    pub db_size_bytes: u64,
    /// Backend size in use.
    pub db_size_in_use_bytes: u64,
    /// Current mvcc revision.
    pub current_revision: i64,
    /// Compacted revision.
    pub compact_revision: i64,
    /// `--quota-backend-bytes`.
    pub quota_bytes: u64,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            &mut out,
            "etcd_server_has_leader",
            "gauge",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            u8::from(g.has_leader),
        );
        metric(
            &mut out,
            "etcd_server_is_leader",
            "gauge",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            u8::from(g.is_leader),
        );
        metric(
            &mut out,
            "etcd_server_proposals_committed_total",
            "gauge",
            "The total number of consensus proposals committed.",
            g.committed_index,
        );
        metric(
            &mut out,
            "etcd_server_proposals_applied_total",
            "gauge",
            "The total number of consensus proposals applied.",
            g.applied_index,
        );
        metric(
            &mut out,
            "etcd_server_proposals_pending",
            "gauge",
            "The current number of pending proposals to commit.",
            c(&self.proposals_pending),
        );
        metric(
            &mut out,
            "etcd_server_proposals_failed_total",
            "counter",
            "The total number of failed proposals seen.",
            c(&self.proposals_failed),
        );
        metric(
            &mut out,
            "ironcd_server_proposals_succeeded_total",
            "counter",
            "Proposals this member made that were applied.",
            c(&self.proposals_succeeded),
        );
        metric(
            &mut out,
            "ironcd_server_range_total",
            "counter",
            "Range requests served.",
            c(&self.ranges),
        );
        metric(
            &mut out,
            "etcd_server_term",
            "gauge",
            "The current raft term.",
            g.term,
        );
        metric(
            &mut out,
            "etcd_mvcc_db_total_size_in_bytes",
            "gauge",
            "Total size of the underlying database physically allocated in bytes.",
            g.db_size_bytes,
        );
        metric(
            &mut out,
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "gauge",
            "Total size of the underlying database logically in use in bytes.",
            g.db_size_in_use_bytes,
        );
        metric(
            &mut out,
            "etcd_server_quota_backend_bytes",
            "gauge",
            "Current backend storage quota size in bytes.",
            g.quota_bytes,
        );
        metric(
            &mut out,
            "etcd_debugging_mvcc_current_revision",
            "gauge",
            "The current revision of store.",
            g.current_revision,
        );
        metric(
            &mut out,
            "etcd_debugging_mvcc_compact_revision",
            "gauge",
            "The revision of the last compaction in store.",
            g.compact_revision,
        );
        out
    }
}
