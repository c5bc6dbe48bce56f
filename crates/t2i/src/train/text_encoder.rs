//! Trains the GRU sentence encoder on the shapes data set with the joint
//! embedding loss (`text::gru::joint_embedding_loss`).

use super::optim::Adam;
use crate::checkpoint;
use crate::data::shapes::{AttributeIndex, CaptionSpec, ShapeObject, Shapes, Split};
use crate::error::Result;
use crate::imageio::images_to_tensor;
use crate::rng::step_seed;
use crate::text::gru::{joint_embedding_loss, JointImageEncoder};
use crate::text::{GruEncoder, GruEncoderConfig, TextEncoder, Vocab};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{nn, Device, Tensor};

/// Options of the encoder training.
#[derive(Debug, Clone)]
pub struct TextTrainOptions {
    pub steps: i64,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub progress: bool,
    /// Fraction of each batch made of pairs whose single objects differ
    /// only in colour or only in shape ([`AttributeIndex`]): random batches
    /// almost never hold such a pair, so without them the embedding can
    /// ignore shape.
    pub hard_fraction: f64,
}

impl Default for TextTrainOptions {
    fn default() -> Self {
        Self {
            steps: 400,
            batch_size: 64,
            lr: 2e-3,
            seed: 0,
            progress: true,
            hard_fraction: 0.0,
        }
    }
}

/// Result of the encoder training.
pub struct TrainedText {
    pub encoder: GruEncoder,
    /// The image side theta(v) the encoder was trained against.
    pub image_vs: nn::VarStore,
    pub image_encoder: JointImageEncoder,
    /// Final loss (mean of the last 20 steps).
    pub final_loss: f64,
    /// Text-to-image retrieval accuracy on held-in test pairs (top-1 among
    /// the batch, same class counts as a hit).
    pub test_retrieval: f64,
}

/// Trains a GRU encoder on the training split of `shapes`.
pub fn train_shapes_encoder(
    shapes: &Shapes,
    config: GruEncoderConfig,
    opts: &TextTrainOptions,
    device: Device,
) -> Result<TrainedText> {
    let n = shapes.len(Split::Train);
    let samples: Vec<_> = (0..n).map(|i| shapes.sample(Split::Train, i)).collect();
    let vocab = Vocab::build(
        samples
            .iter()
            .flat_map(|s| s.captions.iter().map(String::as_str)),
        1,
    );
    tch::manual_seed(opts.seed as i64); // reproducible initial weights
    let mut encoder = GruEncoder::new(config.clone(), vocab, device);
    let img_vs = nn::VarStore::new(device);
    let img_enc = JointImageEncoder::new(img_vs.root(), config.sentence_dim);
    let mut opt_t = Adam::new(&encoder.vs, opts.lr, 0.9, 0.999);
    let mut opt_i = Adam::new(&img_vs, opts.lr, 0.9, 0.999);
    let size = shapes.config.image_size;
    let index = AttributeIndex::new(&samples);
    let pairs = ((opts.batch_size as f64 * opts.hard_fraction) / 2.0).round() as usize;
    let pb = crate::progress::bar(opts.steps as u64, "text encoder", opts.progress);
    let mut recent = Vec::new();
    for step in 0..opts.steps {
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(opts.seed, step));
        let mut idx: Vec<usize> = (0..opts.batch_size).map(|_| rng.gen_range(0..n)).collect();
        for k in 0..pairs.min(opts.batch_size / 2) {
            if let Some(j) = index.colour_or_shape_partner(&mut rng, &samples[idx[2 * k]]) {
                idx[2 * k + 1] = j;
            }
        }
        let chosen: Vec<usize> = idx
            .iter()
            .map(|&i| rng.gen_range(0..samples[i].captions.len()))
            .collect();
        let caps: Vec<&str> = idx
            .iter()
            .zip(&chosen)
            .map(|(&i, &k)| samples[i].captions[k].as_str())
            .collect();
        let imgs: Vec<&[u8]> = idx.iter().map(|&i| samples[i].pixels.as_slice()).collect();
        let x = images_to_tensor(&imgs, size).to_device(device);
        // a partial caption ("a red one") describes every image that has
        // what it names: those pairs are positives, not negatives
        let same = describes_matrix(
            &idx.iter()
                .map(|&i| &samples[i].objects[..])
                .collect::<Vec<_>>(),
            &idx.iter()
                .zip(&chosen)
                .map(|(&i, &k)| &samples[i].specs[k])
                .collect::<Vec<_>>(),
            device,
        );
        let (ids, _) = encoder.ids(&caps)?;
        let txt = encoder.forward_ids(&ids).sentence;
        let img = img_enc.forward_t(&x, true);
        let loss = joint_embedding_loss(&img, &txt, &same, 0.1);
        opt_t.zero_grad();
        opt_i.zero_grad();
        loss.backward();
        opt_t.step();
        opt_i.step();
        let l = loss.double_value(&[]);
        recent.push(l);
        if recent.len() > 20 {
            recent.remove(0);
        }
        pb.set_message(format!("loss {l:.3}"));
        pb.inc(1);
    }
    pb.finish_and_clear();
    // held-in test retrieval: batches of 64 test pairs
    let test_n = shapes.len(Split::Test).min(512);
    let test: Vec<_> = (0..test_n).map(|i| shapes.sample(Split::Test, i)).collect();
    let (mut hits, mut total) = (0usize, 0usize);
    tch::no_grad(|| -> Result<()> {
        for chunk in test.chunks(64) {
            let caps: Vec<&str> = chunk.iter().map(|s| s.captions[0].as_str()).collect();
            let imgs: Vec<&[u8]> = chunk.iter().map(|s| s.pixels.as_slice()).collect();
            let x = images_to_tensor(&imgs, size).to_device(device);
            let keys: Vec<String> = chunk.iter().map(|s| s.class_key()).collect();
            let txt = encoder.encode(&caps)?.0.sentence;
            let img = img_enc.forward_t(&x, false);
            let sim = txt.matmul(&img.tr()); // [batch(text), batch(image)]
            let best: Vec<i64> = Vec::try_from(sim.argmax(1, false).to_device(Device::Cpu))?;
            for (i, &b) in best.iter().enumerate() {
                total += 1;
                hits += usize::from(keys[i] == keys[b as usize]);
            }
        }
        Ok(())
    })?;
    encoder.source = "trained on shapes (joint embedding)".into();
    let final_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    Ok(TrainedText {
        encoder,
        image_vs: img_vs,
        image_encoder: img_enc,
        final_loss,
        test_retrieval: hits as f64 / total.max(1) as f64,
    })
}

