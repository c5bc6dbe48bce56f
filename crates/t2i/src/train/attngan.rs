//! AttnGAN training (official `code/trainer.py`, sec. 3.1 and 3.3): every
//! stage's discriminator is updated on real / wrong / fake pairs, then G on
//! the sum over stages of the adversarial terms (eq. 3-4), plus
//! lambda * L_DAMSM of the last stage's images (eq. 2) with the DAMSM text and
//! image encoders frozen, plus the Conditioning-Augmentation KL term. G's
//! weights are also averaged over steps (`avg_param_G`, decay 0.999); the
//! average is what generation uses, as in the official code.

use super::damsm::{sample_words, DamsmConfig};
use super::ema::WeightAverage;
use super::optim::Adam;
use crate::checkpoint::{self, Checkpoint};
use crate::data::images::{CaptionedImages, LoadOptions};
use crate::data::prepare::ImageBatcher;
use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::family::{
    BenchOptions, Controls, FamilyConfig, Generated, Generator as FamilyGenerator, ImportRequest,
    Metrics, ParamRow, Summary, TrainContext, Trainer, TypedFamily,
};
use crate::imageio::{grid, tensor_to_images, Rgb};
use crate::layers::ca::kl_loss;
use crate::models::attngan::{
    discriminator_loss, encode_ids, generator_adv_loss, AttnGanConfig, AttnGanModel, Discriminator,
};
use crate::models::damsm::{sent_loss, words_loss, CnnEncoder, Gammas};
use crate::rng::{normal, step_seed};
use crate::text::damsm::RnnEncoder;
use crate::text::{vocab::UNK, Encoded};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Decay of the running average of G's weights (`avg_p.mul_(0.999)`).
const EMA_DECAY: f64 = 0.999;

/// Losses of one step.
#[derive(Debug, Clone, Serialize)]
pub struct AttnGanStats {
    pub step: i64,
    /// Sum over stages of each discriminator's loss.
    pub loss_d: f64,
    /// G's adversarial terms summed over stages.
    pub loss_g_adv: f64,
    /// lambda * (L1_w + L2_w) of the last stage.
    pub w_loss: f64,
    /// lambda * (L1_s + L2_s) of the last stage.
    pub s_loss: f64,
    pub kl: f64,
}

/// G, one D per stage, the frozen DAMSM image encoder and the optimisers.
pub struct AttnGanTrainer {
    pub model: AttnGanModel,
    pub d_vs: Vec<nn::VarStore>,
    pub d: Vec<Discriminator>,
    /// The frozen DAMSM image encoder for L_DAMSM.
    image_vs: nn::VarStore,
    image: CnnEncoder,
    gammas: Gammas,
    /// Where the DAMSM encoders came from (recorded in checkpoints).
    pub damsm_source: String,
    pub(crate) opt_g: Adam,
    opt_d: Vec<Adam>,
    /// Running average of G's trainable weights, by variable name.
    g_avg: WeightAverage,
    pub step: i64,
    pub seed: u64,
}

impl AttnGanTrainer {
    /// A new trainer whose text and image encoders come from the DAMSM
    /// checkpoint `damsm` (both frozen).
    pub fn new(
        mut config: AttnGanConfig,
        damsm: &Checkpoint,
        damsm_source: &str,
        seed: u64,
        device: Device,
    ) -> Result<Self> {
        if damsm.meta("model")? != "damsm" {
            return Err(Error::Config(format!(
                "--damsm must be a DAMSM checkpoint, got a '{}' model",
                damsm.meta("model")?
            )));
        }
        let dc: DamsmConfig = serde_json::from_str(damsm.meta("config")?)
            .map_err(|e| Error::Checkpoint(format!("DAMSM config: {e}")))?;
        let mut text = RnnEncoder::from_checkpoint(damsm, "text", device)?;
        text.source = damsm_source.to_string();
        freeze(&text.vs);
        config.text_dim = text.config.dim;
        tch::manual_seed(seed as i64); // reproducible initial weights
        let model = AttnGanModel::new(config.clone(), text, device);
        let mut image_vs = nn::VarStore::new(device);
        let image = CnnEncoder::new(image_vs.root(), dc.image.clone());
        damsm.load_into(&mut image_vs, "image")?;
        freeze(&image_vs);
        let mut d_vs = Vec::new();
        let mut d = Vec::new();
        for k in 0..config.branch_num {
            let vs = nn::VarStore::new(device);
            d.push(Discriminator::new(
                vs.root(),
                &config,
                config.base_size << k,
            ));
            d_vs.push(vs);
        }
        let opt_g = Adam::new(&model.g_vs, config.lr_g, config.beta1, 0.999);
        let opt_d = d_vs
            .iter()
            .map(|vs| Adam::new(vs, config.lr_d, config.beta1, 0.999))
            .collect();
        let g_avg = WeightAverage::new(&model.g_vs, EMA_DECAY);
        Ok(Self {
            model,
            d_vs,
            d,
            image_vs,
            image,
            gammas: dc.gammas,
            damsm_source: damsm_source.to_string(),
            opt_g,
            opt_d,
            g_avg,
            step: 0,
            seed,
        })
    }

