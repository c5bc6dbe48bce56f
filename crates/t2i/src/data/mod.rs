//! Data sets: the built-in shapes data set and its analytic checker, and
//! loaders for the papers' data sets in their published layouts.

pub mod captioned;
pub mod celeba;
pub mod checker;
pub mod coco;
pub mod cub;
pub mod layout;
pub mod mhp;
pub mod oxford;
pub mod prepare;
pub mod shapes;

pub use layout::DataError;
