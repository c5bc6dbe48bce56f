//! Checkpoint files: one safetensors file holding every tensor a run needs
//! (networks, text encoder, optimiser moments) and, in its metadata, the
//! resolved config, vocabulary, text-encoder description, step and seed.
//! Written to a temporary file, synced and renamed, so a crash never leaves
//! half a file; the metadata carry a SHA-256 of the tensors, checked on every
//! load, and non-finite weights are never written.

use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Metadata key naming the file format.
pub const FORMAT_KEY: &str = "t2i.format";
pub const FORMAT: &str = "t2i-checkpoint-1";
/// Metadata key of the SHA-256 (hex) of the tensors: names and data in name
/// order. Checkpoints written before it existed load without the check.
pub const CHECKSUM_KEY: &str = "t2i.sha256";

/// The checksum of named tensor data, as stored under [`CHECKSUM_KEY`].
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<(&str, &[u8])> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, data) in sorted {
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub meta: BTreeMap<String, String>,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::Checkpoint(format!("checkpoint lacks metadata '{key}'")))
    }

    /// Errors unless the checkpoint holds a `model` of kind `kind`.
    pub fn expect_model(&self, kind: &str) -> Result<()> {
        let model = self.meta("model")?;
        if model != kind {
            return Err(Error::Checkpoint(format!(
                "checkpoint holds a '{model}' model, not {kind}"
            )));
        }
        Ok(())
    }

    /// A JSON metadata entry (`config`, ...) parsed into `T`.
    pub fn json_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_str(self.meta(key)?)
            .map_err(|e| Error::Checkpoint(format!("checkpoint {key}: {e}")))
    }

    /// Copies the tensors under `prefix.` into the variables of `vs`
    /// (names must match exactly, shapes too).
    pub fn load_into(&self, vs: &mut VarStore, prefix: &str) -> Result<()> {
        let mut vars = vs.variables();
        let mut names: Vec<_> = vars.keys().cloned().collect();
        names.sort();
        tch::no_grad(|| {
            for n in names {
                let key = format!("{prefix}.{n}");
                let src = self
                    .tensors
                    .get(&key)
                    .ok_or_else(|| Error::Checkpoint(format!("checkpoint lacks tensor {key}")))?;
                let dst = vars.get_mut(&n).expect("listed");
                if src.size() != dst.size() {
                    return Err(Error::Checkpoint(format!(
                        "tensor {key} has shape {:?}, the network expects {:?}",
                        src.size(),
                        dst.size()
                    )));
                }
                dst.copy_(&src.to_kind(dst.kind()).to_device(dst.device()));
            }
            Ok(())
        })
    }
}

/// Named variables of a VarStore under `prefix.`.
pub fn named(vs: &VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    vs.variables()
        .into_iter()
        .map(|(n, t)| (format!("{prefix}.{n}"), t))
        .collect()
}

fn to_bytes(name: &str, t: &Tensor) -> Result<(Dtype, Vec<usize>, Vec<u8>)> {
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let n = t.numel();
    match t.kind() {
        Kind::Int64 => {
            let mut v = vec![0i64; n];
            t.copy_data(&mut v, n);
            Ok((
                Dtype::I64,
                shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ))
        }
        _ => {
            let t = t.to_kind(Kind::Float);
            let mut v = vec![0f32; n];
            t.copy_data(&mut v, n);
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(Error::Checkpoint(format!(
                    "refusing to save {name}: it holds a non-finite value ({x})"
                )));
            }
            Ok((
                Dtype::F32,
                shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ))
        }
    }
}