    /// One step on a random batch of `data` (images at the stage sides).
    pub fn train_step(&mut self, data: &CaptionedImages) -> AttnGanStats {
        let c = self.model.config.clone();
        let dev = self.model.device;
        let b = c.batch_size;
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(self.seed, self.step));
        let n = data.captions.len();
        let idx: Vec<usize> = (0..b).map(|_| rng.gen_range(0..n)).collect();
        let max_words = self.model.text.config.max_words;
        let enc: Vec<Encoded> = idx
            .iter()
            .map(|&i| {
                let caps = &data.captions[i];
                let e = self
                    .model
                    .text
                    .vocab
                    .encode(&caps[rng.gen_range(0..caps.len())], usize::MAX)
                    .unwrap_or_else(|_| Encoded {
                        ids: vec![UNK],
                        unknown: vec![],
                    });
                sample_words(&e, max_words, &mut rng)
            })
            .collect();
        let text = encode_ids(&self.model.text, &enc);
        let classes: Vec<i64> = idx.iter().map(|&i| data.classes[i]).collect();
        let sizes: Vec<i64> = (0..c.branch_num).map(|k| c.base_size << k).collect();
        let mut img_rng = ImageBatcher::rng(self.seed, self.step);
        let big = data
            .images
            .batch(&idx, &mut img_rng, dev)
            .pop()
            .expect("one size");
        let reals: Vec<Tensor> = sizes
            .iter()
            .map(|&s| {
                if big.size()[2] == s {
                    big.shallow_clone()
                } else {
                    big.internal_upsample_bilinear2d_aa([s, s], false, None, None)
                }
            })
            .collect();

