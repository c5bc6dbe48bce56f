//! Official `.pth` files (zip and legacy formats) read without Python: every
//! tensor equals the safetensors copy of the same state_dict.

mod common;

use common::*;

#[test]
fn pth_zip_and_legacy_match_safetensors() {
    let Some(root) = reference_dir() else { return };
    let mut checked = 0;
    for net in [
        "AttnGAN/RNN_ENCODER_small",
        "AttnGAN/G_NET_small",
        "StackGAN-Pytorch/STAGE1_G_small",
    ] {
        let dir = root.join(net);
        let want = read(&dir.join("weights.safetensors"));
        for file in ["weights.pth", "weights_legacy.pth"] {
            let p = dir.join(file);
            if !p.exists() {
                continue;
            }
            let got = t2i::pth::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(got.len(), want.len(), "{net}/{file}: tensor count");
            for (k, w) in &want {
                let g = got
                    .get(k)
                    .unwrap_or_else(|| panic!("{net}/{file} lacks {k}"));
                assert_eq!(g.kind(), w.kind(), "{k}");
                assert!(g.equal(w), "{net}/{file}: {k} differs");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    // a file that is not a checkpoint is a clear error
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("x.pth");
    std::fs::write(&bad, b"hello").unwrap();
    let e = t2i::pth::load(&bad).unwrap_err().to_string();
    assert!(e.contains("neither a zip nor a legacy"), "{e}");
}
