//! Generates the etcd v3 wire types and tonic client/server stubs from
//! `proto/*.proto` with the system `protoc` (or `$PROTOC`).

const PROTO_DIR: &str = "proto";

/// Every file is compiled together: prost writes one `<package>.rs` per proto
/// package into `OUT_DIR`, which `src/lib.rs` includes module by module.
const PROTO_FILES: &[&str] = &[
    "proto/kv.proto",
    "proto/auth.proto",
    "proto/rpc.proto",
    "proto/raft_internal.proto",
    "proto/lease.proto",
    "proto/v3election.proto",
    "proto/v3lock.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-env-changed=PROTOC");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(PROTO_FILES, &[PROTO_DIR])?;
    Ok(())
}
