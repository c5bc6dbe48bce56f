//! One module per model family of the source papers.

pub mod damsm;
pub mod gan_int_cls;
pub mod stackgan;
