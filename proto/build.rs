//! Compiles the wire format's .proto files (exchange.proto and arbiter.proto) with protox (pure
//! Rust, so no system `protoc` is needed) into `$OUT_DIR/valex.v1.rs`: prost messages only, no
//! service code — the transports that carry them live in valex-node.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let files = [root.join("valex/v1/exchange.proto"), root.join("valex/v1/arbiter.proto")];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
