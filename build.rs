//! Compiles `proto/` with protox (no system `protoc`) into the gRPC code and the descriptor set
//! that server reflection serves.

use std::{env, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");

    let files = [
        "proto/referral/v1/common.proto",
        "proto/referral/v1/hotline_intake.proto",
        "proto/referral/v1/emergency_intake.proto",
        "proto/referral/v1/case_tracking.proto",
        "proto/referral/v1/directory.proto",
        "proto/referral/v1/dispatch.proto",
        "proto/referral/v1/audit.proto",
        "proto/referral/v1/crisis.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("referral_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // A request that does not decode is INVALID_ARGUMENT, not prost's INTERNAL.
        .codec_path("crate::grpc::codec::RequestCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
