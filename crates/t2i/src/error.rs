//! The library's error type: one line that names the problem.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// (the I/O error is part of the message, not a separate source, so
    /// a report prints it once)
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{0}")]
    Checkpoint(String),
    /// Named `problem`, not `source`: the message already says it, and a
    /// source would print it twice in an error chain.
    #[error("caption {caption:?}: {problem}")]
    Caption {
        caption: String,
        problem: crate::text::CaptionError,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Device(String),
    /// A box or keypoints the model cannot draw at.
    #[error("{0}")]
    Layout(String),
    #[error("{0}")]
    Image(String),
    #[error(transparent)]
    Shapes(#[from] crate::data::shapes::ShapesError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            cause: source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
