//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed.
//!
//! - exchange.proto and arbiter.proto (the wire format) → `$OUT_DIR/valex.v1.rs`, prost messages only;
//! - control.proto (the local control API) → `$OUT_DIR/control/valex.v1.rs`, messages plus the tonic
//!   client and server. It imports nothing, so its descriptor set holds only its own file.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let files = [root.join("valex/v1/exchange.proto"), root.join("valex/v1/arbiter.proto")];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;

    compile_control(&root)?;
    Ok(())
}

/// The control API: its own output directory, because it shares the `valex.v1` package (and so the
/// generated file name) with the wire format.
fn compile_control(root: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let file = root.join("valex/v1/control.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?).join("control");
    std::fs::create_dir_all(&out_dir)?;
    let descriptors = protox::compile([&file], [root])?;
    tonic_prost_build::configure()
        .out_dir(&out_dir)
        .build_client(true)
        .build_server(true)
        // The CLI prints these with serde_json (`--json`); bytes fields are written as hex.
        .type_attribute(".valex.v1", "#[derive(serde::Serialize)]")
        .type_attribute(".valex.v1.ReceiptView.evidence", "#[serde(rename_all = \"snake_case\")]")
        .type_attribute(".valex.v1.ExchangeCommand.want", "#[serde(rename_all = \"snake_case\")]")
        .field_attribute(".valex.v1.ValueView.payload", "#[serde(serialize_with = \"crate::control::serialize_hex\")]")
        .compile_fds(descriptors)?;
    Ok(())
}
