//! Reading PyTorch `.pth` files written by `torch.save`, so the official
//! StackGAN / AttnGAN checkpoints load without Python.
//!
//! Two container formats exist: the zip archive of torch >= 1.6
//! (`<name>/data.pkl` + one file per storage under `<name>/data/`) and the
//! legacy stream of the published 2017-2018 checkpoints (magic number,
//! protocol, system info, the object, the storage keys, then each storage
//! as an 8-byte element count and raw bytes). Both pickle the object with
//! protocol 2; this module runs the subset of the pickle machine that
//! `torch.save(state_dict)` uses and rebuilds the tensors
//! (`torch._utils._rebuild_tensor_v2`) from their storages.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// Why a `.pth` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a PyTorch checkpoint: {0}")]
    Format(String),
    #[error("unsupported pickle content: {0}")]
    Unsupported(String),
}

type R<T> = std::result::Result<T, PthError>;

/// A pickled value (the subset `torch.save` produces). Some payloads are
/// only kept for `Debug` output in error messages.
#[derive(Debug, Clone)]
#[allow(dead_code)]
enum V {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    Global(String, String),
    /// A storage reference: element kind, key, element count.
    Storage(Kind, String),
    /// A tensor view of a storage.
    Tensor {
        kind: Kind,
        key: String,
        offset: i64,
        size: Vec<i64>,
        stride: Vec<i64>,
    },
    /// Anything else that was constructed (kept opaque).
    Object(String),
}

fn storage_kind(module: &str, name: &str) -> R<Kind> {
    if module != "torch" {
        return Err(PthError::Unsupported(format!("storage {module}.{name}")));
    }
    Ok(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return Err(PthError::Unsupported(format!("storage torch.{name}"))),
    })
}

