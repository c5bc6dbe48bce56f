use std::time::Instant;
use tch::{nn, nn::Module, Device, Kind, Tensor};
fn bench(name: &str, f: &dyn Fn()) { for _ in 0..3 { f(); } let t = Instant::now(); for _ in 0..20 { f(); } println!("{name}: {:?}", t.elapsed() / 20); }
fn main() {
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let c0 = nn::conv2d(&p / "c0", 3, 32, 4, nn::ConvConfig { stride: 2, padding: 1, bias: false, ..Default::default() });
    let c1 = nn::conv2d(&p / "c1", 32, 64, 4, nn::ConvConfig { stride: 2, padding: 1, bias: false, ..Default::default() });
    let c2 = nn::conv2d(&p / "c2", 64, 128, 4, nn::ConvConfig { stride: 2, padding: 1, bias: false, ..Default::default() });
    let x0 = Tensor::randn([64, 3, 32, 32], (Kind::Float, Device::Cpu));
    let x1 = Tensor::randn([64, 32, 16, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let x2 = Tensor::randn([64, 64, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    bench("c0 fwd", &|| { let _ = tch::no_grad(|| c0.forward(&x0)); });
    bench("c0 fwd+bwd", &|| { c0.forward(&x0).sum(Kind::Float).backward(); });
    bench("c1 fwd", &|| { let _ = tch::no_grad(|| c1.forward(&x1)); });
    bench("c1 fwd+bwd", &|| { c1.forward(&x1).sum(Kind::Float).backward(); });
    bench("c2 fwd", &|| { let _ = tch::no_grad(|| c2.forward(&x2)); });
    bench("c2 fwd+bwd", &|| { c2.forward(&x2).sum(Kind::Float).backward(); });
    let bn = nn::batch_norm2d(&p / "bn", 64, Default::default());
    let y = Tensor::randn([64, 64, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    bench("bn fwd+bwd", &|| { y.apply_t(&bn, true).sum(Kind::Float).backward(); });
}
