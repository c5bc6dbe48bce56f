//! StackGAN (Zhang et al., ICCV 2017): Conditioning Augmentation, a Stage-I
//! GAN that sketches a low-resolution image from text and noise (sec. 3.2),
//! and a Stage-II GAN that refines it with the text given again (sec. 3.3).
//!
//! Networks follow `hanzhanggit/StackGAN-Pytorch` (`code/model.py`): the
//! sub-paths repeat its state_dict keys (`ca_net.fc`, `fc.0`, `upsample1.1`,
//! `encode_img.2`, `get_cond_logits.outlogits.0` ...), so the official
//! checkpoints load by name. D outputs probabilities (a sigmoid ends each
//! logits head), as in the official code.

use crate::checkpoint::{self, Checkpoint};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::layers::ca::{kl_loss, CaNet};
use crate::layers::{linear, lrelu, BatchNorm, InitKind, Seq};
use crate::rng::normal;
use crate::text::{AnyTextEncoder, TextEncoder};
use crate::versions;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

/// Configuration of both stages (`cfg/*.yml` of the official code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackGanConfig {
    pub preset: String,
    /// Noise size (`Z_DIM`).
    pub z_dim: i64,
    /// Generator width (`GAN.GF_DIM`); Stage-I starts at 8x this at 4x4.
    pub gf_dim: i64,
    /// Discriminator width (`GAN.DF_DIM`).
    pub df_dim: i64,
    /// Conditioning-augmentation size (`GAN.CONDITION_DIM`).
    pub condition_dim: i64,
    /// Residual blocks of the Stage-II generator (`GAN.R_NUM`).
    pub r_num: i64,
    /// Text-embedding size (`TEXT.DIMENSION`).
    pub text_dim: i64,
    /// Stage-I image side.
    pub stage1_size: i64,
    /// Stage-II image side.
    pub stage2_size: i64,
    pub batch_size: i64,
    /// Adam learning rates and beta1 (`TRAIN.GENERATOR_LR`, ...).
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    /// KL weight (`TRAIN.COEFF.KL`: 2.0 in the code; the paper says 1).
    pub kl_coeff: f64,
    /// Learning rates halve every this many steps (the code: every
    /// `LR_DECAY_EPOCH` epochs).
    pub lr_decay_every: i64,
}

impl StackGanConfig {
    /// The official birds configuration (64 -> 256).
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            z_dim: 100,
            gf_dim: 128,
            df_dim: 64,
            condition_dim: 128,
            r_num: 4,
            text_dim: 1024,
            stage1_size: 64,
            stage2_size: 256,
            batch_size: 64,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            kl_coeff: 2.0,
            lr_decay_every: 20 * 138, // 20 epochs of 8,855 images at batch 64
        }
    }

    /// 64 -> 128 with 2 residual blocks.
    pub fn paper128() -> Self {
        Self {
            preset: "paper128".into(),
            r_num: 2,
            stage2_size: 128,
            ..Self::paper()
        }
    }

    /// For CPU training: 32 -> 64, narrow networks.
    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            z_dim: 100,
            gf_dim: 32,
            df_dim: 32,
            condition_dim: 64,
            r_num: 2,
            text_dim: 128,
            stage1_size: 32,
            stage2_size: 64,
            batch_size: 32,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            kl_coeff: 2.0,
            lr_decay_every: 3000,
        }
    }

    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" => Some(Self::paper()),
            "paper128" => Some(Self::paper128()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }

    /// Checks the sizes the networks can be built for.
    pub fn validate(&self) -> Result<(), String> {
        let pow2 = |s: i64| s >= 16 && s & (s - 1) == 0;
        if !pow2(self.stage1_size) || !pow2(self.stage2_size) {
            return Err("image sides must be powers of two >= 16".into());
        }
        if self.stage2_size <= self.stage1_size {
            return Err("Stage-II must be larger than Stage-I".into());
        }
        if self.gf_dim < 16 || self.gf_dim % 16 != 0 {
            return Err("gf_dim must be a multiple of 16".into());
        }
        Ok(())
    }
}

fn log2(x: i64) -> i64 {
    63 - x.leading_zeros() as i64
}

fn relu(x: &Tensor) -> Tensor {
    x.relu()
}

fn tanh(x: &Tensor) -> Tensor {
    x.tanh()
}

/// `upBlock`: nearest x2, conv3x3, BN, ReLU.
fn up_block(p: nn::Path, cin: i64, cout: i64) -> nn::SequentialT {
    Seq::new(p, InitKind::DcGan)
        .up_conv3x3(cin, cout)
        .bn(cout)
        .act(relu)
        .done()
}

