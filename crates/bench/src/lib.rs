//! ironcd-bench: a load generator for any etcd v3 endpoint (ironcd or etcd),
//! in the spirit of etcd's `benchmark` tool.
//!
//! It is a client only: it speaks etcd's gRPC API through the `etcd-client`
//! crate, so the same binary measures ironcd and etcd alike.
//!
//! - [`cli`]: the command line (global options, one workload).
//! - [`workloads`]: what each workload sends, and [`workloads::run`].
//! - [`driver`]: connections, request tickets, pacing, progress.
//! - [`report`]: latency statistics and etcd's summary layout.

pub mod cli;
pub mod driver;
pub mod keys;
pub mod pacer;
pub mod report;
pub mod workloads;

pub use cli::{Cli, Global, Workload};
pub use report::Report;
pub use workloads::run;
