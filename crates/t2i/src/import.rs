//! Importing the official PyTorch checkpoints as t2i checkpoints.
//!
//! - AttnGAN: `netG_epoch_*.pth` / `bird_AttnGAN2.pth` (G_NET) with the
//!   DAMSM `text_encoder*.pth` (RNN_ENCODER) and the vocabulary of the
//!   data set's `captions.pickle`. Sizes are read from the weights.
//! - StackGAN: `netG_epoch_*.pth` of Stage-I or Stage-II (told apart by the
//!   `STAGE1_G.` keys), with a t2i text encoder whose sentence size equals
//!   the generator's text size (the official char-CNN-RNN embeddings are
//!   not part of those files).
//! - StyleGAN2 (StyleT2I's backbone): rosinality's `.pt` with `g`, `d` and
//!   `g_ema`, or a bare generator state_dict; sizes read from the weights.
//!
//! Both `.pth` formats (zip and legacy pickle) are read by [`crate::pth`];
//! `.safetensors` files with the official key names work too. A leading
//! `module.` (from `nn.DataParallel`) is removed.

use crate::error::{Error, Result};
use crate::models::attngan::AttnGanConfig;
use crate::models::attngan::AttnGanModel;
use crate::models::stackgan::StackGanConfig;
use crate::models::stackgan::StackGanModel;
use crate::models::stylegan2::{Discriminator, Generator, StyleGan2Config};
use crate::text::damsm::{RnnEncoder, RnnEncoderConfig};
use crate::text::{AnyTextEncoder, TextEncoder, Vocab};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Tensor};

/// Tensors of a `.pth` (either format) or `.safetensors` file by
/// state_dict name.
pub fn read_weights(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::Config(format!("{} is not a file", path.display())));
    }
    let raw: BTreeMap<String, Tensor> = if path.extension().is_some_and(|e| e == "safetensors") {
        Tensor::read_safetensors(path)
            .map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display())))?
            .into_iter()
            .collect()
    } else {
        crate::pth::load(path).map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display())))?
    };
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("module.").unwrap_or(&k).to_string(), v))
        .collect())
}

/// Copies `w` into the variables of `vs` by name; every variable must be
/// present with its shape and no tensor may be left over.
fn load_exact(vs: &nn::VarStore, w: &BTreeMap<String, Tensor>, what: &str) -> Result<()> {
    let vars = vs.variables();
    let missing: Vec<&String> = vars.keys().filter(|k| !w.contains_key(*k)).collect();
    let extra: Vec<&String> = w.keys().filter(|k| !vars.contains_key(*k)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut m: Vec<_> = missing.iter().map(|s| s.as_str()).collect();
        m.sort_unstable();
        return Err(Error::Checkpoint(format!(
            "{what}: {} tensors missing (e.g. {}), {} unexpected (e.g. {})",
            missing.len(),
            m.first().unwrap_or(&"-"),
            extra.len(),
            extra.first().map(|s| s.as_str()).unwrap_or("-")
        )));
    }
    tch::no_grad(|| {
        for (k, v) in &vars {
            let src = &w[k];
            if src.size() != v.size() {
                return Err(Error::Checkpoint(format!(
                    "{what}: tensor {k} has shape {:?}, expected {:?}",
                    src.size(),
                    v.size()
                )));
            }
            v.shallow_clone()
                .copy_(&src.to_kind(v.kind()).to_device(v.device()));
        }
        Ok(())
    })
}

fn dim(w: &BTreeMap<String, Tensor>, key: &str, d: usize, what: &str) -> Result<i64> {
    w.get(key)
        .and_then(|t| t.size().get(d).copied())
        .ok_or_else(|| Error::Checkpoint(format!("{what}: no tensor {key}; not this network")))
}

/// Distinct values of the path component after `prefix` (`residual.0...`).
fn count_children(w: &BTreeMap<String, Tensor>, prefix: &str) -> i64 {
    let mut seen = std::collections::BTreeSet::new();
    for k in w.keys() {
        if let Some(rest) = k.strip_prefix(prefix) {
            seen.insert(rest.split('.').next().unwrap_or("").to_string());
        }
    }
    seen.len() as i64
}

