//! Training GAWWN (Reed et al. 2016, "Learning What and Where to Draw"):
//! the box- or keypoint-conditional G and D with the matching-aware loss,
//! and for keypoint models the keypoint generator G_k against D_k
//! (`models::gawwn`). Shapes data with continuous object sizes and places.

use super::ema::{self, set_standing_stats, WeightAverage};
use super::embedded::EmbeddedImages;
use super::optim::Adam;
use super::text_encoder::TextPhase;
use crate::checkpoint::{self, Checkpoint};
use crate::data::shapes::{Shapes, ShapesConfig, Split};
use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::family::{
    BenchOptions, Controls, FamilyConfig, Generated, Generator as FamilyGenerator, Layout, Metrics,
    Summary, TrainContext, Trainer as FamilyTrainer, TypedFamily,
};
use crate::imageio::{grid, tensor_to_images};
use crate::models::gawwn::{
    discriminator_loss, generator_loss, Condition, Discriminator, GawwnConfig, GawwnModel,
    KeypointCompleter, KeypointDiscriminator, SHAPES_PARTS,
};
use crate::rng::step_seed;
use crate::text::{GruEncoderConfig, TextEncoder};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// `t2i train --model gawwn`: the networks and what the run does around
/// them (its text encoder first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GawwnRunConfig {
    /// The networks and the objective (saved in every checkpoint).
    #[serde(flatten)]
    pub model: GawwnConfig,
    /// The data set.
    pub data: DataConfig,
    /// The text encoder phase before the GAN.
    pub text: TextPhase,
}

impl FamilyConfig for GawwnRunConfig {
    fn preset(name: &str) -> Option<Self> {
        Some(Self {
            model: GawwnConfig::preset(name)?,
            // full captions only: +15 points of held-in joint at 25 minutes
            // (docs/experiments.md); a partial caption is completed at the
            // requested place before it is drawn (`GawwnModel::completed`)
            data: DataConfig {
                partial_captions: 0.0,
                ..DataConfig::shapes(10_000)
            },
            text: TextPhase {
                encoder: String::new(),
                steps: 800,
                hard: 0.5,
            },
        })
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.model.validate()?;
        self.data.validate(&["shapes", "cub"])?;
        if self.data.name == "cub" && self.text.encoder.is_empty() {
            return Err(
                "--data cub needs --text-encoder (a char-CNN-RNN run's text_encoder.safetensors: t2i train --model char-cnn-rnn --data cub)".into(),
            );
        }
        crate::family::check_batch_size(self.model.batch_size)?;
        if !(self.model.lr > 0.0 && self.model.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", self.model.lr));
        }
        Ok(())
    }
}

/// Layout tensors of layouts: boxes `[n, 4]` or keypoints `[n, K, 3]`
/// (missing keypoints zero, with the switches `[n, K]` of the given ones).
fn layout_tensors(
    layouts: &[Layout],
    condition: Condition,
    parts: i64,
    device: Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let n = layouts.len() as i64;
    match condition {
        Condition::Box => {
            let mut v = Vec::with_capacity(layouts.len() * 4);
            for l in layouts {
                match l {
                    Layout::Box(b) => v.extend_from_slice(b),
                    Layout::Keypoints(_) => {
                        return Err(Error::Layout(
                            "this GAWWN model draws in boxes: give a box, not keypoints".into(),
                        ))
                    }
                }
            }
            Ok((Tensor::from_slice(&v).view([n, 4]).to_device(device), None))
        }
        Condition::Keypoints => {
            let mut v = Vec::new();
            let mut s = Vec::new();
            for l in layouts {
                let Layout::Keypoints(kp) = l else {
                    return Err(Error::Layout(
                        "this GAWWN model draws parts at keypoints: give keypoints, not a box"
                            .into(),
                    ));
                };
                if kp.len() as i64 != parts {
                    return Err(Error::Layout(format!(
                        "{} keypoints given, the model has {parts} parts",
                        kp.len()
                    )));
                }
                for p in kp {
                    match p {
                        Some([x, y]) => {
                            v.extend_from_slice(&[*x, *y, 1.0]);
                            s.push(1.0f32);
                        }
                        None => {
                            v.extend_from_slice(&[0.0, 0.0, 0.0]);
                            s.push(0.0);
                        }
                    }
                }
            }
            Ok((
                Tensor::from_slice(&v).view([n, parts, 3]).to_device(device),
                Some(Tensor::from_slice(&s).view([n, parts]).to_device(device)),
            ))
        }
    }
}

/// The data a run trains on.
enum RunData {
    /// The shapes data set (saved in the checkpoints: a resumed run makes
    /// the same images).
    Shapes(ShapesConfig),
    /// A data set in the CUB layout.
    Cub,
}

