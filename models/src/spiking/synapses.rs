//! Recurrent synapses stored by presynaptic neuron: the targets of neuron `j` are one
//! sorted run of postsynaptic indices, cut into the postsynaptic blocks, and every synapse
//! of a block pair has that pair's weight, kept once in a `B x B` table (not per synapse).
//! A spike of `j` adds one column of `W`: for each block, the block's weight to each of its
//! targets there.
//!
//! A network converted from a trained rate RNN has a weight per synapse instead
//! ([`Synapses::from_dense`]): one block, and the weights stored beside the targets.

use neurode_solvers::{Real, Stream};

use super::blocks::{Blocks, MaskKind};
use super::SpikingError;

/// Bytes per stored synapse (a `u32` target).
const BYTES_PER_SYNAPSE: f64 = 4.0;

/// The recurrent synapses of a network (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Synapses<T: Real> {
    n: usize,
    nb: usize,
    /// Block of every neuron.
    label: Vec<u32>,
    /// Start of neuron `j`'s targets in `targets` (`n + 1` entries).
    row: Vec<usize>,
    /// Per neuron, `nb + 1` offsets into its run, relative to `row[j]`: its targets in
    /// block `b` are `row[j] + cut[j (nb+1) + b] .. row[j] + cut[j (nb+1) + b + 1]`.
    cut: Vec<u32>,
    /// Postsynaptic neurons, sorted within each presynaptic run.
    targets: Vec<u32>,
    /// Weight onto block `a` from block `b` at `a * nb + b`.
    weights: Vec<T>,
    /// Per presynaptic block `b`, its runs of consecutive postsynaptic blocks with one
    /// weight: `(first block, last block + 1, weight)` (a clustered network's E neuron
    /// has six: its own cluster, the E blocks before and after it, and the same for I).
    segments: Vec<Vec<(u32, u32, T)>>,
    /// One weight per stored synapse, beside `targets` (a network with a weight per
    /// synapse, [`Synapses::from_dense`]); empty when the weights are per block pair.
    values: Vec<T>,
}

/// The inputs a neuron draws from a block of `m` neurons at probability `p` under
/// [`MaskKind::FixedInDegree`]: `⌊p m⌋` to within rounding.
pub fn fixed_in_degree(p: f64, m: usize) -> usize {
    ((p * m as f64 + 1e-9).floor() as usize).min(m)
}

/// Expected synapses of a network with these blocks and probabilities (`p` row-major,
/// rows postsynaptic), without autapses.
pub fn expected_synapses(blocks: &Blocks, p: &[f64], mask: MaskKind) -> f64 {
    let nb = blocks.len();
    let mut total = 0.0;
    for a in 0..nb {
        for b in 0..nb {
            let (ma, mb) = (blocks.size(a) as f64, blocks.size(b) as f64);
            let per_post = match mask {
                MaskKind::Bernoulli => p[a * nb + b] * (mb - if a == b { 1.0 } else { 0.0 }),
                MaskKind::FixedInDegree => fixed_in_degree(p[a * nb + b], blocks.size(b)) as f64,
            };
            total += ma * per_post.max(0.0);
        }
    }
    total
}

/// An upper bound of the synapses of `spec`'s network and of the bytes they take while
/// drawn, in closed form per class pair (nothing is allocated, however large the network:
/// the check before building it). Bernoulli: `p (N_a N_b − [a = b] N_a)` per class pair; a
/// fixed in-degree at most `p N_a N_b`.
pub fn memory_bound(spec: &super::blocks::ClusterSpec) -> (f64, f64) {
    let sizes = [spec.n_exc as f64, spec.n_inh() as f64];
    let mut synapses = 0.0;
    for pre in 0..2 {
        for post in 0..2 {
            let p = spec.probs[2 * pre + post];
            let auto = if pre == post && spec.mask == MaskKind::Bernoulli {
                sizes[post]
            } else {
                0.0
            };
            synapses += p * (sizes[post] * sizes[pre] - auto);
        }
    }
    let n = spec.n as f64;
    let nb = 2.0 * spec.clusters as f64 + 2.0;
    let copies = match spec.mask {
        MaskKind::Bernoulli => 1.0,
        MaskKind::FixedInDegree => 2.0,
    };
    // Targets (u32), per-neuron cuts (u32 per block), row starts, labels; block tables and
    // weight segments (nb² each).
    let bytes = copies * BYTES_PER_SYNAPSE * synapses
        + n * (8.0 + 4.0 * (nb + 1.0) + 4.0)
        + nb * nb * (16.0 + 24.0);
    (synapses, bytes)
}

