//! The clustered E/I architecture (VectorialNeuroModulators, after Papadopoulos et al.):
//! `Q` excitatory clusters, the excitatory background, `Q` inhibitory clusters and the
//! inhibitory background, in that neuron order; block weights with potentiation `J+`
//! inside a cluster pair and depression elsewhere; connection probabilities per block
//! pair.
//!
//! The four-entry settings are in the order (E→E, E→I, I→E, I→I), the first letter the
//! **presynaptic** class, for the weights and the probabilities alike. (The original
//! returns its probability block matrix untransposed and its weight block matrix
//! transposed, so it draws I→E connections with the E→I probability and vice versa; the two
//! agree in its template, where both are 0.5.)

use super::SpikingError;

/// Whether a block is excitatory or inhibitory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Excitatory.
    E,
    /// Inhibitory.
    I,
}

impl Class {
    fn index(self) -> usize {
        match self {
            Class::E => 0,
            Class::I => 1,
        }
    }
}

/// Index into the four-entry settings of the pair (presynaptic `pre`, postsynaptic `post`).
pub fn pair_index(pre: Class, post: Class) -> usize {
    2 * pre.index() + post.index()
}

/// How connections inside a block pair are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskKind {
    /// Each pair of neurons independently with probability `p` (the original at `4d271c6`).
    #[default]
    Bernoulli,
    /// Every postsynaptic neuron gets exactly `⌊p m⌋` of the block's `m` presynaptic
    /// neurons, drawn without replacement (the original from `394854e` on); a neuron drawn
    /// as its own input is then dropped (no autapses).
    FixedInDegree,
}

/// The clustered architecture's settings (the original's `architecture.clusters` and the
/// population sizes).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    /// Neurons `N`.
    pub n: usize,
    /// Excitatory neurons `NE` (the first `NE`); the rest are inhibitory.
    pub n_exc: usize,
    /// Excitatory neurons outside the clusters.
    pub bg_exc: usize,
    /// Inhibitory neurons outside the clusters.
    pub bg_inh: usize,
    /// Clusters `Q` of each class (0: an unclustered E/I network; the backgrounds are then
    /// all neurons).
    pub clusters: usize,
    /// Connection probabilities (E→E, E→I, I→E, I→I).
    pub probs: [f64; 4],
    /// Baseline weights `J` (E→E, E→I, I→E, I→I).
    pub j_baseline: [f64; 4],
    /// Potentiation factors `J+` inside a cluster pair (E→E, E→I, I→E, I→I).
    pub j_potentiated: [f64; 4],
    /// How connections are drawn.
    pub mask: MaskKind,
}

/// The blocks of a network: sizes, classes and offsets in neuron order.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocks {
    sizes: Vec<usize>,
    classes: Vec<Class>,
    /// Cluster index of a block (`None` for a background).
    cluster: Vec<Option<usize>>,
    offsets: Vec<usize>,
}

impl Blocks {
    /// Blocks from sizes, classes and cluster indices.
    pub fn new(sizes: Vec<usize>, classes: Vec<Class>, cluster: Vec<Option<usize>>) -> Blocks {
        let mut offsets = vec![0];
        for s in &sizes {
            offsets.push(offsets.last().copied().unwrap_or(0) + s);
        }
        Blocks {
            sizes,
            classes,
            cluster,
            offsets,
        }
    }
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }
    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
    /// Neurons of block `b`.
    pub fn size(&self, b: usize) -> usize {
        self.sizes[b]
    }
    /// Every block's size.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
    /// Class of block `b`.
    pub fn class(&self, b: usize) -> Class {
        self.classes[b]
    }
    /// Cluster index of block `b` (`None` for a background).
    pub fn cluster(&self, b: usize) -> Option<usize> {
        self.cluster[b]
    }
    /// Start offsets with a leading 0 and the total at the end (the original's
    /// `boundaries`).
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }
    /// Neurons.
    pub fn neurons(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }
    /// The block of every neuron.
    pub fn labels(&self) -> Vec<u32> {
        let mut l = Vec::with_capacity(self.neurons());
        for (b, &s) in self.sizes.iter().enumerate() {
            l.extend(std::iter::repeat_n(b as u32, s));
        }
        l
    }
    /// A name for block `b` (`E cluster 3`, `E background`, …; clusters from 1).
    pub fn name(&self, b: usize) -> String {
        let c = match self.classes[b] {
            Class::E => "E",
            Class::I => "I",
        };
        match self.cluster[b] {
            Some(k) => format!("{c} cluster {}", k + 1),
            None => format!("{c} background"),
        }
    }
}

