//! ironcd-server: composes the layers into [`EtcdServer`] and the thin
//! `ironcd` binary that parses etcd's flags.
//!
//! * Writes (Put, DeleteRange, write Txns, Compact, Alarm, membership
//!   records) are encoded as `InternalRaftRequest`s, proposed through
//!   `ironcd-raft-node`, and answered when this member's applier
//!   ([`apply`]) has applied them. The applier writes each entry's effects
//!   and its index (`consistent_index`) in one backend batch, so a restart
//!   neither re-applies nor loses an entry.
//! * Linearizable reads wait for a ReadIndex to be applied, then read the
//!   local store; serializable reads read it at once.
//! * Membership changes are raft configuration changes carrying the
//!   member's record; a starting member publishes its name and client URLs.
//! * HTTP `/health`, `/version` and `/metrics` share the client port with
//!   gRPC.
//!
//! Depends on api, raft-node, mvcc and backend; `main.rs` only parses flags
//! and calls [`start::start`].

mod apply;
mod cluster_api;
mod coalesce;
mod codec;
pub mod compactor;
pub mod config;
mod error;
pub mod failpoint;
pub mod flags;
mod grpc_metrics;
mod http;
mod kv;
mod kv_api;
mod lease_api;
mod lease_expiry;
mod listen;
pub mod logging;
mod maintenance_api;
mod members;
mod metrics;
pub mod restore;
pub mod run;
mod server;
mod snapshot_file;
pub mod start;
mod state;
mod storage;
mod tls;
mod watch_api;

pub use config::ServerConfig;
pub use error::{Error, Result};
pub use server::EtcdServer;
pub use start::{start, Running};

/// The etcd API version ironcd speaks (`--version`).
pub const ETCD_API_VERSION: &str = "3.5";
/// The etcd version ironcd reports as its own and its cluster's (Status,
/// `/version`, Snapshot).
pub const ETCD_VERSION: &str = "3.5.0";
