//! Training images with the frozen sentence vectors of their captions: the
//! one container the GAN families train from, built from the shapes data
//! set or from a real data set's prepared crops ([`CaptionedImages`]).

use crate::data::images::CaptionedImages;
use crate::data::prepare::{Augmented, ImageBatcher};
use crate::data::shapes::{AttributeIndex, Shapes, ShapesSample, Split};
use crate::error::Result;
use crate::rng::step_seed;
use crate::text::TextEncoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Where the images come from.
enum ImageSource {
    /// Box crops with random crop and flip (real data sets).
    Crops(ImageBatcher),
    /// Fixed images `[n, 3, s, s]` u8, no augmentation (shapes: flipping
    /// would contradict "left" and "right" in the captions).
    Fixed(Tensor),
}

/// The shapes samples behind the images, for hard negatives.
struct ShapesIndex {
    samples: Vec<ShapesSample>,
    /// Images by (colour, shape, size, position) of their single object.
    by_attributes: AttributeIndex,
}

/// Captioned images with their frozen sentence embeddings.
pub struct EmbeddedImages {
    source: ImageSource,
    /// `[n, k, D]`: the first k captions of every image.
    pub embeddings: Tensor,
    pub captions: Vec<Vec<String>>,
    /// Class of each image: wrong captions come from other classes.
    pub classes: Vec<usize>,
    shapes: Option<ShapesIndex>,
    /// Where each image's object is (GAWWN): boxes `[n, 4]` or keypoints
    /// `[n, K, 3]` as fractions of the stored image, returned with each
    /// batch ([`Pairs::layout`]) moved with its crop and flip.
    layouts: Option<Tensor>,
    /// For each keypoint, the keypoint it becomes in a mirrored image.
    mirror: Vec<usize>,
}

/// Embeds the first k captions of every image (k: the fewest any image has)
/// with `encoder` (frozen). `[n, k, D]`
fn embed(encoder: &dyn TextEncoder, captions: &[Vec<String>], device: Device) -> Result<Tensor> {
    let k = captions.iter().map(Vec::len).min().unwrap_or(1).max(1);
    let flat: Vec<&str> = captions
        .iter()
        .flat_map(|c| c.iter().take(k).map(String::as_str))
        .collect();
    let mut parts = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for chunk in flat.chunks(500) {
            parts.push(encoder.encode(chunk)?.0.sentence.to_device(device));
        }
        Ok(())
    })?;
    let d = encoder.sentence_dim();
    Ok(Tensor::cat(&parts, 0).view([captions.len() as i64, k as i64, d]))
}

impl EmbeddedImages {
    /// A split of the shapes data set (fixed images; hard negatives
    /// available). Each caption class (`class_key`) is its own class.
    pub fn shapes(
        shapes: &Shapes,
        split: Split,
        encoder: &dyn TextEncoder,
        device: Device,
    ) -> Result<Self> {
        let n = shapes.len(split);
        let samples: Vec<ShapesSample> = (0..n).map(|i| shapes.sample(split, i)).collect();
        let s = shapes.config.image_size as i64;
        let flat: Vec<u8> = samples
            .iter()
            .flat_map(|x| x.pixels.iter().copied())
            .collect();
        let images = Tensor::from_slice(&flat)
            .view([n as i64, s, s, 3])
            .permute([0, 3, 1, 2])
            .contiguous()
            .to_device(device);
        let mut keys: BTreeMap<String, usize> = BTreeMap::new();
        let classes = samples
            .iter()
            .map(|x| {
                let k = keys.len();
                *keys.entry(x.class_key()).or_insert(k)
            })
            .collect();
        let captions: Vec<Vec<String>> = samples.iter().map(|x| x.captions.clone()).collect();
        let embeddings = embed(encoder, &captions, device)?;
        let by_attributes = AttributeIndex::new(&samples);
        Ok(Self {
            source: ImageSource::Fixed(images),
            embeddings,
            captions,
            classes,
            shapes: Some(ShapesIndex {
                samples,
                by_attributes,
            }),
            layouts: None,
            mirror: Vec::new(),
        })
    }

    /// Prepared crops of a real data set (random crop and flip when its
    /// batcher augments).
    pub fn crops(data: CaptionedImages, encoder: &dyn TextEncoder, device: Device) -> Result<Self> {
        let embeddings = embed(encoder, &data.captions, device)?;
        Ok(Self {
            source: ImageSource::Crops(data.images),
            embeddings,
            captions: data.captions,
            classes: data.classes.iter().map(|&c| c as usize).collect(),
            shapes: None,
            layouts: None,
            mirror: Vec::new(),
        })
    }

