//! With the `control` feature, compiles the control API (proto/valex/v1/control.proto) with protox
//! (pure Rust, so no system `protoc` is needed) into `$OUT_DIR/valex.v1.rs`: messages plus the tonic
//! client and server. control.proto imports nothing, so its descriptor set holds only its own file
//! (and it is independent of valex-proto's wire format, which shares the `valex.v1` package).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "control")]
    compile_control()?;
    Ok(())
}

#[cfg(feature = "control")]
fn compile_control() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from("proto");
    let file = root.join("valex/v1/control.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The CLI prints these with serde_json (`--json`); bytes fields are written as hex.
        .type_attribute(".valex.v1", "#[derive(serde::Serialize)]")
        .type_attribute(".valex.v1.ReceiptView.evidence", "#[serde(rename_all = \"snake_case\")]")
        .type_attribute(".valex.v1.StartExchangeRequest.want", "#[serde(rename_all = \"snake_case\")]")
        .field_attribute(".valex.v1.ValueView.payload", "#[serde(serialize_with = \"crate::control::convert::serialize_hex\")]")
        .compile_fds(descriptors)?;
    Ok(())
}
