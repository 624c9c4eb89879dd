//! The low-rank RNN kind (`[model] kind = "lowrank"`): its `[model]` table, what it trains
//! and exports, its flow-field plane (the `κ` plane of its `m` vectors), and
//! [`load_lowrank`], which reads such a network from a parameter file.

use std::path::Path;

use neurode_models::{LowRankInit, LowRankRnn, ModelError, Readout};
use neurode_solvers::Real;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::io::{read_npz, read_safetensors, IoError, Metadata, NamedArray};
use crate::kind::Net;
use crate::kind::{
    check_non_negative, check_step_within_tau, set_by_key, FlowAxes, Invalid, ModelKind, Role,
    SetError, TaskModel,
};

/// The low-rank RNN (see `neurode_models::LowRankRnn`): `[model] kind = "lowrank"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LowRankConfig {
    /// Units N.
    pub n: usize,
    /// Rank R.
    pub rank: usize,
    /// Bulk gain g.
    pub g: f64,
    /// Time constant tau (ms).
    pub tau: f64,
    /// Scale of M at initialisation (times 1/sqrt(N)).
    pub m_init_std: f64,
    /// Scale of N at initialisation (times 1/sqrt(N)).
    pub n_init_std: f64,
    /// Scale of B at initialisation (times 1/sqrt(inputs)).
    pub b_init_std: f64,
    /// Scale of the readout w at initialisation (times 1/sqrt(N)).
    pub w_init_std: f64,
    /// Train M.
    pub train_m: bool,
    /// Train N.
    pub train_n: bool,
    /// Train B.
    pub train_b: bool,
    /// Train the readout w and its bias b.
    pub train_w: bool,
}

impl Default for LowRankConfig {
    fn default() -> Self {
        LowRankConfig {
            n: 500,
            rank: 2,
            g: 0.8,
            tau: 1.0,
            m_init_std: 1.0,
            n_init_std: 1.0,
            b_init_std: 1.0,
            w_init_std: 1.0,
            train_m: true,
            train_n: true,
            train_b: true,
            train_w: true,
        }
    }
}

impl ModelKind for LowRankConfig {
    fn title(&self) -> &'static str {
        "the low-rank RNN"
    }
    fn units(&self) -> usize {
        self.n
    }
    fn set(&mut self, key: &str, value: toml::Value) -> Result<(), SetError> {
        set_by_key(self, key, value)
    }
    // C, Cᵀ panels per worker (shared), parameters and Adam: ~ 3 n² + small.
    fn memory_estimate(&self, workers: usize) -> f64 {
        let n = self.n as f64;
        let bytes = 8.0;
        bytes * (3.0 * n * n + (6.0 + workers as f64) * n * (2.0 * self.rank as f64 + 8.0))
    }
    fn task_model<T: Real>(&self) -> Option<&dyn TaskModel<T>> {
        Some(self)
    }
    fn check_solver(&self, euler_dt: Option<f64>) -> Result<(), Invalid> {
        check_step_within_tau("tau", self.tau, euler_dt)
    }
    fn validate(&self) -> Result<(), Invalid> {
        let err = |k: &str, msg: String| Err(Invalid::new(k, msg));
        if self.n == 0 {
            return err("n", "N = 0: the network needs at least one unit".into());
        }
        if self.rank == 0 || self.rank > self.n {
            return err(
                "rank",
                format!(
                    "rank = {}: the rank of an N = {} network lies in 1..=N (the paper's is 2)",
                    self.rank, self.n
                ),
            );
        }
        if !(self.g.is_finite()) {
            return err("g", format!("g = {}: must be finite", self.g));
        }
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return err(
                "tau",
                format!("tau = {}: must be a positive number of ms", self.tau),
            );
        }
        check_non_negative(&[
            ("m_init_std", self.m_init_std),
            ("n_init_std", self.n_init_std),
            ("b_init_std", self.b_init_std),
            ("w_init_std", self.w_init_std),
        ])
    }
}

impl<T: Real> TaskModel<T> for LowRankConfig {
    fn build(&self, seed: u64, n_in: usize) -> Result<(Net<T>, Readout<T>), ModelError> {
        let init = LowRankInit {
            n: self.n,
            rank: self.rank,
            g: self.g,
            tau: self.tau,
            n_in,
            m_std: self.m_init_std,
            n_std: self.n_init_std,
            b_std: self.b_init_std,
            w_std: self.w_init_std,
        };
        let (rnn, readout) = LowRankRnn::random(&init, seed)?;
        Ok((Net::new(rnn), readout))
    }