/// Captions and layouts of a sample grid's rows.
type SampleSet = (Vec<String>, Vec<Layout>);

/// The training split of shapes with each image's layout, and the sample
/// grid's test captions and layouts.
fn shapes_data(model: &GawwnModel, shapes: &Shapes) -> Result<(EmbeddedImages, SampleSet)> {
    let c = &model.config;
    let size = c.image_size as f32;
    let data = EmbeddedImages::shapes(shapes, Split::Train, &model.encoder, model.device)?;
    let samples = data.shapes_samples().unwrap_or_default();
    let layouts = match c.condition {
        Condition::Box => {
            let v: Vec<f32> = samples
                .iter()
                .flat_map(|s| s.objects[0].box_fraction(size))
                .collect();
            Tensor::from_slice(&v).view([-1, 4])
        }
        Condition::Keypoints => {
            let v: Vec<f32> = samples
                .iter()
                .flat_map(|s| {
                    s.objects[0]
                        .keypoint_fractions(size)
                        .iter()
                        .flat_map(|p| [p[0], p[1], 1.0])
                        .collect::<Vec<f32>>()
                })
                .collect();
            Tensor::from_slice(&v).view([-1, c.parts, 3])
        }
    };
    let data = data.with_layouts(layouts, Vec::new());
    let sample = (0..6)
        .map(|i| {
            let s = shapes.sample(Split::Test, i);
            let o = &s.objects[0];
            let layout = match c.condition {
                Condition::Box => Layout::Box(o.box_fraction(size)),
                Condition::Keypoints => {
                    Layout::Keypoints(o.keypoint_fractions(size).map(Some).to_vec())
                }
            };
            (s.captions[0].clone(), layout)
        })
        .unzip();
    Ok((data, sample))
}

/// A layout tensor's rows as [`Layout`]s (boxes `[n, 4]`, keypoints `[n,
/// K, 3]`).
fn layouts_from(t: &Tensor, condition: Condition) -> Result<Vec<Layout>> {
    let v: Vec<f32> = Vec::try_from(t.to_device(Device::Cpu).contiguous().view([-1]))?;
    Ok(match condition {
        Condition::Box => v
            .chunks(4)
            .map(|b| Layout::Box([b[0], b[1], b[2], b[3]]))
            .collect(),
        Condition::Keypoints => {
            let k = t.size()[1] as usize;
            v.chunks(3 * k)
                .map(|kp| Layout::Keypoints(keypoint_list(kp)))
                .collect()
        }
    })
}

/// G, D (and G_k, D_k), their optimisers and the data.
struct Trainer {
    model: GawwnModel,
    d_vs: nn::VarStore,
    d: Discriminator,
    /// D_k and the optimisers of G_k and D_k (keypoint models).
    keypoint_gan: Option<KeypointGan>,
    /// Running average of G's weights (`ema_decay` > 0).
    g_avg: Option<WeightAverage>,
    opt_g: Adam,
    opt_d: Adam,
    step: i64,
    seed: u64,
    data: EmbeddedImages,
    data_config: RunData,
    /// Test captions and layouts of the sample grids.
    sample: SampleSet,
}

/// The keypoint generator's adversarial training (`main_gen_keypoints.lua`):
/// D_k and the optimisers of G_k and D_k.
pub struct KeypointGan {
    dk_vs: nn::VarStore,
    dk: KeypointDiscriminator,
    opt_gk: Adam,
    opt_dk: Adam,
    config: GawwnConfig,
}

impl KeypointGan {
    /// D_k (fresh weights) and the optimisers of `gk_vs` (G_k's weights)
    /// and D_k.
    pub fn new(gk_vs: &nn::VarStore, c: &GawwnConfig, device: Device) -> Self {
        let dk_vs = nn::VarStore::new(device);
        let dk = KeypointDiscriminator::new(dk_vs.root(), c);
        let adam = |vs: &nn::VarStore| Adam::new(vs, c.lr, c.beta1, 0.999);
        Self {
            opt_gk: adam(gk_vs),
            opt_dk: adam(&dk_vs),
            dk_vs,
            dk,
            config: c.clone(),
        }
    }