impl<T: Real> Synapses<T> {
    /// Draws the synapses: block pair `(a, b)` connects with probability `p[a * nb + b]`
    /// and weight `w[a * nb + b]` (rows postsynaptic), as `mask` says, from `stream`; no
    /// neuron connects to itself.
    pub fn draw(
        blocks: &Blocks,
        w: &[f64],
        p: &[f64],
        mask: MaskKind,
        stream: &mut Stream,
    ) -> Result<Synapses<T>, SpikingError> {
        let nb = blocks.len();
        let n = blocks.neurons();
        let label = blocks.labels();
        let off = blocks.offsets();
        let mut row = Vec::with_capacity(n + 1);
        let mut cut = Vec::with_capacity(n * (nb + 1));
        let mut targets: Vec<u32> = Vec::new();
        match mask {
            MaskKind::Bernoulli => {
                targets.reserve((expected_synapses(blocks, p, mask) * 1.01) as usize + 16);
                for (j, &bj) in label.iter().enumerate() {
                    let bj = bj as usize;
                    row.push(targets.len());
                    let start = targets.len();
                    for a in 0..nb {
                        cut.push(u32_len(targets.len() - start)?);
                        bernoulli_run(off[a], off[a + 1], p[a * nb + bj], j, stream, &mut targets);
                    }
                    cut.push(u32_len(targets.len() - start)?);
                }
                row.push(targets.len());
            }
            MaskKind::FixedInDegree => {
                // Inputs per postsynaptic neuron, then transposed by counting.
                let mut inputs: Vec<u32> =
                    Vec::with_capacity(expected_synapses(blocks, p, mask) as usize + 16);
                let mut in_row = Vec::with_capacity(n + 1);
                for (i, &a) in label.iter().enumerate() {
                    let a = a as usize;
                    in_row.push(inputs.len());
                    for b in 0..nb {
                        let m = blocks.size(b);
                        let k = fixed_in_degree(p[a * nb + b], m);
                        choose_sorted(off[b], m, k, i, stream, &mut inputs);
                    }
                }
                in_row.push(inputs.len());
                let mut count = vec![0usize; n + 1];
                for &j in &inputs {
                    count[j as usize + 1] += 1;
                }
                for j in 0..n {
                    count[j + 1] += count[j];
                }
                row.extend_from_slice(&count);
                let mut fill = count;
                targets = vec![0u32; inputs.len()];
                for i in 0..n {
                    for &j in &inputs[in_row[i]..in_row[i + 1]] {
                        targets[fill[j as usize]] = i as u32;
                        fill[j as usize] += 1;
                    }
                }
                drop(inputs);
                for j in 0..n {
                    let run = &targets[row[j]..row[j + 1]];
                    for &o in &off[..nb] {
                        cut.push(u32_len(run.partition_point(|&t| (t as usize) < o))?);
                    }
                    cut.push(u32_len(run.len())?);
                }
            }
        }
        let weights: Vec<T> = w.iter().map(|&x| T::from(x).unwrap_or(T::zero())).collect();
        let segments = (0..nb)
            .map(|b| {
                let mut seg: Vec<(u32, u32, T)> = Vec::new();
                for a in 0..nb {
                    let wa = weights[a * nb + b];
                    match seg.last_mut() {
                        Some(last) if last.2 == wa => last.1 = a as u32 + 1,
                        _ => seg.push((a as u32, a as u32 + 1, wa)),
                    }
                }
                seg.retain(|s| s.2 != T::zero());
                seg
            })
            .collect();
        Ok(Synapses {
            n,
            nb,
            label,
            row,
            cut,
            targets,
            weights,
            segments,
            values: Vec::new(),
        })
    }

