//! ironcd-api: etcd's gRPC services (KV, Watch, Lease, Cluster, Maintenance,
//! Auth, election, lock), request validation, and the one place that maps
//! errors to `tonic::Status` with etcd's exact codes and `etcdserver: …`
//! messages. It declares the traits the server implements and does no
//! storage or consensus itself.
//!
//! Not built yet: arrives with the server issue.
