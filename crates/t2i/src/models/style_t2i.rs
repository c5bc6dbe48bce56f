//! StyleT2I (Li et al., CVPR 2022): the Text-to-Direction network (sec. 4)
//! that moves a StyleGAN2 latent along a sentence direction, s = T2D(t, w),
//! image = G(w + s). As in the reference code (`Sentence2DeltaLatent`), an
//! MLP with ReLUs reads the sentence feature beside w and writes one
//! direction per style layer of w+ (the paper's `wp` latent space); the
//! sentence feature here comes from the run's frozen text encoder.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

/// Sizes of the Text-to-Direction network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    /// Sentence-feature size of the text encoder.
    pub text_dim: i64,
    /// Size of w of the backbone.
    pub style_dim: i64,
    /// Entries of w+ of the backbone (one direction each).
    pub n_latent: i64,
    /// Width of the hidden layers.
    pub hidden: i64,
    /// Linear layers in all (>= 2; 3 in the reference).
    pub layers: i64,
}

/// `T2D(t, w)`: an MLP on [t, w].
#[derive(Debug)]
pub struct TextToDirection {
    pub config: DirectionConfig,
    mlp: nn::Sequential,
}

impl TextToDirection {
    pub fn new(p: &nn::Path, config: &DirectionConfig) -> Self {
        let c = config;
        let mut mlp = nn::seq();
        let mut din = c.text_dim + c.style_dim;
        for i in 0..c.layers {
            let last = i == c.layers - 1;
            let dout = if last {
                c.n_latent * c.style_dim
            } else {
                c.hidden
            };
            let cfg = nn::LinearConfig {
                // the last layer starts small: w + s begins near w, where
                // the backbone draws well
                ws_init: if last {
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 0.01 / (din as f64).sqrt(),
                    }
                } else {
                    nn::Init::Kaiming {
                        dist: nn::init::NormalOrUniform::Uniform,
                        fan: nn::init::FanInOut::FanIn,
                        non_linearity: nn::init::NonLinearity::ReLU,
                    }
                },
                ..Default::default()
            };
            mlp = mlp.add(nn::linear(p / "mlp" / i, din, dout, cfg));
            if !last {
                mlp = mlp.add_fn(|x| x.relu());
            }
            din = dout;
        }
        Self {
            config: c.clone(),
            mlp,
        }
    }

    /// The sentence direction s in w+.
    ///
    /// # Shapes
    /// `t`: [batch, text_dim], `w`: [batch, style_dim] -> [batch, n_latent, style_dim]
    pub fn forward(&self, t: &Tensor, w: &Tensor) -> Tensor {
        let b = t.size()[0];
        self.mlp.forward(&Tensor::cat(&[t, w], 1)).reshape([
            b,
            self.config.n_latent,
            self.config.style_dim,
        ])
    }
}
