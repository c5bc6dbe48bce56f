//! Running average of a generator's weights (AttnGAN's `avg_param_G`; the
//! exponential moving average of Karras et al. 2018): samples are drawn from
//! the average, which is smoother than the oscillating trained weights.

use crate::checkpoint::{copy_from, trainable, Checkpoint};
use crate::Result;
use tch::{nn, Tensor};

/// `avg <- decay * avg + (1 - decay) * w` for every trainable weight `w`.
pub struct WeightAverage {
    pub decay: f64,
    /// Ramp the decay up as `min(decay, (1 + t) / (10 + t))` over the first
    /// updates `t`, so the average forgets the random initial weights
    /// quickly (the warm-up of TensorFlow's ExponentialMovingAverage).
    pub warmup: bool,
    /// Updates so far (for the warm-up; saved by the trainer's step).
    pub updates: i64,
    /// (name, average, the live variable)
    entries: Vec<(String, Tensor, Tensor)>,
}

impl WeightAverage {
    /// Starts the average at the current weights of `vs`.
    pub fn new(vs: &nn::VarStore, decay: f64) -> Self {
        let entries = trainable(vs)
            .into_iter()
            .map(|(n, v)| (n, v.detach().copy(), v))
            .collect();
        Self {
            decay,
            warmup: false,
            updates: 0,
            entries,
        }
    }

    /// As [`WeightAverage::new`], with the decay warm-up.
    pub fn with_warmup(vs: &nn::VarStore, decay: f64) -> Self {
        Self {
            warmup: true,
            ..Self::new(vs, decay)
        }
    }

    /// One averaging step (after the optimiser step).
    pub fn update(&mut self) {
        let t = self.updates as f64;
        let d = if self.warmup {
            self.decay.min((1.0 + t) / (10.0 + t))
        } else {
            self.decay
        };
        self.updates += 1;
        tch::no_grad(|| {
            for (_, avg, v) in &mut self.entries {
                let _ = avg.g_mul_scalar_(d).g_add_(&(&*v * (1.0 - d)));
            }
        });
    }

    /// The averages as checkpoint tensors `prefix.<name>`.
    pub fn named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.entries
            .iter()
            .map(|(n, avg, _)| (format!("{prefix}.{n}"), avg.shallow_clone()))
            .collect()
    }

    /// Reads the averages back from `prefix.<name>` (resume).
    pub fn restore(&mut self, ck: &Checkpoint, prefix: &str) -> Result<()> {
        let avgs = self
            .entries
            .iter()
            .map(|(n, avg, _)| (n.clone(), avg.shallow_clone()))
            .collect();
        copy_from(avgs, ck, prefix)
    }

    /// Copies the averages into the live variables for good.
    pub fn apply(self) {
        tch::no_grad(|| {
            for (_, avg, v) in &self.entries {
                v.shallow_clone().copy_(avg);
            }
        });
    }

    /// Runs `f` with the live variables holding the averages, then puts the
    /// trained weights back.
    pub fn with_average<T>(&self, f: impl FnOnce() -> T) -> T {
        let saved: Vec<Tensor> = self
            .entries
            .iter()
            .map(|(_, _, v)| v.detach().copy())
            .collect();
        tch::no_grad(|| {
            for (_, avg, v) in &self.entries {
                v.shallow_clone().copy_(avg);
            }
        });
        let r = f();
        tch::no_grad(|| {
            for ((_, _, v), s) in self.entries.iter().zip(&saved) {
                v.shallow_clone().copy_(s);
            }
        });
        r
    }
}

/// Batches of G's forward pass that re-estimate its batch-norm statistics
/// (momentum 0.1: after 50 batches the old values keep a weight of 0.5%).
pub const STANDING_BATCHES: i64 = 50;

/// Re-estimates the batch-norm running statistics of `vs` for the weights
/// it has now ("standing statistics", BigGAN, Brock et al. 2019, app.
/// C.1): `forward(k)` runs G in training mode on batch `k` of
/// [`STANDING_BATCHES`] (fixed seeds). A running average of G's weights
/// needs them: the statistics tracked in training belong to the trained
/// weights. Returns the statistics it replaced (for [`restore_buffers`]).
pub fn set_standing_stats(
    vs: &nn::VarStore,
    mut forward: impl FnMut(i64),
) -> Vec<(Tensor, Tensor)> {
    let live = crate::checkpoint::buffers(vs)
        .into_iter()
        .map(|(_, b)| (b.copy(), b))
        .collect();
    tch::no_grad(|| {
        for k in 0..STANDING_BATCHES {
            forward(k);
        }
    });
    live
}

/// Puts back batch-norm statistics saved by [`set_standing_stats`].
pub fn restore_buffers(saved: Vec<(Tensor, Tensor)>) {
    tch::no_grad(|| {
        for (old, b) in saved {
            b.shallow_clone().copy_(&old);
        }
    });
}

/// Runs `f` with the generator that generates: the trained weights when
/// `avg` is `None`, otherwise the running average with the standing
/// statistics that `standing` sets (and returns the old ones of); then
/// puts the trained weights and statistics back.
pub fn generating<T>(
    avg: Option<&WeightAverage>,
    standing: impl FnOnce() -> Vec<(Tensor, Tensor)>,
    f: impl FnOnce() -> T,
) -> T {
    match avg {
        Some(a) => a.with_average(|| {
            let live = standing();
            let out = f();
            restore_buffers(live);
            out
        }),
        None => f(),
    }
}