fn elem_size(k: Kind) -> usize {
    match k {
        Kind::Double | Kind::Int64 => 8,
        Kind::Float | Kind::Int => 4,
        Kind::Half | Kind::BFloat16 | Kind::Int16 => 2,
        _ => 1,
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<V>,
    memo: HashMap<u32, V>,
    /// Values that may still be made or copied (see [`MAX_NODES`]).
    budget: usize,
}

/// Deepest nesting of containers a pickle may build: a state_dict nests a
/// few levels; a crafted file could nest until dropping or walking the value
/// overflows the stack.
const MAX_DEPTH: usize = 64;
/// Values a pickle may make or copy from its memo: a crafted file that
/// copies a value into itself again and again would double it each time.
const MAX_NODES: usize = 1 << 22;

impl V {
    /// Containers nested in `self`, `self` included (bounded by
    /// [`MAX_DEPTH`] for every value the machine holds).
    fn depth(&self) -> usize {
        match self {
            V::Tuple(v) | V::List(v) => 1 + v.iter().map(V::depth).max().unwrap_or(0),
            V::Dict(d) => {
                1 + d
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }
    /// Values in `self`, `self` included.
    fn nodes(&self) -> usize {
        match self {
            V::Tuple(v) | V::List(v) => 1 + v.iter().map(V::nodes).sum::<usize>(),
            V::Dict(d) => 1 + d.iter().map(|(k, v)| k.nodes() + v.nodes()).sum::<usize>(),
            _ => 1,
        }
    }
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            budget: MAX_NODES,
        }
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self
            .pos
            .checked_add(n)
            .is_none_or(|end| end > self.data.len())
        {
            return Err(PthError::Format("truncated pickle".into()));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn line(&mut self) -> R<String> {
        let start = self.pos;
        let rest = self.data.get(start..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PthError::Format("truncated pickle: a line has no end".into()))?;
        self.pos = start + n + 1;
        Ok(String::from_utf8_lossy(&rest[..n]).into_owned())
    }
    fn pop(&mut self) -> R<V> {
        self.stack
            .pop()
            .ok_or_else(|| PthError::Format("pickle stack underflow".into()))
    }
    fn pop_mark(&mut self) -> R<Vec<V>> {
        let k = self
            .stack
            .iter()
            .rposition(|v| matches!(v, V::Mark))
            .ok_or_else(|| PthError::Format("pickle MARK missing".into()))?;
        let items = self.stack.split_off(k + 1);
        self.stack.pop();
        Ok(items)
    }
    fn top(&mut self) -> R<&mut V> {
        self.stack
            .last_mut()
            .ok_or_else(|| PthError::Format("pickle stack underflow".into()))
    }

    /// Charges `n` values to the budget.
    fn spend(&mut self, n: usize) -> R<()> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            PthError::Format(format!("the pickle builds more than {MAX_NODES} values"))
        })?;
        Ok(())
    }
    /// Pushes a container built from `items`, refusing one nested deeper
    /// than [`MAX_DEPTH`].
    fn push_nested(&mut self, v: V) -> R<()> {
        if v.depth() > MAX_DEPTH {
            return Err(PthError::Format(format!(
                "the pickle nests containers deeper than {MAX_DEPTH}"
            )));
        }
        self.spend(1)?;
        self.stack.push(v);
        Ok(())
    }
    /// Checks that `v` may go inside a container.
    fn check_child(v: &V) -> R<()> {
        if v.depth() + 1 > MAX_DEPTH {
            return Err(PthError::Format(format!(
                "the pickle nests containers deeper than {MAX_DEPTH}"
            )));
        }
        Ok(())
    }
    /// A copy of the top value for the memo.
    fn memo_top(&mut self, k: u32) -> R<()> {
        let v = self.top()?.clone();
        self.spend(v.nodes())?;
        self.memo.insert(k, v);
        Ok(())
    }

    /// Runs until STOP and returns the value.
    fn run(&mut self) -> R<V> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let _proto = self.u8()?;
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(V::Mark),
                b'N' => self.stack.push(V::None),
                0x88 => self.stack.push(V::Bool(true)),
                0x89 => self.stack.push(V::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(V::Int(v as i64))
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(V::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(V::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    let mut v: i128 = 0;
                    for (i, &x) in b.iter().enumerate().take(16) {
                        v |= (x as i128) << (8 * i);
                    }
                    if n > 0 && n < 16 && b[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    self.stack.push(V::Int(v as i64));
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "00" => V::Bool(false),
                        "01" => V::Bool(true),
                        s => V::Int(
                            s.parse()
                                .map_err(|_| PthError::Format(format!("bad INT '{s}'")))?,
                        ),
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(V::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(V::Str(s));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(V::Str(s));
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(V::Str(s));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(V::Str(s));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(V::Bytes(b));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(V::Bytes(b));
                }
                b')' => self.stack.push(V::Tuple(vec![])),
                b']' => self.stack.push(V::List(vec![])),
                b'}' => self.stack.push(V::Dict(vec![])),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_nested(V::Tuple(items))?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_nested(V::List(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push_nested(V::Dict(pairs(items)))?;
                }
                0x85 => {
                    let a = self.pop()?;
                    self.push_nested(V::Tuple(vec![a]))?;
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push_nested(V::Tuple(vec![a, b]))?;
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push_nested(V::Tuple(vec![a, b, c]))?;
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_top(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_top(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_top(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.get(k)?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(V::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (V::Str(m), V::Str(n)) => self.stack.push(V::Global(m, n)),
                        _ => return Err(PthError::Format("bad STACK_GLOBAL".into())),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent(pid)?);
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.stack.push(reduce(f, args)?);
                }
                b'b' => {
                    let _state = self.pop()?; // e.g. an OrderedDict's _metadata
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    Self::check_child(&k)?;
                    Self::check_child(&v)?;
                    if let V::Dict(d) = self.top()? {
                        d.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    items.iter().try_for_each(Self::check_child)?;
                    if let V::Dict(d) = self.top()? {
                        d.extend(pairs(items));
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    Self::check_child(&v)?;
                    if let V::List(l) = self.top()? {
                        l.push(v);
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    items.iter().try_for_each(Self::check_child)?;
                    if let V::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                b'0' => {
                    self.pop()?;
                }
                other => {
                    return Err(PthError::Unsupported(format!(
                        "pickle opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    )))
                }
            }
        }
    }

    fn get(&mut self, k: u32) -> R<()> {
        let n = self
            .memo
            .get(&k)
            .ok_or_else(|| PthError::Format(format!("pickle memo {k} missing")))?
            .nodes();
        self.spend(n)?;
        let v = self.memo[&k].clone();
        self.stack.push(v);
        Ok(())
    }
}

/// Key-value pairs of a flat list (an odd last item is dropped).
fn pairs(items: Vec<V>) -> Vec<(V, V)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// `('storage', torch.FloatStorage, key, location, numel[, view])`.
fn persistent(pid: V) -> R<V> {
    let V::Tuple(t) = pid else {
        return Err(PthError::Unsupported("persistent id is not a tuple".into()));
    };
    match (t.first(), t.get(1), t.get(2)) {
        (Some(V::Str(tag)), Some(V::Global(m, n)), Some(V::Str(key))) if tag == "storage" => {
            Ok(V::Storage(storage_kind(m, n)?, key.clone()))
        }
        _ => Err(PthError::Unsupported(format!("persistent id {t:?}"))),
    }
}

fn ints(v: &V) -> R<Vec<i64>> {
    match v {
        V::Tuple(t) | V::List(t) => t
            .iter()
            .map(|x| match x {
                V::Int(i) => Ok(*i),
                _ => Err(PthError::Format("expected integers".into())),
            })
            .collect(),
        _ => Err(PthError::Format("expected a tuple of integers".into())),
    }
}

fn reduce(f: V, args: V) -> R<V> {
    let V::Global(module, name) = &f else {
        return Ok(V::Object("call".into()));
    };
    let args = match args {
        V::Tuple(a) => a,
        _ => vec![],
    };
    Ok(match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") | ("builtins", "dict") => V::Dict(vec![]),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let (Some(V::Storage(kind, key)), Some(V::Int(offset)), Some(size), Some(stride)) =
                (args.first(), args.get(1), args.get(2), args.get(3))
            else {
                return Err(PthError::Format("bad _rebuild_tensor arguments".into()));
            };
            V::Tensor {
                kind: *kind,
                key: key.clone(),
                offset: *offset,
                size: ints(size)?,
                stride: ints(stride)?,
            }
        }
        ("torch._utils", "_rebuild_parameter") => args.into_iter().next().unwrap_or(V::None),
        _ => V::Object(format!("{module}.{name}")),
    })
}

/// Finds the state_dict: the top-level dict of tensors, or a dict under a
/// usual key (`state_dict`, `model`, `netG` ...) when the file wraps it.
fn tensors_of(v: &V, prefix: &str, out: &mut Vec<(String, V)>) {
    if let V::Dict(d) = v {
        for (k, x) in d {
            let key = match k {
                V::Str(s) => s.clone(),
                V::Int(i) => i.to_string(),
                _ => continue,
            };
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match x {
                V::Tensor { .. } => out.push((name, x.clone())),
                V::Dict(_) => tensors_of(x, &name, out),
                _ => {}
            }
        }
    }
}

fn build(
    list: Vec<(String, V)>,
    storage: &mut dyn FnMut(&str, Kind) -> R<Vec<u8>>,
) -> R<BTreeMap<String, Tensor>> {
    let mut cache: HashMap<String, Tensor> = HashMap::new();
    let mut out = BTreeMap::new();
    for (name, v) in list {
        let V::Tensor {
            kind,
            key,
            offset,
            size,
            stride,
        } = v
        else {
            continue;
        };
        if !cache.contains_key(&key) {
            let bytes = storage(&key, kind)?;
            let n = bytes.len() / elem_size(kind);
            let t = Tensor::from_data_size(&bytes[..n * elem_size(kind)], &[n as i64], kind);
            cache.insert(key.clone(), t);
        }
        let s = &cache[&key];
        check_view(&name, s.numel(), &size, &stride, offset)?;
        let t = s
            .f_as_strided(size.as_slice(), stride.as_slice(), offset)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| PthError::Format(format!("{name}: {e}")))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Checks that a strided view (`size`, `stride`, `offset`) of a storage of
/// `numel` elements stays inside it.
fn check_view(name: &str, numel: usize, size: &[i64], stride: &[i64], offset: i64) -> R<()> {
    let bad = |why: &str| Err(PthError::Format(format!("{name}: {why}")));
    if size.len() != stride.len() {
        return bad("size and stride differ in length");
    }
    if offset < 0 || size.iter().chain(stride).any(|&x| x < 0) {
        return bad("negative size, stride or offset");
    }
    if size.contains(&0) {
        return Ok(());
    }
    let mut last = offset as i128;
    for (&n, &s) in size.iter().zip(stride) {
        last += (n as i128 - 1) * s as i128;
    }
    if last >= numel as i128 {
        return bad("the view runs past its storage");
    }
    let count: i128 = size.iter().map(|&n| n as i128).product();
    // overlapping (stride-0) views are legal, but never far larger than
    // their storage in a saved state_dict
    if count > (numel as i128).max(1 << 24) {
        return bad("the view has far more elements than its storage");
    }
    Ok(())
}

/// Reads every tensor of a `.pth` file (either format), by state_dict name.
pub fn load(path: &Path) -> R<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path)?;
    load_bytes(&bytes, path)
}

/// Reads every tensor of the bytes of a `.pth` file; `path` names it in
/// errors.
pub fn load_bytes(bytes: &[u8], path: &Path) -> R<BTreeMap<String, Tensor>> {
    if bytes.starts_with(b"PK\x03\x04") {
        load_zip(bytes)
    } else if bytes.first() == Some(&0x80) {
        load_legacy(bytes)
    } else {
        Err(PthError::Format(format!(
            "{} is neither a zip nor a legacy torch.save file",
            path.display()
        )))
    }
}

fn load_zip(bytes: &[u8]) -> R<BTreeMap<String, Tensor>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| PthError::Format(format!("bad zip: {e}")))?;
    let pkl = (0..zip.len())
        .filter_map(|i| zip.by_index(i).ok().map(|f| f.name().to_string()))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| PthError::Format("zip has no data.pkl".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut data = Vec::new();
    zip.by_name(&pkl)
        .map_err(|e| PthError::Format(e.to_string()))?
        .read_to_end(&mut data)?;
    let v = Machine::new(&data).run()?;
    let mut list = Vec::new();
    tensors_of(&v, "", &mut list);
    let mut storage = |key: &str, _k: Kind| -> R<Vec<u8>> {
        let mut b = Vec::new();
        zip.by_name(&format!("{prefix}data/{key}"))
            .map_err(|e| PthError::Format(format!("storage {key}: {e}")))?
            .read_to_end(&mut b)?;
        Ok(b)
    };
    build(list, &mut storage)
}

fn load_legacy(bytes: &[u8]) -> R<BTreeMap<String, Tensor>> {
    let mut m = Machine::new(bytes);
    let magic = m.run()?;
    if !matches!(magic, V::Int(_)) {
        return Err(PthError::Format("legacy magic number missing".into()));
    }
    let _protocol = m.run()?;
    let _sys_info = m.run()?;
    let v = m.run()?;
    let keys = match m.run()? {
        V::List(k) => k,
        _ => return Err(PthError::Format("legacy storage key list missing".into())),
    };
    // kinds of each storage, from the object's tensors
    let mut list = Vec::new();
    tensors_of(&v, "", &mut list);
    let kinds: HashMap<String, Kind> = list
        .iter()
        .filter_map(|(_, t)| match t {
            V::Tensor { kind, key, .. } => Some((key.clone(), *kind)),
            _ => None,
        })
        .collect();
    let mut pos = m.pos;
    let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
    for k in keys {
        let V::Str(key) = k else { continue };
        if pos.saturating_add(8) > bytes.len() {
            return Err(PthError::Format("truncated storage data".into()));
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[pos..pos + 8]);
        let n = u64::from_le_bytes(a) as usize;
        pos += 8;
        let end = n
            .checked_mul(elem_size(*kinds.get(&key).unwrap_or(&Kind::Float)))
            .and_then(|size| pos.checked_add(size))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| PthError::Format("truncated storage data".into()))?;
        blobs.insert(key, bytes[pos..end].to_vec());
        pos = end;
    }
    let mut storage = |key: &str, _k: Kind| -> R<Vec<u8>> {
        blobs
            .remove(key)
            .ok_or_else(|| PthError::Format(format!("storage {key} missing")))
    };
    build(list, &mut storage)
}
