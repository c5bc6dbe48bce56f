//! Diagnostic: held-in shape accuracy of a GAN-INT-CLS checkpoint by the
//! shape word of the caption and by size. `cargo run --release --example
//! shape_errors -- CHECKPOINT [N]`
use std::collections::BTreeMap;
use t2i::data::checker::{agreement, check};
use t2i::data::shapes::{Shapes, ShapesConfig, Split, SIZES};
use t2i::imageio::tensor_to_images;
use t2i::train::gan_int_cls::GanIntClsModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let ck = t2i::train::checkpoint::load(std::path::Path::new(&args[1]))?;
    let n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let model = GanIntClsModel::from_checkpoint(&ck, tch::Device::Cpu)?;
    let data: ShapesConfig = toml::from_str(ck.meta("data")?)?;
    let shapes = Shapes::new(data)?;
    let words = [
        "circle",
        "disc",
        "ball",
        "round shape",
        "square",
        "box",
        "block",
        "triangle",
        "pyramid",
    ];
    let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for k0 in (0..n).step_by(100) {
        let samples: Vec<_> = (k0..(k0 + 100).min(n))
            .map(|i| shapes.sample(Split::Test, i))
            .collect();
        let caps: Vec<&str> = samples
            .iter()
            .enumerate()
            .map(|(j, s)| s.captions[(k0 + j) % s.captions.len()].as_str())
            .collect();
        let (h, _) = model.embed(&caps)?;
        let z = model.noise(caps.len() as i64, k0 as u64);
        let imgs = tensor_to_images(&model.generate(&z, &h));
        for ((s, img), cap) in samples.iter().zip(&imgs).zip(&caps) {
            let r = check(&img.data, shapes.config.image_size, 1);
            let a = &agreement(&s.objects, &r)[0];
            let w = words.iter().find(|w| cap.contains(*w)).unwrap_or(&"?");
            let o = &s.objects[0];
            for key in [
                format!("word {w}"),
                format!("size {}", SIZES[o.size]),
                format!("pos {}", o.position),
                format!("word {w} size {}", SIZES[o.size]),
            ] {
                let e = by.entry(key).or_default();
                e.0 += usize::from(a.joint());
                e.1 += 1;
            }
        }
    }
    for (k, (ok, all)) in by {
        println!("{k:28} {:5.1}% of {all}", 100.0 * ok as f64 / all as f64);
    }
    Ok(())
}
