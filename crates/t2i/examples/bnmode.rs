use t2i::data::checker::{agreement, check};
use t2i::data::shapes::{Shapes, ShapesConfig, Split};
use t2i::imageio::tensor_to_images;
use t2i::train::gan_int_cls::GanIntClsModel;
use tch::Device;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let m = GanIntClsModel::load(std::path::Path::new(&p), Device::Cpu).unwrap();
    let shapes = Shapes::new(ShapesConfig { image_size: 32, ..Default::default() }).unwrap();
    for train in [false, true] {
        let (mut col, mut joint, mut n) = (0, 0, 0);
        for k in (0..500).step_by(100) {
            let s: Vec<_> = (k..k + 100).map(|i| shapes.sample(Split::Test, i)).collect();
            let caps: Vec<&str> = s.iter().map(|x| x.captions[0].as_str()).collect();
            let (h, _) = m.embed(&caps).unwrap();
            let z = m.noise(100, k as u64);
            let x = tch::no_grad(|| m.g.forward_t(&z, &h, train));
            for (smp, img) in s.iter().zip(tensor_to_images(&x)) {
                let a = agreement(&smp.objects, &check(&img.data, 32, 1))[0];
                n += 1; col += a.colour as i32; joint += a.joint() as i32;
            }
        }
        println!("train-mode BN {train}: colour {:.3} joint {:.3}", col as f64 / n as f64, joint as f64 / n as f64);
    }
}