/// `ResBlock`: x + (conv3x3, BN, ReLU, conv3x3, BN)(x), then ReLU.
#[derive(Debug)]
struct ResBlock {
    block: nn::SequentialT,
}

impl ResBlock {
    fn new(p: nn::Path, c: i64) -> Self {
        let block = Seq::new(&p / "block", InitKind::DcGan)
            .conv(c, c, 3, 1, 1, false)
            .bn(c)
            .act(relu)
            .conv(c, c, 3, 1, 1, false)
            .bn(c)
            .done();
        Self { block }
    }
}

impl ModuleT for ResBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        (self.block.forward_t(x, train) + x).relu()
    }
}

/// What a generator returns.
#[derive(Debug)]
pub struct GenOutput {
    /// Stage-I image (Stage-II generators only). `[batch, 3, s1, s1]`
    pub stage1: Option<Tensor>,
    /// `[batch, 3, s, s]` in [-1, 1]
    pub image: Tensor,
    /// CA mean and log-variance of this stage. `[batch, c_dim]`
    pub mu: Tensor,
    pub logvar: Tensor,
}

/// Stage-I generator `STAGE1_G`.
#[derive(Debug)]
pub struct Stage1Generator {
    pub ca_net: CaNet,
    fc: nn::SequentialT,
    ups: Vec<nn::SequentialT>,
    img: nn::SequentialT,
    ngf: i64,
}

impl Stage1Generator {
    pub fn new(p: nn::Path, c: &StackGanConfig) -> Self {
        let ngf = c.gf_dim * 8;
        let ca_net = CaNet::new(&p / "ca_net", c.text_dim, c.condition_dim, InitKind::DcGan);
        let fc_p = &p / "fc";
        let fc = nn::seq_t()
            .add(linear(
                &fc_p / 0,
                c.z_dim + c.condition_dim,
                ngf * 16,
                false,
                InitKind::DcGan,
            ))
            .add(BatchNorm::new(&fc_p / 1, ngf * 16, InitKind::DcGan))
            .add_fn(|x| x.relu());
        let n_up = log2(c.stage1_size / 4);
        let mut ch = ngf;
        let mut ups = Vec::new();
        for i in 0..n_up {
            ups.push(up_block(&p / format!("upsample{}", i + 1), ch, ch / 2));
            ch /= 2;
        }
        let img = Seq::new(&p / "img", InitKind::DcGan)
            .conv(ch, 3, 3, 1, 1, false)
            .act(tanh)
            .done();
        Self {
            ca_net,
            fc,
            ups,
            img,
            ngf,
        }
    }

    /// # Shapes
    /// `text [batch, text_dim]`, `noise [batch, z_dim]`, `eps [batch, c_dim]`
    /// (`None`: the CA mean) -> image `[batch, 3, s1, s1]`.
    pub fn forward_t(
        &self,
        text: &Tensor,
        noise: &Tensor,
        eps: Option<&Tensor>,
        train: bool,
    ) -> GenOutput {
        let (c, mu, logvar) = self.ca_net.forward(text, eps);
        let zc = Tensor::cat(&[noise, &c], 1); // [batch, z + c]
        let mut h = self.fc.forward_t(&zc, train).view([-1, self.ngf, 4, 4]); // [batch, 8 gf, 4, 4]
        for u in &self.ups {
            h = u.forward_t(&h, train); // x2 each
        }
        GenOutput {
            stage1: None,
            image: self.img.forward_t(&h, train),
            mu,
            logvar,
        }
    }
}

/// `D_GET_LOGITS`: with the condition, concat(h, c replicated 4x4) ->
/// conv3x3 -> BN -> LeakyReLU -> conv4x4 stride 4 -> sigmoid; without,
/// conv4x4 stride 4 -> sigmoid.
#[derive(Debug)]
pub struct Logits {
    outlogits: nn::SequentialT,
    conditional: bool,
    c_dim: i64,
}

impl Logits {
    pub fn new(p: nn::Path, ndf: i64, c_dim: i64, conditional: bool) -> Self {
        let s = Seq::new(&p / "outlogits", InitKind::DcGan);
        let outlogits = if conditional {
            s.conv(ndf * 8 + c_dim, ndf * 8, 3, 1, 1, false)
                .bn(ndf * 8)
                .act(lrelu)
                .conv(ndf * 8, 1, 4, 4, 0, true)
                .act(|x| x.sigmoid())
                .done()
        } else {
            s.conv(ndf * 8, 1, 4, 4, 0, true)
                .act(|x| x.sigmoid())
                .done()
        };
        Self {
            outlogits,
            conditional,
            c_dim,
        }
    }

