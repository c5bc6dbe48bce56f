//! Shared building blocks: layer constructors with the initialisations the
//! papers' code uses. tch's defaults differ from PyTorch's, so every layer
//! here states its initialiser.
#![allow(clippy::too_many_arguments)] // PyTorch's own signatures

use tch::nn::{self, Init};
use tch::Tensor;

/// How a layer's parameters are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind {
    /// PyTorch's defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
    /// biases of convolutions and linear layers; BatchNorm weight 1, bias 0.
    PyTorch,
    /// DCGAN (Radford 2016), as in the GAN-INT-CLS code: weights N(0, 0.02),
    /// biases 0, BatchNorm weight N(1, 0.02).
    DcGan,
    /// AttnGAN's `weights_init`: orthogonal weights (gain 1), biases 0,
    /// BatchNorm weight N(1, 0.02).
    Orthogonal,
}

fn uniform(fan_in: i64) -> Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

fn inits(kind: InitKind, fan_in: i64) -> (Init, Init) {
    match kind {
        InitKind::PyTorch => (uniform(fan_in), uniform(fan_in)),
        InitKind::DcGan => (
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
            Init::Const(0.0),
        ),
        // filled by `orthogonal_` after creation (tch's Orthogonal init
        // returns a 2-d tensor for 4-d weights)
        InitKind::Orthogonal => (Init::Const(0.0), Init::Const(0.0)),
    }
}

/// 2-D convolution `k x k`.
pub fn conv2d(
    p: nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    pad: i64,
    bias: bool,
    init: InitKind,
) -> nn::Conv2D {
    let (ws_init, bs_init) = inits(init, cin * k * k);
    let cfg = nn::ConvConfig {
        stride,
        padding: pad,
        bias,
        ws_init,
        bs_init,
        ..Default::default()
    };
    let conv = nn::conv2d(p, cin, cout, k, cfg);
    if init == InitKind::Orthogonal {
        orthogonal_(&conv.ws, 1.0);
    }
    conv
}

/// `torch.nn.init.orthogonal_`: the weight viewed as `[rows, numel / rows]`
/// becomes (semi-)orthogonal, from the QR decomposition of a normal matrix
/// (signs fixed by R's diagonal), times `gain`.
pub fn orthogonal_(w: &Tensor, gain: f64) {
    let rows = w.size()[0];
    let cols = w.numel() as i64 / rows;
    tch::no_grad(|| {
        let mut a = Tensor::randn([rows, cols], (tch::Kind::Float, w.device()));
        if rows < cols {
            a = a.tr();
        }
        let (q, r) = Tensor::linalg_qr(&a, "reduced");
        let q = q * r.diagonal(0, 0, 1).sign().unsqueeze(0);
        let q = if rows < cols { q.tr() } else { q };
        w.shallow_clone().copy_(&(q * gain).reshape(w.size()));
    });
}

/// 2-D transposed convolution `k x k` (PyTorch's fan-in is `cout * k * k`).
pub fn conv_transpose2d(
    p: nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    pad: i64,
    bias: bool,
    init: InitKind,
) -> nn::ConvTranspose2D {
    let (ws_init, bs_init) = inits(init, cout * k * k);
    let cfg = nn::ConvTransposeConfig {
        stride,
        padding: pad,
        bias,
        ws_init,
        bs_init,
        ..Default::default()
    };
    nn::conv_transpose2d(p, cin, cout, k, cfg)
}

/// Fully connected layer.
pub fn linear(p: nn::Path, din: i64, dout: i64, bias: bool, init: InitKind) -> nn::Linear {
    let (ws_init, bs_init) = inits(init, din);
    let cfg = nn::LinearConfig {
        ws_init,
        bs_init: bias.then_some(bs_init),
        bias,
    };
    let lin = nn::linear(p, din, dout, cfg);
    if init == InitKind::Orthogonal {
        orthogonal_(&lin.ws, 1.0);
    }
    lin
}