        let seed = step_seed(self.seed ^ 0xA77, self.step);
        let z = normal(b, c.z_dim, seed, dev);
        let eps = normal(b, c.condition_dim, seed ^ 0xCA, dev);
        let out = self.model.g.forward_t(
            &z,
            &text.sentence,
            &text.words,
            Some(&text.padding),
            Some(&eps),
            true,
        );
        // each stage's D
        let mut loss_d = 0.0;
        for ((d, opt), (real, fake)) in self
            .d
            .iter()
            .zip(self.opt_d.iter_mut())
            .zip(reals.iter().zip(&out.images))
        {
            let err = discriminator_loss(d, real, fake, &text.sentence, true);
            opt.zero_grad();
            err.backward();
            opt.step();
            loss_d += err.double_value(&[]);
        }
        // G: adversarial terms of every stage, DAMSM of the last
        let mut adv = Tensor::zeros([], (Kind::Float, dev));
        for (d, fake) in self.d.iter().zip(&out.images) {
            adv += generator_adv_loss(d, fake, &text.sentence, true);
        }
        let last = out.images.last().expect("one stage at least");
        let side = self.image.config.image_size;
        let x = if last.size()[2] == side {
            last.shallow_clone()
        } else {
            last.upsample_bilinear2d([side, side], false, None, None)
        };
        let (regions, code) = self.image.forward_t(&x, false);
        let (w0, w1, _) = words_loss(
            &regions,
            &text.words,
            &text.lens,
            Some(&classes),
            self.gammas,
        );
        let (s0, s1) = sent_loss(&code, &text.sentence, Some(&classes), self.gammas);
        let w = (w0 + w1) * c.lambda;
        let s = (s0 + s1) * c.lambda;
        let kl = kl_loss(&out.mu, &out.logvar);
        let total = &adv + &w + &s + &kl;
        self.opt_g.zero_grad();
        self.opt_g.backward(&total);
        self.opt_g.step();
        self.g_avg.update();
        self.step += 1;
        AttnGanStats {
            step: self.step,
            loss_d,
            loss_g_adv: adv.double_value(&[]),
            w_loss: w.double_value(&[]),
            s_loss: s.double_value(&[]),
            kl: kl.double_value(&[]),
        }
    }

    /// Writes G (and its average), the Ds, the optimisers, config, the text
    /// encoder and where the DAMSM came from.
    pub fn save(&self, path: &Path) -> Result<()> {
        let m = &self.model;
        let mut meta = m.meta(&self.damsm_source)?;
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        let mut tensors = checkpoint::named(&m.g_vs, "G");
        tensors.extend(self.g_avg.named("G_avg"));
        for (k, vs) in self.d_vs.iter().enumerate() {
            tensors.extend(checkpoint::named(vs, &format!("D{k}")));
        }
        tensors.extend(checkpoint::named(&m.text.vs, "text"));
        tensors.extend(checkpoint::named(&self.image_vs, "damsm_image"));
        tensors.extend(self.opt_g.state("optim.G"));
        for (k, o) in self.opt_d.iter().enumerate() {
            tensors.extend(o.state(&format!("optim.D{k}")));
        }
        checkpoint::save(path, &meta, &tensors)
    }

    /// Restores G, its average, the Ds, the optimisers and the step (resume).
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.load_into(&mut self.model.g_vs, "G")?;
        for (k, vs) in self.d_vs.iter_mut().enumerate() {
            ck.load_into(vs, &format!("D{k}"))?;
        }
        self.g_avg.restore(ck, "G_avg")?;

        self.opt_g
            .load_state("optim.G", &ck.tensors)
            .map_err(Error::Checkpoint)?;
        for (k, o) in self.opt_d.iter_mut().enumerate() {
            o.load_state(&format!("optim.D{k}"), &ck.tensors)
                .map_err(Error::Checkpoint)?;
        }
        self.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step".into()))?;
        Ok(())
    }

    /// Runs `f` with G holding its averaged weights, then puts the trained
    /// weights back.
    pub fn with_average<T>(&self, f: impl FnOnce(&AttnGanModel) -> T) -> T {
        self.g_avg.with_average(|| f(&self.model))
    }
}

fn freeze(vs: &nn::VarStore) {
    for (_, v) in vs.variables() {
        if v.is_floating_point() {
            let _ = v.shallow_clone().set_requires_grad(false);
        }
    }
}

/// A grid: one row per caption, `cols` noise vectors; each sample shows the
/// first stage (upsampled) left of the last.
pub fn sample_grid(m: &AttnGanModel, captions: &[String], cols: i64) -> Result<Rgb> {
    let mut rows = Vec::new();
    for cap in captions {
        let t = m.encode(&vec![cap.as_str(); cols as usize])?;
        let o = m.generate(&t, 1234);
        let last = o.images.last().expect("one stage");
        let s = last.size()[2];
        let first = o.images[0].upsample_nearest2d([s, s], None, None);
        let x = Tensor::stack(&[first, last.shallow_clone()], 1).view([2 * cols, 3, s, s]);
        rows.push((tensor_to_images(&x), Some(cap.clone())));
    }
    Ok(grid(&rows, 2))
}

