//! ironcd-bench: a load generator for any etcd v3 endpoint (ironcd or etcd),
//! in the spirit of etcd's `benchmark` tool.
//!
//! Not built yet: arrives with the ironcd-bench issue.
