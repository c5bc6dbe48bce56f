//! StyleT2I (Li et al., CVPR 2022): the Text-to-Direction network (sec. 4)
//! that moves a StyleGAN2 latent along a sentence direction, s = T2D(t, w),
//! image = G(w + s). As in the reference code (`Sentence2DeltaLatent`), an
//! MLP with ReLUs reads the sentence feature beside w and writes one
//! direction per style layer of w+ (the paper's `wp` latent space); the
//! sentence feature here comes from the run's frozen text encoder.
//!
//! The Attribute-to-Direction network (sec. 5.1), d_a = A2D(a, w), is the
//! same network fed one attribute phrase ("red", "triangle") instead of a
//! sentence; Compositional Attribute Adjustment (sec. 5.3) adds to s every
//! d_a of the sentence's attributes that s disagrees with.

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

/// Words that end a clause for [`attributes_of`].
const CLAUSE_BREAKS: [&str; 5] = ["and", "with", "but", "while", "has"];

/// The attribute phrases of `caption` found in `vocabulary`, in vocabulary
/// order, each once. A one-word attribute matches as a whole word; a
/// phrase ("red head") matches its words in a row, or all of them within
/// one clause ("the head is red", clauses split at punctuation and at
/// "and", "with", "but", "while", "has").
pub fn attributes_of(caption: &str, vocabulary: &[String]) -> Vec<String> {
    let lower = caption.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let padded = format!(" {} ", words.join(" "));
    let mut clauses: Vec<Vec<&str>> = Vec::new();
    for part in lower.split(|c: char| ",.;:!?".contains(c)) {
        let mut clause = Vec::new();
        for w in part
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if CLAUSE_BREAKS.contains(&w) {
                clauses.push(std::mem::take(&mut clause));
            } else {
                clause.push(w);
            }
        }
        clauses.push(clause);
    }
    vocabulary
        .iter()
        .filter(|a| {
            let a = a.to_lowercase();
            let parts: Vec<&str> = a.split_whitespace().collect();
            padded.contains(&format!(" {} ", parts.join(" ")))
                || (parts.len() > 1 && clauses.iter().any(|c| parts.iter().all(|p| c.contains(p))))
        })
        .cloned()
        .collect()
}

/// Compositional Attribute Adjustment (sec. 5.3): s' = s + sum of the d_i
/// with cos(s, d_i) <= 0, i.e. the attributes the sentence direction fails
/// to express. Returns s' and which of `directions` were added.
///
/// # Shapes
/// `s`: [1, n_latent, style_dim], `directions[i]`: [1, n_latent, style_dim]
pub fn adjust(s: &Tensor, directions: &[Tensor]) -> (Tensor, Vec<bool>) {
    let flat = s.flatten(0, -1);
    let mut out = s.copy();
    let mut added = Vec::with_capacity(directions.len());
    for d in directions {
        let df = d.flatten(0, -1);
        let cos = flat.dot(&df) / (flat.norm() * df.norm() + 1e-8);
        let fails = cos.double_value(&[]) <= 0.0;
        if fails {
            out += d;
        }
        added.push(fails);
    }
    (out, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_whole_words() {
        let v: Vec<String> = ["red", "green", "triangle", "small", "blond hair"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            attributes_of("A small Red triangle, greenish", &v),
            ["red", "triangle", "small"]
        );
        assert_eq!(attributes_of("she has blond hair", &v), ["blond hair"]);
        assert!(attributes_of("a thing", &v).is_empty());
        // a phrase's words within one clause
        let birds: Vec<String> = ["red head", "black wings", "white crown", "red wings"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            attributes_of("this bird has a red head and black wings", &birds),
            ["red head", "black wings"]
        );
        assert_eq!(
            attributes_of(
                "the crown of the bird is white with light brown tones",
                &birds
            ),
            ["white crown"]
        );
        assert_eq!(
            attributes_of("its wings are black, its head is red", &birds),
            ["red head", "black wings"]
        );
        assert!(attributes_of("a red bird, black wings", &birds) == ["black wings"]);
    }

    #[test]
    fn adjustment_adds_only_disagreeing_directions() {
        let s = Tensor::from_slice(&[1.0f32, 0.0]).reshape([1, 1, 2]);
        let agree = Tensor::from_slice(&[1.0f32, 1.0]).reshape([1, 1, 2]);
        let orth = Tensor::from_slice(&[0.0f32, 1.0]).reshape([1, 1, 2]);
        let against = Tensor::from_slice(&[-1.0f32, 0.5]).reshape([1, 1, 2]);
        let (out, added) = adjust(&s, &[agree, orth, against]);
        assert_eq!(added, [false, true, true]);
        let v: Vec<f32> = out.flatten(0, -1).try_into().unwrap();
        assert_eq!(v, [0.0, 1.5]);
    }
}