/// The paper's attention figure (Fig. 2 / 4): for each attentional stage a
/// row with the stage's image and, for the `top` words that drew the most
/// attention, the image lit by that word's map with the word under it.
/// Each cell is shown at `cell` pixels.
pub fn attention_figure(
    m: &AttnGanModel,
    caption: &str,
    seed: u64,
    top: usize,
    cell: u32,
) -> Result<Rgb> {
    let t = m.encode(&[caption])?;
    let o = m.generate(&t, seed);
    let words = &t.tokens[0];
    let c = cell as i64;
    let label_h = 12u32;
    let pad = 4u32;
    let n_stages = o.attention.len();
    let cols = 1 + top.min(words.len()) as u32;
    let width = (pad + cols * (cell + pad)).max(8 * 40);
    let head_lines = crate::imageio::wrap(caption, ((width - pad) / 8) as usize);
    let head_h = head_lines.len() as u32 * 10 + pad;
    let mut out = Rgb::new(
        width,
        head_h + pad + n_stages as u32 * (cell + label_h + pad),
        [255, 255, 255],
    );
    for (i, l) in head_lines.iter().enumerate() {
        out.text(l, pad, pad + i as u32 * 10, 1, [0, 0, 0]);
    }
    for (si, att) in o.attention.iter().enumerate() {
        let y = head_h + pad + si as u32 * (cell + label_h + pad);
        let img = o.images[si + 1].upsample_bilinear2d([c, c], false, None, None); // [1, 3, c, c]
        out.blit(&tensor_to_images(&img)[0], pad, y);
        out.text(
            &format!("stage {}", si + 2),
            pad,
            y + cell + 2,
            1,
            [0, 0, 0],
        );
        let a = att.get(0).narrow(0, 0, words.len() as i64); // [L, s, s]
        let mass: Vec<f64> =
            Vec::<f64>::try_from(a.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Double))
                .unwrap_or_default();
        let mut order: Vec<usize> = (0..words.len()).collect();
        order.sort_by(|&i, &j| mass[j].total_cmp(&mass[i]));
        let mut chosen: Vec<usize> = order.into_iter().take(top).collect();
        chosen.sort_unstable(); // caption order
        for (k, &w) in chosen.iter().enumerate() {
            let map = a.get(w as i64).view([1, 1, a.size()[1], a.size()[2]]);
            let map = map.upsample_bilinear2d([c, c], false, None, None);
            let (lo, hi) = (map.min(), map.max());
            let map = (&map - &lo) / (hi - lo).clamp_min(1e-12); // [1, 1, c, c] in [0, 1]
                                                                 // the image dimmed where the word is not attended
            let lit = (&img + 1.0) * (map * 0.8 + 0.2) - 1.0;
            let x = pad + (k as u32 + 1) * (cell + pad);
            out.blit(&tensor_to_images(&lit)[0], x, y);
            let word: String = words[w].chars().take((cell / 8) as usize).collect();
            out.text(&word, x, y + cell + 2, 1, [0, 0, 0]);
        }
    }
    Ok(out)
}

/// `t2i train --model attngan`: the networks, the DAMSM that conditions and
/// scores them, and the data.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AttnGanRunConfig {
    /// The networks, losses and optimiser (saved in every checkpoint).
    #[serde(flatten)]
    pub model: AttnGanConfig,
    /// The trained DAMSM checkpoint (its text and image encoders, frozen).
    pub damsm: String,
    /// The data set (in the CUB layout).
    pub data: DataConfig,
}

impl FamilyConfig for AttnGanRunConfig {
    fn preset(name: &str) -> Option<Self> {
        Some(Self {
            model: AttnGanConfig::preset(name)?,
            damsm: String::new(),
            data: DataConfig::cub(),
        })
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate(&["cub"]).map_err(|e| {
            format!("{e}; AttnGAN trains on a data set in the CUB layout (for shapes, write one with `t2i data shapes`)")
        })?;
        let m = &self.model;
        crate::family::check_batch_size(m.batch_size)?;
        for (name, lr) in [("lr_g", m.lr_g), ("lr_d", m.lr_d)] {
            if !(lr > 0.0 && lr < 1.0) {
                return Err(format!("{name} must be in (0, 1), got {lr}"));
            }
        }
        Ok(())
    }
}

/// The family entry of AttnGAN.
pub struct AttnGanFamily;

