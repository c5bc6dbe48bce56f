//! Metrics. `captions`: free-form captions scored on what they name;
//! `control`: where a layout-conditioned model (GAWWN) draws; `dataset`: a generator's samples on a real data set; `shapes`: text-image agreement on the built-in data set by the
//! analytic checker (no learned model); `stats`: FID, KID and the
//! Inception Score on feature sets; `rprecision`: R-precision; `report`: the HTML
//! evaluation report of a run.

pub mod captions;
pub mod control;
pub mod dataset;
pub mod report;
pub mod rprecision;
pub mod run_report;
pub mod shapes;
pub mod stats;