    fn trainable(&self, name: &str) -> bool {
        match name {
            "M" => self.train_m,
            "N" => self.train_n,
            "B" => self.train_b,
            _ => self.train_w,
        }
    }

    /// Row-major `C` (fixed), `M`, `N`, `B`, `w`, `b`.
    fn arrays(&self, net: &Net<T>, theta: &[T]) -> Vec<(NamedArray<T>, Role)> {
        let rnn = own_network(net);
        let (n, r) = (self.n, self.rank);
        let n_in = rnn.n_in();
        let nr = n * r;
        let nf = nr * 2 + n * n_in;
        vec![
            (
                NamedArray::from_col_major("C", n, n, rnn.connectivity().bulk()),
                Role::Fixed,
            ),
            (
                NamedArray::from_col_major("M", n, r, &theta[..nr]),
                Role::Theta,
            ),
            (
                NamedArray::from_col_major("N", n, r, &theta[nr..2 * nr]),
                Role::Theta,
            ),
            (
                NamedArray::from_col_major("B", n, n_in, &theta[2 * nr..nf]),
                Role::Theta,
            ),
            (
                NamedArray {
                    name: "w".into(),
                    shape: vec![n],
                    data: theta[nf..nf + n].to_vec(),
                },
                Role::Theta,
            ),
            (
                NamedArray {
                    name: "b".into(),
                    shape: vec![1],
                    data: vec![theta[nf + n]],
                },
                Role::Theta,
            ),
        ]
    }

    fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("format".into(), "neurode low-rank RNN".into()),
            ("layout".into(), "row-major; W = g C + M N^T / N".into()),
            ("g".into(), self.g.to_string()),
            ("tau".into(), self.tau.to_string()),
        ]
    }

    fn structure(&self, arrays: &[NamedArray<T>]) -> serde_json::Value {
        structure_summary(arrays, self.n, self.rank)
    }

    /// The `κ` plane spanned by `m1`, `m2` (rank 2 and up).
    fn flow_axes(&self, net: &Net<T>) -> Option<FlowAxes> {
        let c = own_network(net).connectivity();
        if c.rank() < 2 {
            return None;
        }
        let n = self.n;
        let m: Vec<f64> = c.m().iter().map(|v| v.as_f64()).collect();
        Some(FlowAxes {
            axes: [m[..n].to_vec(), m[n..2 * n].to_vec()],
            names: ["kappa1", "kappa2"],
        })
    }
}

/// The low-rank RNN of a network this kind built.
fn own_network<T: Real>(net: &Net<T>) -> &LowRankRnn<T> {
    net.downcast_ref()
        .expect("a network is built by its own config's kind")
}

