//! A setting out of range, as every config check reports it: the key and what is wrong
//! and what to do. The config adds the file, the table and the line.

/// A setting out of range: the key (relative to its table until the config prefixes it)
/// and what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct Invalid {
    /// The key (`n`, or dotted: `model.n`).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Invalid {
    /// The error of `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
    /// The same error with its key under the table `prefix` (`n` -> `model.n`).
    pub fn under(self, prefix: &str) -> Self {
        Invalid {
            key: format!("{prefix}.{}", self.key),
            ..self
        }
    }
}

/// Checks that every `(key, value)` is finite and `>= 0`; the error names the key.
pub fn check_non_negative(values: &[(&str, f64)]) -> Result<(), Invalid> {
    match values.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        Some((k, v)) => Err(Invalid::new(*k, format!("{k} = {v}: must be >= 0"))),
        None => Ok(()),
    }
}
