//! AttnGAN (Xu et al., CVPR 2018): the attentional generative network
//! (sec. 3.1-3.2) and the three discriminators. The DAMSM that trains it is
//! in [`super::damsm`].
//!
//! Networks follow `taoxugit/AttnGAN` (`code/model.py`); sub-paths repeat
//! its state_dict keys (`ca_net.fc`, `h_net1.fc.0`, `h_net2.att.conv_context`,
//! `img_net1.img.0`, `img_code_s16.2`, `COND_DNET.jointConv.0` ...), so the
//! official checkpoints load by name.

use crate::checkpoint::{self, load_trainable, Checkpoint};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::layers::{glu, linear, lrelu, BatchNorm, InitKind, Seq};
use crate::models::damsm::lens_mask;
use crate::rng::normal;
use crate::text::damsm::{pad_ids, RnnEncoder};
use crate::text::Encoded;
use crate::versions;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

/// Configuration (`cfg/bird_attn2.yml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttnGanConfig {
    pub preset: String,
    /// Generator width (`GAN.GF_DIM`).
    pub gf_dim: i64,
    /// Discriminator width (`GAN.DF_DIM`).
    pub df_dim: i64,
    /// Noise size (`GAN.Z_DIM`).
    pub z_dim: i64,
    /// Conditioning-augmentation size (`GAN.CONDITION_DIM`).
    pub condition_dim: i64,
    /// Residual blocks per attentional stage (`GAN.R_NUM`).
    pub r_num: i64,
    /// Word / sentence feature size D of the DAMSM text encoder
    /// (`TEXT.EMBEDDING_DIM`).
    pub text_dim: i64,
    /// Stages (`TREE.BRANCH_NUM`): 64, 128, 256 pixels.
    pub branch_num: i64,
    pub batch_size: i64,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    /// Weight of the DAMSM loss in G's objective (`TRAIN.SMOOTH.LAMBDA`).
    pub lambda: f64,
    /// Base image side of the first stage (64 in the paper).
    pub base_size: i64,
}

impl AttnGanConfig {
    /// `cfg/bird_attn2.yml`.
    pub fn paper() -> Self {
        Self {
            preset: "paper".into(),
            gf_dim: 32,
            df_dim: 64,
            z_dim: 100,
            condition_dim: 100,
            r_num: 2,
            text_dim: 256,
            branch_num: 3,
            batch_size: 20,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            lambda: 5.0,
            base_size: 64,
        }
    }

    /// For CPU training: two stages, 32 -> 64, narrow.
    pub fn tiny() -> Self {
        Self {
            preset: "tiny".into(),
            gf_dim: 16,
            df_dim: 16,
            z_dim: 100,
            condition_dim: 64,
            r_num: 1,
            text_dim: 128,
            branch_num: 2,
            batch_size: 20,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            lambda: 5.0,
            base_size: 32,
        }
    }

    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" => Some(Self::paper()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }
}

const INIT: InitKind = InitKind::Orthogonal;

/// `upBlock`: nearest x2, conv3x3 to 2 C, BN, GLU.
fn up_block(p: nn::Path, cin: i64, cout: i64) -> nn::SequentialT {
    Seq::new(p, INIT)
        .up_conv3x3(cin, cout * 2)
        .bn(cout * 2)
        .act(glu)
        .done()
}

/// `CA_NET` of AttnGAN: Linear(D, 4 c) -> GLU -> (mu, logvar).
#[derive(Debug)]
pub struct CaNet {
    fc: nn::Linear,
    c_dim: i64,
}

impl CaNet {
    pub fn new(p: nn::Path, t_dim: i64, c_dim: i64) -> Self {
        Self {
            fc: linear(&p / "fc", t_dim, 4 * c_dim, true, INIT),
            c_dim,
        }
    }

    /// `(c, mu, logvar)`; `eps = None` gives the mean.
    pub fn forward(&self, sent: &Tensor, eps: Option<&Tensor>) -> (Tensor, Tensor, Tensor) {
        let x = glu(&self.fc.forward(sent)); // [batch, 2 c]
        let mu = x.narrow(1, 0, self.c_dim);
        let logvar = x.narrow(1, self.c_dim, self.c_dim);
        let c = crate::layers::ca::reparametrize(&mu, &logvar, eps);
        (c, mu, logvar)
    }
}