    /// The synapses of a dense weight matrix with a weight per synapse: `w[i * n + j]` is
    /// the weight onto neuron `i` from neuron `j` (rows postsynaptic), `n * n` entries;
    /// the nonzero entries become synapses (autapses included: a rate network may have
    /// them). One block holds every neuron.
    pub fn from_dense(n: usize, w: &[f64]) -> Result<Synapses<T>, SpikingError> {
        if w.len() != n * n {
            return Err(SpikingError::Shape {
                key: "recurrent weights".into(),
                got: w.len(),
                expected: format!("{} (N x N for N = {n})", n * n),
            });
        }
        if let Some(k) = w.iter().position(|x| !x.is_finite()) {
            return Err(SpikingError::Invalid {
                key: format!("recurrent weight [{}, {}]", k / n, k % n),
                value: w[k],
                requirement: "a finite weight".into(),
            });
        }
        let mut row = Vec::with_capacity(n + 1);
        let mut cut = Vec::with_capacity(2 * n);
        let mut targets = Vec::new();
        let mut values = Vec::new();
        for j in 0..n {
            row.push(targets.len());
            let start = targets.len();
            for i in 0..n {
                let x = w[i * n + j];
                if x != 0.0 {
                    targets.push(i as u32);
                    values.push(T::from(x).unwrap_or(T::zero()));
                }
            }
            cut.push(0);
            cut.push(u32_len(targets.len() - start)?);
        }
        row.push(targets.len());
        Ok(Synapses {
            n,
            nb: 1,
            label: vec![0; n],
            row,
            cut,
            targets,
            weights: vec![T::zero()],
            segments: vec![Vec::new()],
            values,
        })
    }

    /// Neurons.
    pub fn neurons(&self) -> usize {
        self.n
    }
    /// Blocks.
    pub fn blocks(&self) -> usize {
        self.nb
    }
    /// Synapses.
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    /// Whether there are no synapses.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
    /// The block of every neuron.
    pub fn labels(&self) -> &[u32] {
        &self.label
    }
    /// The postsynaptic targets of neuron `j`, sorted.
    pub fn targets_of(&self, j: usize) -> &[u32] {
        &self.targets[self.row[j]..self.row[j + 1]]
    }
    /// The weight onto block `a` from block `b` (0 for a network with a weight per
    /// synapse).
    pub fn block_weight(&self, a: usize, b: usize) -> T {
        self.weights[a * self.nb + b]
    }
    /// The start of every neuron's run of targets (`n + 1` entries: the `indptr` of the
    /// compressed sparse column form).
    pub fn column_starts(&self) -> &[usize] {
        &self.row
    }
    /// Every neuron's targets, one run after another (the `indices` of the compressed
    /// sparse column form).
    pub fn all_targets(&self) -> &[u32] {
        &self.targets
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.targets.len() * 4
            + self.cut.len() * 4
            + self.row.len() * 8
            + self.label.len() * 4
            + self.weights.len() * std::mem::size_of::<T>()
            + self.segments.iter().map(Vec::len).sum::<usize>()
                * std::mem::size_of::<(u32, u32, T)>()
            + self.values.len() * std::mem::size_of::<T>()
    }

    /// Adds neuron `j`'s column of `W` to `input` (one entry per neuron).
    ///
    /// # Panics
    /// If `input` has fewer entries than the network has neurons.
    #[inline]
    pub fn add_column(&self, j: usize, input: &mut [T]) {
        assert!(
            input.len() >= self.n,
            "add_column: input shorter than the network"
        );
        let run = &self.targets[self.row[j]..self.row[j + 1]];
        if !self.values.is_empty() {
            let values = &self.values[self.row[j]..self.row[j + 1]];
            for (&t, &w) in run.iter().zip(values) {
                // SAFETY: as below; `from_dense` stores only targets below `self.n`.
                unsafe { *input.get_unchecked_mut(t as usize) += w };
            }
            return;
        }
        let nb = self.nb;
        let bj = self.label[j] as usize;
        let cut = &self.cut[j * (nb + 1)..(j + 1) * (nb + 1)];
        for &(a0, a1, w) in &self.segments[bj] {
            let (s, e) = (cut[a0 as usize] as usize, cut[a1 as usize] as usize);
            for &t in &run[s..e] {
                // SAFETY: every stored target is below `self.n` (`draw` stores only
                // neurons of the blocks, and no other code writes `targets`), and
                // `input.len() >= self.n` was asserted above.
                unsafe { *input.get_unchecked_mut(t as usize) += w };
            }
        }
    }