    /// One D_k and one G_k update on the real sets `layout` (`[batch, K,
    /// 3]`, visibility in the last column) with their sentence vectors `t`:
    /// each visible keypoint is given to G_k with P = `keypoint_keep_prob`.
    /// Returns D_k's and G_k's losses.
    pub fn step(
        &mut self,
        gk: &KeypointCompleter,
        layout: &Tensor,
        t: &Tensor,
        seed: u64,
    ) -> (f64, f64) {
        let c = &self.config;
        let n = layout.size()[0];
        let vis = layout.select(2, 2).gt(0.5).to_kind(Kind::Float); // [batch, K]
        let real = layout * vis.unsqueeze(-1); // invisible parts all zero
        let keep = crate::rng::uniform_like(&vis, seed ^ 0x6B)
            .lt(c.keypoint_keep_prob)
            .to_kind(Kind::Float)
            * &vis;
        let given = &real * keep.unsqueeze(-1);
        let zk = crate::rng::normal(n, c.z_dim, seed ^ 0x6B6B, layout.device());
        let kfake = gk.forward_t(&zk, t, &given, &keep, true); // [batch, K, 3]
        let v = kfake.narrow(2, 2, 1);
        // D_k sees a generated part as real ones are written: its place
        // scaled by its visibility, so an invisible part is (0, 0, 0) too
        let kshown = Tensor::cat(&[kfake.narrow(2, 0, 2) * &v, v], 2);
        let loss_dk = bce(&self.dk.forward_t(&real, t, true), 1.0)
            + bce(&self.dk.forward_t(&kshown.detach(), t, true), 0.0);
        self.opt_dk.zero_grad();
        loss_dk.backward();
        self.opt_dk.step();
        let mut loss_gk = bce(&self.dk.forward_t(&kshown, t, true), 1.0);
        if c.gk_l1_weight > 0.0 {
            // the parts not given: visibility always, the place only where
            // the real part is visible (an invisible part's zeros are no place)
            let drawn = keep.ones_like().g_sub(&keep).unsqueeze(-1); // [batch, K, 1]
            let v = vis.unsqueeze(-1);
            let w = &drawn * Tensor::cat(&[&v, &v, &v.ones_like()], 2); // [batch, K, 3]
            let l1 = ((&kfake - &real).abs() * &w).sum(Kind::Float) / (w.sum(Kind::Float) + 1.0);
            loss_gk += l1 * c.gk_l1_weight;
        }
        self.opt_gk.zero_grad();
        self.opt_gk.backward(&loss_gk);
        self.opt_gk.step();
        (loss_dk.double_value(&[]), loss_gk.double_value(&[]))
    }
}

fn bce(s: &Tensor, target: f64) -> Tensor {
    s.binary_cross_entropy_with_logits::<Tensor>(
        &s.full_like(target),
        None,
        None,
        tch::Reduction::Mean,
    )
}

impl Trainer {
    /// The networks around `model`, trained on the training split of
    /// `shapes` (layouts of each image's first object).
    fn new(
        model: GawwnModel,
        data: EmbeddedImages,
        data_config: RunData,
        sample: SampleSet,
        seed: u64,
    ) -> Result<Self> {
        let mut model = model;
        if let Some(boxes) = data
            .layouts()
            .filter(|_| model.config.condition == Condition::Box)
        {
            let m: Vec<f32> = Vec::try_from(boxes.mean_dim(0, false, Kind::Float))?;
            model.default_box = [m[0], m[1], m[2], m[3]];
        }
        let device = model.device;
        let c = model.config.clone();
        let d_vs = nn::VarStore::new(device);
        let d = Discriminator::new(d_vs.root(), &c);
        let keypoint_gan = (c.condition == Condition::Keypoints)
            .then(|| KeypointGan::new(&model.gk_vs, &c, device));
        let adam = |vs: &nn::VarStore| Adam::new(vs, c.lr, c.beta1, 0.999);
        let g_avg =
            (c.ema_decay > 0.0).then(|| WeightAverage::with_warmup(&model.g_vs, c.ema_decay));
        Ok(Trainer {
            g_avg,
            opt_g: adam(&model.g_vs),
            opt_d: adam(&d_vs),
            model,
            d_vs,
            d,
            keypoint_gan,
            step: 0,
            seed,
            data,
            data_config,
            sample,
        })
    }

