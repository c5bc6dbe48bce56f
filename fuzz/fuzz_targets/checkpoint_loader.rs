//! The safetensors checkpoint loader (header, checksum, dtypes), the header
//! reader used on resume, and the step after them: building the generator
//! of the family the checkpoint names from its saved config and weights.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| t2i_fuzz::scratch_dir("checkpoint"))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("last.safetensors");
    std::fs::write(&path, data).expect("scratch file");
    let _ = t2i::checkpoint::read_header(&path);
    if let Ok(ck) = t2i::checkpoint::from_bytes(data, &path) {
        if let Ok(g) = t2i::family::load_generator(&ck, tch::Device::Cpu) {
            let _ = g.unknown_words("a red circle");
        }
    }
});
