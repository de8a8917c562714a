//! etcd's Prometheus metrics on `/metrics`: this server's counters (kept
//! here as atomics), the lower layers' process-wide ones (WAL fsyncs,
//! backend commits, raft leader changes, the lessor), the gRPC counters
//! ([`crate::grpc_metrics`]) and values read at scrape time, written in
//! the text exposition format under etcd's names.

use std::sync::atomic::{AtomicU64, Ordering};

use ironcd_metrics::Text;

use crate::ETCD_VERSION;

/// The cluster version etcd reports (major.minor of [`ETCD_VERSION`]).
const CLUSTER_VERSION: &str = "3.5";

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
    /// Leases this member (as leader) revoked because they expired.
    pub leases_expired: AtomicU64,
    /// `/health` answers that were healthy.
    pub health_success: AtomicU64,
    /// `/health` answers that were not.
    pub health_failures: AtomicU64,
    /// `/livez` and `/readyz` check results: see [`HealthChecks`].
    pub checks: HealthChecks,
}

/// The result counts of each `/livez` and `/readyz` check, as etcd's
/// `etcd_server_healthchecks_total{type,name,status}` and
/// `etcd_server_healthcheck{type,name}` (1 when it last passed).
#[derive(Debug, Default)]
pub struct HealthChecks {
    /// Per (type, name): passes, failures, and whether the last passed.
    counts: [[AtomicU64; 3]; CHECKS.len()],
}

/// Every (type, name) of a `/livez` or `/readyz` check, as etcd names them.
pub const CHECKS: [(&str, &str); 5] = [
    ("livez", "serializable_read"),
    ("readyz", "data_corruption"),
    ("readyz", "serializable_read"),
    ("readyz", "linearizable_read"),
    ("readyz", "non_learner"),
];

impl HealthChecks {
    /// Records one run of check (`kind`, `name`).
    pub fn record(&self, kind: &str, name: &str, passed: bool) {
        if let Some(i) = CHECKS.iter().position(|c| *c == (kind, name)) {
            let c = &self.counts[i];
            c[usize::from(!passed)].fetch_add(1, Ordering::Relaxed);
            c[2].store(u64::from(passed), Ordering::Relaxed);
        }
    }
}

/// Values read at scrape time.
pub struct Gauges {
    /// This member's id.
    pub member_id: u64,
    /// 1 when a leader is known.
    pub has_leader: bool,
    /// 1 when this member leads.
    pub is_leader: bool,
    /// 1 when this member is a learner.
    pub is_learner: bool,
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
    /// Keys that exist at the current revision.
    pub keys: u64,
    /// `--quota-backend-bytes`.
    pub quota_bytes: u64,
    /// Watchers on the store.
    pub watchers: u64,
    /// Watch streams open.
    pub watch_streams: u64,
    /// Watchers behind the current revision (unsynced or victims).
    pub slow_watchers: u64,
    /// Leases the lessor holds.
    pub leases: u64,
}