    /// `W` in compressed sparse column form (column `j` = presynaptic `j`, rows
    /// postsynaptic): `(data, indices, indptr)`, as `scipy.sparse.csc_matrix` takes them.
    pub fn csc(&self) -> (Vec<f64>, Vec<i32>, Vec<i64>) {
        let data = if self.values.is_empty() {
            let mut data = Vec::with_capacity(self.targets.len());
            for j in 0..self.n {
                let bj = self.label[j] as usize;
                for &t in self.targets_of(j) {
                    let a = self.label[t as usize] as usize;
                    data.push(self.weights[a * self.nb + bj].to_f64().unwrap_or(f64::NAN));
                }
            }
            data
        } else {
            self.values
                .iter()
                .map(|x| x.to_f64().unwrap_or(f64::NAN))
                .collect()
        };
        let indices = self.targets.iter().map(|&t| t as i32).collect();
        let indptr = self.row.iter().map(|&r| r as i64).collect();
        (data, indices, indptr)
    }
}

fn u32_len(len: usize) -> Result<u32, SpikingError> {
    u32::try_from(len).map_err(|_| SpikingError::TooManySynapses { per_neuron: len })
}

/// Appends to `out` each of `lo..hi` (but `skip`) with probability `p`, in order, by
/// geometric gaps (cost proportional to the connections, not to the block).
fn bernoulli_run(lo: usize, hi: usize, p: f64, skip: usize, s: &mut Stream, out: &mut Vec<u32>) {
    if p <= 0.0 || lo >= hi {
        return;
    }
    if p >= 1.0 {
        out.extend((lo..hi).filter(|&i| i != skip).map(|i| i as u32));
        return;
    }
    let log_q = (-p).ln_1p();
    let mut i = lo;
    loop {
        // Failures before the next success: ⌊ln U / ln(1 − p)⌋.
        let gap = (s.uniform_open0().ln() / log_q).floor();
        if gap >= (hi - i) as f64 {
            return;
        }
        i += gap as usize;
        if i != skip {
            out.push(i as u32);
        }
        i += 1;
        if i >= hi {
            return;
        }
    }
}

