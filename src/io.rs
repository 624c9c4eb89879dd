//! Files Python users can read: safetensors (row-major arrays, `f32`/`f64`), written
//! crash-safely (to a temporary file, then renamed over the target); NumPy `.npz` archives
//! (`np.savez`, `np.savez_compressed`) are read too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use neurode_solvers::Real;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

/// Errors of reading and writing run files.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A file system error.
    #[error("{action} {path}: {source}")]
    Fs {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An output path that cannot be written, found before any work is done.
    #[error("cannot write {path}: {reason}; choose another path")]
    Unwritable {
        /// The output path.
        path: PathBuf,
        /// Why not (its directory does not exist, is a file, refuses writes).
        reason: String,
    },
    /// The file is not what neurode wrote.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl IoError {
    pub(crate) fn fs(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        IoError::Fs {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        IoError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The directory a relative path's parent means (`""` is the current directory).
fn dir_or_here(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

/// Whether a file can be created in the existing directory `dir`: creates and removes a
/// probe file there (permissions alone do not say, e.g. for root or read-only mounts).
fn probe_dir(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".neurode-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{} refuses new files ({e})", dir.display())),
    }
}

/// Checks, before any work, that the file `path` can be written: its directory exists,
/// is a directory and takes new files, and `path` is not a directory. Changes nothing.
pub fn check_file_writable(path: &Path) -> Result<(), IoError> {
    let unwritable = |reason: String| IoError::Unwritable {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        return Err(unwritable("it is a directory".into()));
    }
    let parent = dir_or_here(path.parent().unwrap_or(Path::new("")));
    if !parent.exists() {
        return Err(unwritable(format!(
            "its directory {} does not exist",
            parent.display()
        )));
    }
    if !parent.is_dir() {
        return Err(unwritable(format!(
            "{} is not a directory",
            parent.display()
        )));
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(|_| ())
            .map_err(|e| unwritable(format!("it cannot be opened for writing ({e})")));
    }
    probe_dir(parent).map_err(unwritable)
}

/// Checks, before any work, that the directory `dir` exists and takes new files, or can
/// be created: its nearest existing ancestor is a directory that takes new files. Changes
/// nothing.
pub fn check_dir_writable(dir: &Path) -> Result<(), IoError> {
    let unwritable = |reason: String| IoError::Unwritable {
        path: dir.to_path_buf(),
        reason,
    };
    let Some(existing) = dir.ancestors().map(dir_or_here).find(|a| a.exists()) else {
        return Ok(());
    };
    if !existing.is_dir() {
        return Err(unwritable(if existing == dir {
            "it is a file, not a directory".into()
        } else {
            format!("{} is a file, not a directory", existing.display())
        }));
    }
    probe_dir(existing).map_err(unwritable)
}

/// String metadata of a safetensors file.
pub type Metadata = HashMap<String, String>;

/// A named row-major array.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArray<T> {
    /// Name in the file.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<T>,
}

impl<T: Copy> NamedArray<T> {
    /// A row-major array from a column-major `rows x cols` matrix.
    pub fn from_col_major(name: &str, rows: usize, cols: usize, a: &[T]) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(a[i + j * rows]);
            }
        }
        NamedArray {
            name: name.into(),
            shape: vec![rows, cols],
            data,
        }
    }
    /// The column-major form of a 2-D array.
    pub fn to_col_major(&self) -> Vec<T> {
        let (rows, cols) = (self.shape[0], self.shape.get(1).copied().unwrap_or(1));
        let mut out = self.data.clone();
        for i in 0..rows {
            for j in 0..cols {
                out[i + j * rows] = self.data[i * cols + j];
            }
        }
        out
    }
}

fn dtype_of<T: Real>() -> Dtype {
    if std::mem::size_of::<T>() == 8 {
        Dtype::F64
    } else {
        Dtype::F32
    }
}

