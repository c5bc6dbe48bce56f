//! Parameter counts and timings (`t2i info`, `t2i bench`).

use crate::data::shapes::{Shapes, ShapesConfig, Split};
use crate::device::device_name;
use crate::error::Result;
use crate::models::gan_int_cls::GanIntClsModel;
use crate::models::gan_int_cls::{Discriminator, GanIntClsConfig, Generator, StyleEncoder};
use crate::text::{AnyTextEncoder, GruEncoder, GruEncoderConfig, Vocab};
use crate::train::embedded::EmbeddedImages;
use crate::train::gan_int_cls::Trainer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Total and per-top-level-part parameter counts of a VarStore, as
/// PyTorch's `sum(p.numel() for p in net.parameters())` counts them:
/// BatchNorm running statistics and counters are buffers, not parameters.
pub fn count(vs: &nn::VarStore) -> (i64, Vec<(String, i64)>) {
    let mut parts: BTreeMap<String, i64> = BTreeMap::new();
    for (name, t) in vs.variables() {
        if !t.is_floating_point() || name.ends_with("running_mean") || name.ends_with("running_var")
        {
            continue;
        }
        let top = name.split('.').next().unwrap_or("").to_string();
        *parts.entry(top).or_default() += t.numel() as i64;
    }
    (parts.values().sum(), parts.into_iter().collect())
}

/// A network's name, total parameter count and count per top-level part.
pub type ParamCount = (String, i64, Vec<(String, i64)>);

/// Parameter counts of G, D and S of GAN-INT-CLS.
pub fn parameter_counts(c: &GanIntClsConfig) -> Vec<ParamCount> {
    vec![
        count_built("generator G", |p| drop(Generator::new(p, c))),
        count_built("discriminator D", |p| drop(Discriminator::new(p, c))),
        count_built("style encoder S", |p| drop(StyleEncoder::new(p, c))),
    ]
}

/// Builds a network into a fresh var store and counts its parameters.
pub fn count_built(name: &str, build: impl FnOnce(nn::Path)) -> ParamCount {
    let vs = nn::VarStore::new(Device::Cpu);
    build(vs.root());
    let (t, p) = count(&vs);
    (name.to_string(), t, p)
}

/// Parameter counts of the four StackGAN networks (Stage-II G includes the
/// Stage-I G it holds, as the official count does).
pub fn stackgan_parameter_counts(c: &crate::models::stackgan::StackGanConfig) -> Vec<ParamCount> {
    use crate::models::stackgan::{Discriminator as D, Stage1Generator, Stage2Generator};
    vec![
        count_built("STAGE1_G", |p| drop(Stage1Generator::new(p, c))),
        count_built("STAGE1_D", |p| drop(D::stage1(p, c))),
        count_built("STAGE2_G", |p| drop(Stage2Generator::new(p, c))),
        count_built("STAGE2_D", |p| drop(D::stage2(p, c))),
    ]
}

/// Waits for the GPU's queued work (timings must include it).
pub fn sync(device: Device) {
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
}

/// Median and minimum of timings, in milliseconds, and the work of one
/// call.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub repeats: usize,
    /// Floating-point operations of one call in matrix products and
    /// convolutions ([`count_flops`]), in 1e9; None where they could not be
    /// counted.
    pub gflop: Option<f64>,
    /// Where one warm call spent its time, slowest first (`t2i bench
    /// --profile`; [`set_profiling`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<OpTime>>,
}

/// The wall time of the calls of one op in a profiled call.
#[derive(Debug, Clone, Serialize)]
pub struct OpTime {
    /// libtorch's name: `aten::conv2d`, or an autograd node such as
    /// `ConvolutionBackward0` for the backward pass.
    pub name: String,
    pub calls: u64,
    pub ms: f64,
}

static PROFILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on [`time`] also profiles one warm call by op.
pub fn set_profiling(on: bool) {
    PROFILING.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl Timing {
    /// GFLOP/s at the median time.
    pub fn gflops(&self) -> Option<f64> {
        self.gflop.map(|g| g / (self.median_ms / 1e3))
    }
}

/// Times `f`: `warmup` untimed calls (the first of them counts the FLOPs),
/// then `repeats` timed ones.
pub fn time<F: FnMut()>(repeats: usize, warmup: usize, mut f: F) -> Timing {
    let ((), flops) = count_flops(&mut f);
    for _ in 1..warmup {
        f();
    }
    let profile = PROFILING
        .load(std::sync::atomic::Ordering::Relaxed)
        .then(|| profile_ops(&mut f).1)
        .flatten();
    let mut v: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    Timing {
        median_ms: v[v.len() / 2],
        min_ms: v[0],
        repeats: v.len(),
        gflop: flops.map(|n| n as f64 / 1e9),
        profile,
    }
}

extern "C" {
    fn t2i_flops_begin() -> i32;
    fn t2i_flops_end() -> u64;
    fn t2i_profile_begin() -> i32;
    fn t2i_profile_end(buf: *mut u8, cap: usize) -> usize;
}

/// Runs `f` and returns the wall time libtorch spent in each op it called
/// directly (an op inside another counts in its caller; the backward pass
/// as its autograd nodes), slowest first (`csrc/flops.cpp`). None if
/// libtorch refused the callback.
pub fn profile_ops<T>(f: impl FnOnce() -> T) -> (T, Option<Vec<OpTime>>) {
    // SAFETY: plain C calls; end reads at most `cap` bytes into the buffer
    let ok = unsafe { t2i_profile_begin() } == 0;
    let out = f();
    if !ok {
        return (out, None);
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut n = unsafe { t2i_profile_end(buf.as_mut_ptr(), buf.len()) };
    if n > buf.len() {
        buf.resize(n, 0);
        n = unsafe { t2i_profile_end(buf.as_mut_ptr(), buf.len()) };
    }
    let text = String::from_utf8_lossy(&buf[..n.min(buf.len())]);
    let mut ops: Vec<OpTime> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.rsplitn(3, '\t');
            let ns: u64 = it.next()?.parse().ok()?;
            let calls: u64 = it.next()?.parse().ok()?;
            Some(OpTime {
                name: it.next()?.to_string(),
                calls,
                ms: ns as f64 / 1e6,
            })
        })
        .collect();
    ops.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    (out, Some(ops))
}

/// The slowest `top` ops of each profiled row of a timing table.
pub fn profile_table(rows: &[(&str, &Timing)], top: usize) -> String {
    let mut s = String::new();
    for (what, t) in rows {
        let Some(ops) = &t.profile else { continue };
        let total: f64 = ops.iter().map(|o| o.ms).sum();
        s += &format!("\nops of one {what} ({total:.2} ms in libtorch ops)\n");
        s += &format!("{:<48} {:>7} {:>10} {:>7}\n", "op", "calls", "ms", "%");
        for o in ops.iter().take(top) {
            s += &format!(
                "{:<48} {:>7} {:>10.2} {:>7.1}\n",
                o.name,
                o.calls,
                o.ms,
                100.0 * o.ms / total.max(1e-9)
            );
        }
    }
    s
}

/// Runs `f` and counts the floating-point operations libtorch performs in
/// its matrix products and convolutions, forward and backward (`mm`,
/// `addmm`, `bmm`, `baddbmm`, `convolution`, `convolution_backward`; a
/// multiply-add is 2, as PyTorch's `FlopCounterMode` counts), from the
/// shapes each call receives (`csrc/flops.cpp`). Element-wise work, norms
/// and attention kernels other than these are not counted. None if
/// libtorch refused the counter.
pub fn count_flops<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
    // SAFETY: plain C calls; begin/end pair up and share one counter
    let ok = unsafe { t2i_flops_begin() } == 0;
    let out = f();
    let n = ok.then(|| unsafe { t2i_flops_end() });
    (out, n)
}