    /// `h [batch, 8 df, 4, 4]`, `c [batch, c_dim]` -> probabilities `[batch]`.
    pub fn forward_t(&self, h: &Tensor, c: Option<&Tensor>, train: bool) -> Tensor {
        let x = match (self.conditional, c) {
            (true, Some(c)) => {
                let c = c.view([-1, self.c_dim, 1, 1]).repeat([1, 1, 4, 4]);
                Tensor::cat(&[h, &c], 1)
            }
            _ => h.shallow_clone(),
        };
        self.outlogits.forward_t(&x, train).view([-1])
    }
}

/// `STAGE1_D` / `STAGE2_D`: image encoder to `[batch, 8 df, 4, 4]`, a
/// conditional logits head, and (Stage-II) an unconditional one.
#[derive(Debug)]
pub struct Discriminator {
    encode_img: nn::SequentialT,
    pub get_cond_logits: Logits,
    pub get_uncond_logits: Option<Logits>,
}

impl Discriminator {
    /// Stage-I D for `size` x `size` images.
    pub fn stage1(p: nn::Path, c: &StackGanConfig) -> Self {
        Self::build(p, c, c.stage1_size, false)
    }

    /// Stage-II D (with the unconditional head).
    pub fn stage2(p: nn::Path, c: &StackGanConfig) -> Self {
        Self::build(p, c, c.stage2_size, true)
    }

    fn build(p: nn::Path, c: &StackGanConfig, size: i64, uncond: bool) -> Self {
        let ndf = c.df_dim;
        let n_down = log2(size / 4);
        // 8 df channels at 4x4 whatever the size: smaller images start wider
        let first = ndf * (1i64 << (4 - n_down).max(0));
        let mut s = Seq::new(&p / "encode_img", InitKind::DcGan)
            .conv(3, first, 4, 2, 1, false)
            .act(lrelu);
        let mut ch = first;
        for _ in 1..n_down {
            s = s.conv(ch, ch * 2, 4, 2, 1, false).bn(ch * 2).act(lrelu);
            ch *= 2;
        }
        // Stage-II: 3x3 convolutions back down to 8 df
        while ch > ndf * 8 {
            s = s.conv(ch, ch / 2, 3, 1, 1, false).bn(ch / 2).act(lrelu);
            ch /= 2;
        }
        Self {
            encode_img: s.done(),
            get_cond_logits: Logits::new(&p / "get_cond_logits", ndf, c.condition_dim, true),
            get_uncond_logits: uncond
                .then(|| Logits::new(&p / "get_uncond_logits", ndf, c.condition_dim, false)),
        }
    }

    /// # Shapes
    /// `[batch, 3, s, s]` -> `[batch, 8 df, 4, 4]`
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.encode_img.forward_t(x, train)
    }
}

/// Stage-II generator `STAGE2_G`: holds the (frozen) Stage-I generator.
#[derive(Debug)]
pub struct Stage2Generator {
    pub stage1: Stage1Generator,
    pub ca_net: CaNet,
    encoder: nn::SequentialT,
    hr_joint: nn::SequentialT,
    residual: Vec<ResBlock>,
    ups: Vec<nn::SequentialT>,
    img: nn::SequentialT,
    c_dim: i64,
}

impl Stage2Generator {
    pub fn new(p: nn::Path, c: &StackGanConfig) -> Self {
        let stage1 = Stage1Generator::new(&p / "STAGE1_G", c);
        let ngf = c.gf_dim;
        let ca_net = CaNet::new(&p / "ca_net", c.text_dim, c.condition_dim, InitKind::DcGan);
        let encoder = Seq::new(&p / "encoder", InitKind::DcGan)
            .conv(3, ngf, 3, 1, 1, false)
            .act(relu)
            .conv(ngf, ngf * 2, 4, 2, 1, false)
            .bn(ngf * 2)
            .act(relu)
            .conv(ngf * 2, ngf * 4, 4, 2, 1, false)
            .bn(ngf * 4)
            .act(relu)
            .done();
        let hr_joint = Seq::new(&p / "hr_joint", InitKind::DcGan)
            .conv(c.condition_dim + ngf * 4, ngf * 4, 3, 1, 1, false)
            .bn(ngf * 4)
            .act(relu)
            .done();
        let residual = (0..c.r_num)
            .map(|i| ResBlock::new(&p / "residual" / i, ngf * 4))
            .collect();
        let n_up = log2(c.stage2_size / (c.stage1_size / 4));
        let mut ch = ngf * 4;
        let mut ups = Vec::new();
        for i in 0..n_up {
            ups.push(up_block(&p / format!("upsample{}", i + 1), ch, ch / 2));
            ch /= 2;
        }
        let img = Seq::new(&p / "img", InitKind::DcGan)
            .conv(ch, 3, 3, 1, 1, false)
            .act(tanh)
            .done();
        Self {
            stage1,
            ca_net,
            encoder,
            hr_joint,
            residual,
            ups,
            img,
            c_dim: c.condition_dim,
        }
    }