/// The depression factor of the original (`depress_formula`): the off-cluster weight
/// factor that keeps a neuron's mean input unchanged by the potentiation `j_plus` of its
/// own cluster pair, for class fractions `f_a`, `f_b` of one cluster and `q` clusters:
/// `(f_a + f_b − f_a f_b (q + J+)) / (f_a + f_b − f_a f_b (q + 1))`, and 1 where the
/// denominator vanishes (no clusters, or one cluster holding every neuron).
pub fn depression(f_a: f64, f_b: f64, q: usize, j_plus: f64) -> f64 {
    let q = q as f64;
    let den = f_a + f_b - f_a * f_b * (q + 1.0);
    if den.abs() < 1e-300 {
        return 1.0;
    }
    (f_a + f_b - f_a * f_b * (q + j_plus)) / den
}

impl ClusterSpec {
    /// The original's template (VectorialNeuroModulators at 4d271c6): 2,000 neurons (1,600
    /// E), 18 clusters, backgrounds of 160 E and 40 I, probabilities (0.2, 0.5, 0.5, 0.5),
    /// baseline weights (0.63, 0.63, −1.9, −3.8), potentiation (15.75, 5.45, 6.25, 5.0),
    /// Bernoulli connections.
    pub fn template() -> ClusterSpec {
        ClusterSpec {
            n: 2000,
            n_exc: 1600,
            bg_exc: 160,
            bg_inh: 40,
            clusters: 18,
            probs: [0.2, 0.5, 0.5, 0.5],
            j_baseline: [0.63, 0.63, -1.9, -3.8],
            j_potentiated: [15.75, 5.45, 6.25, 5.0],
            mask: MaskKind::Bernoulli,
        }
    }

    /// Inhibitory neurons `N − NE`.
    pub fn n_inh(&self) -> usize {
        self.n.saturating_sub(self.n_exc)
    }

