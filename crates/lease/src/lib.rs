//! ironcd-lease: the lessor — leases with TTLs, a min-heap of expiries,
//! checkpoints, and a `RangeDeleter` trait that the server implements with an
//! mvcc write txn (lease does not depend on mvcc).
//!
//! Not built yet: arrives with the lease issue.
