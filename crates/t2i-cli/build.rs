//! Embeds libtorch's folder as an rpath so binaries and tests run without
//! `LD_LIBRARY_PATH`; with the `cuda` feature, forces libtorch_cuda to be
//! linked (tch-rs issue 980: `--as-needed` drops it otherwise).
fn main() {
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