    /// Checks the sizes and settings (the message names the key, relative to the
    /// original's `architecture.clusters` or `simulation`).
    pub fn check(&self) -> Result<(), SpikingError> {
        let bad = |key: &str, value: f64, requirement: String| SpikingError::Invalid {
            key: key.to_string(),
            value,
            requirement,
        };
        if self.n == 0 {
            return Err(bad("n_neurons", 0.0, "a network needs neurons".into()));
        }
        if self.n_exc > self.n {
            return Err(bad(
                "n_excitatory",
                self.n_exc as f64,
                format!("at most n_neurons = {}", self.n),
            ));
        }
        if self.n > u32::MAX as usize / 2 {
            return Err(bad(
                "n_neurons",
                self.n as f64,
                format!("at most {} neurons", u32::MAX / 2),
            ));
        }
        let ni = self.n_inh();
        if self.bg_exc > self.n_exc {
            return Err(bad(
                "n_excitatory_background",
                self.bg_exc as f64,
                format!("at most n_excitatory = {}", self.n_exc),
            ));
        }
        if self.bg_inh > ni {
            return Err(bad(
                "n_inhibitory_background",
                self.bg_inh as f64,
                format!("at most the inhibitory neurons, n_neurons − n_excitatory = {ni}"),
            ));
        }
        let q = self.clusters;
        if q == 0 {
            if self.bg_exc != self.n_exc || self.bg_inh != ni {
                return Err(bad(
                    "n_clusters",
                    0.0,
                    format!(
                        "without clusters every neuron is background: set \
                         n_excitatory_background = {} and n_inhibitory_background = {ni} (or \
                         leave them out), or give n_clusters > 0",
                        self.n_exc
                    ),
                ));
            }
        } else {
            for (key, clustered, class) in [
                ("n_excitatory", self.n_exc - self.bg_exc, "excitatory"),
                ("n_neurons − n_excitatory", ni - self.bg_inh, "inhibitory"),
            ] {
                if clustered == 0 {
                    return Err(bad(
                        "n_clusters",
                        q as f64,
                        format!(
                            "no {class} neurons are left for the clusters (all are background \
                             or there are none); set n_clusters = 0 for a network without \
                             clusters, or a smaller {class} background"
                        ),
                    ));
                }
                if clustered % q != 0 {
                    return Err(SpikingError::Clusters {
                        clusters: q,
                        class,
                        clustered,
                        key,
                    });
                }
            }
        }
        for (k, name) in ["E→E", "E→I", "I→E", "I→I"].iter().enumerate() {
            let p = self.probs[k];
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(
                    &format!("connectivity_fraction_probs[{k}]"),
                    p,
                    format!("a probability ({name}) is in [0, 1]"),
                ));
            }
            for (key, v) in [
                ("j_baseline", self.j_baseline[k]),
                ("j_potentiated", self.j_potentiated[k]),
            ] {
                if !v.is_finite() {
                    return Err(bad(
                        &format!("{key}[{k}]"),
                        v,
                        "a weight is a finite number".into(),
                    ));
                }
            }
            let (pre, post) = (k / 2, k % 2);
            let sign_ok = if pre == 0 {
                self.j_baseline[k] >= 0.0
            } else {
                self.j_baseline[k] <= 0.0
            };
            if !sign_ok {
                return Err(bad(
                    &format!("j_baseline[{k}]"),
                    self.j_baseline[k],
                    format!("{name} weights have the sign of the presynaptic class (E ≥ 0, I ≤ 0)"),
                ));
            }
            let _ = post;
            if q > 0 && self.j_potentiated[k] < 0.0 {
                return Err(bad(
                    &format!("j_potentiated[{k}]"),
                    self.j_potentiated[k],
                    "a potentiation factor is ≥ 0".into(),
                ));
            }
        }
        if q > 0 {
            let g = self.depressions();
            if let Some(k) = (0..4).find(|&k| g[k] < 0.0) {
                return Err(bad(
                    &format!("j_potentiated[{k}]"),
                    self.j_potentiated[k],
                    format!(
                        "its depression factor is {:.4} < 0, which flips the sign of the \
                         weights between clusters; use a smaller potentiation",
                        g[k]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Neurons per cluster (E, I); 0 without clusters.
    pub fn per_cluster(&self) -> (usize, usize) {
        if self.clusters == 0 {
            return (0, 0);
        }
        (
            (self.n_exc - self.bg_exc) / self.clusters,
            (self.n_inh() - self.bg_inh) / self.clusters,
        )
    }

    /// The depression factors (E→E, E→I, I→E, I→I).
    pub fn depressions(&self) -> [f64; 4] {
        let (pe, pi) = self.per_cluster();
        let fe = if self.n_exc > 0 {
            pe as f64 / self.n_exc as f64
        } else {
            0.0
        };
        let ni = self.n_inh();
        let fi = if ni > 0 { pi as f64 / ni as f64 } else { 0.0 };
        let f = [fe, fi];
        std::array::from_fn(|k| {
            depression(f[k / 2], f[k % 2], self.clusters, self.j_potentiated[k])
        })
    }

    /// The blocks: `Q` E clusters, the E background, `Q` I clusters, the I background
    /// (`2Q + 2` blocks, a background possibly empty). Call after [`check`](Self::check).
    pub fn blocks(&self) -> Blocks {
        let q = self.clusters;
        let (pe, pi) = self.per_cluster();
        let mut sizes = vec![pe; q];
        sizes.push(self.bg_exc);
        sizes.extend(std::iter::repeat_n(pi, q));
        sizes.push(self.bg_inh);
        let mut classes = vec![Class::E; q + 1];
        classes.extend(std::iter::repeat_n(Class::I, q + 1));
        let mut cluster: Vec<Option<usize>> = (0..q).map(Some).collect();
        cluster.push(None);
        cluster.extend((0..q).map(Some));
        cluster.push(None);
        Blocks::new(sizes, classes, cluster)
    }

    /// The weight and probability of every block pair, row-major with rows postsynaptic:
    /// entry `a * B + b` is onto block `a` from block `b`. Inside a cluster pair (same
    /// cluster index) `J J+`; between a cluster and anything else `J g`; between the
    /// backgrounds `J`.
    pub fn block_tables(&self, blocks: &Blocks) -> (Vec<f64>, Vec<f64>) {
        let nb = blocks.len();
        let g = self.depressions();
        let mut w = vec![0.0; nb * nb];
        let mut p = vec![0.0; nb * nb];
        for a in 0..nb {
            for b in 0..nb {
                let k = pair_index(blocks.class(b), blocks.class(a));
                let factor = match (blocks.cluster(a), blocks.cluster(b)) {
                    (Some(x), Some(y)) if x == y => self.j_potentiated[k],
                    (None, None) => 1.0,
                    _ => g[k],
                };
                w[a * nb + b] = self.j_baseline[k] * factor;
                p[a * nb + b] = self.probs[k];
            }
        }
        (w, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_the_reference_blocks_factors_and_weights() {
        let spec = ClusterSpec::template();
        spec.check().unwrap();
        let b = spec.blocks();
        assert_eq!(b.len(), 38);
        assert_eq!(spec.per_cluster(), (80, 20));
        let off = b.offsets();
        assert_eq!(
            (off[0], off[18], off[19], off[37], off[38]),
            (0, 1440, 1600, 1960, 2000)
        );
        let g = spec.depressions();
        let want = [0.297619047619, 0.788095238095, 0.75, 0.809523809524];
        for k in 0..4 {
            assert!((g[k] - want[k]).abs() < 1e-12, "g[{k}] = {}", g[k]);
        }
        let mut later = spec.clone();
        later.j_potentiated[0] = 10.75;
        assert!((later.depressions()[0] - 0.535714285714).abs() < 1e-12);
        let (w, p) = spec.block_tables(&b);
        let at = |post: usize, pre: usize| w[post * 38 + pre];
        // Same E cluster, another E cluster, I→E and I→I inside a cluster pair.
        assert!((at(3, 3) - 9.9225).abs() < 1e-12);
        assert!((at(3, 4) - 0.1875).abs() < 1e-12);
        assert!((at(3, 19 + 3) + 11.875).abs() < 1e-12);
        assert!((at(19 + 3, 19 + 3) + 19.0).abs() < 1e-12);
        // Background to background: the baseline; cluster to background: depressed.
        assert!((at(18, 18) - 0.63).abs() < 1e-12);
        assert!((at(18, 2) - 0.63 * want[0]).abs() < 1e-12);
        assert!((at(37, 18) - 0.63).abs() < 1e-12);
        assert!((p[3 * 38 + 3] - 0.2).abs() < 1e-15 && (p[20 * 38 + 3] - 0.5).abs() < 1e-15);
        assert_eq!(b.labels()[1440], 18);
        // Probabilities by class pair, first letter presynaptic: onto an I block from an
        // E block is E→I.
        let mut skew = spec.clone();
        skew.probs = [0.2, 0.3, 0.7, 0.5];
        let (_, p) = skew.block_tables(&b);
        assert_eq!(p[20 * 38 + 3], 0.3, "E→I");
        assert_eq!(p[3 * 38 + 20], 0.7, "I→E");
        assert_eq!(b.name(18), "E background");
        assert_eq!(b.name(19), "I cluster 1");
    }

    #[test]
    fn sizes_that_do_not_divide_into_clusters_are_refused() {
        let mut s = ClusterSpec::template();
        s.clusters = 7;
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("1440") && e.contains("7 clusters"), "{e}");
        let mut s = ClusterSpec::template();
        s.probs[2] = 1.5;
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("connectivity_fraction_probs[2]"), "{e}");
        let mut s = ClusterSpec::template();
        s.j_potentiated[0] = 30.0;
        let e = s.check().unwrap_err().to_string();
        assert!(
            e.contains("j_potentiated[0]") && e.contains("depression"),
            "{e}"
        );
    }
}