/// The machine's matrix-product peak in GFLOP/s, once measured (`t2i bench
/// --peak`); timing tables then show each row's share of it.
static PEAK_GFLOPS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Measures the peak as the faster of two dense products, each the best of
/// `repeats`: two 2048x2048 matrices (libtorch's BLAS) and a 1x1
/// convolution of 512 to 512 channels over 8 maps of 32x32 in channels-last
/// layout (oneDNN, which the convolutions use; on AMD CPUs MKL's matrix
/// product stays well below it). Runs on `device` under the caller's
/// autocast (bf16 inside `precision::run(Bf16, ..)`), records the peak for
/// the timing tables, and returns it in GFLOP/s.
pub fn measure_peak(device: Device, repeats: usize) -> f64 {
    let n = 2048;
    let a = Tensor::randn([n, n], (Kind::Float, device));
    let b = Tensor::randn([n, n], (Kind::Float, device));
    let (c, hw, batch) = (512, 32, 8);
    let x = Tensor::randn([batch, hw, hw, c], (Kind::Float, device)).permute([0, 3, 1, 2]);
    let w = Tensor::randn([c, 1, 1, c], (Kind::Float, device)).permute([0, 3, 1, 2]);
    let best = |flops: f64, f: &dyn Fn()| {
        let t = tch::no_grad(|| {
            time(repeats, 2, || {
                f();
                sync(device);
            })
        });
        flops / 1e9 / (t.min_ms / 1e3)
    };
    let mm = best(2.0 * (n * n * n) as f64, &|| {
        let _ = a.matmul(&b);
    });
    let conv = best(2.0 * (batch * hw * hw * c * c) as f64, &|| {
        let _ = x.conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    });
    let peak = mm.max(conv);
    let _ = PEAK_GFLOPS.set(peak);
    peak
}

/// The peak [`measure_peak`] recorded, if any.
pub fn peak_gflops() -> Option<f64> {
    PEAK_GFLOPS.get().copied()
}

/// The first line of a timing table: what, image side, batch, device.
pub fn bench_title(what: &str, size: i64, batch: i64, device: &str, threads: i32) -> String {
    format!("{what} ({size}x{size}, batch {batch}, {device}, {threads} threads)")
}

/// A timing table: the title line, then one row per measurement with its
/// GFLOP per call, GFLOP/s and, once [`measure_peak`] ran, its share of the
/// peak.
pub fn timing_table(title: &str, rows: &[(&str, &Timing)]) -> String {
    let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(26);
    let peak = peak_gflops();
    let mut s = format!(
        "{title}\n{:<w$} {:>12} {:>12} {:>10} {:>10}{}\n",
        "what",
        "median ms",
        "min ms",
        "GFLOP",
        "GFLOP/s",
        if peak.is_some() { "     % peak" } else { "" }
    );
    let cell = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    for (n, t) in rows {
        s += &format!(
            "{:<w$} {:>12.2} {:>12.2} {:>10} {:>10}",
            n,
            t.median_ms,
            t.min_ms,
            cell(t.gflop, 3),
            cell(t.gflops(), 1)
        );
        if let Some(p) = peak {
            s += &format!(" {:>10}", cell(t.gflops().map(|g| 100.0 * g / p), 1));
        }
        s += "\n";
    }
    s + &profile_table(rows, 15)
}

/// Results of `t2i bench`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub preset: String,
    pub image_size: i64,
    pub batch_size: i64,
    pub device: String,
    pub threads: i32,
    /// One full GAN-INT-CLS iteration (D and G updates).
    pub train_step: Timing,
    pub generate_batch1: Timing,
    pub generate_batch16: Timing,
    pub generate_batch32: Timing,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mib: f64,
}

impl BenchReport {
    pub fn table(&self) -> String {
        let title = bench_title(
            &format!("{} {}", self.model, self.preset),
            self.image_size,
            self.batch_size,
            &self.device,
            self.threads,
        );
        let mut s = timing_table(
            &title,
            &[
                ("train iteration", &self.train_step),
                ("generate batch 1", &self.generate_batch1),
                ("generate batch 16", &self.generate_batch16),
                ("generate batch 32", &self.generate_batch32),
            ],
        );
        s += &format!("peak memory {:.0} MiB", self.peak_rss_mib);
        s
    }
}