/// `INIT_STAGE_G`: F0 of eq. 1, (c, z) -> 4x4 x ngf -> four up-blocks.
#[derive(Debug)]
struct InitStage {
    fc: nn::SequentialT,
    ups: Vec<nn::SequentialT>,
    ngf: i64,
}

impl InitStage {
    fn new(p: nn::Path, ngf: i64, nz: i64, n_up: i64) -> Self {
        let q = &p / "fc";
        let fc = nn::seq_t()
            .add(linear(&q / 0, nz, ngf * 16 * 2, false, INIT))
            .add(BatchNorm::new(&q / 1, ngf * 16 * 2, INIT))
            .add_fn(glu);
        let mut ups = Vec::new();
        let mut ch = ngf;
        for i in 0..n_up {
            ups.push(up_block(&p / format!("upsample{}", i + 1), ch, ch / 2));
            ch /= 2;
        }
        Self { fc, ups, ngf }
    }

    fn forward_t(&self, z: &Tensor, c: &Tensor, train: bool) -> Tensor {
        let x = Tensor::cat(&[c, z], 1); // [batch, c + z]
        let mut h = self.fc.forward_t(&x, train).view([-1, self.ngf, 4, 4]);
        for u in &self.ups {
            h = u.forward_t(&h, train);
        }
        h // [batch, ngf / 16, 64, 64]
    }
}

/// `GlobalAttentionGeneral` (eq. 2): each image sub-region attends over the
/// words, `c_j = sum_i beta_{j,i} e'_i` with `e' = U e`.
#[derive(Debug)]
pub struct WordAttention {
    conv_context: nn::Conv2D,
}

impl WordAttention {
    pub fn new(p: nn::Path, idf: i64, cdf: i64) -> Self {
        Self {
            conv_context: crate::layers::conv2d(
                &p / "conv_context",
                cdf,
                idf,
                1,
                1,
                0,
                false,
                INIT,
            ),
        }
    }

    /// # Shapes
    /// `h [batch, idf, ih, iw]`, `words [batch, cdf, L]`, `mask [batch, L]`
    /// (true at padding) -> context `[batch, idf, ih, iw]`, attention
    /// `[batch, L, ih, iw]`.
    ///
    /// The mask is applied as the reference code applies it
    /// (`mask.repeat(queryL, 1)` against rows ordered batch-major), which
    /// pairs row `r` with the mask of sample `r mod batch`; kept so the
    /// official weights give the official outputs.
    pub fn forward(&self, h: &Tensor, words: &Tensor, mask: Option<&Tensor>) -> (Tensor, Tensor) {
        let (b, _, ih, iw) = h.size4().expect("4-d input");
        let q = ih * iw;
        let l = words.size()[2];
        let target = h.reshape([b, -1, q]).transpose(1, 2); // [batch, q, idf]
        let source = self
            .conv_context
            .forward(&words.unsqueeze(3))
            .squeeze_dim(3); // [batch, idf, L]
        let mut attn = target.bmm(&source).view([b * q, l]); // [batch*q, L]
        if let Some(m) = mask {
            let m = m.repeat([q, 1]); // [q*batch, L], as in the reference code
            attn = attn.masked_fill(&m, f64::NEG_INFINITY);
        }
        let attn = attn.softmax(1, Kind::Float).view([b, q, l]).transpose(1, 2); // [batch, L, q]
        let ctx = source.bmm(&attn).view([b, -1, ih, iw]); // [batch, idf, ih, iw]
        (ctx, attn.contiguous().view([b, l, ih, iw]))
    }
}

/// `ResBlock` of AttnGAN: x + (conv3x3 to 2C, BN, GLU, conv3x3, BN)(x).
#[derive(Debug)]
struct ResBlock {
    block: nn::SequentialT,
}

impl ResBlock {
    fn new(p: nn::Path, c: i64) -> Self {
        let block = Seq::new(&p / "block", INIT)
            .conv(c, c * 2, 3, 1, 1, false)
            .bn(c * 2)
            .act(glu)
            .conv(c, c, 3, 1, 1, false)
            .bn(c)
            .done();
        Self { block }
    }
}