    fn train_step(&mut self) -> Metrics {
        let c = self.model.config.clone();
        let b = self
            .data
            .pairs(self.seed, self.step, c.batch_size, c.hard_negative_prob);
        let layout = b.layout.as_ref().expect("layouts attached");
        let dev = self.model.device;
        let seed = step_seed(self.seed, self.step);
        let z = crate::rng::normal(c.batch_size, c.z_dim, seed, dev);
        let fake = self.model.g.forward_t(&z, &b.right, layout, true); // [batch, 3, s, s]

        // D: real/right, real/wrong (cls_weight), fake/right (1 - cls_weight)
        let s_r = self.d.forward_t(&b.images, &b.right, layout, true);
        let s_w = self.d.forward_t(&b.images, &b.wrong, layout, true);
        let s_f = self.d.forward_t(&fake.detach(), &b.right, layout, true);
        let loss_d = discriminator_loss(&s_r, &s_w, &s_f, c.cls_weight);
        self.opt_d.zero_grad();
        loss_d.backward();
        self.opt_d.step();

        // G: D should call the fakes real
        let s_f2 = self.d.forward_t(&fake, &b.right, layout, true);
        let loss_g = generator_loss(&s_f2);
        self.opt_g.zero_grad();
        self.opt_g.backward(&loss_g);
        self.opt_g.step();
        if let Some(a) = &mut self.g_avg {
            a.update();
        }
        let prob = |s: &Tensor| s.sigmoid().mean(Kind::Float).double_value(&[]);
        let mut m = vec![
            ("loss_d".to_string(), loss_d.double_value(&[])),
            ("loss_g".to_string(), loss_g.double_value(&[])),
            ("d_real".to_string(), prob(&s_r)),
            ("d_wrong".to_string(), prob(&s_w)),
            ("d_fake".to_string(), prob(&s_f)),
        ];
        if let (Some(gk), Some(kg)) = (&self.model.gk, &mut self.keypoint_gan) {
            let (loss_dk, loss_gk) = kg.step(gk, layout, &b.right, seed);
            m.push(("loss_dk".into(), loss_dk));
            m.push(("loss_gk".into(), loss_gk));
        }
        self.step += 1;
        m
    }

    fn save(&self, path: &Path) -> Result<()> {
        let m = &self.model;
        let mut meta = m.encoder.describe();
        meta.insert("model".into(), "gawwn".into());
        meta.insert(
            "config".into(),
            toml::to_string(&m.config).map_err(|e| Error::Config(e.to_string()))?,
        );
        if let RunData::Shapes(cfg) = &self.data_config {
            meta.insert(
                "data".into(),
                toml::to_string(cfg).map_err(|e| Error::Config(e.to_string()))?,
            );
        }
        meta.insert(
            "parts".into(),
            serde_json::to_string(&m.parts).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert(
            "default_box".into(),
            serde_json::to_string(&m.default_box).map_err(|e| Error::Config(e.to_string()))?,
        );
        meta.insert("step".into(), self.step.to_string());
        meta.insert("seed".into(), self.seed.to_string());
        meta.insert("versions".into(), crate::versions());
        meta.insert("device".into(), crate::device::device_name(m.device));
        let mut tensors = checkpoint::named(&m.g_vs, "G");
        if let Some(a) = &self.g_avg {
            tensors.extend(a.named("G_avg"));
            let standing = self.generating(|| {
                checkpoint::buffers(&m.g_vs)
                    .into_iter()
                    .map(|(n, b)| (format!("G_avg.{n}"), b.copy()))
                    .collect::<Vec<_>>()
            });
            tensors.extend(standing);
        }
        tensors.extend(checkpoint::named(&self.d_vs, "D"));
        tensors.extend(m.encoder.tensors());
        tensors.extend(self.opt_g.state("optim.G"));
        tensors.extend(self.opt_d.state("optim.D"));
        if let Some(kg) = &self.keypoint_gan {
            tensors.extend(checkpoint::named(&m.gk_vs, "Gk"));
            tensors.extend(checkpoint::named(&kg.dk_vs, "Dk"));
            tensors.extend(kg.opt_gk.state("optim.Gk"));
            tensors.extend(kg.opt_dk.state("optim.Dk"));
        }
        checkpoint::save(path, &meta, &tensors)
    }

    /// Restores D, D_k, the optimisers and the step (the model part was
    /// loaded with [`GawwnModel::from_checkpoint`]).
    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.load_into(&mut self.d_vs, "D")?;
        if let Some(a) = &mut self.g_avg {
            // the model was loaded with the average: the trained weights go on
            ck.load_into(&mut self.model.g_vs, "G")?;
            a.restore(ck, "G_avg")?;
            a.updates = ck.meta("step")?.parse().unwrap_or(0);
        }
        let bad = |e: String| Error::Checkpoint(e);
        self.opt_g.load_state("optim.G", &ck.tensors).map_err(bad)?;
        self.opt_d.load_state("optim.D", &ck.tensors).map_err(bad)?;
        if let Some(kg) = &mut self.keypoint_gan {
            ck.load_into(&mut kg.dk_vs, "Dk")?;
            kg.opt_gk.load_state("optim.Gk", &ck.tensors).map_err(bad)?;
            kg.opt_dk.load_state("optim.Dk", &ck.tensors).map_err(bad)?;
        }
        self.step = ck
            .meta("step")?
            .parse()
            .map_err(|_| Error::Checkpoint("bad step in checkpoint".into()))?;
        Ok(())
    }

