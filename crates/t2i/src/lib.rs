//! t2i: the classic text-to-image GAN family on libtorch (via tch).
//!
//! Layout: [`data`] (data sets), [`text`] (tokenizer, vocabulary, text
//! encoders), [`layers`] (shared building blocks), [`models`] (one module per
//! model family), [`train`] (optimiser, checkpoints, run folders, training
//! loops), [`eval`] (metrics), [`imageio`] (grids and PNGs), [`bench`].

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod demo;
pub mod device;
pub mod error;
pub mod eval;
pub mod family;
pub mod imageio;
pub mod import;
pub mod layers;
pub mod models;
pub mod ops;
pub mod placement;
pub mod precision;
pub mod progress;
pub mod pth;
pub mod rng;
pub mod text;
pub mod train;

pub use error::{Error, Result};

/// Versions recorded with every run and checkpoint.
pub fn versions() -> String {
    format!(
        "t2i {}, tch 0.26, libtorch 2.13.0",
        env!("CARGO_PKG_VERSION")
    )
}
