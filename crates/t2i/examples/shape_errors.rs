//! Diagnostic: held-in shape accuracy of a GAN-INT-CLS checkpoint by the
//! shape word of the caption and by size. `cargo run --release --example
//! shape_errors -- CHECKPOINT [N] [batch]` ("batch": G's batch norm uses
//! each batch of 100 samples' own statistics, as in training, instead of the
//! running averages; "standing": the running averages are first re-estimated
//! from 50 batches of training captions and noise)
use std::collections::BTreeMap;
use t2i::data::checker::{agreement, check};
use t2i::data::shapes::{Shapes, ShapesConfig, Split, SIZES};
use t2i::imageio::tensor_to_images;
use t2i::train::gan_int_cls::GanIntClsModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let ck = t2i::checkpoint::load(std::path::Path::new(&args[1]))?;
    let n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let mode = args.get(3).map(String::as_str).unwrap_or("");
    let batch_stats = mode == "batch";
    let model = GanIntClsModel::from_checkpoint(&ck, tch::Device::Cpu)?;
    let data: ShapesConfig = toml::from_str(ck.meta("data")?)?;
    let shapes = Shapes::new(data)?;
    if mode == "standing" {
        for k in 0..50 {
            let caps: Vec<String> = (0..32)
                .map(|j| shapes.sample(Split::Train, k * 32 + j).captions[0].clone())
                .collect();
            let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
            let (h, _) = model.embed(&caps)?;
            let z = model.noise(32, 7000 + k as u64);
            let _ = tch::no_grad(|| model.g.forward_t(&z, &h, true));
        }
    }
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
        let x = match batch_stats {
            true => tch::no_grad(|| model.g.forward_t(&z, &h, true)),
            false => model.generate(&z, &h),
        };
        let imgs = tensor_to_images(&x);
        for ((s, img), cap) in samples.iter().zip(&imgs).zip(&caps) {
            let r = check(&img.data, shapes.config.image_size, 1);
            let a = &agreement(&s.objects, &r)[0];
            let w = words.iter().find(|w| cap.contains(*w)).unwrap_or(&"?");
            let o = &s.objects[0];
            for key in [
                "all".to_string(),
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
