//! Generates the etcd v3 wire types and tonic client/server stubs from
//! `proto/*.proto` with the system `protoc` (or `$PROTOC`), and, from the
//! same descriptors, the serde impls of the JSON gateway (`pbjson-build`).

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
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors_path = out_dir.join("descriptors.bin");
    tonic_prost_build::configure()
        // prost's wire format through a scratch Vec (see src/codec.rs).
        .codec_path("crate::codec::VecCodec")
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptors_path)
        .compile_protos(PROTO_FILES, &[PROTO_DIR])?;
    // JSON as etcd's grpc-gateway writes it (`JSONPb{OrigName: true}`):
    // proto field names, defaults omitted, enums by name, 64-bit integers
    // as strings, bytes as base64. Unknown fields are skipped on input, as
    // grpc-gateway v1's unmarshaler does.
    let descriptors = std::fs::read(&descriptors_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".etcdserverpb",
            ".mvccpb",
            ".authpb",
            ".leasepb",
            ".v3electionpb",
            ".v3lockpb",
        ])?;
    Ok(())
}