/// BatchNorm over channels (momentum 0.1, eps 1e-5 as in PyTorch).
pub fn batch_norm2d(p: nn::Path, c: i64, init: InitKind) -> nn::BatchNorm {
    let ws_init = match init {
        InitKind::PyTorch => Init::Const(1.0),
        InitKind::DcGan | InitKind::Orthogonal => Init::Randn {
            mean: 1.0,
            stdev: 0.02,
        },
    };
    let cfg = nn::BatchNormConfig {
        ws_init,
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(p, c, cfg)
}

/// LeakyReLU with slope 0.2, the papers' choice (tch's binding has no
/// slope argument: libtorch's through [`crate::ops::leaky_relu`]).
pub fn lrelu(x: &Tensor) -> Tensor {
    crate::ops::leaky_relu(x, 0.2)
}

pub mod ca;
pub mod spectral;
pub use spectral::SpectralConv2d;

/// BatchNorm with PyTorch's full state (`weight`, `bias`, `running_mean`,
/// `running_var`, `num_batches_tracked`), so official state_dicts load key
/// for key. 1-d (`[batch, c]`) or 2-d (`[batch, c, h, w]`) input.
#[derive(Debug)]
pub struct BatchNorm {
    pub bn: nn::BatchNorm,
    pub num_batches_tracked: Tensor,
    /// Added to the variance (1e-5 as PyTorch's default; Inception uses 1e-3).
    pub eps: f64,
}

impl BatchNorm {
    pub fn new(p: nn::Path, c: i64, init: InitKind) -> Self {
        let ws_init = match init {
            InitKind::PyTorch => Init::Const(1.0),
            InitKind::DcGan | InitKind::Orthogonal => Init::Randn {
                mean: 1.0,
                stdev: 0.02,
            },
        };
        let cfg = nn::BatchNormConfig {
            ws_init,
            bs_init: Init::Const(0.0),
            ..Default::default()
        };
        let bn = nn::batch_norm1d(&p, c, cfg);
        let num_batches_tracked = p.add(
            "num_batches_tracked",
            Tensor::zeros([], (tch::Kind::Int64, p.device())),
            false,
        );
        Self {
            bn,
            num_batches_tracked,
            eps: 1e-5,
        }
    }

    /// The same with another `eps`.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

impl nn::ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
        }
        // any rank >= 2 (channels on dim 1); momentum 0.1 as PyTorch
        Tensor::batch_norm(
            xs,
            self.bn.ws.as_ref(),
            self.bn.bs.as_ref(),
            Some(&self.bn.running_mean),
            Some(&self.bn.running_var),
            train,
            0.1,
            self.eps,
            true,
        )
    }
}

/// Builds an `nn.Sequential` whose children are numbered as in PyTorch:
/// every layer, activations included, takes the next index, so parameter
/// names match official state_dicts (`encode_img.2.weight`).
pub struct Seq<'a> {
    p: nn::Path<'a>,
    idx: usize,
    init: InitKind,
    seq: nn::SequentialT,
    /// The last convolution, held back in case a BatchNorm follows
    /// ([`ConvBn`]).
    pending: Option<BnConv>,
}

impl<'a> Seq<'a> {
    pub fn new(p: nn::Path<'a>, init: InitKind) -> Self {
        Self {
            p,
            idx: 0,
            init,
            seq: nn::seq_t(),
            pending: None,
        }
    }
    fn next(&mut self) -> nn::Path<'a> {
        self.flush();
        let q = &self.p / self.idx;
        self.idx += 1;
        q
    }
    /// The held-back convolution, alone.
    fn flush(&mut self) {
        match self.pending.take() {
            Some(BnConv::Plain { conv, .. }) => self.push(conv),
            Some(BnConv::Up(up)) => self.push(up),
            None => {}
        }
    }
    /// Appends a layer to the sequence.
    fn push(&mut self, layer: impl nn::ModuleT + 'static) {
        self.seq = std::mem::replace(&mut self.seq, nn::seq_t()).add(layer);
    }
    /// Convolution `k x k`, stride `s`, padding `pad`.
    pub fn conv(mut self, cin: i64, cout: i64, k: i64, s: i64, pad: i64, bias: bool) -> Self {
        let q = self.next();
        let conv = conv2d(q, cin, cout, k, s, pad, bias, self.init);
        self.pending = Some(BnConv::Plain {
            conv,
            stride: s,
            pad,
        });
        self
    }
    /// Transposed convolution `k x k`, stride `s`, padding `pad` (biased).
    pub fn deconv(mut self, cin: i64, cout: i64, k: i64, s: i64, pad: i64) -> Self {
        let q = self.next();
        let init = self.init;
        self.seq = self
            .seq
            .add(conv_transpose2d(q, cin, cout, k, s, pad, true, init));
        self
    }
    /// Fully connected layer (biased).
    pub fn linear(mut self, din: i64, dout: i64) -> Self {
        let q = self.next();
        let init = self.init;
        self.seq = self.seq.add(linear(q, din, dout, true, init));
        self
    }
    /// BatchNorm over `c` channels (any rank); after a convolution, the two
    /// as one [`ConvBn`].
    pub fn bn(mut self, c: i64) -> Self {
        let conv = self.pending.take();
        let q = self.next();
        let bn = BatchNorm::new(q, c, self.init);
        match conv {
            Some(conv) => self.push(ConvBn {
                conv,
                bn,
                folded: std::sync::Mutex::new(None),
            }),
            None => self.push(bn),
        }
        self
    }
    /// BatchNorm over `c` channels when `on`; otherwise nothing (the
    /// index is still taken, so later layers keep their names).
    pub fn bn_if(mut self, on: bool, c: i64) -> Self {
        if on {
            return self.bn(c);
        }
        self.flush();
        self.idx += 1;
        self
    }
    /// Nearest x2 then a 3x3 convolution without bias (two indices, as
    /// `nn.Upsample` and `nn.Conv2d` in the official code), as one
    /// [`UpConv3x3`].
    pub fn up_conv3x3(mut self, cin: i64, cout: i64) -> Self {
        self.flush();
        self.idx += 1;
        let q = self.next();
        let weight = conv2d(q, cin, cout, 3, 1, 1, false, self.init).ws;
        self.pending = Some(BnConv::Up(UpConv3x3::new(weight)));
        self
    }
    /// A parameter-free layer (activation, upsampling) taking one index.
    pub fn act(mut self, f: fn(&Tensor) -> Tensor) -> Self {
        self.flush();
        self.idx += 1;
        self.seq = std::mem::replace(&mut self.seq, nn::seq_t()).add_fn(f);
        self
    }
    pub fn done(mut self) -> nn::SequentialT {
        self.flush();
        self.seq
    }
}

