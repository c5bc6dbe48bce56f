//! Images in and out: tensors to RGB bytes, sample grids with the caption
//! drawn under them (8x8 bitmap font), PNG encoding, atomic file writes.

use crate::error::{Error, Result};
use font8x8::UnicodeFonts;
use std::path::Path;
use tch::{Kind, Tensor};

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Config(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    // the data reach the disk before the rename makes them visible, and the
    // rename reaches it before this returns: a crash leaves the old file or
    // the new one, never a mix
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // not every file system can sync a folder; the rename stands either way
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes temporary files that [`write_atomic`] left in `dir` when its
/// process was killed mid-write. Returns how many it removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with('.') && n.contains(".tmp-")
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// An RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Rgb {
    /// The image scaled up `k` times (nearest neighbour: pixels stay sharp).
    pub fn zoom(&self, k: u32) -> Rgb {
        if k <= 1 {
            return self.clone();
        }
        let (w, h) = (self.width * k, self.height * k);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let i = (((y / k) * self.width + x / k) * 3) as usize;
                data.extend_from_slice(&self.data[i..i + 3]);
            }
        }
        Rgb {
            width: w,
            height: h,
            data,
        }
    }
    pub fn new(width: u32, height: u32, fill: [u8; 3]) -> Self {
        Self {
            width,
            height,
            data: fill.repeat((width * height) as usize),
        }
    }
    fn put(&mut self, x: u32, y: u32, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = ((y * self.width + x) * 3) as usize;
            self.data[i..i + 3].copy_from_slice(&c);
        }
    }
    /// Copies `src` with its top-left corner at `(x, y)`.
    pub fn blit(&mut self, src: &Rgb, x: u32, y: u32) {
        for sy in 0..src.height {
            for sx in 0..src.width {
                let i = ((sy * src.width + sx) * 3) as usize;
                self.put(
                    x + sx,
                    y + sy,
                    [src.data[i], src.data[i + 1], src.data[i + 2]],
                );
            }
        }
    }
    /// Draws ASCII text with the 8x8 font at integer `scale`.
    pub fn text(&mut self, s: &str, x: u32, y: u32, scale: u32, colour: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (gy, row) in glyph.iter().enumerate() {
                for gx in 0..8 {
                    if row & (1 << gx) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let px = x + (k as u32 * 8 + gx) * scale + dx;
                                self.put(px, y + gy as u32 * scale + dy, colour);
                            }
                        }
                    }
                }
            }
        }
    }
    pub fn png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::write_image(
            enc,
            &self.data,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Image(e.to_string()))?;
        Ok(out)
    }
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.png()?)
    }
    /// Reads an image file and resizes it to `size x size`.
    pub fn load(path: &Path, size: u32) -> Result<Rgb> {
        let img = read_image(path).map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
        Ok(Self::resized(img, size))
    }
    /// Decodes an encoded image (PNG or JPEG bytes) and resizes it to
    /// `size x size`.
    pub fn decode(bytes: &[u8], size: u32) -> Result<Rgb> {
        let img = decode_image(bytes)
            .map_err(|e| Error::Image(format!("cannot read the image (PNG or JPEG): {e}")))?;
        Ok(Self::resized(img, size))
    }
    fn resized(img: image::DynamicImage, size: u32) -> Rgb {
        let img = img
            .resize_exact(size, size, image::imageops::FilterType::Triangle)
            .to_rgb8();
        Rgb {
            width: size,
            height: size,
            data: img.into_raw(),
        }
    }
}

/// `[N, 3, H, W]` tensor in [-1, 1] to images.
pub fn tensor_to_images(t: &Tensor) -> Vec<Rgb> {
    let t = ((t.detach().to_device(tch::Device::Cpu).clamp(-1.0, 1.0) + 1.0) * 127.5)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let (n, h, w) = (t.size()[0], t.size()[1] as u32, t.size()[2] as u32);
    (0..n)
        .map(|i| {
            let one = t.get(i);
            let numel = one.numel();
            let mut data = vec![0u8; numel];
            one.copy_data(&mut data, numel);
            Rgb {
                width: w,
                height: h,
                data,
            }
        })
        .collect()
}