/// Peak resident set size from /proc (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Times a training iteration and generation of GAN-INT-CLS on synthetic
/// shapes data (an untrained text encoder: its speed is what matters).
pub fn bench_gan_int_cls(
    c: &GanIntClsConfig,
    device: Device,
    repeats: usize,
) -> Result<BenchReport> {
    let mut trainer = gan_int_cls_trainer(c, device)?;
    let sync = || crate::bench::sync(device);
    let train_step = time(repeats, 3, || {
        trainer.train_step();
        sync();
    });
    trainer.model.for_inference();
    let m = &trainer.model;
    let gen = |n: i64| {
        let z = Tensor::randn([n, c.z_dim], (Kind::Float, device));
        let h = Tensor::randn([n, c.text_dim], (Kind::Float, device));
        move || {
            let _ = m.generate(&z, &h);
            sync();
        }
    };
    let generate_batch1 = time(repeats * 3, 3, gen(1));
    let generate_batch16 = time(repeats, 3, gen(16));
    let generate_batch32 = time(repeats, 3, gen(32));
    Ok(BenchReport {
        model: "gan-int-cls".into(),
        preset: c.preset.clone(),
        image_size: c.image_size,
        batch_size: c.batch_size,
        device: device_name(device),
        threads: tch::get_num_threads(),
        train_step,
        generate_batch1,
        generate_batch16,
        generate_batch32,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Writes what the PyTorch twin (`bench/torch_reference/gan_int_cls.py
/// check`) needs to show it computes t2i's training step: G's and D's
/// random initial weights (`weights.safetensors`, `g.*` and `d.*`), one
/// step's batch and noises (`inputs.safetensors`), and that step's fakes,
/// scores, losses and updated weights (`outputs.safetensors`, batch-norm in
/// training mode). Only the paper's objective (the `paper` and `tiny`
/// presets' terms: GAN-INT-CLS and the mode-seeking term); returns the
/// file names written.
pub fn write_gan_int_cls_twin_fixture(
    c: &GanIntClsConfig,
    device: Device,
    dir: &std::path::Path,
) -> Result<Vec<String>> {
    use crate::checkpoint::{named, save};
    use crate::error::Error;
    let beyond = c.contrastive_weight > 0.0
        || c.rank_weight > 0.0
        || c.match_weight > 0.0
        || c.style_weight > 0.0
        || c.recon_weight > 0.0
        || c.hinge_loss
        || c.spectral_norm
        || c.resize_conv
        || c.rgb_conv
        || c.ema_decay > 0.0;
    if beyond {
        return Err(Error::Config(format!(
            "the PyTorch twin has the paper's GAN-INT-CLS objective only: preset {} adds terms beyond it (use paper or tiny)",
            c.preset
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    tch::manual_seed(0);
    let mut t = gan_int_cls_trainer(c, device)?;
    let weights = |t: &Trainer| {
        let mut v = named(&t.model.g_vs, "g");
        v.extend(named(&t.d_vs, "d"));
        v
    };
    let meta = |what: &str| {
        let mut m = BTreeMap::new();
        m.insert("what".to_string(), what.to_string());
        m.insert(
            "config".to_string(),
            serde_json::to_string(c).unwrap_or_default(),
        );
        m
    };
    save(
        &dir.join("weights.safetensors"),
        &meta("weights"),
        &weights(&t),
    )?;
    let inputs = t.draw_step();
    let mut ins = vec![
        ("images".to_string(), inputs.batch.images.shallow_clone()),
        ("right".to_string(), inputs.batch.right.shallow_clone()),
        ("wrong".to_string(), inputs.batch.wrong.shallow_clone()),
        ("z".to_string(), inputs.z.shallow_clone()),
    ];
    for (k, v) in [("z_int", &inputs.z_int), ("z_div", &inputs.z_div)] {
        if let Some(v) = v {
            ins.push((k.to_string(), v.shallow_clone()));
        }
    }
    save(&dir.join("inputs.safetensors"), &meta("inputs"), &ins)?;
    let stats = t.step_on(&inputs);
    let mut outs = weights(&t);
    outs.push(("loss_d".to_string(), Tensor::from(stats.loss_d as f32)));
    outs.push(("loss_g".to_string(), Tensor::from(stats.loss_g as f32)));
    save(&dir.join("outputs.safetensors"), &meta("outputs"), &outs)?;
    Ok(["weights", "inputs", "outputs"]
        .iter()
        .map(|f| format!("{f}.safetensors"))
        .collect())
}

/// A GAN-INT-CLS trainer on synthetic shapes data with an untrained text
/// encoder (its speed is what a bench measures).
fn gan_int_cls_trainer(c: &GanIntClsConfig, device: Device) -> Result<Trainer> {
    let shapes = Shapes::new(ShapesConfig {
        image_size: c.image_size as u32,
        train_size: (c.batch_size as usize * 4).max(256),
        test_size: 64,
        ..Default::default()
    })?;
    let caps: Vec<String> = (0..64)
        .flat_map(|i| shapes.sample(Split::Train, i).captions)
        .collect();
    let vocab = Vocab::build(caps.iter().map(String::as_str), 1);
    let enc_cfg = GruEncoderConfig {
        sentence_dim: c.text_dim,
        ..GruEncoderConfig::tiny()
    };
    let encoder = GruEncoder::new(enc_cfg, vocab, device);
    let data = EmbeddedImages::shapes(&shapes, Split::Train, &encoder, device)?;
    let model = GanIntClsModel::new(c.clone(), AnyTextEncoder::Gru(encoder), device);
    Ok(Trainer::new(model, data, Some(shapes.config.clone()), 0))
}

/// Times a StackGAN training iteration (D and G updates of `stage`) and
/// generation, on shapes data with an untrained text encoder. Stage-II
/// runs on a randomly initialised, frozen Stage-I.
pub fn bench_stackgan(
    c: &crate::models::stackgan::StackGanConfig,
    stage: u8,
    device: Device,
    repeats: usize,
) -> Result<BenchReport> {
    use crate::checkpoint::{named, Checkpoint};
    use crate::models::stackgan::StackGanModel;
    use crate::text::AnyTextEncoder;
    use crate::train::stackgan::StackGanTrainer;
    let size = c.stage2_size;
    let n = (c.batch_size as usize * 2).max(16);
    let shapes = Shapes::new(ShapesConfig {
        image_size: size as u32,
        train_size: n,
        test_size: 16,
        ..Default::default()
    })?;
    let samples: Vec<_> = (0..n).map(|i| shapes.sample(Split::Train, i)).collect();
    let caps: Vec<Vec<String>> = samples.iter().map(|s| s.captions.clone()).collect();
    let vocab = Vocab::build(caps.iter().flatten().map(String::as_str), 1);
    let enc_cfg = GruEncoderConfig {
        sentence_dim: c.text_dim,
        ..GruEncoderConfig::tiny()
    };
    let encoder = GruEncoder::new(enc_cfg, vocab, device);
    let flat: Vec<u8> = samples.iter().flat_map(|s| s.pixels.clone()).collect();
    let images = Tensor::from_slice(&flat)
        .view([n as i64, size, size, 3])
        .permute([0, 3, 1, 2])
        .contiguous();
    let data = EmbeddedImages::fixed(images, caps, &encoder, device)?;
    let enc2 = GruEncoder::new(encoder.config.clone(), encoder.vocab.clone(), device);
    let stage1 = (stage == 2).then(|| {
        let m1 = StackGanModel::new(c.clone(), 1, AnyTextEncoder::Gru(enc2), device);
        let mut meta = BTreeMap::new();
        meta.insert("model".to_string(), "stackgan".to_string());
        meta.insert("stage".to_string(), "1".to_string());
        Checkpoint {
            meta,
            tensors: named(&m1.g_vs, "G").into_iter().collect(),
        }
    });
    let model = StackGanModel::new(c.clone(), stage, AnyTextEncoder::Gru(encoder), device);
    let mut t = StackGanTrainer::new(model, stage1.as_ref(), 0)?;

    let sync = || crate::bench::sync(device);
    let train_step = time(repeats, 2, || {
        t.train_step(&data);
        sync();
    });
    t.model.for_inference();
    let m = &t.model;
    let gen = |k: i64| {
        let z = Tensor::randn([k, c.z_dim], (Kind::Float, device));
        let h = Tensor::randn([k, c.text_dim], (Kind::Float, device));
        move || {
            let _ = tch::no_grad(|| m.forward(&h, &z, None, false));
            sync();
        }
    };
    let generate_batch1 = time(repeats * 3, 2, gen(1));
    let generate_batch16 = time(repeats, 2, gen(16));
    let generate_batch32 = time(repeats, 2, gen(32));
    Ok(BenchReport {
        model: format!("stackgan stage {stage}"),
        preset: c.preset.clone(),
        image_size: if stage == 1 { c.stage1_size } else { size },
        batch_size: c.batch_size,
        device: device_name(device),
        threads: tch::get_num_threads(),
        train_step,
        generate_batch1,
        generate_batch16,
        generate_batch32,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Times an AttnGAN training iteration (every D, then G with the DAMSM
/// term through the preset's DAMSM image encoder: Inception-v3 at 299 for
/// `paper`, the small CNN for `tiny`) on random images and captions drawn
/// through the training batcher, and generation.
pub fn bench_attngan(
    c: &crate::models::attngan::AttnGanConfig,
    device: Device,
    repeats: usize,
) -> Result<BenchReport> {
    use crate::data::images::CaptionedImages;
    use crate::data::prepare::{ImageBatcher, Prepared};
    use crate::train::attngan::AttnGanTrainer;
    use crate::train::damsm::{DamsmConfig, DamsmTrainer};
    let size = c.base_size << (c.branch_num - 1);
    let caps: Vec<Vec<String>> = [
        "this bird has a red crown and a short pointed beak",
        "a small yellow bird with black wings and white wing bars",
        "the bird is grey with a long tail and orange feet",
        "a blue bird with a white belly sits on a branch",
    ]
    .iter()
    .map(|s| vec![s.to_string()])
    .collect();
    let vocab = Vocab::build(caps.iter().flatten().map(String::as_str), 1);
    // the DAMSM as each preset trains with it: paper's Inception-v3 at 299
    let mut dc = if c.preset == "paper" {
        DamsmConfig::paper()
    } else {
        DamsmConfig::tiny()
    };
    dc.text.dim = c.text_dim;
    dc.image.dim = c.text_dim;
    let damsm_name = format!("random DAMSM {}", dc.preset);
    let damsm = DamsmTrainer::new(dc, vocab, 0, device).to_checkpoint();
    let n = 64usize;
    let side = (size * 76 / 64) as u32;
    let images = Tensor::randint(
        256,
        [n as i64, side as i64, side as i64, 3],
        (Kind::Uint8, Device::Cpu),
    );
    let data = CaptionedImages {
        images: ImageBatcher {
            prepared: Prepared {
                images,
                side,
                record: (0..n).collect(),
                corrupt: 0,
                boxes_outside: 0,
                cache: None,
            },
            sizes: vec![size],
            augment: true,
        },
        captions: (0..n).map(|i| caps[i % caps.len()].clone()).collect(),
        classes: (0..n as i64).map(|i| i % 4).collect(),
    };
    let mut t = AttnGanTrainer::new(c.clone(), &damsm, &damsm_name, 0, device)?;

    let sync = || crate::bench::sync(device);
    let train_step = time(repeats, 2, || {
        t.train_step(&data);
        sync();
    });
    t.model.for_inference();
    let m = &t.model;
    let gen = |k: usize| -> Result<_> {
        let text = m.encode(&vec![caps[0][0].as_str(); k])?;
        Ok(move || {
            let _ = m.generate(&text, 0);
            sync();
        })
    };
    let generate_batch1 = time(repeats * 3, 2, gen(1)?);
    let generate_batch16 = time(repeats, 2, gen(16)?);
    let generate_batch32 = time(repeats, 2, gen(32)?);
    Ok(BenchReport {
        model: format!("attngan ({} stages)", c.branch_num),
        preset: c.preset.clone(),
        image_size: size,
        batch_size: c.batch_size,
        device: device_name(device),
        threads: tch::get_num_threads(),
        train_step,
        generate_batch1,
        generate_batch16,
        generate_batch32,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Parameter counts of AttnGAN's G_NET and its discriminators.
pub fn attngan_parameter_counts(c: &crate::models::attngan::AttnGanConfig) -> Vec<ParamCount> {
    use crate::models::attngan::{Discriminator as D, Generator as G};
    let mut out = vec![count_built("G_NET", |p| drop(G::new(p, c)))];
    for k in 0..c.branch_num {
        let size = c.base_size << k;
        out.push(count_built(&format!("D_NET{size}"), |p| {
            drop(D::new(p, c, size))
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_op_profile_names_the_outermost_ops_and_the_backward_nodes() {
        let a = Tensor::randn([64, 64], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let (_, ops) = profile_ops(|| {
            let y = a.matmul(&a).relu();
            y.sum(Kind::Float).backward();
        });
        let ops = ops.expect("libtorch takes the callback");
        let calls = |n: &str| ops.iter().find(|o| o.name == n).map(|o| o.calls);
        assert_eq!(calls("aten::matmul"), Some(1));
        assert_eq!(calls("aten::relu"), Some(1));
        assert_eq!(calls("MmBackward0"), Some(1));
        // the matrix product inside matmul is its caller's time
        assert_eq!(calls("aten::mm"), None);
        assert!(ops.windows(2).all(|w| w[0].ms >= w[1].ms));
        // nothing is recorded once the profile ended
        let (_, again) = profile_ops(|| ());
        assert!(again.expect("a second profile").is_empty());
    }

    #[test]
    fn flops_of_products_and_convolutions_forward_and_backward() {
        let (_, n) = count_flops(|| {
            let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
            let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
            let _ = a.mm(&b); // 2 * 8 * 16 * 4
            let x = Tensor::randn([3, 5, 6], (Kind::Float, Device::Cpu));
            let y = Tensor::randn([3, 6, 7], (Kind::Float, Device::Cpu));
            let _ = x.bmm(&y); // 2 * 3 * 5 * 6 * 7
        });
        assert_eq!(n, Some(2 * 8 * 16 * 4 + 2 * 3 * 5 * 6 * 7));
        // a 3x3 convolution, 4 -> 6 channels, on [2, 4, 10, 10] with padding
        // 1: 2 * (2 * 6 * 10 * 10) outputs * (4 * 3 * 3); backward computes
        // the input's and the weight's gradients, each as much again
        let fwd = 2 * (2 * 6 * 10 * 10) * (4 * 3 * 3);
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = nn::conv2d(
            vs.root(),
            4,
            6,
            3,
            nn::ConvConfig {
                padding: 1,
                bias: false,
                ..Default::default()
            },
        );
        let x = Tensor::randn([2, 4, 10, 10], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let (_, n) = count_flops(|| x.apply(&conv).sum(Kind::Float).backward());
        assert_eq!(n, Some(3 * fwd));
        // transposed: every input element meets the whole kernel
        let up = nn::conv_transpose2d(
            vs.root() / "up",
            4,
            6,
            4,
            nn::ConvTransposeConfig {
                stride: 2,
                padding: 1,
                bias: false,
                ..Default::default()
            },
        );
        let (_, n) = count_flops(|| tch::no_grad(|| x.apply(&up)));
        assert_eq!(n, Some(2 * (2 * 4 * 10 * 10) * (6 * 4 * 4)));
        // nothing counted outside a count, and timings carry the count
        let t = time(1, 1, || {
            let _ = Tensor::ones([4, 4], (Kind::Float, Device::Cpu))
                .mm(&Tensor::ones([4, 2], (Kind::Float, Device::Cpu)));
        });
        assert_eq!(t.gflop, Some(2.0 * 4.0 * 4.0 * 2.0 / 1e9));
    }
}