/// Nearest-neighbour upsampling by 2 followed by a 3x3 convolution
/// (padding 1, no bias). On large maps it is computed without the
/// upsampled map: each of the four output phases (even or odd row, even or
/// odd column) sees only two rows and two columns of the input, so it is a
/// 2x2 convolution of the input with sums of the 3x3 taps. One convolution
/// with the four phases' kernels stacked, then an interleave: the same
/// result (to rounding) for 16 multiply-adds per input pixel and channel
/// pair instead of 36, forward and backward. Summing the taps of a
/// 1024x2048 weight took about as long as the products it saves on 600
/// input pixels (batch x h x w), so inputs below 1,024 take the plain path.
/// The weight is the 3x3 one of the official checkpoints.
#[derive(Debug)]
pub struct UpConv3x3 {
    /// `[out, in, 3, 3]`
    pub weight: Tensor,
    /// The phase kernels of the weight at a version, kept while no gradient
    /// is recorded (generation pays for the sums once).
    kernels: std::sync::Mutex<Option<(i64, Tensor)>>,
}

/// Input pixels (batch x h x w) from which [`UpConv3x3`] uses the phases.
const UP_CONV_PHASES_FROM: i64 = 1024;

impl UpConv3x3 {
    pub fn new(weight: Tensor) -> Self {
        Self {
            weight,
            kernels: std::sync::Mutex::new(None),
        }
    }

    /// [`phase_kernels`] of the weight, from the cache when no gradient is
    /// recorded and the weight has not changed since.
    fn kernels(&self) -> Tensor {
        let needs_graph = crate::ops::grad_enabled() && self.weight.requires_grad();
        let version = crate::ops::version(&self.weight);
        let (false, Some(v)) = (needs_graph, version) else {
            return phase_kernels(&self.weight);
        };
        let mut cache = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
        match cache.as_ref() {
            Some((cv, k)) if *cv == v => k.shallow_clone(),
            _ => {
                let k = tch::no_grad(|| phase_kernels(&self.weight));
                *cache = Some((v, k.shallow_clone()));
                k
            }
        }
    }

