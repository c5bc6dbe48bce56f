//! Helpers shared by the fuzz targets: a folder packed into one byte string,
//! so that libFuzzer can mutate a whole data-set layout (file names and
//! contents) as one input.

use std::path::{Path, PathBuf};

/// Separates the files of a packed folder: each part is a relative path, a
/// newline, then the file's bytes.
pub const SEPARATOR: &[u8] = b"\n@@FILE ";

/// The files of a packed folder. Paths that would leave the folder (`..`,
/// absolute, empty components) and names with characters other than
/// `[A-Za-z0-9_.-]` are dropped, as are files past the 64th.
pub fn unpack(data: &[u8]) -> Vec<(PathBuf, &[u8])> {
    let mut out = Vec::new();
    for part in split(data, SEPARATOR).into_iter().skip(1).take(64) {
        let Some(nl) = part.iter().position(|&b| b == b'\n') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&part[..nl]) else {
            continue;
        };
        let ok = !name.is_empty()
            && name.len() <= 120
            && name.split('/').all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            });
        if ok {
            out.push((PathBuf::from(name), &part[nl + 1..]));
        }
    }
    out
}

/// Packs files (relative path, bytes) into one input; the first byte picks
/// the reader.
pub fn pack(selector: u8, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![selector];
    for (name, bytes) in files {
        out.extend_from_slice(SEPARATOR);
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(bytes);
    }
    out
}

/// Writes the packed files under `root` (which must be empty). A path that
/// collides with an earlier file or folder is skipped.
pub fn materialise(root: &Path, files: &[(PathBuf, &[u8])]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                continue;
            }
        }
        let _ = std::fs::write(&path, bytes);
    }
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= data.len() {
        if &data[i..i + sep.len()] == sep {
            parts.push(&data[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}

/// A fresh empty folder for one input, under /dev/shm when it exists (the
/// readers then touch no disk).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("t2i-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}
