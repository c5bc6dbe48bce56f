//! Conditioning Augmentation (StackGAN, Zhang et al. 2017, sec. 3.1):
//! the text embedding phi_t gives a Gaussian N(mu(phi_t), Sigma(phi_t)); the
//! generator is conditioned on a sample c^ = mu + sigma * eps, and the KL
//! divergence to N(0, I) regularises it (eq. 3).

use super::{linear, InitKind};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// `CA_NET` of StackGAN: Linear(t_dim, 2 c_dim) + ReLU, split into mu and
/// log sigma^2.
#[derive(Debug)]
pub struct CaNet {
    pub fc: nn::Linear,
    pub c_dim: i64,
}

impl CaNet {
    pub fn new(p: nn::Path, t_dim: i64, c_dim: i64, init: InitKind) -> Self {
        Self {
            fc: linear(&p / "fc", t_dim, 2 * c_dim, true, init),
            c_dim,
        }
    }

    /// `(mu, logvar)`, each `[batch, c_dim]`.
    pub fn encode(&self, text: &Tensor) -> (Tensor, Tensor) {
        let x = self.fc.forward(text).relu(); // [batch, 2 c_dim]
        (
            x.narrow(1, 0, self.c_dim),
            x.narrow(1, self.c_dim, self.c_dim),
        )
    }

    /// `(c, mu, logvar)` with `c = mu + exp(logvar / 2) * eps`; `eps = None`
    /// gives the mean (deterministic generation).
    pub fn forward(&self, text: &Tensor, eps: Option<&Tensor>) -> (Tensor, Tensor, Tensor) {
        let (mu, logvar) = self.encode(text);
        let c = reparametrize(&mu, &logvar, eps);
        (c, mu, logvar)
    }
}

/// c = mu + exp(logvar / 2) * eps (the mean when `eps` is `None`).
pub fn reparametrize(mu: &Tensor, logvar: &Tensor, eps: Option<&Tensor>) -> Tensor {
    match eps {
        Some(e) => e * (logvar * 0.5).exp() + mu,
        None => mu.shallow_clone(),
    }
}

/// KL(N(mu, sigma^2) || N(0, I)), averaged over all entries as the official
/// code does: -1/2 mean(1 + logvar - mu^2 - exp(logvar)).
pub fn kl_loss(mu: &Tensor, logvar: &Tensor) -> Tensor {
    let e = (mu.square() + logvar.exp()) * -1.0 + 1.0 + logvar;
    e.mean(Kind::Float) * -0.5
}
