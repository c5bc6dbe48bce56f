//! Embeds libtorch's folder as an rpath so binaries and tests run without
//! `LD_LIBRARY_PATH`; with the `cuda` feature, forces libtorch_cuda to be
//! linked (tch-rs issue 980: `--as-needed` drops it otherwise); compiles
//! `csrc/autocast.cpp`, libtorch's autocast for `--precision bf16`, and
//! `csrc/flops.cpp`, the FLOP count of `t2i bench`, and `csrc/ops.cpp`, the
//! operations tch does not reach (`ops.rs`), and `csrc/alloc.cpp`, the
//! caching CPU allocator.
use std::path::PathBuf;

fn main() {
    let lib = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from);
    if let Some(lib) = &lib {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
    }
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/flops.cpp");
    println!("cargo:rerun-if-changed=csrc/ops.cpp");
    println!("cargo:rerun-if-changed=csrc/alloc.cpp");
    let root = lib
        .as_deref()
        .and_then(|l| l.parent())
        .map(PathBuf::from)
        .expect("torch-sys names libtorch's lib folder (DEP_TCH_LIBTORCH_LIB)");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("csrc/autocast.cpp")
        .file("csrc/flops.cpp")
        .file("csrc/ops.cpp")
        .file("csrc/alloc.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        // as libtorch was built: some of its classes' layouts depend on it
        .define("NDEBUG", None)
        .flag_if_supported("-w")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .compile("t2i_shim");
}
