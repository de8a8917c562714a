//! The lessor's counters, under etcd's names (`etcd_debugging_lease_*`),
//! for the server's `/metrics`. Process-wide, as etcd's are.

use ironcd_metrics::{exponential_buckets, Counter, Histogram};

/// Leases granted (applied on this member).
pub static GRANTED: Counter = Counter::new();
/// Leases revoked, by a client or by expiry (applied on this member).
pub static REVOKED: Counter = Counter::new();
/// Leases renewed by keep-alives (the primary's).
pub static RENEWED: Counter = Counter::new();

/// etcd's buckets for granted TTLs, in seconds: 1 s to about 23 days.
pub static TTL_BUCKETS: [f64; 14] = exponential_buckets(1.0, 2.0);
/// The TTLs of granted leases.
pub static TTL_SECONDS: Histogram = Histogram::new(&TTL_BUCKETS);