/// Writes `arrays` and string `metadata` to `path` as safetensors, crash-safely.
pub fn write_safetensors<T: Real>(
    path: &Path,
    arrays: &[NamedArray<T>],
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    let bytes: Vec<Vec<u8>> = arrays
        .iter()
        .map(|a| {
            let mut b = Vec::with_capacity(a.data.len() * std::mem::size_of::<T>());
            for &v in &a.data {
                if dtype_of::<T>() == Dtype::F64 {
                    b.extend_from_slice(&v.as_f64().to_le_bytes());
                } else {
                    b.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
                }
            }
            b
        })
        .collect();
    let views = arrays
        .iter()
        .zip(&bytes)
        .map(|(a, b)| {
            TensorView::new(dtype_of::<T>(), a.shape.clone(), b)
                .map(|v| (a.name.clone(), v))
                .map_err(|e| IoError::format(path, format!("array {}: {e}", a.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, Some(metadata))
        .map_err(|e| IoError::format(path, e.to_string()))?;
    write_atomic(path, &data)
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename, so
/// that a crash leaves either the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), IoError> {
    let tmp = path.with_extension("tmp");
    let written = (|| {
        std::fs::write(&tmp, data).map_err(|e| IoError::fs("cannot write", &tmp, e))?;
        let f = std::fs::File::open(&tmp).map_err(|e| IoError::fs("cannot open", &tmp, e))?;
        f.sync_all()
            .map_err(|e| IoError::fs("cannot sync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| IoError::fs("cannot rename into place", path, e))
    })();
    // A failed write leaves neither the file nor its temporary copy.
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads every array (converted to `T`) and the metadata of a safetensors file.
pub fn read_safetensors<T: Real>(path: &Path) -> Result<(Vec<NamedArray<T>>, Metadata), IoError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::fs("cannot read", path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| IoError::format(path, format!("not a safetensors file ({e})")))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| IoError::format(path, e.to_string()))?;
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let t = st
            .tensor(name)
            .map_err(|e| IoError::format(path, e.to_string()))?;
        let data: Vec<T> = match t.dtype() {
            Dtype::F64 => t
                .data()
                .chunks_exact(8)
                .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|c| T::from_f64(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                .collect(),
            d => {
                return Err(IoError::format(
                    path,
                    format!("array {name} has dtype {d:?}; neurode reads F32 and F64"),
                ))
            }
        };
        out.push(NamedArray {
            name: name.to_string(),
            shape: t.shape().to_vec(),
            data,
        });
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Reads every array of a NumPy `.npz` archive (`np.savez` or `np.savez_compressed`;
/// `float64` or `float32`, C or Fortran order), sorted by name, row-major. A 0-d array
/// (`np.savez(..., g=0.8)`) comes back with shape `[1]`.
pub fn read_npz<T: Real>(path: &Path) -> Result<Vec<NamedArray<T>>, IoError> {
    use ndarray::ArrayD;
    use ndarray_npy::{NpzReader, ReadNpyError, ReadNpzError};
    let file = std::fs::File::open(path).map_err(|e| IoError::fs("open", path, e))?;
    let npz_err = |e: ReadNpzError| IoError::format(path, format!("not a readable .npz: {e}"));
    let mut npz = NpzReader::new(file).map_err(npz_err)?;
    let mut names = npz.names().map_err(npz_err)?;
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let (shape, data): (Vec<usize>, Vec<T>) = match npz.by_name::<_, ndarray::IxDyn>(&name) {
            Ok(a) => {
                let a: ArrayD<f64> = a;
                (
                    a.shape().to_vec(),
                    a.iter().map(|&v| T::from_f64(v)).collect(),
                )
            }
            Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(_))) => {
                let a: ArrayD<f32> = npz.by_name(&name).map_err(|e| {
                    IoError::format(
                        path,
                        format!("array {name}: {e}; neurode reads float64 and float32 arrays"),
                    )
                })?;
                (
                    a.shape().to_vec(),
                    a.iter().map(|&v| T::from_f64(v as f64)).collect(),
                )
            }
            Err(e) => return Err(IoError::format(path, format!("array {name}: {e}"))),
        };
        out.push(NamedArray {
            name,
            shape: if shape.is_empty() { vec![1] } else { shape },
            data,
        });
    }
    Ok(out)
}
