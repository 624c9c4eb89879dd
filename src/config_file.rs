//! Reading the config files of the families with schemas of their own (the mean field's,
//! the spiking network's): TOML, or YAML for `.yaml`/`.yml` (the originals' formats), into
//! a serde type. YAML is read with `serde-saphyr` (maintained, no unsafe code, no
//! `libyaml`; `serde_yaml` is archived).

use std::path::Path;

use serde::de::DeserializeOwned;

/// A config file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse (the message names the key and the line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
}

/// Whether `path` names YAML (by its extension).
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// The text of the file at `path`.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// `text`, the contents of `path`, parsed as YAML (when [`is_yaml`]) or TOML.
pub fn parse<C: DeserializeOwned>(path: &Path, text: &str) -> Result<C, FileError> {
    let parsed = if is_yaml(path) {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    } else {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    };
    parsed.map_err(|message| FileError::Parse {
        path: path.display().to_string(),
        message,
    })
}
