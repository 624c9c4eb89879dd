//! MATLAB Level-5 MAT-files (what `save -v6` writes and `scipy.io.loadmat` reads): real
//! double and int64 arrays, char rows and logical arrays, uncompressed and little-endian.
//! [`read_mat`] reads them back (and what SciPy or MATLAB wrote, compressed or not).
//!
//! Hand-written rather than a crate: on crates.io `mat5` (0.1.0) writes numeric arrays but
//! no char arrays, and `matrw` (0.1.4, early) pulls in `binrw`, `chrono`, `flate2`,
//! `indexmap` and `paste` for what is here about two hundred lines of byte layout. The
//! layout follows MathWorks' "MAT-File Format" (Level 5): a 128-byte header, then one
//! `miMATRIX` element per variable, every element padded to 8 bytes. The files are checked
//! against SciPy by `scripts/check_mat.py` (see `tests/mat.rs`).

use std::collections::HashSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::io::{write_atomic, IoError};

mod read;
pub use read::{read_mat, MatArray, MatFile, MatReadError};

// Data types (`mi*`) and array classes (`mx*`) of the Level-5 format.
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_MATRIX: u32 = 14;
const MI_UTF16: u32 = 17;
const MX_CHAR_CLASS: u32 = 4;
const MX_DOUBLE_CLASS: u32 = 6;
const MX_UINT8_CLASS: u32 = 9;
const MX_INT64_CLASS: u32 = 14;
/// The logical bit of the array-flags byte.
const FLAG_LOGICAL: u32 = 0x02;
/// MATLAB's `namelengthmax`.
const MAX_NAME_LEN: usize = 63;

/// One MATLAB variable. Array data is in MATLAB's column-major order (the first index
/// varies fastest); `dims` has at least two entries (`[rows, cols, ...]`).
#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    /// A real `double` array.
    Double {
        /// Dimensions, at least two.
        dims: Vec<usize>,
        /// Values, column-major; as many as the product of `dims`.
        data: Vec<f64>,
    },
    /// A real `int64` array (what `scipy.io.savemat` writes for a Python `int`).
    Int64 {
        /// Dimensions, at least two.
        dims: Vec<usize>,
        /// Values, column-major; as many as the product of `dims`.
        data: Vec<i64>,
    },
    /// A `1 x n` char row (UTF-16 code units; characters outside the Basic Multilingual
    /// Plane are refused, as SciPy cannot read them back).
    Char(String),
    /// A `logical` array.
    Logical {
        /// Dimensions, at least two.
        dims: Vec<usize>,
        /// Values, column-major; as many as the product of `dims`.
        data: Vec<bool>,
    },
}

impl MatValue {
    /// A `1 x 1` int64 (a count: `N`, `som_N`).
    pub fn int_scalar(x: i64) -> Self {
        MatValue::Int64 {
            dims: vec![1, 1],
            data: vec![x],
        }
    }

    /// A `1 x 1` double.
    pub fn scalar(x: f64) -> Self {
        MatValue::Double {
            dims: vec![1, 1],
            data: vec![x],
        }
    }

    /// A `1 x n` double row vector.
    pub fn row(data: Vec<f64>) -> Self {
        MatValue::Double {
            dims: vec![1, data.len()],
            data,
        }
    }

    /// An `n x 1` double column vector.
    pub fn column(data: Vec<f64>) -> Self {
        MatValue::Double {
            dims: vec![data.len(), 1],
            data,
        }
    }

    /// A `rows x cols` double matrix from column-major `data` (`a[i + j * rows]` is row
    /// `i`, column `j`). A length other than `rows * cols` is reported by [`encode_mat`].
    pub fn matrix_col_major(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        MatValue::Double {
            dims: vec![rows, cols],
            data,
        }
    }

    /// A `rows x cols` double matrix from row-major `data` (`a[i * cols + j]` is row `i`,
    /// column `j`), transposed here to MATLAB's column-major order. A length other than
    /// `rows * cols` is kept as given and reported by [`encode_mat`].
    pub fn matrix_row_major(rows: usize, cols: usize, data: &[f64]) -> Self {
        let data = if rows.checked_mul(cols) == Some(data.len()) {
            let mut out = Vec::with_capacity(data.len());
            for j in 0..cols {
                for i in 0..rows {
                    out.push(data[i * cols + j]);
                }
            }
            out
        } else {
            data.to_vec()
        };
        MatValue::Double {
            dims: vec![rows, cols],
            data,
        }
    }

    /// An `n x 1` logical column vector.
    pub fn logical_column(data: Vec<bool>) -> Self {
        MatValue::Logical {
            dims: vec![data.len(), 1],
            data,
        }
    }