/// The AttnGAN configuration an official G_NET state_dict was built with.
pub fn attngan_config_from_weights(w: &BTreeMap<String, Tensor>) -> Result<AttnGanConfig> {
    let what = "AttnGAN G";
    let gf_dim = dim(w, "img_net1.img.0.weight", 1, what)?;
    let c4 = dim(w, "ca_net.fc.weight", 0, what)?;
    let text_dim = dim(w, "ca_net.fc.weight", 1, what)?;
    let condition_dim = c4 / 4;
    let z_dim = dim(w, "h_net1.fc.0.weight", 1, what)? - condition_dim;
    let n_up = (1..=8)
        .take_while(|i| w.contains_key(&format!("h_net1.upsample{i}.1.weight")))
        .count() as i64;
    let branch_num = (1..=8)
        .take_while(|i| w.contains_key(&format!("img_net{i}.img.0.weight")))
        .count() as i64;
    Ok(AttnGanConfig {
        preset: "imported".into(),
        gf_dim,
        z_dim,
        condition_dim,
        r_num: count_children(w, "h_net2.residual."),
        text_dim,
        branch_num,
        base_size: 4 << n_up,
        ..AttnGanConfig::paper()
    })
}

/// The vocabulary of an official `captions.pickle`
/// (`[train, test, ixtoword, wordtoix]`): `<end>` at 0, then the words.
pub fn official_vocab(path: &Path) -> Result<Vocab> {
    use serde_pickle::{HashableValue as H, Value};
    let bad = |m: &str| Error::Config(format!("{}: {m}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let v = serde_pickle::value_from_slice(&bytes, serde_pickle::DeOptions::new().decode_strings())
        .map_err(|e| bad(&format!("not a readable pickle: {e}")))?;
    let items = match v {
        Value::List(l) | Value::Tuple(l) => l,
        _ => return Err(bad("expected [train, test, ixtoword, wordtoix]")),
    };
    let Some(Value::Dict(ixtoword)) = items.get(2) else {
        return Err(bad("item 3 (ixtoword) is not a dict"));
    };
    let mut words = vec![String::new(); ixtoword.len()];
    for (k, v) in ixtoword {
        let i = match k {
            H::I64(i) => *i as usize,
            _ => return Err(bad("ixtoword has a non-integer key")),
        };
        let word = match v {
            Value::String(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            _ => return Err(bad("ixtoword has a non-string word")),
        };
        *words
            .get_mut(i)
            .ok_or_else(|| bad("ixtoword indices are not 0..n"))? = word;
    }
    if words.is_empty() || words.iter().any(String::is_empty) {
        return Err(bad("ixtoword indices are not 0..n"));
    }
    Ok(Vocab::from_words(words))
}

/// An official RNN_ENCODER state_dict (or a t2i DAMSM text encoder
/// checkpoint) as a text encoder; official weights need `vocab`.
pub fn damsm_text_encoder(path: &Path, vocab: Option<Vocab>, device: Device) -> Result<RnnEncoder> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        if let Ok(ck) = crate::checkpoint::load(path) {
            if ck.meta.contains_key("text_encoder.kind") {
                return RnnEncoder::load(path, device);
            }
        }
    }
    let w = read_weights(path)?;
    let what = "DAMSM text encoder";
    let n = dim(&w, "encoder.weight", 0, what)?;
    let embed_dim = dim(&w, "encoder.weight", 1, what)?;
    let h = dim(&w, "rnn.weight_hh_l0", 1, what)?;
    let vocab = vocab.ok_or_else(|| {
        Error::Config(
            "an official text encoder needs its vocabulary: --captions captions.pickle".into(),
        )
    })?;
    if vocab.len() as i64 != n {
        return Err(Error::Config(format!(
            "the vocabulary has {} words but the text encoder was trained with {n}",
            vocab.len()
        )));
    }
    let config = RnnEncoderConfig {
        preset: "imported".into(),
        embed_dim,
        dim: 2 * h,
        ..RnnEncoderConfig::paper()
    };
    let mut enc = RnnEncoder::new(config, vocab, device);
    load_exact(&enc.vs, &w, what)?;
    enc.source = path.display().to_string();
    Ok(enc)
}

/// An official AttnGAN generator with its DAMSM text encoder.
pub fn import_attngan(
    netg: &Path,
    text_encoder: &Path,
    captions: Option<&Path>,
    device: Device,
) -> Result<AttnGanModel> {
    let w = read_weights(netg)?;
    let config = attngan_config_from_weights(&w)?;
    let vocab = captions.map(official_vocab).transpose()?;
    let text = damsm_text_encoder(text_encoder, vocab, device)?;
    if text.config.dim != config.text_dim {
        return Err(Error::Config(format!(
            "the text encoder gives {}-d features but G expects {}",
            text.config.dim, config.text_dim
        )));
    }
    let m = AttnGanModel::new(config, text, device);
    load_exact(&m.g_vs, &w, "AttnGAN G")?;
    Ok(m)
}

/// An official StackGAN generator (Stage-I or Stage-II) with a t2i text
/// encoder whose sentence size matches.
pub fn import_stackgan(netg: &Path, text_encoder: &Path, device: Device) -> Result<StackGanModel> {
    let w = read_weights(netg)?;
    let stage: u8 = if w.keys().any(|k| k.starts_with("STAGE1_G.")) {
        2
    } else {
        1
    };
    let p = if stage == 2 { "STAGE1_G." } else { "" };
    let what = "StackGAN G";
    let text_dim = dim(&w, &format!("{p}ca_net.fc.weight"), 1, what)?;
    let condition_dim = dim(&w, &format!("{p}ca_net.fc.weight"), 0, what)? / 2;
    let ngf8x16 = dim(&w, &format!("{p}fc.0.weight"), 0, what)?;
    let z_dim = dim(&w, &format!("{p}fc.0.weight"), 1, what)? - condition_dim;
    let encoder = AnyTextEncoder::load(text_encoder, device)?;
    if encoder.sentence_dim() != text_dim {
        return Err(Error::Config(format!(
            "the text encoder gives {}-d sentence vectors but this G expects {text_dim} (the official char-CNN-RNN size is 1024)",
            encoder.sentence_dim()
        )));
    }
    // the preset whose layout matches: paper (256, 4 residual blocks),
    // paper128 (128, 2) or tiny
    let mut last_err = None;
    for base in [
        StackGanConfig::paper(),
        StackGanConfig::paper128(),
        StackGanConfig::tiny(),
    ] {
        let c = StackGanConfig {
            preset: format!("imported ({})", base.preset),
            gf_dim: ngf8x16 / 16 / 8,
            condition_dim,
            z_dim,
            text_dim,
            r_num: if stage == 2 {
                count_children(&w, "residual.")
            } else {
                base.r_num
            },
            ..base
        };
        if c.validate().is_err() {
            continue;
        }
        let enc = AnyTextEncoder::load(text_encoder, device)?;
        let m = StackGanModel::new(c, stage, enc, device);
        match load_exact(&m.g_vs, &w, what) {
            Ok(()) => return Ok(m),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Checkpoint(format!("{what}: unknown layout"))))
}

/// Copies `w` into `vs` by name: every floating-point variable must be
/// present with its shape; integer buffers (`num_batches_tracked`, absent
/// from older PyTorch files) may be missing.
pub fn load_lenient(vs: &nn::VarStore, w: &BTreeMap<String, Tensor>, what: &str) -> Result<()> {
    tch::no_grad(|| {
        for (k, v) in vs.variables() {
            let Some(src) = w.get(&k) else {
                if v.is_floating_point() {
                    return Err(Error::Checkpoint(format!("{what}: no tensor {k}")));
                }
                continue;
            };
            if src.size() != v.size() {
                return Err(Error::Checkpoint(format!(
                    "{what}: tensor {k} has shape {:?}, expected {:?}",
                    src.size(),
                    v.size()
                )));
            }
            v.shallow_clone()
                .copy_(&src.to_kind(v.kind()).to_device(v.device()));
        }
        Ok(())
    })
}

/// The official DAMSM image encoder (`image_encoder*.pth`, CNN_ENCODER:
/// Inception-v3 body + projections); the feature size is read from the file.
pub fn damsm_image_encoder(
    path: &Path,
    device: Device,
) -> Result<(nn::VarStore, crate::models::damsm::CnnEncoder)> {
    use crate::models::damsm::{CnnEncoder, CnnEncoderConfig};
    let w = read_weights(path)?;
    let nef = dim(&w, "emb_cnn_code.weight", 0, "DAMSM image encoder")?;
    let vs = nn::VarStore::new(device);
    let e = CnnEncoder::new(
        vs.root(),
        CnnEncoderConfig {
            dim: nef,
            ..CnnEncoderConfig::paper()
        },
    );
    load_lenient(&vs, &w, &format!("DAMSM image encoder {}", path.display()))?;
    Ok((vs, e))
}

/// A StyleGAN2 checkpoint of rosinality's code as StyleT2I vendors it: the
/// `{"g", "d", "g_ema", "g_optim", "d_optim", "args", ...}` dict that
/// `train.py` / `pretrain_stylegan2.py` save, or a bare generator
/// state_dict. Each network present is loaded by name.
pub struct ImportedStyleGan2 {
    pub config: StyleGan2Config,
    /// The generator that draws (`g_ema`, else `g`, else the bare one).
    pub g_ema: nn::VarStore,
    /// The trained (not averaged) generator, when the file has both.
    pub g: Option<nn::VarStore>,
    pub d: Option<nn::VarStore>,
    /// Where the drawing generator came from (`g_ema`, `g` or `state_dict`).
    pub source_key: &'static str,
}

/// The tensors under `prefix` with it removed.
fn under(w: &BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
    w.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.shallow_clone())))
        .collect()
}

