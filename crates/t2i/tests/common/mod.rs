//! Helpers for the official-implementation fixtures in `../shared/reference`
//! and the real CUB subset in `../shared/data/cub`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use tch::{nn, Tensor};

/// Reports a missing fixture: with `T2I_REQUIRE_FIXTURES=1` (set by
/// `.ci/run`) the test fails, otherwise it prints SKIPPED and is skipped.
pub fn missing(what: &str) {
    if std::env::var("T2I_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("fixture missing and T2I_REQUIRE_FIXTURES=1: {what}");
    }
    eprintln!("SKIPPED: {what}");
}

/// The fixture folder (`T2I_REFERENCE` or `../shared/reference` next to the
/// repository), or `None` with a message when absent.
pub fn reference_dir() -> Option<PathBuf> {
    let p = std::env::var_os("T2I_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
        });
    if p.is_dir() {
        Some(p)
    } else {
        missing(&format!(
            "reference fixtures not found at {} (set T2I_REFERENCE)",
            p.display()
        ));
        None
    }
}

/// All tensors of a safetensors file by name.
pub fn read(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// Copies every fixture weight into the variable of the same name; every
/// variable must be covered and every shape must agree.
pub fn load_weights(vs: &mut nn::VarStore, weights: &HashMap<String, Tensor>) {
    let vars = vs.variables();
    for (name, var) in &vars {
        let w = weights
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no tensor '{name}'"));
        assert_eq!(var.size(), w.size(), "shape of {name}");
        tch::no_grad(|| var.shallow_clone().copy_(w));
    }
}

/// Largest absolute difference.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a - b).abs().max().double_value(&[])
}

/// Asserts `|a - b| <= 1e-4 + 1e-4 |b|` elementwise.
pub fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes differ");
    let excess = ((a - b).abs() - (b.abs() * 1e-4 + 1e-4))
        .max()
        .double_value(&[]);
    assert!(
        excess <= 0.0,
        "{what}: max abs diff {} exceeds the tolerance",
        max_diff(a, b)
    );
}

/// The real CUB subset (`T2I_CUB` or `../shared/data/cub`), or `None` with
/// a message when absent.
pub fn real_cub() -> Option<PathBuf> {
    let p = std::env::var_os("T2I_CUB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cub")
        });
    if p.join("CUB_200_2011").is_dir() {
        Some(p)
    } else {
        missing(&format!("CUB not found at {} (set T2I_CUB)", p.display()));
        None
    }
}
