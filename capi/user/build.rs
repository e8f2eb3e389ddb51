//! The shared library's soname, so it installs as libvmspace.so.0.

fn main() {
    println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,libvmspace.so.0");
    // Where the headers are, for crates that compile C against them.
    let include = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../include");
    println!("cargo::metadata=include={}", include.display());
    println!("cargo::rerun-if-changed=build.rs");
}
