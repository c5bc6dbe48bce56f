//! One module per model family of the source papers.

pub mod attngan;
pub mod classifier;
pub mod damsm;
pub mod efficientnet;
pub mod gan_int_cls;
pub mod gawwn;
pub mod inception;
pub mod part_locator;
pub mod stackgan;
pub mod style_t2i;
pub mod stylegan2;