    /// Runs `f` with the generator that generates ([`ema::generating`]).
    fn generating<T>(&self, f: impl FnOnce() -> T) -> T {
        ema::generating(self.g_avg.as_ref(), || self.set_standing_stats(), f)
    }

    /// Standing statistics of G ([`set_standing_stats`]): training
    /// captions, layouts and noise from fixed seeds.
    fn set_standing_stats(&self) -> Vec<(Tensor, Tensor)> {
        let c = &self.model.config;
        let seed = self.seed ^ 0x57A4D;
        set_standing_stats(&self.model.g_vs, |k| {
            let b = self.data.pairs(seed, k, c.batch_size, 0.0);
            let layout = b.layout.as_ref().expect("layouts attached");
            let z =
                crate::rng::normal(c.batch_size, c.z_dim, step_seed(seed, k), self.model.device);
            let _ = self.model.g.forward_t(&z, &b.right, layout, true);
        })
    }

    /// A grid: each sample caption with its test layout, 8 noises, the
    /// layout drawn over each image.
    fn sample_grid(&self) -> Result<crate::imageio::Rgb> {
        self.generating(|| self.sample_grid_inner())
    }

    fn sample_grid_inner(&self) -> Result<crate::imageio::Rgb> {
        let (caps, layouts) = &self.sample;
        let mut rows = Vec::new();
        for (cap, layout) in caps.iter().zip(layouts) {
            let c8 = vec![cap.as_str(); 8];
            let l8 = vec![layout.clone(); 8];
            let out = self.model.generate_at(&c8, &l8, 7)?;
            let mut imgs = tensor_to_images(&out.images);
            for img in &mut imgs {
                crate::placement::draw(img, layout, None);
            }
            rows.push((imgs, Some(cap.clone())));
        }
        Ok(grid(&rows, 2))
    }
}

/// Where a layout puts the object, `[cx, cy, r]` as fractions of the
/// image: a box's centre and half its mean side; keypoints' centre (the
/// first part, else the middle of the visible ones) and half the larger
/// of their height and width. `None` without a visible keypoint.
fn place_of(layout: &Layout) -> Option<[f32; 3]> {
    match layout {
        Layout::Box([x, y, w, h]) => Some([x + w / 2.0, y + h / 2.0, (w + h) / 4.0]),
        Layout::Keypoints(kp) => {
            let seen: Vec<[f32; 2]> = kp.iter().flatten().copied().collect();
            let first = *seen.first()?;
            let (mut lo, mut hi) = (first, first);
            for p in &seen {
                lo = [lo[0].min(p[0]), lo[1].min(p[1])];
                hi = [hi[0].max(p[0]), hi[1].max(p[1])];
            }
            let centre = kp
                .first()
                .copied()
                .flatten()
                .unwrap_or([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0]);
            Some([
                centre[0],
                centre[1],
                (hi[0] - lo[0]).max(hi[1] - lo[1]) / 2.0,
            ])
        }
    }
}

/// `(x, y, visibility)` triples as keypoints (`None` where not visible).
fn keypoint_list(v: &[f32]) -> Vec<Option<[f32; 2]>> {
    v.chunks(3)
        .map(|p| (p[2] > 0.5).then_some([p[0], p[1]]))
        .collect()
}

impl GawwnModel {
    /// Fills missing keypoints of each layout with G_k (noise from `seed`).
    fn complete_layouts(&self, t: &Tensor, layouts: &[Layout], seed: u64) -> Result<Tensor> {
        let (given, switch) = layout_tensors(
            layouts,
            self.config.condition,
            self.config.parts,
            self.device,
        )?;
        match switch {
            Some(s) => self.complete(t, &given, &s, seed),
            None => Ok(given),
        }
    }
}