    /// Fixed images `[n, 3, s, s]` (u8) with their captions, each image its
    /// own class.
    pub fn fixed(
        images: Tensor,
        captions: Vec<Vec<String>>,
        encoder: &dyn TextEncoder,
        device: Device,
    ) -> Result<Self> {
        let embeddings = embed(encoder, &captions, device)?;
        Ok(Self {
            source: ImageSource::Fixed(images),
            embeddings,
            classes: (0..captions.len()).collect(),
            captions,
            shapes: None,
            layouts: None,
            mirror: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.captions.len()
    }

    /// Attaches each image's layout (boxes `[n, 4]` or keypoints
    /// `[n, K, 3]`, fractions of the stored image), returned with every
    /// batch of [`EmbeddedImages::pairs`]; `mirror` maps each keypoint to
    /// the one it becomes when an image is flipped (empty for boxes).
    pub fn with_layouts(mut self, layouts: Tensor, mirror: Vec<usize>) -> Self {
        self.layouts = Some(layouts.to_device(Device::Cpu));
        self.mirror = mirror;
        self
    }

    /// The attached layouts, as stored ([`EmbeddedImages::with_layouts`]).
    pub fn layouts(&self) -> Option<&Tensor> {
        self.layouts.as_ref()
    }

    /// The shapes samples behind the images (shapes data only).
    pub fn shapes_samples(&self) -> Option<&[ShapesSample]> {
        self.shapes.as_ref().map(|s| s.samples.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }

    /// Captions embedded per image.
    fn per_image(&self) -> i64 {
        self.embeddings.size()[1]
    }

    /// Images `idx` in [-1, 1] at their stored side. `[b, 3, s, s]`
    fn images(&self, idx: &[usize], seed: u64, step: i64, device: Device) -> Tensor {
        self.images_cut(idx, seed, step, device).0
    }

    /// As [`EmbeddedImages::images`], with how each crop was cut (real data
    /// sets).
    fn images_cut(
        &self,
        idx: &[usize],
        seed: u64,
        step: i64,
        device: Device,
    ) -> (Tensor, Option<Vec<Augmented>>) {
        match &self.source {
            ImageSource::Crops(b) => {
                let mut r = ImageBatcher::rng(seed, step);
                let (mut x, cuts) = b.batch_with_crops(idx, &mut r, device, b.augment);
                (x.pop().expect("one size"), Some(cuts))
            }
            ImageSource::Fixed(t) => {
                let ii: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                let x = t
                    .index_select(0, &Tensor::from_slice(&ii).to_device(t.device()))
                    .to_device(device)
                    .to_kind(Kind::Float)
                    / 127.5
                    - 1.0;
                (x, None)
            }
        }
    }

    /// The layouts of images `idx`, moved with their cuts. `[b, 4]` or
    /// `[b, K, 3]`
    fn layouts_of(
        &self,
        idx: &[usize],
        cuts: Option<&[Augmented]>,
        device: Device,
    ) -> Option<Tensor> {
        let l = self.layouts.as_ref()?;
        let ii: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let sel = l.index_select(0, &Tensor::from_slice(&ii));
        let Some(cuts) = cuts else {
            return Some(sel.to_device(device));
        };
        Some(crate::data::prepare::move_layouts(&sel, cuts, &self.mirror).to_device(device))
    }

    /// Sentence vectors of flat caption indices (`image * k + caption`). `[b, D]`
    fn rows(&self, flat: &[i64], device: Device) -> Tensor {
        let d = self.embeddings.size()[2];
        self.embeddings
            .view([-1, d])
            .index_select(
                0,
                &Tensor::from_slice(flat).to_device(self.embeddings.device()),
            )
            .to_device(device)
    }

    /// A random batch: images at each side of `sizes` in [-1, 1] and one
    /// random caption embedding per image (StackGAN).
    pub fn batch(
        &self,
        seed: u64,
        step: i64,
        b: i64,
        sizes: &[i64],
        device: Device,
    ) -> (Vec<Tensor>, Tensor) {
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(seed, step));
        let n = self.len();
        let idx: Vec<usize> = (0..b).map(|_| rng.gen_range(0..n)).collect();
        let k = self.per_image();
        let emb_idx: Vec<i64> = idx
            .iter()
            .map(|&i| i as i64 * k + rng.gen_range(0..k))
            .collect();
        let emb = self.rows(&emb_idx, device);
        let x = self.images(&idx, seed, step, device);
        (resize_all(&x, sizes), emb)
    }

    /// A random batch of matching-aware pairs (GAN-INT-CLS): images, their
    /// right sentence vectors and wrong ones from another class; with
    /// probability `hard` the wrong image differs only in colour or only
    /// in shape (shapes data only). On shapes a wrong caption never
    /// describes the image (a partial caption of another image may:
    /// "a circle" fits every circle), and [`Pairs::also_right`] marks the
    /// batch's other captions that do.
    pub fn pairs(&self, seed: u64, step: i64, b: i64, hard: f64) -> Pairs {
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(seed, step) ^ 0xDA7A);
        let n = self.classes.len();
        let c = self.per_image() as usize;
        let mut idx = Vec::with_capacity(b as usize);
        let mut right = Vec::with_capacity(b as usize);
        let mut wrong = Vec::with_capacity(b as usize);
        let mut full = Vec::with_capacity(b as usize);
        for _ in 0..b {
            let i = rng.gen_range(0..n);
            let hard_j = if hard > 0.0 && rng.gen_bool(hard) {
                self.shapes.as_ref().and_then(|s| {
                    s.by_attributes
                        .colour_or_shape_partner(&mut rng, &s.samples[i])
                })
            } else {
                None
            };
            let j = match hard_j {
                Some(j) => j,
                None => loop {
                    let j = rng.gen_range(0..n);
                    if self.classes[j] != self.classes[i] {
                        break j;
                    }
                },
            };
            let mut kw = rng.gen_range(0..c);
            if let Some(s) = &self.shapes {
                // caption 0 names everything, so it never describes image i
                let fits = |k: usize| s.samples[j].specs[k].describes(&s.samples[i].objects);
                if fits(kw) {
                    kw = (0..4)
                        .map(|_| rng.gen_range(0..c))
                        .find(|&k| !fits(k))
                        .unwrap_or(0);
                }
            }
            idx.push(i);
            right.push((i * c + rng.gen_range(0..c)) as i64);
            wrong.push((j * c + kw) as i64);
            let kf = match &self.shapes {
                Some(s) => {
                    let f: Vec<usize> = (0..c)
                        .filter(|&k| s.samples[i].specs[k].is_full())
                        .collect();
                    f.get(rng.gen_range(0..f.len().max(1)))
                        .copied()
                        .unwrap_or(0)
                }
                None => right[right.len() - 1] as usize - i * c,
            };
            full.push((i * c + kf) as i64);
        }
        let dev = self.embeddings.device();
        let also_right = self.shapes.as_ref().map(|s| {
            let spec = |flat: i64| &s.samples[flat as usize / c].specs[flat as usize % c];
            let cands: Vec<i64> = right.iter().chain(&wrong).copied().collect();
            let v: Vec<bool> = idx
                .iter()
                .enumerate()
                .flat_map(|(a, &i)| {
                    cands
                        .iter()
                        .enumerate()
                        .map(move |(k, &f)| k != a && spec(f).describes(&s.samples[i].objects))
                })
                .collect();
            Tensor::from_slice(&v).view([b, 2 * b]).to_device(dev)
        });
        let (images, cuts) = self.images_cut(&idx, seed, step, dev);
        Pairs {
            layout: self.layouts_of(&idx, cuts.as_deref(), dev),
            images,
            right: self.rows(&right, dev),
            wrong: self.rows(&wrong, dev),
            full: self.rows(&full, dev),
            also_right,
        }
    }
}

/// A batch of matching-aware pairs ([`EmbeddedImages::pairs`]).
pub struct Pairs {
    /// Real images in [-1, 1]. `[b, 3, s, s]`
    pub images: Tensor,
    /// A sentence vector of each image's own captions. `[b, D]`
    pub right: Tensor,
    /// A sentence vector of a caption that does not describe the image.
    /// `[b, D]`
    pub wrong: Tensor,
    /// A sentence vector of a caption of each image that names everything
    /// in it (on real data sets, the `right` one): what a reconstruction of
    /// the image is conditioned on, so the noise has only the style to carry.
    /// `[b, D]`
    pub full: Tensor,
    /// True where a candidate sentence (the `right` rows, then the `wrong`
    /// rows) also describes image `i` although it is not image `i`'s own:
    /// contrastive terms must not push those apart. `None` where the data
    /// set cannot tell (real data sets). `[b, 2 b]` bool
    pub also_right: Option<Tensor>,
    /// The images' layouts when attached ([`EmbeddedImages::with_layouts`]).
    pub layout: Option<Tensor>,
}

/// The image at each side of `sizes` (antialiased bilinear).
fn resize_all(x: &Tensor, sizes: &[i64]) -> Vec<Tensor> {
    let s = x.size()[2];
    sizes
        .iter()
        .map(|&t| {
            if t == s {
                x.shallow_clone()
            } else {
                x.internal_upsample_bilinear2d_aa([t, t], false, None, None)
            }
        })
        .collect()
}
