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
