//! Reading the published layouts: whitespace tables, pickled name lists,
//! and the loaders' error type.

use std::path::{Path, PathBuf};

/// Why a data set cannot be read. One line each, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Missing(String),
    #[error("{path}: {1}", path = .0.display())]
    Io(PathBuf, std::io::Error),
    #[error("{path}: {1}", path = .0.display())]
    Parse(PathBuf, String),
    #[error("empty split ({0})")]
    EmptySplit(String),
    #[error("{path}: {1}", path = .0.display())]
    Image(PathBuf, String),
}

/// Rows of a whitespace-separated table with at least `min_cols` columns
/// (blank lines skipped). The last column may itself hold spaces: callers
/// join `row[k..]`.
pub fn read_table(path: &Path, min_cols: usize) -> Result<Vec<Vec<String>>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::Parse(path.to_path_buf(), "not UTF-8 text".into()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<String> = line.split_whitespace().map(String::from).collect();
        if cols.is_empty() {
            continue;
        }
        if cols.len() < min_cols {
            return Err(DataError::Parse(
                path.to_path_buf(),
                format!(
                    "line {}: {} columns, expected {min_cols}",
                    n + 1,
                    cols.len()
                ),
            ));
        }
        rows.push(cols);
    }
    Ok(rows)
}

/// A pickled list of names (`filenames.pickle` of StackGAN / AttnGAN),
/// Python 2 byte strings or Python 3 strings.
pub fn read_pickled_names(path: &Path) -> Result<Vec<String>, DataError> {
    use serde_pickle::Value;
    let bytes = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    let opts = serde_pickle::DeOptions::new().decode_strings();
    let v = serde_pickle::value_from_slice(&bytes, opts)
        .map_err(|e| DataError::Parse(path.to_path_buf(), format!("not a readable pickle: {e}")))?;
    let items = match v {
        Value::List(l) | Value::Tuple(l) => l,
        _ => {
            return Err(DataError::Parse(
                path.to_path_buf(),
                "expected a pickled list of names".into(),
            ))
        }
    };
    items
        .into_iter()
        .map(|x| match x {
            Value::String(s) => Ok(s),
            Value::Bytes(b) => String::from_utf8(b)
                .map_err(|_| DataError::Parse(path.to_path_buf(), "a name is not UTF-8".into())),
            _ => Err(DataError::Parse(
                path.to_path_buf(),
                "expected a pickled list of names".into(),
            )),
        })
        .collect()
}