/// Appends `k` distinct neurons of `lo..lo + m`, sorted, chosen uniformly (selection
/// sampling, Knuth's algorithm S), leaving out `skip` if it is chosen.
fn choose_sorted(lo: usize, m: usize, k: usize, skip: usize, s: &mut Stream, out: &mut Vec<u32>) {
    let mut left = k;
    for t in 0..m {
        if left == 0 {
            return;
        }
        if (s.uniform() * (m - t) as f64) < left as f64 {
            left -= 1;
            if lo + t != skip {
                out.push((lo + t) as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spiking::blocks::{Class, ClusterSpec};

    fn two_blocks() -> Blocks {
        Blocks::new(vec![400, 100], vec![Class::E, Class::I], vec![None, None])
    }

    /// The drawn in-degrees have the Bernoulli mean and variance per block pair, no
    /// autapses, and every stored weight is its block pair's.
    #[test]
    fn bernoulli_connections_have_the_block_statistics() {
        let blocks = two_blocks();
        let w = [0.5, -2.0, 1.0, -3.0];
        let p = [0.2, 0.5, 0.35, 0.05];
        let syn = Synapses::<f64>::draw(&blocks, &w, &p, MaskKind::Bernoulli, &mut Stream::new(3))
            .unwrap();
        let (data, idx, ptr) = syn.csc();
        assert_eq!(ptr.len(), 501);
        let mut indeg = [[0usize; 2]; 500];
        for j in 0..500 {
            for k in ptr[j] as usize..ptr[j + 1] as usize {
                let i = idx[k] as usize;
                assert_ne!(i, j, "autapse");
                let (a, b) = ((i >= 400) as usize, (j >= 400) as usize);
                assert_eq!(data[k], w[a * 2 + b]);
                indeg[i][b] += 1;
            }
        }
        for a in 0..2 {
            for b in 0..2 {
                let m = blocks.size(b) as f64 - if a == b { 1.0 } else { 0.0 };
                let pp = p[a * 2 + b];
                let rows: Vec<f64> = (blocks.offsets()[a]..blocks.offsets()[a + 1])
                    .map(|i| indeg[i][b] as f64)
                    .collect();
                let n = rows.len() as f64;
                let mean = rows.iter().sum::<f64>() / n;
                let var = rows.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                let (mu, sd) = (m * pp, (m * pp * (1.0 - pp)).sqrt());
                assert!(
                    (mean - mu).abs() < 5.0 * sd / n.sqrt(),
                    "{a}{b}: mean {mean} vs {mu}"
                );
                assert!(
                    (var / (sd * sd) - 1.0).abs() < 0.35,
                    "{a}{b}: var {var} vs {}",
                    sd * sd
                );
            }
        }
    }

    #[test]
    fn fixed_in_degree_gives_every_neuron_its_count_less_a_drawn_autapse() {
        let blocks = two_blocks();
        let p = [0.2, 0.5, 0.35, 0.05];
        let syn = Synapses::<f32>::draw(
            &blocks,
            &[1.0, 1.0, -1.0, -1.0],
            &p,
            MaskKind::FixedInDegree,
            &mut Stream::new(9),
        )
        .unwrap();
        let mut indeg = vec![[0usize; 2]; 500];
        for j in 0..500 {
            let t = syn.targets_of(j);
            assert!(
                t.windows(2).all(|w| w[0] < w[1]),
                "targets sorted and distinct"
            );
            for &i in t {
                indeg[i as usize][(j >= 400) as usize] += 1;
            }
        }
        for (i, d) in indeg.iter().enumerate() {
            let a = (i >= 400) as usize;
            for b in 0..2 {
                let k = (p[a * 2 + b] * blocks.size(b) as f64).floor() as usize;
                let ok = if a == b {
                    d[b] == k || d[b] + 1 == k
                } else {
                    d[b] == k
                };
                assert!(ok, "neuron {i} from block {b}: {} vs {k}", d[b]);
            }
        }
    }

    /// A spike adds its column of `W`; the same seed draws the same network.
    #[test]
    fn add_column_adds_the_weights_of_the_template() {
        let spec = ClusterSpec::template();
        let blocks = spec.blocks();
        let (w, p) = spec.block_tables(&blocks);
        let a = Synapses::<f64>::draw(&blocks, &w, &p, spec.mask, &mut Stream::new(1)).unwrap();
        let b = Synapses::<f64>::draw(&blocks, &w, &p, spec.mask, &mut Stream::new(1)).unwrap();
        assert_eq!(a, b);
        let (data, idx, ptr) = a.csc();
        let mut input = vec![0.0; 2000];
        a.add_column(5, &mut input);
        let mut want = vec![0.0; 2000];
        for k in ptr[5] as usize..ptr[6] as usize {
            want[idx[k] as usize] += data[k];
        }
        assert_eq!(input, want);
        // Neuron 5 is in E cluster 1: its targets in that cluster get J J+ = 9.9225.
        assert!(input[..80]
            .iter()
            .all(|&x| x == 0.0 || (x - 9.9225).abs() < 1e-12));
        let expected = expected_synapses(&blocks, &p, spec.mask);
        assert!(((a.len() as f64) / expected - 1.0).abs() < 0.01);
    }

    /// A dense matrix keeps every nonzero entry as a synapse of its own weight: a spike of
    /// `j` adds column `j` exactly, and the compressed form gives the matrix back.
    #[test]
    fn a_dense_matrix_adds_its_columns() {
        let n = 7;
        let w: Vec<f64> = (0..n * n)
            .map(|k| {
                if k % 3 == 0 {
                    0.0
                } else {
                    (k as f64 - 20.0) * 0.37
                }
            })
            .collect();
        let syn = Synapses::<f64>::from_dense(n, &w).unwrap();
        assert_eq!(syn.len(), w.iter().filter(|&&x| x != 0.0).count());
        for j in 0..n {
            let mut input = vec![0.5; n];
            syn.add_column(j, &mut input);
            for i in 0..n {
                assert_eq!(input[i], 0.5 + w[i * n + j], "({i}, {j})");
            }
        }
        let (data, idx, ptr) = syn.csc();
        let mut back = vec![0.0; n * n];
        for j in 0..n {
            for k in ptr[j] as usize..ptr[j + 1] as usize {
                back[idx[k] as usize * n + j] = data[k];
            }
        }
        assert_eq!(back, w);
        assert!(matches!(
            Synapses::<f64>::from_dense(3, &[0.0; 8]),
            Err(SpikingError::Shape { .. })
        ));
        let mut bad = vec![0.0; 9];
        bad[5] = f64::NAN;
        let err = Synapses::<f64>::from_dense(3, &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 2]"), "{err}");
    }
}
