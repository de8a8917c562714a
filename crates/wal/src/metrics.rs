//! The WAL's latency histogram under etcd's name, for the server's
//! `/metrics`. Process-wide, as etcd's is.

use ironcd_metrics::{exponential_buckets, Counter, Histogram};

/// etcd's WAL buckets: 1 ms doubling to about 8 s.
pub static FSYNC_BUCKETS: [f64; 14] = exponential_buckets(0.001, 2.0);
/// `etcd_disk_wal_fsync_duration_seconds`: each fdatasync of the tail
/// segment that makes appended records durable.
pub static FSYNC_SECONDS: Histogram = Histogram::new(&FSYNC_BUCKETS);
/// `etcd_disk_wal_write_bytes_total`: record bytes written.
pub static WRITE_BYTES: Counter = Counter::new();
