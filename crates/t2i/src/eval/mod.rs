//! Metrics. `shapes`: text-image agreement on the built-in data set by the
//! analytic checker (no learned model).

pub mod shapes;
