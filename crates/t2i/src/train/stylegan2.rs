//! Unconditional StyleGAN2 training (Karras et al., CVPR 2020), the
//! backbone StyleT2I pre-trains on the data set before it learns text
//! directions (Li et al. 2022, sec. 3). As in rosinality's `train.py`:
//! the non-saturating logistic loss, style mixing, lazy R1 on D every
//! `d_reg_every` steps and lazy path-length regularisation on G every
//! `g_reg_every` steps (StyleGAN2 sec. 3.1-3.2, with their learning-rate and
//! beta corrections), Adam with betas (0, 0.99), and a running average of
//! G that draws the samples and is saved as `g_ema` (rosinality's key).

use super::ema::WeightAverage;
use super::optim::Adam;
use crate::bench::{time, Timing};
use crate::checkpoint::{self, Checkpoint};
use crate::data::images::CaptionedImages;
use crate::data::shapes::{Shapes, ShapesConfig, Split};
use crate::data::DataConfig;
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::family::{
    BenchOptions, Controls, FamilyConfig, Generated, Generator as FamilyGenerator, ImportRequest,
    Metrics, ParamRow, Summary, TrainContext, Trainer, TypedFamily,
};
use crate::imageio::{grid, images_to_tensor, tensor_to_images, Rgb};
use crate::models::stylegan2::{Discriminator, Generator, StyleGan2Config};
use crate::rng::{normal, step_seed};
use crate::versions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// `t2i train --model stylegan2`: the networks, the losses' weights and the
/// data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleGan2RunConfig {
    pub preset: String,
    /// Generator and discriminator (saved in every checkpoint).
    pub net: StyleGan2Config,
    /// Images per step.
    pub batch_size: i64,
    /// Adam learning rate of both networks (0.002).
    pub lr: f64,
    /// R1 weight gamma (10; StyleGAN2 sec. 3.1).
    pub r1: f64,
    /// Path-length regularisation weight (2; sec. 3.2).
    pub path_regularize: f64,
    /// The path-length batch is the batch divided by this (2).
    pub path_batch_shrink: i64,
    /// R1 every this many steps (16; lazy regularisation).
    pub d_reg_every: i64,
    /// Path-length regularisation every this many steps (4).
    pub g_reg_every: i64,
    /// Probability of mixing two latents in a batch (0.9).
    pub mixing: f64,
    /// Decay of the running average of G per step.
    pub ema_decay: f64,
    /// Random horizontal flips of real images.
    pub flip: bool,
    /// The data set (shapes or one in the CUB layout).
    pub data: DataConfig,
}

impl FamilyConfig for StyleGan2RunConfig {
    fn preset(name: &str) -> Option<Self> {
        let base = |net: StyleGan2Config, batch_size: i64, data: DataConfig| Self {
            preset: name.into(),
            net,
            batch_size,
            lr: 0.002,
            r1: 10.0,
            path_regularize: 2.0,
            path_batch_shrink: 2,
            d_reg_every: 16,
            g_reg_every: 4,
            mixing: 0.9,
            // rosinality: 0.5 ** (32 / 10_000) at batch 32, a half-life
            // of 10k images
            ema_decay: 0.5f64.powf(batch_size as f64 / 10_000.0),
            flip: false,
            data,
        };
        match name {
            "tiny" => Some(base(
                StyleGan2Config::tiny(),
                16,
                DataConfig::shapes(10_000),
            )),
            "paper" => Some(Self {
                flip: true,
                ..base(StyleGan2Config::paper(), 16, DataConfig::cub())
            }),
            _ => None,
        }
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.net.validate()?;
        self.data.validate(&["shapes", "cub"])?;
        crate::family::check_batch_size(self.batch_size)?;
        if self.data.name == "shapes" && !(32..=256).contains(&self.net.size) {
            return Err(format!(
                "shapes images are 32x32 to 256x256: net.size {} is outside",
                self.net.size
            ));
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", self.lr));
        }
        if self.r1 < 0.0 || self.path_regularize < 0.0 {
            return Err("r1 and path_regularize must be >= 0".into());
        }
        if self.d_reg_every < 1 || self.g_reg_every < 1 || self.path_batch_shrink < 1 {
            return Err("d_reg_every, g_reg_every and path_batch_shrink must be >= 1".into());
        }
        if self.batch_size / self.path_batch_shrink < 1 {
            return Err("batch_size / path_batch_shrink must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.mixing) || !(0.0..1.0).contains(&self.ema_decay) {
            return Err("mixing must be in [0, 1] and ema_decay in [0, 1)".into());
        }
        Ok(())
    }
}

/// A trained backbone: the averaged generator and the mean of w.
pub struct StyleGan2Model {
    pub config: StyleGan2Config,
    pub vs: nn::VarStore,
    pub g: Generator,
    /// Mean w over 4,096 fixed z (truncation centre). `[1, style_dim]`
    pub w_mean: Tensor,
}

/// z for sample `i` of a request with `seed`. `[1, style_dim]`
pub fn sample_z(seed: u64, i: usize, dim: i64, device: Device) -> Tensor {
    normal(1, dim, step_seed(seed, i as i64), device)
}

/// Noise maps of sample `i` of a request with `seed`, drawn on the CPU.
pub fn sample_noise(g: &Generator, seed: u64, i: usize) -> Vec<Tensor> {
    let dev = g.constant.device();
    g.noises
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let s = n.size();
            normal(
                1,
                s[2] * s[3],
                step_seed(seed ^ 0x4015E, i as i64 * 64 + k as i64),
                dev,
            )
            .reshape([1, 1, s[2], s[3]])
        })
        .collect()
}

