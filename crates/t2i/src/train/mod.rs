//! Training: the one run loop and run folders ([`run`]), the optimiser and
//! weight averaging, the embedded-image container, and one training file
//! per model family (its trainer, its config and its [`crate::family`]
//! entry).

pub mod attngan;
pub mod char_cnn_rnn;
pub mod classifier;
pub mod damsm;
pub mod ema;
pub mod embedded;
pub mod gan_int_cls;
pub mod gawwn;
pub mod optim;
pub mod part_locator;
pub mod run;
pub mod stackgan;
pub mod style_t2i;
pub mod stylegan2;
pub mod text_encoder;
