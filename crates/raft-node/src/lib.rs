//! ironcd-raft-node: consensus on raft-rs — the Ready loop, peer transport over
//! gRPC, log storage on `ironcd-wal`, read index, membership changes. It
//! replicates opaque byte strings and never decodes a KV request.
//!
//! Not built yet: arrives with the raft-node issue.
