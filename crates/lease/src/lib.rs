//! ironcd-lease: etcd's lessor.
//!
//! A lease is an id with a TTL; keys put with it are deleted when it is
//! revoked, by a client or by expiry. [`Lessor`] keeps every lease, the
//! keys attached to each, and — on the primary, the leader's lessor, only —
//! a min-heap of expiries. It does not depend on the mvcc store: revoking
//! deletes the keys through a [`RangeDeleter`] that the server implements
//! with one mvcc write txn, so all of a lease's keys go in one revision
//! (one watch response). Records live in the backend's `lease` bucket in
//! etcd's `leasepb.Lease` encoding ([`record`]).
//!
//! What goes through the log (grant, revoke, checkpoint, attachments) is
//! applied on every member; renewals and expiry are the primary's alone.
//! The server calls [`Lessor::tick`] on the leader every
//! [`TICK_INTERVAL`] and proposes revokes for what it hands out, at most
//! [`LessorConfig::revoke_rate_per_s`] per second, so a mass expiry does
//! not stall the cluster.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ironcd_backend::{Backend, BackendConfig, MemBackend};
//! use ironcd_lease::{Lessor, LessorConfig, ManualClock};
//!
//! let clock = Arc::new(ManualClock::new());
//! let lessor = Lessor::new(LessorConfig::default(), clock.clone());
//! let backend = MemBackend::open_in_memory(BackendConfig::default());
//! lessor.promote(Duration::ZERO);
//! lessor.grant(&mut backend.batch_tx(), 7, 10).unwrap();
//! lessor.attach_key(b"service/a", 7);
//! clock.advance(Duration::from_secs(11));
//! assert_eq!(lessor.tick(500).expired, vec![7]);
//! ```

mod clock;
mod error;
mod lessor;
pub mod metrics;
pub mod record;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use error::{Error, Result};
pub use lessor::{
    Granted, Lessor, LessorConfig, RangeDeleter, Renewed, Tick, TimeToLive,
    DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_EXPIRY_RETRY, DEFAULT_REVOKE_RATE_PER_S, FEW_KEYS,
    HEAP_SLACK_ENTRIES, MAX_CHECKPOINT_BATCH, MAX_LEASE_TTL_S,
};

/// A lease id (etcd's `LeaseID`).
pub type LeaseId = i64;
/// "No lease".
pub const NO_LEASE: LeaseId = 0;
/// How often the leader looks for expired leases and due checkpoints
/// (etcd's lessor loop runs every 500 ms).
pub const TICK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// Batches of expired leases waiting for their revoke proposals at most
/// (etcd's `expiredC` capacity); a batch that finds the channel full is
/// handed out again after the expiry retry.
pub const EXPIRED_CHANNEL_CAPACITY: usize = 16;
