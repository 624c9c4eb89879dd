//! Acceptance 1: the tableaus satisfy their order conditions.
//!
//! Order conditions are generated from rooted trees: for a tree `t = [t1, ..., tm]` the
//! stage vector `g(t)_i = Π_j (A g(tj))_i` (with `g(•) = 1`), and the condition of order
//! `|t|` is `b · g(t) = 1 / γ(t)` with `γ(t) = |t| Π_j γ(tj)`.

use neurode_solvers::{ButcherTableau, EULER, TSIT5};

/// A rooted tree: its order, γ, and children as indices into the tree list.
struct Tree {
    order: usize,
    gamma: f64,
    children: Vec<usize>,
}

/// All rooted trees up to `max_order`, each multiset of children listed once.
fn rooted_trees(max_order: usize) -> Vec<Tree> {
    let mut trees = vec![Tree {
        order: 1,
        gamma: 1.0,
        children: vec![],
    }];
    for n in 2..=max_order {
        let existing = trees.len();
        let mut new = Vec::new();
        // Non-increasing sequences of tree indices whose orders sum to n - 1.
        fn rec(
            trees: &[Tree],
            limit: usize,
            remaining: usize,
            cur: &mut Vec<usize>,
            out: &mut Vec<Vec<usize>>,
        ) {
            if remaining == 0 {
                out.push(cur.clone());
                return;
            }
            for i in (0..limit).rev() {
                if trees[i].order <= remaining {
                    cur.push(i);
                    rec(trees, i + 1, remaining - trees[i].order, cur, out);
                    cur.pop();
                }
            }
        }
        let mut seqs = Vec::new();
        rec(&trees[..existing], existing, n - 1, &mut vec![], &mut seqs);
        for children in seqs {
            let gamma = n as f64 * children.iter().map(|&c| trees[c].gamma).product::<f64>();
            new.push(Tree {
                order: n,
                gamma,
                children,
            });
        }
        trees.extend(new);
    }
    trees
}

fn stage_vectors(tab: &ButcherTableau, trees: &[Tree]) -> Vec<Vec<f64>> {
    let s = tab.stages;
    let mut g: Vec<Vec<f64>> = Vec::with_capacity(trees.len());
    for t in trees {
        let mut v = vec![1.0; s];
        for &c in &t.children {
            for (i, vi) in v.iter_mut().enumerate() {
                let agc: f64 = (0..s).map(|j| tab.a(i, j) * g[c][j]).sum();
                *vi *= agc;
            }
        }
        g.push(v);
    }
    g
}

/// Largest residual of the order conditions of `weights` up to `order`.
fn max_residual(tab: &ButcherTableau, weights: &[f64], order: usize) -> f64 {
    let trees = rooted_trees(order);
    let g = stage_vectors(tab, &trees);
    trees
        .iter()
        .zip(&g)
        .map(|(t, gt)| {
            let phi: f64 = weights.iter().zip(gt).map(|(b, g)| b * g).sum();
            (phi - 1.0 / t.gamma).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn tree_counts_are_the_known_sequence() {
    let trees = rooted_trees(6);
    let counts: Vec<usize> = (1..=6)
        .map(|p| trees.iter().filter(|t| t.order == p).count())
        .collect();
    assert_eq!(counts, vec![1, 1, 2, 4, 9, 20]);
}

#[test]
fn tsit5_structure() {
    let t = &TSIT5;
    t.check().unwrap();
    for i in 0..t.stages {
        let row: f64 = (0..t.stages).map(|j| t.a(i, j)).sum();
        assert!(
            (row - t.c[i]).abs() < 1e-13,
            "row {i}: sum {row} vs c {}",
            t.c[i]
        );
    }
    let bsum: f64 = t.b.iter().sum();
    assert!((bsum - 1.0).abs() < 1e-13);
    let esum: f64 = t.b_error.unwrap().iter().sum();
    assert!(esum.abs() < 1e-13, "error weights sum to {esum}");
    assert!(t.fsal);
    assert_eq!((t.order, t.error_order), (5, Some(4)));
}

#[test]
fn tsit5_solution_weights_satisfy_order_5_conditions() {
    let r = max_residual(&TSIT5, TSIT5.b, 5);
    assert!(r < 1e-13, "max residual {r:e}");
    // ... and not order 6 (so the test can tell orders apart).
    assert!(max_residual(&TSIT5, TSIT5.b, 6) > 1e-6);
}

#[test]
fn tsit5_embedded_weights_satisfy_order_4_conditions() {
    let bh = TSIT5.b_embedded().unwrap();
    let r = max_residual(&TSIT5, &bh, 4);
    assert!(r < 1e-13, "max residual {r:e}");
    assert!(max_residual(&TSIT5, &bh, 5) > 1e-6);
}

#[test]
fn euler_is_order_1() {
    EULER.check().unwrap();
    assert!(max_residual(&EULER, EULER.b, 1) < 1e-15);
    assert!(max_residual(&EULER, EULER.b, 2) > 0.1);
}

#[test]
fn tsit5_dense_output_matches_the_step_at_both_ends() {
    let d = TSIT5.dense.unwrap();
    for i in 0..TSIT5.stages {
        assert_eq!(d.weight(i, 0.0), 0.0);
        assert!((d.weight(i, 1.0) - TSIT5.b[i]).abs() < 1e-14, "stage {i}");
    }
}

#[test]
fn tsit5_dense_output_satisfies_order_4_conditions_at_every_theta() {
    // The continuous extension b(θ) must satisfy b(θ)·g(t) = θ^|t| / γ(t) up to order 4.
    let d = TSIT5.dense.unwrap();
    let trees = rooted_trees(4);
    let g = stage_vectors(&TSIT5, &trees);
    for k in 1..10 {
        let th = k as f64 / 10.0;
        let w: Vec<f64> = (0..TSIT5.stages).map(|i| d.weight(i, th)).collect();
        for (t, gt) in trees.iter().zip(&g) {
            let phi: f64 = w.iter().zip(gt).map(|(b, g)| b * g).sum();
            let want = th.powi(t.order as i32) / t.gamma;
            assert!(
                (phi - want).abs() < 1e-13,
                "θ = {th}, order {}: {phi} vs {want}",
                t.order
            );
        }
    }
}
