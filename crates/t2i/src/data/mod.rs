//! Data sets: the built-in shapes data set and its analytic checker, and
//! loaders for the papers' data sets in their published layouts.

pub mod checker;
pub mod cub;
pub mod layout;
pub mod prepare;
pub mod shapes;

pub use layout::DataError;
