//! ironcd-server: composes the layers into `EtcdServer` (propose → wait →
//! apply, read index, quota and alarms, membership, compaction schedule) and
//! the thin `ironcd` binary that parses etcd's flags.
//!
//! Not built yet: arrives with the server issue.