impl ModuleT for ResBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.block.forward_t(x, train) + x
    }
}

/// `NEXT_STAGE_G`: F_i of eq. 1 with the attention F_attn_i.
#[derive(Debug)]
struct NextStage {
    att: WordAttention,
    residual: Vec<ResBlock>,
    upsample: nn::SequentialT,
}

impl NextStage {
    fn new(p: nn::Path, ngf: i64, nef: i64, r_num: i64) -> Self {
        Self {
            att: WordAttention::new(&p / "att", ngf, nef),
            residual: (0..r_num)
                .map(|i| ResBlock::new(&p / "residual" / i, ngf * 2))
                .collect(),
            upsample: up_block(&p / "upsample", ngf * 2, ngf),
        }
    }

    fn forward_t(
        &self,
        h: &Tensor,
        words: &Tensor,
        mask: Option<&Tensor>,
        train: bool,
    ) -> (Tensor, Tensor) {
        let (c, att) = self.att.forward(h, words, mask);
        let mut x = Tensor::cat(&[h, &c], 1); // [batch, 2 ngf, s, s]
        for r in &self.residual {
            x = r.forward_t(&x, train);
        }
        (self.upsample.forward_t(&x, train), att) // [batch, ngf, 2s, 2s]
    }
}

fn tanh(x: &Tensor) -> Tensor {
    x.tanh()
}

/// `G_NET`: CA, the initial stage, attentional next stages, an image
/// head per stage.
#[derive(Debug)]
pub struct Generator {
    pub ca_net: CaNet,
    h_net1: InitStage,
    next: Vec<NextStage>,
    img_nets: Vec<nn::SequentialT>,
}

/// Outputs of [`Generator::forward_t`].
#[derive(Debug)]
pub struct GOutput {
    /// One image per stage, `[batch, 3, s_i, s_i]`.
    pub images: Vec<Tensor>,
    /// Word attention of each attentional stage, `[batch, L, s_i, s_i]`.
    pub attention: Vec<Tensor>,
    pub mu: Tensor,
    pub logvar: Tensor,
}

impl Generator {
    pub fn new(p: nn::Path, c: &AttnGanConfig) -> Self {
        let ngf = c.gf_dim;
        let n_up = (c.base_size / 4).trailing_zeros() as i64;
        // 16 ngf at 4x4 for the paper's 64-pixel base: ngf after the up-blocks
        let h_net1 = InitStage::new(
            &p / "h_net1",
            ngf * (1 << n_up),
            c.z_dim + c.condition_dim,
            n_up,
        );
        let img = |k: i64| {
            Seq::new(&p / format!("img_net{k}") / "img", INIT)
                .conv(ngf, 3, 3, 1, 1, false)
                .act(tanh)
                .done()
        };
        let mut img_nets = vec![img(1)];
        let mut next = Vec::new();
        for k in 2..=c.branch_num {
            next.push(NextStage::new(
                &p / format!("h_net{k}"),
                ngf,
                c.text_dim,
                c.r_num,
            ));
            img_nets.push(img(k));
        }
        Self {
            ca_net: CaNet::new(&p / "ca_net", c.text_dim, c.condition_dim),
            h_net1,
            next,
            img_nets,
        }
    }

    /// # Shapes
    /// `z [batch, z]`, `sent [batch, D]`, `words [batch, D, L]`, `mask
    /// [batch, L]` (true at padding), `eps [batch, c]` (`None`: CA mean).
    pub fn forward_t(
        &self,
        z: &Tensor,
        sent: &Tensor,
        words: &Tensor,
        mask: Option<&Tensor>,
        eps: Option<&Tensor>,
        train: bool,
    ) -> GOutput {
        let (c, mu, logvar) = self.ca_net.forward(sent, eps);
        let mut h = self.h_net1.forward_t(z, &c, train); // [batch, ngf, 64, 64]
        let mut images = vec![self.img_nets[0].forward_t(&h, train)];
        let mut attention = Vec::new();
        for (stage, img) in self.next.iter().zip(&self.img_nets[1..]) {
            let (h2, att) = stage.forward_t(&h, words, mask, train);
            h = h2;
            images.push(img.forward_t(&h, train));
            attention.push(att);
        }
        GOutput {
            images,
            attention,
            mu,
            logvar,
        }
    }
}

