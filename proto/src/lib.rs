//! etcd v3 wire types and gRPC stubs for ironcd.
//!
//! The `.proto` files in `proto/` are ironcd's own text, but their contract —
//! proto packages, message, field and enum names, field numbers and types,
//! services, methods and which of them stream — is etcd's (3.5, plus the
//! additive 3.6 fields), so etcdctl, Go's clientv3, Rust's `etcd-client` and
//! every other etcd v3 client talk to ironcd unchanged. `build.rs` turns them
//! into prost messages and tonic clients and servers, one module per proto
//! package:
//!
//! | module           | contents                                                         |
//! |------------------|------------------------------------------------------------------|
//! | [`etcdserverpb`] | KV, Watch, Lease, Cluster, Maintenance, Auth; `InternalRaftRequest` |
//! | [`mvccpb`]       | `KeyValue`, `Event`                                              |
//! | [`authpb`]       | `User`, `Role`, `Permission`                                     |
//! | [`leasepb`]      | the persisted `Lease` record                                     |
//! | [`v3electionpb`] | the Election service                                             |
//! | [`v3lockpb`]     | the Lock service                                                 |
//!
//! Left out on purpose: `KV.RangeStream` (not in any released etcd), etcd
//! 3.6's test-only `DowngradeVersionTestRequest`, and the v2 `Request` field
//! of `InternalRaftRequest` (the replicated log is ironcd's own).
//!
//! **Architecture invariant:** this crate depends on no other ironcd crate;
//! every other crate may depend on it. It holds generated code only — no
//! validation, no conversions, no `tonic::Status` mapping (that is `api`'s).
//!
//! ```
//! use ironcd_proto::etcdserverpb::PutRequest;
//! use prost::Message;
//!
//! let put = PutRequest {
//!     key: b"/registry/pods/web-0".to_vec(),
//!     value: b"running".to_vec(),
//!     lease: 0x694d_7a1b_0c3e_2f01,
//!     prev_kv: true,
//!     ..PutRequest::default()
//! };
//! let bytes = put.encode_to_vec();
//! // Field 1 (key), wire type 2 (length-delimited), as etcd encodes it.
//! assert_eq!(bytes[0], (1 << 3) | 2);
//! assert_eq!(PutRequest::decode(bytes.as_slice()).unwrap(), put);
//! ```

/// Declares the module holding one proto package's generated code. The lints
/// it relaxes are relaxed for generated code only.
macro_rules! generated_module {
    ($(#[$meta:meta])* $name:ident = $package:literal) => {
        $(#[$meta])*
        #[allow(missing_docs, clippy::all, rust_2018_idioms)]
        pub mod $name {
            tonic::include_proto!($package);
        }
    };
}

generated_module!(
    /// Package `etcdserverpb`: the client-facing services (`KV`, `Watch`,
    /// `Lease`, `Cluster`, `Maintenance`, `Auth`), their messages, and the
    /// replicated `InternalRaftRequest`.
    etcdserverpb = "etcdserverpb"
);
generated_module!(
    /// Package `mvccpb`: `KeyValue` (also the stored form in the `key`
    /// bucket) and watch `Event`.
    mvccpb = "mvccpb"
);
generated_module!(
    /// Package `authpb`: `User`, `Role` and `Permission` as stored in the auth
    /// buckets.
    authpb = "authpb"
);
generated_module!(
    /// Package `leasepb`: the persisted `Lease` record and the forwarded
    /// TimeToLive envelope.
    leasepb = "leasepb"
);
generated_module!(
    /// Package `v3electionpb`: the `Election` service.
    v3electionpb = "v3electionpb"
);
generated_module!(
    /// Package `v3lockpb`: the `Lock` service.
    v3lockpb = "v3lockpb"
);