/// `[scenes, specs]` float matrix with 1 where the caption `specs[j]`
/// describes the scene `scenes[i]` (its own image always does).
pub fn describes_matrix(
    scenes: &[&[ShapeObject]],
    specs: &[&CaptionSpec],
    device: Device,
) -> Tensor {
    let (n, m) = (scenes.len(), specs.len());
    let v: Vec<f32> = (0..n * m)
        .map(|k| f32::from(specs[k % m].describes(scenes[k / m])))
        .collect();
    Tensor::from_slice(&v)
        .view([n as i64, m as i64])
        .to_device(device)
}

/// The text encoder a shapes run uses: the one `phase.encoder` names, or
/// one trained now (`phase.steps`, `phase.hard`) and saved as
/// `text_encoder.safetensors` in the run folder, its image side beside it.
pub fn shapes_or_given(
    phase: &TextPhase,
    shapes: &Shapes,
    config: GruEncoderConfig,
    ctx: &crate::family::TrainContext,
) -> Result<crate::text::AnyTextEncoder> {
    if !phase.encoder.is_empty() {
        return crate::text::AnyTextEncoder::load(std::path::Path::new(&phase.encoder), ctx.device);
    }
    let opts = TextTrainOptions {
        steps: phase.steps,
        seed: ctx.seed,
        hard_fraction: phase.hard,
        progress: ctx.progress,
        ..Default::default()
    };
    let path = ctx.run.root.join("text_encoder.safetensors");
    let t = train_and_save(shapes, config, &opts, ctx.device, &path)?;
    if ctx.progress {
        eprintln!(
            "text encoder: loss {:.3}, held-in test retrieval {:.1}% -> {}",
            t.final_loss,
            100.0 * t.test_retrieval,
            path.display()
        );
    }
    Ok(crate::text::AnyTextEncoder::Gru(t.encoder))
}

/// Where [`train_and_save`] puts the image side theta(v) of an encoder
/// saved at `text_path` (`text_encoder.safetensors` ->
/// `text_encoder.image.safetensors`): the fixed matching critic of
/// `GanIntClsConfig::match_weight`.
pub fn matching_image_path(text_path: &std::path::Path) -> std::path::PathBuf {
    text_path.with_extension("image.safetensors")
}

/// Loads the image side saved by [`train_and_save`] (frozen, eval mode).
pub fn load_matching_image(
    path: &std::path::Path,
    device: Device,
) -> Result<(nn::VarStore, JointImageEncoder)> {
    let ck = checkpoint::load(path)?;
    if ck.meta("kind").ok() != Some("joint image encoder") {
        return Err(crate::Error::Checkpoint(format!(
            "{} is not a joint image encoder",
            path.display()
        )));
    }
    let dim: i64 = ck
        .meta("dim")?
        .parse()
        .map_err(|_| crate::Error::Checkpoint(format!("{}: bad dim", path.display())))?;
    let mut vs = nn::VarStore::new(device);
    let enc = JointImageEncoder::new(vs.root(), dim);
    ck.load_into(&mut vs, "image")?;
    vs.freeze();
    Ok((vs, enc))
}

/// Trains the encoder, saves it as its own checkpoint at `path`, and records
/// that path as the encoder's source (models that use it name it).
pub fn train_and_save(
    shapes: &Shapes,
    config: GruEncoderConfig,
    opts: &TextTrainOptions,
    device: Device,
    path: &std::path::Path,
) -> Result<TrainedText> {
    let mut t = train_shapes_encoder(shapes, config, opts, device)?;
    t.encoder.save(path)?;
    let mut meta = BTreeMap::new();
    meta.insert("kind".to_string(), "joint image encoder".to_string());
    meta.insert("dim".to_string(), t.encoder.config.sentence_dim.to_string());
    meta.insert("text_encoder".to_string(), path.display().to_string());
    checkpoint::save(
        &matching_image_path(path),
        &meta,
        &checkpoint::named(&t.image_vs, "image"),
    )?;
    t.encoder.source = path.display().to_string();
    Ok(t)
}

/// How a run gets its text encoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextPhase {
    /// A trained text-encoder checkpoint to use; empty: the run trains its
    /// own first (`text_encoder.safetensors` in the run folder).
    pub encoder: String,
    /// Steps of the run's own text encoder.
    pub steps: i64,
    /// Fraction of each text-encoder batch made of pairs that differ only
    /// in colour or only in shape.
    pub hard: f64,
}
