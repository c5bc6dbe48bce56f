//! Data sets: the built-in shapes data set and its analytic checker; the
//! papers' real data sets come with their loaders.

pub mod checker;
pub mod shapes;