/// Writes tensors and metadata atomically (temp file + rename).
pub fn save(
    path: &Path,
    meta: &BTreeMap<String, String>,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let (dtype, shape, data) = to_bytes(name, t)?;
        owned.push((name.clone(), dtype, shape, data));
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            Ok((
                n.clone(),
                TensorView::new(*d, s.clone(), b).map_err(|e| Error::Checkpoint(e.to_string()))?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut meta: HashMap<String, String> =
        meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.insert(FORMAT_KEY.into(), FORMAT.into());
    meta.insert(
        CHECKSUM_KEY.into(),
        checksum(owned.iter().map(|(n, _, _, b)| (n.as_str(), b.as_slice()))),
    );
    let bytes =
        safetensors::serialize(views, &Some(meta)).map_err(|e| Error::Checkpoint(e.to_string()))?;
    crate::imageio::write_atomic(path, &bytes)
}

/// The size of a safetensors file and its metadata, read from its header
/// alone (without the tensors).
pub fn read_header(path: &Path) -> Result<(u64, BTreeMap<String, String>)> {
    use std::io::Read;
    let bad = |why: &str| Error::Checkpoint(format!("{}: {why}", path.display()));
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| bad("too short for a safetensors file"))?;
    let n = u64::from_le_bytes(n);
    if n > size.saturating_sub(8) || n > 100 << 20 {
        return Err(bad("header length beyond the file"));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|_| bad("truncated header"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| bad("the header is not JSON"))?;
    let meta = v
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok((size, meta))
}

/// Reads a checkpoint; a missing, truncated, damaged or foreign file is a
/// clear error naming the file.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes, path)
}

/// Reads a checkpoint from its bytes; `path` names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let bad = |why: String| {
        Error::Checkpoint(format!(
            "{} is not a valid t2i checkpoint: {why}",
            path.display()
        ))
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("{e:?}")))?;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("{e:?}")))?;
    let meta: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
        return Err(bad("no t2i format marker".into()));
    }
    if let Some(want) = meta.get(CHECKSUM_KEY) {
        let tensors = st.tensors();
        let got = checksum(tensors.iter().map(|(n, v)| (n.as_str(), v.data())));
        if &got != want {
            return Err(Error::Checkpoint(format!(
                "{} is damaged: its tensors do not match the checksum it was written with",
                path.display()
            )));
        }
    }
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let size: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::I64 => Kind::Int64,
            d => return Err(bad(format!("unsupported dtype {d:?} of {name}"))),
        };
        tensors.insert(name, Tensor::from_data_size(view.data(), &size, kind));
    }
    Ok(Checkpoint { meta, tensors })
}

/// Trainable variables of `vs`, sorted by name.
pub fn trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    variables(vs, true)
}

/// Variables of `vs` that no optimiser trains (batch-norm statistics),
/// sorted by name.
pub fn buffers(vs: &VarStore) -> Vec<(String, Tensor)> {
    variables(vs, false)
}

fn variables(vs: &VarStore, trained: bool) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad() == trained)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Copies `prefix.<name>` of a checkpoint into each trainable variable of `vs`.
pub fn load_trainable(vs: &VarStore, ck: &Checkpoint, prefix: &str) -> Result<()> {
    copy_from(trainable(vs), ck, prefix)
}

/// As [`load_trainable`] for the buffers of `vs`, when the checkpoint has
/// them under `prefix` (checkpoints written before they were saved do
/// not). Returns whether it did.
pub fn load_buffers(vs: &VarStore, ck: &Checkpoint, prefix: &str) -> Result<bool> {
    let vars = buffers(vs);
    let Some((n, _)) = vars.first() else {
        return Ok(false);
    };
    if !ck.tensors.contains_key(&format!("{prefix}.{n}")) {
        return Ok(false);
    }
    copy_from(vars, ck, prefix).map(|()| true)
}

/// Copies `prefix.<name>` of a checkpoint into each of `vars`.
pub fn copy_from(vars: Vec<(String, Tensor)>, ck: &Checkpoint, prefix: &str) -> Result<()> {
    tch::no_grad(|| {
        for (n, v) in vars {
            let key = format!("{prefix}.{n}");
            let src = ck
                .tensors
                .get(&key)
                .ok_or_else(|| Error::Checkpoint(format!("checkpoint lacks tensor {key}")))?;
            if src.size() != v.size() {
                return Err(Error::Checkpoint(format!(
                    "tensor {key} has the wrong shape"
                )));
            }
            v.shallow_clone()
                .copy_(&src.to_kind(v.kind()).to_device(v.device()));
        }
        Ok(())
    })
}

/// A run folder or a checkpoint file -> the checkpoint file.
pub fn checkpoint_file(p: &Path) -> Result<std::path::PathBuf> {
    if !p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let last = p.join("checkpoints").join("last.safetensors");
    if last.is_file() {
        Ok(last)
    } else {
        Err(Error::Checkpoint(format!(
            "{} is a folder but not a run folder with a checkpoint (no checkpoints/last.safetensors); give a run folder or a .safetensors file",
            p.display()
        )))
    }
}
