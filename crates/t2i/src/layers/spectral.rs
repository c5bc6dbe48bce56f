//! Spectral normalisation (Miyato et al., "Spectral Normalization for
//! Generative Adversarial Networks", ICLR 2018): a layer's weight is divided
//! by its largest singular value sigma(W), estimated by one power iteration
//! per training step (sec. 2.1, Algorithm 1). D is then 1-Lipschitz per
//! layer without batch statistics, so real and fake batches are scored by one
//! function. libtorch's C++ API has no `spectral_norm`, so it lives here, with
//! PyTorch's buffer names (`weight_u`, `weight_v`) and its `eps` of 1e-12.

use super::{conv2d, InitKind};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// `x / max(||x||, 1e-12)`, as `F.normalize`.
fn normalize(x: &Tensor) -> Tensor {
    x / x.norm().clamp_min(1e-12)
}

/// A weight and its power-iteration vectors u (rows) and v (columns).
#[derive(Debug)]
pub struct SpectralWeight {
    pub weight: Tensor,
    u: Tensor,
    v: Tensor,
}

impl SpectralWeight {
    /// Wraps `weight` (`[rows, ...]`), adding `weight_u` and `weight_v` under `p`.
    pub fn new(p: &nn::Path, weight: Tensor) -> Self {
        let rows = weight.size()[0];
        let cols = weight.numel() as i64 / rows;
        let dev = weight.device();
        let init = |n: i64| normalize(&Tensor::randn([n], (tch::Kind::Float, dev)));
        let u = p.add("weight_u", init(rows), false);
        let v = p.add("weight_v", init(cols), false);
        Self { weight, u, v }
    }

    /// Largest singular value of the weight seen as `[rows, cols]`; in
    /// training one power iteration first refines u and v (Algorithm 1).
    /// The gradient flows through W only, u and v are constants (as PyTorch).
    pub fn sigma(&self, train: bool) -> Tensor {
        let w = self.weight.view([self.u.size()[0], -1]); // [rows, cols]
        if train {
            tch::no_grad(|| {
                let wd = w.detach();
                let v = normalize(&wd.tr().mv(&self.u));
                let u = normalize(&wd.mv(&v));
                self.v.shallow_clone().copy_(&v);
                self.u.shallow_clone().copy_(&u);
            });
        }
        // copies: a later forward's power iteration updates u and v in place,
        // and this product's backward still needs the values it saw
        self.u.copy().dot(&w.mv(&self.v.copy()))
    }

    /// W / sigma(W).
    pub fn normalized(&self, train: bool) -> Tensor {
        &self.weight / self.sigma(train)
    }
}

/// A 2-D convolution with a spectrally normalised weight.
#[derive(Debug)]
pub struct SpectralConv2d {
    w: SpectralWeight,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl SpectralConv2d {
    pub fn new(
        p: nn::Path,
        cin: i64,
        cout: i64,
        k: i64,
        stride: i64,
        padding: i64,
        bias: bool,
        init: InitKind,
    ) -> Self {
        let conv = conv2d(p.clone(), cin, cout, k, stride, padding, bias, init);
        Self {
            w: SpectralWeight::new(&p, conv.ws),
            bias: conv.bs,
            stride,
            padding,
        }
    }

    /// sigma(W) of the current weight (no power iteration).
    pub fn sigma(&self) -> f64 {
        tch::no_grad(|| self.w.sigma(false).double_value(&[]))
    }
}

impl ModuleT for SpectralConv2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.conv2d(
            &self.w.normalized(train),
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn power_iteration_finds_the_largest_singular_value() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = SpectralConv2d::new(vs.root() / "c", 8, 16, 3, 1, 1, true, InitKind::DcGan);
        let x = Tensor::randn([2, 8, 5, 5], (Kind::Float, Device::Cpu));
        for _ in 0..50 {
            let _ = conv.forward_t(&x, true);
        }
        let w = conv.w.weight.view([16, -1]);
        let s = w.svd(true, false).1.double_value(&[0]);
        assert!(
            (conv.sigma() - s).abs() < 1e-4 * s,
            "{} vs {s}",
            conv.sigma()
        );
        // the normalised weight has spectral norm 1
        let wn = conv.w.normalized(false).view([16, -1]);
        let s1 = wn.svd(true, false).1.double_value(&[0]);
        assert!((s1 - 1.0).abs() < 1e-4, "{s1}");
        // names as PyTorch's spectral_norm
        let names: Vec<String> = vs.variables().into_keys().collect();
        for k in ["c.weight", "c.bias", "c.weight_u", "c.weight_v"] {
            assert!(names.iter().any(|n| n == k), "{k} missing in {names:?}");
        }
        // eval mode leaves u and v as they are
        let u0 = conv.w.u.copy();
        let _ = conv.forward_t(&x, false);
        assert_eq!(conv.w.u, u0);
    }
}
