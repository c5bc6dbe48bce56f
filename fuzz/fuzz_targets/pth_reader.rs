//! The PyTorch `.pth` reader (zip and legacy `torch.save` formats, its
//! pickle machine and storage views) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = t2i::pth::load_bytes(data, std::path::Path::new("fuzz.pth"));
});
