//! The data-set readers on a fuzzed folder: the first byte picks CUB,
//! Oxford-102, COCO, MHP or Multi-Modal-CelebA-HQ and the split, the rest is a
//! packed folder (see `t2i_fuzz::unpack`) written to a scratch folder; a
//! split that loads is then prepared (its images decoded and resized).
#![no_main]
use libfuzzer_sys::fuzz_target;
use t2i::data::cub::{CaptionLayout, Cub, CubSplit};
use t2i::data::prepare::prepare;
use t2i::data::{celeba, coco, mhp, oxford};

fuzz_target!(|data: &[u8]| {
    let Some(&pick) = data.first() else {
        return;
    };
    let files = t2i_fuzz::unpack(data);
    let root = t2i_fuzz::scratch_dir("dataset");
    t2i_fuzz::materialise(&root, &files);
    let split = if pick & 0x80 == 0 { "train" } else { "test" };
    match pick & 0x7f {
        0 => {
            let s = if split == "train" {
                CubSplit::Train
            } else {
                CubSplit::Test
            };
            if let Ok(cub) = Cub::open(&root, s, CaptionLayout::Auto) {
                let _ = prepare(&cub, 8, None, false);
            }
        }
        k => {
            let set = match k % 4 {
                1 => oxford::open(&root, split),
                2 => coco::open(&root, split),
                3 => mhp::open(&root, split),
                _ => celeba::open(&root, split),
            };
            if let Ok(set) = set {
                let _ = prepare(&set, 8, None, false);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
});