    /// The layer with a 3x3 `weight`, its `kernels` (called on the phase
    /// path only) and a per-channel `bias` (`[out]`, and repeated for the
    /// four phases `[4 out]`).
    ///
    /// # Shapes
    /// [batch, in, h, w] -> [batch, out, 2h, 2w]
    fn apply(
        x: &Tensor,
        weight: &Tensor,
        kernels: impl FnOnce() -> Tensor,
        bias: Option<(&Tensor, &Tensor)>,
    ) -> Tensor {
        let (b, _, h, w) = x.size4().expect("[batch, c, h, w]");
        if b * h * w < UP_CONV_PHASES_FROM {
            let bias = bias.map(|(b, _)| b);
            return upsample2(x).conv2d(weight, bias, [1, 1], [1, 1], [1, 1], 1);
        }
        let o = weight.size()[0];
        let k = kernels().to_kind(x.kind());
        // output position p covers input rows p-1 and p
        let y = x.conv2d(&k, bias.map(|(_, b4)| b4), [1, 1], [1, 1], [1, 1], 1); // [b, 4 out, h+1, w+1]
        let nhwc = y.permute([0, 2, 3, 1]);
        if nhwc.is_contiguous() {
            // channels-last (generation): interleave with the channels
            // innermost on both sides
            let y = nhwc.reshape([b, h + 1, w + 1, 2, 2, o]);
            let phase =
                |a: i64, c: i64| y.narrow(1, a, h).narrow(2, c, w).select(3, a).select(3, c);
            let row = |a: i64| Tensor::stack(&[phase(a, 0), phase(a, 1)], 3); // [b, h, w, 2, out]
            return Tensor::stack(&[row(0), row(1)], 2) // [b, h, 2, w, 2, out]
                .reshape([b, 2 * h, 2 * w, o])
                .permute([0, 3, 1, 2]);
        }
        let y = y.reshape([b, 2, 2, o, h + 1, w + 1]); // [b, row phase, col phase, out, h+1, w+1]
        let phase = |a: i64, c: i64| y.select(1, a).select(1, c).narrow(2, a, h).narrow(3, c, w);
        let row = |a: i64| Tensor::stack(&[phase(a, 0), phase(a, 1)], -1); // [b, out, h, w, 2]
        Tensor::stack(&[row(0), row(1)], 3).reshape([b, o, 2 * h, 2 * w])
    }
}

/// The stacked phase kernels of a 3x3 weight `[out, in, 3, 3]`.
/// `[4 * out, in, 2, 2]`, phases (row, column) in the order (0,0), (0,1),
/// (1,0), (1,1)
fn phase_kernels(weight: &Tensor) -> Tensor {
    let (o, i) = (weight.size()[0], weight.size()[1]);
    // the even phase reads input rows (r-1, r) with the kernel's rows
    // (0 | 1 + 2), the odd one rows (r, r+1) with (0 + 1 | 2); columns
    // the same way
    let pairs = |w: &Tensor, dim: i64| {
        let t = |k: i64| w.select(dim, k);
        let even = Tensor::stack(&[t(0), t(1) + t(2)], -1);
        let odd = Tensor::stack(&[t(0) + t(1), t(2)], -1);
        Tensor::stack(&[even, odd], 0)
    };
    let rows = pairs(weight, 2); // [row phase, o, i, 3 cols, 2 rows]
    let k = pairs(&rows, 3); // [col phase, row phase, o, i, 2 rows, 2 cols]
    k.transpose(0, 1).reshape([4 * o, i, 2, 2])
}

impl nn::Module for UpConv3x3 {
    /// # Shapes
    /// [batch, in, h, w] -> [batch, out, 2h, 2w]
    fn forward(&self, x: &Tensor) -> Tensor {
        Self::apply(x, &self.weight, || self.kernels(), None)
    }
}

/// The convolutions [`Seq`] fuses with a following BatchNorm.
#[derive(Debug)]
enum BnConv {
    Plain {
        conv: nn::Conv2D,
        stride: i64,
        pad: i64,
    },
    Up(UpConv3x3),
}

impl BnConv {
    fn weight(&self) -> &Tensor {
        match self {
            Self::Plain { conv, .. } => &conv.ws,
            Self::Up(u) => &u.weight,
        }
    }
}

/// A convolution followed by BatchNorm (two children of an official
/// `nn.Sequential`). At inference (BatchNorm on its running statistics, no
/// gradient recorded) the BatchNorm is folded into the convolution, `W' =
/// W s` and `b' = beta + (b - mean) s` with `s = gamma / sqrt(var + eps)`:
/// one pass over the feature map instead of two (AttnGAN's generation at
/// batch 1: 41.4 -> 38.4 ms, docs/BENCHMARKS.md). The folded weight is
/// cached while the tensors it comes from, and the BatchNorm's step count,
/// keep their versions. Training runs the two layers as they are.
#[derive(Debug)]
pub struct ConvBn {
    conv: BnConv,
    bn: BatchNorm,
    /// (versions of the sources, folded weight, its phase kernels for
    /// [`UpConv3x3`], bias, bias repeated for the four phases)
    folded: std::sync::Mutex<Option<(Vec<Option<i64>>, Folded)>>,
}

