//! ironcd-api: etcd's gRPC services (KV, Cluster, Maintenance, Watch, Lease,
//! Election and Lock),
//! request validation with etcd's rules, and the one place errors become
//! `tonic::Status` with etcd's exact codes and `etcdserver: …` messages.
//!
//! The services read each request's [`RequestContext`] (auth token, client
//! certificate name, `hasleader`), let the server admit it
//! ([`Admission`]), and call the traits in [`traits`] ([`KvApi`],
//! [`ClusterApi`], [`MaintenanceApi`], [`WatchApi`], [`LeaseApi`]) with it, which `ironcd-server`
//! implements: this crate does
//! no storage and no consensus, and depends only on `ironcd-proto`.
//! Election and Lock are recipes over those same traits, as etcd's
//! concurrency package builds them over a client (`concurrency.rs`).
//! Auth is not built yet and simply not routed, so tonic answers it
//! `Unimplemented` at once.
//! [`gateway`] is etcd's HTTP+JSON gateway (grpc-gateway v1's paths and
//! JSON) over the same services.
//!
//! ```
//! use ironcd_api::EtcdError;
//! let status = tonic::Status::from(EtcdError::EmptyKey);
//! assert_eq!(status.code(), tonic::Code::InvalidArgument);
//! assert_eq!(status.message(), "etcdserver: key is not provided");
//! ```

mod concurrency;
mod context;
mod election;
mod error;
pub mod gateway;
mod lease;
mod lock;
mod service;
pub mod traits;
pub mod validate;
mod watch;
mod watch_grpc;

pub use context::{
    RequestContext, VerifiedClientName, FORWARDED_METADATA_KEY, REQUIRE_LEADER_METADATA_KEY,
    REQUIRE_LEADER_VALUE, TOKEN_METADATA_KEY,
};
pub use error::EtcdError;
pub use service::{Services, GRPC_OVERHEAD_BYTES, MAX_SEND_BYTES};
pub use traits::{
    Admission, ApiResult, ClusterApi, EtcdApi, KvApi, LeaseApi, MaintenanceApi, SnapshotChunks,
    WatchApi, WatchEvents, WatchSession,
};
pub use validate::Limits;
pub use watch::INVALID_WATCH_ID;
