//! Region files of multi-region networks: mRNNTorch's JSON format, read as it is, and the
//! same structure in TOML.
//!
//! Top-level keys (each optional, empty by default): `recurrent_regions` (`name`,
//! `num_units`, `sign` `"pos"`/`"neg"`, `base_firing`, `init`, `parent_region`,
//! `learnable_bias`), `input_regions` (`name`, `num_units`, `sign`), and
//! `recurrent_connections` / `input_connections` (`src_region`, `dst_region`, `sparsity`,
//! `zero_connection`). Keys that start with `__comment` are ignored at any level, as are
//! the original's `device` (of a region) and `sign` (of a connection, which its code does
//! not read either: the sign is the source region's). Any other key is an error.
//!
//! **`sparsity` is the fraction of zeros per source unit** (as the original code does,
//! whatever its docstrings say): `0.25` into 50 units keeps 37 connections per source unit.
//!
//! Every error names the entry (`recurrent_regions[2] (gpe)`) and what to do.

use std::collections::BTreeMap;
use std::path::Path;

use neurode_models::{Connection, InputRegion, ModelError, RecurrentRegion, RegionBuilder, Sign};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A region file, parsed (not yet checked: [`RegionFile::builder`] checks it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegionFile {
    /// Recurrent regions, in order.
    #[serde(default)]
    pub recurrent_regions: Vec<RegionEntry>,
    /// Input regions, in order.
    #[serde(default)]
    pub input_regions: Vec<RegionEntry>,
    /// Connections between recurrent regions.
    #[serde(default)]
    pub recurrent_connections: Vec<ConnectionEntry>,
    /// Connections from input regions to recurrent regions.
    #[serde(default)]
    pub input_connections: Vec<ConnectionEntry>,
    /// Other keys (only `__comment…` keys are allowed).
    #[serde(flatten, skip_serializing)]
    pub rest: BTreeMap<String, Value>,
}

/// One region of a region file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegionEntry {
    /// Name (recurrent regions default to `region_<index>`).
    pub name: Option<String>,
    /// Units (a positive integer).
    pub num_units: Option<Value>,
    /// `"pos"` (default) or `"neg"`.
    pub sign: Option<String>,
    /// Tonic input: a number or one per unit (default 0).
    pub base_firing: Option<Value>,
    /// Initial state: a number or one per unit (default 0).
    pub init: Option<Value>,
    /// The parent region (a group name).
    pub parent_region: Option<String>,
    /// Whether the tonic input is trained (default false).
    pub learnable_bias: Option<bool>,
    /// Other keys (`device` and `__comment…` are ignored, anything else is an error).
    #[serde(flatten, skip_serializing)]
    pub rest: BTreeMap<String, Value>,
}

/// One connection of a region file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectionEntry {
    /// Source region.
    pub src_region: Option<String>,
    /// Destination region.
    pub dst_region: Option<String>,
    /// Fraction of zeros per source unit, in `[0, 1)`; absent or `null`: dense.
    pub sparsity: Option<f64>,
    /// A fixed zero block.
    pub zero_connection: Option<bool>,
    /// Other keys (`sign` and `__comment…` are ignored, anything else is an error).
    #[serde(flatten, skip_serializing)]
    pub rest: BTreeMap<String, Value>,
}

/// An error of a region file: what is wrong, where, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("region file {path}: {message}")]
pub struct RegionFileError {
    /// The file (or `<inline>`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn is_comment(k: &str) -> bool {
    k.starts_with("__comment")
}

fn check_rest(rest: &BTreeMap<String, Value>, ignored: &[&str], at: &str) -> Result<(), String> {
    match rest
        .keys()
        .find(|k| !is_comment(k) && !ignored.contains(&k.as_str()))
    {
        Some(k) => Err(format!(
            "{at}: unknown key `{k}` (a misspelling? comments go in keys that start with \
             `__comment`)"
        )),
        None => Ok(()),
    }
}

fn units(v: &Option<Value>, at: &str) -> Result<usize, String> {
    let Some(v) = v else {
        return Err(format!("{at}: `num_units` is missing"));
    };
    match v.as_f64() {
        Some(x) if x >= 1.0 && x.fract() == 0.0 && x <= 1e9 => Ok(x as usize),
        _ => Err(format!(
            "{at}: num_units = {v} must be a positive whole number"
        )),
    }
}