impl FamilyGenerator for GawwnModel {
    fn family(&self) -> &'static str {
        "gawwn"
    }
    fn image_size(&self) -> i64 {
        self.config.image_size
    }
    fn controls(&self) -> Controls {
        Controls {
            interpolate: false,
            style_transfer: false,
            attention: false,
            stages: false,
            boxes: self.config.condition == Condition::Box,
            keypoints: self.config.condition == Condition::Keypoints,
            ..Default::default()
        }
    }
    fn unknown_words(&self, caption: &str) -> Result<Vec<String>> {
        Ok(self.encoder.encode(&[caption])?.1.remove(0).unknown)
    }
    /// Without a layout: a box model draws in the training boxes' mean box;
    /// a keypoint model draws at keypoints G_k makes from the text alone.
    fn generate(&self, captions: &[&str], seed: u64) -> Result<Generated> {
        let layouts: Vec<Layout> = match self.config.condition {
            Condition::Box => vec![Layout::Box(self.default_box); captions.len()],
            Condition::Keypoints => {
                let t = self.embed(captions)?;
                let none = vec![Layout::Keypoints(vec![None; self.parts.len()]); captions.len()];
                let kp = self.complete_layouts(&t, &none, seed)?;
                let v: Vec<f32> = Vec::try_from(kp.to_device(Device::Cpu).view([-1]))?;
                v.chunks(3 * self.parts.len())
                    .map(|k| Layout::Keypoints(keypoint_list(k)))
                    .collect()
            }
        };
        self.generate_at(captions, &layouts, seed)
    }
    fn part_names(&self) -> Vec<String> {
        match self.config.condition {
            Condition::Box => Vec::new(),
            Condition::Keypoints => self.parts.clone(),
        }
    }
    fn generate_at(&self, captions: &[&str], layouts: &[Layout], seed: u64) -> Result<Generated> {
        if layouts.len() != captions.len() {
            return Err(Error::Config(format!(
                "{} layouts for {} captions",
                layouts.len(),
                captions.len()
            )));
        }
        let (layout, _) = layout_tensors(
            layouts,
            self.config.condition,
            self.config.parts,
            self.device,
        )?;
        let drawn_as = self.shapes.as_ref().map(|_| {
            let places: Vec<_> = layouts.iter().map(place_of).collect();
            self.completed(captions, &places, seed)
        });
        let t = match &drawn_as {
            Some(full) => self.embed(&full.iter().map(String::as_str).collect::<Vec<_>>())?,
            None => self.embed(captions)?,
        };
        let z = self.noise(captions.len() as i64, seed);
        Ok(Generated {
            images: self.draw(&z, &t, &layout).to_device(Device::Cpu),
            first_stage: None,
            drawn_as,
            corrected: None,
        })
    }
    fn complete_keypoints(
        &self,
        caption: &str,
        given: &[Option<[f32; 2]>],
        seed: u64,
    ) -> Result<Vec<Option<[f32; 2]>>> {
        let t = self.embed(&[caption])?;
        let kp = self.complete_layouts(&t, &[Layout::Keypoints(given.to_vec())], seed)?;
        let v: Vec<f32> = Vec::try_from(kp.to_device(Device::Cpu).view([-1]))?;
        Ok(keypoint_list(&v))
    }
}

/// A fresh model of `rc` with `encoder`'s text and the data set's parts.
fn new_model(
    rc: &GawwnRunConfig,
    encoder: crate::text::AnyTextEncoder,
    parts: Vec<String>,
    ctx: &TrainContext,
) -> GawwnModel {
    let mut mc = rc.model.clone();
    mc.text_dim = encoder.sentence_dim();
    mc.parts = parts.len() as i64;
    tch::manual_seed(ctx.seed as i64); // reproducible initial weights
    GawwnModel::new(mc, encoder, parts, ctx.device)
}

/// A run on a data set in the CUB layout: the training split's crops with
/// random crop and flip, boxes and parts moved with them (left and right
/// parts swapped in mirrored images), the text encoder given.
fn cub_trainer(
    rc: &GawwnRunConfig,
    ctx: &TrainContext,
    resume: Option<&Checkpoint>,
) -> Result<Box<dyn FamilyTrainer>> {
    use crate::data::cub::CubSplit;
    let root = rc.data.root();
    let opts = crate::data::images::LoadOptions {
        augment: true,
        ..ctx.loading(rc.model.image_size)
    };
    let cub = ctx.load_cub(root, CubSplit::Train, &opts)?;
    let lay = crate::data::images::cub_layouts(root, CubSplit::Train, &cub.images.prepared)?;
    let model = match resume {
        Some(ck) => GawwnModel::from_checkpoint(ck, ctx.device)?,
        None => {
            let encoder =
                crate::text::AnyTextEncoder::load(Path::new(&rc.text.encoder), ctx.device)?;
            new_model(rc, encoder, lay.part_names.clone(), ctx)
        }
    };
    let (layouts, mirror) = match model.config.condition {
        Condition::Box => (lay.boxes, Vec::new()),
        Condition::Keypoints => (lay.keypoints, lay.mirror),
    };
    let shown = layouts_from(
        &layouts.narrow(0, 0, 6.min(layouts.size()[0])),
        model.config.condition,
    )?;
    let captions = crate::data::images::test_captions(root, shown.len())?;
    let data =
        EmbeddedImages::crops(cub, &model.encoder, ctx.device)?.with_layouts(layouts, mirror);
    let mut t = Trainer::new(model, data, RunData::Cub, (captions, shown), ctx.seed)?;
    if let Some(ck) = resume {
        t.restore(ck)?;
    }
    Ok(Box::new(t))
}

