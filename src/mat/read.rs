//! Reading Level-5 MAT-files (what `scipy.io.savemat` and MATLAB's `save`, `-v7` and
//! older, write): numeric, logical and char arrays are decoded; every element keeps its
//! bytes, so that a file can be written back with some variables replaced and all the
//! other elements (cells, structs, whatever this reader does not decode) unchanged. A
//! malformed file gives an error or an undecoded variable, never a panic (tested on every
//! prefix and on damaged bytes of a file).
//!
//! Compressed variables (`miCOMPRESSED`, MATLAB's default since v7) are inflated with
//! `flate2`. Big-endian files and v7.3 files (HDF5) are refused with a message that says
//! how to save the file instead.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{check_name, encode_var, MatError, MatValue, MI_MATRIX};

const MI_COMPRESSED: u32 = 15;

/// Why a MAT-file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MatReadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a MAT-file this reader takes.
    #[error("{path} is not a MAT-file neurode can read: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
}

/// One decoded array: dimensions and values in MATLAB's column-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    /// Dimensions (at least two).
    pub dims: Vec<usize>,
    /// The values as `f64` (char arrays: the character codes).
    pub data: Vec<f64>,
    /// The MATLAB class: `double`, `single`, `int64`, `logical`, `char`, ...
    pub class: &'static str,
}

impl MatArray {
    /// The values of a char array as text.
    pub fn text(&self) -> Option<String> {
        (self.class == "char").then(|| {
            let units: Vec<u16> = self.data.iter().map(|&c| c as u16).collect();
            String::from_utf16_lossy(&units)
        })
    }
    /// The number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One variable of a file: its name, its bytes, and its values where decoded.
#[derive(Debug, Clone)]
struct Var {
    name: String,
    raw: std::ops::Range<usize>,
    array: Result<MatArray, String>,
    /// A compressed element (its length is exact, not padded to 8 bytes).
    compressed: bool,
}

/// A MAT-file read into memory.
#[derive(Debug, Clone)]
pub struct MatFile {
    path: PathBuf,
    bytes: Vec<u8>,
    vars: Vec<Var>,
}

/// Reads a MAT-file.
///
/// ```
/// use neurode::mat::{read_mat, write_mat, MatValue};
///
/// let path = std::env::temp_dir().join(format!("neurode-read-doc-{}.mat", std::process::id()));
/// write_mat(&path, &[("w".into(), MatValue::matrix_row_major(2, 2, &[1., 2., 3., 4.]))])?;
/// let m = read_mat(&path)?;
/// let w = m.array("w").unwrap()?;
/// assert_eq!((w.dims.clone(), w.data.clone()), (vec![2, 2], vec![1., 3., 2., 4.]));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_mat(path: &Path) -> Result<MatFile, MatReadError> {
    let bytes = std::fs::read(path).map_err(|source| MatReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: String| MatReadError::Format {
        path: path.to_path_buf(),
        why,
    };
    if bytes.starts_with(b"\x89HDF") || bytes.get(..10) == Some(b"MATLAB 7.3") {
        return Err(bad(
            "it is a v7.3 (HDF5) MAT-file; save it with `save(..., '-v7')` \
                        in MATLAB or with scipy.io.savemat"
                .into(),
        ));
    }
    if bytes.len() < 128 {
        return Err(bad(format!(
            "it has {} bytes, fewer than a MAT-file's 128-byte header",
            bytes.len()
        )));
    }
    match &bytes[126..128] {
        b"IM" => {}
        b"MI" => {
            return Err(bad(
                "it is big-endian; save it on a little-endian machine or with \
                            scipy.io.savemat"
                    .into(),
            ))
        }
        _ => {
            return Err(bad(
                "no Level-5 header (the endian indicator at byte 126 is missing); a \
                 MATLAB v4 file or another format: save it with scipy.io.savemat or \
                 MATLAB's `save -v7`"
                    .into(),
            ))
        }
    }
    let mut vars = Vec::new();
    let mut pos = 128;
    while pos + 8 <= bytes.len() {
        let ty = u32_at(&bytes, pos);
        let n = u32_at(&bytes, pos + 4) as usize;
        let start = pos + 8;
        let Some(end) = start.checked_add(n).filter(|&e| e <= bytes.len()) else {
            return Err(bad(format!(
                "the element at byte {pos} claims {n} bytes but the file ends at {}; the \
                 file is truncated",
                bytes.len()
            )));
        };
        let next = if ty == MI_COMPRESSED {
            end
        } else {
            (start + n.div_ceil(8) * 8).min(bytes.len())
        };
        let var = match ty {
            MI_MATRIX => Some(decode_matrix(&bytes[start..end])),
            MI_COMPRESSED => {
                // The inner element's tag first, then no more than the length it declares
                // (a small file cannot inflate without bound).
                let inflate_err = |e: std::io::Error| {
                    bad(format!(
                        "the compressed element at byte {pos} does not inflate: {e}"
                    ))
                };
                let mut z = flate2::read::ZlibDecoder::new(&bytes[start..end]);
                let mut tag = [0u8; 8];
                z.read_exact(&mut tag).map_err(inflate_err)?;
                let m = u32_at(&tag, 4) as u64;
                let mut inner = Vec::new();
                z.take(m).read_to_end(&mut inner).map_err(inflate_err)?;
                (u32_at(&tag, 0) == MI_MATRIX).then(|| decode_matrix(&inner))
            }
            _ => None,
        };
        // Elements that are not variables are kept too, under no name.
        let (name, array) = var.unwrap_or_else(|| (String::new(), Err("not a variable".into())));
        vars.push(Var {
            name,
            raw: pos..next,
            array,
            compressed: ty == MI_COMPRESSED,
        });
        pos = next;
    }
    Ok(MatFile {
        path: path.to_path_buf(),
        bytes,
        vars,
    })
}

impl MatFile {
    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The names of the variables, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.vars
            .iter()
            .filter(|v| !v.name.is_empty())
            .map(|v| v.name.as_str())
            .collect()
    }
    /// Variable `name`: `None` if the file has none of that name; an error text if it
    /// is of a kind this reader does not decode (a cell, a struct, complex, sparse).
    pub fn array(&self, name: &str) -> Option<Result<&MatArray, String>> {
        self.vars
            .iter()
            .rev()
            .find(|v| v.name == name)
            .map(|v| v.array.as_ref().map_err(Clone::clone))
    }

