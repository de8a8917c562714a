//! ironcd-raft-node: consensus for ironcd on raft-rs 0.7 — the Ready loop,
//! durable log storage on `ironcd-wal`, a peer transport over gRPC, read
//! index, membership changes and snapshots.
//!
//! It replicates opaque byte strings and never decodes a KV request. It must
//! not depend on mvcc, backend or any API crate: the server composes it with
//! the applier.
//!
//! # Shape
//!
//! * [`RaftNode::start`] opens `<member-dir>/{wal,snap}` (see the `disk`
//!   module for the layout) and runs the Ready loop on a thread of its own
//!   (module `driver` documents the order of IO in each turn).
//! * [`RaftNode::propose`] resolves once the entry is committed;
//!   [`RaftNode::read_index`] gives the index a linearizable read waits for;
//!   [`RaftNode::propose_conf_change`], [`RaftNode::transfer_leader`],
//!   [`RaftNode::status`].
//! * The applier reads an [`ApplyStream`] of [`Apply`] items in log order,
//!   reports what it has made durable with
//!   [`RaftNode::report_durable_applied`], and answers
//!   [`Apply::SnapshotDue`] with [`RaftNode::create_snapshot`]. On restart it
//!   passes its durable index back to `start`.
//! * Messages travel through a [`Transport`]: [`GrpcTransport`] in
//!   production, wrapped by [`FaultyTransport`] in tests.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ironcd_raft_node::{Apply, Config, GrpcTransport, RaftNode, TransportConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::new(1, 0x1000); // a one-member cluster
//! let transport = GrpcTransport::new(1, 0x1000, [], TransportConfig::default());
//! transport.serve_on("127.0.0.1:2380".parse()?).await?;
//! let (node, mut applies) = RaftNode::start(config, "data/member".as_ref(), Arc::new(transport), 0)?;
//! let index = node.propose(b"put a 1".to_vec()).await?;
//! while let Some(item) = applies.next().await {
//!     if let Apply::Entries(entries) = item {
//!         if entries.iter().any(|e| e.index == index) { break; }
//!     }
//! }
//! node.stop().await;
//! # Ok(()) }
//! ```

mod codec;
mod conf;
mod config;
mod disk;
mod driver;
mod error;
mod grpc;
mod logger;
pub mod metrics;
mod node;
mod storage;
mod transport;

/// The peer protocol's generated types (`proto/peer.proto`).
#[allow(missing_docs)]
pub mod pb {
    tonic::include_proto!("ironcdpeerpb");
}

pub use conf::{AppliedConfChange, ConfChange, ConfChangeRequest, Membership};
pub use config::{
    Config, DEFAULT_ELECTION_TICKS, DEFAULT_HEARTBEAT_TICKS, DEFAULT_MAX_PROPOSAL_BYTES,
    DEFAULT_MAX_SNAPSHOT_BYTES, DEFAULT_SNAPSHOT_CATCHUP_ENTRIES, DEFAULT_SNAPSHOT_COUNT,
    DEFAULT_TICK_MS,
};
pub use error::{Error, Result};
pub use grpc::{GrpcTransport, PeerServerHandle, PeerService, SnapshotSource, TransportConfig};
pub use node::{
    Apply, ApplyStream, Committed, CommittedKind, PeerProgress, RaftNode, ReplicationState, Role,
    SnapshotData, SnapshotPayload, Status,
};
pub use transport::{Faults, FaultyTransport, Inbox, Transport};

/// raft-rs's message type, as transports carry it.
pub use raft::eraftpb::Message as RaftMessage;
/// How sending a snapshot ended, as transports report it.
pub use raft::SnapshotStatus;