impl StyleGan2Model {
    /// The averaged generator of a `stylegan2` checkpoint (`g_ema.*`).
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        ck.expect_model("stylegan2")?;
        let config: StyleGan2Config = ck.json_meta("config")?;
        config.validate().map_err(Error::Checkpoint)?;
        let mut vs = nn::VarStore::new(device);
        let g = Generator::new(&vs.root(), &config);
        ck.load_into(&mut vs, "g_ema")?;
        vs.freeze();
        let w_mean = mean_latent(&g);
        Ok(Self {
            config,
            vs,
            g,
            w_mean,
        })
    }

    /// Images for z of `seed` (one per index in `0..n`), w pulled toward
    /// the mean by `truncation` (1: none). `[n, 3, s, s]` in about [-1, 1]
    pub fn sample(&self, n: usize, seed: u64, truncation: f64) -> Tensor {
        let dev = self.vs.device();
        tch::no_grad(|| {
            let imgs: Vec<Tensor> = (0..n)
                .map(|i| {
                    let w = self
                        .g
                        .mapping(&sample_z(seed, i, self.config.style_dim, dev));
                    let w = &self.w_mean + (w - &self.w_mean) * truncation;
                    self.g
                        .synthesis(&self.g.broadcast(&w), &sample_noise(&self.g, seed, i))
                })
                .collect();
            Tensor::cat(&imgs, 0)
        })
    }
}

/// Mean w over 4,096 z of a fixed seed. `[1, style_dim]`
pub fn mean_latent(g: &Generator) -> Tensor {
    let dev = g.constant.device();
    tch::no_grad(|| {
        g.mapping(&normal(4096, g.config.style_dim, 0x3EA9, dev))
            .mean_dim([0i64].as_slice(), true, Kind::Float)
    })
}

/// The training images, as batches in [-1, 1].
enum Images {
    /// Shapes training split, RGB bytes per image.
    Shapes {
        pixels: Vec<Vec<u8>>,
        size: u32,
    },
    Cub(CaptionedImages),
}

impl Images {
    fn len(&self) -> usize {
        match self {
            Images::Shapes { pixels, .. } => pixels.len(),
            Images::Cub(d) => d.classes.len(),
        }
    }

    /// `[b, 3, s, s]`
    fn batch(&self, idx: &[usize], rng: &mut ChaCha8Rng, flip: bool, dev: Device) -> Tensor {
        let x = match self {
            Images::Shapes { pixels, size } => {
                let rows: Vec<&[u8]> = idx.iter().map(|&i| pixels[i].as_slice()).collect();
                images_to_tensor(&rows, *size).to_device(dev)
            }
            Images::Cub(d) => d.images.batch(idx, rng, dev).pop().expect("one size"),
        };
        if !flip {
            return x;
        }
        let mirror: Vec<i64> = idx
            .iter()
            .enumerate()
            .filter(|_| rng.gen_bool(0.5))
            .map(|(k, _)| k as i64)
            .collect();
        if mirror.is_empty() {
            return x;
        }
        let sel = Tensor::from_slice(&mirror).to_device(dev);
        x.index_copy(0, &sel, &x.index_select(0, &sel).flip([3]))
    }
}

