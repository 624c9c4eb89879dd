"""Population rates of a clustered LIF network, shared by the spiking-network peer scripts
(lif_original.py, lif_brian2.py, compare_lif.sh).

Blocks in neurode's (and the original's) order: Q E clusters, the E background, Q I clusters,
the I background; `clusters` holds each neuron's block label 1..2Q+2.
"""

import numpy as np


def group_rates(counts, clusters, n_blocks, steps, dt):
    """Mean rate (Hz) of each block and of the groups, over neurons and `steps` steps of `dt`:
    `counts` is the number of spikes of every neuron."""
    q = (n_blocks - 2) // 2
    duration = steps * dt
    counts = np.asarray(counts, dtype=np.float64)
    clusters = np.asarray(clusters).astype(np.int64)

    def rate(mask):
        n = int(mask.sum())
        return float(counts[mask].sum() / (n * duration)) if n else float("nan")

    blocks = [rate(clusters == b + 1) for b in range(n_blocks)]
    groups = {
        "e_clusters": rate((clusters >= 1) & (clusters <= q)),
        "e_background": rate(clusters == q + 1),
        "i_clusters": rate((clusters >= q + 2) & (clusters <= 2 * q + 1)),
        "i_background": rate(clusters == 2 * q + 2),
        "i_all": rate(clusters >= q + 2),
    }
    return groups, blocks


def load_network(path):
    """The npz of `neurode simulate` and what both peers read of it first: the file, its
    steps, step, block boundaries, block count, E clusters Q, neurons, E neurons, and the
    weights as CSC arrays (data, indices, indptr; W[post, pre]). Above 25 million synapses
    neurode leaves `weights_data` out: it is then made from `weights_block`."""
    d = np.load(path)
    n_steps = int(d["n_steps"])
    dt = float(d["delta_t"])
    boundaries = d["boundaries"].astype(np.int64)
    n_blocks = len(boundaries) - 1
    q = (n_blocks - 2) // 2
    indptr = d["weights_indptr"].astype(np.int64)
    n = int(indptr.shape[0] - 1)
    n_exc = int(boundaries[q + 1])
    indices = d["weights_indices"].astype(np.int64)
    if "weights_data" in d.files:
        data = d["weights_data"].astype(np.float64)
    else:
        labels = d["clusters"].astype(np.int64) - 1
        pre = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        data = d["weights_block"][labels[indices], labels[pre]]
    return d, n_steps, dt, boundaries, n_blocks, q, n, n_exc, (data, indices, indptr)