    /// A `1 x n` char row holding `s`.
    pub fn text(s: &str) -> Self {
        MatValue::Char(s.to_owned())
    }
}

/// Why a MAT-file could not be encoded or written.
#[derive(Debug, thiserror::Error)]
pub enum MatError {
    /// The name is not a valid MATLAB variable name.
    #[error(
        "MAT-file variable {name:?}: {reason}; a MATLAB name starts with a letter, then \
         letters, digits or underscores, at most 63 in all"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two variables share a name.
    #[error("MAT-file variable {name:?} is given twice; give each variable its own name")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// Fewer than two dimensions.
    #[error(
        "MAT-file variable {name:?} has dims {dims:?}; MATLAB arrays have at least two \
         dimensions: use [1, n] for a row or [n, 1] for a column"
    )]
    TooFewDims {
        /// The variable.
        name: String,
        /// Its dimensions.
        dims: Vec<usize>,
    },
    /// The product of the dimensions is not the number of values.
    #[error(
        "MAT-file variable {name:?} has dims {dims:?} but {len} values; give exactly the \
         product of the dims (column-major)"
    )]
    DimsMismatch {
        /// The variable.
        name: String,
        /// Its dimensions.
        dims: Vec<usize>,
        /// The number of values given.
        len: usize,
    },
    /// Text that a MATLAB char array cannot hold as SciPy reads it.
    #[error(
        "MAT-file variable {name:?}: character {ch:?} is outside the Basic Multilingual \
         Plane, which MATLAB stores as two chars and SciPy cannot read; remove or replace it"
    )]
    Text {
        /// The variable.
        name: String,
        /// The first character refused.
        ch: char,
    },
    /// A dimension or an element too large for the format's 32-bit sizes.
    #[error(
        "MAT-file variable {name:?} is too large for a Level-5 MAT-file ({what}); split it \
         into smaller variables"
    )]
    TooLarge {
        /// The variable.
        name: String,
        /// Which limit is exceeded.
        what: &'static str,
    },
    /// Writing the file failed.
    #[error("cannot write the MAT-file: {0}")]
    Io(#[from] IoError),
}

/// Encodes `vars` and writes them to `path` as a MATLAB Level-5 MAT-file, crash-safely
/// (through a temporary file and a rename).
///
/// ```
/// use neurode::mat::{write_mat, MatValue};
///
/// let path = std::env::temp_dir().join(format!("neurode-doc-{}.mat", std::process::id()));
/// let vars = vec![
///     ("tau".to_string(), MatValue::scalar(20.0)),
///     // [1 2 3; 4 5 6] in MATLAB.
///     ("w".to_string(), MatValue::matrix_row_major(2, 3, &[1., 2., 3., 4., 5., 6.])),
///     ("note".to_string(), MatValue::text("trained by neurode")),
/// ];
/// write_mat(&path, &vars)?;
/// assert_eq!(&std::fs::read(&path)?[..10], b"MATLAB 5.0");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_mat(path: &Path, vars: &[(String, MatValue)]) -> Result<(), MatError> {
    let bytes = encode_mat(vars)?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// The bytes of a MATLAB Level-5 MAT-file (little-endian, uncompressed) holding `vars` in
/// order, after checking every name, shape and text.
///
/// ```
/// use neurode::mat::{encode_mat, MatError, MatValue};
///
/// let bytes = encode_mat(&[("x".to_string(), MatValue::row(vec![1.0, 2.0]))])?;
/// assert_eq!(&bytes[126..128], b"IM");
/// let bad = encode_mat(&[("2x".to_string(), MatValue::scalar(1.0))]);
/// assert!(matches!(bad, Err(MatError::InvalidName { .. })));
/// # Ok::<(), MatError>(())
/// ```
pub fn encode_mat(vars: &[(String, MatValue)]) -> Result<Vec<u8>, MatError> {
    let mut out = header();
    let mut seen = HashSet::new();
    for (name, value) in vars {
        check_name(name)?;
        if !seen.insert(name.as_str()) {
            return Err(MatError::DuplicateName { name: name.clone() });
        }
        encode_var(&mut out, name, value)?;
    }
    Ok(out)
}