/// Norms, cosine overlaps and the singular values of `M Nᵀ / N` of trained low-rank
/// parameters (row-major arrays as written to `params.safetensors`).
pub fn structure_summary<T: Real>(
    arrays: &[NamedArray<T>],
    n: usize,
    r: usize,
) -> serde_json::Value {
    let get = |name: &str| arrays.iter().find(|a| a.name == name);
    let (Some(m), Some(nv), Some(b), Some(w), Some(bias)) =
        (get("M"), get("N"), get("B"), get("w"), get("b"))
    else {
        return json!({"error": "the parameter arrays of a low-rank RNN are incomplete"});
    };
    let col = |a: &NamedArray<T>, j: usize| -> Vec<f64> {
        let cols = a.shape.get(1).copied().unwrap_or(1);
        (0..a.shape[0])
            .map(|i| a.data[i * cols + j].as_f64())
            .collect()
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let frob = |a: &NamedArray<T>| {
        a.data
            .iter()
            .map(|x| x.as_f64().powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let cos = |a: &[f64], b: &[f64]| {
        let d = norm(a) * norm(b);
        if d == 0.0 {
            0.0
        } else {
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / d
        }
    };
    let mut vecs: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..r {
        vecs.push((format!("M{}", i + 1), col(m, i)));
    }
    for i in 0..r {
        vecs.push((format!("N{}", i + 1), col(nv, i)));
    }
    vecs.push(("w".into(), col(w, 0)));
    let n_in = b.shape.get(1).copied().unwrap_or(0);
    let names = ["s1", "s2", "ctx1", "ctx2"];
    for j in 0..n_in {
        let name = names
            .get(j)
            .map_or_else(|| format!("B{}", j + 1), |s| s.to_string());
        vecs.push((name, col(b, j)));
    }
    let mut overlaps = serde_json::Map::new();
    for i in 0..vecs.len() {
        for j in i + 1..vecs.len() {
            overlaps.insert(
                format!("{}_{}", vecs[i].0, vecs[j].0),
                json!(cos(&vecs[i].1, &vecs[j].1)),
            );
        }
    }
    let mat = faer::Mat::<f64>::from_fn(n, n, |i, j| {
        (0..r)
            .map(|k| m.data[i * r + k].as_f64() * nv.data[j * r + k].as_f64())
            .sum::<f64>()
            / n as f64
    });
    let mut sv: Vec<f64> = mat
        .singular_values()
        .map(|v| v.into_iter().take(r.max(1)).collect())
        .unwrap_or_default();
    sv.sort_by(|a, b| b.total_cmp(a));
    json!({
        "N": n,
        "R": r,
        "norms": {"M": frob(m), "N": frob(nv), "B": frob(b), "w": frob(w), "b": bias.data[0].as_f64().abs()},
        "overlaps": overlaps,
        "low_rank_singular_values": sv,
    })
}

/// Loads a low-rank RNN and its readout from a parameter file: arrays `C` (`N x N`), `M`,
/// `N` (`N x R`), `B` (`N x inputs`), `w` (`N`), `b` (one value), the gain `g` and the time
/// constant `tau`. Any published network in this layout plugs in.
///
/// - `*.npz` (NumPy): everything is an array, `g` and `tau` too, e.g.
///   `np.savez("net.npz", C=C, M=M, N=N, B=B, w=w, b=b, g=0.8, tau=1.0)`.
/// - anything else is read as safetensors (row-major), with `g` and `tau` in the file's
///   metadata, as `neurode train` writes `params.safetensors`.
///
/// # Errors
/// A missing array or scalar, a shape that does not fit, or an unreadable file: the
/// message names the file and the array.
pub fn load_lowrank<T: Real>(path: &Path) -> Result<(LowRankRnn<T>, Readout<T>), IoError> {
    use neurode_models::LowRank;
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    let (arrays, meta) = if is_npz {
        (read_npz::<T>(path)?, Metadata::new())
    } else {
        read_safetensors::<T>(path)?
    };
    crate::params::check_finite(
        &arrays,
        crate::params::FileRole::Parameters,
        &path.display().to_string(),
    )
    .map_err(|e| IoError::format(path, e.to_string()))?;
    let get = |name: &str, dims: usize| -> Result<&NamedArray<T>, IoError> {
        let a = arrays
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| IoError::format(path, format!("array {name} is missing")))?;
        if a.shape.len() != dims {
            return Err(IoError::format(
                path,
                format!(
                    "array {name} has shape {:?}; expected {dims} dimensions",
                    a.shape
                ),
            ));
        }
        Ok(a)
    };
    let scalar = |k: &str| -> Result<T, IoError> {
        if is_npz {
            return match arrays.iter().find(|a| a.name == k).map(|a| &a.data[..]) {
                Some(&[v]) => Ok(v),
                _ => Err(IoError::format(
                    path,
                    format!("array `{k}` is missing or not one value; save it with the arrays ({k}=...)"),
                )),
            };
        }
        meta.get(k)
            .and_then(|s| s.parse::<f64>().ok())
            .map(T::from_f64)
            .ok_or_else(|| {
                IoError::format(
                    path,
                    format!(
                        "metadata `{k}` is missing or not a number; add it to the file's metadata"
                    ),
                )
            })
    };
    let (c, m, nv, b, w) = (
        get("C", 2)?,
        get("M", 2)?,
        get("N", 2)?,
        get("B", 2)?,
        get("w", 1)?,
    );
    let n = c.shape[0];
    let r = m.shape[1];
    if w.data.len() != n {
        return Err(IoError::format(
            path,
            format!("array w has {} values but C is {n} x {n}", w.data.len()),
        ));
    }
    let bias = match get("b", 1)?.data[..] {
        [v] => v,
        ref d => {
            return Err(IoError::format(
                path,
                format!(
                    "array b has {} values; the readout bias is one value",
                    d.len()
                ),
            ))
        }
    };
    let model = |e: neurode_models::ModelError| IoError::format(path, e.to_string());
    let conn = LowRank::new(
        n,
        r,
        scalar("g")?,
        c.to_col_major(),
        m.to_col_major(),
        nv.to_col_major(),
    )
    .map_err(model)?;
    let rnn = LowRankRnn::new(conn, scalar("tau")?, b.shape[1], b.to_col_major()).map_err(model)?;
    let readout = Readout::new(w.data.clone(), bias).map_err(model)?;
    Ok((rnn, readout))
}