/// `D_GET_LOGITS`: conditional (jointConv on [h, e replicated], then
/// conv4x4 stride 4, sigmoid) or unconditional.
#[derive(Debug)]
pub struct Logits {
    joint_conv: Option<nn::SequentialT>,
    outlogits: nn::SequentialT,
    ef_dim: i64,
}

impl Logits {
    pub fn new(p: nn::Path, ndf: i64, nef: i64, conditional: bool) -> Self {
        let joint_conv = conditional.then(|| {
            Seq::new(&p / "jointConv", INIT)
                .conv(ndf * 8 + nef, ndf * 8, 3, 1, 1, false)
                .bn(ndf * 8)
                .act(lrelu)
                .done()
        });
        let outlogits = Seq::new(&p / "outlogits", INIT)
            .conv(ndf * 8, 1, 4, 4, 0, true)
            .act(|x| x.sigmoid())
            .done();
        Self {
            joint_conv,
            outlogits,
            ef_dim: nef,
        }
    }

    /// `h [batch, 8 ndf, 4, 4]`, `sent [batch, D]` -> probabilities `[batch]`.
    pub fn forward_t(&self, h: &Tensor, sent: Option<&Tensor>, train: bool) -> Tensor {
        let x = match (&self.joint_conv, sent) {
            (Some(j), Some(e)) => {
                let e = e.view([-1, self.ef_dim, 1, 1]).repeat([1, 1, 4, 4]);
                j.forward_t(&Tensor::cat(&[h, &e], 1), train)
            }
            _ => h.shallow_clone(),
        };
        self.outlogits.forward_t(&x, train).view([-1])
    }
}

/// `D_NET64` / `D_NET128` / `D_NET256`.
#[derive(Debug)]
pub struct Discriminator {
    body: nn::SequentialT,
    pub uncond: Logits,
    pub cond: Logits,
}

fn down_block(p: nn::Path, cin: i64, cout: i64) -> nn::SequentialT {
    Seq::new(p, INIT)
        .conv(cin, cout, 4, 2, 1, false)
        .bn(cout)
        .act(lrelu)
        .done()
}

fn block3x3(p: nn::Path, cin: i64, cout: i64) -> nn::SequentialT {
    Seq::new(p, INIT)
        .conv(cin, cout, 3, 1, 1, false)
        .bn(cout)
        .act(lrelu)
        .done()
}

impl Discriminator {
    /// The discriminator of images of side `size` (`base_size * 2^k`).
    pub fn new(p: nn::Path, c: &AttnGanConfig, size: i64) -> Self {
        let ndf = c.df_dim;
        if size == 32 {
            // `tiny`'s first stage: an 8x encoder (not in the reference code)
            let s8 = Seq::new(&p / "img_code_s8", INIT)
                .conv(3, ndf * 2, 4, 2, 1, false)
                .act(lrelu)
                .conv(ndf * 2, ndf * 4, 4, 2, 1, false)
                .bn(ndf * 4)
                .act(lrelu)
                .conv(ndf * 4, ndf * 8, 4, 2, 1, false)
                .bn(ndf * 8)
                .act(lrelu)
                .done();
            return Self {
                body: s8,
                uncond: Logits::new(&p / "UNCOND_DNET", ndf, c.text_dim, false),
                cond: Logits::new(&p / "COND_DNET", ndf, c.text_dim, true),
            };
        }
        let s16 = Seq::new(&p / "img_code_s16", INIT)
            .conv(3, ndf, 4, 2, 1, false)
            .act(lrelu)
            .conv(ndf, ndf * 2, 4, 2, 1, false)
            .bn(ndf * 2)
            .act(lrelu)
            .conv(ndf * 2, ndf * 4, 4, 2, 1, false)
            .bn(ndf * 4)
            .act(lrelu)
            .conv(ndf * 4, ndf * 8, 4, 2, 1, false)
            .bn(ndf * 8)
            .act(lrelu)
            .done();
        let mut body = nn::seq_t().add(s16);
        // D_NET128 and D_NET256: the 16x encoder leaves 8x8 or 16x16
        if size == 128 {
            body = body
                .add(down_block(&p / "img_code_s32", ndf * 8, ndf * 16))
                .add(block3x3(&p / "img_code_s32_1", ndf * 16, ndf * 8));
        } else if size >= 256 {
            body = body
                .add(down_block(&p / "img_code_s32", ndf * 8, ndf * 16))
                .add(down_block(&p / "img_code_s64", ndf * 16, ndf * 32))
                .add(block3x3(&p / "img_code_s64_1", ndf * 32, ndf * 16))
                .add(block3x3(&p / "img_code_s64_2", ndf * 16, ndf * 8));
        }
        Self {
            body,
            uncond: Logits::new(&p / "UNCOND_DNET", ndf, c.text_dim, false),
            cond: Logits::new(&p / "COND_DNET", ndf, c.text_dim, true),
        }
    }

