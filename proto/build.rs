//! Generates the prost types from `proto/` with protox, so no `protoc` is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_file = "proto/influx2td/v1/influx2td.proto";
    println!("cargo:rerun-if-changed={proto_file}");
    let file_descriptors = protox::compile([proto_file], ["proto"])?;
    prost_build::Config::new().compile_fds(file_descriptors)?;
    Ok(())
}
