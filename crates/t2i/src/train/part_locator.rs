//! Training the part locator ([`crate::models::part_locator`]) on the boxes
//! and part locations of a data set's training split (CUB's 15 parts), with
//! random crop and flip moving the annotations along; one image in ten is
//! held out to measure it (the test split is never used).

use super::optim::Adam;
use crate::checkpoint::{self, Checkpoint};
use crate::data::images::{cub_layouts, CubLayouts, LoadOptions};
use crate::data::prepare::{move_layouts, ImageBatcher};
use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::family::{FamilyConfig, Metrics, Summary, TrainContext, Trainer, TypedFamily};
use crate::models::part_locator::{loss, PartLocator, PartLocatorConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Tensor};

/// A trained part locator with the names of its parts.
pub struct PartLocatorModel {
    pub config: PartLocatorConfig,
    pub vs: nn::VarStore,
    pub net: PartLocator,
    pub part_names: Vec<String>,
    /// Held-out scores when it was saved ([`LocatorScores`]).
    pub held_out: Option<LocatorScores>,
}

/// How well the locator reads held-out real images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LocatorScores {
    pub images: usize,
    /// Mean IoU of the read box with the annotated one.
    pub box_iou: f64,
    /// Mean distance of read to annotated visible parts, as a fraction of
    /// the image side.
    pub part_error: f64,
    /// Visibility read right.
    pub visibility_accuracy: f64,
}

impl PartLocatorModel {
    pub fn new(config: PartLocatorConfig, part_names: Vec<String>, device: Device) -> Self {
        let config = PartLocatorConfig {
            parts: part_names.len() as i64,
            ..config
        };
        let vs = nn::VarStore::new(device);
        let net = PartLocator::new(vs.root(), &config);
        Self {
            config,
            vs,
            net,
            part_names,
            held_out: None,
        }
    }

    pub fn from_checkpoint(ck: &Checkpoint, device: Device) -> Result<Self> {
        ck.expect_model("part-locator")?;
        let config: PartLocatorConfig = ck.json_meta("config")?;
        let names: Vec<String> = ck.json_meta("part_names")?;
        let mut m = Self::new(config, names, device);
        ck.load_into(&mut m.vs, "net")?;
        m.held_out = ck.json_meta("held_out").ok();
        Ok(m)
    }

    pub fn load(path: &Path, device: Device) -> Result<Self> {
        Self::from_checkpoint(&checkpoint::load(path)?, device)
    }

    /// Boxes `[n, 4]`, part locations `[n, K, 2]` and visibility
    /// probabilities `[n, K]` of images in [-1, 1] of any size (resized to
    /// the locator's input), on the CPU.
    pub fn locate(&self, images: &Tensor) -> (Tensor, Tensor, Tensor) {
        let dev = self.vs.device();
        let s = self.config.image_size;
        let n = images.size()[0];
        let (mut b, mut p, mut v) = (Vec::new(), Vec::new(), Vec::new());
        tch::no_grad(|| {
            for start in (0..n).step_by(100) {
                let x = images.narrow(0, start, 100.min(n - start)).to_device(dev);
                let x = if x.size()[2] != s {
                    x.upsample_bilinear2d([s, s], false, None, None)
                } else {
                    x
                };
                let o = self.net.forward_t(&x, false);
                b.push(o.boxes.to_device(Device::Cpu));
                p.push(o.points.to_device(Device::Cpu));
                v.push(o.visible.sigmoid().to_device(Device::Cpu));
            }
        });
        (Tensor::cat(&b, 0), Tensor::cat(&p, 0), Tensor::cat(&v, 0))
    }

    pub fn save(&self, path: &Path, step: i64, extra: &[(String, Tensor)]) -> Result<()> {
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("model".to_string(), "part-locator".to_string());
        meta.insert("config".into(), json(&self.config)?);
        meta.insert("part_names".into(), json(&self.part_names)?);
        if let Some(h) = &self.held_out {
            meta.insert("held_out".into(), json(h)?);
        }
        meta.insert("step".into(), step.to_string());
        meta.insert("versions".into(), crate::versions());
        meta.insert(
            "device".into(),
            crate::device::device_name(self.vs.device()),
        );
        let mut tensors = checkpoint::named(&self.vs, "net");
        tensors.extend(extra.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
        checkpoint::save(path, &meta, &tensors)
    }
}

/// `v` as a JSON string.
fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Config(e.to_string()))
}