/// The family entry of GAWWN.
pub struct GawwnFamily;

impl TypedFamily for GawwnFamily {
    type Config = GawwnRunConfig;
    const NAME: &'static str = "gawwn";
    const ABOUT: &'static str =
        "GAWWN (Reed et al. 2016): what and where to draw, from boxes or keypoints; keypoint generator G_k";
    const PRESETS: &'static [&'static str] = &["tiny", "paper"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        crate::family::standard_flag_keys(flag)
    }
    fn trainer(
        &self,
        rc: Self::Config,
        ctx: &TrainContext,
        resume: Option<&Checkpoint>,
    ) -> Result<Box<dyn FamilyTrainer>> {
        let device = ctx.device;
        if rc.data.name == "cub" {
            return cub_trainer(&rc, ctx, resume);
        }
        let shapes_cfg = match resume {
            Some(ck) => toml::from_str::<ShapesConfig>(ck.meta("data")?)
                .map_err(|e| Error::Checkpoint(format!("checkpoint data config: {e}")))?,
            None => ShapesConfig {
                image_size: rc.model.image_size as u32,
                max_objects: 1,
                train_size: rc.data.train_size,
                partial_captions: rc.data.partial_captions,
                continuous_layout: true,
                seed: ctx.seed,
                ..Default::default()
            },
        };
        let shapes = Shapes::new(shapes_cfg.clone())?;
        let model = match resume {
            Some(ck) => GawwnModel::from_checkpoint(ck, device)?,
            None => {
                let encoder = super::text_encoder::shapes_or_given(
                    &rc.text,
                    &shapes,
                    GruEncoderConfig::tiny(),
                    ctx,
                )?;
                let parts = SHAPES_PARTS.iter().map(|s| s.to_string()).collect();
                new_model(&rc, encoder, parts, ctx)
            }
        };
        let (data, sample) = shapes_data(&model, &shapes)?;
        let mut model = model;
        model.shapes = Some(shapes);
        let mut t = Trainer::new(model, data, RunData::Shapes(shapes_cfg), sample, ctx.seed)?;
        if let Some(ck) = resume {
            t.restore(ck)?;
        }
        Ok(Box::new(t))
    }
    fn generator(&self, ck: &Checkpoint, device: Device) -> Result<Box<dyn FamilyGenerator>> {
        Ok(Box::new(GawwnModel::from_checkpoint(ck, device)?))
    }
    fn parameter_counts(
        &self,
        config: &Self::Config,
    ) -> Result<(String, Vec<crate::family::ParamRow>)> {
        use crate::bench::count_built;
        use crate::models::gawwn::{Generator, KeypointCompleter};
        let c = bench_config(&config.model);
        let head = format!(
            "gawwn ({} preset, {} model, {}x{}, M {}, {} parts, {}-d text)",
            c.preset,
            match c.condition {
                Condition::Box => "box",
                Condition::Keypoints => "keypoint",
            },
            c.image_size,
            c.image_size,
            c.map_size,
            c.parts,
            c.text_dim
        );
        let mut rows = vec![
            count_built("generator G", |p| drop(Generator::new(p, &c))),
            count_built("discriminator D", |p| drop(Discriminator::new(p, &c))),
        ];
        if c.condition == Condition::Keypoints {
            rows.push(count_built("keypoint generator G_k", |p| {
                drop(KeypointCompleter::new(p, &c))
            }));
            rows.push(count_built("keypoint discriminator D_k", |p| {
                drop(KeypointDiscriminator::new(p, &c))
            }));
        }
        Ok((head, rows))
    }
    fn bench(
        &self,
        config: &Self::Config,
        opts: &BenchOptions,
    ) -> Result<Vec<(serde_json::Value, String)>> {
        let r = bench_gawwn(&bench_config(&config.model), opts.device, opts.repeats)?;
        let v = serde_json::to_value(&r).map_err(|e| Error::Config(e.to_string()))?;
        Ok(vec![(v, r.table())])
    }
}

/// A preset's networks as a run builds them: CUB's 15 parts and the
/// char-CNN-RNN's 1024-d text for `paper`, shapes' 5 parts and a 128-d GRU
/// for the others.
fn bench_config(c: &GawwnConfig) -> GawwnConfig {
    let paper = c.preset == "paper";
    GawwnConfig {
        parts: if paper { 15 } else { SHAPES_PARTS.len() as i64 },
        text_dim: if paper { 1024 } else { 128 },
        ..c.clone()
    }
}