/// Reads the calling process's resident memory and open descriptors from
/// `/proc` (0 where it is not there), as Go's process collector does.
fn process_stats() -> (u64, u64) {
    const PAGE_BYTES: u64 = 4096;
    let resident = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * PAGE_BYTES);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (resident, fds)
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self, g: &Gauges) -> String {
        let mut t = Text::default();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.server(&mut t, g, c);
        Self::disk(&mut t);
        Self::network(&mut t);
        self.mvcc(&mut t, g);
        self.lease(&mut t, g);
        crate::grpc_metrics::render(&mut t);
        let (resident, fds) = process_stats();
        t.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            &[],
            resident,
        );
        t.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            &[],
            fds,
        );
        t.finish()
    }

    fn server(&self, t: &mut Text, g: &Gauges, c: impl Fn(&AtomicU64) -> u64) {
        let id = format!("{:x}", g.member_id);
        t.gauge(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            &[("server_id", &id)],
            1,
        );
        t.gauge(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            &[("cluster_version", CLUSTER_VERSION)],
            1,
        );
        t.gauge(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            &[("server_version", ETCD_VERSION)],
            1,
        );
        t.gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            &[],
            u8::from(g.has_leader),
        );
        t.gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            &[],
            u8::from(g.is_leader),
        );
        t.gauge(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            &[],
            u8::from(g.is_learner),
        );
        t.counter(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
            &[],
            ironcd_raft_node::metrics::LEADER_CHANGES.get(),
        );
        t.gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            &[],
            g.committed_index,
        );
        t.gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            &[],
            g.applied_index,
        );
        t.gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            &[],
            c(&self.proposals_pending),
        );
        t.counter(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
            &[],
            c(&self.proposals_failed),
        );
        t.counter(
            "ironcd_server_proposals_succeeded_total",
            "Proposals this member made that were applied.",
            &[],
            c(&self.proposals_succeeded),
        );
        t.counter(
            "ironcd_server_range_total",
            "Range requests served.",
            &[],
            c(&self.ranges),
        );
        t.gauge("etcd_server_term", "The current raft term.", &[], g.term);
        t.gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            &[],
            g.quota_bytes,
        );
        t.counter(
            "etcd_server_health_success",
            "The total number of successful health checks",
            &[],
            c(&self.health_success),
        );
        t.counter(
            "etcd_server_health_failures",
            "The total number of failed health checks",
            &[],
            c(&self.health_failures),
        );
        for (i, (kind, name)) in CHECKS.iter().enumerate() {
            t.gauge(
                "etcd_server_healthcheck",
                "The result of each kind of healthcheck.",
                &[("name", name), ("type", kind)],
                c(&self.checks.counts[i][2]),
            );
        }
        for (i, (kind, name)) in CHECKS.iter().enumerate() {
            for (status, at) in [("success", 0), ("error", 1)] {
                t.counter(
                    "etcd_server_healthchecks_total",
                    "The total number of each kind of healthcheck.",
                    &[("name", name), ("status", status), ("type", kind)],
                    c(&self.checks.counts[i][at]),
                );
            }
        }
    }

    fn disk(t: &mut Text) {
        t.histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            &[],
            &ironcd_raft_node::metrics::WAL_FSYNC_SECONDS,
        );
        // A gauge in etcd, though it only grows.
        t.gauge(
            "etcd_disk_wal_write_bytes_total",
            "Total number of bytes written in WAL.",
            &[],
            ironcd_raft_node::metrics::WAL_WRITE_BYTES.get(),
        );
        t.histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            &[],
            &ironcd_backend::metrics::COMMIT_SECONDS,
        );
    }

    fn network(t: &mut Text) {
        for (peer, rtt) in ironcd_raft_node::metrics::peer_rtts() {
            t.histogram(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
                &[("To", &format!("{peer:x}"))],
                &rtt,
            );
        }
    }

    fn mvcc(&self, t: &mut Text, g: &Gauges) {
        t.gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            &[],
            g.db_size_bytes,
        );
        t.gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            &[],
            g.db_size_in_use_bytes,
        );
        t.gauge(
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys.",
            &[],
            g.keys,
        );
        t.gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            &[],
            g.current_revision,
        );
        t.gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            &[],
            g.compact_revision,
        );
        t.gauge(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
            &[],
            g.watchers,
        );
        t.gauge(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            &[],
            g.watch_streams,
        );
        t.gauge(
            "etcd_debugging_mvcc_slow_watcher_total",
            "Total number of unsynced slow watchers.",
            &[],
            g.slow_watchers,
        );
    }

    fn lease(&self, t: &mut Text, g: &Gauges) {
        use ironcd_lease::metrics as lease;
        t.counter(
            "etcd_debugging_lease_granted_total",
            "The total number of granted leases.",
            &[],
            lease::GRANTED.get(),
        );
        t.counter(
            "etcd_debugging_lease_revoked_total",
            "The total number of revoked leases.",
            &[],
            lease::REVOKED.get(),
        );
        t.counter(
            "etcd_debugging_lease_renewed_total",
            "The number of renewed leases seen by the leader.",
            &[],
            lease::RENEWED.get(),
        );
        t.histogram(
            "etcd_debugging_lease_ttl_total",
            "Bucketed histogram of lease TTLs.",
            &[],
            &lease::TTL_SECONDS,
        );
        t.counter(
            "etcd_debugging_server_lease_expired_total",
            "The total number of expired leases.",
            &[],
            self.leases_expired.load(Ordering::Relaxed),
        );
        t.gauge(
            "ironcd_lease_total",
            "Leases the lessor holds.",
            &[],
            g.leases,
        );
    }
}
