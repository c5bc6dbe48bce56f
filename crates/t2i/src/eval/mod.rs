//! Metrics. `shapes`: text-image agreement on the built-in data set by the
//! analytic checker (no learned model); `inception`: Inception-v3 (FID and
//! torchvision variants) for image features; `stats`: FID, KID and the
//! Inception Score on feature sets; `report`: the HTML
//! evaluation report of a run.

pub mod inception;
pub mod report;
pub mod shapes;
pub mod stats;