#[derive(Debug)]
struct Folded {
    weight: Tensor,
    kernels: Option<Tensor>,
    bias: Tensor,
    bias4: Tensor,
}

impl Folded {
    fn shallow_clone(&self) -> Self {
        Self {
            weight: self.weight.shallow_clone(),
            kernels: self.kernels.as_ref().map(Tensor::shallow_clone),
            bias: self.bias.shallow_clone(),
            bias4: self.bias4.shallow_clone(),
        }
    }
}

impl ConvBn {
    fn sources(&self) -> Vec<&Tensor> {
        let bn = &self.bn.bn;
        // training updates the running statistics without moving their
        // version counters; it does move num_batches_tracked's
        let mut v = vec![
            self.conv.weight(),
            &bn.running_mean,
            &bn.running_var,
            &self.bn.num_batches_tracked,
        ];
        v.extend(bn.ws.as_ref());
        v.extend(bn.bs.as_ref());
        if let BnConv::Plain { conv, .. } = &self.conv {
            v.extend(conv.bs.as_ref());
        }
        v
    }

    fn fold(&self) -> Folded {
        let bn = &self.bn.bn;
        let mut s = (&bn.running_var + self.bn.eps).rsqrt();
        if let Some(g) = &bn.ws {
            s *= g;
        }
        let mut bias = match &self.conv {
            BnConv::Plain {
                conv: nn::Conv2D { bs: Some(b), .. },
                ..
            } => (b - &bn.running_mean) * &s,
            _ => -(&bn.running_mean * &s),
        };
        if let Some(beta) = &bn.bs {
            bias += beta;
        }
        let weight = self.conv.weight() * s.view([-1, 1, 1, 1]);
        let kernels = matches!(self.conv, BnConv::Up(_)).then(|| phase_kernels(&weight));
        let bias4 = bias.repeat([4]);
        Folded {
            weight,
            kernels,
            bias,
            bias4,
        }
    }

    fn folded(&self) -> Folded {
        let key: Vec<Option<i64>> = self
            .sources()
            .into_iter()
            .map(crate::ops::version)
            .collect();
        let mut cache = self.folded.lock().unwrap_or_else(|e| e.into_inner());
        match cache.as_ref() {
            Some((k, f)) if *k == key && key.iter().all(Option::is_some) => f.shallow_clone(),
            _ => {
                let f = self.fold();
                *cache = Some((key, f.shallow_clone()));
                f
            }
        }
    }
}

impl nn::ModuleT for ConvBn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train || crate::ops::grad_enabled() {
            let y = match &self.conv {
                BnConv::Plain { conv, .. } => conv.forward_t(x, train),
                BnConv::Up(u) => u.forward_t(x, train),
            };
            return self.bn.forward_t(&y, train);
        }
        let f = self.folded();
        match &self.conv {
            BnConv::Plain { stride, pad, .. } => x.conv2d(
                &f.weight.to_kind(x.kind()),
                Some(f.bias.to_kind(x.kind())),
                [*stride, *stride],
                [*pad, *pad],
                [1, 1],
                1,
            ),
            BnConv::Up(_) => {
                let (bias, bias4) = (f.bias.to_kind(x.kind()), f.bias4.to_kind(x.kind()));
                let kernels = f.kernels.expect("folded with its phase kernels");
                UpConv3x3::apply(x, &f.weight, || kernels, Some((&bias, &bias4)))
            }
        }
    }
}

/// Nearest-neighbour upsampling by 2 (`nn.Upsample(scale_factor=2)`).
pub fn upsample2(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    x.upsample_nearest2d([2 * h, 2 * w], None, None)
}

/// Gated linear unit over channels: first half x sigmoid(second half)
/// (libtorch's fused kernel).
pub fn glu(x: &Tensor) -> Tensor {
    x.glu(1)
}