fn values(v: &Option<Value>, key: &str, at: &str) -> Result<Vec<f64>, String> {
    let bad = || {
        format!(
            "{at}: {key} must be a finite number or a list of finite numbers (NaN and inf are \
             not; leave the key out for 0)"
        )
    };
    // NaN and inf arrive as `null` (JSON numbers are finite): refused, not read as absent.
    match v {
        None => Ok(vec![0.0]),
        Some(Value::Number(x)) => Ok(vec![x.as_f64().ok_or_else(bad)?]),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_f64().ok_or_else(bad)).collect(),
        Some(_) => Err(bad()),
    }
}

fn sign(s: &Option<String>, at: &str) -> Result<Sign, String> {
    match s.as_deref() {
        None | Some("pos") => Ok(Sign::Pos),
        Some("neg") => Ok(Sign::Neg),
        Some(other) => Err(format!(
            "{at}: sign = \"{other}\" must be \"pos\" (excitatory) or \"neg\" (inhibitory)"
        )),
    }
}

impl RegionFile {
    /// Reads a region file: JSON (`.json`) or TOML (anything else).
    pub fn load(path: &Path) -> Result<Self, RegionFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RegionFileError {
            path: p.clone(),
            message: format!(
                "cannot read it: {e}; check the path (configs/regions/ holds examples)"
            ),
        })?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::parse(&text, json).map_err(|message| RegionFileError { path: p, message })
    }

    /// Parses region-file text, JSON or TOML.
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| e.to_string())
        }
    }

    /// Checks every entry and builds the regions and connections in the file's order
    /// (all recurrent regions, the input regions, the recurrent connections, the input
    /// connections), ready for [`RegionBuilder::finalize`].
    pub fn builder(&self) -> Result<RegionBuilder, String> {
        check_rest(&self.rest, &[], "top level")?;
        let mut b = RegionBuilder::new();
        let wrap = |at: &str, e: ModelError| format!("{at}: {e}");
        for (k, r) in self.recurrent_regions.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("region_{k}"));
            let at = format!("recurrent_regions[{k}] ({name})");
            check_rest(&r.rest, &["device"], &at)?;
            let region = RecurrentRegion {
                name,
                units: units(&r.num_units, &at)?,
                sign: sign(&r.sign, &at)?,
                base_firing: values(&r.base_firing, "base_firing", &at)?,
                init: values(&r.init, "init", &at)?,
                parent: r.parent_region.clone(),
                learnable_bias: r.learnable_bias.unwrap_or(false),
            };
            b.add_recurrent_region(region).map_err(|e| wrap(&at, e))?;
        }
        for (k, r) in self.input_regions.iter().enumerate() {
            let at = format!("input_regions[{k}] ({})", r.name.as_deref().unwrap_or("?"));
            let Some(name) = r.name.clone() else {
                return Err(format!("{at}: an input region needs a `name`"));
            };
            check_rest(&r.rest, &["device"], &at)?;
            for (key, present) in [
                ("base_firing", r.base_firing.is_some()),
                ("init", r.init.is_some()),
                ("parent_region", r.parent_region.is_some()),
                ("learnable_bias", r.learnable_bias.is_some()),
            ] {
                if present {
                    return Err(format!(
                        "{at}: `{key}` is a setting of recurrent regions, not of input regions"
                    ));
                }
            }
            let region = InputRegion {
                name,
                units: units(&r.num_units, &at)?,
                sign: sign(&r.sign, &at)?,
            };
            b.add_input_region(region).map_err(|e| wrap(&at, e))?;
        }
        for (list, input) in [
            (&self.recurrent_connections, false),
            (&self.input_connections, true),
        ] {
            let key = if input {
                "input_connections"
            } else {
                "recurrent_connections"
            };
            for (k, c) in list.iter().enumerate() {
                let (src, dst) = (
                    c.src_region.as_deref().unwrap_or("?"),
                    c.dst_region.as_deref().unwrap_or("?"),
                );
                let at = format!("{key}[{k}] ({src} -> {dst})");
                check_rest(&c.rest, &["sign"], &at)?;
                let (Some(src), Some(dst)) = (c.src_region.clone(), c.dst_region.clone()) else {
                    return Err(format!("{at}: give both `src_region` and `dst_region`"));
                };
                let conn = Connection {
                    src,
                    dst,
                    sparsity: c.sparsity,
                    zero: c.zero_connection.unwrap_or(false),
                };
                let r = if input {
                    b.add_input_connection(conn)
                } else {
                    b.add_recurrent_connection(conn)
                };
                r.map_err(|e| wrap(&at, e))?;
            }
        }
        Ok(b)
    }
}