/// IoU of boxes `[x, y, w, h]`.
pub fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let h = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (a[2] * a[3] + b[2] * b[3] - inter).max(1e-6)
}

/// `t2i train --model part-locator`: the network and its optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartLocatorRunConfig {
    /// The network (saved in every checkpoint).
    #[serde(flatten)]
    pub model: PartLocatorConfig,
    /// Adam learning rate.
    pub lr: f64,
    /// Images per step.
    pub batch_size: usize,
    /// Held-out scores every this many steps.
    pub eval_every: i64,
    /// The data set (in the CUB layout, with parts).
    pub data: DataConfig,
}

impl FamilyConfig for PartLocatorRunConfig {
    fn preset(name: &str) -> Option<Self> {
        (name == "tiny").then(|| Self {
            model: PartLocatorConfig::tiny(),
            lr: 1e-3,
            batch_size: 64,
            eval_every: 500,
            data: DataConfig::cub(),
        })
    }
    fn validate(&self) -> std::result::Result<(), String> {
        self.data.validate(&["cub"]).map_err(|e| {
            format!("{e}; the part locator trains on a real data set: --data cub --data-root DIR")
        })?;
        if !(8..=128).contains(&self.model.width) {
            return Err(format!(
                "width must be in 8..=128, got {}",
                self.model.width
            ));
        }
        if self.model.image_size % 16 != 0 || self.model.image_size < 32 {
            return Err(format!(
                "image_size must be a multiple of 16 from 32, got {}",
                self.model.image_size
            ));
        }
        crate::family::check_batch_size(self.batch_size as i64)?;
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!("lr must be in (0, 1), got {}", self.lr));
        }
        Ok(())
    }
}

/// A part-locator run: the network, its optimiser, the images and their
/// annotations.
struct LocatorRun {
    model: PartLocatorModel,
    opt: Adam,
    step: i64,
    seed: u64,
    batch_size: usize,
    eval_every: i64,
    images: ImageBatcher,
    layouts: CubLayouts,
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
}

impl LocatorRun {
    /// Boxes and keypoints of images `idx` moved with their cuts.
    fn batch(&self, idx: &[usize], augment: bool, step: i64) -> (Tensor, Tensor, Tensor) {
        let dev = self.model.vs.device();
        let mut rng = ImageBatcher::rng(self.seed, step);
        let (mut x, cuts) = self.images.batch_with_crops(idx, &mut rng, dev, augment);
        let ii = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let b = move_layouts(&self.layouts.boxes.index_select(0, &ii), &cuts, &[]);
        let k = move_layouts(
            &self.layouts.keypoints.index_select(0, &ii),
            &cuts,
            &self.layouts.mirror,
        );
        (
            x.pop().expect("one size"),
            b.to_device(dev),
            k.to_device(dev),
        )
    }

    fn scores(&self) -> LocatorScores {
        let mut s = LocatorScores::default();
        let (mut vis_right, mut vis_n, mut part_n) = (0usize, 0usize, 0usize);
        for chunk in self.val_idx.chunks(200) {
            let (x, b, k) = self.batch(chunk, false, 0);
            let (pb, pp, pv) = self.model.locate(&x);
            let f = |t: &Tensor| {
                Vec::<f32>::try_from(t.to_device(Device::Cpu).contiguous().view([-1]))
                    .unwrap_or_default()
            };
            let (b, k, pb, pp, pv) = (f(&b), f(&k), f(&pb), f(&pp), f(&pv));
            let kk = self.model.config.parts as usize;
            for i in 0..chunk.len() {
                let bb = |v: &[f32]| [v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]];
                s.box_iou += box_iou(bb(&b), bb(&pb)) as f64;
                for j in 0..kk {
                    let a = &k[3 * (i * kk + j)..3 * (i * kk + j) + 3];
                    let vis = a[2] > 0.5;
                    vis_right += usize::from(vis == (pv[i * kk + j] > 0.5));
                    vis_n += 1;
                    if vis {
                        let q = &pp[2 * (i * kk + j)..2 * (i * kk + j) + 2];
                        s.part_error +=
                            (((a[0] - q[0]).powi(2) + (a[1] - q[1]).powi(2)) as f64).sqrt();
                        part_n += 1;
                    }
                }
            }
            s.images += chunk.len();
        }
        s.box_iou /= s.images.max(1) as f64;
        s.part_error /= part_n.max(1) as f64;
        s.visibility_accuracy = vis_right as f64 / vis_n.max(1) as f64;
        s
    }

    fn save(&self, path: &Path) -> Result<()> {
        let mut extra = self.opt.state("optim");
        extra.push(("seed".into(), Tensor::from_slice(&[self.seed as i64])));
        self.model.save(path, self.step, &extra)
    }
}