pub(crate) fn check_name(name: &str) -> Result<(), MatError> {
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if !name.as_bytes()[0].is_ascii_alphabetic() {
        Some("it does not start with an ASCII letter")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some("it holds a character other than an ASCII letter, digit or underscore")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 63 characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(MatError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The 128-byte header: text, subsystem-data offset (none), version 0x0100, "IM".
fn header() -> Vec<u8> {
    let mut h = format!(
        "MATLAB 5.0 MAT-file, Platform: neurode, Created on: {}",
        utc_now()
    )
    .into_bytes();
    h.resize(116, b' ');
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&0x0100u16.to_le_bytes());
    h.extend_from_slice(b"IM");
    h
}

/// The current time as `ctime` writes it (`Mon Jan  1 12:00:00 2024`), in UTC.
fn utc_now() -> String {
    let [year, month, day, h, m, sec, weekday] = utc_civil();
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {} UTC",
        WEEKDAYS[weekday as usize],
        MONTHS[(month - 1) as usize],
        day,
        h,
        m,
        sec,
        year
    )
}

/// The current UTC time as `[year, month, day, hour, minute, second, weekday]` (month and
/// day from 1; weekday 0 = Thursday, the weekday of 1970-01-01).
pub(crate) fn utc_civil() -> [u64; 7] {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    [
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        days % 7,
    ]
}

/// Checks `dims` (at least two, each fitting `int32`, product `len`).
fn check_dims(name: &str, dims: &[usize], len: usize) -> Result<(), MatError> {
    if dims.len() < 2 {
        return Err(MatError::TooFewDims {
            name: name.to_owned(),
            dims: dims.to_vec(),
        });
    }
    if dims.iter().any(|&d| i32::try_from(d).is_err()) {
        return Err(MatError::TooLarge {
            name: name.to_owned(),
            what: "a dimension above 2^31 - 1",
        });
    }
    let product = dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
    if product != Some(len) {
        return Err(MatError::DimsMismatch {
            name: name.to_owned(),
            dims: dims.to_vec(),
            len,
        });
    }
    Ok(())
}

pub(crate) fn encode_var(out: &mut Vec<u8>, name: &str, value: &MatValue) -> Result<(), MatError> {
    let (class, flags, dims, mi, data): (u32, u32, Vec<usize>, u32, Vec<u8>) = match value {
        MatValue::Double { dims, data } => {
            check_dims(name, dims, data.len())?;
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (MX_DOUBLE_CLASS, 0, dims.clone(), MI_DOUBLE, bytes)
        }
        MatValue::Int64 { dims, data } => {
            check_dims(name, dims, data.len())?;
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (MX_INT64_CLASS, 0, dims.clone(), MI_INT64, bytes)
        }
        MatValue::Logical { dims, data } => {
            check_dims(name, dims, data.len())?;
            let bytes = data.iter().map(|&b| u8::from(b)).collect();
            (MX_UINT8_CLASS, FLAG_LOGICAL, dims.clone(), MI_UINT8, bytes)
        }
        MatValue::Char(s) => {
            if let Some(ch) = s.chars().find(|c| u32::from(*c) > 0xFFFF) {
                return Err(MatError::Text {
                    name: name.to_owned(),
                    ch,
                });
            }
            let units: Vec<u16> = s.encode_utf16().collect();
            let dims = vec![1, units.len()];
            check_dims(name, &dims, units.len())?;
            let bytes = units.iter().flat_map(|u| u.to_le_bytes()).collect();
            (MX_CHAR_CLASS, 0, dims, MI_UTF16, bytes)
        }
    };
    let too_large = || MatError::TooLarge {
        name: name.to_owned(),
        what: "more than 2^32 - 1 bytes in one variable",
    };

    let mut body = Vec::with_capacity(data.len() + 64 + 4 * dims.len());
    let mut flag_words = Vec::with_capacity(8);
    flag_words.extend_from_slice(&(class | (flags << 8)).to_le_bytes());
    flag_words.extend_from_slice(&0u32.to_le_bytes());
    push_element(&mut body, MI_UINT32, &flag_words).ok_or_else(too_large)?;
    let dim_bytes: Vec<u8> = dims
        .iter()
        // Each fits: checked by `check_dims`.
        .flat_map(|&d| (d as i32).to_le_bytes())
        .collect();
    push_element(&mut body, MI_INT32, &dim_bytes).ok_or_else(too_large)?;
    push_element(&mut body, MI_INT8, name.as_bytes()).ok_or_else(too_large)?;
    push_element(&mut body, mi, &data).ok_or_else(too_large)?;

    let len = u32::try_from(body.len()).map_err(|_| too_large())?;
    out.extend_from_slice(&MI_MATRIX.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Appends one data element (tag, data, zero padding to 8 bytes), in the small-data-element
/// form where the data fits in 4 bytes. `None` if the data is longer than `u32::MAX` bytes.
fn push_element(out: &mut Vec<u8>, mi: u32, data: &[u8]) -> Option<()> {
    let n = u32::try_from(data.len()).ok()?;
    if (1..=4).contains(&n) {
        out.extend_from_slice(&((n << 16) | mi).to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len() + 4 - data.len(), 0);
    } else {
        out.extend_from_slice(&mi.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len() + (8 - data.len() % 8) % 8, 0);
    }
    Some(())
}
