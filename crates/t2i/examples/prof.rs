use std::time::Instant;
use t2i::models::gan_int_cls::*;
use tch::{nn, Device, Kind, Tensor};
fn main() {
    let threads: i32 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    let bs: i64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    tch::set_num_threads(threads);
    let c = GanIntClsConfig::tiny();
    let vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(vs.root(), &c);
    let dvs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(dvs.root(), &c);
    let z = Tensor::randn([bs, 100], (Kind::Float, Device::Cpu));
    let h = Tensor::randn([bs, 128], (Kind::Float, Device::Cpu));
    for _ in 0..3 { let _ = g.forward_t(&z, &h, true); }
    let t = Instant::now();
    for _ in 0..10 { let _ = tch::no_grad(|| g.forward_t(&z, &h, true)); }
    println!("threads {threads} bs {bs} G fwd {:?}", t.elapsed() / 10);
    let t = Instant::now();
    for _ in 0..10 { let x = g.forward_t(&z, &h, true); x.mean(Kind::Float).backward(); }
    println!("G fwd+bwd {:?}", t.elapsed() / 10);
    let x = Tensor::randn([bs, 3, 32, 32], (Kind::Float, Device::Cpu));
    let t = Instant::now();
    for _ in 0..10 { let s = d.forward_t(&x, &h, true); s.mean(Kind::Float).backward(); }
    println!("D fwd+bwd {:?}", t.elapsed() / 10);
    let t = Instant::now();
    for _ in 0..10 { let s = tch::no_grad(|| d.forward_t(&x, &h, true)); let _ = s.sum(Kind::Float); }
    println!("D fwd {:?}", t.elapsed() / 10);
}
