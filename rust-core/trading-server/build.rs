//! Generates the `trading.v1` messages, server and client from `proto/trading.proto` at build
//! time. protoc comes from the `protoc-bin-vendored` crate: a build needs nothing installed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = root.join("trading.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &[proto.as_path()], &[root.as_path()])?;
    println!("cargo:rerun-if-changed={}", proto.display());
    Ok(())
}