    /// # Shapes
    /// `[batch, 3, s, s]` -> `[batch, 8 ndf, 4, 4]` (s = 32, 64, 128, 256).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.body.forward_t(x, train)
    }
}

fn bce(p: &Tensor, target: f64) -> Tensor {
    p.binary_cross_entropy::<Tensor>(&p.full_like(target), None, tch::Reduction::Mean)
}

/// `discriminator_loss` of the reference code: conditional real / fake /
/// wrong (image i with sentence i+1) and unconditional real / fake.
pub fn discriminator_loss(
    d: &Discriminator,
    real: &Tensor,
    fake: &Tensor,
    sent: &Tensor,
    train: bool,
) -> Tensor {
    let b = real.size()[0];
    let real_f = d.forward_t(real, train);
    let fake_f = d.forward_t(&fake.detach(), train);
    let cond_real = bce(&d.cond.forward_t(&real_f, Some(sent), train), 1.0);
    let cond_fake = bce(&d.cond.forward_t(&fake_f, Some(sent), train), 0.0);
    let cond_wrong = bce(
        &d.cond.forward_t(
            &real_f.narrow(0, 0, b - 1),
            Some(&sent.narrow(0, 1, b - 1)),
            train,
        ),
        0.0,
    );
    let real_u = bce(&d.uncond.forward_t(&real_f, None, train), 1.0);
    let fake_u = bce(&d.uncond.forward_t(&fake_f, None, train), 0.0);
    (real_u + cond_real) / 2.0 + (fake_u + cond_fake + cond_wrong) / 3.0
}

/// G's adversarial term for one stage: -1/2 log D(x^) - 1/2 log D(x^, e)
/// as the reference code writes it (BCE, unconditional + conditional).
pub fn generator_adv_loss(d: &Discriminator, fake: &Tensor, sent: &Tensor, train: bool) -> Tensor {
    let f = d.forward_t(fake, train);
    bce(&d.uncond.forward_t(&f, None, train), 1.0)
        + bce(&d.cond.forward_t(&f, Some(sent), train), 1.0)
}

/// Word and sentence features of a batch of captions from the frozen DAMSM
/// text encoder.
pub struct TextBatch {
    /// `[batch, D, T]`
    pub words: Tensor,
    /// `[batch, D]`
    pub sentence: Tensor,
    /// `[batch, T]`, true at padding (the generator's attention mask).
    pub padding: Tensor,
    pub lens: Vec<i64>,
    /// The words of each caption as the vocabulary read them.
    pub tokens: Vec<Vec<String>>,
    /// Unknown words of each caption.
    pub unknown: Vec<Vec<String>>,
}