/// Times a GAWWN training iteration (D and G, and for keypoint models D_k
/// and G_k) and generation, on shapes data with an untrained text encoder
/// of `c.text_dim` (training uses captions embedded once before; generation
/// includes encoding the caption).
pub fn bench_gawwn(
    c: &GawwnConfig,
    device: Device,
    repeats: usize,
) -> Result<crate::bench::BenchReport> {
    use crate::bench::{peak_rss_mib, time, BenchReport};
    let shapes = Shapes::new(ShapesConfig {
        image_size: c.image_size as u32,
        max_objects: 1,
        continuous_layout: true,
        train_size: (c.batch_size as usize * 4).max(256),
        test_size: 64,
        ..Default::default()
    })?;
    let caps: Vec<String> = (0..64)
        .flat_map(|i| shapes.sample(Split::Train, i).captions)
        .collect();
    let vocab = crate::text::Vocab::build(caps.iter().map(String::as_str), 1);
    let enc = crate::text::GruEncoder::new(
        GruEncoderConfig {
            sentence_dim: c.text_dim,
            ..GruEncoderConfig::tiny()
        },
        vocab,
        device,
    );
    let mc = GawwnConfig {
        parts: SHAPES_PARTS.len() as i64,
        ..c.clone()
    };
    let parts = SHAPES_PARTS.iter().map(|s| s.to_string()).collect();
    let model = GawwnModel::new(mc, crate::text::AnyTextEncoder::Gru(enc), parts, device);
    let (data, sample) = shapes_data(&model, &shapes)?;
    let mut t = Trainer::new(
        model,
        data,
        RunData::Shapes(shapes.config.clone()),
        sample,
        0,
    )?;
    let sync = || crate::bench::sync(device);
    let train_step = time(repeats, 3, || {
        t.train_step();
        sync();
    });
    let m = &t.model;
    let gen = |n: usize| {
        let caps = vec![t.sample.0[0].as_str(); n];
        let layouts = vec![t.sample.1[0].clone(); n];
        move || {
            let _ = m.generate_at(&caps, &layouts, 1);
            sync();
        }
    };
    let generate_batch1 = time(repeats * 3, 3, gen(1));
    let generate_batch16 = time(repeats, 3, gen(16));
    let generate_batch32 = time(repeats, 3, gen(32));
    Ok(BenchReport {
        model: format!(
            "gawwn ({})",
            match c.condition {
                Condition::Box => "box",
                Condition::Keypoints => "keypoints",
            }
        ),
        preset: c.preset.clone(),
        image_size: c.image_size,
        batch_size: c.batch_size,
        device: crate::device::device_name(device),
        threads: tch::get_num_threads(),
        train_step,
        generate_batch1,
        generate_batch16,
        generate_batch32,
        peak_rss_mib: peak_rss_mib(),
    })
}

impl FamilyTrainer for Trainer {
    fn step(&self) -> i64 {
        self.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        Ok(Trainer::train_step(self))
    }
    fn lr(&self) -> f64 {
        self.opt_g.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        Trainer::save(self, path)
    }
    fn sample_grid(&self) -> Result<Option<crate::imageio::Rgb>> {
        Ok(Some(Trainer::sample_grid(self)?))
    }
    fn finish(
        &mut self,
        _ctx: &TrainContext,
        interrupted: bool,
        eval_samples: usize,
    ) -> Result<Summary> {
        if let Some(a) = self.g_avg.take() {
            // the average generates from here on, as from the saved checkpoint
            a.apply();
            let _ = self.set_standing_stats();
        }
        let RunData::Shapes(data) = &self.data_config else {
            return Ok(Summary::default());
        };
        if interrupted || eval_samples == 0 {
            return Ok(Summary::default());
        }
        let data = data.clone();
        let mut value = crate::eval::shapes::evaluate(&self.model, &data, eval_samples, 99)?;
        // the same networks before training (initialised as the run was)
        tch::manual_seed(self.seed as i64);
        let fresh_vs = nn::VarStore::new(self.model.device);
        let fresh = crate::models::gawwn::Generator::new(fresh_vs.root(), &self.model.config);
        let trained_vs = std::mem::replace(&mut self.model.g_vs, fresh_vs);
        let trained = std::mem::replace(&mut self.model.g, fresh);
        let untrained = crate::eval::control::control_scores(&self.model, &data, eval_samples, 99);
        self.model.g_vs = trained_vs;
        self.model.g = trained;
        value["untrained_control"] = serde_json::json!(untrained?);
        let lines = crate::eval::shapes::summary_lines(&value);
        Ok(Summary { value, lines })
    }
}
