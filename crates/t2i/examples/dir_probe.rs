use t2i::data::checker::check;
use t2i::data::shapes::{COLOURS, SHAPES, SIZES};
use t2i::text::TextEncoder;
use t2i::train::style_t2i::StyleT2IModel;
use t2i::train::stylegan2::{sample_noise, sample_z};
use tch::{Device, Kind, Tensor};

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let scale: f64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1.0);
    let ck = t2i::checkpoint::load(std::path::Path::new(&path)).unwrap();
    let m = StyleT2IModel::from_checkpoint(&ck, Device::Cpu).unwrap();
    let size = m.g.config.size as u32;
    let n = 80;
    tch::no_grad(|| {
        let phrases: Vec<&str> = m.attributes.iter().map(|a| a.phrase.as_str()).collect();
        let ta = m.text.encode(&phrases).unwrap().0.sentence;
        for (k, a) in m.attributes.iter().enumerate() {
            let (mut before, mut after, mut colour_moved, mut found, mut dn) = (0, 0, 0, 0, 0.0);
            for i in 0..n {
                let z = sample_z(1000, i, m.g.config.style_dim, Device::Cpu);
                let w = m.g.mapping(&z);
                let w = &m.w_mean + (w - &m.w_mean) * m.truncation;
                let d = m.a2d.forward(&ta.narrow(0, k as i64, 1), &w) * scale;
                dn += d.norm().double_value(&[]);
                let base = m.g.broadcast(&w);
                let noise = sample_noise(&m.g, 1000, i);
                let i0 = m.g.synthesis(&base, &noise);
                let i1 = m.g.synthesis(&(&base + &d), &noise);
                let r0 = check(&t2i::imageio::tensor_to_images(&i0)[0].data, size, 3);
                let r1 = check(&t2i::imageio::tensor_to_images(&i1)[0].data, size, 3);
                let (Some(o0), Some(o1)) = (r0.objects.first(), r1.objects.first()) else {
                    continue;
                };
                found += 1;
                let has = |o: &t2i::data::checker::Detected| {
                    if let Some(c) = COLOURS.iter().position(|c| c.0 == a.word) {
                        o.colour == c
                    } else if let Some(s) = SHAPES.iter().position(|s| *s == a.word) {
                        o.shape == s
                    } else {
                        o.size == SIZES.iter().position(|s| *s == a.word).unwrap()
                    }
                };
                before += has(o0) as usize;
                after += has(o1) as usize;
                let kind = if COLOURS.iter().any(|c| c.0 == a.word) {
                    0
                } else if SHAPES.contains(&a.word.as_str()) {
                    1
                } else {
                    2
                };
                let other = match kind {
                    0 => o0.shape != o1.shape || o0.size != o1.size,
                    1 => o0.colour != o1.colour || o0.size != o1.size,
                    _ => o0.colour != o1.colour || o0.shape != o1.shape,
                };
                colour_moved += other as usize;
            }
            println!("{:<9} |d| {:6.2}  holds before {:3}/{found}  after {:3}/{found}  others changed {:3}", a.word, dn / n as f64, before, after, colour_moved);
        }
        // T2D norms
        let caps = [
            "a large red circle at the left",
            "a small blue triangle at the top",
            "a green square",
        ];
        let (f, _) = m.text.encode(&caps).unwrap();
        for (j, c) in caps.iter().enumerate() {
            let z = sample_z(1000, j, m.g.config.style_dim, Device::Cpu);
            let w = m.g.mapping(&z);
            let w = &m.w_mean + (w - &m.w_mean) * m.truncation;
            let s = m.t2d.forward(&f.sentence.narrow(0, j as i64, 1), &w);
            println!(
                "|s| {c}: {:.2}  |w| {:.2}",
                s.norm().double_value(&[]),
                w.norm().double_value(&[])
            );
        }
        let _ = Kind::Float;
    });
}