/// The StyleGAN2 configuration a rosinality generator state_dict was built
/// with. The mapping network's learning-rate multiplier is not in the
/// weights: rosinality's and StyleT2I's 0.01.
pub fn stylegan2_config_from_weights(w: &BTreeMap<String, Tensor>) -> Result<StyleGan2Config> {
    let what = "StyleGAN2 generator";
    let style_dim = dim(w, "style.1.weight", 1, what)?;
    let n_mlp = count_children(w, "style.");
    let log_size = count_children(w, "to_rgbs.") + 2;
    let size = 1i64 << log_size;
    let c4 = dim(w, "input.input", 1, what)?;
    let last = dim(w, &format!("to_rgbs.{}.conv.weight", log_size - 3), 2, what)?;
    let c = StyleGan2Config {
        size,
        style_dim,
        n_mlp,
        lr_mlp: 0.01,
        channel_base: last * size,
        max_channels: c4,
    };
    c.validate()
        .map_err(|e| Error::Checkpoint(format!("{what}: {e}")))?;
    Ok(c)
}

/// Reads a rosinality / StyleT2I StyleGAN2 `.pt` (or `.safetensors` with
/// the same names); see [`ImportedStyleGan2`].
pub fn import_stylegan2(path: &Path, device: Device) -> Result<ImportedStyleGan2> {
    let w = read_weights(path)?;
    let (source_key, prefix) = [("g_ema", "g_ema."), ("g", "g."), ("state_dict", "")]
        .into_iter()
        .find(|(_, p)| w.contains_key(&format!("{p}style.1.weight")))
        .ok_or_else(|| {
            Error::Checkpoint(format!(
                "{}: no StyleGAN2 generator (neither g_ema.style.1.weight, g.style.1.weight nor style.1.weight)",
                path.display()
            ))
        })?;
    let gw = under(&w, prefix);
    let config = stylegan2_config_from_weights(&gw)?;
    let generator = |gw: &BTreeMap<String, Tensor>, what: &str| -> Result<nn::VarStore> {
        let vs = nn::VarStore::new(device);
        let _g = Generator::new(&vs.root(), &config);
        load_exact(
            &vs,
            gw,
            &format!(
                "{what} (channel table min({}, {} / r))",
                config.max_channels, config.channel_base
            ),
        )?;
        Ok(vs)
    };
    let g_ema = generator(&gw, source_key)?;
    let g = (source_key == "g_ema" && w.contains_key("g.style.1.weight"))
        .then(|| generator(&under(&w, "g."), "g"))
        .transpose()?;
    let d = w
        .contains_key("d.convs.0.0.weight")
        .then(|| -> Result<nn::VarStore> {
            let vs = nn::VarStore::new(device);
            let _d = Discriminator::new(&vs.root(), &config);
            load_exact(&vs, &under(&w, "d."), "d")?;
            Ok(vs)
        })
        .transpose()?;
    Ok(ImportedStyleGan2 {
        config,
        g_ema,
        g,
        d,
        source_key,
    })
}