/// Encodes `enc` with the frozen text encoder (eval mode, no dropout).
pub fn encode_ids(text: &RnnEncoder, enc: &[Encoded]) -> TextBatch {
    let dev = text.vs.device();
    let lens: Vec<i64> = enc.iter().map(|e| e.ids.len() as i64).collect();
    let ids = pad_ids(enc, dev);
    let out = tch::no_grad(|| text.forward_t(&ids, &lens, None, false));
    let t = out.words.size()[2];
    TextBatch {
        padding: lens_mask(&lens, t, dev).logical_not(),
        words: out.words,
        sentence: out.sentence,
        tokens: enc
            .iter()
            .map(|e| {
                e.ids
                    .iter()
                    .map(|&i| text.vocab.words[i as usize].clone())
                    .collect()
            })
            .collect(),
        unknown: enc.iter().map(|e| e.unknown.clone()).collect(),
        lens,
    }
}

/// An AttnGAN generator with its frozen DAMSM text encoder: all a user needs
/// to generate.
pub struct AttnGanModel {
    pub config: AttnGanConfig,
    pub text: RnnEncoder,
    pub g_vs: nn::VarStore,
    pub g: Generator,
    pub device: Device,
}

impl AttnGanModel {
    pub fn new(config: AttnGanConfig, text: RnnEncoder, device: Device) -> Self {
        let g_vs = nn::VarStore::new(device);
        let g = Generator::new(g_vs.root(), &config);
        Self {
            config,
            text,
            g_vs,
            g,
            device,
        }
    }

    /// Rebuilds the generator (averaged weights when the checkpoint has
    /// them) and its text encoder from an AttnGAN checkpoint.
    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        ck.expect_model("attngan")?;
        let config: AttnGanConfig = ck.json_meta("config")?;
        let text = RnnEncoder::from_checkpoint(ck, "text", device)?;
        let mut m = Self::new(config, text, device);
        ck.load_into(&mut m.g_vs, "G")?;
        if ck.tensors.keys().any(|k| k.starts_with("G_avg.")) {
            load_trainable(&m.g_vs, ck, "G_avg")?;
        }
        m.for_inference();
        Ok(m)
    }

    /// Generation from here on: G's convolution weights channels-last
    /// ([`crate::layers::to_channels_last`]; not for training).
    pub fn for_inference(&self) {
        crate::layers::to_channels_last(&self.g_vs);
    }

    /// Metadata of a checkpoint of this model (`damsm`: where the DAMSM
    /// encoders came from).
    pub fn meta(&self, damsm: &str) -> Result<std::collections::BTreeMap<String, String>> {
        let mut meta = self.text.describe();
        meta.insert("model".into(), "attngan".into());
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.config).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert("damsm".into(), damsm.into());
        meta.insert("versions".into(), versions());
        meta.insert("device".into(), device_name(self.device));
        Ok(meta)
    }

    /// Writes G and the text encoder: a checkpoint `generate` can use.
    pub fn save(&self, path: &Path, damsm: &str, step: i64) -> Result<()> {
        let mut meta = self.meta(damsm)?;
        meta.insert("step".into(), step.to_string());
        let mut tensors = checkpoint::named(&self.g_vs, "G");
        tensors.extend(checkpoint::named(&self.text.vs, "text"));
        checkpoint::save(path, &meta, &tensors)
    }

    /// Word ids of captions (at most `max_words` words; an empty caption or
    /// one of only unknown words is an error).
    pub fn encode(&self, captions: &[&str]) -> Result<TextBatch> {
        let (_, _, enc) = self.text.ids(captions)?;
        Ok(encode_ids(&self.text, &enc))
    }

    /// Images of every stage and the attention maps, from noise drawn with
    /// `seed` and the CA mean (eval mode: same inputs, same images).
    pub fn generate(&self, text: &TextBatch, seed: u64) -> GOutput {
        let b = text.sentence.size()[0];
        let z = normal(b, self.config.z_dim, seed, self.device);
        let mut out = tch::no_grad(|| {
            self.g.forward_t(
                &z,
                &text.sentence,
                &text.words,
                Some(&text.padding),
                None,
                false,
            )
        });
        for img in &mut out.images {
            *img = img.contiguous();
        }
        out
    }

    /// Final-stage images for captions. `[n, 3, s, s]`
    pub fn generate_captions(&self, captions: &[&str], seed: u64) -> Result<Tensor> {
        let t = self.encode(captions)?;
        Ok(self
            .generate(&t, seed)
            .images
            .pop()
            .expect("one stage at least"))
    }
}
