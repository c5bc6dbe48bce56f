//! Data sets: the built-in shapes data set and its analytic checker, and
//! loaders for the papers' data sets in their published layouts.

pub mod captioned;
pub mod celeba;
pub mod checker;
pub mod coco;
pub mod cub;
pub mod images;
pub mod layout;
pub mod mhp;
pub mod oxford;
pub mod prepare;
pub mod shapes;
pub mod shapes_text;

pub use layout::DataError;

use serde::{Deserialize, Serialize};

/// Part locations of one image, one entry per part (`None` where the part
/// is not visible), as fractions of the image.
pub type KeypointSet = Vec<Option<[f32; 2]>>;

/// Which data set a run trains on (the `[data]` table of every family's
/// config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// `shapes` (built in) or `cub` (a folder in the CUB layout).
    pub name: String,
    /// The real data set's folder (for CUB: the folder holding
    /// `CUB_200_2011/`); empty for shapes.
    pub root: String,
    /// Shapes: training images.
    pub train_size: usize,
    /// Shapes: objects per image at most (1 or 2).
    pub max_objects: u8,
    /// Shapes: probability that each caption after an image's first leaves
    /// attributes out ("a green triangle", "a red one"); see
    /// `shapes::ShapesConfig::partial_captions`. Runs made before it existed
    /// read 0.
    #[serde(default)]
    pub partial_captions: f64,
}

impl DataConfig {
    /// The built-in shapes data set with `train_size` training images.
    pub fn shapes(train_size: usize) -> Self {
        Self {
            name: "shapes".into(),
            root: String::new(),
            train_size,
            max_objects: 1,
            partial_captions: 0.5,
        }
    }

    /// A real data set in the CUB layout (its folder given later).
    pub fn cub() -> Self {
        Self {
            name: "cub".into(),
            ..Self::shapes(0)
        }
    }

    /// Checks the name against `allowed` and that a real data set has its
    /// folder.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), String> {
        if !allowed.contains(&self.name.as_str()) {
            return Err(format!(
                "data set '{}' is not available for this model (available: {})",
                self.name,
                allowed.join(", ")
            ));
        }
        if self.name == "shapes" {
            if !(1..=2).contains(&self.max_objects) {
                return Err(format!(
                    "data.max_objects must be 1 or 2, got {}",
                    self.max_objects
                ));
            }
            if !(0.0..=1.0).contains(&self.partial_captions) {
                return Err(format!(
                    "data.partial_captions must be in [0, 1], got {}",
                    self.partial_captions
                ));
            }
            if self.train_size < 10 {
                return Err(format!(
                    "data.train_size must be at least 10, got {}",
                    self.train_size
                ));
            }
        } else if self.root.is_empty() {
            return Err(format!(
                "--data {} needs its folder: --data-root DIR",
                self.name
            ));
        }
        Ok(())
    }

    /// The real data set's folder.
    pub fn root(&self) -> &std::path::Path {
        std::path::Path::new(&self.root)
    }
}