/// Generator, discriminator, their optimisers and the running average.
pub struct StyleGan2Trainer {
    pub rc: StyleGan2RunConfig,
    pub g_vs: nn::VarStore,
    pub d_vs: nn::VarStore,
    pub g: Generator,
    pub d: Discriminator,
    pub g_opt: Adam,
    pub d_opt: Adam,
    pub ema: WeightAverage,
    /// Running mean of the path lengths (the regulariser's target).
    pub mean_path_length: f64,
    pub step: i64,
    pub seed: u64,
    images: Images,
}

/// Lazy regularisation's correction of learning rate and betas for a
/// regulariser applied every `every` steps (StyleGAN2 app. B).
fn lazy_adam(vs: &nn::VarStore, lr: f64, every: i64) -> Adam {
    let c = every as f64 / (every as f64 + 1.0);
    Adam::new(vs, lr * c, 0.0f64.powf(c), 0.99f64.powf(c))
}

impl StyleGan2Trainer {
    fn new(rc: StyleGan2RunConfig, images: Images, seed: u64, device: Device) -> Self {
        tch::manual_seed(seed as i64); // reproducible initial weights
        let g_vs = nn::VarStore::new(device);
        let g = Generator::new(&g_vs.root(), &rc.net);
        let d_vs = nn::VarStore::new(device);
        let d = Discriminator::new(&d_vs.root(), &rc.net);
        let g_opt = lazy_adam(&g_vs, rc.lr, rc.g_reg_every);
        let d_opt = lazy_adam(&d_vs, rc.lr, rc.d_reg_every);
        // the decay ramps up over the first steps: a short run's average
        // must not hold the random initial weights
        let ema = WeightAverage::with_warmup(&g_vs, rc.ema_decay);
        Self {
            rc,
            g_vs,
            d_vs,
            g,
            d,
            g_opt,
            d_opt,
            ema,
            mean_path_length: 0.0,
            step: 0,
            seed,
            images,
        }
    }

    /// w+ for a batch: one latent, or two mixed at a random layer.
    /// `[b, n_latent, style_dim]`
    fn latents(&self, b: i64, rng: &mut ChaCha8Rng) -> Tensor {
        let dev = self.g_vs.device();
        let sd = self.rc.net.style_dim;
        let nl = self.rc.net.n_latent();
        let w = self.g.mapping(&Tensor::randn([b, sd], (Kind::Float, dev)));
        if rng.gen::<f64>() >= self.rc.mixing {
            return self.g.broadcast(&w);
        }
        let w2 = self.g.mapping(&Tensor::randn([b, sd], (Kind::Float, dev)));
        let inject = rng.gen_range(1..nl);
        Tensor::cat(
            &[
                w.unsqueeze(1).repeat([1, inject, 1]),
                w2.unsqueeze(1).repeat([1, nl - inject, 1]),
            ],
            1,
        )
    }

