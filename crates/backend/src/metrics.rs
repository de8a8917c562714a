//! The backend's commit latency under etcd's name, for the server's
//! `/metrics`. Process-wide, as etcd's is.

use ironcd_metrics::{exponential_buckets, Histogram};

/// etcd's backend buckets: 1 ms doubling to about 8 s.
pub static COMMIT_BUCKETS: [f64; 14] = exponential_buckets(0.001, 2.0);
/// `etcd_disk_backend_commit_duration_seconds`: each write of a batch of
/// published transactions into the engine.
pub static COMMIT_SECONDS: Histogram = Histogram::new(&COMMIT_BUCKETS);
