//! Adam with state that can be saved and restored.
//!
//! tch's optimiser keeps its moments inside libtorch with no way to read them
//! back, so a resumed run could not continue exactly. This applies PyTorch's
//! `torch.optim.Adam` update (no weight decay, no amsgrad) with libtorch's
//! fused kernel (`_fused_adam_`, one pass per parameter) on moments we own,
//! so checkpoints carry them; gradients are reset to undefined between
//! steps, as PyTorch's `zero_grad()`.

use std::collections::HashMap;
use tch::{nn::VarStore, Kind, Tensor};

/// Adam over the trainable variables of one `VarStore`.
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Number of updates taken.
    pub step: i64,
    /// Updates skipped because a gradient was not finite.
    pub skipped: i64,
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    pub fn new(vs: &VarStore, lr: f64, beta1: f64, beta2: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let (names, params): (Vec<String>, Vec<Tensor>) = vars.into_iter().unzip();
        Self {
            lr,
            beta1,
            beta2,
            eps: 1e-8,
            step: 0,
            skipped: 0,
            names,
            params,
            m,
            v,
        }
    }

    /// Drops every gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            crate::ops::reset_grad(p);
        }
    }

    /// Back-propagates `loss` into these parameters' gradients only
    /// ([`crate::ops::backward_into`]): a generator's loss computes no
    /// gradients for the discriminator it passes through, which the official
    /// code computes and then zeroes before the discriminator's step.
    pub fn backward(&self, loss: &Tensor) {
        Self::backward_all(loss, &[self]);
    }

    /// [`Self::backward`] into the parameters of several optimisers at once
    /// (a generator and an encoder that learns with it).
    pub fn backward_all(loss: &Tensor, opts: &[&Adam]) {
        let mut params: Vec<Tensor> = opts
            .iter()
            .flat_map(|o| o.params.iter().map(Tensor::shallow_clone))
            .collect();
        crate::ops::backward_into(loss, &mut params);
    }

    /// One update: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    /// p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps).
    /// A gradient with a NaN or an infinity skips the update (the weights
    /// and moments stay as they were; `skipped` counts it); returns whether
    /// the update was taken.
    pub fn step(&mut self) -> bool {
        use crate::ops::{adam_step, AdamOutcome};
        let outcome = adam_step(
            &mut self.params,
            &mut self.m,
            &mut self.v,
            self.step + 1,
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
        );
        if outcome == AdamOutcome::Skipped {
            self.skipped += 1;
            tracing::debug!("non-finite gradient: update skipped");
            return false;
        }
        self.step += 1;
        true
    }

    /// Moments and step count, named under `prefix`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}.step"), Tensor::from(self.step))];
        for (i, n) in self.names.iter().enumerate() {
            out.push((format!("{prefix}.exp_avg.{n}"), self.m[i].shallow_clone()));
            out.push((
                format!("{prefix}.exp_avg_sq.{n}"),
                self.v[i].shallow_clone(),
            ));
        }
        out
    }

    /// Restores what [`Adam::state`] saved; a missing entry is an error.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<(), String> {
        let get = |k: String| tensors.get(&k).ok_or(format!("optimizer state lacks {k}"));
        self.step = get(format!("{prefix}.step"))?.int64_value(&[]);
        tch::no_grad(|| -> Result<(), String> {
            for (i, n) in self.names.iter().enumerate() {
                self.m[i].copy_(&get(format!("{prefix}.exp_avg.{n}"))?.to_kind(Kind::Float));
                self.v[i].copy_(&get(format!("{prefix}.exp_avg_sq.{n}"))?.to_kind(Kind::Float));
            }
            Ok(())
        })
    }
}

/// Scales the gradients of `vs` so their joint L2 norm is at most `max`
/// (`torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(vs: &VarStore, max: f64) -> f64 {
    let grads: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return 0.0;
    }
    let total = grads
        .iter()
        .map(|g| g.square().sum(Kind::Float))
        .fold(
            Tensor::zeros([], (Kind::Float, grads[0].device())),
            |a, b| a + b,
        )
        .sqrt()
        .double_value(&[]);
    let coef = max / (total + 1e-6);
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(coef);
            }
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn a_non_finite_gradient_skips_the_update() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[3]);
        let mut opt = Adam::new(&vs, 0.1, 0.9, 0.999);
        for bad in [f64::NAN, f64::INFINITY] {
            opt.zero_grad();
            (&w * bad).sum(Kind::Float).backward();
            assert!(!opt.step(), "a {bad} gradient must not be applied");
            assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![1.0; 3]);
        }
        assert_eq!((opt.step, opt.skipped), (0, 2));
        opt.zero_grad();
        (&w * 2.0).sum(Kind::Float).backward();
        assert!(opt.step());
        assert_eq!((opt.step, opt.skipped), (1, 2));
        let after = Vec::<f32>::try_from(&w).unwrap();
        assert!(after.iter().all(|x| (x - 0.9).abs() < 1e-5), "{after:?}");
    }

    #[test]
    fn matches_pytorch_adam_first_steps() {
        // torch.optim.Adam([p], lr=0.1) on loss = sum(p^2), p0 = [1, -2]:
        // step 1 moves every coordinate by lr against the gradient's sign.
        let vs = VarStore::new(Device::Cpu);
        let p = vs
            .root()
            .var_copy("p", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut opt = Adam::new(&vs, 0.1, 0.9, 0.999);
        for _ in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Float).backward();
            opt.step();
        }
        let got: Vec<f32> = Vec::try_from(&p).unwrap();
        // After step 1: [0.9, -1.9]; step 2 again ~lr per coordinate.
        assert!(
            (got[0] - 0.8).abs() < 2e-3 && (got[1] + 1.8).abs() < 2e-3,
            "{got:?}"
        );
        let st = opt.state("o");
        let map: HashMap<String, Tensor> = st.into_iter().collect();
        let mut opt2 = Adam::new(&vs, 0.1, 0.9, 0.999);
        opt2.load_state("o", &map).unwrap();
        assert_eq!(opt2.step, 2);
    }
}