    fn train_step(&mut self) -> Metrics {
        // every random draw of a step comes from its seed: a resumed run
        // continues exactly
        let seed = step_seed(self.seed, self.step);
        tch::manual_seed(seed as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dev = self.g_vs.device();
        let b = self.rc.batch_size;
        let n = self.images.len();
        let idx: Vec<usize> = (0..b).map(|_| rng.gen_range(0..n)).collect();
        let real = self.images.batch(&idx, &mut rng, self.rc.flip, dev); // [b, 3, s, s]
        let mut m = Vec::new();

        // D: softplus(D(G(z))) + softplus(-D(x))
        let fake = tch::no_grad(|| {
            let lat = self.latents(b, &mut rng);
            self.g.synthesis(&lat, &self.g.random_noise(b))
        });
        let real_pred = self.d.forward(&real);
        let fake_pred = self.d.forward(&fake);
        let d_loss = (fake_pred.softplus().mean(Kind::Float)
            + (-&real_pred).softplus().mean(Kind::Float))
        .mean(Kind::Float);
        self.d_opt.zero_grad();
        d_loss.backward();
        self.d_opt.step();
        m.push(("loss_d".into(), d_loss.double_value(&[])));
        m.push((
            "real_score".into(),
            real_pred.mean(Kind::Float).double_value(&[]),
        ));
        m.push((
            "fake_score".into(),
            fake_pred.mean(Kind::Float).double_value(&[]),
        ));

        // lazy R1: gamma/2 E||grad_x D(x)||^2 (StyleGAN2 sec. 3.1)
        if self.rc.r1 > 0.0 && self.step % self.rc.d_reg_every == 0 {
            let x = real.detach().set_requires_grad(true);
            let pred = self.d.forward(&x);
            let grad = Tensor::run_backward(&[pred.sum(Kind::Float)], &[&x], true, true)
                .pop()
                .expect("one gradient");
            let r1 = grad.square().reshape([b, -1]).sum_dim_intlist(
                [1i64].as_slice(),
                false,
                Kind::Float,
            );
            let r1 = r1.mean(Kind::Float);
            let loss = &r1 * (self.rc.r1 / 2.0 * self.rc.d_reg_every as f64)
                + pred.select(0, 0).sum(Kind::Float) * 0.0;
            self.d_opt.zero_grad();
            loss.backward();
            self.d_opt.step();
            m.push(("r1".into(), r1.double_value(&[])));
        }

        // G: softplus(-D(G(z)))
        let lat = self.latents(b, &mut rng);
        let fake = self.g.synthesis(&lat, &self.g.random_noise(b));
        let g_loss = (-self.d.forward(&fake)).softplus().mean(Kind::Float);
        self.g_opt.zero_grad();
        self.g_opt.backward(&g_loss);
        self.g_opt.step();
        m.push(("loss_g".into(), g_loss.double_value(&[])));

        // lazy path-length regularisation (sec. 3.2): the Jacobian norm of
        // G at w against its running mean
        if self.rc.path_regularize > 0.0 && self.step % self.rc.g_reg_every == 0 {
            let pb = (b / self.rc.path_batch_shrink).max(1);
            let lat = self.latents(pb, &mut rng);
            let img = self.g.synthesis(&lat, &self.g.random_noise(pb)); // [pb, 3, s, s]
            let (h, w) = (img.size()[2], img.size()[3]);
            let y = img.randn_like() / ((h * w) as f64).sqrt();
            let grad = Tensor::run_backward(&[(&img * &y).sum(Kind::Float)], &[&lat], true, true)
                .pop()
                .expect("one gradient"); // [pb, n_latent, style_dim]
            let lengths = grad
                .square()
                .sum_dim_intlist([2i64].as_slice(), false, Kind::Float)
                .mean_dim([1i64].as_slice(), false, Kind::Float)
                .sqrt(); // [pb]
            let mean_now = lengths.mean(Kind::Float).double_value(&[]);
            let target = self.mean_path_length + 0.01 * (mean_now - self.mean_path_length);
            let penalty = (&lengths - target).square().mean(Kind::Float);
            let loss = &penalty * (self.rc.path_regularize * self.rc.g_reg_every as f64)
                + img.flatten(0, -1).select(0, 0) * 0.0;
            self.g_opt.zero_grad();
            loss.backward();
            self.g_opt.step();
            if mean_now.is_finite() {
                self.mean_path_length = target;
            }
            m.push(("path_length".into(), mean_now));
        }
        self.ema.update();
        self.step += 1;
        m
    }

    fn save(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("model".to_string(), "stylegan2".to_string());
        meta.insert("preset".into(), self.rc.preset.clone());
        meta.insert("config".into(), to_json(&self.rc.net)?);
        meta.insert("run_config".into(), to_json(&self.rc)?);
        if let Some(data) = shapes_config(&self.rc) {
            let data = toml::to_string(&data).map_err(|e| Error::Config(e.to_string()))?;
            meta.insert("data".into(), data);
        }
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        meta.insert("mean_path_length".into(), self.mean_path_length.to_string());
        meta.insert("versions".into(), versions());
        meta.insert("device".into(), device_name(self.g_vs.device()));
        let mut t = checkpoint::named(&self.g_vs, "g");
        t.extend(checkpoint::named(&self.d_vs, "d"));
        // the averaged generator under rosinality's `g_ema`, with the
        // fixed buffers (noise maps, blur kernels) of G
        t.extend(self.ema.named("g_ema"));
        t.extend(
            checkpoint::buffers(&self.g_vs)
                .into_iter()
                .map(|(n, v)| (format!("g_ema.{n}"), v)),
        );
        t.extend(self.g_opt.state("optim.g"));
        t.extend(self.d_opt.state("optim.d"));
        checkpoint::save(path, &meta, &t)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.expect_model("stylegan2")?;
        ck.load_into(&mut self.g_vs, "g")?;
        ck.load_into(&mut self.d_vs, "d")?;
        self.ema.restore(ck, "g_ema")?;
        self.g_opt
            .load_state("optim.g", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        self.d_opt
            .load_state("optim.d", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        let num = |k: &str| -> Result<f64> {
            ck.meta(k)?
                .parse()
                .map_err(|_| Error::Checkpoint(format!("bad {k}")))
        };
        self.step = num("step")? as i64;
        self.ema.updates = self.step;
        self.mean_path_length = num("mean_path_length")?;
        Ok(())
    }

    /// 16 samples of the running average for fixed z and noise.
    fn sample_grid(&self) -> Rgb {
        let imgs = self.ema.with_average(|| {
            tch::no_grad(|| {
                let dev = self.g_vs.device();
                let rows: Vec<Tensor> = (0..16)
                    .map(|i| {
                        let z = sample_z(0x5A3, i, self.rc.net.style_dim, dev);
                        let w = self.g.broadcast(&self.g.mapping(&z));
                        self.g.synthesis(&w, &sample_noise(&self.g, 0x5A3, i))
                    })
                    .collect();
                Tensor::cat(&rows, 0)
            })
        });
        let all = tensor_to_images(&imgs);
        let rows: Vec<(Vec<Rgb>, Option<String>)> =
            all.chunks(8).map(|c| (c.to_vec(), None)).collect();
        grid(&rows, 2)
    }
}

/// `t2i bench --model stylegan2`: a training iteration of each kind of the
/// lazy-regularisation cycle and their mean over the cycle, and generation
/// by the mapping and synthesis networks.
#[derive(Debug, Clone, Serialize)]
pub struct StyleGan2Bench {
    pub preset: String,
    pub image_size: i64,
    pub batch_size: i64,
    pub device: String,
    pub threads: i32,
    /// D and G steps alone.
    pub plain_step: Timing,
    /// With path-length regularisation (every `g_reg_every` steps).
    pub path_step: Timing,
    /// With R1 and path-length regularisation (every `d_reg_every` steps).
    pub r1_step: Timing,
    /// The mean step over a cycle of `d_reg_every` steps.
    pub mean_step_ms: f64,
    pub generate_batch1: Timing,
    pub generate_batch16: Timing,
    pub peak_rss_mib: f64,
}

impl StyleGan2Bench {
    pub fn table(&self) -> String {
        let title = crate::bench::bench_title(
            &format!("stylegan2 {}", self.preset),
            self.image_size,
            self.batch_size,
            &self.device,
            self.threads,
        );
        let mut s = crate::bench::timing_table(
            &title,
            &[
                ("train step, no regulariser", &self.plain_step),
                ("train step + path length", &self.path_step),
                ("train step + R1 + path length", &self.r1_step),
                ("generate batch 1", &self.generate_batch1),
                ("generate batch 16", &self.generate_batch16),
            ],
        );
        s += &format!(
            "mean train step over the regularisation cycle {:.2} ms\npeak memory {:.0} MiB",
            self.mean_step_ms, self.peak_rss_mib
        );
        s
    }
}

/// Times the training steps and generation of `rc`'s networks on random
/// images (the data's content does not change the cost).
pub fn bench(rc: &StyleGan2RunConfig, device: Device, repeats: usize) -> Result<StyleGan2Bench> {
    let size = rc.net.size as u32;
    let pixels = (0..64u64)
        .map(|i| {
            let mut r = ChaCha8Rng::seed_from_u64(i);
            (0..size * size * 3).map(|_| r.gen::<u8>()).collect()
        })
        .collect();
    let mut t = StyleGan2Trainer::new(rc.clone(), Images::Shapes { pixels, size }, 0, device);
    let sync = || crate::bench::sync(device);
    let (dr, gr) = (rc.d_reg_every, rc.g_reg_every);
    // step numbers that take each branch of the cycle
    let plain = (1..dr * gr)
        .find(|k| k % dr != 0 && k % gr != 0)
        .unwrap_or(1);
    let path = (1..dr * gr)
        .find(|k| k % gr == 0 && k % dr != 0)
        .unwrap_or(plain);
    let run = |t: &mut StyleGan2Trainer, k: i64| {
        t.step = k;
        t.train_step();
        sync();
    };
    let plain_step = time(repeats, 2, || run(&mut t, plain));
    let path_step = time(repeats, 1, || run(&mut t, path));
    let r1_step = time(repeats, 1, || run(&mut t, 0));
    // over d_reg_every steps: one with R1 (and path length when due)
    let n = dr as f64;
    let paths = (1..dr).filter(|k| k % gr == 0).count() as f64;
    let mean_step_ms = (r1_step.median_ms
        + paths * path_step.median_ms
        + (n - 1.0 - paths) * plain_step.median_ms)
        / n;
    let gen = |b: i64| {
        let g = &t.g;
        let z = Tensor::randn([b, rc.net.style_dim], (Kind::Float, device));
        move || {
            tch::no_grad(|| {
                let w = g.broadcast(&g.mapping(&z));
                let _ = g.synthesis(&w, &g.random_noise(b));
            });
            sync();
        }
    };
    let generate_batch1 = time(repeats * 3, 2, gen(1));
    let generate_batch16 = time(repeats, 1, gen(16));
    Ok(StyleGan2Bench {
        preset: rc.preset.clone(),
        image_size: rc.net.size,
        batch_size: rc.batch_size,
        device: device_name(device),
        threads: tch::get_num_threads(),
        plain_step,
        path_step,
        r1_step,
        mean_step_ms,
        generate_batch1,
        generate_batch16,
        peak_rss_mib: crate::bench::peak_rss_mib(),
    })
}

/// A value as JSON metadata.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Config(e.to_string()))
}

/// The training images of the run's data set.
/// The shapes data set of a run (None for CUB).
fn shapes_config(rc: &StyleGan2RunConfig) -> Option<ShapesConfig> {
    (rc.data.name == "shapes").then(|| ShapesConfig {
        image_size: rc.net.size as u32,
        max_objects: rc.data.max_objects,
        train_size: rc.data.train_size,
        ..ShapesConfig::default()
    })
}

fn load_images(rc: &StyleGan2RunConfig, ctx: &TrainContext) -> Result<Images> {
    if let Some(config) = shapes_config(rc) {
        let shapes = Shapes::new(config).map_err(|e| Error::Config(e.to_string()))?;
        let pixels = (0..shapes.len(Split::Train))
            .map(|i| shapes.sample(Split::Train, i).pixels)
            .collect();
        return Ok(Images::Shapes {
            pixels,
            size: shapes.config.image_size,
        });
    }
    let data = ctx.load_cub(
        rc.data.root(),
        crate::data::cub::CubSplit::Train,
        &crate::data::images::LoadOptions {
            augment: true,
            ..ctx.loading(rc.net.size)
        },
    )?;
    Ok(Images::Cub(data))
}

/// The StyleGAN2 backbone as a model family.
pub struct StyleGan2Family;

impl TypedFamily for StyleGan2Family {
    type Config = StyleGan2RunConfig;
    const NAME: &'static str = "stylegan2";
    const ABOUT: &'static str =
        "unconditional StyleGAN2, the backbone of StyleT2I (rosinality's key names)";
    const PRESETS: &'static [&'static str] = &["tiny", "paper"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr"],
            "batch_size" => &["batch_size"],
            "image_size" => &["net.size"],
            "data" => &["data.name"],
            "data_root" => &["data.root"],
            "train_size" => &["data.train_size"],
            _ => &[],
        }
    }
    fn trainer(
        &self,
        rc: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>> {
        let images = load_images(&rc, ctx)?;
        let mut t = StyleGan2Trainer::new(rc, images, ctx.seed, ctx.device);
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        Ok(Box::new(t))
    }
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn FamilyGenerator>> {
        Ok(Box::new(StyleGan2Model::from_checkpoint(ck, device)?))
    }
    fn import(&self, req: &ImportRequest) -> Result<String> {
        let m = crate::import::import_stylegan2(req.weights, Device::Cpu)?;
        let src = req.weights.display().to_string();
        let mut meta = BTreeMap::new();
        meta.insert("model".to_string(), "stylegan2".to_string());
        meta.insert("preset".into(), "imported".into());
        meta.insert("config".into(), to_json(&m.config)?);
        meta.insert(
            "source".into(),
            format!("imported from {src} ({})", m.source_key),
        );
        meta.insert("step".into(), "0".into());
        meta.insert("seed".into(), "0".into());
        meta.insert("versions".into(), versions());
        meta.insert("device".into(), "cpu".into());
        let mut t = checkpoint::named(&m.g_ema, "g_ema");
        let mut parts = vec![format!("g_ema (from {})", m.source_key)];
        if let Some(g) = &m.g {
            t.extend(checkpoint::named(g, "g"));
            parts.push("g".into());
        }
        if let Some(d) = &m.d {
            t.extend(checkpoint::named(d, "d"));
            parts.push("d".into());
        }
        checkpoint::save(req.out, &meta, &t)?;
        let c = &m.config;
        Ok(format!(
            "imported StyleGAN2 {}x{}, w {}-d, {} mapping layers, channels min({}, {} / r); {} -> {}",
            c.size,
            c.size,
            c.style_dim,
            c.n_mlp,
            c.max_channels,
            c.channel_base,
            parts.join(", "),
            req.out.display()
        ))
    }
    fn bench(
        &self,
        config: &Self::Config,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let r = bench(config, opts.device, opts.repeats)?;
        Ok(vec![(
            serde_json::to_value(&r).map_err(|e| Error::Config(e.to_string()))?,
            r.table(),
        )])
    }
    fn parameter_counts(&self, rc: &Self::Config) -> Result<(String, Vec<ParamRow>)> {
        let count = |build: &dyn Fn(&nn::Path)| -> ParamRow {
            let vs = nn::VarStore::new(Device::Cpu);
            build(&vs.root());
            let mut parts: BTreeMap<String, i64> = BTreeMap::new();
            for (name, t) in vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
            {
                let top = name.split('.').next().unwrap_or("").to_string();
                *parts.entry(top).or_default() += t.numel() as i64;
            }
            let total = parts.values().sum();
            (String::new(), total, parts.into_iter().collect())
        };
        let mut g = count(&|p| {
            Generator::new(p, &rc.net);
        });
        g.0 = "generator".into();
        let mut d = count(&|p| {
            Discriminator::new(p, &rc.net);
        });
        d.0 = "discriminator".into();
        Ok((
            format!(
                "StyleGAN2 {}x{}, w {}-d, {} mapping layers",
                rc.net.size, rc.net.size, rc.net.style_dim, rc.net.n_mlp
            ),
            vec![g, d],
        ))
    }
}

impl Trainer for StyleGan2Trainer {
    fn step(&self) -> i64 {
        self.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        Ok(StyleGan2Trainer::train_step(self))
    }
    fn lr(&self) -> f64 {
        self.g_opt.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        StyleGan2Trainer::save(self, path)
    }
    fn sample_grid(&self) -> Result<Option<Rgb>> {
        Ok(Some(StyleGan2Trainer::sample_grid(self)))
    }
    fn finish(&mut self, ctx: &TrainContext, interrupted: bool, n: usize) -> Result<Summary> {
        let Some(data) = shapes_config(&self.rc) else {
            return Ok(Summary::default());
        };
        if interrupted || n == 0 {
            return Ok(Summary::default());
        }
        let ck = checkpoint::load(&ctx.run.last_checkpoint())?;
        let model = StyleGan2Model::from_checkpoint(&ck, ctx.device)?;
        let reading = crate::eval::shapes::read_unconditional(&model, &data, n, 0)?;
        Ok(Summary {
            lines: reading.lines(),
            value: serde_json::to_value(&reading).map_err(|e| Error::Config(e.to_string()))?,
        })
    }
}

impl FamilyGenerator for StyleGan2Model {
    fn family(&self) -> &'static str {
        "stylegan2"
    }
    fn image_size(&self) -> i64 {
        self.config.size
    }
    fn controls(&self) -> Controls {
        Controls {
            unconditional: true,
            ..Controls::default()
        }
    }
    fn unknown_words(&self, caption: &str) -> Result<Vec<String>> {
        unconditional(caption)?;
        Ok(Vec::new())
    }
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated> {
        for c in captions {
            unconditional(c)?;
        }
        Ok(Generated {
            images: self
                .sample(captions.len(), seed, 1.0)
                .to_device(Device::Cpu),
            first_stage: None,
            drawn_as: None,
            corrected: None,
        })
    }
}

/// A stylegan2 backbone draws from noise alone: text is refused rather than
/// ignored.
fn unconditional(caption: &str) -> Result<()> {
    if caption.trim().is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "a stylegan2 checkpoint is unconditional and cannot draw '{caption}': pass --text '' for samples, or train a text model on it (styleT2I)"
    )))
}