    /// # Shapes
    /// `text [batch, text_dim]`, `noise [batch, z]`, CA noise of Stage-I and
    /// Stage-II `[batch, c_dim]` -> Stage-I `[batch, 3, s1, s1]` and Stage-II
    /// `[batch, 3, s2, s2]`.
    pub fn forward_t(
        &self,
        text: &Tensor,
        noise: &Tensor,
        eps1: Option<&Tensor>,
        eps2: Option<&Tensor>,
        train: bool,
    ) -> GenOutput {
        let s1 = self
            .stage1
            .forward_t(text, noise, eps1, train)
            .image
            .detach(); // Stage-I is fixed while Stage-II trains
        let enc = self.encoder.forward_t(&s1, train); // [batch, 4 gf, s1/4, s1/4]
        let (c, mu, logvar) = self.ca_net.forward(text, eps2);
        let (h, w) = (enc.size()[2], enc.size()[3]);
        let c = c.view([-1, self.c_dim, 1, 1]).repeat([1, 1, h, w]);
        let mut x = self.hr_joint.forward_t(&Tensor::cat(&[&enc, &c], 1), train); // [batch, 4 gf, s1/4, s1/4]
        for r in &self.residual {
            x = r.forward_t(&x, train);
        }
        for u in &self.ups {
            x = u.forward_t(&x, train);
        }
        GenOutput {
            stage1: Some(s1),
            image: self.img.forward_t(&x, train),
            mu,
            logvar,
        }
    }
}

fn bce(p: &Tensor, target: f64) -> Tensor {
    let t = p.full_like(target);
    p.binary_cross_entropy::<Tensor>(&t, None, tch::Reduction::Mean)
}

/// The discriminator losses of the official `compute_discriminator_loss`:
/// real/right, real/wrong (image i with condition i+1) and fake/right, plus
/// the unconditional terms at Stage-II. Each D call sees its own batch (as
/// in the code, which matters for BatchNorm in training mode).
/// Returns (errD, errD_real, errD_wrong, errD_fake).
pub fn discriminator_loss(
    d: &Discriminator,
    real: &Tensor,
    fake: &Tensor,
    cond: &Tensor,
    train: bool,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let b = real.size()[0];
    let cond = cond.detach();
    let real_f = d.forward_t(real, train);
    let fake_f = d.forward_t(&fake.detach(), train);
    let real_l = d.get_cond_logits.forward_t(&real_f, Some(&cond), train);
    let err_real = bce(&real_l, 1.0);
    let wrong_l = d.get_cond_logits.forward_t(
        &real_f.narrow(0, 0, b - 1),
        Some(&cond.narrow(0, 1, b - 1)),
        train,
    );
    let err_wrong = bce(&wrong_l, 0.0);
    let fake_l = d.get_cond_logits.forward_t(&fake_f, Some(&cond), train);
    let err_fake = bce(&fake_l, 0.0);
    match &d.get_uncond_logits {
        Some(u) => {
            let ur = bce(&u.forward_t(&real_f, None, train), 1.0);
            let uf = bce(&u.forward_t(&fake_f, None, train), 0.0);
            let err = (&err_real + &ur) / 2.0 + (&err_fake + &err_wrong + &uf) / 3.0;
            (err, (err_real + ur) / 2.0, err_wrong, (err_fake + uf) / 2.0)
        }
        None => {
            let err = &err_real + (&err_fake + &err_wrong) * 0.5;
            (err, err_real, err_wrong, err_fake)
        }
    }
}

/// `compute_generator_loss`: the fakes called real by the conditional head
/// (plus the unconditional one at Stage-II).
pub fn generator_loss(d: &Discriminator, fake: &Tensor, cond: &Tensor, train: bool) -> Tensor {
    let f = d.forward_t(fake, train);
    let mut err = bce(
        &d.get_cond_logits.forward_t(&f, Some(&cond.detach()), train),
        1.0,
    );
    if let Some(u) = &d.get_uncond_logits {
        err += bce(&u.forward_t(&f, None, train), 1.0);
    }
    err
}

