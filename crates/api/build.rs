//! Compiles `proto/` with protox (pure Rust: no `protoc` on the machine) into tonic's client
//! and server code, with `BTreeMap`s for maps (deterministic order).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["kiln/v1/control.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .btree_map(".")
        .use_arc_self(true)
        .compile_fds(files)?;
    Ok(())
}
