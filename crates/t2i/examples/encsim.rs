use t2i::text::{GruEncoder, TextEncoder};
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let e = GruEncoder::load(std::path::Path::new(&p), tch::Device::Cpu).unwrap();
    let cols = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"];
    let caps: Vec<String> = cols.iter().map(|c| format!("a small {c} circle in the centre")).collect();
    let r: Vec<&str> = caps.iter().map(|s| s.as_str()).collect();
    let s = tch::no_grad(|| e.encode(&r).unwrap().0.sentence);
    let s = &s / s.norm_scalaropt_dim(2, [1], true);
    let sim = s.matmul(&s.tr());
    sim.print();
}