/// KL term of the generator objective (eq. 3 / 6), unweighted.
pub fn kl(mu: &Tensor, logvar: &Tensor) -> Tensor {
    kl_loss(mu, logvar)
}

/// Total number of parameters (trainable or not) of a var store.
pub fn count(vs: &nn::VarStore) -> i64 {
    vs.variables()
        .iter()
        .filter(|(_, t)| t.is_floating_point())
        .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// The generator being trained or used.
pub enum StackGenerator {
    Stage1(Stage1Generator),
    Stage2(Stage2Generator),
}

/// A StackGAN generator with its text encoder (all a user needs to generate).
pub struct StackGanModel {
    pub config: StackGanConfig,
    pub stage: u8,
    pub encoder: AnyTextEncoder,
    pub g_vs: nn::VarStore,
    pub g: StackGenerator,
    pub device: Device,
}

impl StackGanModel {
    pub fn new(config: StackGanConfig, stage: u8, encoder: AnyTextEncoder, device: Device) -> Self {
        let g_vs = nn::VarStore::new(device);
        let g = if stage == 1 {
            StackGenerator::Stage1(Stage1Generator::new(g_vs.root(), &config))
        } else {
            StackGenerator::Stage2(Stage2Generator::new(g_vs.root(), &config))
        };
        Self {
            config,
            stage,
            encoder,
            g_vs,
            g,
            device,
        }
    }

    /// Rebuilds the generator and text encoder of a StackGAN checkpoint.
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        ck.expect_model("stackgan")?;
        let config: StackGanConfig = ck.json_meta("config")?;
        let stage: u8 = ck
            .meta("stage")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad stage".into()))?;
        let encoder = AnyTextEncoder::from_checkpoint(ck, device)?;
        let mut m = Self::new(config, stage, encoder, device);
        ck.load_into(&mut m.g_vs, "G")?;
        m.for_inference();
        Ok(m)
    }

    /// Generation from here on: G's convolution weights channels-last
    /// ([`crate::layers::to_channels_last`]; not for training).
    pub fn for_inference(&self) {
        crate::layers::to_channels_last(&self.g_vs);
    }

    /// Metadata of a checkpoint of this model.
    pub fn meta(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let mut meta = self.encoder.describe();
        meta.insert("model".into(), "stackgan".into());
        meta.insert("stage".into(), self.stage.to_string());
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.config).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert("versions".into(), versions());
        meta.insert("device".into(), device_name(self.device));
        Ok(meta)
    }

    /// Writes G and the text encoder: a checkpoint `generate` can use.
    pub fn save(&self, path: &Path, step: i64) -> Result<()> {
        let mut meta = self.meta()?;
        meta.insert("step".into(), step.to_string());
        let mut tensors = checkpoint::named(&self.g_vs, "G");
        tensors.extend(self.encoder.tensors());
        checkpoint::save(path, &meta, &tensors)
    }

    /// Forward pass with CA noise drawn from `seed` (`None`: CA means).
    pub fn forward(
        &self,
        text: &Tensor,
        noise: &Tensor,
        ca_seed: Option<u64>,
        train: bool,
    ) -> GenOutput {
        let b = text.size()[0];
        let c = self.config.condition_dim;
        let e1 = ca_seed.map(|s| normal(b, c, s ^ 0xCA1, self.device));
        let e2 = ca_seed.map(|s| normal(b, c, s ^ 0xCA2, self.device));
        match &self.g {
            StackGenerator::Stage1(g) => g.forward_t(text, noise, e1.as_ref(), train),
            StackGenerator::Stage2(g) => g.forward_t(text, noise, e1.as_ref(), e2.as_ref(), train),
        }
    }

    /// Sentence embeddings of captions.
    pub fn embed(&self, captions: &[&str]) -> Result<(Tensor, Vec<crate::text::Encoded>)> {
        tch::no_grad(|| {
            let (f, e) = self.encoder.encode(captions)?;
            Ok((f.sentence.to_device(self.device), e))
        })
    }

    /// Images for captions (eval mode, CA mean). Returns (Stage-I if this is
    /// a Stage-II model, final image).
    pub fn generate(&self, captions: &[&str], seed: u64) -> Result<(Option<Tensor>, Tensor)> {
        let (h, _) = self.embed(captions)?;
        let z = normal(captions.len() as i64, self.config.z_dim, seed, self.device);
        let o = tch::no_grad(|| self.forward(&h, &z, None, false));
        Ok((o.stage1.map(|t| t.contiguous()), o.image.contiguous()))
    }
}
