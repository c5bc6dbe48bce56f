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
