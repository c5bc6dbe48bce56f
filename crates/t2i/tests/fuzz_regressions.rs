//! Inputs that crashed a fuzz target (scripts/fuzz.sh, fuzz/fuzz_targets/)
//! before the fix: each must now give an error, never a panic.

use std::path::Path;

#[test]
fn pth_pickle_line_without_newline() {
    // GLOBAL opcode ('c') whose module line runs to the end of the file
    let data = b"\x80\x2b\x80cccc";
    let e = t2i::pth::load_bytes(data, Path::new("x.pth")).unwrap_err();
    assert!(e.to_string().contains("truncated pickle"), "{e}");
}

#[test]
fn pth_pickle_nested_too_deep() {
    // 100,000 lists appended into each other: dropping or walking such a
    // value overflowed the stack (SIGSEGV in pth_reader)
    let n = 100_000;
    let mut data = b"\x80\x02".to_vec();
    data.extend(std::iter::repeat_n(b']', n));
    data.extend(std::iter::repeat_n(b'a', n - 1));
    data.push(b'.');
    let e = t2i::pth::load_bytes(&data, Path::new("x.pth")).unwrap_err();
    assert!(e.to_string().contains("deeper than"), "{e}");
}

#[test]
fn pth_pickle_that_doubles_through_its_memo() {
    // a tuple of two copies of the memoised value, memoised again, 40 times:
    // 2^40 values if copied without a limit
    let mut data = b"\x80\x02]q\x00".to_vec();
    for _ in 0..40 {
        data.extend_from_slice(b"0h\x00h\x00\x86q\x00");
    }
    data.push(b'.');
    let e = t2i::pth::load_bytes(&data, Path::new("x.pth")).unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
}

#[test]
fn jpeg_header_declaring_a_huge_image_is_refused_before_decoding() {
    // a 12x10 JPEG whose frame header claims 15114 x 9740 pixels: decoding
    // it took 1.2 GB in dataset_index
    let img = image::RgbImage::from_pixel(12, 10, image::Rgb([200, 30, 30]));
    let mut jpg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
    let mut jpg = jpg.into_inner();
    let sof = jpg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpg[sof + 5..sof + 9].copy_from_slice(&[0x26, 0x0c, 0x3b, 0x0a]);
    let e = t2i::imageio::decode_image(&jpg).unwrap_err();
    assert!(e.contains("too large") && e.contains("8192"), "{e}");
    let e = t2i::imageio::Rgb::decode(&jpg, 32).unwrap_err().to_string();
    assert!(
        e.contains("cannot read the image") && e.contains("too large"),
        "{e}"
    );
}

#[test]
fn pth_legacy_storage_size_that_overflows() {
    // a legacy file whose storage claims a huge element count: the byte count
    // wrapped and the slice bounds crossed (found by pth_reader)
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/pth-storage-size-overflow.pth");
    let e = t2i::pth::load(&path).unwrap_err();
    assert!(e.to_string().contains("truncated storage data"), "{e}");
}