impl TypedFamily for AttnGanFamily {
    type Config = AttnGanRunConfig;
    const NAME: &'static str = "attngan";
    const ABOUT: &'static str =
        "AttnGAN (Xu et al. 2018): attentional multi-stage G trained with the DAMSM loss";
    const PRESETS: &'static [&'static str] = &["tiny", "paper"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr_g", "lr_d"],
            "batch_size" => &["batch_size"],
            "damsm" => &["damsm"],
            "data" => &["data.name"],
            "data_root" => &["data.root"],
            _ => &[],
        }
    }
    fn trainer(
        &self,
        rc: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn Trainer>> {
        // checked here, not in validate(): `t2i bench` builds a random DAMSM
        if rc.damsm.is_empty() {
            return Err(Error::Config(
                "AttnGAN needs --damsm CHECKPOINT (a trained DAMSM run's checkpoint)".into(),
            ));
        }
        let damsm = checkpoint::load(Path::new(&rc.damsm))?;
        let mut t = AttnGanTrainer::new(rc.model, &damsm, &rc.damsm, ctx.seed, ctx.device)?;
        let c = &t.model.config;
        let final_size = c.base_size << (c.branch_num - 1);
        let root = rc.data.root();
        let data = ctx.load_cub(
            root,
            crate::data::cub::CubSplit::Train,
            &LoadOptions {
                augment: true,
                ..ctx.loading(final_size)
            },
        )?;
        let sample_captions = crate::data::images::test_captions(root, 6)?;
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        Ok(Box::new(AttnGanRun {
            t,
            data,
            sample_captions,
        }))
    }
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn FamilyGenerator>> {
        Ok(Box::new(AttnGanModel::from_checkpoint(ck, device)?))
    }
    fn parameter_counts(&self, config: &Self::Config) -> Result<(String, Vec<ParamRow>)> {
        let c = &config.model;
        let head = format!(
            "attngan ({} preset, {} stages from {}x{})",
            c.preset, c.branch_num, c.base_size, c.base_size
        );
        Ok((head, crate::bench::attngan_parameter_counts(c)))
    }
    fn bench(
        &self,
        config: &Self::Config,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let c = &config.model;
        let r = crate::bench::bench_attngan(c, opts.device, opts.repeats)?;
        let v = serde_json::to_value(&r).map_err(|e| Error::Config(e.to_string()))?;
        Ok(vec![(v, r.table())])
    }
    fn import(&self, req: &ImportRequest) -> Result<String> {
        let src = req.weights.display();
        let m = crate::import::import_attngan(
            req.weights,
            req.text_encoder("attngan")?,
            req.captions,
            Device::Cpu,
        )?;
        m.save(req.out, &format!("imported from {src}"), 0)?;
        Ok(format!(
            "imported AttnGAN G ({} stages, ngf {}, text {}) and text encoder ({} words) -> {}",
            m.config.branch_num,
            m.config.gf_dim,
            m.config.text_dim,
            m.text.vocab.len(),
            req.out.display()
        ))
    }
}

/// An AttnGAN run: the trainer, its data and sample captions.
struct AttnGanRun {
    t: AttnGanTrainer,
    data: CaptionedImages,
    sample_captions: Vec<String>,
}

impl Trainer for AttnGanRun {
    fn step(&self) -> i64 {
        self.t.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        let s = self.t.train_step(&self.data);
        Ok(vec![
            ("loss_d".into(), s.loss_d),
            ("loss_g_adv".into(), s.loss_g_adv),
            ("w_loss".into(), s.w_loss),
            ("s_loss".into(), s.s_loss),
            ("kl".into(), s.kl),
        ])
    }
    fn lr(&self) -> f64 {
        self.t.opt_g.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        self.t.save(path)
    }
    fn sample_grid(&self) -> Result<Option<Rgb>> {
        let caps = &self.sample_captions;
        Ok(Some(self.t.with_average(|m| sample_grid(m, caps, 6))?))
    }
    fn finish(&mut self, _: &TrainContext, _: bool, _: usize) -> Result<Summary> {
        Ok(Summary::default())
    }
}

impl FamilyGenerator for AttnGanModel {
    fn family(&self) -> &'static str {
        "attngan"
    }
    fn image_size(&self) -> i64 {
        self.config.base_size << (self.config.branch_num - 1)
    }
    fn controls(&self) -> Controls {
        Controls {
            attention: true,
            stages: self.config.branch_num > 1,
            ..Default::default()
        }
    }
    fn unknown_words(&self, caption: &str) -> Result<Vec<String>> {
        Ok(self.encode(&[caption])?.unknown.remove(0))
    }
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated> {
        let t = self.encode(captions)?;
        let mut o = AttnGanModel::generate(self, &t, seed);
        let last = o.images.pop().expect("one stage at least");
        Ok(Generated {
            images: last.to_device(Device::Cpu),
            first_stage: (!o.images.is_empty()).then(|| o.images[0].to_device(Device::Cpu)),
            drawn_as: None,
            corrected: None,
        })
    }
    fn attention_figure(&self, caption: &str, seed: u64, top_words: usize) -> Result<Rgb> {
        attention_figure(self, caption, seed, top_words, 128)
    }
}
