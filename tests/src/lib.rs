//! ironcd-tests: the multi-node harness, fault injection, compatibility
//! suites against etcdctl and the `etcd-client` crate, and a linearizability
//! checker. Each suite is its own test binary under `tests/tests/`.
//!
//! Not built yet: arrives with the raft-node and server issues.
