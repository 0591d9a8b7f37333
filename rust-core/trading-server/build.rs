//! Generates the `trading.v1` messages, server and client from `proto/trading.proto` at build
//! time. protoc comes from the `protoc-bin-vendored` crate: a build needs nothing installed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = root.join("trading.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // Messages know their full names (`prost::Name`): the codec names the type it refuses.
    config.enable_type_names();
    // Messages with plain doubles, written by hand to send -0.0 (src/wire.rs).
    for name in ["Bar", "Point", "Pivot", "Signal", "Repair", "MacdPoint"] {
        config.extern_path(
            format!(".trading.v1.{name}"),
            format!("crate::wire::{name}"),
        );
    }
    tonic_prost_build::configure()
        .codec_path("crate::codec::ProtoCodec")
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &[proto.as_path()], &[root.as_path()])?;
    println!("cargo:rerun-if-changed={}", proto.display());
    Ok(())
}