/// Stores every 4-D variable of `vs` (the convolution weights) channels-last
/// (NHWC in memory, same shape): libtorch's convolutions then run in that
/// layout and hand it on to the next layer. Measured on the generators at
/// inference: 12-45% faster than NCHW on this CPU (docs/BENCHMARKS.md);
/// training keeps NCHW (AttnGAN's step was slower channels-last). Values
/// loaded later by `copy_` keep the layout; checkpoints are written NCHW.
pub fn to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            if t.dim() == 4 {
                let cl = t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
                t.set_data(&cl);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, ModuleT};
    use tch::{Device, Kind};

    #[test]
    fn up_conv3x3_equals_nearest_upsampling_then_the_convolution() {
        tch::manual_seed(3);
        let weight =
            Tensor::randn([5, 4, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        // 2 x 24 x 25 input pixels: the phase path
        let x = Tensor::randn([2, 4, 24, 25], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let up = UpConv3x3::new(weight.shallow_clone());
        let fast = up.forward(&x);
        let plain = upsample2(&x).conv2d(&weight, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(fast.size(), [2, 5, 48, 50]);
        assert!(fast.allclose(&plain, 1e-5, 1e-5, false));
        // the same gradients for the weight and the input
        let g = Tensor::randn([2, 5, 48, 50], (Kind::Float, Device::Cpu));
        let grads = |y: &Tensor| Tensor::run_backward(&[y * &g], &[&weight, &x], false, false);
        let (a, b) = (grads(&fast), grads(&plain));
        for (u, v) in a.iter().zip(&b) {
            // sums of thousands of products: rounding relative to the scale
            let d = (u - v).abs().max().double_value(&[]);
            let scale = v.abs().max().double_value(&[]);
            assert!(d <= 1e-5 * scale, "{d} against {scale}");
        }
    }

    #[test]
    fn up_conv3x3_recomputes_its_cached_kernels_when_the_weight_changes() {
        let weight = Tensor::randn([3, 2, 3, 3], (Kind::Float, Device::Cpu));
        let up = UpConv3x3::new(weight.shallow_clone());
        let x = Tensor::randn([1, 2, 32, 32], (Kind::Float, Device::Cpu));
        let plain = |w: &Tensor| upsample2(&x).conv2d(w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        let first = tch::no_grad(|| up.forward(&x));
        assert!(first.allclose(&plain(&weight), 1e-5, 1e-5, false));
        // the second call reads the cache; a copy_ into the weight renews it
        assert!(tch::no_grad(|| up.forward(&x)).equal(&first));
        let other = Tensor::randn([3, 2, 3, 3], (Kind::Float, Device::Cpu));
        tch::no_grad(|| weight.shallow_clone().copy_(&other));
        let again = tch::no_grad(|| up.forward(&x));
        assert!(again.allclose(&plain(&other), 1e-5, 1e-5, false));
        // channels-last input and weight (generation's layout)
        let cl = |t: &Tensor| t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        let up = UpConv3x3::new(cl(&other));
        let out = tch::no_grad(|| up.forward(&cl(&x)));
        assert!(out.allclose(&plain(&other), 1e-5, 1e-5, false));
    }

    #[test]
    fn seq_folds_batch_norm_into_the_convolution_at_inference_only() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let seq = Seq::new(vs.root(), InitKind::DcGan)
            .conv(4, 6, 3, 1, 1, true)
            .bn(6)
            .act(|x| x.relu())
            .up_conv3x3(6, 5)
            .bn(5)
            .done();
        // the official names, one index per child
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert!(names.contains(&"0.bias".to_string()));
        assert!(names.contains(&"1.running_var".to_string()));
        assert!(names.contains(&"4.weight".to_string()));
        assert!(names.contains(&"5.num_batches_tracked".to_string()));
        // a training step moves the running statistics away from (0, 1)
        let x = Tensor::randn([2, 4, 24, 24], (Kind::Float, Device::Cpu)) * 3 + 1;
        let _ = seq.forward_t(&x, true);
        // inference with a gradient recorded runs the layers as they are;
        // without, the folded ones: the same values, twice from the cache
        let unfolded = seq.forward_t(&x, false);
        let folded = tch::no_grad(|| seq.forward_t(&x, false));
        assert_eq!(folded.size(), [2, 5, 48, 48]);
        assert!(folded.allclose(&unfolded, 1e-4, 1e-4, false));
        assert!(tch::no_grad(|| seq.forward_t(&x, false)).equal(&folded));
        // another training step changes the statistics: folded again
        let _ = seq.forward_t(&(x.shallow_clone() * 2), true);
        let unfolded = seq.forward_t(&x, false);
        let folded = tch::no_grad(|| seq.forward_t(&x, false));
        assert!(folded.allclose(&unfolded, 1e-4, 1e-4, false));
    }
}