/// RGB images (all `size x size`) to a `[N, 3, size, size]` tensor in [-1, 1].
pub fn images_to_tensor(images: &[&[u8]], size: u32) -> Tensor {
    let flat: Vec<u8> = images.iter().flat_map(|d| d.iter().copied()).collect();
    Tensor::from_slice(&flat)
        .view([images.len() as i64, size as i64, size as i64, 3])
        .permute([0, 3, 1, 2])
        // NCHW in memory: a channels-last input slows every convolution
        .contiguous()
        .to_kind(Kind::Float)
        / 127.5
        - 1.0
}

pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for w in text.split_whitespace() {
        let cur = lines.last_mut().expect("non-empty");
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            lines.push(w.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    lines
}

/// A grid of rows of images, each row with an optional label under it.
pub fn grid(rows: &[(Vec<Rgb>, Option<String>)], pad: u32) -> Rgb {
    let cell = rows
        .iter()
        .flat_map(|r| r.0.first())
        .map(|i| i.width.max(i.height))
        .max()
        .unwrap_or(32);
    let cols = rows.iter().map(|r| r.0.len()).max().unwrap_or(1) as u32;
    let width = (cols * (cell + pad) + pad).max(8 * 24);
    let chars = ((width - pad) / 8) as usize;
    let labels: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.1.as_deref().map(|t| wrap(t, chars)).unwrap_or_default())
        .collect();
    let height: u32 = pad
        + rows
            .iter()
            .zip(&labels)
            .map(|(_, l)| cell + pad + l.len() as u32 * 10)
            .sum::<u32>();
    let mut out = Rgb::new(width, height, [255, 255, 255]);
    let mut y = pad;
    for ((imgs, _), lines) in rows.iter().zip(&labels) {
        for (i, im) in imgs.iter().enumerate() {
            out.blit(im, pad + i as u32 * (cell + pad), y);
        }
        y += cell + pad;
        for l in lines {
            out.text(l, pad, y, 1, [0, 0, 0]);
            y += 10;
        }
    }
    out
}

/// The largest image side t2i decodes: a file that declares more (a
/// 15,000-pixel JPEG header on a few bytes) is refused before its pixels are
/// allocated.
pub const MAX_IMAGE_SIDE: u32 = 8192;

fn limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(MAX_IMAGE_SIDE);
    l.max_image_height = Some(MAX_IMAGE_SIDE);
    l.max_alloc = Some(256 << 20);
    l
}

/// Decodes an image file (format from its content), at most
/// [`MAX_IMAGE_SIDE`] pixels on a side; the error is one line.
pub fn read_image(path: &Path) -> std::result::Result<image::DynamicImage, String> {
    let decode = || {
        let mut r = image::ImageReader::open(path)?.with_guessed_format()?;
        r.limits(limits());
        r.decode()
    };
    decode().map_err(describe)
}

/// Decodes encoded image bytes, at most [`MAX_IMAGE_SIDE`] pixels on a side.
pub fn decode_image(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    let decode = || {
        let mut r = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
        r.limits(limits());
        r.decode()
    };
    decode().map_err(describe)
}

fn describe(e: image::ImageError) -> String {
    match e {
        image::ImageError::Limits(_) => format!(
            "the image is too large (t2i reads images of at most {MAX_IMAGE_SIDE} pixels a side)"
        ),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_grid() {
        let px: Vec<u8> = (0..32 * 32 * 3).map(|i| (i % 256) as u8).collect();
        let t = images_to_tensor(&[&px], 32);
        assert_eq!(t.size(), vec![1, 3, 32, 32]);
        assert_eq!(tensor_to_images(&t)[0].data, px);
        let g = grid(&[(tensor_to_images(&t), Some("a red circle".into()))], 2);
        assert!(g.png().unwrap().len() > 100);
        let dir = tempfile::tempdir().unwrap();
        assert!(g.save(&dir.path().join("missing/x.png")).is_err());
        assert!(!dir.path().join("missing").exists());
    }
}