impl Trainer for LocatorRun {
    fn step(&self) -> i64 {
        self.step
    }
    fn train_step(&mut self) -> Result<Metrics> {
        let mut rng = ImageBatcher::rng(self.seed ^ 0x10C, self.step);
        let idx: Vec<usize> = self
            .train_idx
            .choose_multiple(&mut rng, self.batch_size)
            .copied()
            .collect();
        let (x, b, k) = self.batch(&idx, true, self.step);
        let out = self.model.net.forward_t(&x, true);
        let l = loss(&out, &b, &k);
        self.opt.zero_grad();
        l.backward();
        self.opt.step();
        self.step += 1;
        Ok(vec![("loss".into(), l.double_value(&[]))])
    }
    fn lr(&self) -> f64 {
        self.opt.lr
    }
    fn save(&self, path: &Path) -> Result<()> {
        LocatorRun::save(self, path)
    }
    fn eval_every(&self) -> i64 {
        self.eval_every
    }
    fn evaluate(&mut self) -> Result<Metrics> {
        let s = self.scores();
        self.model.held_out = Some(s);
        Ok(vec![
            ("val_box_iou".into(), s.box_iou),
            ("val_part_error".into(), s.part_error),
            ("val_visibility".into(), s.visibility_accuracy),
        ])
    }
    fn finish(&mut self, ctx: &TrainContext, interrupted: bool, _: usize) -> Result<Summary> {
        if interrupted {
            return Ok(Summary::default());
        }
        let s = self.scores();
        self.model.held_out = Some(s);
        self.save(&ctx.run.last_checkpoint())?;
        let line = format!(
            "held-out real images ({}): box IoU {:.3}, part error {:.1}% of the side, visibility {:.1}%",
            s.images,
            s.box_iou,
            100.0 * s.part_error,
            100.0 * s.visibility_accuracy
        );
        Ok(Summary {
            value: serde_json::json!({"steps": self.step, "held_out": s}),
            lines: vec![line],
        })
    }
}

/// The family entry of the part locator.
pub struct PartLocatorFamily;

impl TypedFamily for PartLocatorFamily {
    type Config = PartLocatorRunConfig;
    const NAME: &'static str = "part-locator";
    const ABOUT: &'static str =
        "evaluation part locator: reads the box and parts of a bird (GAWWN control on CUB)";
    const PRESETS: &'static [&'static str] = &["tiny"];
    fn flag_keys(&self, flag: &str) -> &'static [&'static str] {
        match flag {
            "lr" => &["lr"],
            "batch_size" => &["batch_size"],
            "ndf" => &["width"],
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
        let root = rc.data.root();
        let split = crate::data::cub::CubSplit::Train;
        let train = ctx.load_cub(
            root,
            split,
            &LoadOptions {
                augment: true,
                ..ctx.loading(rc.model.image_size)
            },
        )?;
        let layouts = cub_layouts(root, split, &train.images.prepared)?;
        tch::manual_seed(ctx.seed as i64);
        let mut model =
            PartLocatorModel::new(rc.model.clone(), layouts.part_names.clone(), ctx.device);
        let opt = Adam::new(&model.vs, rc.lr, 0.9, 0.999);
        let mut order: Vec<usize> = (0..train.classes.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            ctx.seed ^ 0x5E1,
        ));
        let val_idx: Vec<usize> = order.iter().copied().step_by(10).collect();
        let train_idx: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 10 != 0)
            .map(|(_, &i)| i)
            .collect();
        let mut step = 0;
        let mut opt = opt;
        if let Some(ck) = resume {
            ck.load_into(&mut model.vs, "net")?;
            opt.load_state("optim", &ck.tensors)
                .map_err(Error::Checkpoint)?;
            step = ck
                .meta("step")?
                .parse()
                .map_err(|_| Error::Checkpoint("bad step".into()))?;
        }
        Ok(Box::new(LocatorRun {
            model,
            opt,
            step,
            seed: ctx.seed,
            batch_size: rc.batch_size,
            eval_every: rc.eval_every,
            images: train.images,
            layouts,
            train_idx,
            val_idx,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_boxes() {
        assert!((box_iou([0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]) - 1.0).abs() < 1e-6);
        assert!((box_iou([0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.5, 0.5]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(box_iou([0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]), 0.0);
    }
}