    /// The bytes of this file with `vars` written in place of the variables of the same
    /// names (added at the end when new); every other variable is kept byte for byte.
    pub fn with_replaced(&self, vars: &[(String, MatValue)]) -> Result<Vec<u8>, MatError> {
        let mut seen = HashSet::new();
        for (name, _) in vars {
            check_name(name)?;
            if !seen.insert(name.as_str()) {
                return Err(MatError::DuplicateName { name: name.clone() });
            }
        }
        let mut out = self.bytes[..128].to_vec();
        // The subsystem-data offset would point into moved bytes: none.
        out[116..124].fill(0);
        for v in &self.vars {
            if !seen.contains(v.name.as_str()) {
                out.extend_from_slice(&self.bytes[v.raw.clone()]);
                if !v.compressed {
                    // A last element cut short of its padding: pad it, so that what
                    // follows starts on 8 bytes.
                    out.resize(128 + (out.len() - 128).div_ceil(8) * 8, 0);
                }
            }
        }
        for (name, value) in vars {
            encode_var(&mut out, name, value)?;
        }
        Ok(out)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One sub-element of a matrix: its type and data, and where the next one starts.
fn sub_element(b: &[u8], pos: usize) -> Option<(u32, &[u8], usize)> {
    let word = |at: usize| b.get(at..at.checked_add(4)?).map(|w| u32_at(w, 0));
    let tag = word(pos)?;
    if tag >> 16 != 0 {
        let n = (tag >> 16) as usize;
        let data = b.get(pos + 4..pos + 4 + n.min(4))?;
        return Some((tag & 0xffff, data, pos + 8));
    }
    let n = word(pos + 4)? as usize;
    let data = b.get(pos + 8..(pos + 8).checked_add(n)?)?;
    Some((tag, data, pos + 8 + n.div_ceil(8) * 8))
}

/// The values of numeric data of type `mi` as `f64`.
fn numbers(mi: u32, d: &[u8]) -> Option<Vec<f64>> {
    macro_rules! each {
        ($t:ty) => {
            d.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect()
        };
    }
    Some(match mi {
        1 => d.iter().map(|&x| x as i8 as f64).collect(),
        2 => d.iter().map(|&x| x as f64).collect(),
        3 => each!(i16),
        4 | 17 => each!(u16),
        5 => each!(i32),
        6 => each!(u32),
        7 => each!(f32),
        9 => each!(f64),
        12 => each!(i64),
        13 => each!(u64),
        16 => String::from_utf8_lossy(d)
            .encode_utf16()
            .map(f64::from)
            .collect(),
        _ => return None,
    })
}

/// Decodes one `miMATRIX` body: its name and its array (or why not).
fn decode_matrix(b: &[u8]) -> (String, Result<MatArray, String>) {
    let Some((_, flags, p)) = sub_element(b, 0).filter(|(t, f, _)| *t == 6 && f.len() >= 4) else {
        return (String::new(), Err("no array flags".into()));
    };
    let flags = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
    let (class, bits) = (flags & 0xff, (flags >> 8) & 0xff);
    let Some((_, dims, p)) = sub_element(b, p) else {
        return (String::new(), Err("no dimensions".into()));
    };
    let dims: Vec<usize> = dims
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).max(0) as usize)
        .collect();
    let Some((_, name, p)) = sub_element(b, p) else {
        return (String::new(), Err("no name".into()));
    };
    let name = String::from_utf8_lossy(name).into_owned();
    let class_name = match class {
        1 => "cell",
        2 => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => "unknown",
    };
    let class_name = if bits & 0x02 != 0 {
        "logical"
    } else {
        class_name
    };
    let array = if !(4..=15).contains(&class) || class == 5 {
        Err(format!(
            "a {class_name} array, not a numeric, logical or char one"
        ))
    } else if bits & 0x08 != 0 {
        Err(format!("a complex {class_name} array"))
    } else {
        match sub_element(b, p).and_then(|(mi, d, _)| numbers(mi, d)) {
            Some(data)
                if dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)) == Some(data.len()) =>
            {
                Ok(MatArray {
                    dims,
                    data,
                    class: class_name,
                })
            }
            Some(data) => Err(format!(
                "dims {dims:?} but {} values: the file is damaged",
                data.len()
            )),
            None => Err("its data element is missing or of an unknown type".into()),
        }
    };
    (name, array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mat::encode_mat;

    fn tmp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("neurode-matread-{tag}-{}.mat", std::process::id()))
    }

    #[test]
    fn what_is_written_reads_back_and_replacing_keeps_the_rest() {
        let vars = vec![
            (
                "a".to_string(),
                MatValue::matrix_row_major(2, 3, &[1., 2., 3., 4., 5., 6.]),
            ),
            ("n".to_string(), MatValue::int_scalar(200)),
            ("t".to_string(), MatValue::text("sigmoid")),
            (
                "l".to_string(),
                MatValue::logical_column(vec![true, false, true]),
            ),
            ("s".to_string(), MatValue::scalar(0.5)),
        ];
        let p = tmp("rw");
        std::fs::write(&p, encode_mat(&vars).unwrap()).unwrap();
        let m = read_mat(&p).unwrap();
        assert_eq!(m.names(), vec!["a", "n", "t", "l", "s"]);
        let a = m.array("a").unwrap().unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(m.array("n").unwrap().unwrap().class, "int64");
        assert_eq!(m.array("n").unwrap().unwrap().data, vec![200.0]);
        assert_eq!(m.array("t").unwrap().unwrap().text().unwrap(), "sigmoid");
        assert_eq!(m.array("l").unwrap().unwrap().class, "logical");
        assert!(m.array("missing").is_none());
        // Replace `s`, add `z`: the others keep their bytes.
        let bytes = m
            .with_replaced(&[
                ("z".to_string(), MatValue::row(vec![7.0, 8.0])),
                ("s".to_string(), MatValue::scalar(2.5)),
            ])
            .unwrap();
        std::fs::write(&p, &bytes).unwrap();
        let m2 = read_mat(&p).unwrap();
        assert_eq!(m2.names(), vec!["a", "n", "t", "l", "z", "s"]);
        assert_eq!(m2.array("s").unwrap().unwrap().data, vec![2.5]);
        assert_eq!(
            m2.array("a").unwrap().unwrap(),
            m.array("a").unwrap().unwrap()
        );
        std::fs::remove_file(&p).ok();
    }

    #[test]
    fn compressed_variables_inflate() {
        use std::io::Write;
        let plain = encode_mat(&[("x".to_string(), MatValue::row(vec![1.5, -2.0, 3.0]))]).unwrap();
        let element = &plain[128..];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(element).unwrap();
        let packed = z.finish().unwrap();
        let mut bytes = plain[..128].to_vec();
        bytes.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
        bytes.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&packed);
        let p = tmp("z");
        std::fs::write(&p, &bytes).unwrap();
        let m = read_mat(&p).unwrap();
        assert_eq!(m.array("x").unwrap().unwrap().data, vec![1.5, -2.0, 3.0]);
        std::fs::remove_file(&p).ok();
    }

    #[test]
    fn bad_files_say_what_they_are() {
        let p = tmp("bad");
        for (bytes, want) in [
            (b"hello".to_vec(), "fewer than"),
            (vec![b' '; 200], "no Level-5 header"),
            (
                b"MATLAB 7.3 MAT-file"
                    .iter()
                    .copied()
                    .chain([0; 200])
                    .collect(),
                "HDF5",
            ),
        ] {
            std::fs::write(&p, &bytes).unwrap();
            let e = read_mat(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let mut cut = encode_mat(&[("x".to_string(), MatValue::row(vec![1.0; 10]))]).unwrap();
        cut.truncate(cut.len() - 16);
        std::fs::write(&p, &cut).unwrap();
        let e = read_mat(&p).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::remove_file(&p).ok();
        let e = read_mat(Path::new("/nonexistent/x.mat"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    /// No panic on any prefix of a file, nor on any one byte damaged, nor on two crafted
    /// cases: a 4-byte matrix body and dimensions whose product overflows.
    #[test]
    fn damaged_files_never_panic() {
        let vars = vec![
            (
                "a".to_string(),
                MatValue::matrix_row_major(2, 3, &[1., 2., 3., 4., 5., 6.]),
            ),
            ("t".to_string(), MatValue::text("x")),
            ("n".to_string(), MatValue::int_scalar(3)),
        ];
        let good = encode_mat(&vars).unwrap();
        let p = tmp("damaged");
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|k| good[..k].to_vec()).collect();
        for k in 128..good.len() {
            for x in [0x00u8, 0xff, 0x7f, 0x80] {
                let mut d = good.clone();
                d[k] = x;
                cases.push(d);
            }
        }
        let mut four = good[..128].to_vec();
        four.extend_from_slice(&[14, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        cases.push(four);
        let mut huge = good[..128].to_vec();
        let body: Vec<u32> = vec![
            6,
            8,
            6,
            0, // flags
            5,
            12,
            0x4000_0000,
            0x4000_0000,
            0x4000_0000,
            0, // dims: 2^90 values
            0x0001_0001,
            0x78, // name "x"
            9,
            0, // no data
        ];
        huge.extend_from_slice(&14u32.to_le_bytes());
        huge.extend_from_slice(&((body.len() * 4) as u32).to_le_bytes());
        huge.extend(body.iter().flat_map(|w| w.to_le_bytes()));
        cases.push(huge);
        for bytes in &cases {
            std::fs::write(&p, bytes).unwrap();
            if let Ok(m) = read_mat(&p) {
                for name in m.names() {
                    let _ = m.array(name);
                }
                let _ = m.with_replaced(&[("z".to_string(), MatValue::scalar(1.0))]);
            }
        }
        let m = read_mat(&p).unwrap();
        assert!(m.array("x").unwrap().is_err());
        std::fs::remove_file(&p).ok();
    }
}
